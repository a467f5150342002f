"""The data contracts and model specs that ship with the kit, and where a name is looked up.

Git holds one copy of each: the repository's top-level ``data_contracts/`` and ``model_specs/``.
Building the wheel copies both into the package as ``mlops_onprem/_defaults/<folder>/`` (the
build step in ``setup.py``), so an installed kit finds them without a checkout; running from the
checkout (editable install, ``python -m flows.<x>`` in the repository) reads the top-level
folders themselves.

A contract (``<dataset>.yaml``) or spec (``<name>.yaml``) is looked up in this order:

1. an explicit folder passed by the caller (``find_contract(..., contracts_dir=)``,
   ``load_model_spec(..., specs_dir=)``): only there;
2. the company's folder from the settings (``MLOPS_CONTRACTS_DIR``, ``MLOPS_MODEL_SPECS_DIR``);
3. the shipped ones: a file of the same name in the company's folder wins.

A path (``--contract-path``, a spec ending in ``.yaml``) is read as given.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: where the build step puts the shipped folders inside the installed package
PACKAGED_DEFAULTS = PACKAGE_DIR / "_defaults"
SHIPPED_FOLDERS = ("data_contracts", "model_specs")


def shipped_folder(name: str) -> Path:
    """The shipped ``data_contracts`` or ``model_specs`` folder: the package's copy in an
    installed wheel, else the checkout's top-level folder."""
    if name not in SHIPPED_FOLDERS:
        raise ValueError(f"no shipped folder {name!r} (one of {', '.join(SHIPPED_FOLDERS)})")
    packaged = PACKAGED_DEFAULTS / name
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / name


def search_path(explicit: Path | str | None, configured: Path | None, name: str) -> list[Path]:
    """The folders to look in, in order: ``[explicit]`` alone, else the configured folder (when
    set) then the shipped one."""
    if explicit is not None:
        return [Path(explicit)]
    folders = [Path(configured).expanduser()] if configured is not None else []
    shipped = shipped_folder(name)
    if all(folder.resolve() != shipped.resolve() for folder in folders):
        folders.append(shipped)
    return folders


def locate(filename: str, folders: list[Path]) -> Path | None:
    """The first ``<folder>/<filename>`` that exists, or None."""
    return next((folder / filename for folder in folders if (folder / filename).is_file()), None)


def not_found(kind: str, filename: str, folders: list[Path], setting: str) -> str:
    """The error text for a name found in none of ``folders``."""
    where = " nor in ".join(str(folder) for folder in folders)
    return (f"{kind} {filename} cannot be read: it is not in {where} "
            f"(your own folder: {setting}, or pass a path)")
