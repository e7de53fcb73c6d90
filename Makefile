# modeld: `make run` starts the daemon with a demo dataset, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SERVER_STAMP := $(VENV)/.installed-server
DEV_STAMP := $(VENV)/.installed-dev
VAR := var
BUF_VERSION := 1.75.0
BUF := node_modules/.bin/buf
PROTOS := $(wildcard proto/modeld/v1/*.proto) $(wildcard proto/modeld/oip/v2/*.proto)
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
# `make run LISTEN=host:port`; otherwise `modeld serve` reads MODELD_LISTEN, then its default.
LISTEN ?=
# Where `make run` copies the demo dataset: the daemon's data root (MODELD_DATA_ROOT or its default).
DATA_ROOT := $(or $(MODELD_DATA_ROOT),$(VAR)/data)

.PHONY: install install-server constraints run test test-slow test-dask test-readme test-install test-no-fast-paths fuzz check-proto \
	buf proto lint typecheck bench clean

# `make install`: the daemon and the dev tools (tests, lint, types, proto generation).
install: $(DEV_STAMP)
# `make install-server`: the daemon alone, what `make run` needs.
install-server: $(SERVER_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever the dependency list or the pinned versions change.
$(SERVER_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP_INSTALL) -e '.[server]'
	touch $@

$(DEV_STAMP): $(SERVER_STAMP)
	$(PIP_INSTALL) -e '.[server,dev]'
	touch $@

# After changing a range in pyproject.toml: resolve again in a fresh venv, then commit.
constraints:
	rm -rf .venv-constraints && $(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --disable-pip-version-check '.[server,dev]'
	{ sed -n '/^#/p' constraints.txt; .venv-constraints/bin/python -m pip freeze \
		| grep -v '^modeld[ =@]'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-constraints

# The registry and state folders are the daemon's defaults (var/registry, var/state) unless
# MODELD_REGISTRY / MODELD_STATE_DIR say otherwise; `modeld serve` creates them.
run: install-server
	mkdir -p $(DATA_ROOT)
	cp -n data/spambase.csv data/spambase.README.md $(DATA_ROOT)/
	$(VENV)/bin/modeld serve $(if $(LISTEN),--listen $(LISTEN))

test: install
	$(PY) -m pytest -q -p no:cacheprovider

test-slow: install
	$(PY) -m pytest -q -p no:cacheprovider -m slow

# The Dask engine's integration suites (real LocalClusters, about 10 minutes on 2 CPUs).
test-dask: install
	$(PY) -m pytest -q -p no:cacheprovider -m 'dask and not slow' tests/integration

# The README's runnable examples against live daemons (2-3 minutes: they train five models).
test-readme: install
	$(PY) -m pytest -q -p no:cacheprovider -m readme tests/e2e/test_readme.py

# The integration tests on the libraries' own paths (--no-fast-paths): a library upgrade
# that breaks a fast path's assumption shows up as a difference here.
test-no-fast-paths: install
	MODELD_FAST_PATHS=false $(PY) -m pytest -q -p no:cacheprovider tests/integration

# Builds the wheel, installs the client alone into a fresh venv and talks to a live daemon.
test-install: install
	$(PY) -m pytest -q -p no:cacheprovider -m install tests/e2e/test_install.py

# New hypothesis draws, ten times as many; `make test` replays a fixed set.
fuzz: install
	MODELD_FUZZ_EXPLORE=1 $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_fuzz.py

# Generated code lives in client/modeld/v1 and client/modeld/oip/v2 and is committed;
# only this target writes it.
proto: install
	$(PY) -m grpc_tools.protoc -Iproto --python_out=client --pyi_out=client \
		--grpc_python_out=client $(PROTOS)

# The contract is guarded by buf against a baseline: main's merge base, or the previous
# commit on main itself (PROTO_BASE=<ref>, e.g. a release tag, picks another).
check-proto: install buf
	rm -rf .proto-check && mkdir -p .proto-check
	$(PY) -m grpc_tools.protoc -Iproto --python_out=.proto-check --pyi_out=.proto-check \
		--grpc_python_out=.proto-check $(PROTOS)
	for d in v1 oip/v2; do \
		diff -r --exclude=__init__.py --exclude=__pycache__ .proto-check/modeld/$$d client/modeld/$$d \
		|| { echo "client/modeld/$$d is stale: run 'make proto' and commit"; rm -rf .proto-check; exit 1; }; \
	done
	rm -rf .proto-check
	@if [ ! -x $(BUF) ]; then echo "buf is not installed (npm unavailable): buf lint and buf breaking skipped"; exit 0; fi; \
	base=$$(git merge-base HEAD main 2>/dev/null || true); \
	if [ -z "$$base" ] || [ "$$base" = "$$(git rev-parse HEAD)" ]; then base=$$(git rev-parse -q --verify HEAD~1 || true); fi; \
	base=$${PROTO_BASE:-$$base}; \
	echo "buf lint proto"; $(BUF) lint proto || exit 1; \
	rm -rf .proto-base && mkdir -p .proto-base; \
	if [ -n "$$base" ] && git archive "$$base" proto 2>/dev/null | tar -x -C .proto-base 2>/dev/null; then \
		echo "buf breaking proto --against $$base"; \
		$(BUF) breaking proto --against .proto-base/proto; rc=$$?; rm -rf .proto-base; exit $$rc; \
	else echo "no proto/ at the baseline $$base: buf breaking skipped"; rm -rf .proto-base; fi

# buf (lint, breaking) from the npm package @bufbuild/buf, into ./node_modules.
buf:
	@if [ -x $(BUF) ]; then exit 0; fi; \
	if command -v npm >/dev/null 2>&1; then \
		npm install --prefix $(CURDIR) --no-save --no-audit --no-fund --silent @bufbuild/buf@$(BUF_VERSION) \
		|| echo "npm could not install @bufbuild/buf: buf checks will be skipped"; \
	else echo "npm not found: buf checks will be skipped"; fi

lint: install
	$(VENV)/bin/ruff check client server tests bench

typecheck: install
	$(VENV)/bin/mypy client/modeld server/modeld_server

# Every benchmark in turn (about 20 minutes on 2 CPUs); run them on a quiet machine.
bench: install
	$(PY) bench/train_overhead.py
	$(PY) bench/hot_reload.py
	$(PY) bench/serve.py
	$(PY) bench/registry_scale.py

clean:
	rm -rf $(VENV) .proto-check .proto-base .pytest_cache .venv-constraints node_modules
