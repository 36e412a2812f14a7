"""Build hook: compile the Russian catalog into the package at build/install time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithCatalogs(build_py):
    def run(self) -> None:
        spec = importlib.util.spec_from_file_location("podsec_msgfmt", HERE / "scripts" / "msgfmt.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.compile_all(HERE / "po", HERE / "src" / "podsec" / "locale")
        super().run()


setup(cmdclass={"build_py": BuildWithCatalogs})
