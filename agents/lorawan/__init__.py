"""LoRaWAN network-server sources and the Uplink value.

Every network server's message (The Things Stack v3, ChirpStack v4 and v3; MQTT, webhooks, HTTP
integrations, console exports) becomes one frozen value: an `Uplink`, or a `JoinEvent`,
`LocationEvent`, `StatusEvent` or `DownlinkEvent`. The functions here are pure: they take the
parsed JSON (or, for `parse_message`, the raw bytes) and return a value or raise `UplinkError`
with a reason code. Transports (MQTT clients, webhook servers) live elsewhere and call them.
"""

from agents.lorawan._chirpstack import (
    parse_chirpstack_v3_message,
    parse_chirpstack_v3_uplink,
    parse_chirpstack_v4_message,
    parse_chirpstack_v4_uplink,
)
from agents.lorawan._dispatch import DEFAULT_MAX_MESSAGE_BYTES, SOURCES, parse_message
from agents.lorawan._errors import UplinkError, UplinkErrorReason
from agents.lorawan._eui import normalize_dev_addr, normalize_eui
from agents.lorawan._topics import (
    Topic,
    parse_chirpstack_v3_topic,
    parse_chirpstack_v4_topic,
    parse_tts_topic,
)
from agents.lorawan._tts import (
    parse_tts_downlink_event,
    parse_tts_join,
    parse_tts_location,
    parse_tts_message,
    parse_tts_uplink,
    tts_event_of,
)
from agents.lorawan._uplink import (
    EUI,
    DevAddr,
    DownlinkEvent,
    DownlinkEventKind,
    GatewayReception,
    JoinEvent,
    Location,
    LocationEvent,
    Modulation,
    NetworkEvent,
    Source,
    StatusEvent,
    TimeSource,
    Uplink,
    UtcDatetime,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "EUI",
    "SOURCES",
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
    "UplinkError",
    "UplinkErrorReason",
    "UtcDatetime",
    "normalize_dev_addr",
    "normalize_eui",
    "parse_chirpstack_v3_message",
    "parse_chirpstack_v3_topic",
    "parse_chirpstack_v3_uplink",
    "parse_chirpstack_v4_message",
    "parse_chirpstack_v4_topic",
    "parse_chirpstack_v4_uplink",
    "parse_message",
    "parse_tts_downlink_event",
    "parse_tts_join",
    "parse_tts_location",
    "parse_tts_message",
    "parse_tts_topic",
    "parse_tts_uplink",
    "tts_event_of",
]
