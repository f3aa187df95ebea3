# The two commands of the README, and the pieces they are made of.
# Each target installs what it needs into .venv; upstream binaries are cached under
# ~/.cache/incisive/ (see operator/incisive_operator/testbed/versions.py).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint unit toolchain down clean

demo: $(STAMP)
	$(BIN)/incisive demo

test: lint toolchain
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

toolchain: $(STAMP)
	$(BIN)/incisive testbed build

down: $(STAMP)
	$(BIN)/incisive testbed down

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
	  "error: Python >= 3.11 is needed (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,testbed]'
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
