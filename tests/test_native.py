"""The modules compiled by `tools/native.py` are the ones the sources say, or none are."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
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


def run_tool(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "native.py"), command],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_status_names_each_module_and_its_state(native: ModuleType) -> None:
    done = run_tool("status")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    expected = "compiled" if native.compiled_modules() else "pure Python"
    assert [line.split()[0] for line in lines] == native.listed_modules()
    assert all(line.split(maxsplit=1)[1] == expected for line in lines)


def _tree(root: Path, *, source_newer: bool) -> None:
    """A package `pkg` whose module `mod` has a source and a compiled module that cannot load,
    and a build record listing it, older or newer than the source."""
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text("WHERE = 'source'\n")
    (package / f"mod{sysconfig.get_config_var('EXT_SUFFIX')}").write_bytes(b"not a library")
    stamp = root / "drehscheibe__mypyc.json"
    stamp.write_text('{"sources": {"pkg.mod": "0"}}')
    built = stamp.stat().st_mtime
    source_time = built + 10 if source_newer else built - 10
    os.utime(package / "mod.py", (source_time, source_time))


def _import_after_guard(root: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from pathlib import Path; from agents._native import use_sources_if_stale\n"
        f"root = Path({str(root)!r}); sys.path.insert(0, str(root))\n"
        "print(use_sources_if_stale(root / 'drehscheibe__mypyc.json'))\n"
        "import pkg.mod; print(pkg.mod.WHERE)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )


def test_a_source_newer_than_the_build_is_run_instead_of_its_compiled_module(
    tmp_path: Path,
) -> None:
    _tree(tmp_path, source_newer=True)
    done = _import_after_guard(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "source"]
    assert "pkg.mod changed since the hot path was compiled" in done.stderr


def test_current_compiled_modules_are_imported_as_they_are(tmp_path: Path) -> None:
    _tree(tmp_path, source_newer=False)
    done = _import_after_guard(tmp_path)
    # the guard steps aside, so Python takes the compiled module (here one that cannot load)
    assert done.stdout.split() == ["False"]
    assert "ImportError" in done.stderr


def test_the_tool_and_the_guard_read_one_build_record(native: ModuleType) -> None:
    from agents._native import STAMP

    assert native.STAMP == STAMP


def test_requirements_are_what_compiling_a_wheel_imports(native: ModuleType) -> None:
    done = run_tool("requirements")
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split()
    names = {re.split(r"[\[<>=,]", requirement)[0].lower() for requirement in listed}
    # the build hook's backend, mypyc and its setuptools build, and what mypyc type-checks with
    assert {"hatchling", "mypy", "setuptools", "pydantic", "types-pyyaml"} <= names
    assert listed == native.requirements()
