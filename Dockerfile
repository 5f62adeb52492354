# One image for every lighter-stack service: `lighter-stack run <service>`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LIGHTER_STACK_CONFIG=/app/config/paper.yaml \
    LIGHTER_STACK_DATA=/app/var

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY lighter_stack ./lighter_stack
COPY services ./services
RUN pip install --no-cache-dir ".[postgres]"
COPY config ./config
COPY data ./data

RUN useradd --create-home --uid 10001 trader && mkdir -p /app/var && chown trader /app/var
USER trader
ENTRYPOINT ["lighter-stack"]
CMD ["--help"]
