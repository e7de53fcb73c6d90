# modeld: `make run` starts the daemon with a demo dataset, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
VAR := var
LISTEN ?= 127.0.0.1:50051
PROTOS := $(wildcard proto/modeld/v1/*.proto) $(wildcard proto/modeld/oip/v2/*.proto)

.PHONY: install run test test-slow fuzz check-proto proto lint typecheck bench clean

install: $(STAMP)

# Re-install whenever the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

run: install
	mkdir -p $(VAR)/data $(VAR)/registry $(VAR)/state
	cp -n data/spambase.csv data/spambase.README.md $(VAR)/data/
	$(VENV)/bin/modeld serve --listen $(LISTEN) --registry $(VAR)/registry \
		--data-root $(VAR)/data --state-dir $(VAR)/state

test: install
	$(PY) -m pytest -q -p no:cacheprovider

test-slow: install
	$(PY) -m pytest -q -p no:cacheprovider -m slow

# New hypothesis draws, ten times as many; `make test` replays a fixed set.
fuzz: install
	MODELD_FUZZ_EXPLORE=1 $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_fuzz.py

# Generated code lives in client/modeld/v1 and client/modeld/oip/v2 and is committed;
# only this target writes it.
proto: install
	$(PY) -m grpc_tools.protoc -Iproto --python_out=client --pyi_out=client \
		--grpc_python_out=client $(PROTOS)

check-proto: install
	rm -rf .proto-check && mkdir -p .proto-check
	$(PY) -m grpc_tools.protoc -Iproto --python_out=.proto-check --pyi_out=.proto-check \
		--grpc_python_out=.proto-check $(PROTOS)
	for d in v1 oip/v2; do \
		diff -r --exclude=__init__.py --exclude=__pycache__ .proto-check/modeld/$$d client/modeld/$$d \
		|| { echo "client/modeld/$$d is stale: run 'make proto' and commit"; rm -rf .proto-check; exit 1; }; \
	done
	rm -rf .proto-check

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
	rm -rf $(VENV) .proto-check .pytest_cache
