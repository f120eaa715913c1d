"""Settings of the embedded broker (`drehscheibe broker serve` builds them from its options)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ngsi.broker._auth import BrokerAuth
from ngsi.broker._cache import DEFAULT_CACHE_BYTES

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_CACHE_MB",
    "DEFAULT_NOTIFICATION_QUEUE_LIMIT",
    "DEFAULT_NOTIFICATION_RETRY_FOR",
    "DEFAULT_NOTIFICATION_RETRY_MAX_DELAY",
    "DEFAULT_NOTIFICATION_TIMEOUT",
    "BrokerSettings",
    "allow_host_entry",
]

DEFAULT_BODY_LIMIT = 1024 * 1024
"""Largest request body accepted, in bytes: 1 MiB, as Orion-LD."""

DEFAULT_CACHE_MB = DEFAULT_CACHE_BYTES // (1024 * 1024)
"""Memory for entities kept in memory between requests, in MiB (0: none)."""

DEFAULT_NOTIFICATION_TIMEOUT = 5.0
"""Seconds one notification attempt may take before it counts as failed."""

DEFAULT_NOTIFICATION_RETRY_FOR = 120.0
"""Seconds a failed notification is retried (waits 0.5 s, doubling up to the max delay)."""

DEFAULT_NOTIFICATION_RETRY_MAX_DELAY = 4.0
"""The longest wait between two attempts of one notification, in seconds."""

DEFAULT_NOTIFICATION_QUEUE_LIMIT = 10_000
"""Notifications that may wait for one endpoint; beyond that the oldest is dropped."""

_HOST_NAME = re.compile(
    r"^(?:\*\.)?(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
    r"(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$"
)


def allow_host_entry(entry: str) -> str:
    """One `notification_allow_hosts` entry, normalised (lower case, networks in CIDR form);
    ValueError says what is wrong with it."""
    text = entry.strip().lower()
    if not text:
        raise ValueError("an entry of notification_allow_hosts is empty")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "/" in text:
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(
                f"notification_allow_hosts entry {entry!r} is not a CIDR network "
                "(e.g. 10.0.0.0/8 or fd00::/8)"
            ) from None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _HOST_NAME.match(text):
        raise ValueError(
            f"notification_allow_hosts entry {entry!r} is not a host name, '*.domain', "
            "an IP address or a CIDR network"
        )
    return text.rstrip(".")


class BrokerSettings(BaseModel):
    """Everything the broker needs to start; immutable once built.

    - `data_dir`: where the per-tenant SQLite files live (created if missing).
    - `host`/`port`: where `serve()` listens; loopback unless told otherwise.
    - `max_body_bytes`: larger request bodies get 413.
    - `preload_contexts`: @context URL → local file, served without the network.
    - `contexts_dir`: a folder with a map file of further URL → file entries (see `ngsi._context`).
    - `allow_context_fetch`: fetch unknown remote @contexts over the network (off by default:
      an unknown context is 503 LdContextNotAvailable).
    - `context_fetch_timeout`: seconds for one remote @context fetch.
    - `api_key`: when set, every request but `/version` needs `X-API-Key: <key>` or
      `Authorization: Bearer <key>` (a key that may do everything; see `auth` for more).
    - `auth`: OAuth2 issuers and API keys with their tenants and operations
      (`ngsi.broker._auth`); `allow_anonymous`: serve requests without credentials (with the
      operations `auth.anonymous` names). Without it, anonymous requests are served only by a
      broker on loopback with no credentials configured; a broker on any other address with
      no credentials refuses to start.
    - `context_allow_hosts`: the hosts @contexts may be fetched from (with
      `allow_context_fetch`), entries as for `notification_allow_hosts`; None: the same
      default rule as for notifications. Context fetches never follow redirects.
    - `max_page_size`: the largest `limit` of a query (Orion-LD's 1000); `default_page_size` 20.
    - `notification_allow_hosts`: the hosts notifications may go to (HTTP and MQTT endpoints).
      Each entry is a host name (`consumer.city.example`, compared case-insensitively), a
      wildcard `*.city.example` (every subdomain, not the domain itself), an IP address or a
      CIDR network (`10.20.0.0/16`, `fd00::/8`). Names are not resolved: an endpoint named by
      a host name passes only a name or wildcard entry, one given as an address only an address
      or network entry (`localhost` counts as the loopback addresses too). A subscription whose
      endpoint host is not allowed is refused with 400 BadRequestData; stored subscriptions
      that a narrower list no longer allows fail their notifications without sending them.
      `None` (the default) applies the default rule: a broker bound to a loopback address
      (127.0.0.0/8, ::1, `localhost`) may notify any host, loopback included; a broker bound to
      any other address may notify any host except loopback, private (10/8, 172.16/12,
      192.168/16, 100.64/10, fc00::/7), link-local (169.254.0.0/16, fe80::/10, where cloud
      metadata services answer), multicast and unspecified addresses (`ngsi._outbound`), so
      that a client on the network cannot make it call services on its own machine or network.
      Under that rule a host name is resolved when the connection is made and refused when it
      resolves to such an address (against DNS rebinding); HTTP notifications connect to the
      address checked. Name those hosts explicitly to allow them.
    - `notification_timeout`: seconds one notification attempt may take (a subscription's
      `notification.endpoint.timeout` overrides it).
    - `notification_retry_for`: seconds a notification that failed (no connection, timeout,
      5xx) is still retried to its endpoint, with the same notification id every time, so that
      a consumer restarting within that time loses nothing and can drop repeats by id; 0: no
      retry. The waits start at 0.5 s and double up to `notification_retry_max_delay` (default
      120 s and 4 s: 0.5, 1, 2, 4, 4, ... s, 33 retries). Orion-LD does not retry: it counts
      the failure (`lastFailure`, `consecutiveErrors`) and the notification is gone.
    - `notification_queue_limit`: notifications that may wait for one endpoint while it is away
      or slow; beyond that the oldest is dropped and counted as failed. Each endpoint has its
      own queue, so a dead one never slows the writers or the other endpoints.
    - `history_retention_days`: how long the temporal history keeps attribute instances
      (None: for ever); `history_retention_days_by_type`: per entity type, the expanded type
      IRI as stored (`https://smartdatamodels.org/dataModel.Environment/AirQualityObserved`;
      a type written without @context is `https://uri.etsi.org/ngsi-ld/default-context/<Type>`)
      → days, overriding the default for that type.
    - `state_retention_days`: entities of the current state not updated (`modifiedAt`) for
      this many days are deleted (None: kept for ever); `state_retention_days_by_type`: per
      expanded type IRI (as for the history) → days, overriding the default for that type.
      Their history stays for the history's retention. Applied every `retention_interval`
      seconds (see `ngsi.broker._retention`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = Field(default=1026, ge=0, le=65535)
    max_body_bytes: int = Field(default=DEFAULT_BODY_LIMIT, gt=0)
    cache_mb: int = Field(default=DEFAULT_CACHE_MB, ge=0)
    preload_contexts: dict[str, Path] = Field(default_factory=dict)
    contexts_dir: Path | None = None
    allow_context_fetch: bool = False
    context_fetch_timeout: float = Field(default=2.0, gt=0)
    api_key: str | None = None
    max_page_size: int = Field(default=1000, gt=0)
    default_page_size: int = Field(default=20, gt=0)
    log_level: str = "warning"
    notification_allow_hosts: list[str] | None = None
    auth: BrokerAuth | None = None
    allow_anonymous: bool = False
    context_allow_hosts: list[str] | None = None
    notification_timeout: float = Field(default=DEFAULT_NOTIFICATION_TIMEOUT, gt=0)
    notification_retry_for: float = Field(default=DEFAULT_NOTIFICATION_RETRY_FOR, ge=0)
    notification_retry_max_delay: float = Field(default=DEFAULT_NOTIFICATION_RETRY_MAX_DELAY, gt=0)
    notification_queue_limit: int = Field(default=DEFAULT_NOTIFICATION_QUEUE_LIMIT, gt=0)
    history_retention_days: float | None = Field(default=None, gt=0)
    history_retention_days_by_type: dict[str, float] = Field(default_factory=dict)
    state_retention_days: float | None = Field(default=None, gt=0)
    state_retention_days_by_type: dict[str, float] = Field(default_factory=dict)
    retention_interval: float = Field(default=3600.0, gt=0)

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("the API key is empty")
        return None if value is None else value.strip()

    @field_validator("notification_allow_hosts", "context_allow_hosts")
    @classmethod
    def _allow_hosts(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return list(dict.fromkeys(allow_host_entry(entry) for entry in value))

    @field_validator("state_retention_days_by_type")
    @classmethod
    def _state_retention_by_type(cls, value: dict[str, float]) -> dict[str, float]:
        for type_iri, days in value.items():
            if ":" not in type_iri:
                raise ValueError(
                    f"state_retention_days_by_type: {type_iri!r} is not an expanded type IRI "
                    "(write it as for history_retention_days_by_type)"
                )
            if not days > 0:
                raise ValueError(
                    f"state_retention_days_by_type: {type_iri!r} must be kept more than 0 "
                    f"days, got {days}"
                )
        return value

    @field_validator("history_retention_days_by_type")
    @classmethod
    def _retention_by_type(cls, value: dict[str, float]) -> dict[str, float]:
        for type_iri, days in value.items():
            if ":" not in type_iri:
                raise ValueError(
                    f"history_retention_days_by_type: {type_iri!r} is not an expanded type IRI; "
                    "write the type as stored, e.g. "
                    "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved, or "
                    f"https://uri.etsi.org/ngsi-ld/default-context/{type_iri} for a type "
                    "written without @context"
                )
            if not days > 0:
                raise ValueError(
                    f"history_retention_days_by_type: {type_iri!r} must be kept more than 0 "
                    f"days, got {days}"
                )
        return value
