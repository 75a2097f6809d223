# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint format bench bench-peers bench-floor bench-growth bench-graph bench-catalog screenshots clean prefect-server prefect-deploy prefect-worker

# A local Prefect server on loopback only, its state in .prefect/, telemetry and analytics off.
PREFECT_PORT ?= 4200
PREFECT_ENV := PREFECT_HOME=$(CURDIR)/.prefect PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api \
	PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 SENTRY_OPT_OUT=1 FASTDUP_PRODUCTION=1

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/curate demo

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(TEST_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# every benchmark in turn (hours; figures only mean something on a quiet machine)
bench: $(TEST_STAMP)
	$(BIN)/python -m bench.run_all

# curate vs bare fastdup, cleanvision and imagededup; the peers go to bench/.venv-peers
bench-peers: $(TEST_STAMP)
	$(BIN)/python -m bench.peers

bench-floor: $(TEST_STAMP)
	$(BIN)/python -m bench.floor

bench-growth: $(TEST_STAMP)
	$(BIN)/python -m bench.growth

# the neighbour search alone at 20k, 100k and 1M vectors against fastdup's graph step
bench-graph: $(TEST_STAMP)
	$(BIN)/python -m bench.graph

# findings, validation and report on a synthetic 1M-image catalog, with peak memory
bench-catalog: $(TEST_STAMP)
	$(BIN)/python -m bench.catalog

# the report and the Prefect UI in headless Chromium (Debian's chromium), kept in bench/screenshots
screenshots: $(TEST_STAMP)
	CURATE_SCREENSHOTS=$(CURDIR)/bench/screenshots CURATE_REQUIRE_BROWSER=1 \
		$(BIN)/python -m pytest -q tests/test_report_browser.py tests/test_deployment.py

# Nightly runs, one terminal each: the server (UI at http://127.0.0.1:4200), then
#   make prefect-deploy SOURCE=~/Pictures [HOME_DIR=~/curation] [TZ_NAME=Europe/Berlin]
#   make prefect-worker
prefect-server: $(STAMP)
	$(PREFECT_ENV) $(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

prefect-deploy: $(STAMP)
	@test -n "$(SOURCE)" || { echo "make prefect-deploy SOURCE=/path/to/photos"; exit 2; }
	$(PREFECT_ENV) $(BIN)/prefect work-pool create curate --type process --overwrite
	$(PREFECT_ENV) CURATE_SOURCE="$(abspath $(SOURCE))" \
		CURATE_HOME="$(abspath $(or $(HOME_DIR),curation))" CURATE_TIMEZONE="$(TZ_NAME)" \
		$(BIN)/prefect --no-prompt deploy --all

prefect-worker: $(STAMP)
	$(PREFECT_ENV) $(BIN)/prefect worker start --pool curate

clean:
	rm -rf $(VENV) curation .pytest_cache
