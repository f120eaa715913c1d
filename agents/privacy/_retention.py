"""Retention of the agent's stores: raw uplinks in the archive and dead letters, by age.

The agent prunes its archive once an hour by `archive.retention_days` (default 30 days);
`apply_agent_retention` applies both periods on demand (from a timer or `cron`, or
`drehscheibe erase expired`) to an agent's data folder, also while the agent runs (SQLite's WAL
lets both write). The outbox holds entities only until the broker confirms them, and the
frame counters one row per device: neither grows with time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from agents.delivery import DeadLetters, UplinkArchive

__all__ = ["AgentRetentionReport", "apply_agent_retention"]


@dataclass(frozen=True)
class AgentRetentionReport:
    """How many archived uplinks and dead letters a retention pass deleted."""

    archive: int = 0
    dead_letters: int = 0

    def to_json(self) -> dict[str, int]:
        return {"archive": self.archive, "dead_letters": self.dead_letters}


def apply_agent_retention(
    agent_dir: Path,
    *,
    archive_days: float | None,
    dead_letter_days: float | None,
    now: datetime | None = None,
) -> AgentRetentionReport:
    """Delete archived uplinks received more than `archive_days` and dead letters created more
    than `dead_letter_days` before `now` (None: keep that store as it is); stores that do not
    exist are skipped."""
    archived = letters = 0
    archive_path = agent_dir / "archive.db"
    outbox_path = agent_dir / "outbox.db"
    if archive_days is not None and archive_path.is_file():
        with UplinkArchive(archive_path, retention=None) as archive:
            archived = archive.prune(now, retention=timedelta(days=archive_days))
    if dead_letter_days is not None and outbox_path.is_file():
        with DeadLetters(outbox_path) as store:
            letters = store.prune(now, retention=timedelta(days=dead_letter_days))
    return AgentRetentionReport(archive=archived, dead_letters=letters)
