"""Entity changes, as the storage layer reports them to subscriptions and history.

Contract: the broker calls every registered `ChangeListener.entity_changed` after the change is
committed, on the thread that committed it, in commit order per tenant. A listener must not block
(queue the work and return) and must not raise; a slow consumer never slows down a write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = ["ChangeKind", "ChangeListener", "EntityChange"]

ChangeKind = Literal["created", "updated", "deleted"]


@dataclass(frozen=True, kw_only=True, slots=True)
class EntityChange:
    """One committed change of one entity.

    `before` and `after` are the whole entity in expanded, normalized form (attribute and type
    names are IRIs, system attributes included); `before` is None for a creation, `after` is None
    for a deletion. `changed_attributes` holds the expanded names of the attributes that were
    written (appended, updated or deleted) by the request, even when the value stayed the same.
    """

    tenant: str | None
    kind: ChangeKind
    entity_id: str
    entity_types: tuple[str, ...]
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    changed_attributes: frozenset[str]
    at: datetime


class ChangeListener(Protocol):
    def entity_changed(self, change: EntityChange) -> None:
        """Take note of a committed change; never block, never raise."""
