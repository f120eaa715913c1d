"""ChirpStack v4 and v3 integration events (MQTT and HTTP) into event values.

ChirpStack v4 writes Protobuf-JSON in camelCase: `deviceInfo{tenantId, applicationId, deviceName,
devEui, deviceProfileName, tags}`, `fPort`, `fCnt`, `data` (base64), `object` (decoded),
`rxInfo[{gatewayId, gwTime, nsTime, rssi, snr, location, metadata}]`,
`txInfo{frequency, modulation.lora{bandwidth, spreadingFactor, codeRate}}`. Early v4 releases omit
default values (`fCnt` 0, `confirmed` false): every field is optional. Helium and ThingsIX bridges
put gateway coordinates as strings in `rxInfo[].metadata` (`gateway_lat`, `gateway_long`).

ChirpStack v3 has two marshalers, told apart field by field rather than by a switch: `json_v3`
(hex `devEUI` and `gatewayID`, decoded `object`, `txInfo.dr`) and `json` (Protobuf-JSON: base64
`devEUI` and `gatewayID`, the decoded object as the string `objectJSON`, `loRaModulationInfo`
with the bandwidth in kHz). Its events carry no network-server time before `publishedAt`; the
earliest gateway time (which the gateway bridge stamps when the gateway has no clock) stands in.

The event kind comes from the MQTT topic or, for the HTTP integration, from its `?event=` query
parameter; ChirpStack bodies do not say it themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import ValidationError

from agents.lorawan._checked import from_checked
from agents.lorawan._errors import UplinkError
from agents.lorawan._eui import normalize_eui
from agents.lorawan._fields import (
    JsonObject,
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
)
from agents.lorawan._topics import Topic, parse_chirpstack_v3_topic, parse_chirpstack_v4_topic
from agents.lorawan._uplink import (
    DownlinkEvent,
    GatewayReception,
    JoinEvent,
    Location,
    LocationEvent,
    Modulation,
    NetworkEvent,
    Source,
    StatusEvent,
    Uplink,
)

__all__ = [
    "parse_chirpstack_v3_message",
    "parse_chirpstack_v3_uplink",
    "parse_chirpstack_v4_message",
    "parse_chirpstack_v4_uplink",
]

_MAX_U32 = 0xFFFFFFFF


class _Ids(NamedTuple):
    dev_eui: str
    device_id: str | None
    application_id: str | None
    tenant: str | None
    device_profile: str | None
    tags: dict[str, str]


def _invalid(error: ValidationError) -> UplinkError:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    return UplinkError("malformed-message", f"{field}: {first['msg']}", field=field)


def _check_object(message: object) -> JsonObject:
    if not isinstance(message, Mapping):
        raise UplinkError("malformed-json", "the message is not a JSON object")
    return message


def _topic(topic: str | None, source: Source) -> Topic | None:
    if topic is None:
        return None
    if source == "chirpstack-v4":
        return parse_chirpstack_v4_topic(topic)
    return parse_chirpstack_v3_topic(topic)


def _resolve_event(topic_info: Topic | None, event: str | None) -> str:
    said_topic = topic_info.event if topic_info else None
    if event is not None and event == "rx":
        event = "up"
    if said_topic and event and said_topic != event:
        raise UplinkError(
            "topic-mismatch", f"the topic says {said_topic!r}, the caller {event!r}", field="topic"
        )
    kind = said_topic or event
    if kind is None:
        raise UplinkError(
            "missing-field",
            "ChirpStack messages do not name their event: pass the MQTT topic, or the HTTP "
            "integration's ?event= value",
        )
    return kind


def _merge_dev_eui(body_eui: str | None, topic_info: Topic | None, field: str) -> str:
    topic_eui = topic_info.dev_eui if topic_info else None
    if body_eui and topic_eui and body_eui != topic_eui:
        raise UplinkError(
            "topic-mismatch",
            f"{field}: the body says {body_eui}, the topic says {topic_eui}",
            field=field,
        )
    found = body_eui or topic_eui
    if found is None:
        raise UplinkError(
            "missing-dev-eui", f"{field}: missing, and no topic names the device", field=field
        )
    return found


def _merge_application(body_app: str | None, topic_info: Topic | None, field: str) -> str | None:
    topic_app = topic_info.application_id if topic_info else None
    if body_app and topic_app and body_app != topic_app:
        raise UplinkError(
            "topic-mismatch",
            f"{field}: the body says {body_app!r}, the topic says {topic_app!r}",
            field=field,
        )
    return body_app or topic_app


# ChirpStack v4 ------------------------------------------------------------------------------


def _v4_ids(body: JsonObject, topic_info: Topic | None) -> _Ids:
    info = opt_object(body, "deviceInfo", "") or {}
    path = "deviceInfo"
    return _Ids(
        dev_eui=_merge_dev_eui(opt_eui(info, "devEui", path), topic_info, "deviceInfo.devEui"),
        device_id=opt_str(info, "deviceName", path),
        application_id=_merge_application(
            opt_str(info, "applicationId", path), topic_info, "deviceInfo.applicationId"
        ),
        tenant=opt_str(info, "tenantId", path),
        device_profile=opt_str(info, "deviceProfileName", path),
        tags=opt_str_map(info, "tags", path),
    )


def parse_chirpstack_v4_uplink(message: Mapping[str, Any], *, topic: str | None = None) -> Uplink:
    """A ChirpStack v4 `up` event (MQTT `.../event/up` or HTTP `?event=up`).

    With a topic, its DevEUI and application ID must match the body's, and its event be `up`.
    """
    body = _check_object(message)
    topic_info = _topic(topic, "chirpstack-v4")
    if topic_info is not None and topic_info.event != "up":
        raise UplinkError(
            "unsupported-event", f"expected an 'up' event, the topic says {topic_info.event!r}"
        )
    return _v4_uplink(body, _v4_ids(body, topic_info))


def _v4_uplink(body: JsonObject, ids: _Ids) -> Uplink:
    warnings: list[str] = []
    decoded = opt_object(body, "object", "")
    payload = _payload(body, "data", decoded, warnings)
    gateways = tuple(
        _v4_gateway(item, f"rxInfo[{index}]", warnings)
        for index, item in enumerate(opt_list(body, "rxInfo", ""))
    )
    tx = opt_object(body, "txInfo", "") or {}
    modulation = opt_object(tx, "modulation", "txInfo") or {}
    lora = opt_object(modulation, "lora", "txInfo.modulation")
    fsk = opt_object(modulation, "fsk", "txInfo.modulation")
    lr_fhss = opt_object(modulation, "lrFhss", "txInfo.modulation")
    kind: Modulation | None = "lora" if lora is not None else "fsk" if fsk is not None else None
    if lr_fhss is not None:
        kind = "lr-fhss"
    lora = lora or {}
    lp = "txInfo.modulation.lora"
    try:
        # every value below comes from a field reader that checked it: no second validation
        return from_checked(
            Uplink,
            {
                "source": "chirpstack-v4",
                "dev_eui": ids.dev_eui,
                "device_id": ids.device_id,
                "application_id": ids.application_id,
                "tenant": ids.tenant,
                "dev_addr": opt_dev_addr(body, "devAddr", ""),
                "f_port": opt_int(body, "fPort", "", hi=255) or 0,
                "f_cnt": opt_int(body, "fCnt", "", hi=_MAX_U32) or 0,
                "payload": payload,
                "confirmed": opt_bool(body, "confirmed", "") or False,
                "adr": opt_bool(body, "adr", "") or False,
                "decoded": decoded,
                "received_at": opt_time(body, "time", "", warnings),
                "gateway_time": _earliest(g.time for g in gateways),
                "gateways": gateways,
                "frequency": opt_int(tx, "frequency", "txInfo"),
                "modulation": kind,
                "data_rate": opt_int(body, "dr", "", hi=15),
                "spreading_factor": opt_int(lora, "spreadingFactor", lp),
                "bandwidth": opt_int(lora, "bandwidth", lp),
                "coding_rate": opt_str(lora, "codeRate", lp),
                "bit_rate": opt_int(fsk, "datarate", "txInfo.modulation.fsk") if fsk else None,
                "device_profile": ids.device_profile,
                "tags": ids.tags,
                "deduplication_id": opt_str(body, "deduplicationId", ""),
                "warnings": tuple(warnings),
            },
        )
    except ValidationError as error:
        raise _invalid(error) from None


def _v4_gateway(item: object, path: str, warnings: list[str]) -> GatewayReception:
    """One `GatewayReception`, from values checked by the field readers."""
    if not isinstance(item, dict):
        raise UplinkError("malformed-message", f"{path}: expected an object", field=path)
    gateway_id = opt_str(item, "gatewayId", path)
    location_obj = opt_object(item, "location", path)
    location = (
        opt_location(
            location_obj,
            f"{path}.location",
            source="source",
            accuracy="accuracy",
            warnings=warnings,
        )
        if location_obj
        else None
    )
    metadata = opt_object(item, "metadata", path)
    if location is None and metadata:
        location = _metadata_location(metadata, f"{path}.metadata", warnings)
    return from_checked(
        GatewayReception,
        {
            "gateway_id": gateway_id,
            "gateway_eui": _eui_or_none(gateway_id),
            "rssi": opt_float(item, "rssi", path),
            "snr": opt_float(item, "snr", path),
            "time": opt_time(item, "gwTime", path, warnings),
            "received_at": opt_time(item, "nsTime", path, warnings),
            "location": from_checked(Location, location) if location is not None else None,
        },
    )


def _metadata_location(
    metadata: JsonObject, path: str, warnings: list[str]
) -> dict[str, Any] | None:
    """Gateway coordinates that Helium and ThingsIX bridges write as strings in metadata."""
    if "gateway_lat" not in metadata:
        return None
    try:
        return opt_location(
            metadata,
            path,
            latitude="gateway_lat",
            longitude="gateway_long" if "gateway_long" in metadata else "gateway_lon",
            altitude="gateway_alt",
            warnings=warnings,
        )
    except UplinkError as error:
        warnings.append(f"{error.message}; gateway location left out")
        return None


def _eui_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_eui(value)
    except ValueError:
        return None


def _earliest(times: Any) -> datetime | None:
    found = [time for time in times if time is not None]
    return min(found) if found else None


def _payload(
    body: JsonObject, key: str, decoded: JsonObject | None, warnings: list[str]
) -> bytes | None:
    raw = body.get(key)
    if raw is None:
        return b""
    try:
        return decode_base64(raw, key)
    except UplinkError as error:
        if decoded is None:
            raise
        warnings.append(f"{error.message}; the network server's decoded object is kept")
        return None


def _v4_join(body: JsonObject, ids: _Ids) -> JoinEvent:
    return JoinEvent(
        source="chirpstack-v4",
        dev_eui=ids.dev_eui,
        device_id=ids.device_id,
        application_id=ids.application_id,
        tenant=ids.tenant,
        dev_addr=opt_dev_addr(body, "devAddr", ""),
        received_at=opt_time(body, "time", "", []),
        device_profile=ids.device_profile,
        tags=ids.tags,
        deduplication_id=opt_str(body, "deduplicationId", ""),
    )


def _location_event(body: JsonObject, ids: _Ids, source: Source, time_key: str) -> LocationEvent:
    raw = opt_object(body, "location", "")
    warnings: list[str] = []
    location = (
        opt_location(raw, "location", source="source", accuracy="accuracy", warnings=warnings)
        if raw
        else None
    )
    if location is None:
        why = warnings[0] if warnings else "location: no latitude and longitude"
        raise UplinkError("missing-field", why, field="location")
    return LocationEvent(
        source=source,
        dev_eui=ids.dev_eui,
        device_id=ids.device_id,
        application_id=ids.application_id,
        tenant=ids.tenant,
        location=Location.model_validate(location),
        received_at=opt_time(body, time_key, "", []),
        deduplication_id=opt_str(body, "deduplicationId", ""),
    )


def _status_event(body: JsonObject, ids: _Ids, source: Source, time_key: str) -> StatusEvent:
    unavailable = opt_bool(body, "batteryLevelUnavailable", "") or False
    external = opt_bool(body, "externalPowerSource", "") or False
    level = opt_float(body, "batteryLevel", "")
    return StatusEvent(
        source=source,
        dev_eui=ids.dev_eui,
        device_id=ids.device_id,
        application_id=ids.application_id,
        tenant=ids.tenant,
        margin=opt_int(body, "margin", "", lo=-32),
        battery_level=None if unavailable or external else (level or 0.0),
        battery_unavailable=unavailable,
        external_power=external,
        received_at=opt_time(body, time_key, "", []),
        deduplication_id=opt_str(body, "deduplicationId", ""),
    )


def _downlink_event(
    body: JsonObject, ids: _Ids, source: Source, kind: str, time_key: str
) -> DownlinkEvent:
    f_cnt_key = "fCntDown" if source == "chirpstack-v4" else "fCnt"
    return DownlinkEvent(
        source=source,
        kind="ack" if kind == "ack" else "txack",
        dev_eui=ids.dev_eui,
        device_id=ids.device_id,
        application_id=ids.application_id,
        tenant=ids.tenant,
        f_cnt=opt_int(body, f_cnt_key, "", hi=_MAX_U32) or 0,
        acknowledged=(opt_bool(body, "acknowledged", "") or False) if kind == "ack" else None,
        queue_item_id=opt_str(body, "queueItemId", ""),
        received_at=opt_time(body, time_key, "", []),
        deduplication_id=opt_str(body, "deduplicationId", ""),
    )


def parse_chirpstack_v4_message(
    message: Mapping[str, Any], *, topic: str | None = None, event: str | None = None
) -> NetworkEvent:
    """Any ChirpStack v4 event this package understands, as its event value.

    The kind comes from `topic` (MQTT) or `event` (the HTTP integration's `?event=`): `up` gives
    an `Uplink`, `join` a `JoinEvent`, `location` a `LocationEvent`, `status` a `StatusEvent`,
    `ack` and `txack` a `DownlinkEvent`; `log` and `integration` raise `unsupported-event`.
    """
    body = _check_object(message)
    topic_info = _topic(topic, "chirpstack-v4")
    kind = _resolve_event(topic_info, event)
    if kind not in ("up", "join", "location", "status", "ack", "txack"):
        raise UplinkError(
            "unsupported-event", f"ChirpStack {kind!r} events are not turned into values"
        )
    ids = _v4_ids(body, topic_info)
    if kind == "up":
        return _v4_uplink(body, ids)
    try:
        if kind == "join":
            return _v4_join(body, ids)
        if kind == "location":
            return _location_event(body, ids, "chirpstack-v4", "time")
        if kind == "status":
            return _status_event(body, ids, "chirpstack-v4", "time")
        return _downlink_event(body, ids, "chirpstack-v4", kind, "time")
    except ValidationError as error:
        raise _invalid(error) from None


# ChirpStack v3 ------------------------------------------------------------------------------


def _v3_ids(body: JsonObject, topic_info: Topic | None) -> _Ids:
    app = body.get("applicationID")
    if isinstance(app, int) and not isinstance(app, bool):
        app = str(app)
    elif app is not None and not isinstance(app, str):
        raise UplinkError(
            "malformed-message",
            "applicationID: expected a string or integer",
            field="applicationID",
        )
    return _Ids(
        dev_eui=_merge_dev_eui(opt_eui(body, "devEUI", ""), topic_info, "devEUI"),
        device_id=opt_str(body, "deviceName", ""),
        application_id=_merge_application(app or None, topic_info, "applicationID"),
        tenant=None,
        device_profile=opt_str(body, "deviceProfileName", ""),
        tags=opt_str_map(body, "tags", ""),
    )


def parse_chirpstack_v3_uplink(message: Mapping[str, Any], *, topic: str | None = None) -> Uplink:
    """A ChirpStack v3 uplink event (`.../event/up`, or `.../rx` before v3.11), either marshaler."""
    body = _check_object(message)
    topic_info = _topic(topic, "chirpstack-v3")
    if topic_info is not None and topic_info.event != "up":
        raise UplinkError(
            "unsupported-event", f"expected an 'up' event, the topic says {topic_info.event!r}"
        )
    return _v3_uplink(body, _v3_ids(body, topic_info))


def _v3_decoded(body: JsonObject, warnings: list[str]) -> JsonObject | None:
    decoded = opt_object(body, "object", "")
    text = opt_str(body, "objectJSON", "")
    if decoded is not None or text is None:
        return decoded
    try:
        parsed = json.loads(text)
    except ValueError:
        warnings.append("objectJSON: not JSON, left out")
        return None
    if not isinstance(parsed, dict):
        warnings.append("objectJSON: not a JSON object, left out")
        return None
    return parsed


def _v3_uplink(body: JsonObject, ids: _Ids) -> Uplink:
    warnings: list[str] = []
    decoded = _v3_decoded(body, warnings)
    payload = _payload(body, "data", decoded, warnings)
    gateways = tuple(
        _v3_gateway(item, f"rxInfo[{index}]", warnings)
        for index, item in enumerate(opt_list(body, "rxInfo", ""))
    )
    gateway_time = _earliest(g["time"] for g in gateways)
    tx = opt_object(body, "txInfo", "") or {}
    lora = opt_object(tx, "loRaModulationInfo", "txInfo")
    fsk = opt_object(tx, "fskModulationInfo", "txInfo")
    legacy_rate = opt_object(tx, "dataRate", "txInfo")
    bandwidth_khz: int | None = None
    spreading_factor: int | None = None
    coding_rate: str | None = None
    modulation_name = opt_str(tx, "modulation", "txInfo")
    if lora is not None:
        bandwidth_khz = opt_int(lora, "bandwidth", "txInfo.loRaModulationInfo")
        spreading_factor = opt_int(lora, "spreadingFactor", "txInfo.loRaModulationInfo")
        coding_rate = opt_str(lora, "codeRate", "txInfo.loRaModulationInfo")
    elif legacy_rate is not None:
        modulation_name = opt_str(legacy_rate, "modulation", "txInfo.dataRate") or modulation_name
        bandwidth_khz = opt_int(legacy_rate, "bandwidth", "txInfo.dataRate")
        spreading_factor = opt_int(legacy_rate, "spreadFactor", "txInfo.dataRate")
    coding_rate = coding_rate or opt_str(tx, "codeRate", "txInfo")
    if lora is not None or modulation_name == "LORA":
        modulation: Modulation | None = "lora"
    elif fsk is not None or modulation_name == "FSK":
        modulation = "fsk"
    else:
        modulation = None
    confirmed = opt_bool(body, "confirmedUplink", "")
    try:
        return Uplink.model_validate(
            {
                "source": "chirpstack-v3",
                "dev_eui": ids.dev_eui,
                "device_id": ids.device_id,
                "application_id": ids.application_id,
                "dev_addr": opt_dev_addr(body, "devAddr", ""),
                "f_port": opt_int(body, "fPort", "", hi=255) or 0,
                "f_cnt": opt_int(body, "fCnt", "", hi=_MAX_U32) or 0,
                "payload": payload,
                "confirmed": confirmed or False,
                "adr": opt_bool(body, "adr", "") or False,
                "decoded": decoded,
                "received_at": opt_time(body, "publishedAt", "", warnings) or gateway_time,
                "gateway_time": gateway_time,
                "gateways": gateways,
                "frequency": opt_int(tx, "frequency", "txInfo"),
                "modulation": modulation,
                "data_rate": opt_int(body, "dr", "", hi=15)
                if "dr" in body
                else opt_int(tx, "dr", "txInfo", hi=15),
                "spreading_factor": spreading_factor,
                "bandwidth": bandwidth_khz * 1000 if bandwidth_khz is not None else None,
                "coding_rate": coding_rate,
                "bit_rate": opt_int(fsk, "datarate", "txInfo.fskModulationInfo") if fsk else None,
                "device_profile": ids.device_profile,
                "tags": ids.tags,
                "warnings": tuple(warnings),
            }
        )
    except ValidationError as error:
        raise _invalid(error) from None


def _v3_gateway(item: object, path: str, warnings: list[str]) -> dict[str, Any]:
    """The fields of one `GatewayReception`."""
    if not isinstance(item, dict):
        raise UplinkError("malformed-message", f"{path}: expected an object", field=path)
    raw_id = opt_str(item, "gatewayID", path)
    eui = _eui_or_none(raw_id)
    location_obj = opt_object(item, "location", path)
    return {
        "gateway_id": eui or raw_id,
        "gateway_eui": eui,
        "rssi": opt_float(item, "rssi", path),
        "snr": opt_float(item, "loRaSNR", path),
        "time": opt_time(item, "time", path, warnings),
        "location": opt_location(
            location_obj,
            f"{path}.location",
            source="source",
            accuracy="accuracy",
            warnings=warnings,
        )
        if location_obj
        else None,
    }


def parse_chirpstack_v3_message(
    message: Mapping[str, Any], *, topic: str | None = None, event: str | None = None
) -> NetworkEvent:
    """Any ChirpStack v3 event this package understands (see `parse_chirpstack_v4_message`).

    `up` (legacy `rx`), `join`, `location`, `status`, `ack` and `txack` become values; `error`
    and `log` raise `unsupported-event`.
    """
    body = _check_object(message)
    topic_info = _topic(topic, "chirpstack-v3")
    kind = _resolve_event(topic_info, event)
    if kind not in ("up", "join", "location", "status", "ack", "txack"):
        raise UplinkError(
            "unsupported-event", f"ChirpStack {kind!r} events are not turned into values"
        )
    ids = _v3_ids(body, topic_info)
    if kind == "up":
        return _v3_uplink(body, ids)
    try:
        if kind == "join":
            gateways = [
                _v3_gateway(item, f"rxInfo[{index}]", [])
                for index, item in enumerate(opt_list(body, "rxInfo", ""))
            ]
            return JoinEvent(
                source="chirpstack-v3",
                dev_eui=ids.dev_eui,
                device_id=ids.device_id,
                application_id=ids.application_id,
                dev_addr=opt_dev_addr(body, "devAddr", ""),
                received_at=opt_time(body, "publishedAt", "", [])
                or _earliest(g["time"] for g in gateways),
                device_profile=ids.device_profile,
                tags=ids.tags,
            )
        if kind == "location":
            return _location_event(body, ids, "chirpstack-v3", "publishedAt")
        if kind == "status":
            return _status_event(body, ids, "chirpstack-v3", "publishedAt")
        return _downlink_event(body, ids, "chirpstack-v3", kind, "publishedAt")
    except ValidationError as error:
        raise _invalid(error) from None
