# hyperpod-guard — every target does its own set-up from nothing.
# `make test` and `make demo` are the two commands the README opens with.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
NODE_STAMP := node_modules/.installed

# jsii warns loudly about Node 20 on every start; the CDK CLI must not phone home
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: help install lint test demo bench synth deploy deploy-spoke destroy bootstrap lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9

# Two stages in the one .venv, each re-installed whenever its lock file or pyproject changes:
# - $(DEMO_STAMP): requirements-demo.lock, the runtime and moto (~200 MB), all `make demo` needs;
#   added with `pip install`, so it never removes what the full stage installed;
# - $(STAMP): requirements-dev.lock, everything (tests, the CDK app, cdk-nag, cfn-lint; ~820 MB),
#   with `pip sync`. The demo lock is a subset of the dev lock at the same versions (`make lock`).
# --compile-bytecode because PYTHONDONTWRITEBYTECODE may be set, and imports without .pyc are ~4x slower.
$(DEMO_STAMP): requirements-demo.lock pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements-demo.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --compile-bytecode -e .
	@touch $@

$(STAMP): requirements-dev.lock pyproject.toml | $(UV)
	$(UV) pip sync --quiet --python $(BIN)/python --compile-bytecode requirements-dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --compile-bytecode -e .
	@touch $@

install: $(STAMP)  ## create .venv with the pinned dependencies

# pyproject.toml configures both: ruff's rule set ([tool.ruff]); mypy's files, strictness and the
# pydantic plugin ([tool.mypy])
lint: $(STAMP)  ## ruff and mypy (with the pydantic plugin) over functions/ and infra/
	$(BIN)/ruff check functions infra
	$(BIN)/mypy

test: $(STAMP) lint  ## lint, then run the whole test suite
	$(BIN)/python -m pytest -q

demo: $(DEMO_STAMP)  ## run the pipeline on the sample scenarios in events/ (light install: no CDK tooling)
	$(BIN)/hyperpod-guard demo

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Two stacks: the hub (HyperPodGuard) and the spoke (HyperPodGuardSpoke, infra/spoke.py). The spoke's template
# is also written as cdk.out/spoke-stackset.template.json, checked StackSet-ready (no BootstrapVersion, no assets)
synth: $(STAMP) $(NODE_STAMP)  ## synthesise the hub and spoke stacks offline (cdk-nag runs), the StackSet template, then cfn-lint them
	npx cdk synth --no-notices -q $(CDK_ARGS)
	$(BIN)/python -m infra.spoke cdk.out
	$(BIN)/cfn-lint --ignore-checks W3005 -- cdk.out/*.template.json

bootstrap: $(STAMP) $(NODE_STAMP)  ## once per account and region: cdk bootstrap
	npx cdk bootstrap --no-notices $(CDK_ARGS)

# --import-existing-resources: after a destroy, the retained ledger table (fixed name, DeletionPolicy
# Retain) is adopted by the new stack instead of colliding with it (README: Deploy)
deploy: $(STAMP) $(NODE_STAMP)  ## cdk deploy the hub into the account of your AWS credentials (CDK_ARGS="-c emails=a@b.c")
	npx cdk deploy HyperPodGuard --no-notices --import-existing-resources $(CDK_ARGS)

# the spoke needs no bootstrap (no assets; deployed with your credentials); its parameters come from the hub's
# Fleet* outputs (README: Many accounts)
deploy-spoke: $(STAMP) $(NODE_STAMP)  ## cdk deploy the spoke stack (CDK_ARGS="--parameters HubAccountId=... --parameters HubEventBusArn=...")
	npx cdk deploy HyperPodGuardSpoke --no-notices $(CDK_ARGS)

destroy: $(STAMP) $(NODE_STAMP)  ## cdk destroy the hub, after cdk asks (CDK_ARGS="--force" skips); the ledger table and KMS key stay
	npx cdk destroy HyperPodGuard --no-notices $(CDK_ARGS)
	@echo "kept: the ledger table and the KMS key (README: Deploy says why and how to remove them)"

bench: $(STAMP)  ## measure (benchmarks/bench.py) and write benchmarks/results.json
	$(BIN)/python benchmarks/bench.py

lock: | $(UV)  ## re-resolve requirements-dev.lock, then requirements-demo.lock within it, from pyproject.toml
	$(UV) pip compile --quiet pyproject.toml --extra dev --extra infra -p 3.11 -o requirements-dev.lock
	$(UV) pip compile --quiet pyproject.toml --extra demo -p 3.11 -c requirements-dev.lock -o requirements-demo.lock

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache cdk.out node_modules
