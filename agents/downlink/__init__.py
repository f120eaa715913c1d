"""Downlinks and commands: data to a device, through its network server, with a record of each.

    downlink = Downlink(dev_eui="0004A30B001C0530", f_port=10, payload=bytes.fromhex("0164"))
    with DownlinkStore.in_data_dir("agent-data") as store, \\
            DownlinkSender.from_config(config, store=store) as sender:
        record = sender.send(downlink, actor="cli:alice")       # PENDING, or FAILED with why

* `Downlink` (DevEUI, fPort 1-223, payload, confirmed, priority, id) and `DownlinkRecord`;
* encoders (`CayenneLPPEncoder`, `JavaScriptEncoder` for a Device Repository `encodeDownlink`
  in the decoders' QuickJS sandbox, `HexEncoder`), chosen by a profile's `downlink` section;
* the network servers' formats (`tts_downlink`: `v3/{app}@{tenant}/devices/{id}/down/push`,
  `chirpstack_downlink`: `application/{app}/device/{devEui}/command/down`) and their downlink
  events (`parse_downlink_event`: `down/queued|sent|ack|nack|failed`, `event/ack|txack`);
* `DownlinkStore`: the records and the devices' network identities (`<data_dir>/downlinks.db`);
* `DownlinkSender`: resolve the source and topic, record, publish over MQTT;
* `DownlinkRelay`: the agent's side: identities from uplinks, commands written as Device
  attributes relayed as downlinks, and their status (`PENDING`, `SENT`, `ACKED`, `FAILED`)
  written back from the network server's events.
"""

from agents.downlink._commands import (
    INFO_SUFFIX,
    STATUS_SUFFIX,
    EncoderCache,
    command_downlink,
    command_names,
    command_spec,
    command_status_attributes,
    profile_downlink,
)
from agents.downlink._encoders import (
    CayenneLPPEncoder,
    DownlinkEncoder,
    EncodedPayload,
    HexEncoder,
    JavaScriptEncoder,
    encoder_for,
    load_device_repository_encoder,
)
from agents.downlink._events import DownlinkOutcome, parse_downlink_event, status_of
from agents.downlink._formats import (
    DOWNLINK_NETWORK_SERVERS,
    chirpstack_downlink,
    downlink_message,
    event_topics,
    tts_downlink,
    tts_owner,
)
from agents.downlink._model import (
    CORRELATION_PREFIX,
    TERMINAL_STATUSES,
    Downlink,
    DownlinkError,
    DownlinkPriority,
    DownlinkRecord,
    DownlinkStatus,
    NetworkIdentity,
    correlation_id,
    new_downlink_id,
    record_id_of,
)
from agents.downlink._mqtt import EventHandler, MqttConnection, MqttDownlinkClient
from agents.downlink._relay import COMMAND_NOTIFICATION_PATH, DownlinkRelay, ObservingMapper
from agents.downlink._sender import DownlinkSender, resolve_identity
from agents.downlink._store import DOWNLINKS_FILE, DownlinkStore

__all__ = [
    "COMMAND_NOTIFICATION_PATH",
    "CORRELATION_PREFIX",
    "DOWNLINKS_FILE",
    "DOWNLINK_NETWORK_SERVERS",
    "INFO_SUFFIX",
    "STATUS_SUFFIX",
    "TERMINAL_STATUSES",
    "CayenneLPPEncoder",
    "Downlink",
    "DownlinkEncoder",
    "DownlinkError",
    "DownlinkOutcome",
    "DownlinkPriority",
    "DownlinkRecord",
    "DownlinkRelay",
    "DownlinkSender",
    "DownlinkStatus",
    "DownlinkStore",
    "EncodedPayload",
    "EncoderCache",
    "EventHandler",
    "HexEncoder",
    "JavaScriptEncoder",
    "MqttConnection",
    "MqttDownlinkClient",
    "NetworkIdentity",
    "ObservingMapper",
    "chirpstack_downlink",
    "command_downlink",
    "command_names",
    "command_spec",
    "command_status_attributes",
    "correlation_id",
    "downlink_message",
    "encoder_for",
    "event_topics",
    "load_device_repository_encoder",
    "new_downlink_id",
    "parse_downlink_event",
    "profile_downlink",
    "record_id_of",
    "resolve_identity",
    "status_of",
    "tts_downlink",
    "tts_owner",
]
