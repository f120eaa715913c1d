"""Broker profiles: the known limits and habits of each NGSI-LD broker the client talks to.

The client follows the specification and adapts only where a broker is known to differ:

| profile    | page size | batch           | read of an unknown tenant                      |
|------------|-----------|-----------------|------------------------------------------------|
| `orion-ld` | ≤ 1000    | ≤ 1000, ≤ 1 MiB | 404 NonexistentTenant until the first write    |
| `scorpio`  | ≤ 1000    | ≤ 1000, ≤ 1 MiB | 404 `TenantNotFound` until the first write     |
| `stellio`  | ≤ 100     | ≤ 1000, ≤ 1 MiB | 404 NonexistentTenant: tenants are configured  |
| `embedded` | ≤ 1000    | ≤ 1000, ≤ 1 MiB | as Orion-LD                                    |

Stellio's tenants are set in its configuration, so there an unknown tenant is an error to see.

Where `empty_on_unknown_tenant` is set, collection reads (`query`, `query_all`, `iter_entities`,
`count`, `list_subscriptions`, `types`, `attributes`, `temporal_query`) on a tenant that nothing
was written to yet return an empty result instead of raising; reads of one resource
(`retrieve`, `retrieve_subscription`, ...) and writes still raise `NonexistentTenant`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ngsi._batch import BatchParser, parse_batch_body

__all__ = ["PROFILES", "BrokerProfile", "get_profile"]

MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class BrokerProfile:
    """Limits and habits of one broker; pick one by name with `get_profile`.

    Derive a variant with `dataclasses.replace(get_profile("orion-ld"), max_batch_bytes=...)`
    when a deployment is configured differently.
    """

    name: str
    max_page_size: int = 1000
    """The largest `limit` the broker accepts on one page of a query or listing."""
    max_batch_entities: int = 1000
    """The most entities (or ids) the client puts into one batch request."""
    max_batch_bytes: int = MIB
    """The largest serialized body of one batch request."""
    empty_on_unknown_tenant: bool = True
    """Whether a 404 for a tenant that does not exist means "nothing written yet" (empty)."""
    unknown_tenant_errors: frozenset[str] = field(
        default_factory=lambda: frozenset({"NonexistentTenant"})
    )
    """The error names (last segment of the ProblemDetails `type`) of "no such tenant"."""
    parse_batch: BatchParser = parse_batch_body
    """Reads the body of a batch answer (207, or an error listing entities)."""

    def __post_init__(self) -> None:
        if self.max_page_size < 1 or self.max_batch_entities < 1 or self.max_batch_bytes < 3:
            raise ValueError(f"broker profile {self.name!r}: limits must be positive")


PROFILES: dict[str, BrokerProfile] = {
    "orion-ld": BrokerProfile(name="orion-ld"),
    "scorpio": BrokerProfile(
        name="scorpio",
        unknown_tenant_errors=frozenset({"NonexistentTenant", "TenantNotFound"}),
    ),
    "stellio": BrokerProfile(name="stellio", max_page_size=100, empty_on_unknown_tenant=False),
    "embedded": BrokerProfile(name="embedded"),
}


def get_profile(profile: str | BrokerProfile) -> BrokerProfile:
    """The profile with this name (`orion-ld`, `scorpio`, `stellio`, `embedded`), or `profile`."""
    if isinstance(profile, BrokerProfile):
        return profile
    try:
        return PROFILES[profile.lower()]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown broker profile {profile!r}; known profiles: {known}") from None
