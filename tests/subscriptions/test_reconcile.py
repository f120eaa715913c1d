"""Reconciling a consumers file with the embedded broker over real HTTP: plan, apply, ownership,
idempotence, PATCH versus delete + create, duplicates, pruning, pauses, tenants, export."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from agents.subscriptions import (
    Action,
    apply_plan,
    desired_subscriptions,
    export_file,
    parse_consumers_file,
    plan,
)
from ngsi import Client
from tests.subscriptions._support import (
    ENVIRONMENT,
    TRANSPORTATION,
    Broker,
    air_quality,
    broker_with,
    now_text,
    wait_until,
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with broker_with(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture
def client(broker: Broker) -> Iterator[Client]:
    with Client(broker.url) as c:
        yield c


@pytest.fixture
def tenant() -> str:
    """A tenant of its own for each test (the module shares one broker)."""
    return f"t{uuid.uuid4().hex[:10]}"


def consumers(tenant: str, *, flow_params: str = "{minIntensity: 10}", extra: str = "") -> str:
    return f"""
project: city
tenant: {tenant}
consumers:
  - name: traffic
    kind: traffic
    endpoint: http://127.0.0.1:9/traffic
    subscriptions:
      - name: flow
        template: traffic.flow
        params: {flow_params}
      - name: parking
        template: traffic.parking
  - name: planning
    kind: planning
    endpoint: http://127.0.0.1:9/planning
    subscriptions:
      - name: changes
        template: planning.changes
        params: {{types: [TrafficFlowObserved, AirQualityObserved]}}
{extra}
"""


def by_name(client: Client, tenant: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for s in client.list_subscriptions(tenant=tenant):
        data = s.to_dict(include_read_only=True)
        found.setdefault(str(data.get("subscriptionName")), data)
    return found


def test_apply_creates_everything_then_a_second_apply_changes_nothing(
    client: Client, tenant: str
) -> None:
    file = parse_consumers_file(consumers(tenant))
    first = plan(client, file)
    assert first.count(Action.create) == 5
    report = apply_plan(client, first)
    assert report.ok, report.to_json()
    before = by_name(client, tenant)
    assert sorted(before) == [
        "city/planning/changes.environment",
        "city/planning/changes.transportation",
        "city/traffic/flow",
        "city/traffic/parking.sites",
        "city/traffic/parking.spots",
    ]
    second = plan(client, file)
    assert not second.has_changes, second.to_json()
    assert second.count(Action.unchanged) == 5
    apply_plan(client, second)
    after = by_name(client, tenant)
    assert {n: d["id"] for n, d in after.items()} == {n: d["id"] for n, d in before.items()}


def test_the_broker_copy_is_what_the_file_says(client: Client, tenant: str) -> None:
    file = parse_consumers_file(consumers(tenant))
    apply_plan(client, plan(client, file))
    got = client.retrieve_subscription(
        by_name(client, tenant)["city/traffic/flow"]["id"], tenant=tenant, context=TRANSPORTATION
    )
    assert got.entities is not None
    assert [e.type for e in got.entities] == ["TrafficFlowObserved"]
    assert got.q == "intensity>=10"
    assert got.watched_attributes == ["intensity", "occupancy", "averageVehicleSpeed", "congested"]
    assert got.jsonld_context == TRANSPORTATION
    assert got.notification.endpoint.uri == "http://127.0.0.1:9/traffic"


def test_editing_one_subscription_changes_exactly_that_one_in_place(
    client: Client, tenant: str
) -> None:
    apply_plan(client, plan(client, parse_consumers_file(consumers(tenant))))
    before = by_name(client, tenant)
    edited = parse_consumers_file(consumers(tenant, flow_params="{minIntensity: 25}"))
    the_plan = plan(client, edited)
    changed = [c for c in the_plan.changes if c.action is not Action.unchanged]
    assert [(c.action, c.name) for c in changed] == [(Action.update, "city/traffic/flow")]
    assert [(f.path, f.old, f.new) for f in changed[0].fields] == [
        ("q", "intensity>=10", "intensity>=25")
    ]
    assert changed[0].fragment == {"q": "intensity>=25"}
    assert apply_plan(client, the_plan).ok
    after = by_name(client, tenant)
    assert after["city/traffic/flow"]["id"] == before["city/traffic/flow"]["id"]
    assert after["city/traffic/flow"]["q"] == "intensity>=25"
    for name in before:
        if name != "city/traffic/flow":
            assert after[name] == before[name]
    assert not plan(client, edited).has_changes


def test_removing_a_member_recreates_the_subscription(client: Client, tenant: str) -> None:
    apply_plan(client, plan(client, parse_consumers_file(consumers(tenant))))
    old_id = by_name(client, tenant)["city/traffic/flow"]["id"]
    without_q = parse_consumers_file(consumers(tenant, flow_params="{}"))
    the_plan = plan(client, without_q)
    (change,) = [c for c in the_plan.changes if c.action is not Action.unchanged]
    assert change.action is Action.recreate
    assert "q is removed" in change.reason
    report = apply_plan(client, the_plan)
    assert report.ok
    now = by_name(client, tenant)["city/traffic/flow"]
    assert now["id"] != old_id
    assert "q" not in now
    assert len(list(client.list_subscriptions(tenant=tenant))) == 5
    assert not plan(client, without_q).has_changes


def test_a_member_dropped_back_to_its_default_is_patched(client: Client, tenant: str) -> None:
    with_format = consumers(tenant, flow_params="{minIntensity: 10, format: keyValues}")
    apply_plan(client, plan(client, parse_consumers_file(with_format)))
    old_id = by_name(client, tenant)["city/traffic/flow"]["id"]
    without = parse_consumers_file(consumers(tenant, flow_params="{minIntensity: 10}"))
    back = plan(client, without)
    (change,) = [c for c in back.changes if c.action is not Action.unchanged]
    assert change.action is Action.update
    assert [(f.path, f.old, f.new) for f in change.fields] == [
        ("notification.format", "keyValues", None)
    ]
    assert change.fragment is not None
    assert change.fragment["notification"]["format"] == "normalized"
    assert apply_plan(client, back).ok
    assert by_name(client, tenant)["city/traffic/flow"]["id"] == old_id
    assert not plan(client, without).has_changes


def test_subscriptions_not_owned_are_never_touched(client: Client, tenant: str) -> None:
    file = parse_consumers_file(consumers(tenant))
    desired = {d.name: d for d in desired_subscriptions(file)}
    # A hand-made subscription identical to a declared one but without the owned name, one of
    # another project with the same consumer names, and one with no name at all.
    twin = {k: v for k, v in desired["city/traffic/flow"].body.items() if k != "subscriptionName"}
    other = dict(desired["city/traffic/flow"].body, subscriptionName="town/traffic/flow")
    nameless = {
        "type": "Subscription",
        "entities": [{"type": "Sensor"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/traffic"}},
    }
    ids = [
        client.create_subscription(body, tenant=tenant, context=TRANSPORTATION)
        for body in (twin, other, nameless)
    ]
    for prune in (False, True):
        the_plan = plan(client, file, prune=prune)
        assert all(c.id not in ids for c in the_plan.changes), the_plan.to_json()
        assert the_plan.count(Action.create) == 5
    apply_plan(client, plan(client, file, prune=True))
    remaining = {s.id for s in client.list_subscriptions(tenant=tenant)}
    assert set(ids) <= remaining
    assert len(remaining) == 8


def test_never_deduplicated_by_endpoint(client: Client, tenant: str) -> None:
    """Two declared subscriptions with the same endpoint and the same content are two."""
    text = f"""
project: city
tenant: {tenant}
consumers:
  - name: a
    kind: custom
    endpoint: http://127.0.0.1:9/same
    subscriptions:
      - {{name: one, entities: [{{type: TrafficFlowObserved}}], description: same}}
      - {{name: two, entities: [{{type: TrafficFlowObserved}}], description: same}}
"""
    file = parse_consumers_file(text)
    assert apply_plan(client, plan(client, file)).ok
    got = by_name(client, tenant)
    assert sorted(got) == ["city/a/one", "city/a/two"]
    assert got["city/a/one"]["id"] != got["city/a/two"]["id"]
    assert not plan(client, file).has_changes


def test_owned_subscriptions_left_out_of_the_file_are_kept_unless_pruned(
    client: Client, tenant: str
) -> None:
    extra = """
  - name: old
    kind: custom
    endpoint: http://127.0.0.1:9/old
    subscriptions:
      - {name: gone, entities: [{type: TrafficFlowObserved}]}
"""
    apply_plan(client, plan(client, parse_consumers_file(consumers(tenant, extra=extra))))
    gone_id = by_name(client, tenant)["city/old/gone"]["id"]
    smaller = parse_consumers_file(consumers(tenant))
    kept = plan(client, smaller)
    orphans = [c for c in kept.changes if c.action is Action.orphan]
    assert [(c.name, c.id) for c in orphans] == [("city/old/gone", gone_id)]
    assert not kept.has_changes
    apply_plan(client, kept)
    assert "city/old/gone" in by_name(client, tenant)
    pruned = plan(client, smaller, prune=True)
    assert [(c.action, c.name) for c in pruned.changes if c.action is not Action.unchanged] == [
        (Action.delete, "city/old/gone")
    ]
    assert apply_plan(client, pruned).ok
    assert "city/old/gone" not in by_name(client, tenant)
    assert not plan(client, smaller, prune=True).has_changes


def test_duplicates_of_an_owned_name_are_reduced_to_one(client: Client, tenant: str) -> None:
    file = parse_consumers_file(consumers(tenant))
    apply_plan(client, plan(client, file))
    flow = next(d for d in desired_subscriptions(file) if d.name == "city/traffic/flow")
    keeper = by_name(client, tenant)["city/traffic/flow"]["id"]
    stale = dict(flow.body, q="intensity>=999")
    extra_id = client.create_subscription(stale, tenant=tenant, context=TRANSPORTATION)
    the_plan = plan(client, file)
    deletes = [c for c in the_plan.changes if c.action is Action.delete]
    assert [(c.name, c.id) for c in deletes] == [("city/traffic/flow", extra_id)]
    assert "duplicate" in deletes[0].reason
    apply_plan(client, the_plan)
    flows = [
        s
        for s in client.list_subscriptions(tenant=tenant)
        if s.subscription_name == "city/traffic/flow"
    ]
    assert [s.id for s in flows] == [keeper]


def test_a_pause_survives_apply_unless_the_file_sets_is_active(client: Client, tenant: str) -> None:
    file = parse_consumers_file(consumers(tenant))
    apply_plan(client, plan(client, file))
    flow_id = by_name(client, tenant)["city/traffic/flow"]["id"]
    client.update_subscription(flow_id, {"isActive": False}, tenant=tenant)
    assert not plan(client, file).has_changes
    # Even a recreate keeps the pause.
    recreated = parse_consumers_file(consumers(tenant, flow_params="{}"))
    apply_plan(client, plan(client, recreated))
    assert by_name(client, tenant)["city/traffic/flow"]["isActive"] is False
    declared = parse_consumers_file(
        consumers(tenant, flow_params="{}").replace(
            "        template: traffic.flow\n",
            "        template: traffic.flow\n        isActive: true\n",
        )
    )
    the_plan = plan(client, declared)
    (change,) = [c for c in the_plan.changes if c.action is not Action.unchanged]
    assert change.action is Action.update
    assert change.fragment == {"isActive": True}
    apply_plan(client, the_plan)
    assert by_name(client, tenant)["city/traffic/flow"].get("isActive", True) is True


def test_a_changed_context_recreates(client: Client, tenant: str) -> None:
    text = f"""
project: city
tenant: {tenant}
consumers:
  - name: raw
    kind: custom
    endpoint: http://127.0.0.1:9/raw
    subscriptions:
      - {{name: s, entities: [{{type: TrafficFlowObserved}}], watchedAttributes: [intensity]}}
"""
    apply_plan(client, plan(client, parse_consumers_file(text)))
    core = text.replace(
        "watchedAttributes: [intensity]}",
        "watchedAttributes: [intensity], context: 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld'}",
    )
    the_plan = plan(client, parse_consumers_file(core))
    (change,) = [c for c in the_plan.changes if c.action is not Action.unchanged]
    assert change.action is Action.recreate
    assert "@context" in change.reason


def test_tenants_are_kept_apart(client: Client, tenant: str) -> None:
    other = tenant + "b"
    apply_plan(client, plan(client, parse_consumers_file(consumers(tenant))))
    apply_plan(client, plan(client, parse_consumers_file(consumers(other))))
    assert len(by_name(client, tenant)) == 5
    assert len(by_name(client, other)) == 5
    # Pruning one tenant's file that lists no consumers leaves the other tenant alone.
    empty = parse_consumers_file(f"project: city\ntenant: {tenant}\nconsumers: []\n")
    apply_plan(client, plan(client, empty, prune=True))
    assert by_name(client, tenant) == {}
    assert len(by_name(client, other)) == 5


def test_export_then_apply_changes_nothing(client: Client, tenant: str, tmp_path: Path) -> None:
    file = parse_consumers_file(
        consumers(tenant).replace(
            "endpoint: http://127.0.0.1:9/traffic",
            "endpoint: {uri: http://127.0.0.1:9/traffic, receiverInfo: {X-Key: s3cret}}",
        )
    )
    apply_plan(client, plan(client, file))
    exported = export_file(client, project="city", tenants=[tenant], redact=False)
    text = yaml.safe_dump(exported.data, sort_keys=False)
    again = parse_consumers_file(text)
    assert not plan(client, again).has_changes, plan(client, again).to_json()
    redacted = export_file(client, project="city", tenants=[tenant])
    assert "s3cret" not in yaml.safe_dump(redacted.data)
    assert redacted.environment == ["TRAFFIC_X_KEY"]


class _V2Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append((dict(self.headers), json.loads(self.rfile.read(length))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_quantumleap_template_sends_compacted_ngsiv2_notifications(
    client: Client, tenant: str
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _V2Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        text = f"""
project: city
tenant: {tenant}
consumers:
  - name: ql
    kind: quantumleap
    endpoint: http://127.0.0.1:{server.server_address[1]}/v2/notify
    subscriptions:
      - {{name: history, template: quantumleap, params: {{types: [AirQualityObserved]}}}}
"""
        file = parse_consumers_file(text)
        report = apply_plan(client, plan(client, file))
        assert report.ok, report.to_json()
        assert not plan(client, file).has_changes
        exported = export_file(client, project="city", tenants=[tenant])
        again = parse_consumers_file(yaml.safe_dump(exported.data, sort_keys=False))
        assert not plan(client, again).has_changes
        entity = air_quality(7, no2=42.0, at=now_text())
        assert client.batch_upsert([entity], context=ENVIRONMENT, tenant=tenant).ok
        assert wait_until(lambda: _V2Receiver.received, timeout=10)
        headers, body = _V2Receiver.received[-1]
        assert headers["Ngsiv2-AttrsFormat"] == "normalized"
        (data,) = body["data"]
        assert data["id"] == entity["id"]
        assert data["type"] == "AirQualityObserved"
        assert data["no2"]["value"] == 42.0
        assert not any(key.startswith("https://") for key in data)
    finally:
        server.shutdown()
        server.server_close()


def test_export_adopts_subscriptions_made_by_hand(client: Client, tenant: str) -> None:
    client.create_subscription(
        {
            "type": "Subscription",
            "subscriptionName": "made by hand",
            "entities": [{"type": "TrafficFlowObserved"}],
            "notificationTrigger": ["entityCreated"],
            "notification": {"endpoint": {"uri": "http://dashboard.example:8080/in"}},
        },
        tenant=tenant,
        context=TRANSPORTATION,
    )
    exported = export_file(client, project="city", tenants=[tenant])
    (consumer,) = exported.data["consumers"]
    assert (consumer["name"], consumer["kind"], consumer["tenant"]) == (
        "dashboard-example-8080",
        "custom",
        tenant,
    )
    (entry,) = consumer["subscriptions"]
    assert entry["name"] == "made-by-hand"
    assert entry["entities"] == [{"type": "TrafficFlowObserved"}]
    assert entry["context"] == TRANSPORTATION
    assert any("notificationTrigger is left out" in w for w in exported.warnings)
    adopted = parse_consumers_file(__import__("yaml").safe_dump(exported.data, sort_keys=False))
    the_plan = plan(client, adopted)
    assert [(c.action, c.name) for c in the_plan.changes] == [
        (Action.create, "city/dashboard-example-8080/made-by-hand")
    ]
    assert (
        export_file(client, project="city", tenants=[tenant], owned_only=True).data["consumers"]
        == []
    )
