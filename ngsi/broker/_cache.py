"""In-memory cache of recently written or read entities, kept in step with the store.

`EntityCache` maps (tenant, entity id) to a `CachedEntity`: the entity's stored document as the
exact bytes the store wrote (orjson of the expanded, normalized form with system attributes),
plus up to a few response bodies already rendered from it (one per distinct request shape:
@context, media type, query string).

Contract (kept by `ngsi.broker._store`):
- An entry is only ever put or removed while the tenant's store lock is held, by a read that
  found the row or by a write after its commit; so an entry always holds the last committed
  state of its entity. A rolled-back write changes nothing here.
- Readers on the event loop may look entries up at any time without the store lock: they see
  the state before or after a concurrent write, never a mix, and never a state older than the
  last write whose response was already sent.
- Entries are immutable: a write replaces the entry (dropping its renderings) instead of
  changing it; `CachedEntity.document()` decodes a fresh dict for each caller.
- An entry put by a write may also hold `doc`, the very document that write produced, so that
  the next merge into the entity need not decode it again. It is shared: only a reader that
  never changes it (nor anything in it) may take it. It counts `_PARSED_FACTOR` times its
  bytes, and documents fill at most half of `max_bytes`: when they would take more, the new
  entry comes without its document. Writing an entity again frees its old document's room
  first, so a steady stream of updates to more entities than the documents' room holds keeps
  documents for as many of them as fit (evicting old documents for new ones instead would
  keep none long enough to be read, and cost more than decoding).
- The least recently used entries are dropped once the entries' bytes exceed `max_bytes`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import orjson

__all__ = ["DEFAULT_CACHE_BYTES", "CachedEntity", "EntityCache", "Rendering"]

DEFAULT_CACHE_BYTES = 128 * 1024 * 1024
"""Memory for cached entities and their renderings: 128 MiB (some 15,000 typical entities
written lately, more that were only read)."""

_ENTRY_OVERHEAD = 240
"""Bytes an entry costs besides its documents (the key, the entry, the dict slots)."""
_PARSED_FACTOR = 3
"""A decoded document takes about three times the memory of its JSON bytes."""
_MAX_RENDERINGS = 4

Rendering = tuple[bytes, list[tuple[bytes, bytes]], object]
"""A rendered response: the body, the raw headers (as `Response.raw_headers`) and the object it
was rendered with besides the entity (the request's `Context`): a rendering is only good for a
request whose key is equal and whose object is that very object."""


def _rendering_size(rendering: Rendering) -> int:
    return len(rendering[0]) + sum(len(k) + len(v) for k, v in rendering[1]) + 64


class CachedEntity:
    """One entity's stored bytes and the responses rendered from them."""

    __slots__ = ("doc", "raw", "renderings", "size")

    def __init__(self, raw: bytes, doc: dict[str, Any] | None = None) -> None:
        self.raw = raw
        self.doc = doc
        self.renderings: dict[Hashable, Rendering] = {}
        self.size = len(raw) + _ENTRY_OVERHEAD
        if doc is not None:
            self.size += self.doc_size

    @property
    def doc_size(self) -> int:
        """Bytes the decoded document counts for."""
        return len(self.raw) * _PARSED_FACTOR

    def document(self) -> dict[str, Any]:
        """The stored document, decoded afresh (the caller owns it)."""
        doc: dict[str, Any] = orjson.loads(self.raw)
        return doc

    def rendering(self, key: Hashable, using: object) -> Rendering | None:
        """The response rendered for `key` with `using` earlier, or None."""
        found = self.renderings.get(key)
        if found is None or found[2] is not using:
            return None
        return found


class EntityCache:
    """Recently used entities of every tenant (see the module contract); thread-safe."""

    def __init__(self, *, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max(0, max_bytes)
        self._entries: OrderedDict[tuple[str | None, str], CachedEntity] = OrderedDict()
        self._bytes = 0
        self._doc_bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes the entries take now (as the cache counts them)."""
        return self._bytes

    def get(self, tenant: str | None, entity_id: str) -> CachedEntity | None:
        """The entry of the entity, marked as recently used; None when not cached."""
        key = (tenant, entity_id)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def get_many(self, tenant: str | None, entity_ids: Iterable[str]) -> list[CachedEntity | None]:
        """`get` of each entity, in order, under one acquisition of the lock."""
        found: list[CachedEntity | None] = []
        entries = self._entries
        with self._lock:
            for entity_id in entity_ids:
                key = (tenant, entity_id)
                entry = entries.get(key)
                if entry is not None:
                    entries.move_to_end(key)
                found.append(entry)
            hits = len(found) - found.count(None)
            self.hits += hits
            self.misses += len(found) - hits
        return found

    def put(self, tenant: str | None, entity_id: str, raw: bytes) -> CachedEntity | None:
        """Cache the stored bytes of an entity (call with the tenant's store lock held)."""
        if not self.max_bytes:
            return None
        entry = CachedEntity(raw)
        with self._lock:
            self._put(tenant, entity_id, entry)
            self._shrink()
        return entry

    def update(
        self,
        tenant: str | None,
        written: Iterable[tuple[str, bytes | None]],
        docs: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        """Apply committed writes: new bytes per entity id, None for a deleted entity (call
        with the tenant's store lock held). `docs` holds, by entity id, documents the writer
        hands over for sharing (see the module contract)."""
        shared = docs or {}
        with self._lock:
            for entity_id, raw in written:
                if raw is None or not self.max_bytes:
                    self._drop((tenant, entity_id))
                else:
                    self._put(tenant, entity_id, CachedEntity(raw, shared.get(entity_id)))
            self._shrink()

    def discard(self, tenant: str | None, entity_id: str) -> None:
        with self._lock:
            self._drop((tenant, entity_id))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._doc_bytes = 0

    def remember(self, entry: CachedEntity, key: Hashable, rendering: Rendering) -> None:
        """Keep a response rendered from `entry` for requests with the same `key` (no-op once
        the entry was replaced or dropped, or when it holds enough renderings already)."""
        if len(entry.renderings) >= _MAX_RENDERINGS and key not in entry.renderings:
            return
        size = _rendering_size(rendering)
        with self._lock:
            if entry.size < 0:
                return
            old = entry.renderings.get(key)
            if old is not None:
                size -= _rendering_size(old)
            entry.renderings = {**entry.renderings, key: rendering}
            entry.size += size
            self._bytes += size
            self._shrink()

    def _put(self, tenant: str | None, entity_id: str, entry: CachedEntity) -> None:
        key = (tenant, entity_id)
        self._drop(key)
        if entry.doc is not None:
            if self._doc_bytes + entry.doc_size > self.max_bytes // 2:
                entry.doc = None
                entry.size -= entry.doc_size
            else:
                self._doc_bytes += entry.doc_size
        self._entries[key] = entry
        self._bytes += entry.size

    def _drop(self, key: tuple[str | None, str]) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._forget(old)

    def _forget(self, old: CachedEntity) -> None:
        self._bytes -= old.size
        old.size = -1  # marks the entry as gone for `remember`
        if old.doc is not None:
            self._doc_bytes -= old.doc_size

    def _shrink(self) -> None:
        entries = self._entries
        while self._bytes > self.max_bytes and entries:
            _, old = entries.popitem(last=False)
            self._forget(old)
