# The process worker's image: Python 3.11, the runtime lock and the project installed from its
# wheel (non-editable, like any production host), plus prefect.yaml and the flow files that the
# deployments' entrypoints name (the pull step's set_working_directory to $MLOPS_REPO_DIR finds
# them there). Data contracts and model specs come from the installed package (package data), or
# from a company's own folders mounted at MLOPS_CONTRACTS_DIR / MLOPS_MODEL_SPECS_DIR; nothing
# else of the checkout is in the image.
# Build context: the repository root (see compose.yaml).
# Pinned base (patch release and Debian release); both stages use the same one.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- 1. build the project wheel (the build step copies data_contracts/ and model_specs/ into it)
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY mlops_onprem ./mlops_onprem
COPY flows ./flows
COPY tasks ./tasks
COPY data_contracts ./data_contracts
COPY model_specs ./model_specs
RUN pip wheel --no-deps --wheel-dir /dist .

# --- 2. the worker
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLOPS_REPO_DIR=/opt/mlops-onprem

RUN useradd --system --create-home --home-dir /home/mlops mlops \
    && mkdir -p /var/lib/mlops-onprem && chown mlops /var/lib/mlops-onprem

# exactly the runtime pins `make test` ran against (hashes checked; the lock is complete, so
# nothing is resolved), then the project wheel without resolving anything again
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-compile --no-deps --require-hashes -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-compile --no-deps /tmp/dist/mlops_onprem-*.whl && rm -rf /tmp/dist \
    && python -c "from mlops_onprem.model_spec import load_model_spec; \
from mlops_onprem.contracts import find_contract; load_model_spec('xgboost'); find_contract('demo')"

# the deployments' entrypoints (flows/<x>.py:<flow>) only: their imports resolve to the
# installed package; no mlops_onprem/, tasks/, data_contracts/ or model_specs/ here
WORKDIR /opt/mlops-onprem
COPY prefect.yaml ./
COPY flows ./flows

USER mlops
CMD ["prefect", "worker", "start", "--pool", "mlops-process", "--type", "process"]
