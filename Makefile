# `make test` and `make demo` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv lint test test-fast demo ablation bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the requirements (reused when up to date)

lint: $(STAMP)  ## ruff over code and notebooks
	$(VENV)/bin/ruff check .

test: lint  ## lint, then the whole test suite (slow tests included)
	$(PY) -m pytest

test-fast: $(STAMP)  ## the test suite without the slow end-to-end runs
	$(PY) -m pytest -m "not slow"

demo: $(STAMP)  ## train the three models, evaluate them, write results/report.md (ARGS="..." passes options)
	$(PY) demo.py $(ARGS)

ablation: $(STAMP)  ## the leakage ablation of the design document's Disentangled VAE (docs/results.md; six 4.5-min runs; ARGS="...")
	$(PY) ablation.py $(ARGS)

bench: $(STAMP)  ## every benchmark, one table each
	$(PY) -m benchmarks.run_all

clean:  ## remove caches (never checkpoints or results)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
