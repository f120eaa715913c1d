"""`drehscheibe subscriptions ...` as real subprocesses against the embedded broker."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.consumers import Consumer, SharedSecret
from ngsi import Client
from tests.conftest import Mosquitto, free_port
from tests.subscriptions._support import (
    TRANSPORTATION,
    Broker,
    broker_with,
    run_cli,
    write_file,
)

GOLDEN = Path(__file__).parent / "golden"
_ID = re.compile(r"urn:ngsi-ld:Subscription:[0-9a-f-]{36}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with broker_with(tmp_path_factory.mktemp("broker")) as running:
        yield running


def cli(broker: Broker, *args: str, tenant: str | None = None) -> tuple[int, str, str]:
    extra = ["--broker", broker.url]
    if tenant:
        extra += ["--tenant", tenant]
    result = run_cli(*args, *extra)
    return result.returncode, result.stdout, result.stderr


def cli_file(broker: Broker, *args: str) -> tuple[int, str, str]:
    result = run_cli(*args, "--broker", broker.url)
    return result.returncode, result.stdout, result.stderr


def test_one_by_one(broker: Broker) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    code, out, err = cli(
        broker,
        "subscriptions",
        "create",
        "--type",
        "TrafficFlowObserved",
        "--watch",
        "intensity,occupancy",
        "--q",
        "intensity>100",
        "--endpoint",
        "http://127.0.0.1:9/notify",
        "--receiver-info",
        "X-Secret=hush",
        "--name",
        "by-hand",
        tenant=tenant,
    )
    assert code == 0, err
    sid = out.strip()
    assert sid.startswith("urn:ngsi-ld:Subscription:")
    with Client(broker.url, tenant=tenant) as client:
        created = client.retrieve_subscription(sid, context=TRANSPORTATION)
        assert created.jsonld_context == TRANSPORTATION
        assert created.watched_attributes == ["intensity", "occupancy"]

        code, out, err = cli(broker, "subscriptions", "show", sid, tenant=tenant)
        assert code == 0, err
        shown = json.loads(out)
        assert shown["entities"] == [{"type": "TrafficFlowObserved"}]
        assert shown["notification"]["endpoint"]["receiverInfo"][0]["value"].startswith("••••")
        assert "hush" not in out

        code, out, err = cli(
            broker, "subscriptions", "update", sid, "--q", "intensity>200", tenant=tenant
        )
        assert code == 0, err
        assert client.retrieve_subscription(sid).q == "intensity>200"

        code, out, err = cli(broker, "subscriptions", "pause", sid, tenant=tenant)
        assert code == 0, err
        code, out, err = cli(broker, "subscriptions", "list", "--output", "json", tenant=tenant)
        assert code == 0, err
        (listed,) = json.loads(out)
        assert (listed["id"], listed["status"], listed["isActive"]) == (sid, "paused", False)

        code, out, err = cli(broker, "subscriptions", "list", tenant=tenant)
        assert code == 0, err
        for column in ("id", "name", "status", "timesSent", "lastSuccess", "lastFailure"):
            assert column in out
        assert "by-hand" in out
        assert "paused" in out

        assert cli(broker, "subscriptions", "resume", sid, tenant=tenant)[0] == 0
        assert client.retrieve_subscription(sid).status == "active"

        assert cli(broker, "subscriptions", "delete", sid, tenant=tenant)[0] == 0
        assert client.list_subscriptions() == []
    code, out, err = cli(broker, "subscriptions", "show", sid, tenant=tenant)
    assert code == 4
    assert "Traceback" not in err


def test_create_refuses_what_orion_ld_refuses(broker: Broker) -> None:
    code, _, err = cli(
        broker,
        "subscriptions",
        "create",
        "--type",
        "TrafficFlowObserved",
        "--watch",
        "intensity",
        "--time-interval",
        "60",
        "--endpoint",
        "http://127.0.0.1:9/",
    )
    assert code == 2
    assert "periodic" in err
    code, _, err = cli(
        broker,
        "subscriptions",
        "create",
        "--type",
        "X",
        "--expires-at",
        "2000-01-01T00:00:00Z",
        "--endpoint",
        "http://127.0.0.1:9/",
    )
    assert code == 2
    assert "past" in err


def test_create_from_a_file(broker: Broker, tmp_path: Path) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    path = write_file(
        tmp_path / "sub.yaml",
        "type: Subscription\nentities: [{type: AirQualityObserved}]\nwatchedAttributes: [no2]\n"
        "jsonldContext: https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld\n"
        "notification: {endpoint: {uri: 'http://127.0.0.1:9/'}}\n",
    )
    code, out, err = cli(broker, "subscriptions", "create", "-f", str(path), tenant=tenant)
    assert code == 0, err
    code, shown, _ = cli(broker, "subscriptions", "show", out.strip(), tenant=tenant)
    assert json.loads(shown)["watchedAttributes"] == ["no2"]


FILE = """\
project: golden
tenant: {tenant}
consumers:
  - name: traffic
    kind: traffic
    endpoint: {{uri: http://127.0.0.1:9/traffic, receiverInfo: {{X-Secret: hush}}}}
    subscriptions:
      - name: flow
        template: traffic.flow
        params: {{minIntensity: {minimum}}}
      - name: parking
        template: traffic.parking
        params: {parking}
  - name: environment
    kind: environment
    endpoint: http://127.0.0.1:9/environment
    subscriptions:
      - name: alerts
        template: environment.alerts
        params: {{rules: [{{type: AirQualityObserved, attribute: no2, above: 200}}]}}
{extra}"""


def consumers_file(
    path: Path, tenant: str, *, minimum: int = 10, parking: str = "{}", extra: str = ""
) -> Path:
    return write_file(
        path, FILE.format(tenant=tenant, minimum=minimum, parking=parking, extra=extra)
    )


def test_apply_twice_is_a_no_op_and_diff_is_stable_and_readable(
    broker: Broker, tmp_path: Path
) -> None:
    tenant = "golden"
    old = """\
  - name: old
    kind: custom
    endpoint: http://127.0.0.1:9/old
    subscriptions:
      - {name: gone, entities: [{type: TrafficFlowObserved}], watchedAttributes: [intensity]}
"""
    first = consumers_file(tmp_path / "c.yaml", tenant, extra=old)
    code, out, err = cli_file(broker, "subscriptions", "apply", "-f", str(first))
    assert code == 0, err
    assert "applied: 5 changes" in out
    with Client(broker.url, tenant=tenant) as client:
        ids = {s.subscription_name: s.id for s in client.list_subscriptions()}
    code, out, err = cli_file(broker, "subscriptions", "apply", "-f", str(first))
    assert code == 0, err
    assert "0 to create, 0 to update, 0 to recreate, 0 to delete; 5 unchanged." in out
    assert "applied: 0 changes" in out
    with Client(broker.url, tenant=tenant) as client:
        assert {s.subscription_name: s.id for s in client.list_subscriptions()} == ids

    # flow's threshold changes (an update in place); parking loses its spots part and the
    # consumer "old" leaves the file: both are reported, kept until --prune.
    edited = consumers_file(tmp_path / "c.yaml", tenant, minimum=25, parking="{spots: false}")
    code, out, err = cli_file(broker, "subscriptions", "diff", "-f", str(edited), "--exit-code")
    assert code == 1, err
    again = cli_file(broker, "subscriptions", "diff", "-f", str(edited))[1]
    assert out == again
    rendered = _ID.sub("<id>", out)
    golden = GOLDEN / "diff.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert rendered == golden.read_text()
    assert "hush" not in out

    code, out, err = cli_file(broker, "subscriptions", "apply", "-f", str(edited), "--dry-run")
    assert code == 0, err
    assert "dry run: nothing changed" in out
    code, out, err = cli_file(broker, "subscriptions", "apply", "-f", str(edited))
    assert code == 0, err
    assert "kept golden/old/gone" in err
    with Client(broker.url, tenant=tenant) as client:
        now = {s.subscription_name: s for s in client.list_subscriptions(context=TRANSPORTATION)}
    assert now["golden/traffic/flow"].id == ids["golden/traffic/flow"]
    assert now["golden/traffic/flow"].q == "intensity>=25"
    assert set(now) == set(ids)
    code, out, err = cli_file(
        broker, "subscriptions", "apply", "-f", str(edited), "--prune", "--output", "json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["plan"]["summary"]["delete"] == 2
    assert sorted(a["name"] for a in data["applied"]) == [
        "golden/old/gone",
        "golden/traffic/parking.spots",
    ]
    with Client(broker.url, tenant=tenant) as client:
        assert len(client.list_subscriptions()) == 3


def test_an_invalid_file_exits_6_with_file_line_and_path(broker: Broker, tmp_path: Path) -> None:
    path = write_file(
        tmp_path / "bad.yaml",
        "project: x\nconsumers:\n  - name: a\n    kind: nope\n    subscriptions: []\n",
    )
    code, _out, err = cli_file(broker, "subscriptions", "apply", "-f", str(path))
    assert code == 6
    assert f"{path}:4: consumers/0/kind:" in err
    assert "Traceback" not in err


def test_unreachable_broker_exits_3(tmp_path: Path) -> None:
    path = write_file(tmp_path / "c.yaml", "project: x\nconsumers: []\n")
    result = run_cli(
        "subscriptions", "diff", "-f", str(path), "--broker", f"http://127.0.0.1:{free_port()}"
    )
    assert result.returncode == 3
    assert "broker unreachable" in result.stderr


def test_export_writes_a_file_that_diffs_clean(broker: Broker, tmp_path: Path) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    path = consumers_file(tmp_path / "c.yaml", tenant)
    assert cli_file(broker, "subscriptions", "apply", "-f", str(path))[0] == 0
    exported = tmp_path / "exported.yaml"
    code, _out, err = cli(
        broker,
        "subscriptions",
        "export",
        "--project",
        "golden",
        "--owned-only",
        "--tenant",
        tenant,
        "--out",
        str(exported),
    )
    assert code == 0, err
    assert "TRAFFIC_X_SECRET" in err
    assert "hush" not in exported.read_text()
    result = run_cli(
        "subscriptions",
        "diff",
        "-f",
        str(exported),
        "--exit-code",
        "--broker",
        broker.url,
        env={**os.environ, "TRAFFIC_X_SECRET": "hush", "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_sends_a_sample_notification_and_reports_the_answer(
    broker: Broker, tmp_path: Path
) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    got: list[object] = []
    consumer = Consumer("probe", secret=SharedSecret(header="X-Secret", value="hush"))
    consumer.on_change(got.append)
    with consumer.serve() as running:
        code, out, err = cli(
            broker,
            "subscriptions",
            "create",
            "--type",
            "AirQualityObserved",
            "--endpoint",
            running.url,
            "--receiver-info",
            "X-Secret=hush",
            tenant=tenant,
        )
        sid = out.strip()
        code, out, err = cli(
            broker, "subscriptions", "test", sid, "--output", "json", tenant=tenant
        )
        assert code == 0, err
        result = json.loads(out)
        assert result["status"] == 200
        assert result["ok"] is True
        assert result["elapsedMs"] > 0
        assert '"accepted":1' in result["body"]
        consumer.drain()
        assert len(got) == 1

        code, out, err = cli(broker, "subscriptions", "test", "--endpoint", running.url)
        assert code == 4
        assert "status: 401" in out
        assert "X-Secret" in out
    code, out, err = cli(
        broker, "subscriptions", "test", "--endpoint", f"http://127.0.0.1:{free_port()}/n"
    )
    assert code == 3
    assert "error:" in out


@pytest.mark.mqtt
def test_test_publishes_to_an_mqtt_endpoint(broker: Broker, mosquitto: Mosquitto) -> None:
    code, out, err = cli(
        broker,
        "subscriptions",
        "test",
        "--endpoint",
        f"mqtt://127.0.0.1:{mosquitto.port}/city/test",
        "--output",
        "json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] is True
    assert "published to topic 'city/test'" in result["note"]
