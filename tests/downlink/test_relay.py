"""The agent's relay without network: which commands it serves, and what it records."""

from __future__ import annotations

from pathlib import Path

from agents.downlink import DownlinkRelay, DownlinkSender, DownlinkStore, NetworkIdentity
from agents.profiles import ProfileCatalog
from agents.registry import RegisteredDevice, Registry

EUI = "70B3D57ED00D0009"


def notification(value: object) -> dict[str, object]:
    return {
        "type": "Notification",
        "data": [
            {
                "id": f"urn:ngsi-ld:Device:{EUI}",
                "type": "Device",
                "devEUI": {"type": "Property", "value": EUI},
                "setReportingInterval": {"type": "Property", "value": value},
            }
        ],
    }


def test_commands_only_for_heard_devices_and_every_attempt_recorded(tmp_path: Path) -> None:
    catalog = ProfileCatalog(None)
    registry = Registry(profiles=catalog)
    device = RegisteredDevice(dev_eui=EUI, profile="temperature-humidity-lpp")
    registry.apply_notification({"data": [registry.complete(device).to_entity()]})
    store = DownlinkStore.in_data_dir(tmp_path)
    relay = DownlinkRelay(
        store,
        DownlinkSender(store, {}, client_id_prefix="t"),
        registries={None: registry},
        catalog=catalog,
    )
    try:
        assert relay.commands() == ["setReportingInterval"]
        # not heard by this agent: left to the agent that hears it
        assert (
            relay.handle_notification(
                notification(600), command="setReportingInterval", tenant=None
            )
            == []
        )
        assert relay.counters["commands_elsewhere"] == 1
        assert store.list() == []
        store.learn(NetworkIdentity(dev_eui=EUI, source="gone", network_server="tts"))
        (record,) = relay.handle_notification(
            notification(600), command="setReportingInterval", tenant=None
        )
        # the source it was heard through is not configured any more: recorded as FAILED
        assert (record.status, record.command, record.actor) == (
            "FAILED",
            "setReportingInterval",
            f"ngsi-ld:urn:ngsi-ld:Device:{EUI}",
        )
        assert record.payload == bytes.fromhex("016400000258")
        assert "no MQTT source" in (record.detail or "")
        assert relay.counters["command_failures"] == 1
        # the same notification again (a broker retrying) is not sent twice
        again = {**notification(700), "id": "urn:ngsi-ld:Notification:1"}
        assert (
            len(relay.handle_notification(again, command="setReportingInterval", tenant=None)) == 1
        )
        assert relay.handle_notification(again, command="setReportingInterval", tenant=None) == []
        assert relay.counters["notifications_repeated"] == 1
        # a deleted command attribute is no command
        assert (
            relay.handle_notification(
                notification("urn:ngsi-ld:null"), command="setReportingInterval", tenant=None
            )
            == []
        )
    finally:
        relay.stop()
