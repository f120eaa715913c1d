"""A downlink in each network server's own MQTT format, and the topics of their downlink events.

The Things Stack v3 (`tts`):

    topic  v3/{application id}[@{tenant id}]/devices/{device id}/down/push   (or down/replace)
    body   {"downlinks": [{"f_port": 10, "frm_payload": "<base64>", "confirmed": true,
                           "priority": "NORMAL", "correlation_ids": ["drehscheibe:downlink:<id>"]}]}

`down/push` appends to the device's queue, `down/replace` replaces the queue. The correlation id
comes back in the `down/queued`, `down/sent`, `down/ack`, `down/nack` and `down/failed` events.

ChirpStack v4 (`chirpstack-v4`):

    topic  application/{application id}/device/{dev_eui, lower-case hex}/command/down
    body   {"id": "<uuid>", "devEui": "<lower-case hex>", "confirmed": true, "fPort": 10,
            "data": "<base64>"}

ChirpStack checks that `devEui` equals the topic's DevEUI and uses `id` as the queue item id,
which its `event/ack` and `event/txack` carry back as `queueItemId`. ChirpStack has no replace
over MQTT (its queue is flushed through its API) and no priority.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from agents.downlink._model import Downlink, DownlinkError, NetworkIdentity

__all__ = [
    "DOWNLINK_NETWORK_SERVERS",
    "chirpstack_downlink",
    "downlink_message",
    "event_topics",
    "tts_downlink",
    "tts_owner",
]

DOWNLINK_NETWORK_SERVERS = ("tts", "chirpstack-v4")
"""Network servers the agent sends downlinks through."""

_TTS_EVENTS = ("down/queued", "down/sent", "down/ack", "down/nack", "down/failed")
_CHIRPSTACK_EVENTS = ("ack", "txack")


def tts_owner(application_id: str, ns_tenant: str | None) -> str:
    """The application part of a The Things Stack topic: `app@tenant`, or `app`."""
    return f"{application_id}@{ns_tenant}" if ns_tenant else application_id


def tts_downlink(
    downlink: Downlink, identity: NetworkIdentity, *, replace: bool = False
) -> tuple[str, bytes]:
    """The topic and body of `downlink` for The Things Stack (see the module docstring)."""
    if not identity.application_id or not identity.device_id:
        missing = "application id" if not identity.application_id else "device id"
        raise DownlinkError(
            f"device {downlink.dev_eui}: The Things Stack needs its {missing}; it is learned "
            "from the device's uplinks (or give --application / --device-id)"
        )
    owner = tts_owner(identity.application_id, identity.ns_tenant)
    verb = "replace" if replace else "push"
    topic = f"v3/{owner}/devices/{identity.device_id}/down/{verb}"
    item: dict[str, Any] = {
        "f_port": downlink.f_port,
        "frm_payload": base64.b64encode(downlink.payload).decode("ascii"),
        "confirmed": downlink.confirmed,
        "priority": downlink.priority,
        "correlation_ids": [downlink.correlation_id],
    }
    return topic, orjson.dumps({"downlinks": [item]})


def chirpstack_downlink(downlink: Downlink, identity: NetworkIdentity) -> tuple[str, bytes]:
    """The topic and body of `downlink` for ChirpStack v4 (see the module docstring)."""
    if not identity.application_id:
        raise DownlinkError(
            f"device {downlink.dev_eui}: ChirpStack needs its application id; it is learned "
            "from the device's uplinks, or set mqtt.application of the source (or give "
            "--application)"
        )
    dev_eui = downlink.dev_eui.lower()
    topic = f"application/{identity.application_id}/device/{dev_eui}/command/down"
    body = {
        "id": downlink.id,
        "devEui": dev_eui,
        "confirmed": downlink.confirmed,
        "fPort": downlink.f_port,
        "data": base64.b64encode(downlink.payload).decode("ascii"),
    }
    return topic, orjson.dumps(body)


def downlink_message(
    downlink: Downlink, identity: NetworkIdentity, *, replace: bool = False
) -> tuple[str, bytes]:
    """The topic and body of `downlink` in the format of `identity.network_server`.

    Raises `DownlinkError` for a network server the agent cannot send through (ChirpStack v3),
    for `replace` on ChirpStack, and when the identity lacks what the topic needs.
    """
    kind = identity.network_server
    if kind == "tts":
        return tts_downlink(downlink, identity, replace=replace)
    if kind == "chirpstack-v4":
        if replace:
            raise DownlinkError(
                f"device {downlink.dev_eui}: ChirpStack cannot replace the queue over MQTT "
                "(flush it through ChirpStack's API, then push)"
            )
        return chirpstack_downlink(downlink, identity)
    raise DownlinkError(
        f"device {downlink.dev_eui}: source {identity.source} is {kind}; downlinks go through "
        f"{' or '.join(DOWNLINK_NETWORK_SERVERS)}"
    )


def event_topics(
    network_server: str, *, application: str | None = None, ns_tenant: str | None = None
) -> list[str]:
    """The MQTT topics of downlink events to subscribe for one source: The Things Stack's
    `down/queued|sent|ack|nack|failed`, ChirpStack v4's `event/ack` and `event/txack`, for the
    configured application or every one (`+`)."""
    if network_server == "tts":
        owner = tts_owner(application, ns_tenant) if application else "+"
        return [f"v3/{owner}/devices/+/{event}" for event in _TTS_EVENTS]
    if network_server == "chirpstack-v4":
        app = application or "+"
        return [f"application/{app}/device/+/event/{event}" for event in _CHIRPSTACK_EVENTS]
    return []
