"""Keeping the public tenant current: notifications in, projected entities out, plus a re-sync.

    projection = PublicProjection(rules, client=Client(url, profile="embedded"), key=key)
    consumer = Consumer("publish", sinks=[projection], state_dir="publish-state")
    with serve_in_thread(consumer, port=8090) as receiver:      # agents.consumers
        projection.subscribe(receiver.url)                       # one subscription per type
        projection.resync()                                      # what changed while away

`PublicProjection` is a consumer sink (`agents.consumers`: the receiver checks, de-duplicates
and queues notifications durably; one worker hands them here in order). Each batch of changes
becomes, per entity, the projected entity written to the target tenant with replace semantics
(upsert without `options=update`: the public entity is exactly the projection of the source
entity, so an attribute suppressed or removed at the source disappears), or, for an entity
deleted at the source, the deletion of its public entity. A write the broker does not confirm
raises `SinkError`, and the consumer retries the batch.

`subscribe(endpoint)` makes one subscription per published type on the source tenant (named
`publish/<target>/<Type>`, with the type's @context, normalized format, triggered by creation,
update and deletion), replacing one of that name whose endpoint differs; idempotent.

`resync()` is the safety net (after the projector was away, or the rules changed): every entity
of every published type is read from the source and written projected; every entity of the
target tenant that the projection does not produce (deleted at the source, a type or an entity
no longer published) is deleted. It returns a `SyncReport`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from agents.consumers import EntityChange, SinkError
from agents.publish._project import Projector
from agents.publish._rules import PublishRules, TypeRule
from ngsi import Client, NgsiError, NonexistentTenant

__all__ = ["PublicProjection", "SyncReport", "subscription_name"]

log = logging.getLogger("agents.publish")

TRIGGERS: Final = ("entityCreated", "entityUpdated", "entityDeleted")
_CHUNK: Final = 500


def subscription_name(rules: PublishRules, rule: TypeRule) -> str:
    """The subscriptionName of the projection's subscription for one type."""
    return f"publish/{rules.target_tenant}/{rule.type}"


@dataclass
class SyncReport:
    """What a re-sync did: entities read, written, left out (type rule gave nothing) and
    deleted from the target tenant, and the ids the broker did not confirm."""

    read: int = 0
    written: int = 0
    deleted: int = 0
    failed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "written": self.written,
            "deleted": self.deleted,
            "failed": list(self.failed),
        }


class PublicProjection:
    """The projection sink (see the module documentation). `client` reaches the broker; its
    own tenant is ignored (the rules name the source and the target)."""

    name = "public-projection"

    def __init__(self, rules: PublishRules, *, client: Client, key: bytes) -> None:
        self.rules = rules
        self.client = client
        self.projector = Projector(rules, key=key)
        self.counters: dict[str, int] = {"written": 0, "deleted": 0, "skipped": 0}

    # --- sink -----------------------------------------------------------------------------

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def write(self, changes: Sequence[EntityChange]) -> None:
        """Apply a batch of source changes to the target tenant (see the module docs)."""
        latest: dict[str, tuple[TypeRule, dict[str, Any] | None]] = {}
        for change in changes:
            if change.tenant is not None and change.tenant != self.rules.source_tenant:
                self.counters["skipped"] += 1
                continue
            entity = change.entity
            type_name = entity.get("type")
            rule = self.rules.rule(type_name) if isinstance(type_name, str) else None
            if rule is None:
                self.counters["skipped"] += 1
                continue
            public_id = self.projector.public_id(change.entity_id, rule.type)
            latest.pop(public_id, None)  # keep the order of the last change
            if "deletedAt" in entity:
                latest[public_id] = (rule, None)
                continue
            latest[public_id] = (rule, self.projector.project(change.normalized))
        upserts: dict[str | None, list[dict[str, Any]]] = {}
        deletions: list[str] = []
        for public_id, (rule, projected) in latest.items():
            if projected is None:
                deletions.append(public_id)
            else:
                upserts.setdefault(rule.context_url(), []).append(projected)
        failed: list[str] = []
        for context, entities in upserts.items():
            failed += self._upsert(entities, context)
        if deletions:
            self._delete(deletions)
        if failed:
            raise SinkError(
                f"the broker did not confirm {len(failed)} public entities "
                f"(tenant {self.rules.target_tenant!r}), e.g. {failed[:3]}"
            )

    def _upsert(self, entities: list[dict[str, Any]], context: str | None) -> list[str]:
        try:
            result = self.client.batch_upsert(
                entities, mode="replace", tenant=self.rules.target_tenant, context=context
            )
        except NgsiError as exc:
            raise SinkError(f"writing to tenant {self.rules.target_tenant!r}: {exc}") from exc
        self.counters["written"] += len(result.succeeded)
        return result.failed_ids

    def _delete(self, entity_ids: list[str]) -> int:
        """Delete public entities; those already absent count as done."""
        try:
            result = self.client.batch_delete(entity_ids, tenant=self.rules.target_tenant)
        except NonexistentTenant:
            return 0
        except NgsiError as exc:
            raise SinkError(f"deleting in tenant {self.rules.target_tenant!r}: {exc}") from exc
        unknown = [f.entity_id for f in result.failed if f.status not in (404, None)]
        if any(f.status is None for f in result.failed):
            raise SinkError(f"deleting in tenant {self.rules.target_tenant!r}: no answer")
        if unknown:
            raise SinkError(f"the broker refused to delete public entities {unknown[:3]}")
        self.counters["deleted"] += len(result.succeeded)
        return len(result.succeeded)

    # --- subscriptions --------------------------------------------------------------------

    def subscription(self, rule: TypeRule, endpoint: str) -> dict[str, Any]:
        """The subscription body for one published type."""
        body: dict[str, Any] = {
            "type": "Subscription",
            "subscriptionName": subscription_name(self.rules, rule),
            "description": (
                f"Public projection of {rule.type} into tenant {self.rules.target_tenant!r}"
            ),
            "entities": [{"type": rule.type}],
            "notificationTrigger": list(TRIGGERS),
            "notification": {
                "format": "normalized",
                "endpoint": {"uri": endpoint, "accept": "application/json"},
            },
        }
        context = rule.context_url()
        if context is not None:
            body["jsonldContext"] = context
        return body

    def subscribe(self, endpoint: str) -> list[str]:
        """Make sure one subscription per published type notifies `endpoint`; returns their
        ids (kept or new)."""
        tenant = self.rules.source_tenant
        existing: dict[str, Any] = {}
        try:
            for subscription in self.client.list_subscriptions(tenant=tenant):
                if subscription.subscription_name:
                    existing[subscription.subscription_name] = subscription
        except NonexistentTenant:
            pass
        ids: list[str] = []
        for rule in self.rules.types:
            found = existing.get(subscription_name(self.rules, rule))
            if found is not None and found.id is not None:
                uri = str(found.notification.endpoint.uri) if found.notification.endpoint else ""
                if uri == endpoint:
                    ids.append(found.id)
                    continue
                self.client.delete_subscription(found.id, tenant=tenant)
            ids.append(
                self.client.create_subscription(
                    self.subscription(rule, endpoint), tenant=tenant, context=rule.context_url()
                )
            )
        return ids

    # --- re-sync --------------------------------------------------------------------------

    def resync(self) -> SyncReport:
        """Rebuild the target tenant from the source (see the module documentation)."""
        report = SyncReport()
        produced: set[str] = set()
        # What the target held before: an entity a notification adds while the re-sync runs
        # is not in it, so it is never taken for stale.
        before = self._target_ids()
        for rule in self.rules.types:
            context = rule.context_url()
            batch: list[dict[str, Any]] = []
            for entity in self._source_entities(rule, context):
                report.read += 1
                projected = self.projector.project(entity)
                if projected is None:
                    continue
                produced.add(projected["id"])
                batch.append(projected)
                if len(batch) >= _CHUNK:
                    report.failed += self._write_counted(batch, context, report)
                    batch = []
            if batch:
                report.failed += self._write_counted(batch, context, report)
        stale = [i for i in before if i not in produced]
        for start in range(0, len(stale), _CHUNK):
            report.deleted += self._delete(stale[start : start + _CHUNK])
        return report

    def _write_counted(
        self, batch: list[dict[str, Any]], context: str | None, report: SyncReport
    ) -> list[str]:
        failed = self._upsert(batch, context)
        report.written += len(batch) - len(failed)
        return failed

    def _source_entities(self, rule: TypeRule, context: str | None) -> Iterable[dict[str, Any]]:
        try:
            yield from self.client.iter_entities(
                type=rule.type, tenant=self.rules.source_tenant, context=context
            )
        except NonexistentTenant:
            return

    def _target_ids(self) -> list[str]:
        tenant = self.rules.target_tenant
        try:
            names = self.client.types(tenant=tenant, context=None)
        except NonexistentTenant:
            return []
        ids: list[str] = []
        for name in names:
            for entity in self.client.iter_entities(type=name, tenant=tenant, context=None):
                ids.append(str(entity["id"]))
        return ids
