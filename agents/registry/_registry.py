"""The device registry: registrations as `Device` entities in the broker, and the agent's cache.

The broker is the source of truth (design decision 1). An agent keeps every registration in
memory for the hot path (`get(dev_eui)` is a dict lookup), persisted in SQLite (`cache_path`) so
that it starts and maps uplinks while the broker is away, and kept fresh two ways:

- an NGSI-LD subscription on `Device` that watches only the attributes a registration owns
  (`REGISTRY_ATTRIBUTES`), so the agent's own writes (battery, rssi) never notify it; the
  runtime serves the endpoint and hands each notification to `apply_notification`;
  `ensure_subscription(uri)` creates (or finds) the subscription;
- `resync()`, a full read of every registered Device, as the safety net (run it at start and
  periodically): it adds, changes and removes cached devices to match the broker.

A device registered from the CLI therefore starts flowing without an agent restart.

Admin operations (`register`, `update`, `delete`, `import_file`) write the broker first, then
the cache; they need a client. A `Registry` without a cache path works in memory only (the CLI).

Unknown devices (`unknown_device`): by configuration, counted and dropped (`"drop"`), or also
registered as unprovisioned Devices (`"register"`) that an admin completes later (profile,
state `active`); either way the uplink itself is not mapped.

Thread-safety: reads may run on any thread; changes are serialised by a lock and replace the
in-memory table as a whole, so readers never see a half-applied change.
"""

from __future__ import annotations

import builtins
import contextlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from agents.lorawan import Uplink
from agents.registry._cache import DeviceCache
from agents.registry._device import (
    DEVICE_CONTEXT,
    REGISTRY_ATTRIBUTES,
    Calibration,
    DeviceAlreadyRegistered,
    DeviceNotRegistered,
    DeviceState,
    Placement,
    RegisteredDevice,
    RegistryError,
)
from agents.registry._import import ImportProblem, ParsedImport, format_of, parse_device_list
from models import model_info
from ngsi import (
    AlreadyExists,
    Client,
    Endpoint,
    EntitySelector,
    KeyValuePair,
    NgsiApiError,
    NgsiError,
    NotificationParams,
    ResourceNotFound,
    Subscription,
)

__all__ = [
    "DEFAULT_SUBSCRIPTION_NAME",
    "NOTIFICATION_TRIGGERS",
    "ImportReport",
    "NotificationReport",
    "ProfileLookup",
    "Registry",
    "ResyncReport",
    "SwapReport",
    "UnknownDevice",
    "UnknownDevicePolicy",
]

UnknownDevicePolicy = Literal["drop", "register"]
"""What to do with an uplink of a DevEUI nobody registered: count and drop it, or also register
the device as unprovisioned."""

DEFAULT_SUBSCRIPTION_NAME = "drehscheibe/agent/devices"

NOTIFICATION_TRIGGERS = (
    "entityCreated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
)

_NULL = "urn:ngsi-ld:null"
_REGISTER_RETRY_SECONDS = 60.0


class ProfileLookup(Protocol):
    """What the registry needs of a profile catalog (a `ProfileCatalog` is one): `get(name)`
    returns the profile (with `controlled_property` and `device_category`) or raises
    `KeyError` / `ValueError`."""

    def get(self, name: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class UnknownDevice:
    """What `unknown_device` did: `dropped`, or `registered` (as unprovisioned, `device`), or
    `pending` (registering failed: the broker is away; it is tried again later)."""

    action: Literal["dropped", "registered", "pending"]
    dev_eui: str | None
    device: RegisteredDevice | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class NotificationReport:
    """What one notification changed in the cache (DevEUIs)."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    """Entity ids that are not registered LoRaWAN devices (or do not read), with no effect."""


@dataclass(frozen=True, slots=True)
class ResyncReport:
    """What a full resync changed (DevEUIs), and how many devices the broker holds."""

    total: int
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


@dataclass
class ImportReport:
    """The outcome of `import_file`: DevEUIs registered (new) and updated, and the rows or
    devices that failed with why."""

    registered: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: list[ImportProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True, slots=True)
class SwapReport:
    """The outcome of `swap`: the old and the new registration, whether the new one was
    registered by the swap (else updated), and the observation entities whose `refDevice`
    now names the new device."""

    old: RegisteredDevice
    new: RegisteredDevice
    registered: bool
    observations: tuple[str, ...] = ()


class Registry:
    """The device registry (see the module docstring).

    `client` talks to the broker (its tenant is the registry's); `cache_path` a SQLite file
    for the persisted cache (None: memory only); `profiles` fills in what a device's profile
    says it measures (`controlledProperty`) when a registration does not state it, and checks
    the profile exists; `unknown_devices` is the policy for DevEUIs nobody registered.
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        cache_path: str | Path | None = None,
        profiles: ProfileLookup | None = None,
        unknown_devices: UnknownDevicePolicy = "drop",
    ) -> None:
        if unknown_devices not in ("drop", "register"):
            raise ValueError(
                f"unknown_devices must be 'drop' or 'register', not {unknown_devices!r}"
            )
        self.client = client
        self.profiles = profiles
        self.unknown_devices: UnknownDevicePolicy = unknown_devices
        self._lock = threading.RLock()
        self._cache = DeviceCache(cache_path) if cache_path is not None else None
        self._devices: dict[str, RegisteredDevice] = {}
        self._by_id: dict[str, str] = {}
        self._attempts: dict[str, float] = {}
        self.counters: dict[str, int] = {
            "unknown_dropped": 0,
            "unknown_registered": 0,
            "unknown_register_failed": 0,
            "notifications": 0,
            "resyncs": 0,
        }
        if self._cache is not None:
            self._set_all(self._cache.load().values())

    def close(self) -> None:
        """Close the cache file (the client is the caller's)."""
        if self._cache is not None:
            self._cache.close()

    # -- reading (any thread, no I/O) ------------------------------------------------------

    def get(self, dev_eui: str) -> RegisteredDevice | None:
        """The registration of `dev_eui` (16 upper-case hex digits) from memory, or None."""
        return self._devices.get(dev_eui)

    def __contains__(self, dev_eui: object) -> bool:
        return dev_eui in self._devices

    def __len__(self) -> int:
        return len(self._devices)

    def list(self) -> builtins.list[RegisteredDevice]:
        """Every registration in memory, by DevEUI."""
        devices = self._devices
        return [devices[key] for key in sorted(devices)]

    @property
    def synced_at(self) -> datetime | None:
        """When the cache was last replaced by a full resync (None without a cache, or never)."""
        return self._cache.synced_at() if self._cache is not None else None

    # -- the broker ------------------------------------------------------------------------

    def _client(self) -> Client:
        if self.client is None:
            raise RegistryError("this registry has no broker client")
        return self.client

    def fetch(self, dev_eui: str) -> RegisteredDevice | None:
        """The registration of `dev_eui` as the broker has it now, or None."""
        client = self._client()
        found = client.query(
            type="Device", q=f'devEUI=="{dev_eui}"', context=DEVICE_CONTEXT, limit=2
        )
        for entity in found:
            try:
                return RegisteredDevice.from_entity(entity)
            except RegistryError:
                continue
        return None

    def fetch_all(self) -> tuple[builtins.list[RegisteredDevice], builtins.list[str]]:
        """Every registered device in the broker, and the ids of `Device` entities with a
        `devEUI` that do not read as registrations."""
        client = self._client()
        devices: list[RegisteredDevice] = []
        ignored: list[str] = []
        for entity in client.iter_entities(type="Device", q="devEUI", context=DEVICE_CONTEXT):
            try:
                devices.append(RegisteredDevice.from_entity(entity))
            except RegistryError:
                ignored.append(str(entity.get("id")))
        return devices, ignored

    # -- admin operations (broker first, then the cache) -----------------------------------

    def complete(self, device: RegisteredDevice) -> RegisteredDevice:
        """`device` with what its profile says it measures filled in (when a profile catalog
        is known and the registration does not state it); `RegistryError` for an unknown
        profile."""
        if self.profiles is None or device.profile is None:
            return device
        try:
            profile = self.profiles.get(device.profile)
        except (KeyError, ValueError) as exc:
            raise RegistryError(f"device {device.dev_eui}: {exc}") from None
        update: dict[str, Any] = {}
        if not device.controlled_property and profile.controlled_property:
            update["controlled_property"] = tuple(profile.controlled_property)
        if device.device_category == ("sensor",) and profile.device_category:
            update["device_category"] = tuple(profile.device_category)
        return device.model_copy(update=update) if update else device

    def register(self, device: RegisteredDevice) -> RegisteredDevice:
        """Create the Device entity of a new registration; `RegistryError` if the DevEUI or
        the entity id is registered already (use `update`)."""
        device = self.complete(device)
        client = self._client()
        existing = self.fetch(device.dev_eui)
        if existing is not None:
            raise DeviceAlreadyRegistered(
                f"device {device.dev_eui} is registered already as {existing.device_id}; "
                "use update to change it"
            )
        try:
            client.create(device.to_entity(), context=DEVICE_CONTEXT)
        except AlreadyExists:
            raise DeviceAlreadyRegistered(
                f"entity {device.device_id} exists already (another device or a Device entity "
                "not made by the registry); choose another --device-id"
            ) from None
        self._remember(device)
        return device

    def update(self, dev_eui: str, /, **changes: Any) -> RegisteredDevice:
        """Change fields of a registration (`profile=`, `name=`, `state=`, `calibration=`...,
        a value of None removes the field) and write them to the broker; returns the new
        registration. `RegistryError` if the device is not registered."""
        current = self.fetch(dev_eui)
        if current is None:
            raise DeviceNotRegistered(f"device {dev_eui} is not registered")
        unknown = set(changes) - set(RegisteredDevice.model_fields) - {"dev_eui"}
        fixed = unknown | ({"dev_eui", "device_id"} & set(changes))
        if fixed:
            raise RegistryError(
                f"cannot change {', '.join(sorted(fixed))} of a registration (delete and "
                "register again to change its DevEUI or id)"
            )
        merged = {**current.model_dump(), **changes}
        try:
            device = RegisteredDevice.model_validate(merged)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(step) for step in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            raise RegistryError(
                f"device {dev_eui}: {where + ': ' if where else ''}{message}"
            ) from None
        if "profile" in changes and "controlled_property" not in changes:
            device = device.model_copy(update={"controlled_property": ()})
        device = self.complete(device)
        self._write_changes(current, device)
        self._remember(device)
        return device

    def _write_changes(self, current: RegisteredDevice, device: RegisteredDevice) -> None:
        client = self._client()
        entity = device.to_entity()
        old = current.to_entity()
        attrs = {key: value for key, value in entity.items() if key not in ("id", "type")}
        try:
            client.append_attrs(device.device_id, attrs, context=DEVICE_CONTEXT)
            for name in REGISTRY_ATTRIBUTES:
                if name in old and name not in entity:
                    client.delete_attr(device.device_id, name, context=DEVICE_CONTEXT)
        except ResourceNotFound:
            raise DeviceNotRegistered(f"device {device.dev_eui}: its entity is gone") from None

    def delete(self, dev_eui: str) -> RegisteredDevice:
        """Delete the Device entity of `dev_eui` (its observations stay: they belong to the
        measuring point); returns the registration that was deleted."""
        current = self.fetch(dev_eui)
        if current is None:
            raise DeviceNotRegistered(f"device {dev_eui} is not registered")
        with contextlib.suppress(ResourceNotFound):
            self._client().delete(current.device_id)
        self._forget(current.dev_eui)
        return current

    def import_file(self, path: str | Path) -> ImportReport:
        """Register or update every device of a CSV or JSON file (see `parse_device_list`):
        new DevEUIs are registered, known ones get the file's fields. Rows that do not read
        and devices the broker refuses are in `failed`; the others are written."""
        file = Path(path)
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise RegistryError(f"{file}: cannot read: {exc}") from None
        try:
            parsed = parse_device_list(data, format=format_of(file), complete=self._complete_row)
        except ValueError as exc:
            raise RegistryError(f"{file}: {exc}") from None
        return self.import_devices(parsed, where=str(file))

    def import_devices(self, parsed: ParsedImport, *, where: str) -> ImportReport:
        """Register or update every device of `parsed` (read from a file or a network server,
        `where` names it in the problems): new DevEUIs are registered, known ones get the
        fields the source states. Devices the broker refuses are in `failed` with
        `parsed.problems`; the others are written."""
        report = ImportReport(failed=list(parsed.problems))
        for device in parsed.devices:
            try:
                existing = self.fetch(device.dev_eui)
                if existing is None:
                    self.register(device)
                    report.registered.append(device.dev_eui)
                else:
                    changes = {
                        name: getattr(device, name)
                        for name in device.model_fields_set
                        if name not in ("dev_eui", "device_id")
                    }
                    self.update(device.dev_eui, **changes)
                    report.updated.append(device.dev_eui)
            except (RegistryError, NgsiApiError) as exc:
                report.failed.append(
                    ImportProblem(where=where, message=str(exc), dev_eui=device.dev_eui)
                )
        return report

    def _complete_row(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.profiles is None or not record.get("profile") or record.get("controlled_property"):
            return record
        try:
            profile = self.profiles.get(record["profile"])
        except (KeyError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        return {**record, "controlled_property": list(profile.controlled_property)}

    # -- lifecycle -------------------------------------------------------------------------

    def _require(self, dev_eui: str) -> RegisteredDevice:
        current = self.fetch(dev_eui)
        if current is None:
            raise DeviceNotRegistered(f"device {dev_eui} is not registered")
        return current

    def move(
        self,
        dev_eui: str,
        location: Mapping[str, Any],
        *,
        valid_from: datetime | None = None,
    ) -> RegisteredDevice:
        """Install the device at `location` (a GeoJSON Point) from `valid_from` on (default:
        now). The places it was before stay in `locationHistory`, so that readings observed
        before `valid_from` (late or replayed ones) keep the location they were made at; the
        registered `location` becomes the newest placement's."""
        current = self._require(dev_eui)
        start = valid_from or datetime.now(UTC)
        placements = list(current.placements)
        if not placements and current.location is not None:
            placements.append(Placement.model_validate({"location": current.location}))
        if any(item.valid_from is not None and item.valid_from >= start for item in placements):
            raise RegistryError(
                f"device {dev_eui}: a placement starts at or after {start.isoformat()} already; "
                "a move must start after the last one"
            )
        placements.append(
            Placement.model_validate({"location": dict(location), "validFrom": start})
        )
        newest = placements[-1]
        return self.update(dev_eui, location=newest.location, placements=tuple(placements))

    def decommission(
        self,
        dev_eui: str,
        *,
        at: datetime | None = None,
        remove_entity: bool = False,
    ) -> RegisteredDevice:
        """Take the device out of service for good: `deviceState` decommissioned and
        `dateDecommissioned` (default now); its uplinks and events are no longer accepted.
        With `remove_entity` its Device entity is deleted too (its observations stay with the
        measuring point); else its `health` (the fleet check's) is removed. Returns the
        decommissioned registration."""
        current = self._require(dev_eui)
        when = at or datetime.now(UTC)
        device = self.update(dev_eui, state="decommissioned", date_decommissioned=when)
        if remove_entity:
            self.delete(current.dev_eui)
            return device
        # a device out of service has no health to watch any more
        with contextlib.suppress(ResourceNotFound):
            self._client().delete_attr(device.device_id, "health", context=DEVICE_CONTEXT)
        return device

    def calibrate(self, dev_eui: str, calibration: Calibration) -> RegisteredDevice:
        """Add a calibration. An open-ended calibration of the same attribute (and entity
        type) that started before the new one is closed where the new one starts, so that the
        validity periods follow each other; one that starts at the same time is replaced."""
        current = self._require(dev_eui)
        kept: list[Calibration] = []
        for item in current.calibration:
            same = (
                item.attribute == calibration.attribute
                and item.entity_type == calibration.entity_type
            )
            if same and item.valid_from == calibration.valid_from:
                continue
            if (
                same
                and item.valid_until is None
                and calibration.valid_from is not None
                and (item.valid_from is None or item.valid_from < calibration.valid_from)
            ):
                item = item.model_copy(update={"valid_until": calibration.valid_from})
            kept.append(item)
        kept.append(calibration)
        return self.update(dev_eui, calibration=tuple(kept))

    def swap(
        self,
        old_eui: str,
        new_eui: str,
        *,
        at: datetime | None = None,
        old_state: DeviceState = "inactive",
        new_device: RegisteredDevice | None = None,
        observation_types: Iterable[tuple[str, str]] = (),
    ) -> SwapReport:
        """Replace the sensor `old_eui` by `new_eui` at the old one's measuring point.

        The new device takes over the measuring point and location (registered with the old
        one's profile, owner and model when it is not registered yet: `new_device` may give
        its registration), is set active and installed `at` (default now). The old device
        leaves service (`old_state`: inactive, or decommissioned with `dateDecommissioned`).
        The observation entities of the measuring point keep their id, hence their history;
        their `refDevice` is pointed at the new device at once (`observation_types`: the
        (entity type, @context) pairs to look in; the new device's next uplink would do it
        otherwise).
        """
        if old_eui == new_eui:
            raise RegistryError(f"cannot swap device {old_eui} with itself")
        if old_state not in ("inactive", "decommissioned"):
            raise RegistryError(
                f"the old device leaves service: its state is inactive or decommissioned, "
                f"not {old_state}"
            )
        old = self._require(old_eui)
        when = at or datetime.now(UTC)
        takeover: dict[str, Any] = {
            "measuring_point": old.point,
            "location": old.location,
            "placements": old.placements,
            "state": "active",
            "date_installed": when,
        }
        existing = self.fetch(new_eui)
        if existing is None:
            template = new_device or RegisteredDevice(
                dev_eui=new_eui,
                profile=old.profile,
                owner=old.owner,
                device_model=old.device_model,
                name=old.name,
                description=f"replaced {old.dev_eui} at measuring point {old.point}",
                state="unprovisioned" if old.profile is None else "active",
            )
            if template.dev_eui != new_eui:
                raise RegistryError(
                    f"the new registration is for {template.dev_eui}, not {new_eui}"
                )
            update = dict(takeover)
            if template.profile is None and old.profile is not None:
                update["profile"] = old.profile
            try:
                device = RegisteredDevice.model_validate({**template.model_dump(), **update})
            except ValidationError as exc:
                raise RegistryError(f"device {new_eui}: {exc.errors()[0]['msg']}") from None
            new = self.register(device)
            registered = True
        else:
            if existing.state == "decommissioned":
                raise RegistryError(
                    f"device {new_eui} is decommissioned: it cannot replace {old_eui}"
                )
            if existing.profile is None and old.profile is not None:
                takeover["profile"] = old.profile
            new = self.update(new_eui, **takeover)
            registered = False
        leave: dict[str, Any] = {"state": old_state}
        if old_state == "decommissioned":
            leave["date_decommissioned"] = when
        old = self.update(old_eui, **leave)
        types = builtins.list(observation_types) or self._observation_types(old)
        moved = self._point_observations(old, new, types)
        return SwapReport(old=old, new=new, registered=registered, observations=moved)

    def _observation_types(self, device: RegisteredDevice) -> builtins.list[tuple[str, str]]:
        """The (entity type, @context) pairs the device's profile writes observations of."""
        if self.profiles is None or device.profile is None:
            return []
        try:
            profile = self.profiles.get(device.profile)
        except (KeyError, ValueError):
            return []
        found: dict[str, str] = {}
        for spec in getattr(profile, "entities", ()):
            try:
                found[spec.type] = model_info(spec.type).context_url
            except (KeyError, ValueError):
                continue
        return sorted(found.items())

    def _point_observations(
        self,
        old: RegisteredDevice,
        new: RegisteredDevice,
        types: Iterable[tuple[str, str]],
    ) -> tuple[str, ...]:
        client = self._client()
        moved: list[str] = []
        for entity_type, context in types:
            found = client.query(
                type=entity_type,
                q=f'refDevice=="{old.device_id}"',
                attrs="refDevice",
                context=context,
                limit=100,
            )
            for entity in found:
                entity_id = str(entity.get("id"))
                if not entity_id.endswith(f":{new.point}") and f":{new.point}:" not in entity_id:
                    continue
                ref = entity.get("refDevice")
                as_list = isinstance(ref, Mapping) and isinstance(ref.get("object"), list)
                target: Any = [new.device_id] if as_list else new.device_id
                client.append_attrs(
                    entity_id,
                    {"refDevice": {"type": "Relationship", "object": target}},
                    context=context,
                )
                moved.append(entity_id)
        return tuple(moved)

    def mark_first_used(self, dev_eui: str, at: datetime) -> None:
        """Remember in the cache that the device's first uplink came at `at` (the agent writes
        `dateFirstUsed` on the Device itself, through its outbox)."""
        with self._lock:
            device = self._devices.get(dev_eui)
            if device is None or device.date_first_used is not None:
                return
            updated = device.model_copy(update={"date_first_used": at})
            # Same key, same device id: replacing the value in place keeps the table's size,
            # so readers iterating it are safe, and costs no copy of the whole table (a fleet's
            # first uplinks would copy it once per device).
            self._devices[dev_eui] = updated
            if self._cache is not None:
                self._cache.put(updated)

    # -- keeping the cache fresh -----------------------------------------------------------

    def apply_notification(self, notification: Mapping[str, Any] | Any) -> NotificationReport:
        """Apply an NGSI-LD notification of the registry's subscription to the cache.

        `notification` is the body the broker POSTed (a dict) or an `ngsi` `Notification`.
        Created and changed Device entities are (re)read as registrations; an entity with
        `deletedAt` is removed. Entities that are not registered devices are ignored.
        """
        data = (
            notification.get("data")
            if isinstance(notification, Mapping)
            else getattr(notification, "data", None)
        )
        added: list[str] = []
        updated: list[str] = []
        removed: list[str] = []
        ignored: list[str] = []
        with self._lock:
            self.counters["notifications"] += 1
            for entity in data or []:
                if not isinstance(entity, Mapping):
                    continue
                entity_id = str(entity.get("id"))
                if "deletedAt" in entity:
                    dev_eui = self._by_id.get(entity_id)
                    if dev_eui is not None:
                        self._forget(dev_eui)
                        removed.append(dev_eui)
                    else:
                        ignored.append(entity_id)
                    continue
                try:
                    device = RegisteredDevice.from_entity(_without_nulls(entity))
                except RegistryError:
                    ignored.append(entity_id)
                    continue
                previous = self._devices.get(device.dev_eui)
                if previous == device:
                    continue
                self._remember(device)
                (updated if previous is not None else added).append(device.dev_eui)
        return NotificationReport(
            added=tuple(added),
            updated=tuple(updated),
            removed=tuple(removed),
            ignored=tuple(ignored),
        )

    def resync(self) -> ResyncReport:
        """Read every registered device from the broker and make the cache match it. Raises
        the client's `NgsiError` when the broker cannot be read (the cache stays as it was)."""
        devices, ignored = self.fetch_all()
        fresh = {device.dev_eui: device for device in devices}
        with self._lock:
            old = self._devices
            added = tuple(sorted(set(fresh) - set(old)))
            removed = tuple(sorted(set(old) - set(fresh)))
            updated = tuple(sorted(key for key in set(fresh) & set(old) if fresh[key] != old[key]))
            self._set_all(fresh.values())
            if self._cache is not None:
                self._cache.replace_all(fresh.values(), synced_at=datetime.now(UTC))
            self.counters["resyncs"] += 1
        return ResyncReport(
            total=len(fresh), added=added, updated=updated, removed=removed, ignored=tuple(ignored)
        )

    def subscription(
        self,
        endpoint: str,
        *,
        name: str = DEFAULT_SUBSCRIPTION_NAME,
        receiver_info: Mapping[str, str] | None = None,
    ) -> Subscription:
        """The subscription that notifies `endpoint` of registration changes: every `Device`
        with a `devEUI`, watching the registration's attributes only, created / changed /
        deleted, in normalized form with the Device @context. `receiver_info` pairs are sent
        as headers (a shared secret for the agent's endpoint)."""
        params = NotificationParams(
            endpoint=Endpoint(
                uri=endpoint,
                accept="application/json",
                receiver_info=(
                    [KeyValuePair(key=k, value=v) for k, v in receiver_info.items()]
                    if receiver_info
                    else None
                ),
            ),
            format="normalized",
        )
        return Subscription.model_validate(
            {
                "subscriptionName": name,
                "description": "Device registrations for the LoRaWAN agent's registry cache",
                "entities": [EntitySelector(type="Device").model_dump(exclude_none=True)],
                "watchedAttributes": list(REGISTRY_ATTRIBUTES),
                "q": "devEUI",
                "notification": params.model_dump(by_alias=True, exclude_none=True),
                "jsonldContext": DEVICE_CONTEXT,
                "notificationTrigger": list(NOTIFICATION_TRIGGERS),
            }
        )

    def ensure_subscription(
        self,
        endpoint: str,
        *,
        name: str = DEFAULT_SUBSCRIPTION_NAME,
        receiver_info: Mapping[str, str] | None = None,
    ) -> str:
        """The id of the registry's subscription for `endpoint`, created when the broker has
        none of that name, updated when it notifies another endpoint or with other
        `receiver_info` (a new secret, say). Idempotent."""
        client = self._client()
        wanted = self.subscription(endpoint, name=name, receiver_info=receiver_info)
        for existing in client.list_subscriptions(context=DEVICE_CONTEXT):
            if existing.subscription_name != name or existing.id is None:
                continue
            sent = existing.notification.endpoint
            if sent.uri != endpoint or _pairs(sent.receiver_info) != dict(receiver_info or {}):
                client.update_subscription(
                    existing.id,
                    {"notification": wanted.to_dict()["notification"]},
                    context=DEVICE_CONTEXT,
                )
            return existing.id
        return client.create_subscription(wanted, context=DEVICE_CONTEXT)

    # -- unknown devices -------------------------------------------------------------------

    def unknown_device(self, uplink: Uplink, *, now: float | None = None) -> UnknownDevice:
        """Handle an uplink whose DevEUI is not registered, by the `unknown_devices` policy.

        `drop`: counted (`counters["unknown_dropped"]`). `register`: the device is registered
        as unprovisioned (name from the network server's device id), at most once a minute per
        DevEUI while the broker refuses or is away. The uplink is not mapped either way.
        """
        dev_eui = uplink.dev_eui
        if self.unknown_devices == "drop" or dev_eui is None or self.client is None:
            with self._lock:
                self.counters["unknown_dropped"] += 1
            return UnknownDevice("dropped", dev_eui, message="unknown device: dropped")
        clock = time.monotonic() if now is None else now
        with self._lock:
            known = self._devices.get(dev_eui)
            if known is not None:
                return UnknownDevice("registered", dev_eui, known, "registered already")
            last = self._attempts.get(dev_eui)
            if last is not None and clock - last < _REGISTER_RETRY_SECONDS:
                self.counters["unknown_dropped"] += 1
                return UnknownDevice("pending", dev_eui, message="registration pending")
            self._attempts[dev_eui] = clock
        application = f" of application {uplink.application_id}" if uplink.application_id else ""
        device = RegisteredDevice(
            dev_eui=dev_eui,
            name=uplink.device_id,
            description=f"registered by the agent from an uplink{application}; "
            "give it a profile and set it active",
            state="unprovisioned",
        )
        try:
            self.client.create(device.to_entity(), context=DEVICE_CONTEXT)
        except AlreadyExists:
            found = self.fetch(dev_eui)
            if found is not None:
                device = found
        except NgsiError as exc:
            with self._lock:
                self.counters["unknown_register_failed"] += 1
            return UnknownDevice("pending", dev_eui, message=f"could not register: {exc}")
        self._remember(device)
        with self._lock:
            self._attempts.pop(dev_eui, None)
            self.counters["unknown_registered"] += 1
        return UnknownDevice("registered", dev_eui, device, "registered as unprovisioned")

    # -- the in-memory table ---------------------------------------------------------------

    def _set_all(self, devices: Iterable[RegisteredDevice]) -> None:
        table = {device.dev_eui: device for device in devices}
        self._by_id = {device.device_id: device.dev_eui for device in table.values()}
        self._devices = table

    def _remember(self, device: RegisteredDevice) -> None:
        with self._lock:
            table = dict(self._devices)
            by_id = dict(self._by_id)
            previous = table.get(device.dev_eui)
            if previous is not None and previous.device_id != device.device_id:
                by_id.pop(previous.device_id, None)
            stale = by_id.get(device.device_id)
            if stale is not None and stale != device.dev_eui:
                table.pop(stale, None)
                if self._cache is not None:
                    self._cache.delete(stale)
            table[device.dev_eui] = device
            by_id[device.device_id] = device.dev_eui
            self._by_id = by_id
            self._devices = table
            if self._cache is not None:
                self._cache.put(device)

    def _forget(self, dev_eui: str) -> None:
        with self._lock:
            table = dict(self._devices)
            previous = table.pop(dev_eui, None)
            if previous is not None:
                by_id = dict(self._by_id)
                by_id.pop(previous.device_id, None)
                self._by_id = by_id
            self._devices = table
            if self._cache is not None:
                self._cache.delete(dev_eui)


def _without_nulls(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The entity without attributes a notification reports as deleted (`urn:ngsi-ld:null`)."""
    out: dict[str, Any] = {}
    for name, attribute in entity.items():
        if isinstance(attribute, Mapping) and (
            attribute.get("value") == _NULL or attribute.get("object") == _NULL
        ):
            continue
        out[name] = attribute
    return out


def _pairs(pairs: Sequence[KeyValuePair] | None) -> dict[str, str]:
    return {pair.key: pair.value for pair in pairs or ()}
