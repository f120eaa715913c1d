"""The traffic reference consumer: the current state of every road segment and parking site.

Inputs (Smart Data Models names): `TrafficFlowObserved` (and `ItemFlowObserved`), one entity per
lane or counting point, grouped by `refRoadSegment` (the entity itself when it names none);
`OffStreetParking` / `OnStreetParking` sites with `availableSpotNumber`, `occupiedSpotNumber`,
`totalSpotNumber`, `occupancy`; `ParkingSpot` entities with `status`, counted per
`refParkingSite`.

State: a change replaces what is held for its entity only when it is not older (by
`observedAt`), so a late notification never moves a segment back in time. A road segment shows
the sum of its lanes' `intensity`, the mean `occupancy`, the intensity-weighted mean
`averageVehicleSpeed`, `congested` when any lane is, and its lanes. A parking site shows its
own counts, and the spots counted by status.

Served as JSON by the consumer's HTTP receiver: `GET /state`, `/state/road-segments`,
`/state/road-segments/{id}`, `/state/parking-sites`, `/state/parking-sites/{id}`. With a
`path`, the state is also written there (atomically, at most every `write_interval` seconds)
and read back at start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agents.consumers._change import EntityChange, timestamp
from agents.consumers._consumer import Consumer
from agents.consumers._sinks import GeoJsonSink, Sink, write_atomically

__all__ = ["TrafficState", "traffic_consumer"]

_FLOW_TYPES = frozenset({"TrafficFlowObserved", "ItemFlowObserved"})
_SITE_TYPES = frozenset({"OffStreetParking", "OnStreetParking"})
_FLOW_MEMBERS = (
    "laneId",
    "laneDirection",
    "intensity",
    "occupancy",
    "averageVehicleSpeed",
    "averageSpeed",
    "congested",
    "vehicleType",
)
_SITE_MEMBERS = (
    "name",
    "availableSpotNumber",
    "occupiedSpotNumber",
    "totalSpotNumber",
    "occupancy",
    "status",
)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class TrafficState:
    """The traffic state, kept as a sink (see the module documentation). Thread-safe reads."""

    def __init__(self, path: str | Path | None = None, *, write_interval: float = 1.0) -> None:
        self.path = Path(path) if path is not None else None
        self.name = "traffic-state"
        self.write_interval = write_interval
        self._lock = threading.Lock()
        self._flows: dict[str, dict[str, Any]] = {}
        self._sites: dict[str, dict[str, Any]] = {}
        self._spots: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self._last_write = 0.0

    # sink --------------------------------------------------------------------------------

    def open(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        raw = data.get("raw", {}) if isinstance(data, dict) else {}
        self._flows = dict(raw.get("flows", {}))
        self._sites = dict(raw.get("sites", {}))
        self._spots = dict(raw.get("spots", {}))

    @staticmethod
    def _newer(held: dict[str, Any] | None, observed: str) -> bool:
        return held is None or str(held.get("observedAt", "")) <= observed

    def write(self, changes: Sequence[EntityChange]) -> None:
        with self._lock:
            for change in changes:
                types = set(change.entity_type.split(","))
                observed = timestamp(change.observed_at)
                entity_id = change.entity_id
                if types & _FLOW_TYPES:
                    if not self._newer(self._flows.get(entity_id), observed):
                        continue
                    record = {k: change.value(k) for k in _FLOW_MEMBERS if k in change.values}
                    segment = change.value("refRoadSegment")
                    record.update(
                        entityId=entity_id,
                        segment=segment if isinstance(segment, str) and segment else entity_id,
                        observedAt=observed,
                    )
                    if change.location is not None:
                        record["location"] = change.location
                    self._flows[entity_id] = record
                elif types & _SITE_TYPES:
                    if not self._newer(self._sites.get(entity_id), observed):
                        continue
                    held = dict(self._sites.get(entity_id) or {})
                    held.update({k: change.value(k) for k in _SITE_MEMBERS if k in change.values})
                    held.update(entityId=entity_id, type=change.entity_type, observedAt=observed)
                    if change.location is not None:
                        held["location"] = change.location
                    self._sites[entity_id] = held
                elif "ParkingSpot" in types:
                    if not self._newer(self._spots.get(entity_id), observed):
                        continue
                    site = change.value("refParkingSite")
                    previous = self._spots.get(entity_id) or {}
                    self._spots[entity_id] = {
                        "entityId": entity_id,
                        "status": change.value("status", previous.get("status")),
                        "site": site if isinstance(site, str) else previous.get("site"),
                        "observedAt": observed,
                    }
                else:
                    continue
                self._dirty = True
        self._maybe_save()

    def close(self) -> None:
        self.save()

    def _maybe_save(self) -> None:
        if self.path is not None and time.monotonic() - self._last_write >= self.write_interval:
            self.save()

    def flush(self) -> None:
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            raw = {"flows": self._flows, "sites": self._sites, "spots": self._spots}
        write_atomically(self.path, orjson.dumps({**self.snapshot(), "raw": raw}))
        self._last_write = time.monotonic()

    # reading -----------------------------------------------------------------------------

    def road_segments(self) -> list[dict[str, Any]]:
        with self._lock:
            lanes: dict[str, list[dict[str, Any]]] = {}
            for flow in self._flows.values():
                lanes.setdefault(str(flow["segment"]), []).append(dict(flow))
        out: list[dict[str, Any]] = []
        for segment in sorted(lanes):
            members = sorted(
                lanes[segment], key=lambda f: (str(f.get("laneId", "")), f["entityId"])
            )
            intensities = [_number(f.get("intensity")) for f in members]
            total = (
                sum(i for i in intensities if i is not None)
                if any(i is not None for i in intensities)
                else None
            )
            occupancies = [
                o for o in (_number(f.get("occupancy")) for f in members) if o is not None
            ]
            speeds = [
                (s, _number(f.get("intensity")) or 0.0)
                for f in members
                if (s := _number(f.get("averageVehicleSpeed", f.get("averageSpeed")))) is not None
            ]
            weight = sum(w for _, w in speeds)
            speed = (
                sum(s * w for s, w in speeds) / weight
                if weight > 0
                else (sum(s for s, _ in speeds) / len(speeds) if speeds else None)
            )
            out.append(
                {
                    "id": segment,
                    "intensity": total,
                    "occupancy": sum(occupancies) / len(occupancies) if occupancies else None,
                    "averageVehicleSpeed": speed,
                    "congested": any(f.get("congested") is True for f in members),
                    "observedAt": max(f["observedAt"] for f in members),
                    "lanes": members,
                }
            )
        return out

    def parking_sites(self) -> list[dict[str, Any]]:
        with self._lock:
            sites = {k: dict(v) for k, v in self._sites.items()}
            spots = [dict(v) for v in self._spots.values()]
        counts: dict[str, dict[str, int]] = {}
        latest: dict[str, str] = {}
        for spot in spots:
            site = spot.get("site")
            if not site:
                continue
            status = str(spot.get("status") or "unknown")
            counts.setdefault(site, {})[status] = counts.setdefault(site, {}).get(status, 0) + 1
            latest[site] = max(latest.get(site, ""), str(spot["observedAt"]))
        out: list[dict[str, Any]] = []
        for site_id in sorted(set(sites) | set(counts)):
            site = sites.get(site_id, {"entityId": site_id})
            record: dict[str, Any] = {
                "id": site_id,
                **{k: v for k, v in site.items() if k != "entityId"},
            }
            if site_id in counts:
                record["spots"] = dict(sorted(counts[site_id].items()))
                record.setdefault("availableSpotNumber", counts[site_id].get("free", 0))
                record["observedAt"] = max(str(record.get("observedAt", "")), latest[site_id])
            out.append(record)
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"roadSegments": self.road_segments(), "parkingSites": self.parking_sites()}

    def routes(self) -> list[Route]:
        """`GET /state`, `/state/road-segments[/{id}]`, `/state/parking-sites[/{id}]`."""

        async def state(request: Request) -> Response:
            return JSONResponse(self.snapshot())

        async def segments(request: Request) -> Response:
            return JSONResponse(self.road_segments())

        async def sites(request: Request) -> Response:
            return JSONResponse(self.parking_sites())

        def one(getter: Any, what: str) -> Any:
            async def endpoint(request: Request) -> Response:
                wanted = request.path_params["item"]
                for item in getter():
                    if item["id"] == wanted:
                        return JSONResponse(item)
                return JSONResponse({"detail": f"no {what} {wanted!r}"}, status_code=404)

            return endpoint

        return [
            Route("/state", state, methods=["GET"]),
            Route("/state/road-segments", segments, methods=["GET"]),
            Route(
                "/state/road-segments/{item:path}",
                one(self.road_segments, "road segment"),
                methods=["GET"],
            ),
            Route("/state/parking-sites", sites, methods=["GET"]),
            Route(
                "/state/parking-sites/{item:path}",
                one(self.parking_sites, "parking site"),
                methods=["GET"],
            ),
        ]


def traffic_consumer(
    *,
    name: str = "traffic",
    state_path: str | Path | None = None,
    geojson_path: str | Path | None = None,
    extra_sinks: Sequence[Sink] = (),
    **options: Any,
) -> tuple[Consumer, TrafficState]:
    """The traffic consumer and its state; `options` go to `Consumer` (state_dir, secret...)."""
    state = TrafficState(state_path)
    sinks: list[Sink] = [state]
    if geojson_path is not None:
        sinks.append(GeoJsonSink(geojson_path))
    sinks.extend(extra_sinks)
    consumer = Consumer(name, sinks=sinks, routes=state.routes(), **options)
    return consumer, state
