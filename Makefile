# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
# `make demo SCENARIO=key-invalid` triages a broken twin instead (`runbook lab scenarios` lists them)
SCENARIO ?=
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint lab lab-up lab-down env clean bench

demo: $(STAMP)            ## create the environment and triage the lab twin: every section, the cause to fix first
	$(BIN)/runbook triage --lab $(SCENARIO)

test: $(STAMP)            ## create the environment and run the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP)            ## ruff, as configured in pyproject.toml (CI runs it before the tests)
	$(BIN)/python -m ruff check .

lab: $(STAMP)             ## start a lab twin and open JupyterLab on the notebooks (the twin stops with it)
	$(BIN)/runbook lab jupyter --folder notebooks/

lab-down: $(STAMP)
	$(BIN)/runbook lab down

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

env: $(STAMP)

$(STAMP): pyproject.toml lab/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./lab -e '.[test]'   # the twin is its own distribution
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache
