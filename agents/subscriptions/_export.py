"""Reading subscriptions back in their own @context, and writing them out as a consumers file.

A broker shows a subscription's names compacted with the context of the *request* that reads
it. Read with the core context alone, Smart Data Models names come back as IRIs
(`https://smartdatamodels.org/dataModel.Transportation/TrafficFlowObserved`). `context_of`
finds the context a subscription is written in: its `jsonldContext` when the broker shows one,
else the one Smart Data Models subject its IRIs belong to; `read_subscriptions` then reads each
subscription again in that context, so people and files see `TrafficFlowObserved`, `intensity`.
When the broker cannot load that context, the IRIs are kept: exact, only longer.

`export_file` turns the broker's subscriptions into a consumers file:

- subscriptions owned by `project` keep their consumer and subscription names, so applying the
  exported file changes nothing;
- the others (when `owned_only` is off) are grouped into `custom` consumers named after their
  endpoint's host and port; applying the file creates owned copies of them and leaves the
  originals alone (they are not owned): delete those yourself once the copies work;
- everything is written out (no templates), each entry with its explicit `context`; members a
  consumers file cannot declare (`notificationTrigger`, which Orion-LD does not implement) are
  left out and reported in `warnings`;
- secrets do not leave the broker: receiverInfo values and passwords in endpoint URIs become
  `${NAME}` references to environment variables (`redact=False` writes them as they are).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from agents.subscriptions._names import is_valid_name, parse_owned_name
from agents.subscriptions._normalize import normalise
from agents.subscriptions._plan import SubscriptionClient
from models import SUBJECT_CONTEXT_URL
from ngsi import NgsiApiError, Subscription

__all__ = ["ExportResult", "context_of", "export_file", "read_subscriptions"]

_SDM_IRI: Final = re.compile(r"^https://smartdatamodels\.org/dataModel\.([A-Za-z]+)/")
_TOKENS: Final = re.compile(r"[^\s,;|()]+")


def _sdm_subjects(subscription: Mapping[str, Any]) -> set[str]:
    names: list[str] = []
    for selector in subscription.get("entities") or []:
        if isinstance(selector, Mapping) and isinstance(selector.get("type"), str):
            names.extend(_TOKENS.findall(selector["type"]))
    names.extend(str(n) for n in subscription.get("watchedAttributes") or [])
    notification = subscription.get("notification") or {}
    if isinstance(notification, Mapping):
        names.extend(str(n) for n in notification.get("attributes") or [])
    subjects: set[str] = set()
    for name in names:
        match = _SDM_IRI.match(name)
        if match:
            subjects.add(match.group(1))
    return subjects


def context_of(subscription: Mapping[str, Any]) -> str | None:
    """The @context URL the subscription's names are written in, if it can be told."""
    stored = subscription.get("jsonldContext")
    if isinstance(stored, str) and stored:
        return stored
    subjects = _sdm_subjects(subscription)
    if len(subjects) == 1:
        return SUBJECT_CONTEXT_URL.format(subject=subjects.pop())
    return None


def _as_dict(item: Subscription | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(item, Subscription):
        return item.to_dict(include_read_only=True)
    return dict(item)


def read_subscriptions(
    client: SubscriptionClient, *, tenant: str | None
) -> list[tuple[dict[str, Any], str | None]]:
    """Every subscription of `tenant` with its names in its own context (see the module), as
    (subscription, context URL or None), in the broker's order."""
    plain = [_as_dict(s) for s in client.list_subscriptions(tenant=tenant, context=None)]
    wanted: dict[str, list[str]] = {}
    for item in plain:
        context = context_of(item)
        if context:
            wanted.setdefault(context, []).append(str(item.get("id")))
    readable: dict[str, tuple[dict[str, Any], str]] = {}
    for context, ids in sorted(wanted.items()):
        try:
            listed = client.list_subscriptions(tenant=tenant, context=context)
        except NgsiApiError:
            continue
        keep = set(ids)
        for listed_item in listed:
            data = _as_dict(listed_item)
            if data.get("id") in keep:
                readable[str(data["id"])] = (data, context)
    out: list[tuple[dict[str, Any], str | None]] = []
    for item in plain:
        found = readable.get(str(item.get("id")))
        out.append(found if found is not None else (item, None))
    return out


def _slug(text: str, *, fallback: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")[:63]
    return slug if slug and is_valid_name(slug) else fallback


def _env_name(*parts: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", "_".join(parts).upper()).strip("_")


@dataclass(kw_only=True)
class ExportResult:
    """The exported file as data, and the environment variables it refers to."""

    data: dict[str, Any]
    environment: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _endpoint(
    endpoint: Mapping[str, Any], consumer: str, redact: bool, env: list[str]
) -> dict[str, Any] | str:
    uri = str(endpoint.get("uri"))
    parts = urlsplit(uri)
    if redact and parts.password:
        name = _env_name(consumer, "password")
        env.append(name)
        netloc = f"{parts.username}:${{{name}}}@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        uri = urlunsplit(parts._replace(netloc=netloc))
    out: dict[str, Any] = {"uri": uri}
    accept = endpoint.get("accept")
    if accept and accept != "application/json":
        out["accept"] = accept
    receiver = [p for p in endpoint.get("receiverInfo") or [] if isinstance(p, Mapping)]
    if receiver:
        pairs: dict[str, str] = {}
        for pair in receiver:
            key = str(pair["key"])
            if redact:
                name = _env_name(consumer, key)
                env.append(name)
                pairs[key] = f"${{{name}}}"
            else:
                pairs[key] = str(pair["value"])
        out["receiverInfo"] = pairs
    notifier = [p for p in endpoint.get("notifierInfo") or [] if isinstance(p, Mapping)]
    if notifier:
        out["notifierInfo"] = {str(p["key"]): str(p["value"]) for p in notifier}
    return out if len(out) > 1 else uri


def _entry(subscription: Mapping[str, Any], context: str | None, name: str) -> dict[str, Any]:
    normal = normalise(subscription)
    entry: dict[str, Any] = {"name": name}
    description = subscription.get("description")
    if isinstance(description, str) and description:
        entry["description"] = description
    if context:
        entry["context"] = context
    for key in ("entities", "watchedAttributes", "q", "geoQ", "timeInterval", "throttling"):
        if key in normal:
            entry[key] = normal[key]
    if "expiresAt" in normal:
        entry["expiresAt"] = normal["expiresAt"]
    if "lang" in normal:
        entry["lang"] = normal["lang"]
    if normal.get("isActive") is False:
        entry["isActive"] = False
    notification = {k: v for k, v in normal.get("notification", {}).items() if k != "endpoint"}
    if notification:
        entry["notification"] = notification
    return entry


def export_file(
    client: SubscriptionClient,
    *,
    project: str,
    tenants: Sequence[str | None] = (None,),
    owned_only: bool = False,
    redact: bool = True,
) -> ExportResult:
    """The broker's subscriptions (of `tenants`) as a consumers file of `project`."""
    if not is_valid_name(project):
        raise ValueError(f"project name {project!r} must be letters, digits, '_' or '-'")
    env: list[str] = []
    warnings: list[str] = []
    consumers: dict[tuple[str | None, str], dict[str, Any]] = {}
    for tenant in tenants:
        for subscription, context in read_subscriptions(client, tenant=tenant):
            owner = parse_owned_name(subscription.get("subscriptionName"), project=project)
            if owner is None and owned_only:
                continue
            notification = subscription.get("notification") or {}
            endpoint = notification.get("endpoint") or {}
            if owner is not None:
                consumer_name = owner.consumer
                entry_name = owner.subscription + (f".{owner.part}" if owner.part else "")
            else:
                parts = urlsplit(str(endpoint.get("uri", "")))
                host = (
                    f"{parts.hostname or 'endpoint'}-{parts.port}"
                    if parts.port
                    else (parts.hostname or "endpoint")
                )
                consumer_name = _slug(host, fallback="imported")
                sid = str(subscription.get("id", ""))
                entry_name = _slug(
                    str(subscription.get("subscriptionName") or sid.rsplit(":", 1)[-1]),
                    fallback="subscription",
                )
            consumer = consumers.setdefault(
                (tenant, consumer_name),
                {"name": consumer_name, "kind": "custom", "subscriptions": [], "_endpoints": []},
            )
            if tenant is not None:
                consumer["tenant"] = tenant
            taken = {e["name"] for e in consumer["subscriptions"]}
            unique = entry_name
            counter = 2
            while unique in taken:
                unique = f"{entry_name}-{counter}"[:63]
                counter += 1
            entry = _entry(subscription, context, unique)
            if "notificationTrigger" in normalise(subscription):
                warnings.append(
                    f"{subscription.get('subscriptionName') or subscription.get('id')}: its "
                    "notificationTrigger is left out (a consumers file cannot declare it: "
                    "Orion-LD does not implement it)"
                )
            entry["endpoint"] = _endpoint(endpoint, consumer_name, redact, env)
            consumer["subscriptions"].append(entry)
    out_consumers: list[dict[str, Any]] = []
    for key in sorted(consumers, key=lambda k: (k[0] or "", k[1])):
        consumer = consumers[key]
        consumer.pop("_endpoints")
        endpoints = [e["endpoint"] for e in consumer["subscriptions"]]
        if endpoints and all(e == endpoints[0] for e in endpoints):
            consumer["endpoint"] = endpoints[0]
            for e in consumer["subscriptions"]:
                del e["endpoint"]
        consumer["subscriptions"].sort(key=lambda e: e["name"])
        ordered: dict[str, Any] = {
            k: consumer[k] for k in ("name", "kind", "tenant", "endpoint") if k in consumer
        }
        ordered["subscriptions"] = consumer["subscriptions"]
        out_consumers.append(ordered)
    data: dict[str, Any] = {"project": project, "consumers": out_consumers}
    extra_tenants = [t for t in tenants if t is not None]
    if extra_tenants:
        data["tenants"] = extra_tenants
    return ExportResult(data=data, environment=sorted(set(env)), warnings=warnings)
