"""Consumers: receive NGSI-LD notifications (HTTP or MQTT) and hand each entity change on.

Your own consumer in a few lines:

    from agents.consumers import Consumer, EntityChange, JsonLinesSink

    consumer = Consumer("noise-watch", sinks=[JsonLinesSink("noise.jsonl")])

    @consumer.on_change
    def loud(change: EntityChange) -> None:
        if (change.value("LAeq") or 0) > 65:
            print("loud at", change.entity_id, change.value("LAeq"), flush=True)

    consumer.run(port=8085)  # POST notifications to http://127.0.0.1:8085/notify; Ctrl-C stops

Subscribe it with a consumers file entry whose endpoint is `http://<host>:8085/notify`.
`Consumer.receive` checks each notification (shared secret, NGSI-LD shape), drops repeats (by
notification id and by entity-change fingerprint), hands it to the inbox, and only then answers
2xx; with `state_dir=` the inbox is a SQLite file, so that answer means the notification
survives a crash. One worker thread then calls the sinks and handlers in order, retrying with
backoff when one fails. `run(mqtt="mqtt://host:1883/topic")` reads an MQTT topic instead of, or
beside, HTTP.

Sinks: `JsonLinesSink`, `CsvSink`, `GeoJsonSink` (latest state per entity, for a GIS),
`SqliteSink`, `WebhookSink` (forward to another endpoint); any object with `name`, `open()`,
`write(changes)` and `close()` is a sink.

Reference consumers: `traffic_consumer` (current state per road segment and parking site,
served as JSON), `environment_consumer` (threshold alerts with hysteresis, logged and
forwarded), `planning_consumer` (append-only archive of every change, queryable by time and
area).
"""

from agents.consumers._change import EntityChange, timestamp
from agents.consumers._consumer import Consumer, Handler, Receipt, SharedSecret
from agents.consumers._environment import (
    DEFAULT_RULES,
    AlertRule,
    HysteresisAlerts,
    environment_consumer,
)
from agents.consumers._http import RunningReceiver, receiver_app, serve_in_thread
from agents.consumers._inbox import InboxFull, MemoryInbox, SqliteInbox
from agents.consumers._mqtt import MqttReceiver, parse_mqtt_url
from agents.consumers._planning import PlanningArchive, planning_consumer
from agents.consumers._sinks import (
    CsvSink,
    GeoJsonSink,
    JsonLinesSink,
    Sink,
    SinkError,
    SqliteSink,
    WebhookSink,
)
from agents.consumers._traffic import TrafficState, traffic_consumer

__all__ = [
    "DEFAULT_RULES",
    "AlertRule",
    "Consumer",
    "CsvSink",
    "EntityChange",
    "GeoJsonSink",
    "Handler",
    "HysteresisAlerts",
    "InboxFull",
    "JsonLinesSink",
    "MemoryInbox",
    "MqttReceiver",
    "PlanningArchive",
    "Receipt",
    "RunningReceiver",
    "SharedSecret",
    "Sink",
    "SinkError",
    "SqliteInbox",
    "SqliteSink",
    "TrafficState",
    "WebhookSink",
    "environment_consumer",
    "parse_mqtt_url",
    "planning_consumer",
    "receiver_app",
    "serve_in_thread",
    "timestamp",
    "traffic_consumer",
]
