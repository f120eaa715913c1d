"""Uplink messages exactly as the network servers publish them, and broken ones on purpose.

- The Things Stack v3: topic `v3/{application}[@{tenant}]/devices/{device_id}/up`, body
  `{end_device_ids, correlation_ids, received_at, uplink_message{session_key_id, f_port, f_cnt,
  frm_payload, decoded_payload, rx_metadata[], settings, received_at, consumed_airtime,
  locations, version_ids, network_ids}}`. Zero values are left out as The Things Stack leaves
  them out (no `f_cnt` for frame 0, no `channel_index` 0); the frequency is a string; the coding
  rate is in `settings.data_rate.lora` (current releases); times are Protobuf-JSON timestamps
  (`Z`, 0/3/6/9 fractional digits). No `simulated` flag: these are meant to look like real
  devices (The Things Stack sets it only for uplinks simulated in its console).
- ChirpStack v4: topic `application/{application UUID}/device/{deveui, lowercase}/event/up`,
  body `{deduplicationId, time, deviceInfo{...}, devAddr, adr, dr, fCnt, fPort, data, object,
  rxInfo[], txInfo{frequency, modulation.lora}}`, proto3 defaults left out (`fCnt` 0, `dr` 0,
  `confirmed` false), times as ChirpStack writes them (`+00:00`).

Corruptions (`CORRUPTIONS`) stand for what reaches an integration in the field: a frame cut
short by a faulty device (`truncated-payload`: the message is fine, the codec refuses it, and a
network-server decoder decodes nothing), a payload that is not base64 (`bad-base64`), a body cut
off in transit (`truncated-json`), a body with a missing comma (`malformed-json`, as in The
Things Stack's own documentation), and a field of the wrong JSON type (`bad-field`).
"""

from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import orjson

from agents.simulator._fleet import Fleet, FleetDevice
from agents.simulator._radio import Radio, airtime
from agents.simulator._values import Reading

__all__ = [
    "CORRUPTIONS",
    "Corruption",
    "chirpstack_topic",
    "chirpstack_uplink",
    "corrupt",
    "format_time",
    "tts_topic",
    "tts_uplink",
]

Corruption = Literal[
    "truncated-payload", "bad-base64", "truncated-json", "malformed-json", "bad-field"
]

CORRUPTIONS: dict[str, str] = {
    "truncated-payload": "codec: truncated (CayenneLPP) / no-decoded-object (network-server)",
    "bad-base64": "parser: bad-base64",
    "truncated-json": "parser: malformed-json",
    "malformed-json": "parser: malformed-json",
    "bad-field": "parser: malformed-message",
}
"""Each corruption and how the agent is expected to refuse it."""

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@lru_cache(maxsize=4096)
def _whole_seconds(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def format_time(ns: int, *, zulu: bool = True) -> str:
    """An RFC 3339 UTC time from nanoseconds since the epoch, with 0, 3, 6 or 9 fractional
    digits as Protobuf-JSON writes them; `zulu=False` ends in `+00:00` (ChirpStack)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = _whole_seconds(seconds)
    if fraction:
        digits = f"{fraction:09d}"
        if digits.endswith("000000"):
            digits = digits[:3]
        elif digits.endswith("000"):
            digits = digits[:6]
        text += "." + digits
    return text + ("Z" if zulu else "+00:00")


def _duration(seconds: float) -> str:
    ns = round(seconds * 1e9)
    whole, fraction = divmod(ns, 1_000_000_000)
    if not fraction:
        return f"{whole}s"
    digits = f"{fraction:09d}"
    if digits.endswith("000000"):
        digits = digits[:3]
    elif digits.endswith("000"):
        digits = digits[:6]
    return f"{whole}.{digits}s"


_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)


def _ulid(ms: int, rng: random.Random) -> str:
    """A ULID (48-bit milliseconds, 80 random bits) in Crockford base32, as The Things Stack
    writes its correlation IDs."""
    value = (ms << 80) | rng.getrandbits(80)
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in range(120, -1, -10)])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def tts_topic(fleet: Fleet, device: FleetDevice) -> str:
    """The MQTT topic The Things Stack publishes `device`'s uplinks on."""
    owner = f"{fleet.application}@{fleet.tenant}" if fleet.tenant else fleet.application
    return f"v3/{owner}/devices/{device.device_id}/up"


def chirpstack_topic(fleet: Fleet, device: FleetDevice) -> str:
    """The MQTT topic ChirpStack v4 publishes `device`'s uplinks on."""
    return f"application/{fleet.application_uuid}/device/{device.dev_eui.lower()}/event/up"


def tts_uplink(
    fleet: Fleet,
    device: FleetDevice,
    *,
    f_cnt: int,
    reading: Reading,
    radio: Radio,
    at_ns: int,
    rng: random.Random,
) -> dict[str, Any]:
    """The body The Things Stack v3 publishes for one uplink received by the gateways at
    `at_ns` (ns since the epoch); `rng` draws the identifiers (correlation IDs, tokens)."""
    ms = at_ns // 1_000_000
    first_ns = at_ns + round(min(rx.delay_ms for rx in radio.receptions) * 1e6)
    ns_received = first_ns + rng.randint(2_000_000, 9_000_000)
    as_received = ns_received + rng.randint(150_000_000, 260_000_000)
    gateway_timestamp = (at_ns // 1000 + rng.getrandbits(32)) & 0xFFFFFFFF
    lon, lat = device.location
    rx_metadata: list[dict[str, Any]] = []
    for rx in radio.receptions:
        gateway = rx.gateway
        item: dict[str, Any] = {
            "gateway_ids": {"gateway_id": gateway.gateway_id, "eui": gateway.eui},
            "time": format_time(at_ns),
            "timestamp": (gateway_timestamp + rng.getrandbits(24)) & 0xFFFFFFFF,
            "rssi": rx.rssi,
            "channel_rssi": rx.rssi,
            "snr": rx.snr,
            "location": {
                "latitude": gateway.lat,
                "longitude": gateway.lon,
                "altitude": round(gateway.altitude),
                "source": "SOURCE_REGISTRY",
            },
            "uplink_token": _b64(rng.randbytes(36)),
            "received_at": format_time(at_ns + round(rx.delay_ms * 1e6)),
        }
        if radio.channel_index:
            item["channel_index"] = radio.channel_index
        rx_metadata.append(item)
    up: dict[str, Any] = {
        "session_key_id": _b64(
            uuid.uuid5(uuid.NAMESPACE_OID, f"{device.dev_eui}:{fleet.seed}").bytes
        ),
        "f_port": reading.f_port,
    }
    if f_cnt:
        up["f_cnt"] = f_cnt
    up["frm_payload"] = _b64(reading.payload)
    if reading.decoded is not None:
        up["decoded_payload"] = reading.decoded
    up["rx_metadata"] = rx_metadata
    up["settings"] = {
        "data_rate": {
            "lora": {
                "bandwidth": radio.bandwidth,
                "spreading_factor": radio.spreading_factor,
                "coding_rate": radio.coding_rate,
            }
        },
        "frequency": str(radio.frequency),
        "timestamp": gateway_timestamp,
        "time": format_time(at_ns),
    }
    up["received_at"] = format_time(ns_received)
    up["consumed_airtime"] = _duration(
        airtime(13 + len(reading.payload), spreading_factor=radio.spreading_factor)
    )
    up["locations"] = {
        "user": {
            "latitude": lat,
            "longitude": lon,
            "altitude": round(device.altitude),
            "source": "SOURCE_REGISTRY",
        }
    }
    up["version_ids"] = {
        "brand_id": "drehscheibe",
        "model_id": device.profile,
        "hardware_version": "1.0",
        "firmware_version": "1.0",
        "band_id": "EU_863_870",
    }
    network_ids: dict[str, Any] = {"net_id": "000013"}
    if fleet.tenant:
        network_ids["tenant_id"] = fleet.tenant
    network_ids["cluster_id"] = "eu1"
    up["network_ids"] = network_ids
    return {
        "end_device_ids": {
            "device_id": device.device_id,
            "application_ids": {"application_id": fleet.application},
            "dev_eui": device.dev_eui,
            "join_eui": fleet.join_eui,
            "dev_addr": device.dev_addr,
        },
        "correlation_ids": [
            f"as:up:{_ulid(ms, rng)}",
            f"gs:conn:{_ulid(ms - 3_600_000, rng)}",
            f"gs:up:host:{_ulid(ms - 3_600_000, rng)}",
            f"gs:uplink:{_ulid(ms, rng)}",
            f"ns:uplink:{_ulid(ms, rng)}",
            f"rpc:/ttn.lorawan.v3.GsNs/HandleUplink:{_ulid(ms, rng)}",
            f"rpc:/ttn.lorawan.v3.NsAs/HandleUplink:{_ulid(ms, rng)}",
        ],
        "received_at": format_time(as_received),
        "uplink_message": up,
    }


def chirpstack_uplink(
    fleet: Fleet,
    device: FleetDevice,
    *,
    f_cnt: int,
    reading: Reading,
    radio: Radio,
    at_ns: int,
    rng: random.Random,
) -> dict[str, Any]:
    """The `up` event ChirpStack v4 publishes for one uplink received at `at_ns`."""
    first_ns = at_ns + round(min(rx.delay_ms for rx in radio.receptions) * 1e6)
    rx_info: list[dict[str, Any]] = []
    for rx in radio.receptions:
        gateway = rx.gateway
        rx_info.append(
            {
                "gatewayId": gateway.eui.lower(),
                "uplinkId": rng.getrandbits(32) or 1,
                "gwTime": format_time(at_ns, zulu=False),
                "nsTime": format_time(at_ns + round(rx.delay_ms * 1e6), zulu=False),
                "rssi": rx.rssi,
                "snr": rx.snr,
                "location": {
                    "latitude": gateway.lat,
                    "longitude": gateway.lon,
                    "altitude": round(gateway.altitude),
                },
                "context": _b64(rng.randbytes(4)),
                "metadata": {"region_name": "eu868", "region_common_name": "EU868"},
            }
        )
    body: dict[str, Any] = {
        "deduplicationId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "time": format_time(first_ns + 200_000_000 + rng.randint(0, 3_000_000), zulu=False),
        "deviceInfo": {
            "tenantId": fleet.tenant_uuid,
            "tenantName": fleet.tenant or "ChirpStack",
            "applicationId": fleet.application_uuid,
            "applicationName": fleet.application,
            "deviceProfileId": fleet.profile_uuid(device.profile),
            "deviceProfileName": device.profile,
            "deviceName": device.device_id,
            "devEui": device.dev_eui.lower(),
            "tags": {"city": fleet.city, "kind": device.kind},
        },
        "devAddr": device.dev_addr.lower(),
        "adr": True,
    }
    if radio.data_rate_index:
        body["dr"] = radio.data_rate_index
    if f_cnt:
        body["fCnt"] = f_cnt
    body["fPort"] = reading.f_port
    body["data"] = _b64(reading.payload)
    if reading.decoded is not None:
        body["object"] = reading.decoded
    body["rxInfo"] = rx_info
    body["txInfo"] = {
        "frequency": radio.frequency,
        "modulation": {
            "lora": {
                "bandwidth": radio.bandwidth,
                "spreadingFactor": radio.spreading_factor,
                "codeRate": "CR_" + radio.coding_rate.replace("/", "_"),
            }
        },
    }
    return body


def corrupt(
    kind: str,
    body: dict[str, Any],
    *,
    network_server: str,
    rng: random.Random,
) -> bytes:
    """The wire bytes of `body` broken in the way `kind` names (see `CORRUPTIONS`).

    `body` itself is left as it is.
    """
    tts = network_server == "tts"
    payload_key, decoded_key = ("frm_payload", "decoded_payload") if tts else ("data", "object")
    if kind in ("truncated-payload", "bad-base64", "bad-field"):
        broken = orjson.loads(orjson.dumps(body))
        holder: dict[str, Any] = broken["uplink_message"] if tts else broken
        if kind == "truncated-payload":
            frame = base64.b64decode(holder[payload_key])
            holder[payload_key] = _b64(frame[: max(len(frame) - 1, 0)])
            # The network server's decoder fails on it too, and sends no decoded object.
            holder.pop(decoded_key, None)
        elif kind == "bad-base64":
            holder[payload_key] = "%" + holder[payload_key].rstrip("=") + "!%"
            holder.pop(decoded_key, None)
        else:
            holder["f_port" if tts else "fPort"] = "one"
        return orjson.dumps(broken)
    wire = orjson.dumps(body)
    if kind == "truncated-json":
        return wire[: rng.randint(len(wire) // 4, len(wire) - 2)]
    if kind == "malformed-json":
        at = wire.find(b',"', rng.randint(1, len(wire) // 2))
        at = at if at > 0 else wire.find(b',"')
        return wire[:at] + wire[at + 1 :]
    raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(CORRUPTIONS)}")
