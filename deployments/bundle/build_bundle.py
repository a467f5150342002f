"""Build the air-gapped install bundle (``make bundle``): ONE archive,
``dist/mlops-onprem-bundle-<version>.tar``, holding

- ``wheels/``: every wheel of ``requirements.lock`` for CPython 3.11 on manylinux x86_64
  (binary only, each checked against the lock's hashes);
- the project wheel (``mlops_onprem-<version>-py3-none-any.whl``, with ``SHA256SUMS``), which
  carries the default data contracts and model specs;
- ``install.sh`` and ``README.md`` (from ``deployments/bundle/``), ``requirements.lock``;
- ``deployments/``, ``data_contracts/``, ``model_specs/`` (starting points for a company's own
  ``MLOPS_CONTRACTS_DIR`` / ``MLOPS_MODEL_SPECS_DIR``), ``prefect.yaml`` and ``flows/`` (the
  deployments' entrypoints, for a worker's ``MLOPS_REPO_DIR``).

Runtime wheels come from the package registry through pip (``pip download``, with the host's pip
configuration) into a wheel cache (default ``~/.cache/mlops-onprem/bundle-wheels``); a wheel
already there whose sha256 is one of the lock's hashes is not fetched again, so only the first
bundle on a machine downloads (~250 MB). Standard library only; run with Python 3.11.

    python deployments/bundle/build_bundle.py [--out dist] [--project-wheel W] [--wheel-cache D]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: the target: CPython 3.11 on glibc x86_64; every manylinux level up to 2.28 (pip does not
#: expand a custom --platform to the older levels itself)
TARGET = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64",
             "manylinux_2_25_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64",
             "manylinux_2_5_x86_64", "manylinux1_x86_64"]
#: pip 26 downloads the lock about 2.5x faster than the pip 23 of a fresh Python 3.11 venv
PIP_VERSION = "26.0.1"
COPIED = ("deployments", "data_contracts", "model_specs", "flows")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "bundle")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: frozenset[str]
    text: str  # the lock's lines of this requirement


def read_lock(lock: Path) -> list[Pin]:
    """Every ``name==version`` of a hashed lock with its hashes."""
    pins, lines = [], lock.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line or line.startswith((" ", "#")):
            continue
        block = [line]
        for follow in lines[i + 1:]:
            if not follow.startswith(" "):
                break
            block.append(follow)
        name, _, version = line.removesuffix("\\").strip().split(";")[0].partition("==")
        hashes = frozenset(part.split("sha256:", 1)[1].split()[0].rstrip("\\")
                           for part in block if "--hash=sha256:" in part)
        if not version or not hashes:
            raise SystemExit(f"{lock}: {line!r} is not an exact, hashed pin")
        pins.append(Pin(name.strip(), version.strip(), hashes,
                        "\n".join(b for b in block if not b.strip().startswith("#"))))
    return pins


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_wheels(cache: Path) -> dict[str, Path]:
    """sha256 -> wheel file of the cache."""
    return {sha256(path): path for path in sorted(cache.glob("*.whl"))}


def find_uv(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


def pip_command(pip: str | None, uv: str | None) -> list[str]:
    """``--pip`` as given; else a pinned recent pip through uv; else this Python's pip."""
    if pip:
        return shlex.split(pip)
    if uv:
        return [uv, "tool", "run", "--quiet", "--from", f"pip=={PIP_VERSION}", "pip"]
    return [sys.executable, "-m", "pip"]


def fetch_missing(pins: list[Pin], cache: Path, pip: list[str]) -> dict[str, Path]:
    """Make the cache hold a wheel for every pin; returns sha256 -> wheel."""
    cache.mkdir(parents=True, exist_ok=True)
    have = cached_wheels(cache)
    missing = [pin for pin in pins if not pin.hashes & have.keys()]
    if missing:
        print(f"bundle: downloading {len(missing)} of {len(pins)} wheels into {cache}", flush=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            requirements = Path(tmp, "missing.txt")
            requirements.write_text("\n".join(pin.text for pin in missing) + "\n", encoding="utf-8")
            platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
            subprocess.run([*pip, "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                            "--require-hashes", "--only-binary=:all:", *TARGET, *platforms,
                            "-r", str(requirements), "-d", str(Path(tmp, "wheels"))], check=True)
            for wheel in Path(tmp, "wheels").glob("*.whl"):
                os.replace(wheel, cache / wheel.name)
        have = cached_wheels(cache)
    still = [f"{pin.name}=={pin.version}" for pin in pins if not pin.hashes & have.keys()]
    if still:
        raise SystemExit(f"bundle: no wheel with a locked hash for {', '.join(still)}")
    return have


def build_project_wheel(uv: str | None, out: Path) -> Path:
    """sdist, then the wheel from the unpacked sdist (no stale build/ of the checkout)."""
    if not uv:
        raise SystemExit("bundle: uv is needed to build the project wheel (make venv installs it)")
    subprocess.run([uv, "build", "--quiet", "--out-dir", str(out), str(ROOT)], check=True)
    return next(out.glob("mlops_onprem-*.whl"))


def build_bundle(out_dir: Path, *, project_wheel: Path | None = None,
                 wheel_cache: Path | None = None, pip: str | None = None,
                 uv: str | None = None) -> Path:
    started = time.monotonic()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    name = f"mlops-onprem-bundle-{version}"
    uv = find_uv(uv)
    cache = wheel_cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"),
                                "mlops-onprem", "bundle-wheels")
    pins = read_lock(ROOT / "requirements.lock")
    have = fetch_missing(pins, cache, pip_command(pip, uv))
    fetched = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        if project_wheel is None:
            project_wheel = build_project_wheel(uv, Path(tmp, "build"))
        built = time.monotonic()
        stage = Path(tmp, name)
        (stage / "wheels").mkdir(parents=True)
        for pin in pins:
            wheel = have[next(iter(pin.hashes & have.keys()))]
            try:  # the archive reads the bytes: a hard link saves copying 250 MB first
                os.link(wheel, stage / "wheels" / wheel.name)
            except OSError:
                shutil.copy2(wheel, stage / "wheels" / wheel.name)
        shutil.copy2(project_wheel, stage / project_wheel.name)
        (stage / "SHA256SUMS").write_text(f"{sha256(project_wheel)}  {project_wheel.name}\n")
        shutil.copy2(ROOT / "requirements.lock", stage / "requirements.lock")
        shutil.copy2(ROOT / "prefect.yaml", stage / "prefect.yaml")
        shutil.copy2(HERE / "install.sh", stage / "install.sh")
        (stage / "install.sh").chmod(0o755)
        shutil.copy2(HERE / "README.md", stage / "README.md")
        for folder in COPIED:
            shutil.copytree(ROOT / folder, stage / folder, ignore=IGNORED)
        archive = out_dir / f"{name}.tar"
        partial = Path(tmp, archive.name)
        # not gzipped: the wheels are zip archives already (gzip saved 2 % and took 16 s)
        with tarfile.open(partial, "w") as tar:
            tar.add(stage, arcname=name)
        os.replace(partial, archive)
    done = time.monotonic()
    size_mib = archive.stat().st_size / 2**20
    print(f"bundle: {archive} ({size_mib:.0f} MiB, {len(pins)} runtime wheels + {project_wheel.name}); "
          f"wheels {fetched - started:.1f} s, project wheel {built - fetched:.1f} s, "
          f"archive {done - built:.1f} s", flush=True)
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (dist/)")
    parser.add_argument("--project-wheel", type=Path, default=None,
                        help="use this project wheel instead of building one")
    parser.add_argument("--wheel-cache", type=Path, default=None,
                        help="where downloaded wheels are kept (~/.cache/mlops-onprem/bundle-wheels)")
    parser.add_argument("--pip", default=None,
                        help=f"pip command for downloading (default: pip {PIP_VERSION} through uv)")
    parser.add_argument("--uv", default=None, help="uv binary (default: beside this Python, or PATH)")
    args = parser.parse_args(argv)
    build_bundle(args.out, project_wheel=args.project_wheel, wheel_cache=args.wheel_cache,
                 pip=args.pip, uv=args.uv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
