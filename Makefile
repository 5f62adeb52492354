# lighter-stack: the two fresh-machine commands are `make demo` and `make test`.
# Everything else is installed into .venv by `make install` (Python 3.11+ is the only prerequisite).

PYTHON ?= $(shell command -v python3.12 || command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench up down lint config-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lighter-stack needs Python 3.11+, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: install         ## paper mode on the bundled real Lighter recording, all services as processes
	$(BIN)/lighter-stack demo

test: install         ## unit, integration (real Redis, venue-sim, SDK) and end-to-end tests
	$(BIN)/python -m pytest -q

bench: install        ## benchmarks that print figures (not pass/fail)
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lint: install
	$(BIN)/ruff check .

up:                   ## the whole stack in docker compose
	docker compose up -d --build

down:
	docker compose down

config-check:         ## validate docker-compose.yml offline
	docker-compose config -q

clean:
	rm -rf var out .pytest_cache .ruff_cache
