# hyperpod-guard — every target does its own set-up from nothing.
# `make test` and `make demo` are the two commands the README opens with.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

# jsii warns loudly about Node 20 on every start; the CDK CLI must not phone home
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: help install test demo bench synth deploy bootstrap lock clean

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

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

synth: $(STAMP) $(NODE_STAMP)  ## synthesise the stack offline (cdk-nag runs), then cfn-lint it
	npx cdk synth --no-notices -q $(CDK_ARGS)
	$(BIN)/cfn-lint --ignore-checks W3005 -- cdk.out/*.template.json

bootstrap: $(STAMP) $(NODE_STAMP)  ## once per account and region: cdk bootstrap
	npx cdk bootstrap --no-notices $(CDK_ARGS)

deploy: $(STAMP) $(NODE_STAMP)  ## cdk deploy into the account of your AWS credentials (CDK_ARGS="-c emails=a@b.c")
	npx cdk deploy --no-notices $(CDK_ARGS)

bench: $(STAMP)  ## measure (benchmarks/bench.py) and write benchmarks/results.json
	$(BIN)/python benchmarks/bench.py

lock: | $(UV)  ## re-resolve requirements-dev.lock from pyproject.toml
	$(UV) pip compile --quiet pyproject.toml --extra dev --extra infra -p 3.11 -o requirements-dev.lock

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .hypothesis cdk.out node_modules
