"""Settings of the embedded broker (`drehscheibe broker serve` builds them from its options)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_BODY_LIMIT", "BrokerSettings"]

DEFAULT_BODY_LIMIT = 1024 * 1024
"""Largest request body accepted, in bytes: 1 MiB, as Orion-LD."""


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
      `Authorization: Bearer <key>`.
    - `max_page_size`: the largest `limit` of a query (Orion-LD's 1000); `default_page_size` 20.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = Field(default=1026, ge=0, le=65535)
    max_body_bytes: int = Field(default=DEFAULT_BODY_LIMIT, gt=0)
    preload_contexts: dict[str, Path] = Field(default_factory=dict)
    contexts_dir: Path | None = None
    allow_context_fetch: bool = False
    context_fetch_timeout: float = Field(default=2.0, gt=0)
    api_key: str | None = None
    max_page_size: int = Field(default=1000, gt=0)
    default_page_size: int = Field(default=20, gt=0)
    log_level: str = "warning"

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("the API key is empty")
        return None if value is None else value.strip()
