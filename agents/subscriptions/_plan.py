"""Reconciling a consumers file with a broker: `plan` (what would change), `apply_plan` (do it).

Rules:

- **Identity is the owned name.** A broker subscription is the file's subscription `N` exactly
  when its `subscriptionName` is `N` and it lives in the same tenant (see `_names`). Endpoints,
  types and ids never identify anything; subscriptions without an owned name of this project
  are never read, changed or deleted.
- **Compared on the normalised form** (see `_normalize`): read-only members, broker defaults
  and list order never show as changes; `isActive` only when the file declares it.
- **Create** what the file declares and the broker lacks.
- **Update** in place with `PATCH /subscriptions/{id}` when the change only sets members
  (a member dropped from the file that has a default, such as `notification.format`, is set
  back to its default). **Recreate** (create the new one, then delete the old one; the id
  changes) when a member without a default must disappear (say `q` or `throttling`; brokers
  differ on `null` in a subscription PATCH) or when the @context changes (a broker keeps the
  context a subscription was created with). Creating first means no change is missed while
  both exist; a consumer may see one change twice, which the consumers drop by fingerprint.
- **Duplicates** (two subscriptions with one owned name, say after a crash between the two
  steps of a recreate) are reduced to one: the one that matches the file is kept, else the
  oldest id; the others are deleted.
- **Owned but no longer in the file**: reported; deleted only with `prune=True`.

`apply_plan` runs a plan once; running `plan` again right after gives no changes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from agents.subscriptions._desired import DesiredSubscription, desired_subscriptions
from agents.subscriptions._file import ConsumersFile
from agents.subscriptions._names import parse_owned_name
from agents.subscriptions._normalize import (
    FieldChange,
    field_changes,
    mask_secrets,
    normalise,
    render_value,
)
from ngsi import NgsiError, Subscription

__all__ = [
    "Action",
    "ApplyOutcome",
    "ApplyReport",
    "Change",
    "Plan",
    "SubscriptionClient",
    "apply_plan",
    "plan",
    "render_plan",
]

DEFAULT_VALUES: Final[dict[str, Any]] = {
    "isActive": True,
    "notification.format": "normalized",
    "notification.sysAttrs": False,
    "notification.showChanges": False,
    "notification.endpoint.accept": "application/json",
}


class SubscriptionClient(Protocol):
    """What reconciling needs of `ngsi.Client`."""

    def list_subscriptions(
        self, *, tenant: Any = ..., context: Any = ...
    ) -> list[Subscription]: ...

    def create_subscription(
        self, subscription: Any, *, tenant: Any = ..., context: Any = ...
    ) -> str: ...

    def update_subscription(
        self, subscription_id: str, fragment: Any, *, tenant: Any = ..., context: Any = ...
    ) -> None: ...

    def delete_subscription(self, subscription_id: str, *, tenant: Any = ...) -> None: ...


class Action(enum.StrEnum):
    create = "create"
    update = "update"
    recreate = "recreate"
    delete = "delete"
    orphan = "orphan"
    unchanged = "unchanged"


_SYMBOL: Final = {
    Action.create: "+",
    Action.update: "~",
    Action.recreate: "±",
    Action.delete: "-",
    Action.orphan: "!",
    Action.unchanged: "=",
}


@dataclass(frozen=True, kw_only=True)
class Change:
    """One subscription's fate: what happens, to which (name, id), why, and the members."""

    action: Action
    tenant: str | None
    name: str
    id: str | None = None
    desired: DesiredSubscription | None = None
    current: Mapping[str, Any] | None = None
    """The broker's copy (as listed, with read-only members)."""
    fields: tuple[FieldChange, ...] = ()
    reason: str = ""
    fragment: Mapping[str, Any] | None = None
    """The PATCH body of an update."""

    @property
    def sort_key(self) -> tuple[str, str, str]:
        return (self.tenant or "", self.name, self.id or "")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action.value,
            "tenant": self.tenant,
            "name": self.name,
            "id": self.id,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.desired is not None:
            out["context"] = self.desired.context
            out["path"] = self.desired.path
        if self.action is Action.create and self.desired is not None:
            out["subscription"] = mask_secrets(self.desired.body)
        if self.fields:
            out["changes"] = [
                {
                    "path": f.path,
                    "from": mask_secrets(f.old, f.path),
                    "to": mask_secrets(f.new, f.path),
                }
                for f in self.fields
            ]
        return out


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Every change that reconciling would make, in a stable order (tenant, name, id)."""

    project: str
    prune: bool
    changes: tuple[Change, ...]

    def count(self, action: Action) -> int:
        return sum(1 for change in self.changes if change.action is action)

    @property
    def has_changes(self) -> bool:
        """True when applying would change the broker."""
        return any(
            c.action in (Action.create, Action.update, Action.recreate, Action.delete)
            for c in self.changes
        )

    def summary(self) -> str:
        parts = [
            f"{self.count(Action.create)} to create",
            f"{self.count(Action.update)} to update",
            f"{self.count(Action.recreate)} to recreate",
            f"{self.count(Action.delete)} to delete",
        ]
        text = ", ".join(parts)
        orphans = self.count(Action.orphan)
        if orphans:
            text += f"; {orphans} not in the file, kept (--prune deletes them)"
        return f"{text}; {self.count(Action.unchanged)} unchanged."

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "prune": self.prune,
            "summary": {action.value: self.count(action) for action in Action},
            "changes": [c.to_json() for c in self.changes if c.action is not Action.unchanged],
        }


def _as_dict(subscription: Subscription | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(subscription, Subscription):
        return subscription.to_dict(include_read_only=True)
    return dict(subscription)


def _listing(
    client: SubscriptionClient, tenant: str | None, context: str | None
) -> dict[str, list[dict[str, Any]]]:
    """Owned-looking subscriptions of the tenant by name (any project), ids sorted."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for item in client.list_subscriptions(tenant=tenant, context=context):
        data = _as_dict(item)
        name = data.get("subscriptionName")
        if isinstance(name, str) and parse_owned_name(name) is not None:
            by_name.setdefault(name, []).append(data)
    for items in by_name.values():
        items.sort(key=lambda d: str(d.get("id") or ""))
    return by_name


def _desired_normal(desired: DesiredSubscription) -> dict[str, Any]:
    return normalise(desired.body, compare_is_active=desired.manages_is_active)


def _current_normal(current: Mapping[str, Any], desired: DesiredSubscription) -> dict[str, Any]:
    normal = normalise(current, compare_is_active=desired.manages_is_active)
    if "jsonldContext" not in current:
        # A broker that does not show the stored context: nothing to compare it with.
        normal["jsonldContext"] = desired.context
    return normal


def _compare(current: Mapping[str, Any], desired: DesiredSubscription) -> list[FieldChange]:
    return field_changes(_current_normal(current, desired), _desired_normal(desired))


def _patch_fragment(desired: DesiredSubscription, changes: Sequence[FieldChange]) -> dict[str, Any]:
    fragment: dict[str, Any] = {}
    for change in changes:
        top = change.path.split(".", 1)[0]
        if top in fragment:
            continue
        if top == "isActive":
            fragment[top] = desired.body.get("isActive", True)
        elif top == "notification":
            notification = dict(desired.body["notification"])
            endpoint = dict(notification["endpoint"])
            for path, default in DEFAULT_VALUES.items():
                if not path.startswith("notification."):
                    continue
                steps = path.split(".")[1:]
                if any(c.path == path and c.removes for c in changes):
                    if steps[0] == "endpoint":
                        endpoint[steps[1]] = default
                    else:
                        notification[steps[0]] = default
            notification["endpoint"] = endpoint
            fragment[top] = notification
        else:
            fragment[top] = desired.body[top]
    return fragment


def _decide(
    desired: DesiredSubscription, current: Mapping[str, Any], changes: Sequence[FieldChange]
) -> Change:
    sid = str(current.get("id") or "")
    if not changes:
        return Change(
            action=Action.unchanged,
            tenant=desired.tenant,
            name=desired.name,
            id=sid,
            desired=desired,
            current=current,
        )
    blocking = [
        c
        for c in changes
        if (c.removes and c.path not in DEFAULT_VALUES) or c.path == "jsonldContext"
    ]
    if blocking:
        why = ", ".join(
            "@context changes" if c.path == "jsonldContext" else f"{c.path} is removed"
            for c in blocking
        )
        return Change(
            action=Action.recreate,
            tenant=desired.tenant,
            name=desired.name,
            id=sid,
            desired=desired,
            current=current,
            fields=tuple(changes),
            reason=f"delete + create, the id changes: {why}",
        )
    return Change(
        action=Action.update,
        tenant=desired.tenant,
        name=desired.name,
        id=sid,
        desired=desired,
        current=current,
        fields=tuple(changes),
        reason="PATCH",
        fragment=_patch_fragment(desired, changes),
    )


def plan(
    client: SubscriptionClient,
    file: ConsumersFile,
    *,
    prune: bool = False,
    desired: Sequence[DesiredSubscription] | None = None,
) -> Plan:
    """What reconciling `file` with the broker behind `client` would do (nothing is changed).

    Raises `ConsumersFileError` for a file that cannot be built and `NgsiError` when the broker
    cannot be read (for example an @context it cannot load: preload it in the broker).
    """
    wanted = list(desired if desired is not None else desired_subscriptions(file))
    tenants: dict[str | None, None] = dict.fromkeys(file.tenants_in_scope())
    tenants.update(dict.fromkeys(d.tenant for d in wanted))
    changes: list[Change] = []
    project = file.project
    for tenant in sorted(tenants, key=lambda t: (t is not None, t or "")):
        in_tenant = [d for d in wanted if d.tenant == tenant]
        contexts: list[str | None] = [*sorted({d.context for d in in_tenant})] or [None]
        listings = {context: _listing(client, tenant, context) for context in contexts}
        any_listing = listings[contexts[0]]
        declared = {d.name for d in in_tenant}
        for item in in_tenant:
            candidates = listings[item.context].get(item.name, [])
            if not candidates:
                changes.append(
                    Change(action=Action.create, tenant=tenant, name=item.name, desired=item)
                )
                continue
            compared = [(c, _compare(c, item)) for c in candidates]
            keeper, keeper_changes = next(((c, ch) for c, ch in compared if not ch), compared[0])
            changes.append(_decide(item, keeper, keeper_changes))
            for extra, _ in compared:
                if extra is keeper:
                    continue
                changes.append(
                    Change(
                        action=Action.delete,
                        tenant=tenant,
                        name=item.name,
                        id=str(extra.get("id") or ""),
                        current=extra,
                        reason=f"duplicate of {keeper.get('id')}: one subscription per name",
                    )
                )
        for name, items in any_listing.items():
            owner = parse_owned_name(name, project=project)
            if owner is None or name in declared:
                continue
            for current in items:
                changes.append(
                    Change(
                        action=Action.delete if prune else Action.orphan,
                        tenant=tenant,
                        name=name,
                        id=str(current.get("id") or ""),
                        current=current,
                        reason="not in the file"
                        + ("" if prune else "; kept (apply --prune deletes it)"),
                    )
                )
    changes.sort(key=lambda c: c.sort_key)
    return Plan(project=project, prune=prune, changes=tuple(changes))


# --- applying --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ApplyOutcome:
    change: Change
    ok: bool
    new_id: str | None = None
    error: str | None = None


@dataclass(kw_only=True)
class ApplyReport:
    """What `apply_plan` did, change by change, in the order it did it."""

    outcomes: list[ApplyOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[ApplyOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "action": o.change.action.value,
                "tenant": o.change.tenant,
                "name": o.change.name,
                "id": o.change.id,
                "newId": o.new_id,
                "ok": o.ok,
                "error": o.error,
            }
            for o in self.outcomes
        ]


def _create_body(change: Change) -> dict[str, Any]:
    assert change.desired is not None
    body = dict(change.desired.body)
    if (
        change.current is not None
        and not change.desired.manages_is_active
        and change.current.get("isActive") is False
    ):
        body["isActive"] = False  # keep an operator's pause across a recreate
    return body


def _apply_one(client: SubscriptionClient, change: Change) -> ApplyOutcome:
    desired = change.desired
    tenant = change.tenant
    try:
        if change.action is Action.create:
            assert desired is not None
            new_id = client.create_subscription(
                _create_body(change), tenant=tenant, context=desired.context
            )
            return ApplyOutcome(change=change, ok=True, new_id=new_id)
        if change.action is Action.update:
            assert desired is not None
            assert change.id
            assert change.fragment is not None
            client.update_subscription(
                change.id, dict(change.fragment), tenant=tenant, context=desired.context
            )
            return ApplyOutcome(change=change, ok=True, new_id=change.id)
        if change.action is Action.recreate:
            assert desired is not None
            assert change.id
            new_id = client.create_subscription(
                _create_body(change), tenant=tenant, context=desired.context
            )
            client.delete_subscription(change.id, tenant=tenant)
            return ApplyOutcome(change=change, ok=True, new_id=new_id)
        if change.action is Action.delete:
            assert change.id
            client.delete_subscription(change.id, tenant=tenant)
            return ApplyOutcome(change=change, ok=True)
    except NgsiError as exc:
        return ApplyOutcome(change=change, ok=False, error=str(exc))
    return ApplyOutcome(change=change, ok=True)


def apply_plan(client: SubscriptionClient, the_plan: Plan) -> ApplyReport:
    """Make the changes of `the_plan`: creates, updates and recreates first, then deletes.

    One failing change does not stop the others; each outcome is in the report.
    """
    report = ApplyReport()
    order = (Action.create, Action.update, Action.recreate, Action.delete)
    for action in order:
        for change in the_plan.changes:
            if change.action is action:
                report.outcomes.append(_apply_one(client, change))
    return report


# --- rendering -------------------------------------------------------------------------------


def _lines_for(change: Change) -> Iterable[str]:
    ident = f"  {change.id}" if change.id else ""
    head = f"{_SYMBOL[change.action]} {change.action.value:<9} {change.name}{ident}"
    if change.action is Action.update:
        head += "  (PATCH)"
    yield head
    if change.reason and change.action is not Action.update:
        yield f"      # {change.reason}"
    if change.action is Action.create and change.desired is not None:
        flat: list[tuple[str, Any]] = []

        def walk(value: Any, path: str) -> None:
            if isinstance(value, Mapping):
                for key in sorted(value):
                    walk(value[key], f"{path}.{key}" if path else key)
            else:
                flat.append((path, value))

        body = {
            k: v for k, v in change.desired.body.items() if k not in ("type", "subscriptionName")
        }
        walk(mask_secrets(body), "")
        for path, value in flat:
            yield f"      {path}: {render_value(value)}"
    for f in change.fields:
        old = render_value(mask_secrets(f.old, f.path))
        new = render_value(mask_secrets(f.new, f.path))
        yield f"      {f.path}: {old} → {new}"


def render_plan(the_plan: Plan, *, show_unchanged: bool = False) -> str:
    """The plan as text for people: per tenant, one block per subscription, members sorted,
    values as compact JSON, secrets masked; the same plan always renders the same text."""
    lines: list[str] = []
    current_tenant: object = object()
    for change in the_plan.changes:
        if change.action is Action.unchanged and not show_unchanged:
            continue
        if change.tenant != current_tenant:
            current_tenant = change.tenant
            label = change.tenant if change.tenant is not None else "(default)"
            if lines:
                lines.append("")
            lines.append(f"tenant {label}")
        lines.extend("  " + line for line in _lines_for(change))
    if lines:
        lines.append("")
    lines.append(f"Plan for {the_plan.project}: {the_plan.summary()}")
    return "\n".join(lines) + "\n"
