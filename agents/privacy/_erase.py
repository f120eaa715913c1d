"""Erasure: one device's or one area's data removed from every store, with a report.

    with Client(url, tenant="city", profile="embedded") as client:
        eraser = Eraser(client, agent_dir=Path("agent-data"))
        report = eraser.erase_device("70B3D57ED0000001")
        report = eraser.erase_area({"type": "Polygon", "coordinates": [...]})
    report.to_json()   # {"current_state": 3, "history": 3, "archive": 120, ...}

What a device's data is: its `Device` entities (found by `devEUI`, and
`urn:ngsi-ld:Device:<DevEUI>`), every entity whose `refDevice` names one of them, and every
entity whose id contains the DevEUI (any case); looked up in the current state and, for entities
whose current state is already gone, in the history (its latest recorded state). What an
area's data is: every entity whose `location` intersects the area (current state, or latest
recorded state in the history), and the data of the devices among them.

What is removed, per store:
- current state: the entities (`DELETE`, through the broker, so that subscribers, and with them
  the public projection, see the deletion);
- history: the whole temporal entity of each (`DELETE /temporal/entities/{id}`, NGSI-LD
  clause 5.7.4);
- the agent's stores under `agent_dir`, when given: the archived raw uplinks of the devices
  (`archive.db`), their dead letters and those about the entities (`outbox.db`), entities still
  waiting in the outbox (so that they are not written again after the erasure) and the devices'
  frame counters.

Types are looked up by the Smart Data Models registry (each with its own @context) and by the
types present in the tenant. The eraser talks to the broker over NGSI-LD only (the embedded broker
or Orion-LD with Mintaka; a broker without the temporal API is reported, not an error).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agents.delivery import DeadLetters, UplinkArchive
from agents.lorawan import normalize_eui
from models import default_registry
from ngsi import (
    USE_CLIENT_DEFAULT,
    Client,
    NgsiApiError,
    NonexistentTenant,
    ResourceNotFound,
)
from ngsi._client_base import quote_segment

__all__ = ["Eraser", "ErasureReport", "bbox_polygon"]

log = logging.getLogger("agents.privacy")

_DEVICE_PREFIX = "urn:ngsi-ld:Device:"


@dataclass
class ErasureReport:
    """What an erasure removed, counted per store, and the entity ids it erased."""

    subject: str
    current_state: int = 0
    history: int = 0
    archive: int = 0
    dead_letters: int = 0
    outbox: int = 0
    frame_counters: int = 0
    entities: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "current_state": self.current_state,
            "history": self.history,
            "archive": self.archive,
            "dead_letters": self.dead_letters,
            "outbox": self.outbox,
            "frame_counters": self.frame_counters,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "removed": self.counts(),
            "entities": sorted(self.entities),
            "devices": sorted(self.devices),
            "notes": list(self.notes),
        }


def bbox_polygon(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    """A GeoJSON Polygon of a bounding box (longitudes west/east, latitudes south/north)."""
    if not (west < east and south < north):
        raise ValueError(
            f"a bounding box needs west < east and south < north, got {west},{south},{east},{north}"
        )
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _eui_pattern(dev_eui: str) -> str:
    """A regular expression matching any id that contains the DevEUI, in either case (written
    with character classes, which every broker's regex dialect reads)."""
    classes = "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in dev_eui)
    return f".*{classes}.*"


class Eraser:
    """Erases through `client` (its tenant is the tenant erased) and, with `agent_dir`, in the
    agent's stores. See the module documentation."""

    def __init__(self, client: Client, *, agent_dir: Path | None = None) -> None:
        self.client = client
        self.agent_dir = agent_dir

    # --- what belongs to whom ---------------------------------------------------------------

    def _types(self) -> list[tuple[str, str | None, bool]]:
        """(type as queried, its @context, whether the current state has it) of every type
        worth looking in: the Smart Data Models types (the history may hold them when the
        current state does not) and the types of the tenant."""
        present: set[str] = set()
        with contextlib.suppress(NonexistentTenant):
            present = set(self.client.types(context=None))
        found: list[tuple[str, str | None, bool]] = []
        for name in default_registry.types():
            url = default_registry.context_url(name)
            subject = url.split("dataModel.", 1)[1].split("/", 1)[0] if "dataModel." in url else ""
            iri = f"https://smartdatamodels.org/dataModel.{subject}/{name}"
            found.append((name, url, iri in present or name in present))
            present.discard(iri)
            present.discard(name)
        found.extend((name, None, True) for name in sorted(present))
        return found

    def _query(self, *, temporal: bool, **filters: Any) -> Iterator[dict[str, Any]]:
        try:
            if temporal:
                offset = 0
                while True:
                    page = self.client.temporal_query(
                        **filters, last_n=1, limit=100, offset=offset or None
                    )
                    yield from page
                    if len(page) < 100:
                        return
                    offset += len(page)
            else:
                yield from self.client.iter_entities(**filters)
        except NonexistentTenant:
            return
        except NgsiApiError as exc:
            if temporal and exc.status_code in (400, 404, 501):
                return
            raise

    def device_entities(self, dev_eui: str) -> list[str]:
        """The ids of the `Device` entities of a DevEUI (current state and history)."""
        eui = normalize_eui(dev_eui)
        context = default_registry.context_url("Device")
        found = {_DEVICE_PREFIX + eui}
        for temporal in (False, True):
            for entity in self._query(
                temporal=temporal, type="Device", q=f'devEUI=="{eui}"', context=context
            ):
                found.add(str(entity["id"]))
        return sorted(found)

    def entities_of_device(self, dev_eui: str, device_ids: Sequence[str]) -> list[str]:
        """The ids of the entities a device fed (refDevice) or that carry its DevEUI in the id."""
        eui = normalize_eui(dev_eui)
        found: set[str] = set(device_ids)
        for type_name, context, current in self._types():
            for temporal in (False, True) if current else (True,):
                for device_id in device_ids:
                    for entity in self._query(
                        temporal=temporal,
                        type=type_name,
                        q=f'refDevice=="{device_id}"',
                        context=context,
                    ):
                        found.add(str(entity["id"]))
                for entity in self._query(
                    temporal=temporal,
                    type=type_name,
                    id_pattern=_eui_pattern(eui),
                    context=context,
                ):
                    found.add(str(entity["id"]))
        return sorted(found)

    def entities_in_area(self, geometry: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """(ids of the entities located in the area, DevEUIs of the Device entities among them)."""
        geoq = {"georel": "intersects", "geometry": geometry["type"]}
        geoq["coordinates"] = orjson.dumps(geometry["coordinates"]).decode()
        ids: set[str] = set()
        euis: set[str] = set()
        for type_name, context, current in self._types():
            for temporal in (False, True) if current else (True,):
                for entity in self._query(
                    temporal=temporal, type=type_name, geoq=geoq, context=context
                ):
                    ids.add(str(entity["id"]))
                    eui = _dev_eui_of(entity)
                    if eui is not None:
                        euis.add(eui)
        return sorted(ids), sorted(euis)

    # --- erasing ----------------------------------------------------------------------------

    def erase_device(self, dev_eui: str, *, dry_run: bool = False) -> ErasureReport:
        """Erase one device's data everywhere (see the module documentation)."""
        eui = normalize_eui(dev_eui)
        report = ErasureReport(subject=f"device {eui}", devices=[eui])
        device_ids = self.device_entities(eui)
        report.entities = self.entities_of_device(eui, device_ids)
        if not dry_run:
            self._erase(report)
        return report

    def erase_area(self, geometry: Mapping[str, Any], *, dry_run: bool = False) -> ErasureReport:
        """Erase the data of every entity located in `geometry` (a GeoJSON Polygon or
        MultiPolygon), and of the devices among them (see the module documentation)."""
        if geometry.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValueError(
                f"an area is a GeoJSON Polygon or MultiPolygon, got {geometry.get('type')!r}"
            )
        report = ErasureReport(subject="area")
        ids, euis = self.entities_in_area(geometry)
        found = set(ids)
        for eui in euis:
            found.update(self.entities_of_device(eui, self.device_entities(eui)))
        report.entities = sorted(found)
        report.devices = euis
        if not dry_run:
            self._erase(report)
        return report

    def _erase(self, report: ErasureReport) -> None:
        for entity_id in report.entities:
            if self._delete_history(entity_id, report):
                report.history += 1
        for entity_id in report.entities:
            try:
                self.client.delete(entity_id)
            except (ResourceNotFound, NonexistentTenant):
                continue
            report.current_state += 1
        if self.agent_dir is not None:
            self._erase_agent(report)

    def _delete_history(self, entity_id: str, report: ErasureReport) -> bool:
        client = self.client

        # The client has no call for the temporal DELETE yet: one request built as its own
        # calls are (tenant, auth, retries, errors).
        def flow() -> Generator[Any, Any, None]:
            response = yield client._step(
                "DELETE",
                f"temporal/entities/{quote_segment(entity_id)}",
                tenant=USE_CLIENT_DEFAULT,
                timeout=USE_CLIENT_DEFAULT,
            )
            client._check(response)

        try:
            client._run(flow())
        except (ResourceNotFound, NonexistentTenant):
            return False
        except NgsiApiError as exc:
            if exc.status_code in (400, 405, 501):
                note = f"the broker has no temporal API to erase history ({exc.status})"
                if note not in report.notes:
                    report.notes.append(note)
                return False
            raise
        return True

    def _erase_agent(self, report: ErasureReport) -> None:
        assert self.agent_dir is not None
        archive_path = self.agent_dir / "archive.db"
        outbox_path = self.agent_dir / "outbox.db"
        if archive_path.is_file() and report.devices:
            with UplinkArchive(archive_path) as archive:
                report.archive += archive.erase(dev_eui=report.devices)
        if outbox_path.is_file():
            with DeadLetters(outbox_path) as letters:
                report.dead_letters += letters.erase(
                    dev_eui=report.devices, entity_ids=report.entities
                )
            outbox, counters = _erase_outbox(outbox_path, report.devices, report.entities)
            report.outbox += outbox
            report.frame_counters += counters


def _dev_eui_of(entity: Mapping[str, Any]) -> str | None:
    kind = entity.get("type")
    if kind != "Device" and not (isinstance(kind, str) and kind.endswith("/Device")):
        return None
    for name, attribute in entity.items():
        if name == "devEUI" or name.endswith("/devEUI"):
            instances = attribute if isinstance(attribute, list) else [attribute]
            for instance in instances:
                value = instance.get("value") if isinstance(instance, Mapping) else None
                if isinstance(value, str):
                    with contextlib.suppress(ValueError):
                        return normalize_eui(value)
    entity_id = str(entity.get("id", ""))
    if entity_id.startswith(_DEVICE_PREFIX):
        with contextlib.suppress(ValueError):
            return normalize_eui(entity_id[len(_DEVICE_PREFIX) :])
    return None


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), 500):
        yield values[start : start + 500]


def _erase_outbox(path: Path, devices: Sequence[str], entity_ids: Sequence[str]) -> tuple[int, int]:
    """Delete the outbox items of these devices or entities and the devices' frame counters
    (tables of the agent's delivery database); returns (items, counters)."""
    items = counters = 0
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        conn.execute("BEGIN IMMEDIATE")
        if "outbox" in tables:
            for column, values in (("dev_eui", devices), ("entity_id", entity_ids)):
                for part in _chunks(values):
                    marks = ",".join("?" * len(part))
                    cursor = conn.execute(f"DELETE FROM outbox WHERE {column} IN ({marks})", part)
                    items += cursor.rowcount
        if "frame_counters" in tables:
            keys = [*devices, *(f"sim:{eui}" for eui in devices)]
            for part in _chunks(keys):
                marks = ",".join("?" * len(part))
                cursor = conn.execute(
                    f"DELETE FROM frame_counters WHERE dev_eui IN ({marks})", part
                )
                counters += cursor.rowcount
        conn.execute("COMMIT")
    finally:
        conn.close()
    return items, counters
