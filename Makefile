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

.PHONY: install deps browser vendor infra run test lint unit integration replay bench schemas clean

install: deps infra vendor

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

deps: $(UV)
	$(UV) sync --frozen --all-packages --quiet

# Debian's Chromium for the browser test (the machine cannot download Playwright's browsers).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# Chart.js for the dashboard's Insights view: the npm registry's tarball (sha256 pinned here),
# unpacked into a git-ignored dir the query API serves itself (nothing from a CDN at run time).
CHARTJS_VERSION := 4.6.1
CHARTJS_SHA256 := 9345dacdf4bb4c5d40321f4b9aafab6fe676d37a534fc0bc2d17c4c4e29c4f00
VENDOR_DIR := services/query_api/src/query_api/static/vendor
CHARTJS_STAMP := $(VENDOR_DIR)/.chart.js-$(CHARTJS_VERSION)

vendor: $(CHARTJS_STAMP)

$(CHARTJS_STAMP):
	command -v npm >/dev/null || (apt-get update && apt-get install -y npm)
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	npm pack --silent --pack-destination "$$tmp" chart.js@$(CHARTJS_VERSION) >/dev/null && \
	echo "$(CHARTJS_SHA256)  $$tmp/chart.js-$(CHARTJS_VERSION).tgz" | sha256sum --check --quiet && \
	tar -xzf "$$tmp/chart.js-$(CHARTJS_VERSION).tgz" -C "$$tmp" \
		package/dist/chart.umd.min.js package/LICENSE.md && \
	rm -rf $(VENDOR_DIR) && mkdir -p $(VENDOR_DIR) && \
	cp "$$tmp/package/dist/chart.umd.min.js" $(VENDOR_DIR)/chart.umd.min.js && \
	cp "$$tmp/package/LICENSE.md" $(VENDOR_DIR)/chart.js-LICENSE.md && touch $@

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
