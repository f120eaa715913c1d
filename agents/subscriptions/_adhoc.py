"""One subscription from options (`drehscheibe subscriptions create --type ... --endpoint ...`).

`build_subscription` checks what it is given as the consumers file does (q syntax, geoQ,
`timeInterval` without watchedAttributes or throttling, `expiresAt` in the future) and picks the
@context: the one given, else the Smart Data Models subject of the entity types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from models import default_registry
from ngsi import NgsiApiError, Subscription, SubscriptionGeoQuery, parse_datetime, parse_q

__all__ = ["SubscriptionOptionError", "build_subscription", "context_for_types"]


class SubscriptionOptionError(ValueError):
    """An option cannot make a valid subscription; the message names the option."""


def context_for_types(types: Sequence[str]) -> str | None:
    """The Smart Data Models @context of `types` when they are known and of one subject."""
    known = [t for t in types if t in default_registry]
    if not types or len(known) != len(types):
        return None
    subjects = {default_registry.info(t).subject for t in known}
    if len(subjects) != 1:
        return None
    return default_registry.context_url(known[0])


def _seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def build_subscription(
    *,
    endpoint: str,
    types: Sequence[str] = (),
    entity_ids: Sequence[str] = (),
    id_pattern: str | None = None,
    watch: Sequence[str] = (),
    q: str | None = None,
    geo_q: Mapping[str, Any] | None = None,
    accept: str | None = None,
    receiver_info: Sequence[tuple[str, str]] = (),
    notifier_info: Sequence[tuple[str, str]] = (),
    format: str | None = None,
    attributes: Sequence[str] = (),
    sys_attrs: bool = False,
    show_changes: bool = False,
    throttling: float | None = None,
    time_interval: float | None = None,
    name: str | None = None,
    description: str | None = None,
    expires_at: str | None = None,
    is_active: bool | None = None,
    context: str | None = None,
) -> tuple[dict[str, Any], str | None]:
    """The creation body and the @context URL (None: the core context) of one subscription."""
    body: dict[str, Any] = {"type": "Subscription"}
    if name:
        body["subscriptionName"] = name
    if description:
        body["description"] = description
    if entity_ids and len(types) != 1:
        raise SubscriptionOptionError("--id needs exactly one --type (an entity id has one type)")
    if id_pattern and len(types) != 1:
        raise SubscriptionOptionError("--id-pattern needs exactly one --type")
    entities: list[dict[str, str]] = []
    if entity_ids:
        entities = [{"type": types[0], "id": entity_id} for entity_id in entity_ids]
    elif id_pattern:
        entities = [{"type": types[0], "idPattern": id_pattern}]
    else:
        entities = [{"type": t} for t in types]
    if entities:
        body["entities"] = entities
    if watch:
        body["watchedAttributes"] = list(dict.fromkeys(watch))
    if q:
        try:
            body["q"] = str(parse_q(q))
        except NgsiApiError as exc:
            raise SubscriptionOptionError(f"--q: {exc.problem.detail or exc}") from None
    if geo_q is not None:
        try:
            body["geoQ"] = SubscriptionGeoQuery.model_validate(dict(geo_q)).model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
        except ValidationError as exc:
            message = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise SubscriptionOptionError(f"--geoq: {message}") from None
    if throttling is not None:
        body["throttling"] = _seconds(throttling)
    if time_interval is not None:
        body["timeInterval"] = _seconds(time_interval)
    if expires_at:
        try:
            moment = parse_datetime(expires_at, what="--expires-at")
        except ValueError as exc:
            raise SubscriptionOptionError(str(exc)) from None
        if moment <= datetime.now(UTC):
            raise SubscriptionOptionError(f"--expires-at {expires_at} is in the past")
        body["expiresAt"] = expires_at
    if is_active is not None:
        body["isActive"] = is_active
    point: dict[str, Any] = {"uri": endpoint}
    if accept:
        point["accept"] = accept
    if receiver_info:
        point["receiverInfo"] = [{"key": k, "value": v} for k, v in receiver_info]
    if notifier_info:
        point["notifierInfo"] = [{"key": k, "value": v} for k, v in notifier_info]
    notification: dict[str, Any] = {"endpoint": point}
    if attributes:
        notification["attributes"] = list(dict.fromkeys(attributes))
    if format:
        notification["format"] = format
    if sys_attrs:
        notification["sysAttrs"] = True
    if show_changes:
        if format == "keyValues":
            raise SubscriptionOptionError("--show-changes cannot go with --format keyValues")
        notification["showChanges"] = True
    body["notification"] = notification
    chosen = context or context_for_types(types)
    if chosen:
        body["jsonldContext"] = chosen
    try:
        Subscription.from_dict(body)
    except ValidationError as exc:
        message = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise SubscriptionOptionError(
            message.replace("`entities` or `watchedAttributes`", "--type or --watch")
        ) from None
    return body, chosen
