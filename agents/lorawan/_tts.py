"""The Things Stack v3 messages (MQTT, webhooks, console exports) into event values.

One body format serves MQTT and webhooks; the event kind is told by the topic, by the webhook
(through the body's one message key: `uplink_message`, `join_accept`, `location_solved`,
`downlink_ack`...), or by the `name` of a console-export envelope
(`{"name": "as.up.data.forward", "data": {...}}`). When several of them speak they must agree.

The device comes from `end_device_ids`, the MQTT topic (`v3/{app}@{tenant}/devices/{dev}/...`)
and the webhook path variables (`{appID}`, `{devID}`, `{devEUI}`, `{joinEUI}`, `{devAddr}`); a
webhook with a field mask such as `up.uplink_message` carries no `end_device_ids` at all. Values
from different places must agree, else `topic-mismatch`.

Pitfalls handled here: zero values are omitted (no `f_port`, `f_cnt` when 0), the frequency is a
string, the coding rate moved from `settings.coding_rate` to `settings.data_rate.lora.coding_rate`
(both read), and `received_at` may be missing from documentation examples.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import ValidationError

from agents.lorawan._checked import from_checked
from agents.lorawan._errors import UplinkError
from agents.lorawan._fields import (
    JsonObject,
    at,
    decode_base64,
    opt_bool,
    opt_dev_addr,
    opt_eui,
    opt_float,
    opt_int,
    opt_list,
    opt_location,
    opt_object,
    opt_str,
    opt_str_map,
    opt_time,
    str_list,
)
from agents.lorawan._topics import parse_tts_topic
from agents.lorawan._uplink import (
    DownlinkEvent,
    DownlinkEventKind,
    GatewayReception,
    JoinEvent,
    Location,
    LocationEvent,
    Modulation,
    NetworkEvent,
    Uplink,
)

__all__ = [
    "parse_tts_downlink_event",
    "parse_tts_join",
    "parse_tts_location",
    "parse_tts_message",
    "parse_tts_uplink",
    "tts_event_of",
]

# The one message key of each ApplicationUp body, and the topic suffix of its event.
_BODY_KEYS: dict[str, str] = {
    "uplink_message": "up",
    "join_accept": "join",
    "location_solved": "location/solved",
    "downlink_queued": "down/queued",
    "downlink_sent": "down/sent",
    "downlink_ack": "down/ack",
    "downlink_nack": "down/nack",
    "downlink_failed": "down/failed",
    "downlink_queue_invalidated": "down/queue/invalidated",
    "service_data": "service/data",
    "uplink_normalized": "up/normalized",
}
_EVENT_KEYS = {event: key for key, event in _BODY_KEYS.items()}

_ENVELOPE_NAMES: dict[str, str] = {
    "as.up.data.forward": "up",
    "as.up.join.forward": "join",
    "as.up.location.forward": "location/solved",
    "as.up.service.forward": "service/data",
    "as.up.normalized.forward": "up/normalized",
}

_PATH_VARS: dict[str, tuple[str, ...]] = {
    "application_id": ("appID", "applicationID", "application_id"),
    "device_id": ("devID", "deviceID", "device_id"),
    "dev_eui": ("devEUI", "dev_eui"),
    "join_eui": ("joinEUI", "appEUI", "join_eui"),
    "dev_addr": ("devAddr", "dev_addr"),
    "tenant": ("tenantID", "tenant_id", "tenant"),
}

_UP = "uplink_message"
_SP = f"{_UP}.settings"
_DP = f"{_SP}.data_rate"
_DP_LORA = f"{_DP}.lora"
_DP_FSK = f"{_DP}.fsk"
_NETWORK_IDS = f"{_UP}.network_ids"


class _Ids(NamedTuple):
    dev_eui: str | None
    device_id: str | None
    application_id: str | None
    tenant: str | None
    join_eui: str | None
    dev_addr: str | None


class _Prepared(NamedTuple):
    body: JsonObject
    event: str
    ids: _Ids


def tts_event_of(message: Mapping[str, Any]) -> str | None:
    """The event kind a The Things Stack body (or console envelope) carries, or None."""
    body, name = _unwrap(message)
    return _body_event(body) or (_ENVELOPE_NAMES.get(name) if name else None)


def _unwrap(message: Mapping[str, Any]) -> tuple[JsonObject, str | None]:
    """The body, and the console envelope's event name when the message is wrapped in one."""
    data = message.get("data")
    name = message.get("name")
    if isinstance(name, str) and isinstance(data, dict) and "end_device_ids" not in message:
        return data, name
    return message, None


def _body_event(body: JsonObject) -> str | None:
    found = [_BODY_KEYS[key] for key in body if key in _BODY_KEYS]  # a body has few keys
    if len(found) > 1:
        raise UplinkError(
            "malformed-message",
            f"the body carries several messages ({', '.join(_EVENT_KEYS[e] for e in found)})",
        )
    return found[0] if found else None


def _merge(current: str | None, other: str | None, field: str, where: str) -> str | None:
    if other is None:
        return current
    if current is not None and current != other:
        raise UplinkError(
            "topic-mismatch",
            f"{field}: the body says {current!r}, the {where} says {other!r}",
            field=field,
        )
    return other


def _path_var(path_vars: Mapping[str, str], name: str) -> str | None:
    for key in _PATH_VARS[name]:
        value = path_vars.get(key)
        if value:
            return value
    return None


def _prepare(
    message: Mapping[str, Any],
    *,
    topic: str | None,
    path_vars: Mapping[str, str] | None,
    event: str | None,
) -> _Prepared:
    if type(message) is not dict and not isinstance(message, Mapping):
        raise UplinkError("malformed-json", "the message is not a JSON object")
    body, envelope_name = _unwrap(message)
    envelope_event = _ENVELOPE_NAMES.get(envelope_name) if envelope_name else None
    body_event = _body_event(body)
    topic_info = parse_tts_topic(topic) if topic is not None else None

    kind = body_event
    for said, where in (
        (envelope_event, "envelope name"),
        (topic_info.event if topic_info else None, "topic"),
        (event, "caller"),
    ):
        if said is None:
            continue
        if kind is None:
            kind = said
        elif said != kind:
            raise UplinkError(
                "topic-mismatch",
                f"the {where} says {said!r} but the body is a {kind!r} event",
                field="topic" if where == "topic" else None,
            )
    if kind is None and envelope_name is not None:
        raise UplinkError(
            "unsupported-event", f"console event {envelope_name!r} carries no known message"
        )
    if kind is None:
        raise UplinkError(
            "missing-field",
            "the message carries none of "
            + ", ".join(_BODY_KEYS)
            + " and no topic says what it is",
        )
    if body_event is None and kind in _EVENT_KEYS:
        key = _EVENT_KEYS[kind]
        raise UplinkError("missing-field", f"{key}: missing from a {kind!r} message", field=key)

    ids_obj = opt_object(body, "end_device_ids", "") or {}
    app_ids = opt_object(ids_obj, "application_ids", "end_device_ids") or {}
    dev_eui = opt_eui(ids_obj, "dev_eui", "end_device_ids")
    device_id = opt_str(ids_obj, "device_id", "end_device_ids")
    application_id = opt_str(app_ids, "application_id", "end_device_ids.application_ids")
    join_eui = opt_eui(ids_obj, "join_eui", "end_device_ids")
    dev_addr = opt_dev_addr(ids_obj, "dev_addr", "end_device_ids")
    tenant: str | None = None

    if topic_info is not None:
        device_id = _merge(device_id, topic_info.device_id, "end_device_ids.device_id", "topic")
        application_id = _merge(
            application_id,
            topic_info.application_id,
            "end_device_ids.application_ids.application_id",
            "topic",
        )
        tenant = topic_info.tenant
    if path_vars:
        where = "webhook path"
        device_id = _merge(
            device_id, _path_var(path_vars, "device_id"), "end_device_ids.device_id", where
        )
        application_id = _merge(
            application_id,
            _path_var(path_vars, "application_id"),
            "end_device_ids.application_ids.application_id",
            where,
        )
        dev_eui = _merge(dev_eui, _eui_var(path_vars, "dev_eui"), "end_device_ids.dev_eui", where)
        join_eui = _merge(
            join_eui, _eui_var(path_vars, "join_eui"), "end_device_ids.join_eui", where
        )
        dev_addr = _merge(dev_addr, _addr_var(path_vars), "end_device_ids.dev_addr", where)
        tenant = tenant or _path_var(path_vars, "tenant")
    return _Prepared(
        body, kind, _Ids(dev_eui, device_id, application_id, tenant, join_eui, dev_addr)
    )


def _eui_var(path_vars: Mapping[str, str], name: str) -> str | None:
    value = _path_var(path_vars, name)
    return opt_eui({name: value}, name, "path") if value else None


def _addr_var(path_vars: Mapping[str, str]) -> str | None:
    value = _path_var(path_vars, "dev_addr")
    return opt_dev_addr({"dev_addr": value}, "dev_addr", "path") if value else None


def _wrong_event(expected: str, got: str) -> UplinkError:
    return UplinkError("unsupported-event", f"expected a {expected!r} message, got a {got!r} event")


def parse_tts_uplink(
    message: Mapping[str, Any],
    *,
    topic: str | None = None,
    path_vars: Mapping[str, str] | None = None,
) -> Uplink:
    """A The Things Stack uplink (MQTT `.../up`, webhook, or console `as.up.data.forward`).

    `topic` is the MQTT topic when there is one; `path_vars` the webhook's path variables.
    Raises `UplinkError` for anything that is not a well-formed uplink.
    """
    prepared = _prepare(message, topic=topic, path_vars=path_vars, event=None)
    if prepared.event != "up":
        raise _wrong_event("up", prepared.event)
    return _uplink(prepared)


def _uplink(prepared: _Prepared) -> Uplink:
    body, _, ids = prepared
    up = opt_object(body, _UP, "")
    if up is None:
        raise UplinkError("missing-field", f"{_UP}: missing", field=_UP)
    warnings: list[str] = []

    decoded = opt_object(up, "decoded_payload", _UP)
    normalized = opt_list(up, "normalized_payload", _UP)
    for index, item in enumerate(normalized):
        if not isinstance(item, dict):
            raise UplinkError(
                "malformed-message",
                f"{_UP}.normalized_payload[{index}]: expected an object",
                field=f"{_UP}.normalized_payload[{index}]",
            )
    raw = up.get("frm_payload")
    payload: bytes | None = b""
    if raw is not None:
        try:
            payload = decode_base64(raw, f"{_UP}.frm_payload")
        except UplinkError as error:
            if decoded is None and not normalized:
                raise
            payload = None
            warnings.append(f"{error.message}; the network server's decoded payload is kept")

    settings = opt_object(up, "settings", _UP) or {}
    sp = _SP
    data_rate = opt_object(settings, "data_rate", sp) or {}
    dp = _DP
    lora = opt_object(data_rate, "lora", dp)
    fsk = opt_object(data_rate, "fsk", dp)
    lrfhss = opt_object(data_rate, "lrfhss", dp)
    modulation: Modulation | None = (
        "lora" if lora is not None else "fsk" if fsk is not None else None
    )
    if lrfhss is not None:
        modulation = "lr-fhss"
    lora = lora or {}

    gateways = tuple(
        _gateway(item, f"{_UP}.rx_metadata[{index}]", warnings)
        for index, item in enumerate(opt_list(up, "rx_metadata", _UP))
    )
    gateway_times = [g.time for g in gateways if g.time is not None]
    settings_time = opt_time(settings, "time", sp, warnings)
    gateway_time = min(gateway_times) if gateway_times else settings_time

    network_ids = opt_object(up, "network_ids", _UP) or {}
    locations = opt_object(up, "locations", _UP) or {}
    user = opt_object(locations, "user", f"{_UP}.locations")
    device_location = (
        opt_location(
            user,
            f"{_UP}.locations.user",
            source="source",
            accuracy="accuracy",
            warnings=warnings,
        )
        if user
        else None
    )
    received_at = opt_time(body, "received_at", "", warnings) or opt_time(
        up, "received_at", _UP, warnings
    )
    version_ids = opt_str_map(up, "version_ids", _UP)
    try:
        # every value below comes from a field reader that checked it: no second validation
        return from_checked(
            Uplink,
            {
                "source": "tts",
                "dev_eui": ids.dev_eui,
                "device_id": ids.device_id,
                "application_id": ids.application_id,
                "tenant": ids.tenant or opt_str(network_ids, "tenant_id", _NETWORK_IDS),
                "join_eui": ids.join_eui,
                "dev_addr": ids.dev_addr,
                "f_port": opt_int(up, "f_port", _UP, hi=255) or 0,
                "f_cnt": opt_int(up, "f_cnt", _UP, hi=0xFFFFFFFF) or 0,
                "payload": payload,
                "confirmed": opt_bool(up, "confirmed", _UP) or False,
                "decoded": decoded,
                "decoded_warnings": str_list(up, "decoded_payload_warnings", _UP),
                "normalized_payload": normalized or None,
                "received_at": received_at,
                "gateway_time": gateway_time,
                "gateways": gateways,
                "frequency": opt_int(settings, "frequency", sp),
                "modulation": modulation,
                "data_rate": opt_int(settings, "data_rate_index", sp),
                "spreading_factor": opt_int(lora, "spreading_factor", _DP_LORA),
                "bandwidth": opt_int(lora, "bandwidth", _DP_LORA),
                "coding_rate": opt_str(lora, "coding_rate", _DP_LORA)
                or opt_str(settings, "coding_rate", sp),
                "bit_rate": opt_int(fsk, "bit_rate", _DP_FSK) if fsk else None,
                "device_location": from_checked(Location, device_location)
                if device_location is not None
                else None,
                "version_ids": version_ids or None,
                "tags": opt_str_map(up, "attributes", _UP),
                "simulated": opt_bool(body, "simulated", "") or False,
                "correlation_ids": str_list(body, "correlation_ids", ""),
                "warnings": tuple(warnings),
            },
        )
    except ValidationError as error:
        raise _invalid(error) from None


def _invalid(error: ValidationError) -> UplinkError:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    return UplinkError("malformed-message", f"{field}: {first['msg']}", field=field)


def _gateway(item: object, path: str, warnings: list[str]) -> GatewayReception:
    """One `GatewayReception`, from values checked by the field readers."""
    if not isinstance(item, dict):
        raise UplinkError("malformed-message", f"{path}: expected an object", field=path)
    ids = opt_object(item, "gateway_ids", path) or {}
    gateway_eui = _gateway_eui(ids, "eui", f"{path}.gateway_ids", warnings)
    packet_broker = opt_object(item, "packet_broker", path)
    if gateway_eui is None and packet_broker:
        gateway_eui = _gateway_eui(
            packet_broker, "forwarder_gateway_eui", f"{path}.packet_broker", warnings
        )
    rssi = opt_float(item, "rssi", path)
    channel_rssi = opt_float(item, "channel_rssi", path)
    location = opt_object(item, "location", path)
    fields: dict[str, Any] = {
        "gateway_id": opt_str(ids, "gateway_id", f"{path}.gateway_ids"),
        "gateway_eui": gateway_eui,
        "rssi": rssi if rssi is not None else channel_rssi,
        "channel_rssi": channel_rssi,
        "snr": opt_float(item, "snr", path),
        "time": opt_time(item, "time", path, warnings),
        "received_at": opt_time(item, "received_at", path, warnings),
        "location": opt_location(
            location, f"{path}.location", source="source", accuracy="accuracy", warnings=warnings
        )
        if location
        else None,
    }
    where = fields["location"]
    if where is not None:
        fields["location"] = from_checked(Location, where)
    return from_checked(GatewayReception, fields)


def _gateway_eui(obj: JsonObject, key: str, path: str, warnings: list[str]) -> str | None:
    try:
        return opt_eui(obj, key, path)
    except UplinkError as error:
        warnings.append(f"{error.message}; gateway EUI left out")
        return None


def _received_at(body: JsonObject, inner: JsonObject | None, key: str) -> datetime | None:
    scratch: list[str] = []
    found = opt_time(body, "received_at", "", scratch)
    if found is None and inner is not None:
        found = opt_time(inner, "received_at", key, scratch)
    return found


def parse_tts_join(
    message: Mapping[str, Any],
    *,
    topic: str | None = None,
    path_vars: Mapping[str, str] | None = None,
) -> JoinEvent:
    """A The Things Stack join-accept event (MQTT `.../join`, webhook `join_accept`)."""
    prepared = _prepare(message, topic=topic, path_vars=path_vars, event=None)
    if prepared.event != "join":
        raise _wrong_event("join", prepared.event)
    return _join(prepared)


def _join(prepared: _Prepared) -> JoinEvent:
    body, _, ids = prepared
    accept = opt_object(body, "join_accept", "")
    try:
        return JoinEvent(
            source="tts",
            dev_eui=ids.dev_eui,
            device_id=ids.device_id,
            application_id=ids.application_id,
            tenant=ids.tenant,
            join_eui=ids.join_eui,
            dev_addr=ids.dev_addr,
            received_at=_received_at(body, accept, "join_accept"),
            correlation_ids=str_list(body, "correlation_ids", ""),
        )
    except ValidationError as error:
        raise _invalid(error) from None


def parse_tts_location(
    message: Mapping[str, Any],
    *,
    topic: str | None = None,
    path_vars: Mapping[str, str] | None = None,
) -> LocationEvent:
    """A The Things Stack `location/solved` event (`location_solved{service, location}`)."""
    prepared = _prepare(message, topic=topic, path_vars=path_vars, event=None)
    if prepared.event != "location/solved":
        raise _wrong_event("location/solved", prepared.event)
    return _location(prepared)


def _location(prepared: _Prepared) -> LocationEvent:
    body, _, ids = prepared
    solved = opt_object(body, "location_solved", "") or {}
    raw = opt_object(solved, "location", "location_solved")
    warnings: list[str] = []
    location = (
        opt_location(
            raw,
            "location_solved.location",
            source="source",
            accuracy="accuracy",
            warnings=warnings,
        )
        if raw
        else None
    )
    if location is None:
        field = "location_solved.location"
        why = warnings[0] if warnings else f"{field}: no latitude and longitude"
        raise UplinkError("missing-field", why, field=field)
    try:
        return LocationEvent(
            source="tts",
            dev_eui=ids.dev_eui,
            device_id=ids.device_id,
            application_id=ids.application_id,
            tenant=ids.tenant,
            location=Location.model_validate(location),
            service=opt_str(solved, "service", "location_solved"),
            received_at=_received_at(body, None, ""),
            correlation_ids=str_list(body, "correlation_ids", ""),
        )
    except ValidationError as error:
        raise _invalid(error) from None


_DOWNLINK_KINDS: dict[str, DownlinkEventKind] = {
    "down/queued": "queued",
    "down/sent": "sent",
    "down/ack": "ack",
    "down/nack": "nack",
    "down/failed": "failed",
}


def parse_tts_downlink_event(
    message: Mapping[str, Any],
    *,
    topic: str | None = None,
    path_vars: Mapping[str, str] | None = None,
) -> DownlinkEvent:
    """A The Things Stack downlink event: `down/queued`, `sent`, `ack`, `nack` or `failed`."""
    prepared = _prepare(message, topic=topic, path_vars=path_vars, event=None)
    if prepared.event not in _DOWNLINK_KINDS:
        raise _wrong_event("down/...", prepared.event)
    return _downlink(prepared)


def _downlink(prepared: _Prepared) -> DownlinkEvent:
    body, event, ids = prepared
    kind = _DOWNLINK_KINDS[event]
    key = _EVENT_KEYS[event]
    outer = opt_object(body, key, "") or {}
    error_text: str | None = None
    downlink = outer
    path = key
    if kind == "failed":
        downlink = opt_object(outer, "downlink", key) or {}
        path = f"{key}.downlink"
        details = opt_object(outer, "error", key) or {}
        parts = [
            opt_str(details, "namespace", f"{key}.error"),
            opt_str(details, "name", f"{key}.error"),
        ]
        name = ":".join(part for part in parts if part)
        text = opt_str(details, "message_format", f"{key}.error")
        error_text = ": ".join(part for part in (name, text) if part) or "unknown error"
    raw = downlink.get("frm_payload")
    try:
        return DownlinkEvent(
            source="tts",
            kind=kind,
            dev_eui=ids.dev_eui,
            device_id=ids.device_id,
            application_id=ids.application_id,
            tenant=ids.tenant,
            f_port=opt_int(downlink, "f_port", path, hi=255),
            f_cnt=opt_int(downlink, "f_cnt", path, hi=0xFFFFFFFF),
            payload=decode_base64(raw, at(path, "frm_payload")) if raw is not None else None,
            confirmed=opt_bool(downlink, "confirmed", path) or False,
            acknowledged=True if kind == "ack" else False if kind == "nack" else None,
            error=error_text,
            received_at=_received_at(body, None, ""),
            correlation_ids=str_list(body, "correlation_ids", "")
            or str_list(downlink, "correlation_ids", path),
        )
    except ValidationError as error:
        raise _invalid(error) from None


def parse_tts_message(
    message: Mapping[str, Any],
    *,
    topic: str | None = None,
    path_vars: Mapping[str, str] | None = None,
    event: str | None = None,
) -> NetworkEvent:
    """Any The Things Stack message this package understands, as its event value.

    The kind comes from the topic, the body's message key, the console envelope name, or
    `event` (a topic suffix such as `up` or `down/ack`, for callers that know it otherwise);
    they must agree. `uplink_message` gives an `Uplink`, `join_accept` a `JoinEvent`,
    `location_solved` a `LocationEvent`, the `downlink_*` messages a `DownlinkEvent`; other kinds
    (`service/data`, normalized uplinks, queue invalidations) raise `unsupported-event`.
    """
    prepared = _prepare(message, topic=topic, path_vars=path_vars, event=event)
    kind = prepared.event
    if kind in ("up", "join", "location/solved") or kind in _DOWNLINK_KINDS:
        ids = prepared.ids
        if ids.dev_eui is None and ids.device_id is None:
            raise UplinkError(
                "missing-device",
                "the message names no device: no end_device_ids.dev_eui or device_id, "
                "no device in the topic or the webhook path",
                field="end_device_ids",
            )
    if kind == "up":
        return _uplink(prepared)
    if kind == "join":
        return _join(prepared)
    if kind == "location/solved":
        return _location(prepared)
    if kind in _DOWNLINK_KINDS:
        return _downlink(prepared)
    raise UplinkError("unsupported-event", f"{kind!r} messages are not turned into values")
