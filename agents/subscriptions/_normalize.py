"""Comparing subscriptions: the normalised form, and field-level differences.

A subscription read back from a broker never looks exactly like the one that was sent: the
broker adds read-only members (`id`, `status`, `createdAt`, `notification.timesSent`,
`lastSuccess`, ...), spells defaults out (`notificationTrigger`, `format: normalized`,
`accept: application/json`, `isActive: true`), may reorder lists, write `3600.0` for `3600`,
or add members of its own (Orion-LD's `origin`, a stored `jsonldContext`). `normalise` maps both
sides onto one form, so that only real differences remain:

- only the members a consumers file can declare are compared (`COMPARED`); everything else a
  broker shows is ignored;
- defaults are dropped: `isActive: true`, `notificationTrigger` = [attributeCreated,
  attributeUpdated], `notification.format: normalized`, `sysAttrs: false`,
  `showChanges: false`, `endpoint.accept: application/json`, `geoQ.geoproperty: location`;
- sets are sorted: entity selectors, watchedAttributes, notification.attributes,
  receiverInfo / notifierInfo (by key);
- `q` is printed canonically (`ngsi._query`), `georel` too, geoQ coordinates given as a JSON
  string are parsed, whole numbers lose their `.0`, `expiresAt` is written in UTC;
- `isActive` is compared only when the file declares it (`compare_is_active`), so a
  subscription an operator paused stays paused across `apply`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ngsi import NgsiApiError, format_datetime, format_georel, parse_datetime, parse_georel, parse_q

__all__ = [
    "COMPARED",
    "FieldChange",
    "field_changes",
    "mask_secrets",
    "normalise",
    "render_value",
]

COMPARED: Final = (
    "subscriptionName",
    "description",
    "entities",
    "watchedAttributes",
    "q",
    "geoQ",
    "timeInterval",
    "throttling",
    "isActive",
    "expiresAt",
    "lang",
    "notificationTrigger",
    "jsonldContext",
    "notification",
)
_DEFAULT_TRIGGERS: Final = frozenset({"attributeCreated", "attributeUpdated"})
_NOTIFICATION_DEFAULTS: Final = {"format": "normalized", "sysAttrs": False, "showChanges": False}
_GEOPROPERTY_DEFAULTS: Final = frozenset({"location", "https://uri.etsi.org/ngsi-ld/location"})


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _names(value: Any) -> list[str]:
    return sorted(dict.fromkeys(str(item) for item in value))


def _pairs(value: Any) -> list[dict[str, str]]:
    pairs = [
        {"key": str(p["key"]), "value": str(p["value"])} for p in value if isinstance(p, Mapping)
    ]
    return sorted(pairs, key=lambda p: (p["key"].lower(), p["value"]))


def _q(text: str) -> str:
    try:
        return str(parse_q(text))
    except NgsiApiError:
        return text.strip()


def _geo_q(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    coordinates = value.get("coordinates")
    if isinstance(coordinates, str):
        with contextlib.suppress(orjson.JSONDecodeError):
            coordinates = orjson.loads(coordinates)
    out["geometry"] = value.get("geometry")
    out["coordinates"] = _numbers_deep(coordinates)
    georel = value.get("georel")
    if isinstance(georel, str):
        try:
            georel = format_georel(parse_georel(georel))
        except NgsiApiError:
            georel = georel.strip()
    out["georel"] = georel
    geoproperty = value.get("geoproperty")
    if geoproperty and geoproperty not in _GEOPROPERTY_DEFAULTS:
        out["geoproperty"] = geoproperty
    return out


def _numbers_deep(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_numbers_deep(item) for item in value]
    return _number(value)


def _endpoint(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"uri": value.get("uri")}
    accept = value.get("accept")
    if accept and accept != "application/json":
        out["accept"] = accept
    for key in ("receiverInfo", "notifierInfo"):
        pairs = _pairs(value.get(key) or [])
        if pairs:
            out[key] = pairs
    return out


def _notification(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if value.get("attributes"):
        out["attributes"] = _names(value["attributes"])
    for key, default in _NOTIFICATION_DEFAULTS.items():
        if key in value and value[key] is not None and value[key] != default:
            out[key] = value[key]
    if isinstance(value.get("endpoint"), Mapping):
        out["endpoint"] = _endpoint(value["endpoint"])
    return out


def _selector(value: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(value[k]) for k in ("type", "id", "idPattern") if value.get(k) is not None}


def normalise(body: Mapping[str, Any], *, compare_is_active: bool = True) -> dict[str, Any]:
    """The comparable form of a subscription (as sent, or as a broker shows it)."""
    out: dict[str, Any] = {}
    for key in COMPARED:
        value = body.get(key)
        if value is None:
            continue
        if key == "entities":
            selectors = [_selector(s) for s in value if isinstance(s, Mapping)]
            unique = {orjson.dumps(s, option=orjson.OPT_SORT_KEYS): s for s in selectors}
            out[key] = [unique[k] for k in sorted(unique)]
        elif key == "watchedAttributes":
            out[key] = _names(value)
        elif key == "q":
            out[key] = _q(str(value))
        elif key == "geoQ" and isinstance(value, Mapping):
            out[key] = _geo_q(value)
        elif key in ("timeInterval", "throttling"):
            out[key] = _number(value)
        elif key == "isActive":
            if compare_is_active and value is False:
                out[key] = False
        elif key == "expiresAt":
            try:
                out[key] = format_datetime(parse_datetime(value))
            except ValueError:
                out[key] = str(value)
        elif key == "notificationTrigger":
            if frozenset(value) != _DEFAULT_TRIGGERS:
                out[key] = _names(value)
        elif key == "notification" and isinstance(value, Mapping):
            out[key] = _notification(value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True, kw_only=True)
class FieldChange:
    """One member that differs: dotted path, the broker's value and the file's (None: absent)."""

    path: str
    old: Any
    new: Any

    @property
    def removes(self) -> bool:
        return self.new is None and self.old is not None


def field_changes(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[FieldChange]:
    """The members that differ between two normalised subscriptions, sorted by path; objects
    are compared member by member, lists and scalars as a whole."""
    changes: list[FieldChange] = []

    def walk(old: Any, new: Any, path: str) -> None:
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            for key in sorted(set(old) | set(new)):
                walk(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        elif old != new:
            changes.append(FieldChange(path=path, old=old, new=new))

    walk(current, desired, "")
    return sorted(changes, key=lambda c: c.path)


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def mask_url_password(uri: str) -> str:
    """`mqtt://user:pass@host/...` with the password replaced by its fingerprint."""
    scheme, sep, rest = uri.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or ":" not in userinfo or "/" in userinfo:
        return uri
    user, _, password = userinfo.partition(":")
    return f"{scheme}://{user}:••••sha256:{_fingerprint(password)}@{host}"


def mask_secrets(value: Any, path: str = "") -> Any:
    """`value` with every receiverInfo value and every password in an endpoint URI replaced by a
    fingerprint (`•••• sha256:1a2b3c4d`), so that diffs and listings show that a secret changed
    without showing it."""
    if isinstance(value, str) and path.endswith("endpoint.uri"):
        return mask_url_password(value)
    if isinstance(value, Mapping):
        return {k: mask_secrets(v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        if path.endswith("receiverInfo"):
            return [
                {"key": p.get("key"), "value": f"•••• sha256:{_fingerprint(str(p.get('value')))}"}
                if isinstance(p, Mapping)
                else p
                for p in value
            ]
        return [mask_secrets(item, path) for item in value]
    return value


def render_value(value: Any) -> str:
    """A value as one line of compact JSON (sorted keys); `(none)` for an absent one."""
    if value is None:
        return "(none)"
    return orjson.dumps(_whole_numbers(value), option=orjson.OPT_SORT_KEYS).decode()


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_whole_numbers(item) for item in value]
    return _number(value)
