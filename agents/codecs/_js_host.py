"""The agent's side of the JavaScript engine: one engine process per thread that runs codecs.

QuickJS can crash its whole process after a script ran it out of memory, so codecs never run
inside the agent: each thread that calls one talks to its own engine process
(`agents.codecs._js_engine`, started on the thread's first call, restarted after it ended or
died, ended when the thread's engine is collected or the interpreter exits). A thread keeps
its own contexts, as QuickJS wants, and an engine that dies takes no reading with it: the call
fails with `JavaScriptError("engine-crash")` and the next call gets a new engine.
"""

from __future__ import annotations

import itertools
import os
import select
import struct
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import orjson

__all__ = ["JavaScriptError", "ask", "new_key"]

_HEADER = struct.Struct(">I")
_ENGINE = str(Path(__file__).with_name("_js_engine.py"))
_STARTUP = 5.0
"""Seconds an engine may take beyond a call's own time limit (starting, loading a codec)."""

_keys = itertools.count(1)


class JavaScriptError(Exception):
    """A script failed in the engine: `reason` is `timeout`, `memory`, `stack-overflow`,
    `js-error` or `engine-crash`; `loading` tells a failure while evaluating the sources from
    one in a call. `str()` is the engine's message (the exception and its JavaScript stack)."""

    def __init__(self, reason: str, message: str, *, loading: bool = False):
        super().__init__(message)
        self.reason = reason
        self.loading = loading


def new_key() -> int:
    """A key naming one set of sources in every thread's engine."""
    return next(_keys)


def _stop(process: subprocess.Popen[bytes]) -> None:
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _Engine:
    """One engine process, used by one thread only."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def exchange(self, request: dict[str, Any], *, wait: float) -> dict[str, Any]:
        process = self._running()
        assert process.stdin is not None
        assert process.stdout is not None
        body = orjson.dumps(request)
        try:
            process.stdin.write(_HEADER.pack(len(body)) + body)
            process.stdin.flush()
            answer: dict[str, Any] = orjson.loads(self._receive(process, wait))
        except (BrokenPipeError, EOFError):
            self.close()
            raise JavaScriptError(
                "engine-crash",
                f"the JavaScript engine's process ended ({_ended(process)}) during the call",
            ) from None
        except TimeoutError:
            process.kill()
            self.close()
            raise JavaScriptError(
                "timeout", f"the JavaScript engine did not answer within {wait:g} s"
            ) from None
        if answer.get("exit"):
            self.close()
        return answer

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._process = None
        self._finalizer = None

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self.close()
            self._process = subprocess.Popen(
                [sys.executable, _ENGINE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
            )
            self._finalizer = weakref.finalize(self, _stop, self._process)
        return self._process

    @staticmethod
    def _receive(process: subprocess.Popen[bytes], wait: float) -> bytes:
        """One answer's body (the engine writes each answer in one piece, so one read of the
        pipe usually holds it all)."""
        assert process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + wait
        data = b""
        size = -1
        while size < 0 or len(data) < _HEADER.size + size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError
            data += chunk
            if size < 0 and len(data) >= _HEADER.size:
                size = _HEADER.unpack_from(data)[0]
        return data[_HEADER.size :]


def _ended(process: subprocess.Popen[bytes]) -> str:
    try:
        code = process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        return "still running"
    return f"signal {-code}" if code < 0 else f"exit status {code}"


_local = threading.local()


def ask(load: dict[str, Any], request: dict[str, Any], *, wait: float) -> Any:
    """Send `request` to this thread's engine and return its `ok` value; when the engine does
    not know the request's context, send `load` first. Raises `JavaScriptError` (with `loading`
    set when `load` failed)."""
    engine: _Engine | None = getattr(_local, "engine", None)
    if engine is None:
        engine = _local.engine = _Engine()
    wait += _STARTUP
    answer = engine.exchange(request, wait=wait)
    if answer.get("unknown"):
        loaded = engine.exchange(load, wait=wait)
        if "error" in loaded:
            raise JavaScriptError(loaded["error"], loaded["message"], loading=True)
        answer = engine.exchange(request, wait=wait)
    if "error" in answer:
        raise JavaScriptError(answer["error"], answer["message"])
    return answer["ok"]
