"""`ngsi._sqlite`: multi-row inserts, and the adapters it registers for bytes, None and bool."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ngsi._sqlite import chunk_size, insert_rows


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(tmp_path / "rows.db")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB, note TEXT, flag)")
    return connection


def test_bytes_none_and_bool_are_bound_as_without_an_adapter(conn: sqlite3.Connection) -> None:
    for kind in (bytes, type(None), bool):
        assert (kind, sqlite3.PrepareProtocol) in sqlite3.adapters
    body = b'{"id":"urn:ngsi-ld:Device:1"}\x00\xff'
    conn.execute("INSERT INTO t (body, note, flag) VALUES (?, ?, ?)", (body, None, True))
    conn.execute("INSERT INTO t (body, note, flag) VALUES (?, ?, ?)", (b"", "x", False))
    rows = conn.execute(
        "SELECT body, typeof(body), note, typeof(note), flag, typeof(flag) FROM t ORDER BY id"
    ).fetchall()
    assert rows == [
        (body, "blob", None, "null", 1, "integer"),
        (b"", "blob", "x", "text", 0, "integer"),
    ]


def test_insert_rows_writes_every_row_in_order_across_chunks(conn: sqlite3.Connection) -> None:
    size = chunk_size(conn, 3)
    rows = [(bytes([n % 256]) * 3, None if n % 2 else f"n{n}", n % 3 == 0) for n in range(size + 7)]
    insert_rows(conn, "INSERT INTO t (body, note, flag)", rows)
    found = conn.execute("SELECT body, note, flag FROM t ORDER BY id").fetchall()
    assert found == [(body, note, int(flag)) for body, note, flag in rows]
