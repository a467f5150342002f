"""The kit as a company installs it: the wheel carries the default data contracts and model specs
(no checkout needed), a company's own folders come first, and the air-gapped bundle installs
into a fresh venv with the package index unreachable, then trains from outside the checkout.

Cost: one session wheel build (uv: sdist, then the wheel from it) shared by every test here; one
fresh venv (the bundle's) for the slow test, which runs the ingest + training pipeline there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from mlops_onprem import shipped
from mlops_onprem.contracts import default_contracts_dir, find_contract
from mlops_onprem.errors import ContractError
from mlops_onprem.model_spec import ModelSpecError, default_specs_dir, load_model_spec
from mlops_onprem.settings import Settings, get_settings
from tests.fixtures.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "deployments" / "bundle"
SHIPPED = ("data_contracts", "model_specs")
#: step -> (wall, CPU) seconds, printed by the slow test (pytest -s shows it)
TIMINGS: dict[str, tuple[float, float]] = {}


def uv_binary() -> str:
    beside = Path(sys.executable).parent / "uv"  # make venv installs it in .venv
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        pytest.fail("uv is needed to build the wheel (make venv-test installs it into .venv)")
    return found


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project wheel, built once per session the way ``make bundle`` builds it."""
    out = tmp_path_factory.mktemp("wheel")
    run([uv_binary(), "build", "--quiet", "--out-dir", str(out), str(ROOT)], cwd=ROOT,
        env=dict(os.environ), timeout=600, step="wheel build")
    return next(out.glob("mlops_onprem-*.whl"))


# --- what the wheel carries ----------------------------------------------------------------------

def test_the_wheel_carries_every_module_and_the_shipped_contracts_and_specs(project_wheel):
    with zipfile.ZipFile(project_wheel) as wheel:
        names = set(wheel.namelist())
        for folder in SHIPPED:
            sources = sorted((ROOT / folder).glob("*.yaml"))
            assert sources
            for source in sources:
                packaged = f"mlops_onprem/_defaults/{folder}/{source.name}"
                assert wheel.read(packaged) == source.read_bytes(), packaged
    modules = {path.relative_to(ROOT).as_posix() for package in ("mlops_onprem", "flows", "tasks")
               for path in (ROOT / package).rglob("*.py") if "__pycache__" not in path.parts}
    assert modules - names == set()
    # no generic top-level folders of data next to the packages in site-packages
    assert not {name.split("/")[0] for name in names} & set(SHIPPED)


# --- where a name is looked up -------------------------------------------------------------------

@pytest.fixture
def company_folders(tmp_path, monkeypatch):
    """MLOPS_CONTRACTS_DIR / MLOPS_MODEL_SPECS_DIR pointing at a company's own folders."""
    contracts, specs = tmp_path / "contracts", tmp_path / "specs"
    contracts.mkdir()
    specs.mkdir()
    monkeypatch.setenv("MLOPS_CONTRACTS_DIR", str(contracts))
    monkeypatch.setenv("MLOPS_MODEL_SPECS_DIR", str(specs))
    get_settings.cache_clear()
    yield contracts, specs
    get_settings.cache_clear()


def test_the_company_folders_come_first_then_the_shipped_ones(company_folders):
    contracts, specs = company_folders
    demo = (default_contracts_dir() / "demo.yaml").read_text(encoding="utf-8")
    (contracts / "churn.yaml").write_text(demo.replace("dataset: demo", "dataset: churn"))
    (specs / "xgboost.yaml").write_text(
        (default_specs_dir() / "xgboost.yaml").read_text(encoding="utf-8").replace(
            "n_estimators: 200", "n_estimators: 7"))
    assert find_contract("churn").dataset == "churn"  # only in the company's folder
    assert find_contract("demo").dataset == "demo"  # only shipped
    assert load_model_spec("xgboost").params["n_estimators"] == 7  # the company's wins
    assert load_model_spec("logistic").kind == "linear"  # shipped
    with pytest.raises(ContractError, match=r"elsewhere/churn\.yaml cannot be read"):
        find_contract("churn", contracts_dir=contracts.parent / "elsewhere")  # explicit: only there
    with pytest.raises(ModelSpecError, match=rf"nope\.yaml cannot be read: it is not in {specs} "
                                             r"nor in .*model_specs.*MLOPS_MODEL_SPECS_DIR"):
        load_model_spec("nope")


def test_unset_or_empty_settings_mean_the_shipped_folders_only(monkeypatch):
    monkeypatch.setenv("MLOPS_CONTRACTS_DIR", "")
    settings = Settings(_env_file=None)
    assert settings.contracts_dir is None and settings.model_specs_dir is None
    assert shipped.search_path(None, None, "model_specs") == [default_specs_dir()]


def test_an_installed_package_reads_its_packaged_copy_a_checkout_its_top_level_folders(
        tmp_path, monkeypatch):
    assert default_contracts_dir() == ROOT / "data_contracts"  # this checkout (editable)
    (tmp_path / "model_specs").mkdir()
    monkeypatch.setattr(shipped, "PACKAGED_DEFAULTS", tmp_path)
    assert default_specs_dir() == tmp_path / "model_specs"
    assert default_contracts_dir() == ROOT / "data_contracts"  # no packaged copy of this one


# --- the air-gapped bundle, installed and used outside the checkout -------------------------------

def load_bundle_builder():
    spec = importlib.util.spec_from_file_location("mlops_build_bundle", BUNDLE / "build_bundle.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def test_the_bundle_takes_every_pin_of_the_runtime_lock_and_installs_with_no_index():
    pins = load_bundle_builder().read_lock(ROOT / "requirements.lock")
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    assert len(pins) == sum(1 for line in lines if line and not line.startswith((" ", "#"))) > 50
    assert all(pin.hashes and "==" not in pin.version for pin in pins)
    # both branches of install.sh (pip, uv): never an index, always the lock's hashes
    commands = (BUNDLE / "install.sh").read_text().replace("\\\n", " ").splitlines()
    installs = [line for line in commands if " install " in line and not line.startswith("#")]
    assert len(installs) == 4
    assert all("--no-index" in line and "--no-deps" in line for line in installs)
    assert sum("--require-hashes" in line for line in installs) == 2



LAND_AND_CHECK = """
import json, os, sys
import mlops_onprem  # applies the kit's process defaults (mlops_onprem/offline.py)
from prefect.settings import get_current_settings
from mlops_onprem.contracts import default_contracts_dir
from mlops_onprem.landing import land_synthetic_batch
from mlops_onprem.model_spec import default_specs_dir
from mlops_onprem.store import open_store
from mlops_onprem.synthetic import SyntheticSpec

store = open_store()
for i in range(2):
    land_synthetic_batch(store, SyntheticSpec(dataset="demo"), batch_id=f"train-{i:03d}",
                         rows=1000, seed=100 + i, start_row=i * 1000)
print(json.dumps({
    "package": mlops_onprem.__file__, "contracts": str(default_contracts_dir()),
    "specs": str(default_specs_dir()),
    "startup_timeout": get_current_settings().server.ephemeral.startup_timeout_seconds,
    "analytics": get_current_settings().server.analytics_enabled,
    "env": {k: os.environ.get(k) for k in ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                                           "PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK")},
}))
"""


def clean_environment(home: Path) -> dict[str, str]:
    """This process's environment without anything that points at the checkout, its venv, an
    index or a Prefect server; every package index an unreachable loopback port."""
    dropped = ("PREFECT_", "MLOPS_", "PIP_", "UV_", "GX_", "VIRTUAL_ENV", "PYTHONPATH",
               "PYTHONHOME", "DO_NOT_TRACK", "EVIDENTLY_", "MPLBACKEND")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    unreachable = f"http://127.0.0.1:{free_port()}/simple"  # nothing listens there
    env.update(HOME=str(home), PIP_INDEX_URL=unreachable, UV_INDEX_URL=unreachable,
               UV_DEFAULT_INDEX=unreachable, PIP_CONFIG_FILE=os.devnull,
               UV_CACHE_DIR=str(home / "uv-cache"), UV_PYTHON_DOWNLOADS="never")
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float, step: str) -> str:
    """Run one step; its wall and CPU seconds (children, waited for) go to TIMINGS."""
    started, cpu = time.monotonic(), children_cpu()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    TIMINGS[step] = (time.monotonic() - started, children_cpu() - cpu)
    assert result.returncode == 0, f"{step}: exit {result.returncode}\n{result.stdout[-4000:]}\n" \
                                   f"{result.stderr[-4000:]}"
    return result.stdout


@pytest.mark.slow
def test_the_bundle_installs_offline_and_trains_outside_the_checkout(project_wheel, tmp_path):
    # make bundle, with the session's wheel (the runtime wheels come from the wheel cache, or
    # the package registry the first time on a machine)
    run([sys.executable, str(BUNDLE / "build_bundle.py"), "--out",
         str(tmp_path / "dist"), "--project-wheel", str(project_wheel), "--uv", uv_binary()],
        cwd=ROOT, env=dict(os.environ), timeout=900, step="bundle build")
    (archive,) = (tmp_path / "dist").glob("mlops-onprem-bundle-*.tar")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "unpacked", filter="tar")
    (bundle,) = (tmp_path / "unpacked").iterdir()
    assert {"install.sh", "requirements.lock", "SHA256SUMS", "deployments", "wheels",
            "prefect.yaml", project_wheel.name} <= {p.name for p in bundle.iterdir()}

    # install with no index reachable (and --no-index in install.sh)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = clean_environment(home)
    venv = tmp_path / "venv"
    run([str(bundle / "install.sh"), str(venv)], cwd=work, timeout=600, step="offline install",
        env={**env, "UV": uv_binary()})
    site = next((venv / "lib").glob("python3.11/site-packages"))

    # outside the checkout: an embedded store and Prefect's database in this test's folders
    env.update(MLOPS_DATA_DIR=str(work / "data"), PREFECT_HOME=str(home / "prefect"))
    checked = json.loads(run([str(venv / "bin/python"), "-c", LAND_AND_CHECK], cwd=work, env=env,
                             timeout=300, step="land + checks").splitlines()[-1])
    assert Path(checked["package"]).is_relative_to(site)
    assert checked["contracts"] == str(site / "mlops_onprem/_defaults/data_contracts")
    assert checked["specs"] == str(site / "mlops_onprem/_defaults/model_specs")
    # item 4: the package's Prefect defaults hold in a plain venv, without make
    assert checked["startup_timeout"] == 120 and checked["analytics"] is False
    assert checked["env"] == {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                              "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}

    # the CLI: gate both batches against the packaged contract, train the packaged spec (the
    # embedded Prefect server of this venv starts and stops with the command)
    result = json_of(run([str(venv / "bin/mlops"), "pipeline", "--dataset", "demo", "--model",
                          "demo", "--spec", "logistic", "--no-score", "--json"],
                         cwd=work, env=env, timeout=600, step="pipeline (ingest + train)"))
    assert len(result["validated"]) == 2 and not result["quarantined"]
    assert result["training"]["version"] == 1 and result["training"]["promoted"] is True

    report = json_of(run([str(venv / "bin/mlops"), "doctor", "--json", "--probe-mib", "1"],
                         cwd=work, env=env, timeout=300, step="doctor"))
    assert report["passed"], report["checks"]
    assert [p.name for p in work.iterdir()] == ["data"]  # nothing else written in the cwd
    print("\npackaging (wall s / CPU s): "
          + ", ".join(f"{k} {wall:.1f} / {cpu:.1f}" for k, (wall, cpu) in TIMINGS.items()))


def json_of(stdout: str) -> dict:
    """The JSON document a ``--json`` command printed (log lines may precede it)."""
    return json.JSONDecoder().raw_decode(stdout[stdout.index("{"):])[0]
