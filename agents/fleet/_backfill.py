"""Backfill: uplinks lost on the way (fCnt gaps) fetched again from The Things Stack's Storage
Integration, and run through the agent like any other uplink.

The Things Stack's MQTT is QoS 0 and its webhooks are not retried: an agent that was away, or a
message dropped on the way, leaves a gap in a device's frame counter. Where the application has
the Storage Integration enabled, the network server kept the uplink:

    GET {url}/api/v3/as/applications/{app}/devices/{device}/packages/storage/uplink_message
        ?after=<RFC 3339>&before=<RFC 3339>&limit=<n>
    Authorization: Bearer <API key with RIGHT_APPLICATION_TRAFFIC_READ>
    Accept: text/event-stream

answers newline-delimited JSON, one `{"result": <uplink message>}` per line, each message in the
same shape as MQTT and webhooks carry it.

`Backfiller.run(since=...)` finds the gaps in the uplink archive (frames of the window, by
device, in fCnt order), and for each gap whose neighbouring frame came from a configured source
asks the Storage Integration for that device's uplinks between the two frames' receive times.
The stored uplinks with a missing fCnt are handed to `submit(source, payload, topic)`: the
agent puts them in its queue, so they are deduplicated, decoded, mapped, archived (closing the
gap) and, being older than what the broker holds, written to the entities' temporal history
only (design decision 6). Each missing (DevEUI, fCnt) is asked for once per process, so a frame
the network server did not keep either is not asked for again and again.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

from agents.delivery import UplinkArchive
from agents.delivery._clock import from_us, to_us
from models import format_datetime

__all__ = [
    "BackfillReport",
    "BackfillSource",
    "Backfiller",
    "StorageIntegration",
    "StorageIntegrationError",
]

logger = logging.getLogger("agents.fleet.backfill")

_WINDOW = 64

Submit = Callable[[str, bytes, str | None], bool]
"""`submit(source name, uplink message JSON, MQTT topic)`: hand an uplink to the agent."""


class BackfillSource(BaseModel):
    """`fleet.backfill[]`: a The Things Stack source of the agent whose application has the
    Storage Integration enabled. `source` is the source's name in the configuration, `url` the
    network server's base URL; the API key comes from `api_key_file` or the environment
    variable `api_key_env`. At most `max_uplinks` uplinks are fetched per gap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    url: str
    api_key_file: Path | None = None
    api_key_env: str = "DREHSCHEIBE_TTS_STORAGE_KEY"
    max_uplinks: int = Field(default=100, ge=1, le=1000)
    timeout: float = Field(default=10.0, gt=0)

    def api_key(self) -> str:
        """The API key; `StorageIntegrationError` when it cannot be read."""
        if self.api_key_file is not None:
            try:
                return self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise StorageIntegrationError(
                    f"backfill {self.source}: cannot read {self.api_key_file}: {exc.strerror}"
                ) from None
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise StorageIntegrationError(
                f"backfill {self.source}: no API key (api_key_file, or ${self.api_key_env})"
            )
        return key


class StorageIntegrationError(RuntimeError):
    """The Storage Integration could not be read: which source, device and why."""


class StorageIntegration:
    """The HTTP API of The Things Stack's Storage Integration (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def uplinks(
        self,
        application: str,
        device: str,
        *,
        after: datetime,
        before: datetime,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The stored uplink messages of `device` received between `after` and `before`."""
        path = (
            f"/api/v3/as/applications/{quote(application)}/devices/{quote(device)}"
            "/packages/storage/uplink_message"
        )
        params = {
            "after": format_datetime(after),
            "before": format_datetime(before),
            "limit": str(limit),
            "order": "received_at",
        }
        try:
            response = self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise StorageIntegrationError(f"storage of {device}: no answer: {exc}") from None
        if response.status_code != 200:
            raise StorageIntegrationError(
                f"storage of {application}/{device} answered {response.status_code}: "
                f"{response.text[:200]}"
            )
        found: list[dict[str, Any]] = []
        for line in response.content.splitlines():
            line = line.strip()
            if line.startswith(b"data:"):
                line = line[5:].strip()
            if not line:
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            result = item.get("result") if isinstance(item, dict) else None
            if isinstance(result, dict):
                found.append(result)
        return found


@dataclass
class BackfillReport:
    """What one run did: gaps seen, fCnts asked for, uplinks handed to the agent, failures."""

    gaps: int = 0
    requested: int = 0
    submitted: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Frame:
    f_cnt: int
    received_us: int
    source: str


def _frames_by_device(archive: UplinkArchive, since: datetime) -> dict[str, list[_Frame]]:
    with archive.db.read() as conn:
        rows = conn.execute(
            "SELECT dev_eui, f_cnt, received_us, source FROM uplink_archive "
            "WHERE dev_eui IS NOT NULL AND f_cnt IS NOT NULL AND received_us >= ? "
            "ORDER BY dev_eui, received_us, id",
            (to_us(since),),
        ).fetchall()
    found: dict[str, list[_Frame]] = {}
    for dev_eui, f_cnt, received_us, source in rows:
        found.setdefault(str(dev_eui), []).append(_Frame(int(f_cnt), int(received_us), source))
    return found


def _gaps(frames: list[_Frame]) -> list[tuple[_Frame, _Frame]]:
    """Neighbouring frames (in fCnt order, within a session) with fCnts missing between them."""
    sessions: list[dict[int, _Frame]] = []
    highest = -1
    for frame in frames:
        if not sessions or highest - frame.f_cnt > _WINDOW:
            sessions.append({})
            highest = frame.f_cnt
        sessions[-1].setdefault(frame.f_cnt, frame)
        highest = max(highest, frame.f_cnt)
    pairs: list[tuple[_Frame, _Frame]] = []
    for session in sessions:
        ordered = [session[key] for key in sorted(session)]
        for low, high in itertools.pairwise(ordered):
            if high.f_cnt - low.f_cnt > 1:
                pairs.append((low, high))
    return pairs


def _ids(archive: UplinkArchive, dev_eui: str, at_us: int) -> tuple[str, str] | None:
    """(application id, device id) from the archived message of `dev_eui` received at `at_us`."""
    moment = from_us(at_us)
    for stored in archive.uplinks(
        dev_eui=dev_eui, since=moment, until=moment + timedelta(microseconds=1), page_size=1
    ):
        try:
            body = orjson.loads(stored.payload)
        except orjson.JSONDecodeError:
            return None
        ids = body.get("end_device_ids") if isinstance(body, dict) else None
        if not isinstance(ids, dict):
            return None
        application = ids.get("application_ids", {}).get("application_id")
        device = ids.get("device_id")
        if isinstance(application, str) and isinstance(device, str):
            return application, device
        return None
    return None


def _f_cnt(message: Mapping[str, Any]) -> int:
    uplink = message.get("uplink_message")
    value = uplink.get("f_cnt", 0) if isinstance(uplink, Mapping) else None
    return int(value) if isinstance(value, int) else -1


class Backfiller:
    """Fetches the uplinks of fCnt gaps from the Storage Integration (see the module docstring).

    `storages` maps a source name to its `StorageIntegration`; `submit` hands an uplink to the
    agent. Runs on the fleet monitor's thread.
    """

    def __init__(
        self,
        archive: UplinkArchive,
        storages: Mapping[str, StorageIntegration],
        submit: Submit,
        *,
        max_uplinks: int = 100,
    ) -> None:
        self.archive = archive
        self.storages = dict(storages)
        self.submit = submit
        self.max_uplinks = max_uplinks
        self.asked: set[tuple[str, int]] = set()
        self.totals = BackfillReport()

    def close(self) -> None:
        for storage in self.storages.values():
            storage.close()

    def run(self, *, since: datetime) -> BackfillReport:
        """Look for gaps in the frames archived since `since` and fetch what they miss."""
        report = BackfillReport()
        for dev_eui, frames in _frames_by_device(self.archive, since).items():
            for low, high in _gaps(frames):
                report.gaps += 1
                storage = self.storages.get(high.source)
                if storage is None:
                    continue
                missing = {
                    f for f in range(low.f_cnt + 1, high.f_cnt) if (dev_eui, f) not in self.asked
                }
                if not missing:
                    continue
                ids = _ids(self.archive, dev_eui, high.received_us)
                if ids is None:
                    continue
                self.asked.update((dev_eui, f) for f in missing)
                report.requested += len(missing)
                try:
                    stored = storage.uplinks(
                        ids[0],
                        ids[1],
                        after=from_us(min(low.received_us, high.received_us)),
                        before=from_us(max(low.received_us, high.received_us)),
                        limit=self.max_uplinks,
                    )
                except StorageIntegrationError as exc:
                    report.failures.append(str(exc))
                    logger.warning("backfill of %s: %s", dev_eui, exc)
                    continue
                topic = f"v3/{ids[0]}/devices/{ids[1]}/up"
                for message in stored:
                    if _f_cnt(message) not in missing:
                        continue
                    if self.submit(high.source, orjson.dumps(message), topic):
                        report.submitted += 1
                if report.submitted:
                    logger.info(
                        "backfill of %s: %d of %d missing uplinks fetched from the storage",
                        dev_eui,
                        report.submitted,
                        len(missing),
                    )
        self.totals.gaps = report.gaps
        self.totals.requested += report.requested
        self.totals.submitted += report.submitted
        self.totals.failures = (self.totals.failures + report.failures)[-20:]
        return report
