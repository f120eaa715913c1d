"""Simulated messages against the agent's own parsers and codecs, and the vectors' shapes."""

from __future__ import annotations

import base64
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.codecs import CodecError
from agents.lorawan import Uplink, UplinkError, parse_message
from agents.profiles import DeviceProfile, ProfileCatalog
from agents.simulator import (
    CORRUPTIONS,
    NS_DECODED_PROFILES,
    SUPPORTED_PROFILES,
    Fleet,
    FrameCounters,
    SimulatedMessage,
    Simulator,
    build_fleet,
    distance_m,
    iter_messages,
)

START = datetime(2024, 6, 11, 6, 30, tzinfo=UTC)
CATALOG = ProfileCatalog()


def _fleet(network_server: str, *, tenant: str | bool | None = False) -> Fleet:
    fleet = build_fleet(98, seed=21, network_server=network_server)  # type: ignore[arg-type]
    return fleet if tenant is False else fleet.revised(tenant=tenant)


def _messages(fleet: Fleet, count: int, **options: Any) -> list[SimulatedMessage]:
    simulator = Simulator(fleet, **options)
    return list(simulator.messages(count, start=START, interval=7.0))


def _uplink(message: SimulatedMessage) -> Uplink:
    parsed = parse_message(message.network_server, message.topic, message.payload)
    assert isinstance(parsed, Uplink)
    return parsed


def _check_profile_names(profile: DeviceProfile, names: set[str]) -> None:
    """Every attribute the profile maps finds one of its sources among `names`."""
    specs = [s for entity in profile.entities for s in entity.attributes.values()]
    specs += list(profile.device.attributes.values())
    for spec in specs:
        assert set(spec.source) & names, (profile.name, spec.source, sorted(names))
    if profile.time.field:
        assert profile.time.field in names


@pytest.mark.parametrize("network_server", ["tts", "chirpstack-v4"])
def test_every_message_passes_the_parsers_and_decodes_to_the_profile_measurements(
    network_server: str,
) -> None:
    fleet = _fleet(network_server)
    seen: set[str] = set()
    for message in _messages(fleet, 3 * len(fleet.devices)):
        device = fleet.device(message.dev_eui)
        uplink = _uplink(message)
        assert uplink.source == network_server
        assert uplink.dev_eui == device.dev_eui
        assert uplink.device_id == device.device_id
        assert uplink.f_cnt == message.f_cnt
        assert uplink.f_port == message.reading.f_port
        assert uplink.payload == message.reading.payload
        assert uplink.frequency in (868_100_000, 868_300_000, 868_500_000) or (
            867_100_000 <= (uplink.frequency or 0) <= 867_900_000
        )
        assert uplink.spreading_factor in range(7, 13)
        assert uplink.bandwidth == 125_000
        assert uplink.gateways, "at least one gateway"
        assert uplink.received_at is not None
        assert uplink.gateway_time is not None
        assert uplink.received_at >= uplink.gateway_time
        assert uplink.gateway_time == message.at
        assert not uplink.warnings
        assert not uplink.simulated, "published like a real device"
        if message.profile in NS_DECODED_PROFILES:
            assert uplink.decoded == message.reading.decoded
        else:
            assert uplink.decoded is None
        measurements = CATALOG.codec(message.profile).decode(
            uplink.payload or b"", f_port=uplink.f_port or 0, uplink=uplink
        )
        _check_profile_names(CATALOG.get(message.profile), set(measurements))
        seen.add(message.profile)
    assert seen == set(SUPPORTED_PROFILES)


def test_topics_are_the_network_servers() -> None:
    tts = _messages(_fleet("tts"), 5)
    for message in tts:
        assert message.topic == f"v3/city-sensors@ttn/devices/{message.device_id}/up"
    open_source = _messages(_fleet("tts", tenant=None), 5)
    assert open_source[0].topic == f"v3/city-sensors/devices/{open_source[0].device_id}/up"
    assert _uplink(open_source[0]).tenant is None
    assert _uplink(tts[0]).tenant == "ttn"
    fleet = _fleet("chirpstack-v4")
    for message in _messages(fleet, 5):
        assert message.topic == (
            f"application/{fleet.application_uuid}/device/{message.dev_eui.lower()}/event/up"
        )
        body = orjson.loads(message.payload)
        assert body["deviceInfo"]["devEui"] == message.dev_eui.lower()
        assert isinstance(body["txInfo"]["frequency"], int)
        assert _uplink(message).device_profile == message.profile


def test_the_things_stack_spells_values_its_way() -> None:
    for message in _messages(_fleet("tts"), 2 * 98):
        body = orjson.loads(message.payload)
        up = body["uplink_message"]
        assert body["end_device_ids"]["dev_eui"] == message.dev_eui
        assert body["end_device_ids"]["dev_eui"].isupper()
        assert isinstance(up["settings"]["frequency"], str)
        assert ("f_cnt" in up) == (message.f_cnt != 0), "f_cnt is omitted when it is 0"
        assert base64.b64decode(up["frm_payload"]) == message.reading.payload
        assert up["consumed_airtime"].endswith("s")
        assert 0.02 < float(up["consumed_airtime"][:-1]) < 2.0
        for rx in up["rx_metadata"]:
            assert rx["channel_rssi"] == rx["rssi"]
            assert "channel_index" not in rx or rx["channel_index"] > 0
        assert body["received_at"].endswith("Z")


def test_chirpstack_leaves_out_default_values() -> None:
    for message in _messages(_fleet("chirpstack-v4"), 2 * 98):
        body = orjson.loads(message.payload)
        assert ("fCnt" in body) == (message.f_cnt != 0)
        assert ("dr" in body) == (body["txInfo"]["modulation"]["lora"]["spreadingFactor"] != 12)
        assert "confirmed" not in body
        assert body["time"].endswith("+00:00")


# The shapes of the vectors ---------------------------------------------------------------------

# Free-form objects: their keys are the device's or the admin's, not the network server's.
FREE_FORM = {"decoded_payload", "object", "tags", "metadata", "attributes"}

TTS_EXTRAS = {
    # lorawan.md: current releases put the coding rate in the LoRa data rate.
    "uplink_message.settings.data_rate.lora.coding_rate",
    # lorawan.md: rx_metadata[].location{latitude, longitude, altitude}; the registry's source.
    "uplink_message.rx_metadata[].location",
    "uplink_message.rx_metadata[].location.latitude",
    "uplink_message.rx_metadata[].location.longitude",
    "uplink_message.rx_metadata[].location.altitude",
    "uplink_message.rx_metadata[].location.source",
    # The network server's receive time of each gateway's copy (GatewayReception.received_at).
    "uplink_message.rx_metadata[].received_at",
}
TTS_OMITTED = {
    # Older releases only; both documentation vectors predate the move (lorawan.md).
    "uplink_message.settings.coding_rate",
}
CS4_EXTRAS = {
    # lorawan.md: adr, fCnt, object, rxInfo[].gwTime/nsTime/location; the vector omits them as
    # defaults (fCnt 0, adr false) or because no codec and no gateway clock were involved.
    "adr",
    "fCnt",
    "object",
    "rxInfo[].gwTime",
    "rxInfo[].nsTime",
    "rxInfo[].location",
    "rxInfo[].location.latitude",
    "rxInfo[].location.longitude",
    "rxInfo[].location.altitude",
}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _shape(value: Any, path: str = "") -> dict[str, str]:
    """Every key path (arrays as `[]`) with its JSON type; free-form objects are leaves."""
    found: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            found[child] = _json_type(item)
            if key not in FREE_FORM:
                found.update(_shape(item, child))
    elif isinstance(value, list):
        for item in value:
            found.update(_shape(item, f"{path}[]"))
    return found


def _vectors(shared_dir: Path, ns: str) -> list[dict[str, Any]]:
    """The documented full uplinks of network server `ns` (not the field-masked webhook)."""
    index = orjson.loads((shared_dir / "vectors" / "uplinks" / "index.json").read_bytes())
    found = []
    for entry in index["uplinks"]:
        if entry["expected_normalized"]["ns"] != ns:
            continue
        document = orjson.loads((shared_dir / "vectors" / entry["file"]).read_bytes())
        if ns == "tts_v3" and "end_device_ids" not in document:
            continue
        found.append(document)
    return found


@pytest.mark.parametrize(
    ("network_server", "ns", "extras", "omitted"),
    [
        ("tts", "tts_v3", TTS_EXTRAS, TTS_OMITTED),
        ("chirpstack-v4", "chirpstack_v4", CS4_EXTRAS, set()),
    ],
)
def test_messages_have_the_vectors_shape(
    shared_dir: Path, network_server: str, ns: str, extras: set[str], omitted: set[str]
) -> None:
    vectors = [_shape(vector) for vector in _vectors(shared_dir, ns)]
    assert len(vectors) == (2 if ns == "tts_v3" else 1)
    known: dict[str, str] = {}
    for shape in vectors:
        known.update(shape)
    everywhere = set.intersection(*(set(shape) for shape in vectors)) - omitted
    for message in _messages(_fleet(network_server), 98):
        shape = _shape(orjson.loads(message.payload))
        unknown = set(shape) - set(known) - extras
        assert not unknown, f"keys no vector has: {sorted(unknown)}"
        defaults = {"dr"} if shape.get("txInfo.modulation.lora.spreadingFactor") else set()
        missing = everywhere - set(shape) - defaults - {"fCnt", "uplink_message.f_cnt"}
        assert not missing, f"keys every vector has: {sorted(missing)}"
        for path, kind in shape.items():
            if path in known:
                assert kind == known[path], (path, kind, known[path])


# Radio ------------------------------------------------------------------------------------------


def test_rssi_falls_with_the_distance_to_the_gateway() -> None:
    fleet = _fleet("tts")
    near: list[float] = []
    far: list[float] = []
    gateways = {g.gateway_id: g for g in fleet.gateways}
    per_message = []
    for message in _messages(fleet, 4 * 98):
        device = fleet.device(message.dev_eui)
        uplink = _uplink(message)
        distances = []
        for rx in uplink.gateways:
            assert rx.gateway_id is not None
            assert rx.rssi is not None
            assert rx.snr is not None
            gateway = gateways[rx.gateway_id]
            assert rx.location is not None
            assert rx.location.latitude == gateway.lat
            metres = distance_m(*device.location, gateway.lon, gateway.lat)
            distances.append(metres)
            (near if metres < 1000 else far if metres > 4000 else []).append(rx.rssi)
            assert -140 <= rx.rssi <= -30
            assert -20 <= rx.snr <= 13.5
        per_message.append(len(uplink.gateways))
    assert statistics.fmean(near) > statistics.fmean(far) + 15
    assert 1.5 < statistics.fmean(per_message) < 7
    assert max(per_message) > 1


# Frame counters ---------------------------------------------------------------------------------


def test_fcnt_increases_per_device_and_continues_after_a_restart(tmp_path: Path) -> None:
    fleet = build_fleet(7, seed=3)
    path = tmp_path / "state.json"
    first = Simulator(fleet, counters=FrameCounters(path))
    counts: dict[str, list[int]] = defaultdict(list)
    for message in first.messages(21, start=START, interval=1):
        counts[message.dev_eui].append(message.f_cnt)
    assert all(values == [0, 1, 2] for values in counts.values())
    first.counters.save()
    again = Simulator(fleet, counters=FrameCounters(path))
    for message in again.messages(7, start=START, interval=1):
        assert message.f_cnt == 3
        assert _uplink(message).f_cnt == 3
    assert orjson.loads(path.read_bytes())["f_cnt"][fleet.devices[0].dev_eui] == 3
    assert FrameCounters(path).peek(fleet.devices[0].dev_eui) == 3  # unsaved: still 3 on disk


def test_a_broken_state_file_is_reported(tmp_path: Path) -> None:
    from agents.simulator import StateError

    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(StateError, match=r"state\.json: the simulator state is not JSON"):
        FrameCounters(path)


# Duplicates and corrupt frames -------------------------------------------------------------------


def _expect_rejected(message: SimulatedMessage) -> str:
    """The reason the agent refuses a corrupt message (parser or codec)."""
    try:
        uplink = _uplink(message)
    except UplinkError as error:
        return f"parser: {error.reason}"
    try:
        CATALOG.codec(message.profile).decode(
            uplink.payload or b"", f_port=uplink.f_port or 0, uplink=uplink
        )
    except CodecError as error:
        return f"codec: {error.reason}"
    return "accepted"


@pytest.mark.parametrize("network_server", ["tts", "chirpstack-v4"])
def test_duplicates_and_corrupt_frames_come_at_their_rates_and_are_refused(
    network_server: str,
) -> None:
    uplinks = 3000
    messages = _messages(_fleet(network_server), uplinks, duplicate_rate=0.05, corrupt_rate=0.1)
    duplicates = [m for m in messages if m.duplicate]
    originals = [m for m in messages if not m.duplicate]
    assert len(originals) == uplinks
    assert 0.035 * uplinks < len(duplicates) < 0.065 * uplinks
    for duplicate in duplicates:
        original = messages[messages.index(duplicate) - 1]
        assert (original.topic, original.payload) == (duplicate.topic, duplicate.payload)
    corrupt = [m for m in originals if m.corruption]
    assert 0.08 * uplinks < len(corrupt) < 0.12 * uplinks
    kinds = Counter(m.corruption for m in corrupt)
    assert set(kinds) == set(CORRUPTIONS)
    for message in corrupt:
        reason = _expect_rejected(message)
        if message.corruption == "truncated-payload":
            expected = (
                "codec: no-decoded-object"
                if message.profile in NS_DECODED_PROFILES
                else "codec: truncated"
            )
        else:
            expected = CORRUPTIONS[message.corruption or ""]
        assert reason == expected, (message.corruption, message.profile, reason)
    for message in originals:
        if not message.corruption:
            assert _expect_rejected(message) == "accepted"


def test_only_the_chosen_corruptions() -> None:
    messages = _messages(_fleet("tts"), 200, corrupt_rate=1.0, corruptions=["bad-base64"])
    assert {m.corruption for m in messages} == {"bad-base64"}
    with pytest.raises(ValueError, match="unknown corruption"):
        Simulator(_fleet("tts"), corrupt_rate=0.1, corruptions=["gremlins"])
    with pytest.raises(ValueError, match="between 0 and 1"):
        Simulator(_fleet("tts"), duplicate_rate=1.5)


def test_runs_are_reproducible_for_a_seed_and_a_start() -> None:
    fleet = _fleet("tts")
    first = [(m.topic, m.payload) for m in _messages(fleet, 50, duplicate_rate=0.1)]
    again = [(m.topic, m.payload) for m in _messages(fleet, 50, duplicate_rate=0.1)]
    assert first == again
    other = [(m.topic, m.payload) for m in Simulator(fleet, seed=99).messages(50, start=START)]
    assert first != other


def test_iter_messages_gives_n_pairs_for_benchmarks() -> None:
    fleet = build_fleet(1000, seed=8)
    pairs = list(iter_messages(fleet, 1000, start=START, duplicate_rate=0.1))
    assert len(pairs) == 1000
    topics = {topic for topic, _payload in pairs}
    assert len(topics) > 850  # devices take turns; duplicates repeat a topic
    topic, payload = pairs[0]
    parsed = parse_message("tts", topic, payload)
    assert isinstance(parsed, Uplink)
    assert list(iter_messages(fleet, 0)) == []
