"""The downlink records and network identities in SQLite; choosing the source and topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.downlink import (
    Downlink,
    DownlinkError,
    DownlinkOutcome,
    DownlinkStore,
    MqttConnection,
    NetworkIdentity,
    resolve_identity,
)

EUI = "0004A30B001C0530"


def outcome(kind: str, status: str, **changes: object) -> DownlinkOutcome:
    values: dict[str, object] = {
        "kind": kind,
        "status": status,
        "record_id": None,
        "dev_eui": EUI,
        "device_id": None,
        "application_id": None,
        "f_port": None,
        "confirmed": None,
        "detail": kind,
        "received_at": None,
        "anonymous": True,
    }
    values.update(changes)
    return DownlinkOutcome(**values)  # type: ignore[arg-type]


def test_status_only_moves_forward(tmp_path: Path) -> None:
    with DownlinkStore.in_data_dir(tmp_path) as store:
        downlink = Downlink(dev_eui=EUI, f_port=10, payload=b"\x01", confirmed=True)
        store.add(downlink, actor="cli:test")
        sent = store.set_status(downlink.id, "SENT", detail="sent", event={"event": "sent"})
        assert sent is not None
        assert sent.status == "SENT"
        late = store.set_status(downlink.id, "PENDING", detail="queued", event={"event": "queued"})
        assert late is not None
        assert (late.status, late.detail) == ("SENT", "sent")
        acked = store.set_status(downlink.id, "ACKED", detail="acked", event={"event": "ack"})
        assert acked is not None
        failed = store.set_status(downlink.id, "FAILED", event={"event": "failed"})
        assert failed is not None
        assert failed.status == "ACKED"
        assert [e["event"] for e in failed.events] == ["sent", "queued", "ack", "failed"]
    # another process (the CLI) reads the same file
    with DownlinkStore(tmp_path / "downlinks.db") as again:
        (record,) = again.list(EUI)
        assert (record.status, record.actor, record.payload) == ("ACKED", "cli:test", b"\x01")
        assert again.list("0000000000000001") == []


def test_events_without_an_id_match_the_newest_open_downlink(tmp_path: Path) -> None:
    with DownlinkStore.in_data_dir(tmp_path) as store:
        old = Downlink(dev_eui=EUI, f_port=10, payload=b"\x01", confirmed=True)
        new = Downlink(dev_eui=EUI, f_port=10, payload=b"\x02", confirmed=True)
        unconfirmed = Downlink(dev_eui=EUI, f_port=11, payload=b"\x03")
        for item in (old, new, unconfirmed):
            store.add(item, actor="t")
        assert store.match(outcome("ack", "ACKED")) == new.id
        assert store.match(outcome("sent", "SENT", f_port=11)) == unconfirmed.id
        assert store.match(outcome("ack", "ACKED", record_id=old.id)) == old.id
        assert store.match(outcome("ack", "ACKED", dev_eui="0000000000000001")) is None
        # an event that names other downlinks only (another application's) matches none
        assert store.match(outcome("ack", "ACKED", anonymous=False)) is None
        store.learn(
            NetworkIdentity(dev_eui=EUI, source="tts", network_server="tts", device_id="th-1")
        )
        by_device = outcome("ack", "ACKED", dev_eui=None, device_id="th-1")
        assert store.match(by_device) == new.id


def connection(name: str, kind: str, **changes: object) -> MqttConnection:
    values: dict[str, object] = {
        "source": name,
        "network_server": kind,
        "host": "127.0.0.1",
        "port": 1883,
    }
    values.update(changes)
    return MqttConnection(**values)  # type: ignore[arg-type]


def test_resolve_identity(tmp_path: Path) -> None:
    with DownlinkStore.in_data_dir(tmp_path) as store:
        one = {"tts": connection("tts", "tts", application="city", ns_tenant="stadt")}
        guessed = resolve_identity(store, EUI, one, device_id="th-1")
        assert (guessed.application_id, guessed.ns_tenant, guessed.device_id) == (
            "city",
            "stadt",
            "th-1",
        )
        two = {**one, "cs": connection("cs", "chirpstack-v4")}
        with pytest.raises(DownlinkError, match="--source"):
            resolve_identity(store, EUI, two)
        assert store.learn(
            NetworkIdentity(
                dev_eui=EUI, source="cs", network_server="chirpstack-v4", application_id="a1"
            )
        )
        assert not store.learn(
            NetworkIdentity(
                dev_eui=EUI, source="cs", network_server="chirpstack-v4", application_id="a1"
            )
        )
        learned = resolve_identity(store, EUI, two)
        assert (learned.source, learned.application_id) == ("cs", "a1")
        with pytest.raises(DownlinkError, match="no MQTT source named 'x'"):
            resolve_identity(store, EUI, two, source="x")
        # a device heard through another source, then back through the first: the last wins
        at = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
        moves = [("tts", "tts", "th-1"), ("cs", "chirpstack-v4", None), ("tts", "tts", "th-1")]
        for minute, (name, kind, device_id) in enumerate(moves):
            store.learn(
                NetworkIdentity(
                    dev_eui=EUI, source=name, network_server=kind, application_id="a1",
                    device_id=device_id, seen_at=at + timedelta(minutes=minute),
                )
            )  # fmt: skip
        assert resolve_identity(store, EUI, two).source == "tts"
        v3 = {"v3": connection("v3", "chirpstack-v3")}
        with pytest.raises(DownlinkError, match="no MQTT source of"):
            resolve_identity(store, EUI, v3)


def test_a_restart_remembers_the_identities_it_learned(tmp_path: Path) -> None:
    at = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    moves = [("tts", "tts", "th-1"), ("cs", "chirpstack-v4", None)]
    with DownlinkStore.in_data_dir(tmp_path) as store:
        for minute, (name, kind, device_id) in enumerate(moves):
            assert store.learn(
                NetworkIdentity(
                    dev_eui=EUI, source=name, network_server=kind, application_id="a1",
                    device_id=device_id, seen_at=at + timedelta(minutes=minute),
                )
            )  # fmt: skip
        assert store.knows(EUI, "cs", "chirpstack-v4", "a1", None, None)
    with DownlinkStore.in_data_dir(tmp_path) as store:
        # the last identity heard is known: hearing it again writes nothing
        assert store.knows(EUI, "cs", "chirpstack-v4", "a1", None, None)
        assert not store.knows(EUI, "tts", "tts", "a1", "th-1", None)
        again = NetworkIdentity(
            dev_eui=EUI, source="cs", network_server="chirpstack-v4", application_id="a1"
        )
        assert not store.learn(again)
        back = NetworkIdentity(
            dev_eui=EUI, source="tts", network_server="tts", application_id="a1",
            device_id="th-1", seen_at=at + timedelta(minutes=2),
        )  # fmt: skip
        assert store.learn(back)
        assert store.identities(EUI)[0].source == "tts"


def test_the_publishers_outcome_comes_before_the_network_servers_answers(tmp_path: Path) -> None:
    # the network server can answer (txack) before the publisher hears its PUBACK and records it
    with DownlinkStore.in_data_dir(tmp_path) as store:
        downlink = Downlink(dev_eui=EUI, f_port=10, payload=b"\x01", confirmed=True)
        store.add(downlink, actor="cli:test")
        store.set_status(downlink.id, "SENT", detail="sent", event={"event": "txack"})
        record = store.set_status(
            downlink.id, "PENDING", detail="published", event={"event": "published"}, first=True
        )
        assert record is not None
        assert (record.status, record.detail) == ("SENT", "sent")
        assert [e["event"] for e in record.events] == ["published", "txack"]
