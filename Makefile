# mlops-onprem: two commands on a fresh machine (only Python 3.11 and the package registries).
#   make demo   create .venv, install the pinned environment, run the closed loop end to end
#   make test   create the same environment and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
# one lock per dependency group, each with hashes (make lock): demo installs the runtime only
digest = $(shell cat $(1) pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-runtime-$(call digest,requirements.lock)
STAMP_TEST := $(VENV)/.installed-test-$(call digest,requirements-test.lock)
STAMP_BENCH := $(VENV)/.installed-bench-$(call digest,requirements-bench.lock)
# the embedded Prefect database and UI state live in the repository folder, not in $HOME
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export GX_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
# the ephemeral API server can take longer than its 20 s default on a busy 2-core host
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

PHONY_VENVS := venv-test venv-bench
.PHONY: venv $(PHONY_VENVS) demo test test-ui lint bench ui doctor lock bundle clean

venv: $(STAMP)
venv-test: $(STAMP_TEST)
venv-bench: $(STAMP_BENCH)

# $(1): lock file, $(2): group name (stamp prefix)
define install_lock
	@start=$$(date +%s); \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" && \
	$(VENV)/bin/uv pip install --quiet --python $(PY) --require-hashes -r $(1) && \
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e . && \
	rm -f $(VENV)/.installed-$(2)-* && touch $@ && \
	echo "environment ($(2)) ready in $$(( $$(date +%s) - start )) s ($(VENV))"
endef

$(STAMP): requirements.lock pyproject.toml
	$(call install_lock,requirements.lock,runtime)

$(STAMP_TEST): requirements-test.lock pyproject.toml
	$(call install_lock,requirements-test.lock,test)

$(STAMP_BENCH): requirements-bench.lock pyproject.toml
	$(call install_lock,requirements-bench.lock,bench)

demo: venv
	$(PY) -m flows.demo

test: venv-test
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser test"; \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; fi
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

test-ui: venv-test
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	mkdir -p tests/e2e/screenshots
	MLOPS_E2E_SCREENSHOT_DIR=$(CURDIR)/tests/e2e/screenshots $(PY) -m pytest -q -m ui tests/e2e
	@echo "screenshots in tests/e2e/screenshots/"

lint: venv-test
	$(VENV)/bin/ruff check .

bench: venv-bench
	@set -e; for script in bench/*.py; do echo "== $$script"; $(PY) $$script; done

ui: venv
	@echo "Prefect UI on http://127.0.0.1:4200 (runs from make demo live in $(PREFECT_HOME))"
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port 4200

doctor: venv
	$(VENV)/bin/mlops doctor

# the air-gapped install (deployments/bundle/README.md): ONE archive,
# dist/mlops-onprem-bundle-<version>.tar, with every wheel of requirements.lock (CPython 3.11,
# manylinux x86_64, hashes checked), the project wheel, deployments/ and install.sh; installing
# it needs no network. The first bundle on a machine downloads ~250 MB of wheels (kept in
# ~/.cache/mlops-onprem/bundle-wheels, reused by hash).
bundle: venv
	$(PY) deployments/bundle/build_bundle.py --out dist --uv $(VENV)/bin/uv

# re-pin every dependency (no download addresses are recorded)
# one lock per group, with hashes; the runtime pins bind the other two (same versions everywhere)
LOCK_FLAGS := --python-version 3.11 --generate-hashes --no-emit-index-url --custom-compile-command "make lock"
lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml $(LOCK_FLAGS) -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra test $(LOCK_FLAGS) -c requirements.lock -o requirements-test.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra bench $(LOCK_FLAGS) -c requirements.lock -o requirements-bench.lock
	sed -i '/^    #   -c requirements.lock$$/d' requirements-test.lock requirements-bench.lock

clean:
	rm -rf $(VENV) .mlops-demo .prefect .pytest_cache bench/results/*.json build dist
