"""Writing many rows to SQLite in few statements (the embedded broker's and the agent's stores).

`executemany` steps its statement once per row, and Python's sqlite3 lets go of the interpreter
lock around every step. When other threads are busy, one of them takes the lock each time, and
taking it back costs a thread switch: a 1000-row executemany then takes some 30 µs per row
instead of 5, most of it waiting, with the writer's own locks held. `insert_rows` writes the
rows with one multi-row `INSERT ... VALUES (...), (...)` per chunk instead: one step per chunk.

Binding a parameter that is not exactly an int, float or str (a `bytes` body, a None, a bool),
sqlite3 first looks for an adapter in its table and then for `__adapt__` and `__conform__`
attributes, and on Python 3.11 each attribute it does not find costs a formatted AttributeError.
This module registers adapters that return those values as they are (sqlite3 binds them exactly
as without one), so that the table answers at once: about a third of an insert's binding time
for a row with a body.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

__all__ = ["chunk_size", "insert_rows"]


def _none(value: None) -> None:
    return value


sqlite3.register_adapter(bytes, bytes)
sqlite3.register_adapter(type(None), _none)
sqlite3.register_adapter(bool, int)

_MAX_ROWS = 1000
"""Rows per statement at most: larger statements save nothing more."""


def chunk_size(conn: sqlite3.Connection, width: int) -> int:
    """How many rows of `width` values one statement on `conn` can take."""
    return max(1, min(_MAX_ROWS, _variable_limit(conn) // max(width, 1)))


def insert_rows(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], *, tail: str = ""
) -> None:
    """Run `{head} VALUES (?, ...), (?, ...) {tail}` for `rows` (all of one width), in as few
    statements as SQLite's limit on bound values allows. Not atomic by itself when it takes
    more than one statement (see `chunk_size`): run it inside a transaction then."""
    if not rows:
        return
    width = len(rows[0])
    size = chunk_size(conn, width)
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        conn.execute(
            _statement(head, width, len(chunk), tail), [value for row in chunk for value in row]
        )


@functools.lru_cache(maxsize=64)
def _statement(head: str, width: int, count: int, tail: str) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([row] * count)} {tail}".rstrip()


def _variable_limit(conn: sqlite3.Connection) -> int:
    return conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
