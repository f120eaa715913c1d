"""One entry point for every network-server message: bytes in, an event value out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from agents.lorawan._chirpstack import parse_chirpstack_v3_message, parse_chirpstack_v4_message
from agents.lorawan._errors import UplinkError
from agents.lorawan._tts import parse_tts_message
from agents.lorawan._uplink import NetworkEvent, Source

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "SOURCES", "parse_message"]

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
"""Largest body `parse_message` reads by default; real uplinks are a few kilobytes."""

SOURCES: tuple[Source, ...] = ("tts", "chirpstack-v4", "chirpstack-v3")


def parse_message(
    source_kind: str,
    topic: str | None,
    payload: bytes | bytearray | memoryview | str,
    *,
    event: str | None = None,
    path_vars: Mapping[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> NetworkEvent:
    """Parse one message of `source_kind` (`tts`, `chirpstack-v4`, `chirpstack-v3`).

    `topic` is the MQTT topic, or None for webhooks and HTTP integrations. `event` names the
    event kind when no topic does (ChirpStack's HTTP `?event=up`; a The Things Stack topic
    suffix such as `up` for webhooks, though its bodies say it themselves). `path_vars` are a
    The Things Stack webhook's path variables.

    Returns an `Uplink`, `JoinEvent`, `LocationEvent`, `StatusEvent` or `DownlinkEvent`. Raises
    `UplinkError` with a reason for everything else: `too-large`, `malformed-json`,
    `unknown-source`, `unsupported-event` (well-formed, but a kind not turned into a value),
    `missing-device`/`missing-dev-eui`, and the field-level reasons of the parsers. Pure: no I/O,
    no clock, safe to call from any thread.
    """
    if len(payload) > max_bytes:
        raise UplinkError(
            "too-large", f"the body has {len(payload)} bytes, more than the limit of {max_bytes}"
        )
    try:
        message: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise UplinkError("malformed-json", f"the body is not JSON: {error}") from None
    if not isinstance(message, dict):
        raise UplinkError("malformed-json", "the body is JSON but not an object")
    if source_kind == "tts":
        return parse_tts_message(message, topic=topic, path_vars=path_vars, event=event)
    if source_kind == "chirpstack-v4":
        return parse_chirpstack_v4_message(message, topic=topic, event=event)
    if source_kind == "chirpstack-v3":
        return parse_chirpstack_v3_message(message, topic=topic, event=event)
    raise UplinkError(
        "unknown-source",
        f"unknown network server {source_kind!r}; expected one of {', '.join(SOURCES)}",
    )
