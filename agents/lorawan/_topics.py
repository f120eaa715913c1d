"""MQTT topics of the network servers, read into one `Topic` value.

- The Things Stack v3: `v3/{application id}[@{tenant id}]/devices/{device id}/{event}`, the event
  being `up`, `join`, `down/queued`, `down/sent`, `down/ack`, `down/nack`, `down/failed`,
  `down/push`, `down/replace`, `service/data`, `location/solved`, ... (kept as written).
- ChirpStack v4: `application/{application id}/device/{dev eui}/event/{event}` with `up`, `join`,
  `ack`, `txack`, `status`, `log`, `location`, `integration`; `.../command/down` for downlinks
  (event `command/down`).
- ChirpStack v3: the same layout with a numeric application ID (v3.11 and later), or the older
  `application/{id}/device/{dev eui}/{rx|join|ack|error|status|location|txack}`; `rx` reads as `up`.
"""

from __future__ import annotations

from functools import lru_cache

from agents.lorawan._checked import from_checked
from agents.lorawan._errors import UplinkError
from agents.lorawan._eui import normalize_eui
from agents.lorawan._uplink import Source, Topic

__all__ = ["Topic", "parse_chirpstack_v3_topic", "parse_chirpstack_v4_topic", "parse_tts_topic"]

_CHIRPSTACK_V3_LEGACY_EVENTS = frozenset(
    {"rx", "join", "ack", "error", "status", "location", "txack"}
)


def _bad(topic: str, layout: str) -> UplinkError:
    return UplinkError("bad-topic", f"topic {topic!r:.200} does not match {layout}", field="topic")


_CACHE_SIZE = 4096
"""Topics repeat per device: the last few thousand are remembered (`Topic` is frozen)."""


@lru_cache(maxsize=_CACHE_SIZE)
def parse_tts_topic(topic: str) -> Topic:
    """Read a The Things Stack v3 MQTT topic (with or without `@tenant`)."""
    layout = "v3/{application}[@{tenant}]/devices/{device}/{event}"
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != "v3" or parts[2] != "devices":
        raise _bad(topic, layout)
    application, at_sign, tenant = parts[1].partition("@")
    device = parts[3]
    event = "/".join(parts[4:])
    if not application or not device or "" in parts[4:] or (at_sign and not tenant):
        raise _bad(topic, layout)
    return from_checked(
        Topic,
        {
            "source": "tts",
            "event": event,
            "application_id": application,
            "tenant": tenant or None,
            "device_id": device,
        },
    )


def _chirpstack(topic: str, source: Source) -> Topic:
    layout = "application/{application}/device/{devEui}/event/{event}"
    parts = topic.split("/")
    if len(parts) == 6 and parts[4] in ("event", "command") and parts[5]:
        event = parts[5] if parts[4] == "event" else f"command/{parts[5]}"
    elif source == "chirpstack-v3" and len(parts) == 5 and parts[4] in _CHIRPSTACK_V3_LEGACY_EVENTS:
        event = parts[4]
    else:
        raise _bad(topic, layout if source == "chirpstack-v4" else layout + " or .../{rx|join|...}")
    if parts[0] != "application" or parts[2] != "device" or not parts[1]:
        raise _bad(topic, layout)
    try:
        dev_eui = normalize_eui(parts[3])
    except ValueError as error:
        raise UplinkError(
            "bad-topic", f"topic {topic!r:.200}: device segment: {error}", field="topic"
        ) from None
    if event == "rx":
        event = "up"
    return from_checked(
        Topic, {"source": source, "event": event, "application_id": parts[1], "dev_eui": dev_eui}
    )


@lru_cache(maxsize=_CACHE_SIZE)
def parse_chirpstack_v4_topic(topic: str) -> Topic:
    """Read a ChirpStack v4 MQTT integration topic."""
    return _chirpstack(topic, "chirpstack-v4")


@lru_cache(maxsize=_CACHE_SIZE)
def parse_chirpstack_v3_topic(topic: str) -> Topic:
    """Read a ChirpStack v3 MQTT integration topic (`.../event/{event}` or legacy `.../rx`)."""
    return _chirpstack(topic, "chirpstack-v3")
