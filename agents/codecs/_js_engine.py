"""The JavaScript engine's process: QuickJS contexts served to one agent thread over a pipe.

`agents.codecs._js_host` starts this file as a script (it imports nothing of the project, so it
starts in a few tens of milliseconds) and talks to it through stdin and stdout: frames of a
4-byte big-endian length and a JSON body, one answer per request.

Requests, each naming a context by `key`:

- `{"op": "load", "key", "sources": [...], "function", "time_limit", "memory_limit",
  "stack_limit"}`: a new context with these limits, each source evaluated in turn, then
  `function` looked up;
- `{"op": "defines", "key", "name"}`: whether `name` is a function in the context;
- `{"op": "call", "key", "args": [...]}`: call the context's `function`.

Answers: `{"ok": value}`, `{"unknown": true}` (no context by that key: load it and ask again),
or `{"error": reason, "message": text}` with `reason` one of `timeout`, `memory`,
`stack-overflow`, `js-error`. A context that hit a limit is dropped (the engine may leave it
half-broken). After running out of memory the engine's heap cannot be trusted at all: the
answer then says `"exit": true` and the process ends, so that a damaged engine never runs
another call (QuickJS has been seen to crash the process on a later call after an out of memory
error). At most `MAX_CONTEXTS` contexts are kept, the least recently used dropped first.
"""

from __future__ import annotations

import re
import signal
import struct
import sys
from collections import OrderedDict
from typing import Any, BinaryIO, NamedTuple

import orjson
import quickjs

__all__ = ["MAX_CONTEXTS", "reason_of", "serve"]

MAX_CONTEXTS = 64

_HEADER = struct.Struct(">I")
_THROW_NULL = re.compile(r"\bthrow\s+null\b")


class _Context(NamedTuple):
    context: Any
    function: Any
    throws_null: bool


def reason_of(error: Exception, context: Any, *, throws_null: bool) -> str:
    """Why a call raised `error`: `stack-overflow`, `timeout`, `memory` or `js-error`.

    Out of memory, the engine may not even manage to make its error and throws `null` instead
    (and the memory is often freed again by the time we look): a `null` counts as `memory`
    when the sources never say `throw null`, or when the context's memory is nearly all used.
    """
    first = str(error).partition("\n")[0]
    if isinstance(error, quickjs.StackOverflow) or "stack overflow" in first:
        return "stack-overflow"
    if first == "InternalError: interrupted":
        return "timeout"
    if "out of memory" in first:
        return "memory"
    if str(error).strip() == "null":
        if not throws_null:
            return "memory"
        used = context.memory()
        if used.get("malloc_size", 0) >= 0.9 * used.get("malloc_limit", float("inf")):
            return "memory"
    return "js-error"


def _load(request: dict[str, Any]) -> tuple[_Context | None, dict[str, Any]]:
    context = quickjs.Context()
    context.set_memory_limit(request["memory_limit"])
    context.set_max_stack_size(request["stack_limit"])
    context.set_time_limit(request["time_limit"])
    sources: list[str] = request["sources"]
    throws_null = any(_THROW_NULL.search(source) for source in sources)
    for source in sources:
        try:
            context.eval(source)
        except quickjs.JSException as error:
            reason = reason_of(error, context, throws_null=throws_null)
            return None, {"error": reason, "message": str(error)}
    function = context.get(request["function"])
    return _Context(context, function, throws_null), {"ok": True}


def _answer(contexts: OrderedDict[int, _Context], request: dict[str, Any]) -> dict[str, Any]:
    key: int = request["key"]
    if request["op"] == "load":
        contexts.pop(key, None)
        loaded, answer = _load(request)
        if loaded is not None:
            contexts[key] = loaded
            while len(contexts) > MAX_CONTEXTS:
                contexts.popitem(last=False)
        elif answer["error"] == "memory":
            answer["exit"] = True
        return answer
    entry = contexts.get(key)
    if entry is None:
        return {"unknown": True}
    contexts.move_to_end(key)
    try:
        if request["op"] == "defines":
            name: str = request["name"]
            return {"ok": bool(entry.context.eval(f"typeof {name} === 'function'"))}
        return {"ok": entry.function(*request["args"])}
    except quickjs.JSException as error:
        reason = reason_of(error, entry.context, throws_null=entry.throws_null)
        answer = {"error": reason, "message": str(error)}
        if reason != "js-error":
            del contexts[key]
        if reason == "memory":
            answer["exit"] = True
        return answer


def _read(reader: BinaryIO, size: int) -> bytes | None:
    data = reader.read(size)
    return data if len(data) == size else None


def serve(reader: BinaryIO, writer: BinaryIO) -> None:
    """Answer requests from `reader` on `writer` until `reader` ends or an answer says exit."""
    contexts: OrderedDict[int, _Context] = OrderedDict()
    while True:
        header = _read(reader, _HEADER.size)
        if header is None:
            return
        body = _read(reader, _HEADER.unpack(header)[0])
        if body is None:
            return
        try:
            answer = _answer(contexts, orjson.loads(body))
        except (TypeError, ValueError, KeyError, OverflowError) as error:
            answer = {"error": "js-error", "message": f"{type(error).__name__}: {error}"}
        try:
            data = orjson.dumps(answer)
        except TypeError as error:
            data = orjson.dumps({"error": "js-error", "message": f"bad result: {error}"})
        writer.write(_HEADER.pack(len(data)) + data)
        writer.flush()
        if answer.get("exit"):
            return


if __name__ == "__main__":
    # Interrupts are for the agent, which ends this process by closing its stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
