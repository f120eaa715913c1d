"""NGSI-LD subscriptions as data: validation, expansion, PATCH merging and rendering.

A subscription is kept as a plain dict, its *document*: the members the subscriber sent, checked,
with every name expanded to an IRI with the request's @context (`entities[].type`,
`watchedAttributes`, `notification.attributes`, `geoQ.geoproperty`), without `@context` and
without the read-only members (status, counters). The @context entries it was created with are
kept beside it, to parse `q` and to compact notifications when there is no `jsonldContext`.
Rendering compacts the names again with the context of the request that reads it.

Rules (NGSI-LD 1.6.1 clause 5.2.12, as Orion-LD accepts them); every violation raises
`BadRequestData` whose detail names the member:
- `type` is `Subscription`; `id`, when given, is an absolute URI (generated otherwise);
- `entities` (a non-empty list of `{id | idPattern, type}`) or `watchedAttributes` is required;
  `type` may be a type selection (`A,B`, `A|B`, `A;B`, parentheses);
- `timeInterval` (> 0 s, periodic) excludes `watchedAttributes` and `throttling`;
- `throttling` is > 0 s; `expiresAt` is a DateTime in the future; `isActive` a boolean;
- `notification.endpoint.uri` is http(s) or mqtt(s), its host one that `NotificationHosts`
  allows (400 naming the host and the setting `notification_allow_hosts`); `accept` is
  `application/json` or `application/ld+json`; `format` normalized, concise, keyValues or one of
  Orion-LD's NGSI-v2 formats (`NGSIV2_FORMATS`: x-ngsiv2-normalized, x-ngsiv2-keyValues,
  x-ngsiv2-normalized-compacted, its alias x-ngsiv2, x-ngsiv2-keyValues-compacted);
  `showChanges` not with a keyValues format;
- `notificationTrigger` lists entityCreated, entityUpdated, entityDeleted, attributeCreated,
  attributeUpdated, attributeDeleted (default: attributeCreated and attributeUpdated);
- `csf`, `temporalQ` and `scopeQ` are refused (OperationNotSupported), as Orion-LD does.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import socket
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from ngsi._context import ATTRIBUTE_MEMBERS, Context
from ngsi._errors import BadRequestData, NgsiApiError, OperationNotSupported
from ngsi._ids import uri_problem
from ngsi._outbound import local_address_kind
from ngsi._query import QExpr, parse_q
from ngsi._time import parse_datetime
from ngsi.broker._geo import GeoFilter, geo_filter_from_params
from ngsi.broker._params import parse_type_expression
from ngsi.broker._settings import allow_host_entry

__all__ = [
    "DEFAULT_TRIGGERS",
    "FORMATS",
    "NGSIV2_FORMATS",
    "NOTIFICATION_TRIGGERS",
    "READ_ONLY_NOTIFICATION_MEMBERS",
    "Ngsiv2Format",
    "NotificationHosts",
    "compile_subscription_q",
    "geo_filter",
    "merge_fragment",
    "new_subscription_id",
    "render_subscription",
    "triggers_of",
    "type_groups",
    "validate_subscription",
]

NOTIFICATION_TRIGGERS: Final = frozenset(
    {
        "entityCreated",
        "entityUpdated",
        "entityDeleted",
        "attributeCreated",
        "attributeUpdated",
        "attributeDeleted",
    }
)
DEFAULT_TRIGGERS: Final = ("attributeCreated", "attributeUpdated")


@dataclass(frozen=True, slots=True)
class Ngsiv2Format:
    """An `x-ngsiv2-*` notification format: NGSI-v2 `attrs_format` (`normalized` or
    `keyValues`, the `Ngsiv2-AttrsFormat` header), names `compacted` with the subscription's
    @context or left expanded (full IRIs)."""

    attrs_format: str
    compacted: bool


NGSIV2_FORMATS: Final = {
    "x-ngsiv2-normalized": Ngsiv2Format("normalized", compacted=False),
    "x-ngsiv2-keyValues": Ngsiv2Format("keyValues", compacted=False),
    "x-ngsiv2-normalized-compacted": Ngsiv2Format("normalized", compacted=True),
    "x-ngsiv2": Ngsiv2Format("normalized", compacted=True),
    "x-ngsiv2-keyValues-compacted": Ngsiv2Format("keyValues", compacted=True),
}
"""Orion-LD's cross-API notification formats, for NGSI-v2 consumers such as QuantumLeap."""

FORMATS: Final = ("normalized", "concise", "keyValues", *NGSIV2_FORMATS)
ACCEPTS: Final = ("application/json", "application/ld+json")
SCHEMES: Final = ("http", "https", "mqtt", "mqtts")

READ_ONLY_MEMBERS: Final = frozenset({"status", "createdAt", "modifiedAt", "deletedAt"})
READ_ONLY_NOTIFICATION_MEMBERS: Final = frozenset(
    {"status", "timesSent", "timesFailed", "lastNotification", "lastSuccess", "lastFailure"}
)
_KNOWN_MEMBERS: Final = frozenset(
    {
        "id",
        "type",
        "subscriptionName",
        "description",
        "entities",
        "watchedAttributes",
        "notificationTrigger",
        "timeInterval",
        "q",
        "geoQ",
        "isActive",
        "notification",
        "expiresAt",
        "throttling",
        "lang",
        "jsonldContext",
        "@context",
    }
)
_UNSUPPORTED_MEMBERS: Final = ("csf", "temporalQ", "scopeQ")
_NOTIFICATION_MEMBERS: Final = frozenset(
    {"attributes", "format", "sysAttrs", "showChanges", "endpoint"}
)
_ENDPOINT_MEMBERS: Final = frozenset(
    {"uri", "accept", "receiverInfo", "notifierInfo", "timeout", "cooldown"}
)
_MANDATORY: Final = ("type", "notification")
_GEOREL: Final = re.compile(
    r"^(?:near;(?:maxDistance|minDistance)==\d+(?:\.\d+)?|within|contains|intersects|equals"
    r"|disjoint|overlaps)$"
)
_GEOMETRIES: Final = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
_TYPE_TOKEN: Final = re.compile(r"[^\s,;|()]+")
DEFAULT_GEOPROPERTY: Final = "https://uri.etsi.org/ngsi-ld/location"


def new_subscription_id() -> str:
    return f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"


# --- type selections -----------------------------------------------------------------------


def _map_type_selection(text: str, rename: Callable[[str], str]) -> str:
    """The selection with every type name replaced by `rename(name)`, operators kept."""
    if not any(c in text for c in ",;|()"):
        return rename(text.strip())
    return _TYPE_TOKEN.sub(lambda m: rename(m.group()), text)


# --- validation ----------------------------------------------------------------------------


def _bad(member: str, problem: str) -> BadRequestData:
    return BadRequestData(f"subscription member '{member}': {problem}")


def _string(value: Any, member: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(member, f"expected a non-empty string, got {value!r}")
    return value


def _positive_number(value: Any, member: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(member, f"expected a number of seconds, got {value!r}")
    if value <= 0:
        raise _bad(member, f"must be greater than 0, got {value!r}")
    return value


def _names(value: Any, member: str, context: Context) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _bad(member, f"expected a non-empty list of attribute names, got {value!r}")
    names: list[str] = []
    for index, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            raise _bad(f"{member}[{index}]", f"expected an attribute name, got {name!r}")
        expanded = context.expand_term(name.strip())
        if expanded not in names:
            names.append(expanded)
    return names


def _uri(value: Any, member: str) -> str:
    problem = uri_problem(value)
    if problem is not None:
        raise _bad(member, f"{value!r} is not a URI: {problem}")
    assert isinstance(value, str)
    return value


def _entities(value: Any, context: Context) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise _bad("entities", f"expected a non-empty list of entity selectors, got {value!r}")
    selectors: list[dict[str, str]] = []
    for index, item in enumerate(value):
        where = f"entities[{index}]"
        if not isinstance(item, Mapping):
            raise _bad(
                where, f"expected an object with 'type' and 'id' or 'idPattern', got {item!r}"
            )
        unknown = set(item) - {"id", "idPattern", "type"}
        if unknown:
            raise _bad(where, f"unknown member(s) {sorted(unknown)}; expected id, idPattern, type")
        if "type" not in item:
            raise _bad(f"{where}.type", "is required")
        type_text = _string(item["type"], f"{where}.type")
        try:
            parse_type_expression(type_text, str)
        except BadRequestData as exc:
            raise _bad(f"{where}.type", str(exc.detail)) from None
        selector: dict[str, str] = {}
        if "id" in item:
            selector["id"] = _uri(item["id"], f"{where}.id")
        if "idPattern" in item:
            pattern = _string(item["idPattern"], f"{where}.idPattern")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise _bad(
                    f"{where}.idPattern", f"{pattern!r} is not a regular expression: {exc}"
                ) from None
            except RecursionError:
                raise _bad(
                    f"{where}.idPattern", "the regular expression is nested too deeply"
                ) from None
            selector["idPattern"] = pattern
        selector["type"] = _map_type_selection(type_text, context.expand_term)
        selectors.append(selector)
    return selectors


_LOOPBACK_NAMES: Final = ("localhost", "localhost.")
_LOCAL_ADDRESSES: Final = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
_LEGACY_IPV4: Final = re.compile(r"^[0-9a-fx.]+$")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(host: str) -> IpAddress | None:
    """The address a host literal stands for (None for a name). IPv4-mapped IPv6 addresses and
    the legacy IPv4 spellings the resolver accepts (`127.1`, `2130706433`, `0x7f.1`) count as
    the IPv4 address they reach."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _LEGACY_IPV4.match(host):
            return None
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_loopback_name(host: str) -> bool:
    return host in _LOOPBACK_NAMES or host.rstrip(".").endswith(".localhost")


@dataclass(frozen=True, slots=True)
class NotificationHosts:
    """Which hosts notifications may go to: `BrokerSettings.notification_allow_hosts` (entries
    normalised by `allow_host_entry`) or, when that is None, the default rule for a broker
    listening on `bind_host` (see `BrokerSettings`)."""

    allow: tuple[str, ...] | None = None
    bind_host: str = "127.0.0.1"
    subject: str = "notifications to"
    """What is refused, as messages say it (`@context fetches from` for the context store)."""
    setting: str = "notification_allow_hosts (--notification-allow-host)"
    """The setting that allows more hosts, as messages name it."""

    @classmethod
    def of(
        cls,
        allow: Collection[str] | None,
        *,
        bind_host: str = "127.0.0.1",
        subject: str = "notifications to",
        setting: str = "notification_allow_hosts (--notification-allow-host)",
    ) -> NotificationHosts:
        """The policy for raw allow-list entries (ValueError for a malformed one)."""
        if allow is None:
            return cls(None, bind_host, subject, setting)
        entries = tuple(dict.fromkeys(allow_host_entry(entry) for entry in allow))
        return cls(entries, bind_host, subject, setting)

    @property
    def bound_to_loopback(self) -> bool:
        host = self.bind_host.strip("[]").lower()
        if _is_loopback_name(host):
            return True
        address = _address(host)
        return address is not None and address.is_loopback

    def problem(self, host: str) -> str | None:
        """Why notifications may not go to `host` (a URI's host), or None when they may."""
        host = host.strip("[]").lower()
        address = _address(host)
        if self.allow is None:
            if self.bound_to_loopback:
                return None
            kind = "loopback" if _is_loopback_name(host) else None
            if address is not None:
                kind = local_address_kind(address)
            if kind is None:
                return None
            return (
                f"{self.subject} host {host!r} (a {kind} address) are not allowed: "
                f"the broker listens on {self.bind_host}, and while the setting "
                f"{self.setting} is unset only other hosts are called; name this host in "
                f"{self.setting} to allow it"
            )
        if self._listed(host, address):
            return None
        return (
            f"{self.subject} host {host!r} are not allowed by the broker setting "
            f"{self.setting}, which allows {', '.join(self.allow) or 'no host'}"
        )

    def _listed(self, host: str, address: IpAddress | None) -> bool:
        assert self.allow is not None
        addresses: tuple[IpAddress, ...] = ()
        if address is not None:
            addresses = (address,)
        elif _is_loopback_name(host):
            addresses = _LOCAL_ADDRESSES
        name = host.rstrip(".")
        for entry in self.allow:
            if "/" in entry:
                network = ipaddress.ip_network(entry)
                if any(a.version == network.version and a in network for a in addresses):
                    return True
            elif entry.startswith("*."):
                if address is None and name.endswith(entry[1:]):
                    return True
            elif entry == name or any(str(a) == entry for a in addresses):
                return True
        return False

    @property
    def checks_addresses(self) -> bool:
        """Whether the addresses a name resolves to matter (`connect_problem`): under the
        default rule of a broker off loopback."""
        return self.allow is None and not self.bound_to_loopback

    def connect_problem(self, host: str, address: IpAddress) -> str | None:
        """Why a connection to `host`, resolved to `address` when it is made, is refused (an
        `ngsi._outbound.AddressCheck`). Under the default rule of a broker off loopback a name
        that resolves to a local address is refused; a host the allow-list names is trusted
        wherever it resolves (its name was checked when the subscription was made)."""
        problem = self.problem(host)
        if problem is not None or self.allow is not None or self.bound_to_loopback:
            return problem
        kind = local_address_kind(address)
        if kind is None:
            return None
        return (
            f"host {host!r} resolves to {address}, a {kind} address, which the broker on "
            f"{self.bind_host} does not call while {self.setting} is unset; name the host in "
            f"{self.setting} to allow it"
        )

    def check(self, uri: str) -> None:
        """Raise BadRequestData naming the host and the setting when `uri` may not be notified."""
        problem = self.problem(urlsplit(uri).hostname or "")
        if problem is not None:
            raise _bad("notification.endpoint.uri", problem)


def _key_values(value: Any, member: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise _bad(member, f"expected a list of {{key, value}} objects, got {value!r}")
    pairs: list[dict[str, str]] = []
    for index, item in enumerate(value):
        if (
            not isinstance(item, Mapping)
            or set(item) != {"key", "value"}
            or not isinstance(item["key"], str)
            or not item["key"]
            or not isinstance(item["value"], str)
        ):
            raise _bad(f"{member}[{index}]", f"expected {{'key': str, 'value': str}}, got {item!r}")
        pairs.append({"key": item["key"], "value": item["value"]})
    return pairs


def _endpoint(value: Any, hosts: NotificationHosts | None) -> dict[str, Any]:
    member = "notification.endpoint"
    if not isinstance(value, Mapping):
        raise _bad(member, f"is required and must be an object with a 'uri', got {value!r}")
    unknown = set(value) - _ENDPOINT_MEMBERS
    if unknown:
        raise _bad(member, f"unknown member(s) {sorted(unknown)}")
    if "uri" not in value:
        raise _bad(f"{member}.uri", "is required")
    uri = _uri(value["uri"], f"{member}.uri")
    parts = urlsplit(uri)
    if parts.scheme.lower() not in SCHEMES:
        raise _bad(
            f"{member}.uri",
            f"{uri!r}: notifications go to http, https, mqtt or mqtts endpoints",
        )
    if not parts.hostname:
        raise _bad(f"{member}.uri", f"{uri!r} names no host")
    if parts.scheme.lower().startswith("mqtt"):
        from ngsi.broker._notifier_mqtt import parse_mqtt_endpoint

        info = value.get("notifierInfo") or []
        try:
            parse_mqtt_endpoint(
                uri,
                tuple(
                    (str(p.get("key")), str(p.get("value"))) for p in info if isinstance(p, Mapping)
                ),
            )
        except ValueError as exc:
            raise _bad(f"{member}.uri", str(exc)) from None
    if hosts is not None:
        hosts.check(uri)
    endpoint: dict[str, Any] = {"uri": uri}
    if "accept" in value:
        accept = value["accept"]
        if accept not in ACCEPTS:
            raise _bad(f"{member}.accept", f"expected one of {list(ACCEPTS)}, got {accept!r}")
        endpoint["accept"] = accept
    for key in ("receiverInfo", "notifierInfo"):
        if key in value:
            endpoint[key] = _key_values(value[key], f"{member}.{key}")
    for key in ("timeout", "cooldown"):
        if key in value:
            endpoint[key] = _positive_number(value[key], f"{member}.{key}")
    return endpoint


def _notification(value: Any, context: Context, hosts: NotificationHosts | None) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad("notification", f"is required and must be an object, got {value!r}")
    unknown = set(value) - _NOTIFICATION_MEMBERS - READ_ONLY_NOTIFICATION_MEMBERS
    if unknown:
        raise _bad("notification", f"unknown member(s) {sorted(unknown)}")
    out: dict[str, Any] = {}
    if "attributes" in value:
        out["attributes"] = _names(value["attributes"], "notification.attributes", context)
    if "format" in value:
        if value["format"] not in FORMATS:
            raise _bad(
                "notification.format", f"expected one of {list(FORMATS)}, got {value['format']!r}"
            )
        out["format"] = value["format"]
    for flag in ("sysAttrs", "showChanges"):
        if flag in value:
            if not isinstance(value[flag], bool):
                raise _bad(f"notification.{flag}", f"expected true or false, got {value[flag]!r}")
            out[flag] = value[flag]
    chosen = out.get("format", "normalized")
    key_values = chosen == "keyValues" or (
        chosen in NGSIV2_FORMATS and NGSIV2_FORMATS[chosen].attrs_format == "keyValues"
    )
    if out.get("showChanges") and key_values:
        raise _bad("notification.showChanges", f"cannot be true with format {chosen}")
    out["endpoint"] = _endpoint(value.get("endpoint"), hosts)
    return out


def _geoq(value: Any, context: Context) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(
            "geoQ", f"expected an object with geometry, coordinates and georel, got {value!r}"
        )
    unknown = set(value) - {"geometry", "coordinates", "georel", "geoproperty"}
    if unknown:
        raise _bad("geoQ", f"unknown member(s) {sorted(unknown)}")
    for member in ("geometry", "coordinates", "georel"):
        if member not in value:
            raise _bad(f"geoQ.{member}", "is required")
    if value["geometry"] not in _GEOMETRIES:
        raise _bad(
            "geoQ.geometry", f"expected one of {sorted(_GEOMETRIES)}, got {value['geometry']!r}"
        )
    georel = value["georel"]
    if not isinstance(georel, str) or not _GEOREL.match(georel.strip()):
        raise _bad(
            "geoQ.georel",
            f"{georel!r}: expected near;maxDistance==<m>, near;minDistance==<m>, within, "
            "contains, intersects, equals, disjoint or overlaps",
        )
    out: dict[str, Any] = {
        "geometry": value["geometry"],
        "coordinates": value["coordinates"],
        "georel": georel.strip(),
    }
    if "geoproperty" in value:
        out["geoproperty"] = context.expand_term(_string(value["geoproperty"], "geoQ.geoproperty"))
    try:
        geo_filter(out).predicate()
    except BadRequestData as exc:
        raise _bad("geoQ", str(exc.detail)) from None
    return out


def geo_filter(geoq: Mapping[str, Any]) -> GeoFilter:
    """The broker's geo-query filter for a stored (expanded) `geoQ`."""
    return geo_filter_from_params(
        georel=geoq["georel"],
        geometry=geoq["geometry"],
        coordinates=geoq["coordinates"],
        geoproperty=geoq.get("geoproperty") or DEFAULT_GEOPROPERTY,
    )


def _validate_member(
    key: str,
    value: Any,
    context: Context,
    *,
    now: datetime,
    hosts: NotificationHosts | None,
) -> Any:
    """The stored form of one member of a subscription body (names expanded)."""
    if key == "id":
        return _uri(value, "id")
    if key == "type":
        if value != "Subscription":
            raise _bad("type", f"must be 'Subscription', got {value!r}")
        return value
    if key in ("subscriptionName", "description", "lang"):
        if not isinstance(value, str):
            raise _bad(key, f"expected a string, got {value!r}")
        return value
    if key == "entities":
        return _entities(value, context)
    if key == "watchedAttributes":
        return _names(value, "watchedAttributes", context)
    if key == "notificationTrigger":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(t, str) and t in NOTIFICATION_TRIGGERS for t in value)
        ):
            raise _bad(
                "notificationTrigger",
                f"expected a non-empty list of {sorted(NOTIFICATION_TRIGGERS)}, got {value!r}",
            )
        return list(dict.fromkeys(value))
    if key in ("timeInterval", "throttling"):
        return _positive_number(value, key)
    if key == "q":
        q = _string(value, "q")
        _parse_q(q)
        return q
    if key == "geoQ":
        return _geoq(value, context)
    if key == "isActive":
        if not isinstance(value, bool):
            raise _bad("isActive", f"expected true or false, got {value!r}")
        return value
    if key == "expiresAt":
        return _expires_at(value, now)
    if key == "jsonldContext":
        return _uri(value, "jsonldContext")
    if key == "notification":
        return _notification(value, context, hosts)
    raise BadRequestData(f"subscription: unknown member {key!r}")  # pragma: no cover


def _check_members(body: Mapping[str, Any]) -> None:
    for member in _UNSUPPORTED_MEMBERS:
        if member in body:
            raise OperationNotSupported(f"subscription member '{member}' is not supported")
    unknown = set(body) - _KNOWN_MEMBERS - READ_ONLY_MEMBERS
    if unknown:
        raise BadRequestData(f"subscription: unknown member(s) {sorted(unknown)}")


def validate_subscription(
    body: Mapping[str, Any],
    context: Context,
    *,
    now: datetime,
    hosts: NotificationHosts | None = None,
) -> dict[str, Any]:
    """The subscription document for a create request body (names expanded with `context`).

    `now` is the time expiresAt must lie after. The document holds the members given plus a
    generated `id` when missing.
    """
    if not isinstance(body, Mapping):
        raise BadRequestData(f"a subscription must be a JSON object, got {type(body).__name__}")
    if not body or body.keys() <= {"@context"}:
        raise BadRequestData("the subscription is empty: it needs type, entities and notification")
    _check_members(body)
    if "type" not in body:
        raise _bad("type", "is required and must be 'Subscription'")
    if "notification" not in body:
        raise _bad("notification", "is required")
    doc: dict[str, Any] = {"id": None, "type": "Subscription"}
    for key, value in body.items():
        if key == "@context" or key in READ_ONLY_MEMBERS:
            continue
        doc[key] = _validate_member(key, value, context, now=now, hosts=hosts)
    if doc["id"] is None:
        doc["id"] = new_subscription_id()
    _check_combination(doc)
    return doc


def _expires_at(value: Any, now: datetime) -> str:
    if not isinstance(value, str):
        raise _bad("expiresAt", f"expected a DateTime string, got {value!r}")
    try:
        moment = parse_datetime(value, what="expiresAt")
    except ValueError as exc:
        raise _bad("expiresAt", str(exc)) from None
    if moment <= now:
        raise _bad("expiresAt", f"{value} is not in the future")
    return value


def _check_combination(doc: Mapping[str, Any]) -> None:
    if "entities" not in doc and "watchedAttributes" not in doc:
        raise BadRequestData(
            "subscription: needs 'entities' or 'watchedAttributes' (or both) to know what to watch"
        )
    if "timeInterval" in doc:
        if "watchedAttributes" in doc:
            raise _bad("timeInterval", "cannot be combined with watchedAttributes")
        if "throttling" in doc:
            raise _bad("timeInterval", "cannot be combined with throttling")


def merge_fragment(
    current: Mapping[str, Any],
    fragment: Mapping[str, Any],
    context: Context,
    *,
    now: datetime,
    hosts: NotificationHosts | None = None,
) -> dict[str, Any]:
    """The document after a PATCH: each member of `fragment` replaces the current one (names
    expanded with `context`), `null` removes it (never `type` or `notification`); the result
    must still be a valid subscription."""
    if not isinstance(fragment, Mapping):
        raise BadRequestData(
            f"a subscription fragment must be a JSON object, got {type(fragment).__name__}"
        )
    members = {k: v for k, v in fragment.items() if k != "@context"}
    if not members:
        raise BadRequestData("the subscription fragment is empty: nothing to update")
    _check_members(members)
    if "id" in members and members["id"] != current["id"]:
        raise _bad("id", f"cannot be changed (is {current['id']!r}, not {members['id']!r})")
    merged = copy.deepcopy(dict(current))
    for key, value in members.items():
        if key in READ_ONLY_MEMBERS or key == "id":
            continue
        if value is None:
            if key in _MANDATORY:
                raise _bad(key, "is mandatory and cannot be removed")
            merged.pop(key, None)
            continue
        merged[key] = _validate_member(key, value, context, now=now, hosts=hosts)
    _check_combination(merged)
    return merged


def _parse_q(q: str) -> QExpr:
    # Subscriptions carry q as written in a URL, so percent-escapes (%20) are decoded first.
    text = unquote(q) if "%" in q else q
    try:
        return parse_q(text)
    except NgsiApiError as exc:
        raise _bad("q", str(exc.detail or exc)) from None


def compile_subscription_q(q: str, context: Context) -> Callable[[Mapping[str, Any]], bool]:
    """The predicate of a subscription's `q` over stored entities, names expanded with the
    context the subscription was written with."""
    from ngsi._qeval import compile_q

    tree = _parse_q(q).map_attributes(
        lambda name: name if name in ATTRIBUTE_MEMBERS else context.expand_term(name)
    )
    return compile_q(tree)


# --- rendering -----------------------------------------------------------------------------


def render_subscription(
    doc: Mapping[str, Any],
    context: Context,
    *,
    status: str,
    notification_status: Mapping[str, Any],
    created_at: str | None = None,
    modified_at: str | None = None,
    sys_attrs: bool = False,
) -> dict[str, Any]:
    """The subscription as GET shows it: names compacted with `context`, status added.

    `notification_status` holds the read-only members of `notification` (`timesSent`,
    `lastNotification`, `lastSuccess`, `lastFailure`, `status`...), shown when present.
    """
    compact = context.compact_iri
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "entities":
            out[key] = [
                {
                    **{k: v for k, v in selector.items() if k != "type"},
                    "type": _map_type_selection(selector["type"], compact),
                }
                for selector in value
            ]
        elif key == "watchedAttributes":
            out[key] = [compact(name) for name in value]
        elif key == "geoQ":
            geoq = dict(value)
            if "geoproperty" in geoq:
                geoq["geoproperty"] = compact(geoq["geoproperty"])
            out[key] = geoq
        elif key == "notification":
            notification = copy.deepcopy(dict(value))
            if "attributes" in notification:
                notification["attributes"] = [compact(name) for name in notification["attributes"]]
            notification.update(notification_status)
            out[key] = notification
        else:
            out[key] = copy.deepcopy(value)
    out.setdefault("notificationTrigger", list(DEFAULT_TRIGGERS))
    out["status"] = status
    if sys_attrs:
        if created_at:
            out["createdAt"] = created_at
        if modified_at:
            out["modifiedAt"] = modified_at
    return out


def triggers_of(doc: Mapping[str, Any]) -> frozenset[str]:
    """The notification triggers in effect (entityUpdated unfolded into its attribute triggers)."""
    triggers = set(doc.get("notificationTrigger") or DEFAULT_TRIGGERS)
    if "entityUpdated" in triggers:
        triggers.update(("attributeCreated", "attributeUpdated", "attributeDeleted"))
    return frozenset(triggers)


def type_groups(selector: Mapping[str, str]) -> list[list[str]]:
    """The (expanded) type selection of an entity selector as a disjunction of conjunctions."""
    text = selector["type"]
    if not any(c in text for c in ",;|()"):
        return [[text]]
    return parse_type_expression(text, str)
