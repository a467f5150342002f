"""End-to-end harness: a real Prefect server on a real PostgreSQL, a real process worker,
the repository's prefect.yaml deployed with `prefect deploy`, flows reading and writing the
moto S3 server (auth and IAM policies on) as the least-privilege ``mlops-worker`` user.

The server runs with basic auth on (``PREFECT_SERVER_API_AUTH_STRING``, a fresh secret per
session); the CLI, the workers and this test process authenticate with
``PREFECT_API_AUTH_STRING``, as deployments/systemd configures them. Every flow run sends
heartbeats every 30 s (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``) and the automations of
deployments/automations/ are applied with `prefect automation create --from-file`.

Everything listens on 127.0.0.1 and is started once per test session; every process is
stopped by its own process group id, PostgreSQL with ``pg_ctl stop``.

PostgreSQL refuses to run as root, so when the tests run as root the throwaway cluster is
created and started as the ``postgres`` system user (in a temporary directory it owns).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pytest
import yaml

from mlops_onprem import keys
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import SyntheticSpec, corrupt_batch, generate_batch
from tests.fixtures.servers import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"),)
WORK_POOL = "mlops-process"
ROLES = ("ingest", "training", "scoring", "monitoring")
SERVER_START_TIMEOUT_S = 180.0
# Prefect's minimum; the zombie automation expects a heartbeat within three of these
HEARTBEAT_SECONDS = 30
AUTOMATION_FILES = tuple(sorted((Path(__file__).resolve().parents[2] / "deployments"
                                 / "automations").glob("*.yaml")))


# --- small process helpers ----------------------------------------------------------------
def pg_tool(name: str) -> str:
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"PostgreSQL server binary {name!r} not found (looked in {PG_BIN_DIRS} and PATH)")
    return found


def base_env() -> dict[str, str]:
    """The test process's environment without any PREFECT_* / MLOPS_* setting leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLOPS_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DO_NOT_TRACK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stop_process_group(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group ``proc`` leads, then SIGKILL it if it does not exit."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def wait_for_http(url: str, timeout_s: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before {url} answered:\n"
                               f"{log.read_text(errors='replace')[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s:\n"
                       f"{log.read_text(errors='replace')[-4000:]}")


def run_cli(args: list[str], env: dict[str, str], timeout_s: float = 300.0) -> str:
    """Run a CLI command to completion; fail with its output when it fails."""
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=timeout_s, start_new_session=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result.stdout


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    """Overrides tests/conftest.py's in-process test harness: e2e tests talk to the real
    server below (``prefect_client_settings``), so the harness would only cost start-up time."""
    yield


# --- PostgreSQL -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Postgres:
    port: int
    data_dir: Path

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def asyncpg_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def _as_postgres_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    quoted = " ".join(f"'{part}'" for part in command)
    return ["su", "postgres", "-s", "/bin/sh", "-c", quoted]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL 15 cluster on a free loopback port (trust auth, loopback only)."""
    initdb, pg_ctl = pg_tool("initdb"), pg_tool("pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="mlops-e2e-pg-"))
    data_dir = root / "data"
    data_dir.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (root, data_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = free_port()
    subprocess.run(_as_postgres_user([initdb, "-D", str(data_dir), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_postgres_user([pg_ctl, "-D", str(data_dir), "-o", options,
                                      "-l", str(root / "postgres.log"), "-w", "start"]),
                   check=True, capture_output=True, timeout=120)
    try:
        yield Postgres(port=port, data_dir=data_dir)
    finally:
        subprocess.run(_as_postgres_user([pg_ctl, "-D", str(data_dir), "-m", "fast", "-w", "stop"]),
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


# --- Prefect server -----------------------------------------------------------------------
@dataclass
class PrefectServer:
    port: int
    home: Path
    auth_string: str = ""  # "user:password" of the server's basic auth
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """Environment of a CLI/worker talking to this server (authenticated)."""
        return {**base_env(), "PREFECT_HOME": str(self.home), "PREFECT_API_URL": self.api_url,
                "PREFECT_API_AUTH_STRING": self.auth_string,
                "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    def client_settings(self) -> dict:
        """The same, as ``temporary_settings`` updates for this test process's client (flows it
        runs in-process send heartbeats like the workers' runs: the zombie automation is on)."""
        from prefect.settings import (
            PREFECT_API_AUTH_STRING,
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        )

        return {PREFECT_API_URL: self.api_url, PREFECT_API_AUTH_STRING: self.auth_string,
                PREFECT_FLOWS_HEARTBEAT_FREQUENCY: HEARTBEAT_SECONDS}

    def request(self, method: str, path: str, body: object = None, *,
                authenticated: bool = True) -> tuple[int, object]:
        """One raw API call (``path`` below /api): its status and decoded JSON body."""
        headers = {"Content-Type": "application/json"}
        if authenticated:
            token = base64.b64encode(self.auth_string.encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api_url}{path}", data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="session")
def prefect_server(postgres: Postgres, tmp_path_factory) -> Iterator[PrefectServer]:
    """`prefect server start` on a free loopback port, its database on ``postgres``."""
    from cryptography.fernet import Fernet

    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    server = PrefectServer(port=port, home=home,
                           auth_string=f"mlops-e2e:{secrets.token_urlsafe(24)}")
    env = {
        **base_env(),
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": postgres.sqlalchemy_url,
        "PREFECT_SERVER_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": server.api_url,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_API_AUTH_STRING": server.auth_string,  # basic auth on, as in production
        # the cron schedules of prefect.yaml must not start runs in the middle of a test
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    server.env = env
    log = home / "server.log"
    with open(log, "wb") as out:
        server.proc = subprocess.Popen(
            [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for_http(f"{server.api_url}/health", SERVER_START_TIMEOUT_S, server.proc, log)
        yield server
    finally:
        stop_process_group(server.proc)


@pytest.fixture
def prefect_client_settings(prefect_server: PrefectServer) -> Iterator[None]:
    """Point this test process's Prefect client (run_deployment, get_client) at the server."""
    from prefect.settings import temporary_settings

    with temporary_settings(updates=prefect_server.client_settings()):
        yield


# --- object store -------------------------------------------------------------------------
@dataclass(frozen=True)
class E2EStore:
    """The bucket the deployed flows use: the admin's settings, and the MLOPS_* environment of
    each worker (``orchestration``: all four role policies, like setup.sh's mlops-worker; each
    role: only its own policy)."""

    bucket: str
    worker_envs: dict[str, dict[str, str]]
    admin_settings: object  # mlops_onprem.settings.Settings


@pytest.fixture(scope="session")
def e2e_store(moto_server, tmp_path_factory) -> E2EStore:
    """A bucket plus IAM users holding the policies of deployments/minio/policies (re-targeted
    at this bucket), as deployments/minio/setup.sh creates them on MinIO."""
    import boto3

    from mlops_onprem.store.s3 import S3Store
    from tests.fixtures.servers import s3_settings_for  # tests/conftest.py (the session's moto server)

    bucket = f"e2e-{uuid.uuid4().hex[:12]}"
    admin_settings = s3_settings_for(moto_server, bucket,
                                     data_dir=tmp_path_factory.mktemp("e2e-admin-data"))
    S3Store(admin_settings).put_bytes("README.txt", b"bucket created by the e2e admin")
    iam = boto3.client("iam", endpoint_url=moto_server.url, region_name="us-east-1",
                       aws_access_key_id=moto_server.access_key,
                       aws_secret_access_key=moto_server.secret_key)
    policy_arns = {}
    for role in ROLES:
        text = (REPO / "deployments" / "minio" / "policies" / f"{role}.json").read_text()
        document = text.replace("arn:aws:s3:::mlops", f"arn:aws:s3:::{bucket}")
        policy_arns[role] = iam.create_policy(
            PolicyName=f"{role}-{bucket}", PolicyDocument=document)["Policy"]["Arn"]
    worker_envs = {}
    for queue, roles in [("orchestration", ROLES), *((role, (role,)) for role in ROLES)]:
        user = f"mlops-{queue}-{bucket}"
        iam.create_user(UserName=user)
        for role in roles:
            iam.attach_user_policy(UserName=user, PolicyArn=policy_arns[role])
        key = iam.create_access_key(UserName=user)["AccessKey"]
        worker_envs[queue] = {
            "MLOPS_S3_ENDPOINT": moto_server.endpoint,
            "MLOPS_S3_ACCESS_KEY": key["AccessKeyId"],
            "MLOPS_S3_SECRET_KEY": key["SecretAccessKey"],
            "MLOPS_S3_SECURE": "false",
            "MLOPS_S3_REGION": "us-east-1",
            "MLOPS_S3_CREATE_BUCKET": "false",
            "MLOPS_S3_MAX_RETRIES": "1",
            "MLOPS_BUCKET": bucket,
            "MLOPS_DATA_DIR": str(tmp_path_factory.mktemp(f"e2e-{queue}-data")),
        }
    return E2EStore(bucket=bucket, worker_envs=worker_envs, admin_settings=admin_settings)


@pytest.fixture
def admin_store(e2e_store: E2EStore):
    from mlops_onprem.store.s3 import S3Store

    return S3Store(e2e_store.admin_settings)


# --- deployments and worker ----------------------------------------------------------------
@dataclass(frozen=True)
class Deployed:
    """What `prefect deploy` registered, by full name ("flow-name/deployment-name")."""

    names: tuple[str, ...]
    missing_entrypoints: tuple[str, ...]
    prefect_file: Path


def _flow_name_of(entrypoint: str) -> str:
    """The @flow(name=...) of an entrypoint, read from the source without importing it."""
    import ast

    path, func = entrypoint.split(":")
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func:
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call):
                    for kw in deco.keywords:
                        if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                            return str(kw.value.value)
            return func.replace("_", "-")
    raise LookupError(f"{func} not found in {path}")


@pytest.fixture(scope="session")
def deployed(prefect_server: PrefectServer, tmp_path_factory) -> Deployed:
    """The work pool plus every deployment of prefect.yaml whose flow file exists yet."""
    env = prefect_server.client_env()
    run_cli([str(VENV_BIN / "prefect"), "work-pool", "create", WORK_POOL, "--type", "process"], env)
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    present = [d for d in spec["deployments"] if (REPO / d["entrypoint"].split(":")[0]).exists()]
    missing = tuple(d["entrypoint"] for d in spec["deployments"] if d not in present)
    if missing:
        # deploy what exists now from a filtered copy; entrypoints stay relative to the repo
        spec["deployments"] = present
        prefect_file = tmp_path_factory.mktemp("prefect-yaml") / "prefect.yaml"
        prefect_file.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    else:
        prefect_file = REPO / "prefect.yaml"
    run_cli([str(VENV_BIN / "prefect"), "--no-prompt", "deploy", "--all",
             "--prefect-file", str(prefect_file)], env, timeout_s=600)
    for automation in AUTOMATION_FILES:  # as deployments/README.md tells an operator
        run_cli([str(VENV_BIN / "prefect"), "automation", "create", "--from-file",
                 str(automation)], env)
    names = tuple(f"{_flow_name_of(d['entrypoint'])}/{d['name']}" for d in present)
    return Deployed(names=names, missing_entrypoints=missing, prefect_file=prefect_file)


@dataclass
class Workers:
    """One process worker per work queue of prefect.yaml, as mlops-worker@<queue>.service."""

    procs: dict[str, subprocess.Popen]
    logs: dict[str, Path]

    def tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- worker {queue} ---\n{log.read_text(errors='replace')[-chars:]}"
                         for queue, log in self.logs.items())


QUEUES = ("orchestration", *ROLES)


@pytest.fixture(scope="session")
def worker(prefect_server: PrefectServer, deployed: Deployed, e2e_store: E2EStore) -> Iterator[Workers]:
    """`prefect worker start --pool mlops-process --work-queue <queue>` for every queue, each
    running flows from this repository (MLOPS_REPO_DIR, used by the pull step) with only its
    role's store credentials: a deployed flow that needs more than its policy fails."""
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    try:
        for queue in QUEUES:
            env = {
                **prefect_server.client_env(),
                **e2e_store.worker_envs[queue],
                "MLOPS_REPO_DIR": str(REPO),
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
            }
            logs[queue] = prefect_server.home / f"worker-{queue}.log"
            with open(logs[queue], "wb") as out:
                procs[queue] = subprocess.Popen(
                    [str(VENV_BIN / "prefect"), "worker", "start", "--pool", WORK_POOL,
                     "--type", "process", "--work-queue", queue, "--name", f"e2e-{queue}"],
                    cwd=prefect_server.home, env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        for queue in QUEUES:
            _wait_for_worker_online(prefect_server, f"e2e-{queue}", procs[queue], logs[queue])
        yield Workers(procs=procs, logs=logs)
    finally:
        for proc in procs.values():
            stop_process_group(proc, timeout_s=30)


def _wait_for_worker_online(server: PrefectServer, name: str, proc: subprocess.Popen,
                            log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        status, workers = server.request("POST", f"/work_pools/{WORK_POOL}/workers/filter", {})
        assert status == 200, (status, workers)
        if any(w["name"] == name and w.get("status") == "ONLINE" for w in workers):
            return
        time.sleep(0.5)
    raise TimeoutError(f"worker {name} did not come online:\n{log.read_text()[-4000:]}")


def require_deployment(deployed: Deployed, name: str) -> None:
    """Fail (never skip) when a deployment prefect.yaml declares did not deploy."""
    if name not in deployed.names:
        pytest.fail(f"{name} was not deployed: its entrypoint is missing "
                    f"(missing entrypoints: {', '.join(deployed.missing_entrypoints) or 'none'})")


# --- shared scenario ------------------------------------------------------------------------
DATASET, MODEL = "demo", "demo"
RUN_TIMEOUT_S = 600.0


SPEC = SyntheticSpec()


_ROW_KEYS = itertools.count(0, 100_000)


def fresh_start_row() -> int:
    """A row-key block no other batch of this session uses (the demo contract rejects row keys
    that an earlier batch already landed: ``row_key_overlap: reject``)."""
    return next(_ROW_KEYS)


def land_batch(store, batch_id: str, *, rows: int = 400, seed: int = 1, broken: bool = False,
               covariate_shift: float = 0.0, with_label: bool = True) -> str:
    """Land a synthetic labelled batch in incoming/ (broken: as corrupt_batch breaks it)."""
    df = generate_batch(SPEC, rows, seed=seed, covariate_shift=covariate_shift,
                        with_label=with_label, start_row=fresh_start_row())
    if broken:
        df = corrupt_batch(SPEC, df)
    key = keys.incoming_key(DATASET, batch_id)
    put_dataframe(store, key, df)
    return key


@dataclass(frozen=True)
class PipelineRun:
    flow_run_id: UUID
    state: str
    message: str | None
    good: tuple[str, ...]
    broken: str
    inbox: str


@pytest.fixture(scope="session")
def pipeline_run(worker, deployed, e2e_store, prefect_server) -> PipelineRun:
    """One run of run-pipeline/onprem over two good batches, one broken batch and one
    unlabelled inbox batch (the run that later tests build on: it registers the champion)."""
    from prefect.deployments import run_deployment
    from prefect.settings import temporary_settings

    from mlops_onprem.store.s3 import S3Store

    require_deployment(deployed, "run-pipeline/onprem")
    store = S3Store(e2e_store.admin_settings)
    tag = uuid.uuid4().hex[:6]
    good = tuple(land_batch(store, f"p-{tag}-{i}", seed=10 + i) for i in range(2))
    broken = land_batch(store, f"p-{tag}-bad", seed=20, broken=True)
    inbox = keys.scoring_inbox_key(DATASET, f"p-{tag}-inbox")
    put_dataframe(store, inbox, generate_batch(SPEC, 300, seed=30, with_label=False,
                                               start_row=fresh_start_row()))
    with temporary_settings(updates=prefect_server.client_settings()):
        run = run_deployment("run-pipeline/onprem", parameters={"fail_on_rejected": False},
                             timeout=RUN_TIMEOUT_S, poll_interval=2)
    return PipelineRun(flow_run_id=run.id, state=run.state.type.value,
                       message=run.state.message, good=good, broken=broken, inbox=inbox)


# --- a zombie flow run ------------------------------------------------------------------------
ZOMBIE_QUEUE = "e2e-zombie"  # served only by the worker the zombie scenario kills
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"


@dataclass(frozen=True)
class ZombieRun:
    """A flow run whose worker and process were SIGKILLed after its first heartbeat."""

    flow_run_id: UUID
    killed_at: float  # time.monotonic() of the kill
    killed_pids: tuple[int, ...]  # the flow run's process(es)
    heartbeats: int  # heartbeat events the server had received for it before the kill
    worker_log: Path


def flow_run_events(server: PrefectServer, flow_run_id: UUID, names: list[str]) -> list[dict]:
    """Events the server stored about one flow run (``names``: event names)."""
    status, body = server.request("POST", "/events/filter", {"filter": {
        "event": {"name": names}, "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
    }, "limit": 50})
    assert status == 200, (status, body)
    return body["events"]


def _flow_run_pids(flow_run_id: UUID) -> tuple[int, ...]:
    """Processes whose environment names ``flow_run_id`` (the run's process; never a worker)."""
    marker = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return tuple(found)


@pytest.fixture(scope="session")
def zombie_run(prefect_server: PrefectServer, deployed: Deployed) -> Iterator[ZombieRun]:
    """A deployment of tests/e2e/sleeper_flow.py on its own queue and worker; one run of it is
    killed together with that worker after its first heartbeat reached the server (SIGKILL, as
    a host crash or an OOM kill of the worker's cgroup does): nobody is left to report the run,
    which stays Running until the zombie automation (deployments/automations/) crashes it.
    The session's workers are not touched. Requested early (test_auth_e2e.py) so that the
    automation's wait overlaps the other tests; test_zombie_runs_e2e.py checks the outcome."""
    from prefect.client.orchestration import get_client
    from prefect.settings import temporary_settings

    env = {**prefect_server.client_env(), "MLOPS_REPO_DIR": str(REPO),
           "PREFECT_WORKER_QUERY_SECONDS": "1"}
    log = prefect_server.home / "worker-zombie.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type",
             "process", "--work-queue", ZOMBIE_QUEUE, "--name", "e2e-zombie"],
            cwd=prefect_server.home, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with temporary_settings(updates=prefect_server.client_settings()), \
                get_client(sync_client=True) as client:
            deployment_id = client.create_deployment(
                client.create_flow_from_name("e2e-sleeper"), "zombie",
                entrypoint="tests/e2e/sleeper_flow.py:sleeper", work_pool_name=WORK_POOL,
                work_queue_name=ZOMBIE_QUEUE, parameter_openapi_schema={},
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $MLOPS_REPO_DIR }}"}}],
            )
            _wait_for_worker_online(prefect_server, "e2e-zombie", proc, log)
            run = client.create_flow_run_from_deployment(deployment_id)
            deadline = time.monotonic() + 180
            heartbeats: list[dict] = []
            while not heartbeats:
                state = client.read_flow_run(run.id).state
                assert time.monotonic() < deadline and not (state and state.is_final()), (
                    f"no heartbeat from {run.id} ({state}):\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(1)
                heartbeats = flow_run_events(prefect_server, run.id, [HEARTBEAT_EVENT])
            pids = _flow_run_pids(run.id)
            assert pids and proc.pid not in pids, (pids, proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)  # the worker first: it must not report the run
        proc.wait(timeout=30)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it was in the worker's process group
        killed_at = time.monotonic()
        yield ZombieRun(flow_run_id=run.id, killed_at=killed_at, killed_pids=pids,
                        heartbeats=len(heartbeats), worker_log=log)
    finally:
        stop_process_group(proc)
