# One image for every lighter-stack service: `lighter-stack run <service>`.
#
#   docker build -t lighter-stack:latest .                          # FROM python:3.11-slim
#   docker build --build-arg BASE_IMAGE=local/base -t lighter-stack:latest .   # deploy/local-images.sh
#
# The package is installed (non-editable) into /opt/venv; the bundled recordings are in
# /app/data and LIGHTER_STACK_HOME=/app tells the code where data/ and config/ are. The config is
# NOT in the image: mount it (docker-compose.yml mounts ./config on /app/config read-only).
# Any Debian-like base with python3 >= 3.11 and its venv module works (BASE_IMAGE).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY lighter_stack ./lighter_stack
COPY services ./services
# not needed at run time: the libraries' own test suites and headers, the SDK's macOS/Windows signers
RUN /opt/venv/bin/pip install ".[postgres]" \
    && /opt/venv/bin/pip uninstall -y pip \
    && cd /opt/venv/lib/python3*/site-packages \
    && rm -rf numpy/*/tests numpy/tests pandas/tests scipy/*/tests scipy/*/*/tests matplotlib/tests \
              pyarrow/tests pyarrow/include pyarrow/src numpy/_core/include numpy/core/include \
              arch/tests statsmodels/*/tests \
              lighter/signers/*darwin* lighter/signers/*windows*

FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    LIGHTER_STACK_HOME=/app \
    LIGHTER_STACK_CONFIG=/app/config/paper.yaml \
    LIGHTER_STACK_DATA=/app/var
WORKDIR /app
RUN useradd --create-home --uid 10001 trader && mkdir -p /app/var /app/config && chown trader /app/var
COPY data /app/data
USER trader
ENTRYPOINT ["lighter-stack"]
CMD ["--help"]
# last: the big layer (every step after it would copy it again on storage drivers like vfs)
COPY --from=build /opt/venv /opt/venv
