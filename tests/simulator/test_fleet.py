"""The simulated fleet: sites, deterministic identities, spreading beyond the named sites,
the fleet file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agents.profiles import ProfileCatalog
from agents.registry import RegisteredDevice
from agents.simulator import (
    DUESSELDORF,
    KINDS,
    SUPPORTED_PROFILES,
    FleetError,
    build_fleet,
    distance_m,
    load_fleet,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet-duesseldorf.yaml"


def test_every_kind_has_a_builtin_profile_with_a_value_model() -> None:
    catalog = ProfileCatalog()
    for spec in KINDS.values():
        assert spec.profile in catalog.names()
        assert spec.profile in SUPPORTED_PROFILES


def test_duesseldorf_sites_are_in_the_city_and_cover_the_named_streets() -> None:
    names = {site.name for site in DUESSELDORF.sites}
    for street in (
        "Corneliusstraße",
        "Merowingerstraße",
        "Dorotheenstraße",
        "Heinrich-Heine-Allee",
        "Bolkerstraße",
        "Kurze Straße",
        "Andreasstraße",
        "Kö-Galerie",
        "Schadow Arkaden",
        "Rheinuferstraße",
        "Königsallee",
        "Pegel Düsseldorf (Rhein)",
    ):
        assert street in names
    lon0, lat0 = DUESSELDORF.center
    for site in DUESSELDORF.sites:
        assert distance_m(lon0, lat0, site.lon, site.lat) < 15_000, site.name
    # The Altstadt's night-life streets are within a few hundred metres of each other.
    altstadt = [s for s in DUESSELDORF.sites if s.kind == "noise"]
    for site in altstadt:
        assert distance_m(6.7735, 51.2262, site.lon, site.lat) < 600, site.name


def test_a_small_fleet_mixes_the_kinds() -> None:
    fleet = build_fleet(9)
    assert Counter(d.kind for d in fleet.devices) == Counter(set(KINDS))


def test_the_fleet_is_deterministic_and_the_seed_changes_identities() -> None:
    first, again, other = build_fleet(30, seed=5), build_fleet(30, seed=5), build_fleet(30, seed=6)
    assert first == again
    assert [d.device_id for d in first.devices] == [d.device_id for d in other.devices]
    assert {d.dev_eui for d in first.devices}.isdisjoint({d.dev_eui for d in other.devices})
    for device in first.devices:
        assert int(device.dev_eui[:2], 16) & 0x02, "locally administered EUI-64"
        assert not int(device.dev_eui[:2], 16) & 0x01
        assert device.dev_addr.startswith(("26", "27"))


def test_growing_a_fleet_keeps_the_devices_it_had() -> None:
    small, large = build_fleet(20, seed=1), build_fleet(200, seed=1)
    assert large.devices[:20] == small.devices


def test_extra_devices_spread_around_their_sites_with_unique_names() -> None:
    fleet = build_fleet(len(DUESSELDORF.sites) * 4, seed=2)
    sites = {site.name: site for site in DUESSELDORF.sites}
    assert len({d.dev_eui for d in fleet.devices}) == len(fleet.devices)
    assert len({d.device_id for d in fleet.devices}) == len(fleet.devices)
    assert len({d.measuring_point for d in fleet.devices}) == len(fleet.devices)
    for device in fleet.devices:
        site = sites[device.site]
        far = distance_m(site.lon, site.lat, *device.location)
        assert far <= (70 if device.kind == "parking" else 400), device.device_id
        assert len(device.device_id) <= 36
        # A valid registration: the measuring point is a name the registry accepts.
        RegisteredDevice(
            dev_eui=device.dev_eui, profile=device.profile, measuring_point=device.measuring_point
        )
    spots = [d for d in fleet.devices if d.site == "Kö-Galerie"]
    assert [d.name for d in spots] == [f"Parken Kö-Galerie Stellplatz {k}" for k in (1, 2, 3, 4)]
    assert len({d.location for d in spots}) == 4


def test_ten_thousand_devices() -> None:
    fleet = build_fleet(10_000, seed=3)
    assert len({d.dev_eui for d in fleet.devices}) == 10_000
    assert max(len(d.device_id) for d in fleet.devices) <= 36


def test_kinds_filter_and_errors() -> None:
    fleet = build_fleet(10, kinds=["parking"])
    assert {d.profile for d in fleet.devices} == {"parking-occupancy-lpp"}
    with pytest.raises(FleetError, match="unknown kind"):
        build_fleet(3, kinds=["volcano"])
    with pytest.raises(FleetError, match="unknown city 'atlantis'"):
        build_fleet(3, city="atlantis")
    with pytest.raises(FleetError, match="at least one device"):
        build_fleet(0)


def test_the_fleet_file_round_trips(tmp_path: Path) -> None:
    fleet = build_fleet(25, seed=4).revised(network_server="chirpstack-v4")
    path = tmp_path / "fleet.yaml"
    fleet.write_yaml(path)
    assert load_fleet(path) == fleet
    assert fleet.tenant == "Düsseldorf"
    assert all(d.dev_addr[:2] in ("00", "01") for d in fleet.devices)


def test_a_broken_fleet_file_names_the_field(tmp_path: Path) -> None:
    document = EXAMPLE.read_text(encoding="utf-8").replace("dev_eui: ", "dev_eui: XY", 1)
    path = tmp_path / "broken.yaml"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(FleetError, match=r"broken.yaml: devices\.0\.dev_eui"):
        load_fleet(path)


def test_the_example_fleet_file_is_the_duesseldorf_fleet() -> None:
    fleet = load_fleet(EXAMPLE)
    assert fleet == build_fleet(len(DUESSELDORF.sites), seed=1)
    assert {d.site for d in fleet.devices} == {s.name for s in DUESSELDORF.sites}
