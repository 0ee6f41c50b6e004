# kep: two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test bench lint typecheck clean tools chart

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --config-settings editable_mode=compat -e '.[dev]'
	touch $(STAMP)

# Tools some tests use: promtool (Debian's `prometheus`), helm-python-sdk in .kep/helm-venv.
tools: $(STAMP)
	@./scripts/install-tools.sh

demo: $(STAMP)
	$(BIN)/kep demo

# In CI (CI=true) a missing PostgreSQL or Redis fails their tests instead of skipping them.
test: $(STAMP) tools
	KEP_REQUIRE_SERVICES=$${KEP_REQUIRE_SERVICES:-$${CI:+1}} $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench --markdown bench/results/latest.md

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

chart: $(STAMP)
	scripts/helm-venv.sh >/dev/null
	.kep/helm-venv/bin/python scripts/helm_chart.py helm/kep build/helm --check

clean:
	rm -rf $(VENV) .kep build *.egg-info
