# Every target bootstraps .venv on first use. Set PYTHON=/path/to/python to use an
# existing environment instead (nothing is installed into it, except by certify-ports,
# which installs the published ports it certifies).
VENV := .venv
UPSTREAM_COMMIT := b77f7d6
UPSTREAM_URL := https://github.com/ESHyperscale/HyperscaleES.git
# Worker processes of `make test` (pytest-xdist; 1 runs pytest without it) and of
# `make conformance` (conformance run --jobs). CI's machine has 2 cores.
TEST_WORKERS ?= 2
CONFORMANCE_JOBS ?= 2

ifeq ($(origin PYTHON), undefined)
PY := $(VENV)/bin/python
BOOTSTRAP := $(VENV)/.installed
else
PY := $(PYTHON)
BOOTSTRAP :=
endif

# make conformance picks up upstream on its own when it is available.
ifneq ($(wildcard third_party/HyperscaleES/src),)
HYPERSCALEES_SRC ?= $(CURDIR)/third_party/HyperscaleES/src
export HYPERSCALEES_SRC
endif

export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: help lint test test-slow test-upstream conformance conformance-deep conformance-vectors \
        conformance-baseline upstream bench bench-gpu certify-ports dist-test

help:
	@echo "make conformance | test | lint | test-slow | test-upstream | conformance-deep |"
	@echo "     conformance-vectors | conformance-baseline | upstream | bench | certify-ports"

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

lint: $(BOOTSTRAP)
	$(PY) -m ruff check .

test: $(BOOTSTRAP)
	$(PY) -m pytest -q $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS))

test-slow: $(BOOTSTRAP)
	$(PY) -m pytest -q -m slow

test-upstream: $(BOOTSTRAP)
	@test -n "$(HYPERSCALEES_SRC)" || { echo "set HYPERSCALEES_SRC=<upstream checkout>/src (or run 'make upstream')"; exit 2; }
	$(PY) -m pytest -q -m upstream tests/upstream

conformance: $(BOOTSTRAP)
	$(PY) -m conformance run --jobs $(CONFORMANCE_JOBS)

conformance-deep: $(BOOTSTRAP)
	$(PY) -m conformance run --profile deep

conformance-vectors: $(BOOTSTRAP)
	$(PY) -m conformance vectors

conformance-baseline: $(BOOTSTRAP)
	$(PY) -m conformance baseline

upstream:
	@mkdir -p third_party
	@if [ ! -d third_party/HyperscaleES ]; then git clone -q $(UPSTREAM_URL) third_party/HyperscaleES; fi
	git -C third_party/HyperscaleES checkout -q $(UPSTREAM_COMMIT)
	@echo "upstream at $(UPSTREAM_COMMIT): third_party/HyperscaleES/src"

bench: $(BOOTSTRAP)
	$(PY) -m benchmarks run --device cpu

bench-gpu: $(BOOTSTRAP)
	$(PY) -m benchmarks run --device cuda

dist-test: $(BOOTSTRAP)
	PYTHON=$(PY) scripts/dist_cpu_identity.sh

# PORT_SRC=<checkout> PORT=<catalog name> certifies a port from a local checkout (its commit names the report).
certify-ports: $(BOOTSTRAP)
	$(PY) -m conformance certify-ports $(if $(PORT),--port $(PORT)) $(if $(PORT_SRC),--port-src $(PORT_SRC))
