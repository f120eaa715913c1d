"""The device registry: registered LoRaWAN devices as Smart Data Models `Device` entities.

    registry = Registry(client, cache_path="/var/lib/drehscheibe/registry.sqlite",
                        profiles=catalog, unknown_devices="drop")
    registry.resync()                                   # at start, then periodically
    registry.ensure_subscription("http://agent:8080/notify/devices")
    device = registry.get("70B3D57ED0000001")           # hot path: memory
    registry.apply_notification(body)                   # from the agent's HTTP endpoint

A registration (`RegisteredDevice`) is DevEUI, name, profile, measuring point, location, owner,
`refDeviceModel`, lifecycle (`deviceState`, `dateInstalled`, `dateFirstUsed`,
`dateDecommissioned`, the places it was installed), and calibration; it lives in the
broker (design decision 1) and in the agent's SQLite cache. Network-server keys are never part
of it.
"""

from agents.registry._cache import DeviceCache
from agents.registry._device import (
    DEVICE_CONTEXT,
    REGISTRY_ATTRIBUTES,
    Calibration,
    DeviceAlreadyRegistered,
    DeviceNotRegistered,
    DeviceState,
    Placement,
    RegisteredDevice,
    RegistryError,
    device_entity_id,
)
from agents.registry._import import (
    ImportProblem,
    ParsedImport,
    format_of,
    parse_device_list,
    parse_point,
)
from agents.registry._network import (
    API_KEY_ENV,
    NetworkServerKind,
    devices_from_chirpstack,
    devices_from_tts,
    read_api_key,
    read_network_server,
)
from agents.registry._registry import (
    DEFAULT_SUBSCRIPTION_NAME,
    NOTIFICATION_TRIGGERS,
    ImportReport,
    NotificationReport,
    ProfileLookup,
    Registry,
    ResyncReport,
    SwapReport,
    UnknownDevice,
    UnknownDevicePolicy,
)

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_SUBSCRIPTION_NAME",
    "DEVICE_CONTEXT",
    "NOTIFICATION_TRIGGERS",
    "REGISTRY_ATTRIBUTES",
    "Calibration",
    "DeviceAlreadyRegistered",
    "DeviceCache",
    "DeviceNotRegistered",
    "DeviceState",
    "ImportProblem",
    "ImportReport",
    "NetworkServerKind",
    "NotificationReport",
    "ParsedImport",
    "Placement",
    "ProfileLookup",
    "RegisteredDevice",
    "Registry",
    "RegistryError",
    "ResyncReport",
    "SwapReport",
    "UnknownDevice",
    "UnknownDevicePolicy",
    "device_entity_id",
    "devices_from_chirpstack",
    "devices_from_tts",
    "format_of",
    "parse_device_list",
    "parse_point",
    "read_api_key",
    "read_network_server",
]
