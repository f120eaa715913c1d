"""Retention: the broker's current state (per type, on a schedule) and history, and the agent's
archive and dead letters remove exactly what is past its period, nothing else."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from agents.delivery import DeadLetters, UplinkArchive
from agents.privacy import apply_agent_retention
from ngsi.broker import BrokerSettings, create_app, default_extensions
from ngsi.broker._retention import RetentionExtension, StateRetention
from ngsi.broker._temporal import History
from tests._serve import serve_app
from tests.e2e.support import wait_for

DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"


@contextlib.contextmanager
def serve(app: Starlette) -> Iterator[str]:
    with serve_app(app, name="broker") as served:
        yield f"{served.url}/ngsi-ld/v1"


def entity(entity_id: str, kind: str, value: float) -> dict[str, Any]:
    return {"id": entity_id, "type": kind, "level": {"type": "Property", "value": value}}


def upsert(api: str, *entities: dict[str, Any], tenant: str | None = None) -> None:
    headers = {"NGSILD-Tenant": tenant} if tenant else {}
    answer = httpx.post(
        f"{api}/entityOperations/upsert?options=update", json=list(entities), headers=headers
    )
    assert answer.status_code in (201, 204), answer.text


def ids(api: str, kind: str, *, tenant: str | None = None, temporal: bool = False) -> list[str]:
    headers = {"NGSILD-Tenant": tenant} if tenant else {}
    path = "temporal/entities" if temporal else "entities"
    answer = httpx.get(f"{api}/{path}", params={"type": kind, "limit": 1000}, headers=headers)
    if answer.status_code == 404:
        return []
    assert answer.status_code == 200, answer.text
    return sorted(e["id"] for e in answer.json())


def test_expired_entities_leave_the_current_state_by_type_and_keep_their_history(
    tmp_path: Path,
) -> None:
    settings = BrokerSettings(data_dir=tmp_path, port=1)
    app = create_app(settings)
    with serve(app) as api:
        upsert(
            api,
            entity("urn:ngsi-ld:Gauge:old", "Gauge", 1),
            entity("urn:ngsi-ld:Gauge:new", "Gauge", 1),
        )
        upsert(
            api,
            entity("urn:ngsi-ld:Other:a", "Other", 1),
            entity("urn:ngsi-ld:Plain:a", "Plain", 1),
        )
        upsert(api, entity("urn:ngsi-ld:Gauge:t", "Gauge", 1), tenant="t2")
        time.sleep(1.2)
        upsert(api, entity("urn:ngsi-ld:Gauge:new", "Gauge", 2))
        broker = app.state.broker
        history = broker.extras["temporal"]
        assert isinstance(history, History)
        retention = StateRetention(
            broker.store,
            retention=timedelta(days=30),
            retention_by_type={DEFAULT + "Gauge": timedelta(seconds=1)},
            history=history,
        )
        assert retention.expire() == {None: 1, "t2": 1}
        assert ids(api, "Gauge") == ["urn:ngsi-ld:Gauge:new"]
        assert ids(api, "Gauge", tenant="t2") == []
        assert ids(api, "Other") == ["urn:ngsi-ld:Other:a"]
        assert ids(api, "Plain") == ["urn:ngsi-ld:Plain:a"]
        # expired, not erased: the history keeps it for the history's retention
        assert ids(api, "Gauge", temporal=True) == [
            "urn:ngsi-ld:Gauge:new",
            "urn:ngsi-ld:Gauge:old",
        ]
        assert ids(api, "Gauge", tenant="t2", temporal=True) == ["urn:ngsi-ld:Gauge:t"]
        # the default (30 days) takes the rest in a month
        later = datetime.now(UTC) + timedelta(days=31)
        assert retention.expire(now=later) == {None: 3}
        assert ids(api, "Other") == []
        # an entity deleted by a client still loses its history
        upsert(api, entity("urn:ngsi-ld:Other:b", "Other", 1))
        assert httpx.delete(f"{api}/entities/urn:ngsi-ld:Other:b").status_code == 204
        assert "urn:ngsi-ld:Other:b" not in ids(api, "Other", temporal=True)


def test_the_retention_extension_runs_on_a_schedule(tmp_path: Path) -> None:
    settings = BrokerSettings(
        data_dir=tmp_path, port=1, state_retention_days_by_type={DEFAULT + "Gauge": 1.0}
    )
    extension = RetentionExtension(
        settings, retention_by_type={DEFAULT + "Gauge": timedelta(seconds=0.5)}, interval=0.2
    )
    app = create_app(settings, extensions=[*default_extensions(settings), extension])
    with serve(app) as api:
        upsert(
            api, entity("urn:ngsi-ld:Gauge:1", "Gauge", 1), entity("urn:ngsi-ld:Keep:1", "Keep", 1)
        )
        wait_for(lambda: ids(api, "Gauge") == [], timeout=15)
        assert ids(api, "Keep") == ["urn:ngsi-ld:Keep:1"]
        assert ids(api, "Gauge", temporal=True) == ["urn:ngsi-ld:Gauge:1"]


def test_without_retention_the_extension_does_nothing(tmp_path: Path) -> None:
    settings = BrokerSettings(data_dir=tmp_path, port=1)
    extension = RetentionExtension(settings, interval=0.05)
    app = create_app(settings, extensions=[*default_extensions(settings), extension])
    with serve(app) as api:
        upsert(api, entity("urn:ngsi-ld:Gauge:1", "Gauge", 1))
        assert extension.retention is not None
        assert not extension.retention.active
        assert extension.retention.expire(now=datetime.now(UTC) + timedelta(days=9999)) == {}
        assert ids(api, "Gauge") == ["urn:ngsi-ld:Gauge:1"]


def test_state_retention_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an expanded type IRI"):
        BrokerSettings(data_dir=tmp_path, state_retention_days_by_type={"Gauge": 3})
    with pytest.raises(ValueError, match="more than 0"):
        BrokerSettings(data_dir=tmp_path, state_retention_days_by_type={DEFAULT + "G": 0})


def test_history_retention_reaches_tenants_not_opened_since_the_start(tmp_path: Path) -> None:
    settings = BrokerSettings(data_dir=tmp_path, port=1)
    with serve(create_app(settings)) as api:
        upsert(api, entity("urn:ngsi-ld:Gauge:1", "Gauge", 1), tenant="quiet")
        upsert(api, entity("urn:ngsi-ld:Other:1", "Other", 1), tenant="quiet")
    history = History(tmp_path, retention_by_type={DEFAULT + "Gauge": timedelta(days=1)})
    history.start()
    try:
        assert history.tenants() == ["quiet"]
        assert history.purge(now=datetime.now(UTC) + timedelta(days=2)) == 1
    finally:
        history.stop()
    with serve(create_app(settings)) as api:
        assert ids(api, "Gauge", tenant="quiet", temporal=True) == []
        assert ids(api, "Other", tenant="quiet", temporal=True) == ["urn:ngsi-ld:Other:1"]


def test_agent_retention_prunes_the_archive_and_the_dead_letters_by_age(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with UplinkArchive(tmp_path / "archive.db", retention=None) as archive:
        for age in (1, 10, 40):
            archive.add(
                source="s", payload=b"{}", received_at=now - timedelta(days=age), dev_eui="AA"
            )
    with DeadLetters(tmp_path / "outbox.db") as letters:
        for age in (1, 100):
            letters.add(reason="codec-error", message=f"{age}", dev_eui="AA")
        # dead letters are stamped now; judge them from a later `now`
    report = apply_agent_retention(
        tmp_path, archive_days=30, dead_letter_days=90, now=now + timedelta(days=1)
    )
    assert report.to_json() == {"archive": 1, "dead_letters": 0}
    report = apply_agent_retention(
        tmp_path, archive_days=5, dead_letter_days=0.5, now=now + timedelta(days=1)
    )
    assert report.to_json() == {"archive": 1, "dead_letters": 2}
    with UplinkArchive(tmp_path / "archive.db", retention=None) as archive:
        assert archive.count() == 1
    assert apply_agent_retention(
        tmp_path / "nothing", archive_days=1, dead_letter_days=1
    ).to_json() == {"archive": 0, "dead_letters": 0}
