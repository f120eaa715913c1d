"""The public tenant, kept current by notifications: after 1,000 simulated uplinks through the
agent it never holds an attribute the rules leave out, a device identifier or an unrounded
coordinate; and a re-sync rebuilds it (and deletes what the rules no longer produce)."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

from agents.consumers import Consumer, serve_in_thread
from agents.publish import PublicProjection, PublishRules
from agents.simulator import build_fleet, iter_messages
from ngsi import Client
from tests.broker.conftest import RunningBroker
from tests.e2e.support import SECRET, agent_config, register, running_agent, wait_for

KEY = b"public-projection-test-key-0123456789"
UPLINKS = 1000
RULES: dict[str, Any] = {
    "coordinate_decimals": 3,
    "device_identifiers": "pseudonymize",
    "types": [
        {"type": "WeatherObserved", "attributes": ["temperature", "location", "refDevice"]},
        {"type": "AirQualityObserved", "attributes": ["co2", "location", "dateObserved"]},
        {
            "type": "CrowdFlowObserved",
            "attributes": ["peopleCount", "peopleCountTowards", "location"],
            "suppress_below": {"peopleCount": 5, "peopleCountTowards": 5},
        },
        {
            "type": "Device",
            "attributes": ["location", "locationHistory", "deviceState", "devEUI"],
            "coordinate_decimals": 2,
            "device_identifiers": "remove",
        },
    ],
}
COORDINATE_KEYS = {"coordinates", "bbox", "lat", "latitude", "lon", "lng", "longitude"}


def numbers_under(value: Any, *, inside: bool = False) -> Iterator[float]:
    """Every number that is a coordinate (under a coordinate-like member) in `value`."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from numbers_under(item, inside=inside or key in COORDINATE_KEYS)
    elif isinstance(value, list):
        for item in value:
            yield from numbers_under(item, inside=inside)
    elif inside and isinstance(value, (int, float)) and not isinstance(value, bool):
        yield float(value)


def problems(entity: dict[str, Any], rules: PublishRules, euis: list[str]) -> list[str]:
    """What is wrong with one public entity (empty: nothing)."""
    found: list[str] = []
    rule = rules.rule(entity["type"])
    if rule is None:
        return [f"{entity['id']}: type {entity['type']} is not published"]
    extra = set(entity) - {"id", "type", "@context", *rule.attributes}
    if extra:
        found.append(f"{entity['id']}: attributes not in the rules: {sorted(extra)}")
    for name in rule.attributes:
        attribute = entity.get(name)
        if isinstance(attribute, dict) and set(attribute) - {
            "type",
            "value",
            "object",
            "unitCode",
            "observedAt",
            "datasetId",
        }:
            found.append(f"{entity['id']}: {name} has sub-attributes {sorted(attribute)}")
    if "refDevice" in entity and not entity["refDevice"]["object"].startswith(
        "urn:ngsi-ld:Device:p"
    ):
        found.append(f"{entity['id']}: refDevice not pseudonymized")
    text = orjson.dumps(entity).decode().upper()
    leaked = [eui for eui in euis if eui in text]
    if leaked:
        found.append(f"{entity['id']}: DevEUIs {leaked}")
    decimals = rules.decimals(rule)
    unrounded = [x for x in numbers_under(entity) if round(x, decimals) != x]
    if unrounded:
        found.append(f"{entity['id']}: coordinates with more than {decimals} decimals {unrounded}")
    for name, threshold in rule.suppress_below.items():
        if name in entity and entity[name]["value"] < threshold:
            found.append(f"{entity['id']}: {name} {entity[name]['value']} below {threshold}")
    return found


def public_entities(client: Client, rules: PublishRules) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for rule in rules.types:
        found += client.query_all(
            type=rule.type, tenant=rules.target_tenant, context=rule.context_url()
        )
    return found


def post_in_parallel(url: str, payloads: list[bytes], *, threads: int) -> list[int]:
    """POST each payload from `threads` threads, each with a client (and connections) of its
    own, as a network server's workers do; the statuses in payload order."""
    local = threading.local()
    clients: list[httpx.Client] = []

    def post(payload: bytes) -> int:
        http: httpx.Client | None = getattr(local, "http", None)
        if http is None:
            http = local.http = httpx.Client(headers={"X-Webhook-Secret": SECRET}, timeout=30)
            clients.append(http)
        return http.post(url, content=payload).status_code

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(post, payloads))
    finally:
        for http in clients:
            http.close()


def test_the_public_tenant_never_holds_what_the_rules_leave_out(
    broker: RunningBroker, tmp_path: Path
) -> None:
    tenant, public = "src" + uuid.uuid4().hex[:8], "pub" + uuid.uuid4().hex[:8]
    rules = PublishRules.from_mapping({**RULES, "source_tenant": tenant, "target_tenant": public})
    fleet = build_fleet(12, seed=3, kinds=["people", "microclimate", "air-quality"], tenant=None)
    euis = [device.dev_eui for device in fleet.devices]
    for number, device in enumerate(fleet.devices):
        register(
            broker.url,
            device.dev_eui,
            tenant=tenant,
            profile=device.profile,
            # half of them without a measuring point: their entity ids carry the DevEUI
            measuring_point=device.measuring_point if number % 2 else None,
            location=(device.location[0] + 0.0000123, device.location[1] + 0.0000456),
        )
    checked = 0
    seen_problems: list[str] = []
    stop = threading.Event()
    with Client(broker.url, profile="embedded") as client:
        projection = PublicProjection(rules, client=client, key=KEY)
        consumer = Consumer("publish", sinks=[projection], state_dir=tmp_path / "publish")
        consumer.start()

        def watch() -> None:
            nonlocal checked
            with Client(broker.url, profile="embedded") as reader:
                while not stop.is_set():
                    for entity in public_entities(reader, rules):
                        seen_problems.extend(problems(entity, rules, euis))
                    checked += 1
                    stop.wait(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        try:
            with serve_in_thread(consumer) as receiver:
                projection.subscribe(receiver.url)
                # subscribing twice keeps the subscriptions
                assert len(projection.subscribe(receiver.url)) == len(rules.types)
                projection.resync()
                watcher.start()
                document = agent_config(
                    tmp_path, broker_url=broker.url, tenant=tenant, webhook=True
                )
                with running_agent(tmp_path, document) as agent:
                    url = f"http://127.0.0.1:{agent.http_port}/webhooks/uplinks"
                    payloads = [p for _, p in iter_messages(fleet, UPLINKS, rate=1000.0, seed=5)]
                    # the webhook answers once the uplink is in the outbox: post in parallel,
                    # as a network server does, so that the agent commits them in batches
                    statuses = post_in_parallel(url, payloads, threads=32)
                    assert statuses == [202] * UPLINKS
                    outbox = agent.outbox
                    assert outbox is not None
                    wait_for(lambda: outbox.depth == 0 and outbox.leased == 0, timeout=60)
                    wait_for(
                        lambda: (
                            consumer.stats()["pending"] == 0 and _same(client, rules, projection)
                        ),
                        timeout=60,
                        every=0.2,
                    )
        finally:
            stop.set()
            if watcher.is_alive():
                watcher.join(timeout=10)
            consumer.stop()
        final = public_entities(client, rules)
    assert checked >= 2
    assert seen_problems == []
    by_type: dict[str, int] = {}
    for entity in final:
        by_type[entity["type"]] = by_type.get(entity["type"], 0) + 1
        assert problems(entity, rules, euis) == []
    assert by_type["Device"] == len(fleet.devices)
    assert by_type.get("WeatherObserved", 0) + by_type.get("AirQualityObserved", 0) > 0
    assert by_type.get("CrowdFlowObserved", 0) > 0
    assert all(
        re.fullmatch(r"urn:ngsi-ld:Device:p[0-9a-f]{20}", e["id"])
        for e in final
        if e["type"] == "Device"
    )


def _same(client: Client, rules: PublishRules, projection: PublicProjection) -> bool:
    """Whether the public tenant is exactly the projection of the source tenant now."""
    expected: dict[str, dict[str, Any]] = {}
    for rule in rules.types:
        for entity in client.query_all(
            type=rule.type, tenant=rules.source_tenant, context=rule.context_url()
        ):
            projected = projection.projector.project(entity)
            if projected is not None:
                expected[projected["id"]] = projected
    actual = {e["id"]: e for e in public_entities(client, rules)}
    return actual == expected


def weather_entity(entity_id: str, temperature: float, humidity: float) -> dict[str, Any]:
    return {
        "id": entity_id,
        "type": "WeatherObserved",
        "temperature": {"type": "Property", "value": temperature},
        "relativeHumidity": {"type": "Property", "value": humidity},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [6.77777, 51.22222]},
        },
    }


def test_resync_rebuilds_the_public_tenant_and_deletions_follow_the_source(
    broker: RunningBroker, tmp_path: Path
) -> None:
    tenant, public = "src" + uuid.uuid4().hex[:8], "pub" + uuid.uuid4().hex[:8]
    rules = PublishRules.from_mapping({**RULES, "source_tenant": tenant, "target_tenant": public})
    weather = rules.rule("WeatherObserved")
    assert weather is not None
    context = weather.context_url()
    with Client(broker.url, profile="embedded") as client:
        client.batch_upsert(
            [weather_entity(f"urn:ngsi-ld:WeatherObserved:w{i}", 10.0 + i, 0.5) for i in range(3)],
            tenant=tenant,
            context=context,
        )
        # something the rules do not produce: removed by the re-sync
        client.create(
            {
                "id": "urn:ngsi-ld:Thing:stale",
                "type": "Thing",
                "secret": {"type": "Property", "value": 1},
            },
            tenant=public,
        )
        projection = PublicProjection(rules, client=client, key=KEY)
        report = projection.resync()
        assert report.to_json() == {"read": 3, "written": 3, "deleted": 1, "failed": []}
        found = {e["id"]: e for e in public_entities(client, rules)}
        assert sorted(found) == [f"urn:ngsi-ld:WeatherObserved:w{i}" for i in range(3)]
        assert found["urn:ngsi-ld:WeatherObserved:w1"]["temperature"]["value"] == 11.0
        assert "relativeHumidity" not in found["urn:ngsi-ld:WeatherObserved:w1"]
        assert client.query_all(type="Thing", tenant=public) == []

        consumer = Consumer("publish", sinks=[projection])
        consumer.start()
        try:
            with serve_in_thread(consumer) as receiver:
                projection.subscribe(receiver.url)
                client.delete("urn:ngsi-ld:WeatherObserved:w0", tenant=tenant)
                client.update_attrs(
                    "urn:ngsi-ld:WeatherObserved:w2",
                    {"temperature": {"type": "Property", "value": 30.5}},
                    tenant=tenant,
                    context=context,
                )
                wait_for(
                    lambda: (
                        _same(client, rules, projection)
                        and len(public_entities(client, rules)) == 2
                    ),
                    timeout=30,
                    every=0.1,
                )
        finally:
            consumer.stop()
        found = {e["id"]: e for e in public_entities(client, rules)}
        assert found["urn:ngsi-ld:WeatherObserved:w2"]["temperature"]["value"] == 30.5
        # a second re-sync has nothing to do
        assert projection.resync().to_json() == {
            "read": 2,
            "written": 2,
            "deleted": 0,
            "failed": [],
        }
