# kep: two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: demo test bench lint typecheck clean tools services chart
# In CI (CI=true) a service that cannot be started, or is missing in a test, fails the run instead of skipping.
export KEP_REQUIRE_SERVICES ?= $(if $(CI),1,)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --config-settings editable_mode=compat -e '.[dev]'
	touch $(STAMP)

# Tools some tests use: promtool (Debian's `prometheus`), helm-python-sdk in .kep/helm-venv.
tools: $(STAMP)
	@./scripts/install-tools.sh

# The shop example (examples/shop), run as a service runs kep: from its own directory, with its topology.
demo: $(STAMP)
	cd examples/shop && $(CURDIR)/$(BIN)/kep demo --topology topology.yaml --app shop.billing:app --app shop.shipping:app

# PostgreSQL and Redis on loopback for the shared-store tests: reused when they answer, else installed and started.
services:
	@./scripts/services.sh

# The whole suite on Apache Kafka (fetched from Maven Central into .kep/ and started by the suite; see
# tests/support/apache_kafka), then the marked subset again on the embedded broker, which `make demo` uses.
test: $(STAMP) tools services
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)
	KEP_TEST_BROKER=embedded $(BIN)/python -m pytest -n 2 -m embedded $(PYTEST_ARGS)

# Everything on the embedded broker, then the added latency again on Apache Kafka (its target is read there).
bench: $(STAMP)
	$(BIN)/python -m bench --markdown bench/results/latest.md $(BENCH_ARGS)
	$(BIN)/python -m bench --broker kafka --only consumer --scenario latency --markdown bench/results/latest.md

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

chart: $(STAMP)
	scripts/helm-venv.sh >/dev/null
	.kep/helm-venv/bin/python scripts/helm_chart.py helm/kep build/helm --base examples/shop/helm-values.yaml --check

clean:
	rm -rf $(VENV) .kep build *.egg-info
