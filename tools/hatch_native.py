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

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _native_tool(root: Path) -> ModuleType:
    """tools/native.py as a module (a script, not in a package): the files it builds."""
    spec = importlib.util.spec_from_file_location("drehscheibe_native", root / "tools/native.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class NativeBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        native = _native_tool(root)
        # a process of its own: mypyc and setuptools stay out of the build backend's
        subprocess.run([sys.executable, str(root / "tools" / "native.py"), "build"], check=True)
        built = [native.extension_of(module) for module in native.listed_modules()]
        built.append(native.shared_library())
        for path in built:
            relative = path.relative_to(root).as_posix()
            if not path.is_file():
                raise RuntimeError(f"tools/native.py build left no {relative}")
            build_data["force_include"][str(path)] = relative
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
