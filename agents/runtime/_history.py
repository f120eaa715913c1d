"""Late readings into the broker's temporal history, never into the current state.

The sender sets aside readings older than what it already delivered for their entity (design
decision 6) and hands them to a history sink. `TemporalHistorySink` writes each of them with
NGSI-LD's `POST /temporal/entities` (the instances are added to the entity's history; the
current state is not touched). Brokers without that operation (Orion-LD keeps history in
Mintaka, read-only) answer 404, 405 or 501: the readings are then accepted and counted as
dropped (`unsupported`), and this is logged once.

Outcomes per item: 201/204 → accepted; 400/413/422 → rejected (a dead letter with the
broker's problem); no answer or any other status → kept for a retry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from agents.delivery import QueuedItem, Rejection, WriteResult

__all__ = ["TemporalHistorySink"]

logger = logging.getLogger("agents.runtime.history")

_UNSUPPORTED = frozenset({404, 405, 501})
_REJECTED = frozenset({400, 413, 422})
_LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def temporal_body(entity: dict[str, Any]) -> dict[str, Any]:
    """The temporal representation of a normalized entity: each attribute a list of instances."""
    body: dict[str, Any] = {}
    for name, value in entity.items():
        if name in ("id", "type", "@context"):
            body[name] = value
        else:
            body[name] = value if isinstance(value, list) else [value]
    return body


class TemporalHistorySink:
    """A `Sink` for late readings (see the module docstring). `base_url` is the broker's root."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 10.0,
        default_tenant: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/ngsi-ld/v1/temporal/entities"
        self.default_tenant = default_tenant
        self._http = httpx.Client(auth=auth, timeout=timeout, transport=transport)
        self.written = 0
        self.unsupported = 0
        self._warned = False

    def open(self) -> None:
        """Nothing to do: the HTTP client connects on its first request."""

    def close(self) -> None:
        self._http.close()

    def write(self, batch: Sequence[QueuedItem]) -> WriteResult:
        result = WriteResult()
        for index, item in enumerate(batch):
            headers = {"Content-Type": "application/json"}
            if item.context is not None:
                headers["Link"] = _LINK.format(item.context)
            tenant = item.tenant if item.tenant is not None else self.default_tenant
            if tenant is not None:
                headers["NGSILD-Tenant"] = tenant
            try:
                response = self._http.post(
                    self.url, content=orjson.dumps(temporal_body(item.entity)), headers=headers
                )
            except httpx.HTTPError as exc:
                error = f"no answer from the broker's temporal API: {exc}"
                result.retry.update((later.id, error) for later in batch[index:])
                return result
            status = response.status_code
            if status in (200, 201, 204):
                self.written += 1
                result.accepted.append(item.id)
            elif status in _UNSUPPORTED:
                self.unsupported += 1
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "the broker has no temporal write API (%d): late readings are counted "
                        "and not kept",
                        status,
                    )
                result.accepted.append(item.id)
            elif status in _REJECTED:
                result.rejected[item.id] = Rejection(
                    message=(
                        f"the broker's history refused the late reading of {item.entity_id} "
                        f"({item.entity_type}) with {status}: {response.text[:300]}"
                    ),
                    detail={"status": status},
                    source="history",
                )
            else:
                result.retry[item.id] = f"temporal API answered {status}"
        return result
