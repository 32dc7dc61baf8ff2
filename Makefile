# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run check test bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "numlookup needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.run-installed

## Start the server on SQLite with the shipped data; prints the demo account and a curl.
## Its data lives in the checkout's var/, wherever make runs from (an installed numlookup's
## default is ~/.local/share/numlookup); `make run RUN_DATA_DIR=/elsewhere` moves it.
RUN_DATA_DIR ?= $(CURDIR)/var
run: $(VENV)/.run-installed
	NUMLOOKUP_DATA_DIR='$(abspath $(RUN_DATA_DIR))' $(BIN)/numlookup serve --demo

## Formatting, lint and types: what every submission must pass (also .pre-commit-config.yaml).
CHECKED := numlookup tests bench scripts
check: $(VENV)/.test-installed
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/mypy

## Test files run in parallel processes (pytest-xdist), a file's tests in one process, so a module's
## server or peer is started once; `make test PYTEST_PARALLEL=` runs them one by one.
PYTEST_PARALLEL ?= -n 3 --dist loadfile
## Run the checks, then the whole test suite twice: on SQLite, then on a throwaway PostgreSQL cluster.
## Installs osmo-hlr (live-source tests), nginx (load-balancer tests), NSD (ENUM tests), Chromium (console
## browser tests) and PostgreSQL when missing.
test: check
	sh scripts/ensure-osmo-hlr.sh || echo "osmo-hlr could not be installed: its tests will be skipped"
	sh scripts/ensure-nginx.sh || echo "nginx could not be installed: its tests will be skipped"
	sh scripts/ensure-nsd.sh || echo "nsd could not be installed: the ENUM tests will be skipped"
	sh scripts/ensure-chromium.sh || echo "chromium could not be installed: the browser tests will be skipped"
	sh scripts/ensure-postgres.sh
	NUMLOOKUP_TEST_BACKEND=sqlite $(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)
	NUMLOOKUP_TEST_BACKEND=postgresql $(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

## Benchmarks are run by hand; they print their figures.
bench: $(VENV)/.test-installed
	$(BIN)/python bench/server.py

clean:
	rm -rf $(VENV) var .cache
