"""The modules compiled by `tools/native.py` are the ones the sources say, or none are."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def native() -> ModuleType:
    spec = importlib.util.spec_from_file_location("native_tool", ROOT / "tools" / "native.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_listed_module_is_a_source_of_the_project(native: ModuleType) -> None:
    modules = native.listed_modules()
    assert modules, "pyproject.toml lists no module to compile"
    assert len(set(modules)) == len(modules)
    for module in modules:
        assert native.source_of(module).is_file(), module


def test_the_hot_path_is_compiled_whole_or_not_at_all(native: ModuleType) -> None:
    compiled = native.compiled_modules()
    assert compiled in ([], native.listed_modules()), f"only {compiled} are compiled"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for name in native.listed_modules():
        loaded = importlib.import_module(name).__file__ or ""
        assert loaded.endswith(suffix) == bool(compiled), f"{name} was loaded from {loaded}"


def test_no_compiled_module_is_older_than_its_source(native: ModuleType) -> None:
    stale = native.stale_modules()
    assert stale == [], (
        f"{', '.join(stale)} changed since they were compiled: run `make native` "
        "(or `.venv/bin/python tools/native.py build`)"
    )


def test_status_names_each_module_and_its_state(native: ModuleType) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "native.py"), "status"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    expected = "compiled" if native.compiled_modules() else "pure Python"
    assert [line.split()[0] for line in lines] == native.listed_modules()
    assert all(line.split(maxsplit=1)[1] == expected for line in lines)
