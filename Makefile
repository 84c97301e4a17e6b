# Two entry points for a fresh machine with nothing but Python >= 3.11:
#   make demo   - create .venv, install dwp-hub as a user would, run the demo
#   make test   - create .venv, install dwp-hub with test extras, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DWP_HUB_DATA ?= $(abspath ../shared/data)
export DWP_HUB_DATA
SOURCES := pyproject.toml $(shell find dwp_hub priors -type f -not -name '*.pyc' 2>/dev/null)

.PHONY: demo test bench clean

$(VENV)/.installed: $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python tools/demo.py

test: $(VENV)/.installed
	$(BIN)/pytest -q

bench: $(VENV)/.installed
	$(BIN)/python tools/bench_foundation.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
