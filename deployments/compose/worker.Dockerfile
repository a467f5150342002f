# The process worker's image: Python 3.11 + this repository installed, so the pull step
# (set_working_directory to $MLOPS_REPO_DIR) finds flows/ and tasks/ on disk.
# Build context: the repository root (see compose.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MLOPS_REPO_DIR=/opt/mlops-onprem

RUN useradd --system --create-home --home-dir /home/mlops mlops \
    && mkdir -p /var/lib/mlops-onprem && chown mlops /var/lib/mlops-onprem

WORKDIR /opt/mlops-onprem
# exactly the runtime pins `make test` ran against (hashes checked), then the project itself
# without resolving anything again
COPY requirements.lock ./
RUN pip install --no-compile --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY mlops_onprem ./mlops_onprem
COPY flows ./flows
COPY tasks ./tasks
COPY data_contracts ./data_contracts
COPY model_specs ./model_specs
COPY prefect.yaml ./
RUN pip install --no-compile --no-deps .

USER mlops
CMD ["prefect", "worker", "start", "--pool", "mlops-process", "--type", "process"]
