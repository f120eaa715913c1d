"""The registry against the embedded broker over real HTTP: registrations as Device entities,
the SQLite cache, notifications through a real subscription, resync, imports, unknown devices."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.lorawan import Uplink
from agents.profiles import ProfileCatalog
from agents.registry import (
    DEVICE_CONTEXT,
    REGISTRY_ATTRIBUTES,
    Calibration,
    DeviceAlreadyRegistered,
    DeviceNotRegistered,
    RegisteredDevice,
    Registry,
    RegistryError,
)
from ngsi import Client
from tests.conftest import free_port
from tests.registry.conftest import Receiver

_counter = itertools.count(1)


def new_eui() -> str:
    """A DevEUI no other test of the module uses (they share one broker)."""
    return f"70B3D57E{next(_counter):08X}"


@pytest.fixture(scope="module")
def catalog() -> ProfileCatalog:
    return ProfileCatalog()


def registration(dev_eui: str, **changes: Any) -> RegisteredDevice:
    fields: dict[str, Any] = {
        "dev_eui": dev_eui,
        "profile": "air-quality-lpp",
        "name": "Rathaus",
        "measuring_point": f"point-{dev_eui[-4:]}",
        "location": {"type": "Point", "coordinates": [13.4, 52.5]},
    }
    fields.update(changes)
    return RegisteredDevice(**fields)


def test_register_creates_the_device_entity(client: Client, catalog: ProfileCatalog) -> None:
    registry = Registry(client, profiles=catalog)
    eui = new_eui()
    device = registry.register(registration(eui))
    assert device.controlled_property == tuple(catalog.get("air-quality-lpp").controlled_property)
    entity = client.retrieve(device.device_id, context=DEVICE_CONTEXT)
    assert entity["devEUI"]["value"] == eui
    assert entity["profile"]["value"] == "air-quality-lpp"
    assert entity["measuringPoint"]["value"] == f"point-{eui[-4:]}"
    assert entity["controlledProperty"]["value"] == list(device.controlled_property)
    assert registry.get(eui) == device
    assert registry.fetch(eui) == device


def test_register_twice_and_unknown_profiles_are_refused(
    client: Client, catalog: ProfileCatalog
) -> None:
    registry = Registry(client, profiles=catalog)
    eui = new_eui()
    registry.register(registration(eui))
    with pytest.raises(DeviceAlreadyRegistered, match="registered already"):
        registry.register(registration(eui))
    with pytest.raises(DeviceAlreadyRegistered, match="exists already"):
        registry.register(registration(new_eui(), device_id=f"urn:ngsi-ld:Device:{eui}"))
    with pytest.raises(RegistryError, match="no device profile named 'nope'"):
        registry.register(registration(new_eui(), profile="nope"))


def test_update_writes_the_registration_and_keeps_what_others_own(
    client: Client, catalog: ProfileCatalog
) -> None:
    registry = Registry(client, profiles=catalog)
    eui = new_eui()
    device = registry.register(registration(eui, description="old"))
    # what the agent writes on every uplink
    client.batch_upsert(
        [
            {
                "id": device.device_id,
                "type": "Device",
                "batteryLevel": {"type": "Property", "value": 0.5},
            }
        ],
        mode="update",
        context=DEVICE_CONTEXT,
    )
    calibration = Calibration(attribute="temperature", offset=-0.3)
    updated = registry.update(
        eui, profile="temperature-humidity-lpp", description=None, calibration=(calibration,)
    )
    assert updated.profile == "temperature-humidity-lpp"
    assert updated.controlled_property == ("temperature", "humidity")
    entity = client.retrieve(device.device_id, context=DEVICE_CONTEXT)
    assert "description" not in entity
    assert entity["calibration"]["value"] == [calibration.to_wire()]
    assert entity["batteryLevel"]["value"] == 0.5
    assert registry.fetch(eui) == updated
    with pytest.raises(DeviceNotRegistered):
        registry.update(new_eui(), name="x")
    with pytest.raises(RegistryError, match="cannot change dev_eui"):
        registry.update(eui, dev_eui=new_eui())
    with pytest.raises(RegistryError, match="state"):
        registry.update(eui, state="lost")


def test_delete(client: Client, catalog: ProfileCatalog) -> None:
    registry = Registry(client, profiles=catalog)
    eui = new_eui()
    device = registry.register(registration(eui))
    assert registry.delete(eui) == device
    assert registry.fetch(eui) is None
    assert registry.get(eui) is None
    with pytest.raises(DeviceNotRegistered):
        registry.delete(eui)


def test_the_cache_survives_a_restart_without_the_broker(
    client: Client, catalog: ProfileCatalog, tmp_path: Path
) -> None:
    cache = tmp_path / "registry.sqlite"
    registry = Registry(client, cache_path=cache, profiles=catalog)
    eui = new_eui()
    device = registry.register(registration(eui))
    registry.close()
    offline = Client(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    restarted = Registry(offline, cache_path=cache)
    try:
        assert restarted.get(eui) == device
        assert len(restarted) == 1
    finally:
        restarted.close()
        offline.close()


def test_resync_makes_the_cache_match_the_broker(
    client: Client, catalog: ProfileCatalog, tmp_path: Path
) -> None:
    tenant = f"resync{next(_counter)}"
    with Client(client.base_url, tenant=tenant, profile="embedded", timeout=10) as scoped:
        admin = Registry(scoped, profiles=catalog)
        first, second = new_eui(), new_eui()
        admin.register(registration(first))
        agent = Registry(scoped, cache_path=tmp_path / "cache.sqlite")
        assert agent.synced_at is None
        report = agent.resync()
        assert (report.total, report.added) == (1, (first,))
        admin.register(registration(second))
        admin.update(first, name="Neuer Name")
        report = agent.resync()
        assert (report.added, report.updated, report.removed) == ((second,), (first,), ())
        assert agent.get(first) is not None
        assert agent.get(first).name == "Neuer Name"  # type: ignore[union-attr]
        admin.delete(second)
        report = agent.resync()
        assert report.removed == (second,)
        assert agent.get(second) is None
        synced: object = agent.synced_at
        assert synced is not None
        agent.close()
        reopened = Registry(None, cache_path=tmp_path / "cache.sqlite")
        assert [d.dev_eui for d in reopened.list()] == [first]
        reopened.close()


def test_resync_fails_loudly_and_keeps_the_cache(catalog: ProfileCatalog, tmp_path: Path) -> None:
    from ngsi import NgsiTransportError

    with Client(f"http://127.0.0.1:{free_port()}", timeout=0.5) as offline:
        registry = Registry(offline, cache_path=tmp_path / "c.sqlite")
        with pytest.raises(NgsiTransportError):
            registry.resync()
        registry.close()


def test_a_device_registered_while_the_agent_runs_arrives_by_notification(
    client: Client, catalog: ProfileCatalog, receiver: Receiver, tmp_path: Path
) -> None:
    tenant = f"notify{next(_counter)}"
    with Client(client.base_url, tenant=tenant, profile="embedded", timeout=10) as scoped:
        agent = Registry(scoped, cache_path=tmp_path / "agent.sqlite")
        admin = Registry(scoped, profiles=catalog)
        admin.register(registration(new_eui()))  # the tenant exists before the subscription
        agent.resync()
        subscription_id = agent.ensure_subscription(
            receiver.url, receiver_info={"X-Drehscheibe-Token": "s3cret"}
        )
        assert (
            agent.ensure_subscription(receiver.url, receiver_info={"X-Drehscheibe-Token": "s3cret"})
            == subscription_id
        )

        eui = new_eui()
        device = admin.register(registration(eui))
        report = agent.apply_notification(receiver.next())
        assert report.added == (eui,)
        assert agent.get(eui) == device
        assert receiver.headers[-1].get("X-Drehscheibe-Token") == "s3cret"

        # the agent's own writes do not notify; a registration change does
        scoped.batch_upsert(
            [
                {
                    "id": device.device_id,
                    "type": "Device",
                    "rssi": {"type": "Property", "value": -90},
                }
            ],
            mode="update",
            context=DEVICE_CONTEXT,
        )
        admin.update(eui, measuring_point="moved-here", name=None)
        # one change for the changed attributes, one for the removed name: two notifications,
        # or one with both when the second change came while the first was being sent
        updated: list[str] = []
        while len(updated) < 2:
            updated.extend(agent.apply_notification(receiver.next()).updated)
        assert updated == [eui, eui]
        assert agent.get(eui).measuring_point == "moved-here"  # type: ignore[union-attr]
        assert agent.get(eui).name is None  # type: ignore[union-attr]
        assert receiver.bodies.empty()

        admin.delete(eui)
        while True:
            body = receiver.next()
            if any("deletedAt" in entity for entity in body["data"]):
                break
        report = agent.apply_notification(body)
        assert report.removed == (eui,)
        assert agent.get(eui) is None
        agent.close()


def test_the_subscription_watches_only_the_registration() -> None:
    subscription = Registry().subscription("http://agent:8080/notify/devices").to_dict()
    assert subscription["watchedAttributes"] == list(REGISTRY_ATTRIBUTES)
    assert "rssi" not in subscription["watchedAttributes"]
    assert "batteryLevel" not in subscription["watchedAttributes"]
    assert subscription["entities"] == [{"type": "Device"}]
    assert subscription["q"] == "devEUI"
    assert subscription["jsonldContext"] == DEVICE_CONTEXT
    assert "entityDeleted" in subscription["notificationTrigger"]


def test_ensure_subscription_moves_to_a_new_endpoint_and_secret(
    client: Client, catalog: ProfileCatalog
) -> None:
    tenant = f"move{next(_counter)}"
    with Client(client.base_url, tenant=tenant, profile="embedded", timeout=10) as scoped:
        registry = Registry(scoped, profiles=catalog)
        registry.register(registration(new_eui()))

        def receiver_info(subscription_id: str) -> dict[str, str]:
            stored = scoped.retrieve_subscription(subscription_id, context=DEVICE_CONTEXT)
            return {p.key: p.value for p in stored.notification.endpoint.receiver_info or ()}

        first = registry.ensure_subscription("http://127.0.0.1:9/one")
        second = registry.ensure_subscription("http://127.0.0.1:9/two")
        assert first == second
        stored = scoped.retrieve_subscription(first, context=DEVICE_CONTEXT)
        assert stored.notification.endpoint.uri == "http://127.0.0.1:9/two"
        assert receiver_info(first) == {}

        secret = {"X-Drehscheibe-Token": "new-secret"}
        assert registry.ensure_subscription("http://127.0.0.1:9/two", receiver_info=secret) == first
        assert receiver_info(first) == secret

        def modified_at() -> str:
            response = httpx.get(
                f"{client.base_url}/ngsi-ld/v1/subscriptions/{first}",
                params={"options": "sysAttrs"},
                headers={"NGSILD-Tenant": tenant},
            )
            return str(response.json()["modifiedAt"])

        modified = modified_at()
        time.sleep(0.01)
        assert registry.ensure_subscription("http://127.0.0.1:9/two", receiver_info=secret) == first
        assert modified_at() == modified  # nothing to update: not updated
        registry.ensure_subscription("http://127.0.0.1:9/two")
        assert modified_at() != modified
        assert receiver_info(first) == {}


def test_apply_notification_reads_what_brokers_send() -> None:
    registry = Registry()
    device = registration("70B3D57EFF000001")
    entity = device.to_entity()
    assert registry.apply_notification({"data": [entity]}).added == (device.dev_eui,)
    assert registry.apply_notification({"data": [entity]}).updated == ()
    nulled = {**entity, "name": {"type": "Property", "value": "urn:ngsi-ld:null"}}
    report = registry.apply_notification({"data": [nulled]})
    assert report.updated == (device.dev_eui,)
    assert registry.get(device.dev_eui).name is None  # type: ignore[union-attr]
    gateway = {"id": "urn:ngsi-ld:Device:gw-1", "type": "Device"}
    assert registry.apply_notification({"data": [gateway]}).ignored == (gateway["id"],)
    deleted = {"id": device.device_id, "type": "Device", "deletedAt": "2024-05-01T12:00:00Z"}
    assert registry.apply_notification({"data": [deleted]}).removed == (device.dev_eui,)
    assert len(registry) == 0


def test_a_device_id_taken_over_by_another_dev_eui() -> None:
    registry = Registry()
    old = registration("70B3D57EFF000002", device_id="aq-7")
    new = registration("70B3D57EFF000003", device_id="aq-7")
    registry.apply_notification({"data": [old.to_entity()]})
    registry.apply_notification({"data": [new.to_entity()]})
    assert registry.get(old.dev_eui) is None
    assert registry.get(new.dev_eui) == new


# -- imports --------------------------------------------------------------------------------


def test_import_csv_registers_updates_and_reports_bad_rows(
    client: Client, catalog: ProfileCatalog, tmp_path: Path
) -> None:
    registry = Registry(client, profiles=catalog)
    good, other, existing = new_eui(), new_eui(), new_eui()
    registry.register(registration(existing, name="before"))
    path = tmp_path / "devices.csv"
    path.write_text(
        "DevEUI,profile,name,measuring-point,longitude,latitude,owner\n"
        f"{good.lower()},air-quality-lpp,Markt,markt,13.41,52.51,urn:ngsi-ld:Org:a;urn:ngsi-ld:Org:b\n"
        f"{other},noise-level,Schule,,,,\n"
        "1234,air-quality-lpp,Broken,,,,\n"
        f"{new_eui()},nope,Unknown profile,,,,\n"
        f"{existing},air-quality-lpp,after,,,,\n",
        encoding="utf-8",
    )
    report = registry.import_file(path)
    assert report.registered == [good, other]
    assert report.updated == [existing]
    assert [problem.where for problem in report.failed] == ["row 4", "row 5"]
    assert "EUI-64" in report.failed[0].message
    assert "nope" in report.failed[1].message
    markt = registry.fetch(good)
    assert markt is not None
    assert markt.owner == ("urn:ngsi-ld:Org:a", "urn:ngsi-ld:Org:b")
    assert markt.location == {"type": "Point", "coordinates": [13.41, 52.51]}
    assert markt.point == "markt"
    updated = registry.fetch(existing)
    assert updated is not None
    assert updated.name == "after"
    assert updated.measuring_point == f"point-{existing[-4:]}"  # not in the file: kept


def test_import_json_with_calibration(
    client: Client, catalog: ProfileCatalog, tmp_path: Path
) -> None:
    import orjson

    registry = Registry(client, profiles=catalog)
    eui = new_eui()
    path = tmp_path / "devices.json"
    path.write_bytes(
        orjson.dumps(
            {
                "devices": [
                    {
                        "devEUI": eui,
                        "profile": "water-level-lpp",
                        "measuringPoint": "pegel-spree",
                        "location": [13.37, 52.51],
                        "calibration": [
                            {
                                "attribute": "waterLevel",
                                "scale": -1,
                                "offset": 3.2,
                                "validFrom": "2024-01-01T00:00:00Z",
                            }
                        ],
                    },
                    "not an object",
                ]
            }
        )
    )
    report = registry.import_file(path)
    assert report.registered == [eui]
    assert [problem.where for problem in report.failed] == ["item 1"]
    device = registry.fetch(eui)
    assert device is not None
    assert device.calibration[0].scale == -1
    assert device.calibration[0].offset == 3.2


def test_import_refuses_files_it_cannot_read(tmp_path: Path) -> None:
    registry = Registry()
    bad = tmp_path / "devices.csv"
    bad.write_text("serial,profile\n1,x\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="unknown CSV column"):
        registry.import_file(bad)
    (tmp_path / "devices.xml").write_text("<x/>", encoding="utf-8")
    with pytest.raises(RegistryError, match="cannot tell the format"):
        registry.import_file(tmp_path / "devices.xml")


# -- unknown devices --------------------------------------------------------------------------


def unknown_uplink(dev_eui: str) -> Uplink:
    return Uplink(source="tts", dev_eui=dev_eui, device_id="mystery-1", application_id="app1")


def test_unknown_devices_are_counted_and_dropped(client: Client) -> None:
    registry = Registry(client, unknown_devices="drop")
    outcome = registry.unknown_device(unknown_uplink(new_eui()))
    assert outcome.action == "dropped"
    assert registry.counters["unknown_dropped"] == 1


def test_unknown_devices_can_be_registered_as_unprovisioned(client: Client) -> None:
    registry = Registry(client, unknown_devices="register")
    eui = new_eui()
    outcome = registry.unknown_device(unknown_uplink(eui))
    assert outcome.action == "registered"
    assert outcome.device is not None
    assert outcome.device.state == "unprovisioned"
    assert not outcome.device.maps_uplinks
    stored = registry.fetch(eui)
    assert stored is not None
    assert (stored.name, stored.state, stored.profile) == ("mystery-1", "unprovisioned", None)
    assert registry.unknown_device(unknown_uplink(eui)).action == "registered"
    assert registry.counters["unknown_registered"] == 1


def test_registering_unknown_devices_waits_while_the_broker_is_away() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", timeout=0.5) as offline:
        registry = Registry(offline, unknown_devices="register")
        eui = new_eui()
        first = registry.unknown_device(unknown_uplink(eui), now=100.0)
        assert first.action == "pending"
        assert "could not register" in first.message
        assert registry.unknown_device(unknown_uplink(eui), now=130.0).message == (
            "registration pending"
        )
        assert registry.counters["unknown_register_failed"] == 1
        assert registry.counters["unknown_dropped"] == 1


def test_an_admin_completes_an_unprovisioned_device(
    client: Client, catalog: ProfileCatalog
) -> None:
    registry = Registry(client, profiles=catalog, unknown_devices="register")
    eui = new_eui()
    registry.unknown_device(unknown_uplink(eui))
    device = registry.update(eui, profile="noise-level", state="active")
    assert device.maps_uplinks
    assert device.controlled_property == ("noiseLevel",)
