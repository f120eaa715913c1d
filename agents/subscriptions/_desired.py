"""From a consumers file to the exact subscriptions it declares (`DesiredSubscription`).

Each subscription is built complete, as it is sent to the broker: `subscriptionName` (the
ownership marker, see `_names`), the entity selection, filters, and `notification` with the
endpoint of the entry (else of its consumer). Its names are in one @context: the entry's
`context`, else the Smart Data Models subject of its entity types (the models registry names
it). That URL is sent as the `Link` header and also stored in the subscription as
`jsonldContext`, so that the context a subscription lives in can be read back and compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from agents.subscriptions._file import (
    ConsumersFile,
    ConsumersFileError,
    ConsumerSpec,
    FileProblem,
    SubscriptionSpec,
    line_of,
)
from agents.subscriptions._names import owned_name
from agents.subscriptions._templates import TemplateError, TemplatePart, render_template
from models import default_registry
from ngsi import NgsiApiError, Subscription, SubscriptionGeoQuery, parse_datetime, parse_q

__all__ = ["DesiredSubscription", "desired_subscriptions"]


@dataclass(frozen=True, kw_only=True)
class DesiredSubscription:
    """A subscription as the file declares it.

    `body` is the complete creation body (camelCase, no `id`, no `@context`); `context` the
    @context URL its names are in; `manages_is_active` is False when the file leaves `isActive`
    to the operators (`subscriptions pause` / `resume`); `path` points into the file.
    """

    tenant: str | None
    name: str
    consumer: str
    entry: str
    part: str | None
    context: str
    body: dict[str, Any]
    manages_is_active: bool
    path: str
    template: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant or "", self.name)


def _fail(path: str, message: str) -> ConsumersFileError:
    return ConsumersFileError([FileProblem(path=path, message=message)])


def _context_for(entry: SubscriptionSpec, path: str) -> str:
    if entry.context:
        return entry.context
    types: list[str] = []
    for selector in entry.entities or []:
        for token in _type_tokens(selector.get("type", "")):
            types.append(token)
    subjects: dict[str, str] = {}
    unknown = [name for name in types if name not in default_registry]
    if unknown or not types:
        what = (
            f"entity type(s) {', '.join(repr(u) for u in unknown)} are not Smart Data Models "
            "types this project knows"
            if unknown
            else "the entry names no entity type"
        )
        raise _fail(f"{path}/context", f"cannot tell the @context: {what}; give `context`")
    for name in types:
        subjects[default_registry.info(name).subject] = name
    if len(subjects) > 1:
        raise _fail(
            f"{path}/entities",
            "entity types of different Smart Data Models subjects "
            f"({', '.join(sorted(subjects))}) cannot share one subscription: the same term "
            "means different things in each subject's @context; declare one entry per subject",
        )
    return default_registry.context_url(types[0])


def _type_tokens(text: str) -> list[str]:
    for separator in ",;|()":
        text = text.replace(separator, " ")
    return [token for token in text.split() if token]


def _seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _raw_body(entry: SubscriptionSpec, path: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if entry.entities is not None:
        body["entities"] = [dict(selector) for selector in entry.entities]
    if entry.watched_attributes is not None:
        body["watchedAttributes"] = list(entry.watched_attributes)
    if entry.q is not None:
        try:
            body["q"] = str(parse_q(entry.q))
        except NgsiApiError as exc:
            raise _fail(f"{path}/q", str(exc.problem.detail or exc)) from None
    if entry.geo_q is not None:
        try:
            geo = SubscriptionGeoQuery.model_validate(entry.geo_q)
        except ValidationError as exc:
            message = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise _fail(f"{path}/geoQ", message) from None
        body["geoQ"] = geo.model_dump(mode="json", by_alias=True, exclude_none=True)
    if entry.time_interval is not None:
        body["timeInterval"] = _seconds(entry.time_interval)
    if entry.throttling is not None:
        body["throttling"] = _seconds(entry.throttling)
    if entry.expires_at is not None:
        try:
            moment = parse_datetime(entry.expires_at, what="expiresAt")
        except ValueError as exc:
            raise _fail(f"{path}/expiresAt", str(exc)) from None
        if moment <= datetime.now(UTC):
            raise _fail(
                f"{path}/expiresAt",
                f"{entry.expires_at} is in the past: brokers refuse it (remove the entry instead)",
            )
        body["expiresAt"] = entry.expires_at
    if entry.lang is not None:
        body["lang"] = entry.lang
    notification = dict(entry.notification or {})
    if notification.get("showChanges") and notification.get("format") == "keyValues":
        raise _fail(f"{path}/notification/showChanges", "cannot be true with format keyValues")
    body["notification"] = notification
    return body


def _build(
    file: ConsumersFile,
    consumer: ConsumerSpec,
    entry: SubscriptionSpec,
    path: str,
) -> list[DesiredSubscription]:
    endpoint = entry.endpoint or consumer.endpoint
    if endpoint is None:
        raise _fail(
            f"{path}/endpoint",
            f"no endpoint: give one to consumer {consumer.name!r} or to this subscription",
        )
    parts: list[TemplatePart]
    if entry.template is not None:
        try:
            parts = render_template(entry.template, dict(entry.params))
        except TemplateError as exc:
            raise ConsumersFileError(
                [
                    FileProblem(path=f"{path}/params/{where}".rstrip("/"), message=message)
                    for where, message in exc.problems
                ]
            ) from None
    else:
        parts = [
            TemplatePart(part=None, context=_context_for(entry, path), body=_raw_body(entry, path))
        ]
    tenant = consumer.tenant if consumer.tenant is not None else file.tenant
    base, dot, own_part = entry.name.partition(".")
    if dot and entry.template is not None:
        raise _fail(
            f"{path}/name",
            f"{entry.name!r}: a template entry's name has no '.': the template names its parts",
        )
    out: list[DesiredSubscription] = []
    for part in parts:
        name = owned_name(file.project, consumer.name, base, part.part or own_part or None)
        body: dict[str, Any] = {"type": "Subscription", "subscriptionName": name}
        description = entry.description
        if description is None:
            how = f"template {entry.template}" if entry.template else "written out"
            description = f"managed by the consumers file of {file.project} ({how})"
        body["description"] = description
        body.update(part.body)
        notification = dict(body.get("notification") or {})
        notification["endpoint"] = endpoint.to_ngsi()
        body["notification"] = notification
        body["jsonldContext"] = part.context
        if entry.is_active is not None:
            body["isActive"] = entry.is_active
        try:
            Subscription.from_dict(body)
        except ValidationError as exc:
            message = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise _fail(path, f"not a valid subscription: {message}") from None
        out.append(
            DesiredSubscription(
                tenant=tenant,
                name=name,
                consumer=consumer.name,
                entry=base,
                part=part.part or own_part or None,
                context=part.context,
                body=body,
                manages_is_active=entry.is_active is not None,
                path=path,
                template=entry.template,
            )
        )
    return out


def desired_subscriptions(file: ConsumersFile) -> list[DesiredSubscription]:
    """Every subscription the file declares, sorted by (tenant, name); `ConsumersFileError`
    lists every entry that cannot be built (paths into the file)."""
    problems: list[FileProblem] = []
    found: list[DesiredSubscription] = []
    for index, consumer in enumerate(file.consumers):
        for number, entry in enumerate(consumer.subscriptions):
            path = f"consumers/{index}/subscriptions/{number}"
            try:
                found.extend(_build(file, consumer, entry, path))
            except ConsumersFileError as exc:
                problems.extend(exc.problems)
    first: dict[tuple[str, str], str] = {}
    for item in found:
        if item.key in first:
            problems.append(
                FileProblem(
                    path=item.path,
                    message=f"makes subscription {item.name!r}, which {first[item.key]} makes too",
                )
            )
        first.setdefault(item.key, item.path)
    if problems:
        if file.text is not None:
            problems = [
                p.model_copy(update={"line": line_of(file.text, p.path)}) if p.line is None else p
                for p in problems
            ]
        raise ConsumersFileError(problems, source=file.source)
    found.sort(key=lambda d: d.key)
    return found
