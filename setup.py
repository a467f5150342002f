"""The one build step pyproject.toml cannot declare: ship the repository's top-level
``data_contracts/`` and ``model_specs/`` inside the wheel as ``mlops_onprem/_defaults/<folder>/``
(package data; git keeps a single copy, where it is). Everything else is in pyproject.toml.
An editable install gets no copy: the package then reads the checkout's folders
(``mlops_onprem/shipped.py``)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED_FOLDERS = ("data_contracts", "model_specs")


class BuildPyWithShippedFolders(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for folder in SHIPPED_FOLDERS:
            sources = sorted(Path(folder).glob("*.yaml"))
            if not sources:
                raise SystemExit(f"setup.py: no {folder}/*.yaml to ship (run from the repository root)")
            target = Path(self.build_lib, "mlops_onprem", "_defaults", folder)
            self.mkpath(str(target))
            for source in sources:
                self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithShippedFolders})
