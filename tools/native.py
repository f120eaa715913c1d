"""Compile the agent's hot path with mypyc, in place, beside the Python sources.

    python tools/native.py build    # compile what changed since the last build
    python tools/native.py clean    # remove the compiled modules: pure Python again
    python tools/native.py status   # which modules are compiled, and whether they are current
    python tools/native.py requirements  # what a compiled wheel's build installs (the image's)

The modules are listed in pyproject.toml (`[tool.drehscheibe.native] modules`): the parser,
the mapping and the pipeline's stages, the code every uplink runs through. mypyc turns their
type-checked Python into C extension modules; Python imports an extension before the source
of the same name, so the editable install runs them without any other change. Everything else
(and all of it, after `clean`) runs as plain Python, with the same behaviour.

A build records the SHA-256 of every compiled source in `drehscheibe__mypyc.json`, beside the
shared library (so that removing `build/` does not lose it); `status` and the
test suite compare it with the sources. When a source is newer than that record (edited, or
changed by a pull), importing `agents` runs all of them from their sources instead, with a
warning (`agents._native`), so old compiled code never runs. `make test` and `make demo` build
first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import sysconfig
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUP = "drehscheibe"
"""The name of the shared library mypyc builds for the modules (`drehscheibe__mypyc.*.so`)."""
STAMP = ROOT / f"{GROUP}__mypyc.json"
"""The build's record, which `agents._native` reads too (this tool does not import `agents`,
whose import would warn about the very modules it is about to compile)."""


def listed_modules() -> list[str]:
    """The dotted names of the modules to compile, from pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    modules: list[str] = config["tool"]["drehscheibe"]["native"]["modules"]
    return modules


def source_of(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def extension_of(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + _ext_suffix())


def shared_library() -> Path:
    return ROOT / f"{GROUP}__mypyc{_ext_suffix()}"


def _ext_suffix() -> str:
    suffix: str = sysconfig.get_config_var("EXT_SUFFIX")
    return suffix


def digests(modules: list[str]) -> dict[str, str]:
    """The SHA-256 of each module's source, by module name."""
    return {
        module: hashlib.sha256(source_of(module).read_bytes()).hexdigest() for module in modules
    }


def recorded() -> dict[str, str]:
    """What the last build compiled (module name to source SHA-256); empty when none."""
    try:
        data = json.loads(STAMP.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    sources: dict[str, str] = data.get("sources", {})
    return sources


def compiled_modules() -> list[str]:
    """The listed modules that have an extension beside their source."""
    return [module for module in listed_modules() if extension_of(module).exists()]


def stale_modules() -> list[str]:
    """Compiled modules whose source changed since the build, or that the build did not
    record: running them would run other code than the source says."""
    built = recorded()
    current = digests(compiled_modules())
    return [module for module, digest in current.items() if built.get(module) != digest]


def clean() -> None:
    for module in listed_modules():
        extension_of(module).unlink(missing_ok=True)
    for stray in ROOT.glob(f"{GROUP}__mypyc.*"):
        stray.unlink()
    STAMP.unlink(missing_ok=True)


def build(*, force: bool = False) -> None:
    modules = listed_modules()
    wanted = digests(modules)
    if (
        not force
        and recorded() == wanted
        and shared_library().exists()
        and all(extension_of(module).exists() for module in modules)
    ):
        STAMP.touch()  # the sources are as compiled, if newer: the record is current again
        print(f"native: {len(modules)} modules are current")
        return
    _check_toolchain()
    # Imported here: only a build needs mypy and setuptools.
    from mypyc.build import mypycify
    from setuptools import Distribution

    clean()
    print(f"native: compiling {len(modules)} modules with mypyc ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="drehscheibe-native-") as scratch:
        work = Path(scratch)
        # setuptools reads a pyproject.toml in the working directory: build elsewhere.
        cwd = os.getcwd()
        os.chdir(work)
        try:
            extensions = mypycify(
                [
                    "--config-file",
                    str(ROOT / "pyproject.toml"),
                    *(str(source_of(module)) for module in modules),
                ],
                opt_level="3",
                group_name=GROUP,
                target_dir=str(work / "c"),
            )
            distribution = Distribution({"name": GROUP, "ext_modules": extensions})
            distribution.script_args = [
                "--quiet",
                "build_ext",
                "--build-lib",
                str(work / "lib"),
                "--build-temp",
                str(work / "temp"),
            ]
            distribution.parse_command_line()
            distribution.run_commands()
        except Exception as error:
            raise SystemExit(
                f"native: compiling failed ({error}); NATIVE=0 (make test NATIVE=0) runs the "
                "agent as plain Python"
            ) from error
        finally:
            os.chdir(cwd)
        for built in (work / "lib").rglob("*.so"):
            target = ROOT / built.relative_to(work / "lib")
            # a new file, not the old one overwritten: a running agent has the old one mapped
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(built, partial)
            os.replace(partial, target)
    missing = [module for module in modules if not extension_of(module).exists()]
    if missing:
        raise SystemExit(f"native: mypyc built no extension for {', '.join(missing)}")
    STAMP.write_text(json.dumps({"sources": wanted}, indent=2, sort_keys=True) + "\n")
    print(f"native: {len(modules)} modules compiled")


def _check_toolchain() -> None:
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        raise SystemExit(
            f"native: {include} is missing: install the Python headers (Debian: python3-dev), "
            "or run without the compiled modules (NATIVE=0)"
        )
    compiler = sysconfig.get_config_var("CC") or "cc"
    if shutil.which(compiler.split()[0]) is None:
        raise SystemExit(
            f"native: no C compiler ({compiler}): install one (Debian: gcc), "
            "or run without the compiled modules (NATIVE=0)"
        )


def status() -> int:
    compiled = compiled_modules()
    stale = stale_modules()
    for module in listed_modules():
        state = "stale" if module in stale else "compiled" if module in compiled else "pure Python"
        print(f"{module:40} {state}")
    return 1 if stale else 0


def requirements() -> list[str]:
    """What building a compiled wheel needs installed (besides a C compiler and the Python
    headers): the project's dependencies (mypyc type-checks the modules against them) and the
    `native` extra (the build backend, mypy, setuptools, type stubs)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = config["project"]
    found: list[str] = [*project["dependencies"], *project["optional-dependencies"]["native"]]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=("build", "clean", "status", "requirements"))
    parser.add_argument("--force", action="store_true", help="build even when current")
    args = parser.parse_args()
    if args.command == "build":
        build(force=args.force)
    elif args.command == "clean":
        clean()
        print("native: compiled modules removed")
    elif args.command == "requirements":
        print("\n".join(requirements()))
    else:
        sys.exit(status())


if __name__ == "__main__":
    main()
