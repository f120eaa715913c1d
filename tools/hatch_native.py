"""Hatch build hook: a wheel whose hot path is compiled (tools/native.py), for the image.

Off by default: `pip install .` and `pip wheel .` build the pure-Python wheel. With
`HATCH_BUILD_HOOK_ENABLE_CUSTOM=true` (the Dockerfile's build stage sets it) a wheel build runs
`tools/native.py build` in the source tree, adds the compiled modules and their shared library
to the wheel and tags it for this interpreter and platform, so that pip installs it only where
it runs. The build's record (`drehscheibe__mypyc.json`) stays out: in an installed wheel the
sources and the compiled modules come together. The build needs what `tools/native.py
requirements` lists installed in the building Python (so: `pip wheel --no-build-isolation`),
a C compiler and the Python headers.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class NativeBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        subprocess.run([sys.executable, str(root / "tools" / "native.py"), "build"], check=True)
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        config = tomllib.loads((root / "pyproject.toml").read_text())
        modules: list[str] = config["tool"]["drehscheibe"]["native"]["modules"]
        compiled = [module.replace(".", "/") + suffix for module in modules]
        compiled.append(f"drehscheibe__mypyc{suffix}")
        for relative in compiled:
            path = root / relative
            if not path.is_file():
                raise RuntimeError(f"tools/native.py build left no {relative}")
            build_data["force_include"][str(path)] = relative
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
