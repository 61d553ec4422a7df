# kubeloop — one entry point for a newcomer: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock requirements.reference.lock pyproject.toml | sha1sum | cut -c1-12)
# The machines this project runs on carry the CPU build of torch 2.13.0 here; elsewhere the
# lock's torch pin must come from an index the user configures.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)
# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE=1 (these
# machines) none is ever written later, so every process (8 per training trial: KFP steps,
# torchrun and its workers) compiled torch and mlflow from source at each start
# (docs/benchmarks.md, "Where the demo's time goes").
UV := $(BIN)/uv pip install --compile-bytecode --python $(BIN)/python $(FIND_LINKS)
PY_PACKAGES := contracts kubeloop operators components pipelines services localcluster bench tests

.PHONY: install demo test test-fast lint fmt crds lock services kind-up kind-e2e clean

install: $(STAMP)

# The lock is exact and complete, so the install resolves nothing (--no-deps): no backtracking.
$(STAMP): requirements.lock requirements.reference.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	$(UV) --no-deps -r requirements.lock
	$(UV) --no-deps -r requirements.reference.lock
	$(UV) --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 $(FIND_LINKS) \
		--no-header --no-annotate -o requirements.lock

services:
	@bash scripts/ensure-services.sh

lint: install
	$(BIN)/ruff check $(PY_PACKAGES)
	$(BIN)/ruff format --check $(PY_PACKAGES)
	$(BIN)/mypy contracts kubeloop operators localcluster services components pipelines

fmt: install
	$(BIN)/ruff check --fix $(PY_PACKAGES)
	$(BIN)/ruff format $(PY_PACKAGES)

crds: install
	$(BIN)/kubeloop crds

test: install services lint
	$(BIN)/python -m pytest -q -ra -n 2 --dist loadfile --durations=15 $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -ra -m "not slow and not e2e" $(PYTEST_ARGS)

demo: install services
	$(BIN)/kubeloop demo

kind-up:
	bash scripts/kind-up.sh

# The loop on the demo's data on that cluster (needs Docker; docs/kind.md says what was run).
kind-e2e: kind-up
	bash scripts/kind-e2e.sh

clean:
	rm -rf .kubeloop .pytest_cache .mypy_cache .ruff_cache

# Router benchmark with its nginx peer: the script installs Debian's nginx when it is missing.
.PHONY: bench-router
bench-router: install
	bash scripts/ensure-nginx.sh
	$(BIN)/python bench/router.py $(BENCH_ARGS)
