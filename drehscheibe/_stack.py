"""A small supervisor for the demo: child processes started in order, stopped in reverse.

Every child is a real `drehscheibe ...` (or Mosquitto) process in its own process group, so
Ctrl-C on the demo leaves nothing behind: `stop()` sends SIGTERM, waits, then SIGKILLs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["Stack", "StackError"]


class StackError(RuntimeError):
    """A child did not start; the message says which and shows the end of its log."""


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Stack:
    """Children of one run; logs go to `log_dir/<name>.log`."""

    log_dir: Path
    children: list[_Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.children.append(_Child(name=name, process=process, log=log))
        return process

    def start_drehscheibe(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        return self.start(name, [sys.executable, "-m", "drehscheibe", *args])

    def wait_http(self, name: str, url: str, *, timeout: float = 30.0) -> None:
        """Wait until `url` answers; fail with the child's log if it died or stayed silent."""
        child = next(c for c in self.children if c.name == name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise StackError(
                    f"{name} exited with {child.process.returncode}:\n{self.tail(name)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1.0).status_code < 500:
                    return
            time.sleep(0.1)
        raise StackError(
            f"{name} did not answer on {url} within {timeout:.0f} s:\n{self.tail(name)}"
        )

    def tail(self, name: str, lines: int = 20) -> str:
        child = next(c for c in self.children if c.name == name)
        text = child.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def dead(self) -> list[str]:
        """Names of children that have exited."""
        return [c.name for c in self.children if c.process.poll() is not None]

    def stop(self, *, grace: float = 10.0) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        self.children.clear()
