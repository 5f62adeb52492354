# lighter-stack: the two fresh-machine commands are `make demo` and `make test-all` (CI: .ci/run);
# `make test` is the fast tier for development.
# Everything else is installed into .venv by `make install` (Python 3.11+ is the only prerequisite).

# the first interpreter that runs and is 3.11+ (pyenv shims may exist for versions that do not run)
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && command -v $$p && break; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install sysdeps demo test test-all bench up down lint config-check compose-smoke local-images clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "lighter-stack needs Python 3.11+ (python3, python3.11, ...) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: install         ## paper mode on the bundled real Lighter recording, all services as processes
	$(BIN)/lighter-stack demo

sysdeps:              ## Debian packages some tests use (promtool, prometheus, alertmanager), when root
	@bash deploy/sysdeps.sh

test: install sysdeps ## fast tier: unit and integration tests (real Redis, venue-sim, SDK); no e2e, parity or chaos runs
	$(BIN)/python -m pytest -q -m "not e2e and not parity and not chaos"

test-all: install sysdeps ## every test: the fast tier plus the end-to-end demos, the bus-vs-backtest parity runs and the chaos suite
	$(BIN)/python -m pytest -q

bench: install        ## benchmarks that print figures (not pass/fail)
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lint: install
	$(BIN)/ruff check .

# docker compose: `docker compose` (plugin) when present, else Debian's `docker-compose` (v1)
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

SERVICES ?=
up:                   ## the whole stack in docker compose (needs .env: cp .env.example .env); SERVICES="..." for some
	@test -f .env || { echo "no .env: cp .env.example .env and set the passwords"; exit 1; }
	$(COMPOSE) up -d --build $(SERVICES)

down:
	$(COMPOSE) down

config-check:         ## validate docker-compose.yml offline (with .env, else .env.example)
	@if [ -f .env ]; then docker-compose config -q; else docker-compose --env-file .env.example config -q; fi
	docker-compose --env-file $$( [ -f .env ] && echo .env || echo .env.example ) -f docker-compose.yml -f deploy/compose.smoke.yml config -q

local-images:         ## stand-in images from Debian packages where no registry is reachable (root; docs/deploy.md)
	bash deploy/local-images.sh

compose-smoke:        ## the compose stack end to end in paper mode (docker; not in CI; docs/deploy.md)
	python3 deploy/compose_smoke.py

clean:
	rm -rf var out .pytest_cache .ruff_cache
