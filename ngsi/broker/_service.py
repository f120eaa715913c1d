"""The broker's entity service: NGSI-LD operations over the store, one transaction each.

Inputs are expanded entity bodies and fragments (see `ngsi.broker._entities`); outputs are
stored documents (expanded, with system attributes) and outcomes. Every public method blocks on
SQLite: call it from a worker thread (`run_in_threadpool`), never on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ngsi._errors import AlreadyExists, BadRequestData, NgsiApiError, ResourceNotFound
from ngsi.broker._entities import (
    AttributeOutcome,
    append_attributes,
    attribute_names,
    delete_attribute,
    entity_types,
    merge_attributes,
    merge_entity,
    new_entity,
    partial_update_attribute,
    replace_attribute,
    replace_entity,
    update_attributes,
    validate_fragment,
)
from ngsi.broker._store import ReadTransaction, Store, WriteTransaction

__all__ = ["BatchOutcome", "EntityFilter", "EntityService", "QueryResult", "UpsertMode"]

UpsertMode = Literal["replace", "update", "merge"]


@dataclass(kw_only=True)
class BatchOutcome:
    """Per-entity results of a batch: ids that succeeded, ids created, and errors by id."""

    success: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    errors: list[tuple[str, NgsiApiError]] = field(default_factory=list)


@dataclass(kw_only=True)
class EntityFilter:
    """Which entities a query selects; names are expanded.

    `types` is a disjunction of conjunctions (`[[A], [B, C]]` is A or (B and C)); `ids` and
    `id_pattern` narrow by id; `predicate` is the compiled q and geo filter over stored
    documents; `attrs` (when given) keeps only entities that have at least one of them.
    """

    types: list[list[str]] | None = None
    ids: list[str] | None = None
    id_pattern: str | None = None
    attrs: list[str] | None = None
    predicate: Callable[[Mapping[str, Any]], bool] | None = None


@dataclass(kw_only=True)
class QueryResult:
    entities: list[dict[str, Any]]
    count: int | None


class EntityService:
    """NGSI-LD entity operations on a `Store` (thread-safe; each method is one transaction)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- single entities --------------------------------------------------------------------

    def create(self, tenant: str | None, body: Mapping[str, Any]) -> str:
        """Create an entity; AlreadyExists if its id is taken. Returns the id."""
        with self.store.write(tenant) as txn:
            entity_id = str(body["id"])
            if txn.get(entity_id) is not None:
                raise AlreadyExists(f"entity {entity_id!r} already exists")
            txn.insert(new_entity(body, now=txn.now))
        return entity_id

    def retrieve(self, tenant: str | None, entity_id: str) -> dict[str, Any]:
        """The stored document; ResourceNotFound if there is none."""
        with self.store.read(tenant) as txn:
            doc = txn.get(entity_id)
        if doc is None:
            raise ResourceNotFound(f"entity {entity_id!r} not found")
        return doc

    def _existing(self, txn: ReadTransaction, entity_id: str) -> dict[str, Any]:
        doc = txn.get(entity_id)
        if doc is None:
            raise ResourceNotFound(f"entity {entity_id!r} not found")
        return doc

    def replace(self, tenant: str | None, entity_id: str, body: Mapping[str, Any]) -> None:
        """Replace an entity whole (PUT): ResourceNotFound if it does not exist."""
        with self.store.write(tenant, create=False) as txn:
            current = self._existing(txn, entity_id)
            doc, changed = replace_entity(current, {**body, "id": entity_id}, now=txn.now)
            txn.update(current, doc, changed)

    def delete(self, tenant: str | None, entity_id: str) -> None:
        with self.store.write(tenant, create=False) as txn:
            txn.delete_many([self._existing(txn, entity_id)])

    def append_attributes(
        self,
        tenant: str | None,
        entity_id: str,
        fragment: Mapping[str, Any],
        *,
        overwrite: bool = True,
    ) -> AttributeOutcome:
        with self.store.write(tenant, create=False) as txn:
            current = self._existing(txn, entity_id)
            doc, outcome = append_attributes(
                current, fragment, now=txn.now, overwrite=overwrite, where=f"entity {entity_id!r}"
            )
            if outcome.updated or doc.get("type") != current.get("type"):
                txn.update(current, doc, outcome.updated)
        return outcome

    def update_attributes(
        self, tenant: str | None, entity_id: str, fragment: Mapping[str, Any]
    ) -> AttributeOutcome:
        with self.store.write(tenant, create=False) as txn:
            current = self._existing(txn, entity_id)
            doc, outcome = update_attributes(
                current, fragment, now=txn.now, where=f"entity {entity_id!r}"
            )
            if outcome.updated:
                txn.update(current, doc, outcome.updated)
        return outcome

    def partial_update_attribute(
        self, tenant: str | None, entity_id: str, name: str, fragment: Mapping[str, Any]
    ) -> None:
        with self.store.write(tenant, create=False) as txn:
            current = self._existing(txn, entity_id)
            doc = partial_update_attribute(
                current, name, fragment, now=txn.now, where=f"entity {entity_id!r}"
            )
            txn.update(current, doc, [name])

    def merge(self, tenant: str | None, entity_id: str, fragment: Mapping[str, Any]) -> None:
        """Merge Entity: ResourceNotFound if the entity does not exist."""
        with self.store.write(tenant, create=False) as txn:
            current = self._existing(txn, entity_id)
            doc, changed = merge_attributes(
                current, fragment, now=txn.now, where=f"entity {entity_id!r}"
            )
            txn.update(current, doc, changed)

    def replace_attribute(
        self, tenant: str | None, entity_id: str, name: str, fragment: Mapping[str, Any]
    ) -> None:
        with self.store.write(tenant, create=False) as txn:
            current = self._existing(txn, entity_id)
            doc = replace_attribute(
                current, name, fragment, now=txn.now, where=f"entity {entity_id!r}"
            )
            txn.update(current, doc, [name])

    def delete_attribute(
        self,
        tenant: str | None,
        entity_id: str,
        name: str,
        *,
        dataset_id: str | None = None,
        delete_all: bool = False,
    ) -> None:
        with self.store.write(tenant, create=False) as txn:
            current = self._existing(txn, entity_id)
            doc = delete_attribute(
                current,
                name,
                now=txn.now,
                dataset_id=dataset_id,
                delete_all=delete_all,
                where=f"entity {entity_id!r}",
            )
            txn.update(current, doc, [name])

    # --- batches ----------------------------------------------------------------------------

    def batch_create(self, tenant: str | None, bodies: Sequence[Mapping[str, Any]]) -> BatchOutcome:
        outcome = BatchOutcome()
        with self.store.write(tenant) as txn:
            taken = txn.existing_ids([b["id"] for b in bodies])
            docs = []
            for body in bodies:
                entity_id = body["id"]
                if entity_id in taken:
                    outcome.errors.append(
                        (entity_id, AlreadyExists(f"entity {entity_id!r} already exists"))
                    )
                    continue
                try:
                    doc = new_entity(body, now=txn.now)
                except NgsiApiError as exc:
                    outcome.errors.append((entity_id, exc))
                    continue
                taken.add(entity_id)
                docs.append(doc)
                outcome.success.append(entity_id)
            txn.insert_many(docs)
        outcome.created = list(outcome.success)
        return outcome

    def batch_upsert(
        self, tenant: str | None, bodies: Sequence[Mapping[str, Any]], *, mode: UpsertMode
    ) -> BatchOutcome:
        """Create missing entities; replace (default) or merge into (`update`) existing ones."""
        outcome = BatchOutcome()
        with self.store.write(tenant) as txn:
            self._apply(txn, bodies, outcome, create=True, mode=mode, overwrite=True)
        return outcome

    def batch_merge(self, tenant: str | None, bodies: Sequence[Mapping[str, Any]]) -> BatchOutcome:
        """Merge each entity into the stored one; a missing entity is an error."""
        outcome = BatchOutcome()
        with self.store.write(tenant) as txn:
            self._apply(txn, bodies, outcome, create=False, mode="merge", overwrite=True)
        return outcome

    def batch_update(
        self, tenant: str | None, bodies: Sequence[Mapping[str, Any]], *, overwrite: bool = True
    ) -> BatchOutcome:
        """Merge attributes into existing entities; a missing entity is an error."""
        outcome = BatchOutcome()
        with self.store.write(tenant) as txn:
            self._apply(txn, bodies, outcome, create=False, mode="update", overwrite=overwrite)
        return outcome

    # The batch operations own their bodies (each request's freshly parsed entities): their
    # attribute instances are stamped and stored in place, not copied.
    def _apply(
        self,
        txn: WriteTransaction,
        bodies: Sequence[Mapping[str, Any]],
        outcome: BatchOutcome,
        *,
        create: bool,
        mode: UpsertMode,
        overwrite: bool,
    ) -> None:
        # A merge (options=update) copies what it changes, so it may read the cache's documents.
        before = txn.get_many([b["id"] for b in bodies], shared=mode == "update")
        current: dict[str, dict[str, Any]] = dict(before)
        created: dict[str, None] = {}
        changed: dict[str, set[str]] = {}
        succeeded: set[str] = set()
        for body in bodies:
            entity_id = body["id"]
            doc = current.get(entity_id)
            try:
                if doc is None:
                    if not create:
                        validate_fragment(body, where=f"entity {entity_id!r}")
                        raise ResourceNotFound(f"entity {entity_id!r} not found")

                    current[entity_id] = new_entity(body, now=txn.now, owned=True)
                    created[entity_id] = None
                elif mode == "replace":
                    current[entity_id], names = replace_entity(doc, body, now=txn.now)
                    changed.setdefault(entity_id, set()).update(names)
                elif mode == "merge":
                    current[entity_id], names = merge_attributes(
                        doc, body, now=txn.now, where=f"entity {entity_id!r}"
                    )
                    changed.setdefault(entity_id, set()).update(names)
                else:
                    current[entity_id], names = merge_entity(
                        doc, body, now=txn.now, overwrite=overwrite, owned=True
                    )
                    changed.setdefault(entity_id, set()).update(names)
                    if not overwrite:
                        skipped = sorted(set(attribute_names(body)) - names)
                        if skipped:
                            outcome.errors.append(
                                (
                                    entity_id,
                                    BadRequestData(
                                        f"entity {entity_id!r}: attributes not overwritten "
                                        f"(options=noOverwrite): {', '.join(skipped)}"
                                    ),
                                )
                            )
                            continue
            except NgsiApiError as exc:
                outcome.errors.append((entity_id, exc))
                continue
            if entity_id not in succeeded:
                succeeded.add(entity_id)
                outcome.success.append(entity_id)
        txn.insert_many([current[i] for i in created])
        txn.update_many(
            [(before[i], current[i], names) for i, names in changed.items() if i in before]
        )
        txn.share(current[i] for i in succeeded)
        outcome.created = [i for i in created if i in succeeded]

    def batch_delete(self, tenant: str | None, entity_ids: Sequence[str]) -> BatchOutcome:
        outcome = BatchOutcome()
        with self.store.write(tenant, create=False) as txn:
            found = txn.get_many(entity_ids)
            docs = []
            for entity_id in entity_ids:
                doc = found.pop(entity_id, None)
                if doc is None:
                    outcome.errors.append(
                        (entity_id, ResourceNotFound(f"entity {entity_id!r} not found"))
                    )
                    continue
                docs.append(doc)
                outcome.success.append(entity_id)
            txn.delete_many(docs)
        return outcome

    # --- queries ----------------------------------------------------------------------------

    def query(
        self,
        tenant: str | None,
        selection: EntityFilter,
        *,
        limit: int,
        offset: int,
        count: bool,
    ) -> QueryResult:
        """The selected entities in insertion order, paged; with the total when `count`."""
        with self.store.read(tenant) as txn:
            return _run_query(txn, selection, limit=limit, offset=offset, count=count)

    def type_counts(self, tenant: str | None) -> dict[str, int]:
        with self.store.read(tenant) as txn:
            return txn.type_counts()

    def attributes_by_type(
        self, tenant: str | None, types: Sequence[str] | None = None
    ) -> dict[str, set[str]]:
        with self.store.read(tenant) as txn:
            return txn.attribute_names_by_type(types)

    def attribute_counts(self, tenant: str | None) -> dict[str, int]:
        with self.store.read(tenant) as txn:
            return txn.attribute_counts()

    def attribute_details(
        self, tenant: str | None, name: str
    ) -> tuple[int, set[str], set[str]] | None:
        """(entities having it, their types, the attribute types it has), or None."""
        with self.store.read(tenant) as txn:
            count = 0
            types: set[str] = set()
            kinds: set[str] = set()
            for row in txn.scan():
                doc = row.doc
                if name not in doc:
                    continue
                count += 1
                types.update(entity_types(doc))
                value = doc[name]
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, dict) and isinstance(item.get("type"), str):
                        kinds.add(item["type"])
        return (count, types, kinds) if count else None


def _run_query(
    txn: ReadTransaction,
    selection: EntityFilter,
    *,
    limit: int,
    offset: int,
    count: bool,
) -> QueryResult:
    sql_types: list[str] | None = None
    exact_types = True
    if selection.types is not None:
        sql_types = sorted({t for group in selection.types for t in group})
        exact_types = all(len(group) == 1 for group in selection.types)
    needs_python = selection.predicate is not None or selection.attrs is not None or not exact_types
    scan_args: dict[str, Any] = {
        "types": sql_types,
        "ids": selection.ids,
        "id_regex": selection.id_pattern,
    }
    if not needs_python:
        total = txn.count(**scan_args) if count else None
        if limit == 0:
            return QueryResult(entities=[], count=total)
        rows = txn.scan(**scan_args, limit=limit, offset=offset)
        return QueryResult(entities=[row.doc for row in rows], count=total)

    matches = _filtered(txn.scan(**scan_args), selection)
    entities: list[dict[str, Any]] = []
    seen = 0
    for doc in matches:
        if seen >= offset and len(entities) < limit:
            entities.append(doc)
        seen += 1
        if not count and len(entities) >= limit:
            break
    return QueryResult(entities=entities, count=seen if count else None)


def _filtered(rows: Iterator[Any], selection: EntityFilter) -> Iterator[dict[str, Any]]:
    groups = selection.types
    attrs = selection.attrs
    predicate = selection.predicate
    for row in rows:
        doc = row.doc
        if groups is not None and not all(len(g) == 1 for g in groups):
            have = set(entity_types(doc))
            if not any(have.issuperset(group) for group in groups):
                continue
        if attrs is not None and not any(a in doc for a in attrs):
            continue
        if predicate is not None and not predicate(doc):
            continue
        yield doc


def attribute_names_of(doc: Mapping[str, Any]) -> list[str]:
    return attribute_names(doc)
