"""The temporal history's storage: one row per recorded change, instanceIds that stay the same
across reads, restarts and purges, and history files of the earlier layout read as before."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ngsi.broker._events import EntityChange
from ngsi.broker._temporal import History, TemporalQuery

LEVEL = "https://example.org/level"
NAME = "https://example.org/name"
KIND = "https://example.org/Tank"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def updated(
    entity_id: str,
    moment: datetime,
    level: float,
    *,
    name: str | None = None,
    observed: datetime | None = None,
) -> Any:
    """An `updated` change that wrote `level` (observed at `observed`, else `moment`) and
    `name` when given, at `moment`."""
    at = stamp(moment)
    seen = stamp(observed or moment)
    doc: dict[str, Any] = {
        "id": entity_id,
        "type": KIND,
        LEVEL: {"type": "Property", "value": level, "observedAt": seen, "modifiedAt": at},
        "modifiedAt": at,
    }
    changed = {LEVEL}
    if name is not None:
        doc[NAME] = {"type": "Property", "value": name, "modifiedAt": at}
        changed.add(NAME)
    return EntityChange(
        tenant=None,
        kind="updated",
        entity_id=entity_id,
        entity_types=(KIND,),
        before=doc,
        after=doc,
        changed_attributes=frozenset(changed),
        at=moment,
    )


def levels(history: History, entity_id: str, **query: Any) -> list[tuple[Any, str]]:
    entity = history.retrieve(None, entity_id, TemporalQuery(**query))
    return [(i["value"], i["instanceId"]) for i in entity.get(LEVEL, [])]


def test_instance_ids_stay_the_same_across_reads_restarts_and_purges(tmp_path: Path) -> None:
    start = datetime(2024, 6, 1, tzinfo=UTC)
    history = History(tmp_path, retention=timedelta(days=3))
    history.start()
    try:
        for day in range(5):
            history.entity_changed(
                updated("urn:ngsi-ld:Tank:1", start + timedelta(days=day), day, name=f"n{day}")
            )
        history.caught_up()
        first = levels(history, "urn:ngsi-ld:Tank:1")
        assert [value for value, _ in first] == [0, 1, 2, 3, 4]
        assert len({instance_id for _, instance_id in first}) == 5
        names = history.retrieve(None, "urn:ngsi-ld:Tank:1", TemporalQuery())[NAME]
        assert not {i["instanceId"] for i in names} & {i for _, i in first}
        assert levels(history, "urn:ngsi-ld:Tank:1") == first
        assert levels(history, "urn:ngsi-ld:Tank:1", last_n=2) == first[-2:]
    finally:
        history.stop()

    again = History(tmp_path, retention=timedelta(days=3))
    again.start()
    try:
        assert levels(again, "urn:ngsi-ld:Tank:1") == first
        # Levels count from their observedAt, names (without one) from when they were recorded:
        # those of the first two days go, each change keeps the rest.
        assert again.purge(now=start + timedelta(days=5)) == 4
        assert levels(again, "urn:ngsi-ld:Tank:1") == first[2:]
        kept = again.retrieve(None, "urn:ngsi-ld:Tank:1", TemporalQuery())[NAME]
        assert [i["value"] for i in kept] == ["n2", "n3", "n4"]
        assert [i["instanceId"] for i in kept] == [i["instanceId"] for i in names[2:]]
        again.entity_changed(updated("urn:ngsi-ld:Tank:1", start + timedelta(days=6), 6))
        again.caught_up()
        newest = levels(again, "urn:ngsi-ld:Tank:1")
        assert newest[:-1] == first[2:]
        assert newest[-1][1] not in {i for _, i in first}
    finally:
        again.stop()


def test_a_purge_keeps_the_other_instances_of_a_change_as_they_were(tmp_path: Path) -> None:
    now = datetime(2024, 6, 10, tzinfo=UTC)
    history = History(tmp_path, retention=timedelta(days=3))
    history.start()
    try:
        # A buffered reading observed long ago, written together with a fresh name.
        history.entity_changed(
            updated("urn:ngsi-ld:Tank:2", now, 1.0, name="fresh", observed=now - timedelta(days=9))
        )
        history.caught_up()
        before = history.retrieve(None, "urn:ngsi-ld:Tank:2", TemporalQuery())
        assert history.purge(now=now) == 1
        after = history.retrieve(None, "urn:ngsi-ld:Tank:2", TemporalQuery())
        assert LEVEL not in after
        assert after[NAME] == before[NAME]
        assert history.purge(now=now) == 0
    finally:
        history.stop()


def test_a_history_file_of_the_earlier_layout_is_read_as_before(tmp_path: Path) -> None:
    folder = tmp_path / "history"
    folder.mkdir()
    conn = sqlite3.connect(folder / "default.sqlite")
    conn.executescript(
        """
        CREATE TABLE entity (entity_id TEXT PRIMARY KEY, types TEXT NOT NULL,
                             first_seq INTEGER NOT NULL);
        CREATE TABLE entity_type (type TEXT NOT NULL, entity_id TEXT NOT NULL,
                                  PRIMARY KEY (type, entity_id)) WITHOUT ROWID;
        CREATE TABLE instance (seq INTEGER PRIMARY KEY AUTOINCREMENT, entity_id TEXT NOT NULL,
                               attr TEXT NOT NULL, dataset_id TEXT NOT NULL, observed_at TEXT,
                               recorded_at TEXT NOT NULL, doc BLOB NOT NULL);
        CREATE INDEX instance_by_entity ON instance (entity_id, attr, seq);
        CREATE INDEX instance_by_time ON instance (recorded_at);
        """
    )
    conn.execute(
        "INSERT INTO entity VALUES (?, ?, ?)",
        ("urn:ngsi-ld:Tank:old", orjson.dumps([KIND]), 1),
    )
    conn.execute("INSERT INTO entity_type VALUES (?, ?)", (KIND, "urn:ngsi-ld:Tank:old"))
    for hour, value in ((9, 1.5), (8, 0.5), (10, 2.5)):
        observed = f"2024-05-01T{hour:02d}:00:00.000000Z"
        doc = {
            "type": "Property",
            "value": value,
            "observedAt": f"2024-05-01T{hour:02d}:00:00Z",
            "instanceId": f"urn:ngsi-ld:attribute:instance:old-{hour}",
        }
        conn.execute(
            "INSERT INTO instance (entity_id, attr, dataset_id, observed_at, recorded_at, doc) "
            "VALUES (?, ?, '', ?, ?, ?)",
            (
                "urn:ngsi-ld:Tank:old",
                LEVEL,
                observed,
                "2024-05-02T00:00:00.000000Z",
                orjson.dumps(doc),
            ),
        )
    conn.commit()
    conn.close()

    history = History(tmp_path)
    history.start()
    try:
        assert levels(history, "urn:ngsi-ld:Tank:old") == [
            (0.5, "urn:ngsi-ld:attribute:instance:old-8"),
            (1.5, "urn:ngsi-ld:attribute:instance:old-9"),
            (2.5, "urn:ngsi-ld:attribute:instance:old-10"),
        ]
        later = levels(
            history, "urn:ngsi-ld:Tank:old", timerel="after", time_at="2024-05-01T08:30:00.000000Z"
        )
        assert [value for value, _ in later] == [1.5, 2.5]
        found, total = history.query(None, TemporalQuery(types=[[KIND]]))
        assert total == 1
        assert found[0]["id"] == "urn:ngsi-ld:Tank:old"
        history.entity_changed(
            updated("urn:ngsi-ld:Tank:old", datetime(2024, 5, 1, 11, tzinfo=UTC), 3.5)
        )
        history.caught_up()
        assert [v for v, _ in levels(history, "urn:ngsi-ld:Tank:old")] == [0.5, 1.5, 2.5, 3.5]
    finally:
        history.stop()
    tables = sqlite3.connect(folder / "default.sqlite").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    )
    assert "instance" not in {row[0] for row in tables}
