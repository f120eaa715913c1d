"""A simulated fleet: devices at a city's sites, the gateways that hear them, and the network
server's identifiers for all of them.

    fleet = build_fleet(50, city="duesseldorf", seed=1)           # deterministic
    fleet.write_yaml("fleet.yaml"); load_fleet("fleet.yaml") == fleet

`build_fleet(n)` takes the city's named sites in an order that mixes the kinds (so 9 devices
are one of each), and when `n` is larger than the named sites, spreads further devices around
them: more parking spots in the same garage, further sensors along the same road. Everything
(DevEUIs, DevAddrs, positions of the extra devices, ChirpStack UUIDs) follows from the city,
the seed and the device's ID, so growing a fleet keeps the devices it had.

DevEUIs are locally administered EUI-64s (bit 0x02 of the first byte set), so they never
collide with a manufacturer's.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.simulator._sites import CITIES, KINDS, City, GatewaySite, Kind, Site

__all__ = [
    "Fleet",
    "FleetDevice",
    "FleetError",
    "NetworkServer",
    "build_fleet",
    "default_tenant",
    "load_fleet",
]

NetworkServer = Literal["tts", "chirpstack-v4"]
"""The network server whose messages the simulator writes."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_KIND_ORDER: tuple[Kind, ...] = (
    "air-quality",
    "noise",
    "parking",
    "traffic",
    "water-level",
    "people",
    "soil",
    "weather",
    "microclimate",
)


class FleetError(ValueError):
    """A fleet that cannot be built or read: the message names the device or field."""


class FleetDevice(BaseModel):
    """One simulated device.

    `dev_eui` is 16 uppercase hex digits; `device_id` the network server's device ID (The Things
    Stack's, at most 36 of `a-z0-9-`; ChirpStack's device name); `profile` a device profile
    name; `measuring_point` the place its observations belong to; `location` is (lon, lat).
    `kind` and `params` drive the value model; `site` names the place it is at.
    """

    model_config = _FROZEN

    dev_eui: str = Field(pattern=r"^[0-9A-F]{16}$")
    device_id: str = Field(pattern=r"^[a-z0-9](?:[-]?[a-z0-9]){2,35}$")
    name: str
    profile: str
    measuring_point: str = Field(pattern=r"^[A-Za-z0-9._~-]{1,200}$")
    kind: Kind
    site: str
    location: tuple[float, float]
    altitude: float = 35.0
    params: dict[str, float] = Field(default_factory=dict)
    dev_addr: str = Field(pattern=r"^[0-9A-F]{8}$")


class Fleet(BaseModel):
    """A fleet and its network: which network server, its application and tenant, the
    gateways, the devices. `seed` makes the values and radio noise reproducible.

    The Things Stack: topics `v3/{application}[@{tenant}]/devices/{device_id}/up` (`tenant`
    is None for the open-source edition, `ttn` on The Things Network). ChirpStack v4:
    `application/{application_uuid}/device/{dev_eui}/event/up`, with `application` as the
    application's name and `tenant` as the tenant's name (`default_tenant`).
    """

    model_config = _FROZEN

    city: str
    city_name: str
    timezone: str = "Europe/Berlin"
    seed: int = 0
    network_server: NetworkServer = "tts"
    application: str = Field(default="city-sensors", pattern=r"^[a-z0-9](?:[-]?[a-z0-9]){1,35}$")
    tenant: str | None = "ttn"
    application_uuid: str = ""
    tenant_uuid: str = ""
    join_eui: str = Field(default="", pattern=r"^(?:[0-9A-F]{16})?$")
    gateways: tuple[GatewaySite, ...]
    devices: tuple[FleetDevice, ...]

    @model_validator(mode="after")
    def _identifiers(self) -> Fleet:
        if not self.application_uuid:
            object.__setattr__(self, "application_uuid", self._uuid("application"))
        if not self.tenant_uuid:
            object.__setattr__(self, "tenant_uuid", self._uuid("tenant"))
        if not self.join_eui:
            object.__setattr__(self, "join_eui", _digest(f"{self.city}|{self.seed}|join", 8))
        seen_eui: set[str] = set()
        seen_id: set[str] = set()
        for device in self.devices:
            if device.dev_eui in seen_eui:
                raise ValueError(f"DevEUI {device.dev_eui} appears twice in the fleet")
            if device.device_id in seen_id:
                raise ValueError(f"device ID {device.device_id!r} appears twice in the fleet")
            seen_eui.add(device.dev_eui)
            seen_id.add(device.device_id)
        if not self.gateways:
            raise ValueError("a fleet needs at least one gateway")
        return self

    def _uuid(self, what: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"drehscheibe-simulator:{self.city}:{what}"))

    def profile_uuid(self, profile: str) -> str:
        """ChirpStack's device-profile UUID for a profile name (stable per city)."""
        return self._uuid(f"device-profile:{profile}")

    def device(self, key: str) -> FleetDevice:
        """The device with this DevEUI (any case) or device ID; `KeyError` otherwise."""
        wanted = key.upper()
        for device in self.devices:
            if device.dev_eui == wanted or device.device_id == key:
                return device
        raise KeyError(f"no device {key!r} in the fleet")

    def revised(self, **changes: Any) -> Fleet:
        """The same fleet with some fields changed (`network_server`, `application`,
        `tenant`, `seed`...), validated again. A new network server gives the devices DevAddrs
        from its address range."""
        document = self.model_dump()
        document.update(changes)
        server = changes.get("network_server")
        if server is not None and server != self.network_server:
            if "tenant" not in changes and self.tenant == default_tenant(
                self.network_server, self.city_name
            ):
                document["tenant"] = default_tenant(server, self.city_name)
            document["devices"] = [
                {**device, "dev_addr": _dev_addr(server, device["dev_eui"])}
                for device in document["devices"]
            ]
        try:
            return Fleet.model_validate(document)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise FleetError(f"{where}: {first['msg']}") from None

    def to_document(self) -> dict[str, Any]:
        """The fleet as a YAML/JSON document (what `load_fleet` reads)."""
        document = self.model_dump(mode="json")
        document["gateways"] = [
            {k: v for k, v in gateway.items() if v is not None} for gateway in document["gateways"]
        ]
        return document

    def write_yaml(self, path: str | Path) -> None:
        """Write the fleet as YAML (readable, editable, and read back by `load_fleet`)."""
        text = "# A simulated LoRaWAN fleet: drehscheibe simulate run --fleet THIS_FILE\n"
        text += yaml.dump(
            self.to_document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
        )
        Path(path).write_text(text, encoding="utf-8")

    def registrations(self) -> list[dict[str, Any]]:
        """The devices as rows of a `drehscheibe devices import` JSON file."""
        return [
            {
                "dev_eui": device.dev_eui,
                "profile": device.profile,
                "name": device.name,
                "description": f"simulated {device.kind} sensor at {device.site}",
                "measuring_point": device.measuring_point,
                "location": list(device.location),
                "state": "active",
            }
            for device in self.devices
        ]


class _Dumper(yaml.SafeDumper):
    """Writes short lists and mappings of scalars (positions, params) on one line."""


def _flow(dumper: yaml.SafeDumper, data: Any) -> yaml.Node:
    scalars = all(
        not isinstance(v, dict | list) for v in (data.values() if isinstance(data, dict) else data)
    )
    if isinstance(data, dict):
        return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=scalars)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=scalars)


_Dumper.add_representer(dict, _flow)
_Dumper.add_representer(list, _flow)


def default_tenant(network_server: NetworkServer, city_name: str) -> str:
    """The tenant a fleet uses unless told otherwise: `ttn` (The Things Network's) for The
    Things Stack, the city's name for ChirpStack."""
    return "ttn" if network_server == "tts" else city_name


def _digest(text: str, size: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest().upper()


def _dev_eui(city: str, seed: int, device_id: str, taken: set[str]) -> str:
    attempt = 0
    while True:
        raw = bytearray(
            hashlib.blake2b(f"{city}|{seed}|{device_id}|{attempt}".encode(), digest_size=8).digest()
        )
        raw[0] = (raw[0] | 0x02) & 0xFE
        eui = raw.hex().upper()
        if eui not in taken:
            taken.add(eui)
            return eui
        attempt += 1


def _dev_addr(network_server: NetworkServer, dev_eui: str) -> str:
    raw = bytearray(hashlib.blake2b(f"addr|{dev_eui}".encode(), digest_size=4).digest())
    # NetID 000013 (The Things Network) owns 0x26000000/7; ChirpStack's default NetID
    # 000000 owns 0x00000000/7.
    raw[0] = (0x26 if network_server == "tts" else 0x00) | (raw[0] & 0x01)
    return raw.hex().upper()


def _interleaved(sites: Sequence[Site]) -> list[Site]:
    by_kind: dict[str, list[Site]] = {}
    for site in sites:
        by_kind.setdefault(site.kind, []).append(site)
    kinds = [k for k in _KIND_ORDER if k in by_kind] + [k for k in by_kind if k not in _KIND_ORDER]
    ordered: list[Site] = []
    depth = max((len(v) for v in by_kind.values()), default=0)
    for level in range(depth):
        for kind in kinds:
            if level < len(by_kind[kind]):
                ordered.append(by_kind[kind][level])
    return ordered


def _offset(lon: float, lat: float, metres: float, bearing: float) -> tuple[float, float]:
    d_lat = metres * math.cos(bearing) / 111_320.0
    d_lon = metres * math.sin(bearing) / (111_320.0 * math.cos(math.radians(lat)))
    return round(lon + d_lon, 6), round(lat + d_lat, 6)


def _place(city: City, site: Site, instance: int, seed: int) -> tuple[float, float]:
    if instance == 1:
        return site.lon, site.lat
    digest = hashlib.blake2b(f"{city.slug}|{seed}|{site.slug}|{instance}".encode()).digest()
    unit_a = int.from_bytes(digest[:4]) / 2**32
    unit_b = int.from_bytes(digest[4:8]) / 2**32
    reach = 45.0 if site.kind == "parking" else 350.0
    return _offset(site.lon, site.lat, 15.0 + reach * unit_a, 2 * math.pi * unit_b)


def build_fleet(
    devices: int = 50,
    *,
    city: str | City = "duesseldorf",
    seed: int = 0,
    network_server: NetworkServer = "tts",
    application: str = "city-sensors",
    tenant: str | Literal[False] | None = False,
    kinds: Iterable[str] | None = None,
) -> Fleet:
    """A fleet of `devices` devices at `city`'s sites (see the module docstring).

    `tenant` is the network server's tenant (default `default_tenant`; None: none). `kinds`
    keeps only sites of those kinds (`air-quality`, `noise`, `parking`, `traffic`,
    `people`, `water-level`, `soil`, `weather`, `microclimate`). Raises `FleetError` for an
    unknown city or kind, or `devices < 1`.
    """
    if devices < 1:
        raise FleetError(f"a fleet needs at least one device, not {devices}")
    if isinstance(city, str):
        try:
            city = CITIES[city]
        except KeyError:
            raise FleetError(
                f"unknown city {city!r}; built-in cities: {', '.join(sorted(CITIES))}"
            ) from None
    sites: list[Site] = list(city.sites)
    if kinds is not None:
        wanted = set(kinds)
        unknown = wanted - set(KINDS)
        if unknown:
            raise FleetError(
                f"unknown kind(s) {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}"
            )
        sites = [site for site in sites if site.kind in wanted]
        if not sites:
            raise FleetError(f"{city.name} has no sites of kind {', '.join(sorted(wanted))}")
    ordered = _interleaved(sites)
    taken: set[str] = set()
    made: list[FleetDevice] = []
    for index in range(devices):
        site = ordered[index % len(ordered)]
        instance = index // len(ordered) + 1
        spec = KINDS[site.kind]
        numbered = instance > 1 or site.kind == "parking"
        suffix = f"-{instance}" if numbered else ""
        device_id = f"{spec.code}-{site.slug}{suffix}"
        name = f"{spec.label} {site.name}" + (f" {spec.unit_label} {instance}" if numbered else "")
        made.append(
            FleetDevice(
                dev_eui=(eui := _dev_eui(city.slug, seed, device_id, taken)),
                device_id=device_id,
                name=name,
                profile=spec.profile,
                measuring_point=f"{city.slug}-{spec.code}-{site.slug}{suffix}",
                kind=site.kind,
                site=site.name,
                location=_place(city, site, instance, seed),
                params=dict(site.params),
                dev_addr=_dev_addr(network_server, eui),
            )
        )
    return Fleet(
        city=city.slug,
        city_name=city.name,
        timezone=city.timezone,
        seed=seed,
        network_server=network_server,
        application=application,
        tenant=default_tenant(network_server, city.name) if tenant is False else tenant,
        gateways=city.gateways,
        devices=tuple(made),
    )


def load_fleet(path: str | Path) -> Fleet:
    """Read a fleet file (YAML or JSON, as `Fleet.write_yaml` writes it).

    Raises `FleetError` naming the file and the first field that is wrong.
    """
    file = Path(path)
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise FleetError(f"{file}: cannot read: {error}") from None
    except yaml.YAMLError as error:
        raise FleetError(f"{file}: not YAML: {error}") from None
    if not isinstance(document, dict):
        raise FleetError(f"{file}: expected a mapping with city, gateways and devices")
    try:
        return Fleet.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise FleetError(f"{file}: {where}: {first['msg']}") from None
