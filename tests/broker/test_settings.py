"""Broker settings: validation of the fields, the notification host policy (allow-list and the
default rule) enforced over real HTTP at create, update and send time, the notification timeout
and the history retention reaching their extensions."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from ngsi.broker import History, SubscriptionService
from ngsi.broker._cache import EntityCache
from ngsi.broker._settings import BrokerSettings
from ngsi.broker._subscriptions_model import NotificationHosts
from tests.broker.conftest import RunningBroker, start_broker
from tests.broker.test_notif_support import API, receiver, running_broker, silent_port

JSON = {"Content-Type": "application/json"}


def subscription(uri: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "Subscription",
        "entities": [{"type": "Sensor"}],
        "notification": {"endpoint": {"uri": uri}},
        **extra,
    }


def extras(running: RunningBroker) -> dict[str, Any]:
    app: Any = running.server.config.app
    found: dict[str, Any] = app.state.broker.extras
    return found


# --- fields -----------------------------------------------------------------------------------


def test_allow_hosts_entries_are_normalised(tmp_path: Path) -> None:
    settings = BrokerSettings(
        data_dir=tmp_path,
        notification_allow_hosts=[
            "Consumer.City.Example",
            "*.city.example",
            "10.20.0.0/16",
            "10.20.1.7/16",
            "[fd00::1]",
            "192.0.2.10",
        ],
    )
    assert settings.notification_allow_hosts == [
        "consumer.city.example",
        "*.city.example",
        "10.20.0.0/16",
        "fd00::1",
        "192.0.2.10",
    ]


@pytest.mark.parametrize("entry", ["", "  ", "bad host", "10.0.0.0/33", "http://x.example/", "a/b"])
def test_malformed_allow_hosts_entries_are_refused(tmp_path: Path, entry: str) -> None:
    with pytest.raises(ValidationError, match="notification_allow_hosts"):
        BrokerSettings(data_dir=tmp_path, notification_allow_hosts=[entry])


def test_defaults(tmp_path: Path) -> None:
    settings = BrokerSettings(data_dir=tmp_path)
    assert settings.notification_allow_hosts is None
    assert settings.notification_timeout == 5.0
    assert settings.history_retention_days is None
    assert settings.history_retention_days_by_type == {}
    assert settings.cache_mb == 128


def cache_of(running: RunningBroker) -> EntityCache:
    app: Any = running.server.config.app
    cache: EntityCache = app.state.broker.store.cache
    return cache


def test_the_cache_size_reaches_the_store(tmp_path: Path) -> None:
    with start_broker(tmp_path / "small", cache_mb=3) as small:
        assert cache_of(small).max_bytes == 3 * 1024 * 1024
    with start_broker(tmp_path / "none", cache_mb=0) as none, httpx.Client() as http:
        assert cache_of(none).max_bytes == 0
        entity = {"id": "urn:ngsi-ld:T:1", "type": "T", "v": {"type": "Property", "value": 1}}
        assert http.post(none.api + "/entities", json=entity).status_code == 201
        assert http.get(none.api + "/entities/urn:ngsi-ld:T:1").json()["v"]["value"] == 1
        assert len(cache_of(none)) == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("notification_timeout", 0, "greater than 0"),
        ("cache_mb", -1, "greater than or equal to 0"),
        ("history_retention_days", -1, "greater than 0"),
        ("history_retention_days_by_type", {"AirQualityObserved": 30}, "expanded type IRI"),
        ("history_retention_days_by_type", {"https://example.org/T": 0}, "more than 0 days"),
    ],
)
def test_bad_values_are_refused_with_the_field(
    tmp_path: Path, field: str, value: Any, message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        BrokerSettings(data_dir=tmp_path, **{field: value})
    assert field in str(caught.value)


# --- the host policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("consumer.city.example", True),
        ("203.0.113.5", True),
        ("10.1.2.3", False),
        ("192.168.1.20", False),
        ("fd00::5", False),
        ("127.0.0.1", False),
        ("127.1", False),
        ("2130706433", False),
        ("localhost", False),
        ("api.localhost", False),
        ("::1", False),
        ("[::1]", False),
        ("::ffff:127.0.0.1", False),
        ("169.254.169.254", False),
        ("fe80::1", False),
        ("0.0.0.0", False),
    ],
)
def test_default_rule_off_loopback_keeps_local_hosts_out(host: str, allowed: bool) -> None:
    policy = NotificationHosts.of(None, bind_host="0.0.0.0")
    problem = policy.problem(host)
    assert (problem is None) == allowed
    if problem is not None:
        assert "notification_allow_hosts" in problem


@pytest.mark.parametrize("bind_host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_default_rule_on_loopback_allows_everything(bind_host: str) -> None:
    policy = NotificationHosts.of(None, bind_host=bind_host)
    for host in ("127.0.0.1", "localhost", "169.254.169.254", "consumer.example", "10.0.0.1"):
        assert policy.problem(host) is None


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("10.20.3.4", True),
        ("10.21.0.1", False),
        ("hub.city.example", True),
        ("a.b.city.example", True),
        ("city.example", False),
        ("evilcity.example", False),
        ("consumer.example", True),
        ("CONSUMER.example", True),
        ("fd00::1", True),
        ("fd00::2", False),
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", False),
        ("10.20.3.4.nip.example", False),
    ],
)
def test_allow_list_matches_names_wildcards_addresses_and_networks(
    host: str, allowed: bool
) -> None:
    policy = NotificationHosts.of(
        ["10.20.0.0/16", "*.city.example", "consumer.example", "fd00::1", "127.0.0.0/8"],
        bind_host="0.0.0.0",
    )
    assert (policy.problem(host) is None) == allowed


def test_names_are_not_resolved_against_networks() -> None:
    policy = NotificationHosts.of(["203.0.113.0/24"])
    assert policy.problem("203.0.113.9") is None
    problem = policy.problem("consumer.example")
    assert problem is not None
    assert "'consumer.example'" in problem


# --- over HTTP --------------------------------------------------------------------------------


def test_an_explicit_allow_list_refuses_other_hosts_with_400(tmp_path: Path) -> None:
    with (
        start_broker(
            tmp_path, notification_allow_hosts=["*.city.example", "192.0.2.0/24"]
        ) as running,
        httpx.Client(base_url=running.api, timeout=10) as http,
    ):
        ok = http.post("/subscriptions", json=subscription("https://hub.city.example/n"))
        assert ok.status_code == 201, ok.text
        mqtt = http.post("/subscriptions", json=subscription("mqtt://192.0.2.7:1883/city/t"))
        assert mqtt.status_code == 201, mqtt.text

        refused = http.post("/subscriptions", json=subscription("http://127.0.0.1:8080/n"))
        assert refused.status_code == 400
        problem = refused.json()
        assert problem["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
        assert "'127.0.0.1'" in problem["detail"]
        assert "notification_allow_hosts" in problem["detail"]

        location = running.url + ok.headers["location"]
        moved = http.patch(
            location,
            json={"notification": {"endpoint": {"uri": "http://intranet.example/n"}}},
            headers=JSON,
        )
        assert moved.status_code == 400
        assert "'intranet.example'" in moved.json()["detail"]
        shown = http.get(location).json()
        assert shown["notification"]["endpoint"]["uri"] == "https://hub.city.example/n"


def test_default_rule_of_a_broker_not_on_loopback(tmp_path: Path) -> None:
    # Served on 127.0.0.1 for the test; the settings say where a deployment listens.
    with (
        start_broker(tmp_path, host="0.0.0.0", allow_anonymous=True) as running,
        httpx.Client(base_url=running.api, timeout=10) as http,
    ):
        for uri in ("http://localhost:1026/n", "http://169.254.169.254/latest", "http://[::1]/n"):
            refused = http.post("/subscriptions", json=subscription(uri))
            assert refused.status_code == 400, uri
            assert "notification_allow_hosts" in refused.json()["detail"]
        allowed = http.post("/subscriptions", json=subscription("https://consumer.example/n"))
        assert allowed.status_code == 201


def test_a_stored_subscription_outside_a_narrower_list_fails_without_sending(
    tmp_path: Path,
) -> None:
    with receiver() as rx:
        with running_broker(tmp_path) as broker:
            broker.create_entity(
                {
                    "id": "urn:ngsi-ld:Sensor:s1",
                    "type": "Sensor",
                    "v": {"type": "Property", "value": 1},
                }
            )
            sid = broker.subscribe(subscription(rx.url))
        with running_broker(tmp_path, allow_hosts=["consumer.example"]) as broker:
            broker.patch_attrs("urn:ngsi-ld:Sensor:s1", {"v": {"type": "Property", "value": 2}})
            rx.none_within(1.0)
            shown = broker.client.get(f"{API}/subscriptions/{sid}").json()["notification"]
            assert shown["status"] == "failed"
            assert shown["timesFailed"] == 1


def test_notification_timeout_reaches_the_notifier(tmp_path: Path) -> None:
    with (
        silent_port() as port,
        start_broker(tmp_path, notification_timeout=0.3, notification_retry_for=1.5) as running,
        httpx.Client(base_url=running.api, timeout=10) as http,
    ):
        service = extras(running)["subscriptions"]
        assert isinstance(service, SubscriptionService)
        created = http.post(
            "/subscriptions", json=subscription(f"http://127.0.0.1:{port}/n"), headers=JSON
        )
        assert created.status_code == 201
        entity = {
            "id": "urn:ngsi-ld:Sensor:t1",
            "type": "Sensor",
            "v": {"type": "Property", "value": 1},
        }
        assert http.post("/entities", json=entity).status_code == 201
        # Three attempts of 0.3 s with retry waits of 0.5 s and 1 s: failed within ~3 s, where
        # the default timeout of 5 s would take 16.5 s.
        started = time.monotonic()
        deadline = started + 8
        while True:
            shown = http.get(running.url + created.headers["location"]).json()["notification"]
            if shown.get("status") == "failed":
                break
            assert time.monotonic() < deadline, shown
            time.sleep(0.1)
        assert time.monotonic() - started < 6


def test_history_retention_reaches_the_history(tmp_path: Path) -> None:
    aqo = "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"
    with start_broker(
        tmp_path, history_retention_days=30, history_retention_days_by_type={aqo: 2.5}
    ) as running:
        history = extras(running)["temporal"]
        assert isinstance(history, History)
        assert history.retention == timedelta(days=30)
        assert history.retention_by_type == {aqo: timedelta(days=2.5)}
