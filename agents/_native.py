"""Never run compiled modules older than their sources.

`tools/native.py build` compiles the modules listed in pyproject.toml beside their sources and
records them in `drehscheibe__mypyc.json` at the checkout's top; Python then imports the
compiled module before the source. After a source is edited or a `git pull` changes it, the
compiled module would still be imported, and run code the source no longer says.
`use_sources_if_stale()` (run when `agents` is imported, before any of them) notices a listed
source newer than that record and then imports all of them from their sources: the compiled ones
call each other directly, so they are used all together or not at all. It costs a stat per
listed module.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["STAMP", "stale_sources", "use_sources_if_stale"]

STAMP = Path(__file__).resolve().parents[1] / "drehscheibe__mypyc.json"

logger = logging.getLogger("agents")


def stale_sources(stamp: Path = STAMP) -> tuple[list[str], list[str]]:
    """(the modules the last build compiled, those whose source changed after it); both empty
    when nothing was built."""
    try:
        built = stamp.stat().st_mtime
        modules = list(json.loads(stamp.read_text())["sources"])
    except (OSError, ValueError, KeyError, TypeError):
        return [], []
    root = stamp.parent
    stale = []
    for module in modules:
        source = root / (module.replace(".", "/") + ".py")
        try:
            if source.stat().st_mtime > built:
                stale.append(module)
        except OSError:
            stale.append(module)
    return modules, stale


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Finds the listed modules' Python sources, passing over their compiled extensions."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        sources = (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)
        for entry in path or ():
            spec = importlib.machinery.FileFinder(entry, sources).find_spec(fullname, target)
            if spec is not None:
                return spec
        return None


def use_sources_if_stale(stamp: Path = STAMP) -> bool:
    """Import the compiled modules from their sources when any is stale (see the module);
    True when it had to."""
    modules, stale = stale_sources(stamp)
    if not stale:
        return False
    if not any(isinstance(finder, _SourcesFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst(modules))
    logger.warning(
        "%s changed since the hot path was compiled: running every compiled module from its "
        "source (slower); `make native` or `.venv/bin/python tools/native.py build` compiles "
        "them again",
        ", ".join(stale),
    )
    return True
