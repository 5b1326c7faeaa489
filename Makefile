# Two commands: `make run` brings the whole system up locally, `make test` runs every test.
# Both install what is missing first (uv into .tools/, Python deps into .venv/, Kafka, FerretDB
# and PostgreSQL into ~/.cache/tiktok-returns), so a fresh machine needs nothing else.

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
VENV_PY := .venv/bin/python

.PHONY: install deps browser infra run test lint unit integration replay bench schemas clean

install: deps infra

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

deps: $(UV)
	$(UV) sync --frozen --all-packages --quiet

# Debian's Chromium for the browser test (the machine cannot download Playwright's browsers).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

infra: deps
	$(VENV_PY) -m devinfra install

run: install
	$(VENV_PY) -m devinfra run

lint: deps
	.venv/bin/ruff check .
	.venv/bin/mypy

unit: deps
	.venv/bin/pytest tests/unit -q

# Two workers (each with its own Kafka and FerretDB, a test file to a worker); the
# schemathesis file runs on its own, as its generated tests collapse under xdist.
SCHEMATHESIS := tests/integration/test_query_api_schemathesis.py

integration: install
	.venv/bin/pytest tests/integration -q -n 2 --dist loadfile --ignore=$(SCHEMATHESIS)
	.venv/bin/pytest -q $(SCHEMATHESIS)

test: install browser lint
	.venv/bin/pytest -q -ra -n 2 --dist loadfile --durations=10 --ignore=$(SCHEMATHESIS)
	.venv/bin/pytest -q -ra $(SCHEMATHESIS)

replay: deps
	$(VENV_PY) -m state_machine.replay

# Every figure of README's Benchmarks section, each size on fresh servers (hours at 100,000).
bench: install
	$(VENV_PY) -m bench.report --sizes 2000 20000 100000 --webhook-seconds 60 \
		--webhook-rate 200 --json .data/bench.json

# The messages' JSON Schemas and the services' AsyncAPI documents (contracts/asyncapi/).
schemas: deps
	$(VENV_PY) -m contracts.schemas
	$(VENV_PY) -m ingestor.asyncapi
	$(VENV_PY) -m state_machine.asyncapi

clean:
	rm -rf .data .venv .tools .pytest_cache .mypy_cache .ruff_cache
