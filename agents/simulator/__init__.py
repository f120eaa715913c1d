"""A LoRaWAN fleet simulator: uplinks exactly as The Things Stack v3 or ChirpStack v4 publish
them, from devices at a city's sites.

    fleet = build_fleet(50, city="duesseldorf", seed=1)        # or load_fleet("fleet.yaml")
    simulator = Simulator(fleet, counters=FrameCounters("sim-state.json"),
                          duplicate_rate=0.01, corrupt_rate=0.005)
    with MqttSink("127.0.0.1", 1883, qos=1) as sink:
        report = run_simulation(simulator, sink, rate=20.0, duration=60)
    register_fleet(fleet, broker="http://127.0.0.1:1026")     # via `drehscheibe devices`

    for topic, payload in iter_messages(fleet, 10_000):        # benchmarks: no publishing
        ...

The fleet (`_fleet`) places devices at the city's named sites (`_sites`: Düsseldorf's main
roads, Altstadt, parking garages, Rhine gauge, parks) with deterministic DevEUIs. The value
model (`_values`) gives readings that follow the city's day, encoded as the device's profile
expects (CayenneLPP, or device bytes plus the network server's decoded object). The radio model
(`_radio`) decides which gateways hear an uplink and how well. `_messages` writes the network
servers' JSON, and breaks it on purpose when asked (`CORRUPTIONS`). Frame counters persist in a
small state file (`FrameCounters`).
"""

from agents.simulator._fleet import (
    Fleet,
    FleetDevice,
    FleetError,
    NetworkServer,
    build_fleet,
    default_tenant,
    load_fleet,
)
from agents.simulator._messages import (
    CORRUPTIONS,
    Corruption,
    chirpstack_topic,
    chirpstack_uplink,
    corrupt,
    format_time,
    tts_topic,
    tts_uplink,
)
from agents.simulator._publish import (
    JsonLinesSink,
    MqttSink,
    PublishError,
    RunReport,
    Sink,
    WebhookSink,
    run_simulation,
)
from agents.simulator._radio import (
    EU868_CHANNELS,
    GatewayRx,
    Radio,
    airtime,
    distance_m,
    link_budget,
    radio_for,
    rank_gateways,
)
from agents.simulator._register import RegistrationError, RegistrationReport, register_fleet
from agents.simulator._simulator import SimulatedMessage, Simulator, iter_messages
from agents.simulator._sites import (
    CITIES,
    DUESSELDORF,
    KINDS,
    City,
    GatewaySite,
    Kind,
    KindSpec,
    Site,
)
from agents.simulator._state import FrameCounters, StateError
from agents.simulator._values import (
    CODECS_DIR,
    LPP_PORT,
    NS_DECODED_PROFILES,
    SPECIFIC_PORT,
    SUPPORTED_PROFILES,
    Reading,
    decode_device_payload,
    local_zone,
    nightlife_index,
    reading_for,
    shopping_index,
    traffic_index,
)

__all__ = [
    "CITIES",
    "CODECS_DIR",
    "CORRUPTIONS",
    "DUESSELDORF",
    "EU868_CHANNELS",
    "KINDS",
    "LPP_PORT",
    "NS_DECODED_PROFILES",
    "SPECIFIC_PORT",
    "SUPPORTED_PROFILES",
    "City",
    "Corruption",
    "Fleet",
    "FleetDevice",
    "FleetError",
    "FrameCounters",
    "GatewayRx",
    "GatewaySite",
    "JsonLinesSink",
    "Kind",
    "KindSpec",
    "MqttSink",
    "NetworkServer",
    "PublishError",
    "Radio",
    "Reading",
    "RegistrationError",
    "RegistrationReport",
    "RunReport",
    "SimulatedMessage",
    "Simulator",
    "Sink",
    "Site",
    "StateError",
    "WebhookSink",
    "airtime",
    "build_fleet",
    "chirpstack_topic",
    "chirpstack_uplink",
    "corrupt",
    "decode_device_payload",
    "default_tenant",
    "distance_m",
    "format_time",
    "iter_messages",
    "link_budget",
    "load_fleet",
    "local_zone",
    "nightlife_index",
    "radio_for",
    "rank_gateways",
    "reading_for",
    "register_fleet",
    "run_simulation",
    "shopping_index",
    "traffic_index",
    "tts_topic",
    "tts_uplink",
]
