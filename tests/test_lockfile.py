"""Every dependency is pinned with hashes, one lock per group, and no lock records a download
address or registry host; every package the code imports is declared."""

import ast
import re
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {"runtime": ROOT / "requirements.lock", "test": ROOT / "requirements-test.lock",
         "bench": ROOT / "requirements-bench.lock"}
PIN = re.compile(r"([A-Za-z0-9_.\-]+(?:\[[A-Za-z0-9_,\-]+\])?)==([A-Za-z0-9_.+\-]+)")


def pins(lock: Path) -> dict[str, str]:
    """``name -> version`` of every requirement line, each checked to carry hashes."""
    found, current = {}, None
    for line in lock.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            match = PIN.fullmatch(line.removesuffix(" \\").strip())
            assert match, f"{lock.name}: not an exact pin: {line!r}"
            current = match.group(1).lower()
            found[current] = match.group(2)
        elif line.strip().startswith("--hash=sha256:") and current:
            found[current + "#hashed"] = "yes"
    unhashed = [name for name in found if "#" not in name and name + "#hashed" not in found]
    assert not unhashed, f"{lock.name}: pins without a hash: {unhashed}"
    return {k: v for k, v in found.items() if "#" not in k}


@pytest.mark.parametrize("group", sorted(LOCKS))
def test_each_lock_pins_every_requirement_exactly_with_hashes(group):
    assert len(pins(LOCKS[group])) > 50


@pytest.mark.parametrize("group", sorted(LOCKS))
def test_no_lock_records_download_addresses_or_registry_hosts(group):
    text = LOCKS[group].read_text()
    assert "://" not in text
    assert not re.search(r"--(extra-)?index-url|--find-links|pypi\.org|files\.pythonhosted", text)


def test_the_runtime_lock_holds_no_test_or_bench_tool_and_the_groups_agree_on_versions():
    runtime, test, bench = (pins(LOCKS[g]) for g in ("runtime", "test", "bench"))
    assert not {"moto", "ruff", "pytest", "evidently"} & set(runtime)
    assert {"moto", "ruff", "pytest"} <= set(test) and "evidently" in bench
    for other in (test, bench):
        assert {n: v for n, v in other.items() if n in runtime} == runtime


def _imported_top_level_packages() -> set[str]:
    names = set()
    for folder in ("mlops_onprem", "flows", "tasks"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_a_declared_dependency():
    import sys
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    declared = {norm(re.split(r"[<>=\[ ]", d)[0]) for d in project["dependencies"]}
    distributions = packages_distributions()
    own = {"mlops_onprem", "flows", "tasks"}
    missing = {}
    for name in _imported_top_level_packages() - own - set(sys.stdlib_module_names):
        provided = {norm(d) for d in distributions.get(name, [])}
        if not provided & declared:
            missing[name] = sorted(provided)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
