"""A small supervisor for the demo: child processes started in order, stopped in reverse.

Every child is a real `drehscheibe ...` (or Mosquitto) process in its own process group, so
Ctrl-C on the demo leaves nothing behind: `stop()` sends SIGTERM, waits, then SIGKILLs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
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

    def start(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `argv` in its own session (Ctrl-C on the terminal does not reach it: `stop()`
        does), output appended to `log_dir/<name>.log`; `env` adds to the environment."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=None if env is None else {**os.environ, **env},
            )
        self.children.append(_Child(name=name, process=process, log=log))
        return process

    def start_drehscheibe(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        return self.start(name, [sys.executable, "-m", "drehscheibe", *args], env=env)

    def run_drehscheibe(
        self, name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
    ) -> None:
        """Run a one-shot `drehscheibe ...` to its end; raise StackError (with its log) unless
        it exits with 0. While it runs it is a child like the others (`stop()` ends it)."""
        process = self.start_drehscheibe(name, *args, env=env)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StackError(
                f"{name} did not finish within {timeout:.0f} s:\n{self.tail(name)}"
            ) from None
        if code != 0:
            raise StackError(f"{name} exited with {code}:\n{self.tail(name)}")
        self.children = [c for c in self.children if c.process is not process]

    def wait_port(self, name: str, port: int, *, timeout: float = 30.0) -> None:
        """Wait until something listens on 127.0.0.1:`port`; fail with the child's log."""
        child = next(c for c in self.children if c.name == name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise StackError(
                    f"{name} exited with {child.process.returncode}:\n{self.tail(name)}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise StackError(
            f"{name} did not listen on 127.0.0.1:{port} within {timeout:.0f} s:\n{self.tail(name)}"
        )

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

    def stop(self, *, grace: float = 15.0) -> None:
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
