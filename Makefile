# hyperpod-guard — every target does its own set-up from nothing.
# `make test` and `make demo` are the two commands the README opens with.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
STAMP  := $(VENV)/.installed

.PHONY: help install test demo lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9

# Re-install whenever the lock file or pyproject changes. --compile-bytecode
# because PYTHONDONTWRITEBYTECODE may be set, and imports without .pyc are ~4x slower.
$(STAMP): requirements-dev.lock pyproject.toml | $(UV)
	$(UV) pip sync --quiet --python $(BIN)/python --compile-bytecode requirements-dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --compile-bytecode -e .
	@touch $@

install: $(STAMP)  ## create .venv with the pinned dependencies

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest -q

demo: $(STAMP)  ## run the pipeline on the sample scenarios in events/
	$(BIN)/hyperpod-guard demo

lock: | $(UV)  ## re-resolve requirements-dev.lock from pyproject.toml
	$(UV) pip compile --quiet pyproject.toml --extra dev -p 3.11 -o requirements-dev.lock

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .hypothesis
