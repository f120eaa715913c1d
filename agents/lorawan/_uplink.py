"""The values the LoRaWAN sources produce: `Uplink`, and the small events around it.

Every network server's message becomes one of these, whatever its dialect. All of them are frozen
pydantic models; every field a network server may leave out is optional. Times are aware and in
UTC. EUIs are 16 uppercase hex digits, DevAddrs 8.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from agents.lorawan._eui import normalize_dev_addr, normalize_eui

__all__ = [
    "EUI",
    "DevAddr",
    "DownlinkEvent",
    "DownlinkEventKind",
    "GatewayReception",
    "JoinEvent",
    "Location",
    "LocationEvent",
    "Modulation",
    "NetworkEvent",
    "Source",
    "StatusEvent",
    "TimeSource",
    "Topic",
    "Uplink",
    "UtcDatetime",
]

Source = Literal["tts", "chirpstack-v4", "chirpstack-v3"]
"""The network server a message came from: The Things Stack v3, ChirpStack v4 or v3."""

Modulation = Literal["lora", "fsk", "lr-fhss"]

TimeSource = Literal["gateway", "network-server"]
"""Which clock a receive time comes from (design decision 6)."""


def _eui(value: object) -> object:
    return normalize_eui(value) if isinstance(value, str) else value


def _dev_addr(value: object) -> object:
    return normalize_dev_addr(value) if isinstance(value, str) else value


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


EUI = Annotated[str, BeforeValidator(_eui)]
"""An EUI-64 as 16 uppercase hex digits; hex in any case, with separators, or base64 accepted."""

DevAddr = Annotated[str, BeforeValidator(_dev_addr)]
"""A DevAddr as 8 uppercase hex digits."""

UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
"""An aware datetime, converted to UTC."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Location(BaseModel):
    """A WGS84 position: of a gateway, of a device as registered, or as solved by a service.

    `source` is the network server's own word for where it came from (`SOURCE_REGISTRY`,
    `SOURCE_GPS`, `GEO_RESOLVER_TDOA`...), `accuracy` in metres when the server gives one.
    """

    model_config = _FROZEN

    latitude: float = Field(ge=-90.0, le=90.0)
    longitude: float = Field(ge=-180.0, le=180.0)
    altitude: float | None = None
    accuracy: float | None = None
    source: str | None = None


class GatewayReception(BaseModel):
    """One gateway's copy of an uplink.

    `time` is the gateway's own receive time (GPS or its clock, absent when it has none);
    `received_at` is when the network server got this copy (The Things Stack
    `rx_metadata[].received_at`, ChirpStack v4 `nsTime`). `gateway_id` is the network server's
    name for the gateway (The Things Stack gateway ID, ChirpStack gateway ID in hex as sent);
    `gateway_eui` the gateway's EUI when the message states it.
    """

    model_config = _FROZEN

    gateway_id: str | None = None
    gateway_eui: EUI | None = None
    rssi: float | None = None
    channel_rssi: float | None = None
    snr: float | None = None
    time: UtcDatetime | None = None
    received_at: UtcDatetime | None = None
    location: Location | None = None


class Uplink(BaseModel):
    """One LoRaWAN uplink, whichever network server delivered it.

    Identity: `dev_eui` (absent only for The Things Stack devices without one, or webhooks whose
    field mask drops `end_device_ids`), `device_id` (The Things Stack device ID; ChirpStack's
    device name), `application_id`, `tenant`.

    Frame: `f_port`, `f_cnt` and `payload` (the FRMPayload bytes). The network servers omit
    zero values, so an absent `f_port`/`f_cnt` in their Protobuf-JSON is read as 0; `None`
    means the message could not say. `payload` is `b""` for an empty frame and `None` only when
    the message carried a payload that is not base64 but the network server decoded it anyway
    (see `warnings`).

    Decoded: `decoded` is the network server's own decoded object (The Things Stack
    `decoded_payload`, ChirpStack `object`, ChirpStack v3 `objectJSON` parsed), with the
    decoder's warnings in `decoded_warnings`; `normalized_payload` is The Things Stack's
    normalized payload (a list of measurement objects).

    Time (design decision 6): `received_at` is the network server's receive time (The Things
    Stack `received_at`, ChirpStack v4 `time`; ChirpStack v3 states none before `publishedAt`,
    so its earliest gateway time stands in); `gateway_time` is the earliest gateway receive time.
    `time(prefer=...)` picks between them.

    Radio: `frequency` and `bandwidth` in Hz, `spreading_factor`, `coding_rate` as the network
    server spells it (`4/5`, `CR_4_5`), `data_rate` index, `bit_rate` for FSK.

    `warnings` lists parts of the message that were present but unusable and left out (a gateway
    time that does not parse, ...): the uplink is still good.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    source: Source
    dev_eui: EUI | None = None
    device_id: str | None = None
    application_id: str | None = None
    tenant: str | None = None
    join_eui: EUI | None = None
    dev_addr: DevAddr | None = None

    f_port: int | None = Field(default=None, ge=0, le=255)
    f_cnt: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)
    payload: bytes | None = b""
    confirmed: bool = False
    adr: bool | None = None

    decoded: dict[str, Any] | None = None
    decoded_warnings: tuple[str, ...] = ()
    normalized_payload: list[dict[str, Any]] | None = None

    received_at: UtcDatetime | None = None
    gateway_time: UtcDatetime | None = None
    gateways: tuple[GatewayReception, ...] = ()

    frequency: int | None = None
    modulation: Modulation | None = None
    data_rate: int | None = None
    spreading_factor: int | None = None
    bandwidth: int | None = None
    coding_rate: str | None = None
    bit_rate: int | None = None

    device_location: Location | None = None
    device_profile: str | None = None
    version_ids: dict[str, str] | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    simulated: bool = False

    deduplication_id: str | None = None
    correlation_ids: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def time(
        self, *, prefer: Sequence[TimeSource] = ("gateway", "network-server")
    ) -> datetime | None:
        """The first receive time available among `prefer`, or None.

        `"gateway"` is `gateway_time`, `"network-server"` is `received_at`. The payload's own
        timestamp, which design decision 6 puts first, is the codec's and the profile's business.
        """
        for choice in prefer:
            found = self.gateway_time if choice == "gateway" else self.received_at
            if found is not None:
                return found
        return None

    @property
    def best_reception(self) -> GatewayReception | None:
        """The gateway copy with the best SNR (then RSSI); None without gateway metadata."""
        best: GatewayReception | None = None
        best_key = (float("-inf"), float("-inf"))
        for reception in self.gateways:
            key = (
                reception.snr if reception.snr is not None else float("-inf"),
                reception.rssi if reception.rssi is not None else float("-inf"),
            )
            if best is None or key > best_key:
                best, best_key = reception, key
        return best


class JoinEvent(BaseModel):
    """A device joined (OTAA): The Things Stack `join`, ChirpStack `join` events.

    For the device registry: the DevAddr it now uses, and when.
    """

    model_config = _FROZEN

    source: Source
    dev_eui: EUI | None = None
    device_id: str | None = None
    application_id: str | None = None
    tenant: str | None = None
    join_eui: EUI | None = None
    dev_addr: DevAddr | None = None
    received_at: UtcDatetime | None = None
    device_profile: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    deduplication_id: str | None = None
    correlation_ids: tuple[str, ...] = ()


class LocationEvent(BaseModel):
    """A device position solved by the network side: The Things Stack `location/solved`,
    ChirpStack `location` events. `service` names the solver when the message does."""

    model_config = _FROZEN

    source: Source
    dev_eui: EUI | None = None
    device_id: str | None = None
    application_id: str | None = None
    tenant: str | None = None
    location: Location
    service: str | None = None
    received_at: UtcDatetime | None = None
    deduplication_id: str | None = None
    correlation_ids: tuple[str, ...] = ()


class StatusEvent(BaseModel):
    """A ChirpStack `status` event: the device's answer to DevStatusReq.

    `battery_level` is a percentage; None when the device cannot measure it
    (`battery_unavailable`) or runs on `external_power`. `margin` is the demodulation margin in dB.
    """

    model_config = _FROZEN

    source: Source
    dev_eui: EUI | None = None
    device_id: str | None = None
    application_id: str | None = None
    tenant: str | None = None
    margin: int | None = None
    battery_level: float | None = None
    battery_unavailable: bool = False
    external_power: bool = False
    received_at: UtcDatetime | None = None
    deduplication_id: str | None = None


DownlinkEventKind = Literal["queued", "sent", "ack", "nack", "failed", "txack"]


class DownlinkEvent(BaseModel):
    """What became of a downlink: queued, sent (`txack` on ChirpStack), acknowledged or not,
    failed. `acknowledged` is set for `ack`/`nack`; `error` says why a downlink failed."""

    model_config = _FROZEN

    source: Source
    kind: DownlinkEventKind
    dev_eui: EUI | None = None
    device_id: str | None = None
    application_id: str | None = None
    tenant: str | None = None
    f_port: int | None = Field(default=None, ge=0, le=255)
    f_cnt: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)
    payload: bytes | None = None
    confirmed: bool | None = None
    acknowledged: bool | None = None
    queue_item_id: str | None = None
    error: str | None = None
    received_at: UtcDatetime | None = None
    deduplication_id: str | None = None
    correlation_ids: tuple[str, ...] = ()


NetworkEvent = Uplink | JoinEvent | LocationEvent | StatusEvent | DownlinkEvent
"""Everything `parse_message` returns."""


class Topic(BaseModel):
    """What an MQTT topic says about a message.

    `event` is the event kind as the topic spells it after the device (`up`, `down/ack`,
    `location/solved`, `txack`, `command/down`...), except that ChirpStack v3's legacy `rx`
    reads as `up`. The Things Stack topics name the device by `device_id`, ChirpStack topics by
    `dev_eui` (normalised to uppercase).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Source
    event: str
    application_id: str
    tenant: str | None = None
    device_id: str | None = None
    dev_eui: EUI | None = None
