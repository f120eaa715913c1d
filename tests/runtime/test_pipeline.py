"""The pipeline on real SQLite files and the real registry, profiles, codecs and mapping (no
broker needed): outcomes, group commit, acknowledgement after the commit, retries when the outbox
is full, replays, simulated uplinks."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agents.delivery import DeadLetters, Outbox, UplinkArchive
from agents.mapping import MappingConfig
from agents.profiles import ProfileCatalog
from agents.registry import DeviceState, RegisteredDevice, Registry
from agents.runtime import (
    DeviceMapper,
    Message,
    MessageQueue,
    Outcome,
    Pipeline,
    SourceInfo,
)
from agents.runtime._pipeline import archive_topic, message_from_archive
from tests.e2e.support import lpp, tts_topic, tts_uplink

ACTIVE = "70B3D57ED0000001"
RETIRED = "70B3D57ED0000002"
SOURCE = SourceInfo(
    name="tts", kind="tts", transport="mqtt", tenant="city", simulated_tenant="city-sim"
)


@pytest.fixture
def mapper() -> DeviceMapper:
    registry = Registry(None)
    states: tuple[tuple[str, DeviceState], ...] = ((ACTIVE, "active"), (RETIRED, "decommissioned"))
    for dev_eui, state in states:
        registry._remember(
            RegisteredDevice(
                dev_eui=dev_eui,
                profile="temperature-humidity-lpp",
                measuring_point=f"p-{dev_eui}",
                location={"type": "Point", "coordinates": [13.4, 52.5]},
                state=state,
            )
        )
    return DeviceMapper({"city": registry}, ProfileCatalog(), mapping=MappingConfig())


class Acks:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def __call__(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def message(
    payload: bytes, *, dev_eui: str = ACTIVE, acks: Acks | None = None, source: SourceInfo = SOURCE
) -> Message:
    return Message(
        source=source, payload=payload, received_at=time.time(), topic=tts_topic(dev_eui), ack=acks
    )


def uplink(f_cnt: int, *, dev_eui: str = ACTIVE, **options: Any) -> bytes:
    return tts_uplink(dev_eui, f_cnt, lpp((1, "temperature", 20.0 + f_cnt)), **options)


def test_one_batch_one_transaction_outcomes_in_order_and_acks_after_commit(
    tmp_path: Path, mapper: DeviceMapper
) -> None:
    acks = Acks()
    with (
        Outbox(tmp_path / "outbox.db") as outbox,
        UplinkArchive(tmp_path / "archive.db") as archive,
    ):
        pipeline = Pipeline(MessageQueue(10), outbox, mapper, archive=archive)
        report = pipeline.process(
            [
                message(uplink(1), acks=acks),
                message(uplink(1), acks=acks),  # the same frame again
                message(b"{", acks=acks),
                message(
                    uplink(1, dev_eui="70B3D57EFFFFFFFF"), dev_eui="70B3D57EFFFFFFFF", acks=acks
                ),
                message(uplink(5, dev_eui=RETIRED), dev_eui=RETIRED, acks=acks),
                message(uplink(2), acks=acks),
            ]
        )
        kinds = [o.kind for o in report.outcomes]
        assert kinds == [
            "accepted",
            "duplicate",
            "dead-letter",
            "unknown-device",
            "inactive-device",
            "accepted",
        ]
        assert acks.outcomes == report.outcomes
        assert report.entities == 4  # observation + Device, twice
        items = outbox.items()
        assert {item.tenant for item in items} == {"city"}
        assert {item.entity_id for item in items} == {
            f"urn:ngsi-ld:WeatherObserved:p-{ACTIVE}",
            f"urn:ngsi-ld:Device:{ACTIVE}",
        }
        assert [item.f_cnt for item in items] == [1, 1, 2, 2]
        # the duplicate and the unreadable message are not archived; the unknown device is
        assert sorted((u.dev_eui, u.f_cnt) for u in archive.uplinks()) == [
            (ACTIVE, 1),
            (ACTIVE, 2),
            (RETIRED, 5),
            ("70B3D57EFFFFFFFF", 1),
        ]
        [letter] = DeadLetters(outbox.db).list()
        assert letter.reason == "malformed-uplink"
        assert letter.payload == b"{"
        assert letter.detail is not None
        assert letter.detail["topic"] == tts_topic(ACTIVE)
        counters = pipeline.counters
        assert counters.uplinks[("tts", "accepted")] == 2
        assert counters.parse_errors[("tts", "malformed-json")] == 1
        assert counters.batches == 1


def test_a_full_outbox_acknowledges_nothing_and_the_worker_retries(
    tmp_path: Path, mapper: DeviceMapper
) -> None:
    acks = Acks()
    queue = MessageQueue(10)
    with Outbox(tmp_path / "outbox.db", max_depth=3) as outbox:
        pipeline = Pipeline(queue, outbox, mapper, retry_pause=0.05, batch_wait=0)
        with pytest.raises(Exception, match="max_depth"):
            pipeline.process([message(uplink(1)), message(uplink(2))])
        # nothing stayed: neither entities nor the frame counters' verdicts
        assert outbox.depth == 0
        assert outbox.frames.device(ACTIVE) is None
        pipeline.start()
        try:
            queue.put(message(uplink(1), acks=acks))
            queue.put(message(uplink(2), acks=acks))
            deadline = time.monotonic() + 10
            while pipeline.counters.commit_failures == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert pipeline.counters.commit_failures >= 1
            assert acks.outcomes == []
            assert pipeline.last_error is not None
            with outbox.lease(10) as tx:  # the broker takes what is there: room again
                tx.accept([item.id for item in tx.items])
            outbox.max_depth = 10
            while not acks.outcomes and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [o.kind for o in acks.outcomes] == ["accepted", "accepted"]
            assert pipeline.last_error is None
        finally:
            pipeline.stop()


def test_a_replay_skips_duplicate_detection_and_the_archive(
    tmp_path: Path, mapper: DeviceMapper
) -> None:
    with (
        Outbox(tmp_path / "outbox.db") as outbox,
        UplinkArchive(tmp_path / "archive.db") as archive,
    ):
        pipeline = Pipeline(MessageQueue(10), outbox, mapper, archive=archive)
        pipeline.process([message(uplink(7))])
        again = pipeline.process([message(uplink(7))], replay=True)
        assert [o.kind for o in again.outcomes] == ["accepted"]
        assert archive.count() == 1
        assert outbox.depth == 4


def test_simulated_uplinks_are_kept_apart_or_dropped(tmp_path: Path, mapper: DeviceMapper) -> None:
    dropping = SourceInfo(name="tts", kind="tts", transport="mqtt", tenant="city", simulated="drop")
    with Outbox(tmp_path / "outbox.db") as outbox:
        pipeline = Pipeline(MessageQueue(10), outbox, mapper)
        report = pipeline.process(
            [
                message(uplink(0, simulated=True)),
                message(uplink(0, simulated=True), source=dropping),
                message(uplink(0)),  # the real frame 0 is not a duplicate of the simulated one
            ]
        )
        assert [o.kind for o in report.outcomes] == ["accepted", "simulated-dropped", "accepted"]
        assert sorted({item.tenant for item in outbox.items()}, key=str) == ["city", "city-sim"]


def test_webhook_path_variables_survive_the_archive() -> None:
    original = Message(
        source=SOURCE,
        payload=b"{}",
        received_at=1.0,
        event="up",
        path_vars={"devEUI": ACTIVE, "devID": "a b&c"},
    )
    topic = archive_topic(original)
    assert topic is not None
    assert topic.startswith("?")
    back = message_from_archive(source=SOURCE, payload=b"{}", topic=topic, received_at=1.0)
    assert back.event == "up"
    assert back.path_vars == {"devEUI": ACTIVE, "devID": "a b&c"}
    assert back.topic is None
    mqtt = message_from_archive(
        source=SOURCE, payload=b"{}", topic="v3/a/devices/b/up", received_at=1.0
    )
    assert mqtt.topic == "v3/a/devices/b/up"


def test_the_queue_bounds_and_batches() -> None:
    queue = MessageQueue(3)
    for n in range(3):
        assert queue.put(message(str(n).encode()))
    assert not queue.put(message(b"overflow"))
    assert [m.payload for m in queue.take(2, timeout=0.1)] == [b"0", b"1"]
    assert [m.payload for m in queue.take(5, timeout=0.1, max_wait=0.01)] == [b"2"]
    assert queue.take(5, timeout=0.05) == []
    queue.close()
    assert not queue.put(message(b"late"))


def test_chirpstack_v3_in_both_marshalers(tmp_path: Path, mapper: DeviceMapper) -> None:
    import base64

    import orjson

    frame = base64.b64encode(lpp((1, "temperature", 19.0))).decode()
    common = {
        "applicationID": "7",
        "applicationName": "sensors",
        "deviceName": "garden",
        "txInfo": {"frequency": 868100000, "dr": 5},
        "fPort": 1,
        "data": frame,
    }
    json_v3 = {
        **common,
        "devEUI": ACTIVE.lower(),
        "fCnt": 3,
        "rxInfo": [{"gatewayID": "0303030303030303", "rssi": -48, "loRaSNR": 9}],
        "object": {"temperature_1": 19.0},
    }
    protobuf_json = {
        **common,
        "devEUI": base64.b64encode(bytes.fromhex(ACTIVE)).decode(),
        "fCnt": 4,
        "rxInfo": [{"gatewayID": "AwMDAwMDAwM=", "rssi": -50, "loRaSNR": 8}],
        "objectJSON": '{"temperature_1": 19.0}',
    }
    v3 = SourceInfo(name="cs3", kind="chirpstack-v3", transport="mqtt", tenant="city")
    topic = f"application/7/device/{ACTIVE.lower()}/event/up"
    with Outbox(tmp_path / "outbox.db") as outbox:
        pipeline = Pipeline(MessageQueue(10), outbox, mapper)
        report = pipeline.process(
            [
                Message(source=v3, payload=orjson.dumps(body), received_at=time.time(), topic=topic)
                for body in (json_v3, protobuf_json)
            ]
        )
        assert [o.kind for o in report.outcomes] == ["accepted", "accepted"]
        assert [item.f_cnt for item in outbox.items()] == [3, 3, 4, 4]


def test_starting_the_pipeline_tunes_the_garbage_collector_once(tmp_path: Path) -> None:
    # in a process of its own: the collector's settings belong to the whole process
    script = f"""
import gc
from agents.delivery import Outbox
from agents.runtime import MessageQueue, Pipeline
from agents.runtime._pipeline import GC_THRESHOLD, tune_gc

assert gc.get_threshold()[0] < GC_THRESHOLD and gc.get_freeze_count() == 0
kept = [[n] for n in range(1000)]  # alive at start-up: frozen
with Outbox({str(tmp_path / "outbox.db")!r}) as outbox:
    pipeline = Pipeline(MessageQueue(10), outbox, None)  # the mapper is not needed to start
    pipeline.start()
    pipeline.stop()
assert gc.get_threshold()[0] == GC_THRESHOLD, gc.get_threshold()
assert gc.get_freeze_count() >= len(kept)
assert tune_gc() is False  # once per process
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
