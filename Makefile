# mlops-onprem: two commands on a fresh machine (only Python 3.11 and the package registries).
#   make demo   create .venv, install the pinned environment, run the closed loop end to end
#   make test   create the same environment and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
# the embedded Prefect database and UI state live in the repository folder, not in $HOME
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export GX_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
# the ephemeral API server can take longer than its 20 s default on a busy 2-core host
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

.PHONY: venv demo test test-ui lint bench ui doctor lock clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@start=$$(date +%s); \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" && \
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.lock && \
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e . && \
	rm -f $(VENV)/.installed-* && touch $@ && \
	echo "environment ready in $$(( $$(date +%s) - start )) s ($(VENV))"

demo: venv
	$(PY) -m flows.demo

test: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

test-ui: venv
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	mkdir -p tests/e2e/screenshots
	MLOPS_E2E_SCREENSHOT_DIR=$(CURDIR)/tests/e2e/screenshots $(PY) -m pytest -q -m ui tests/e2e
	@echo "screenshots in tests/e2e/screenshots/"

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	@set -e; for script in bench/*.py; do echo "== $$script"; $(PY) $$script; done

ui: venv
	@echo "Prefect UI on http://127.0.0.1:4200 (runs from make demo live in $(PREFECT_HOME))"
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port 4200

doctor: venv
	$(VENV)/bin/mlops doctor

# re-pin every dependency (no download addresses are recorded)
lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra bench --python-version 3.11 \
		--no-emit-index-url -o requirements.lock

clean:
	rm -rf $(VENV) .mlops-demo .prefect .pytest_cache bench/results/*.json
