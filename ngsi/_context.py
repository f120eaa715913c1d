"""JSON-LD @context for NGSI-LD: resolved active contexts, term expansion and compaction.

A `Context` is the active context that results from layering the request's context entries (URLs
and inline objects) on top of the NGSI-LD core context. It is immutable and hashable, memoises
every expansion and compaction it computes, and is shared: a `ContextStore` hands out the same
object for the same entries, so the caches stay warm across requests.

Rules, in the words of JSON-LD 1.1 where it applies:

- The core context comes first and is protected: a user context may repeat a core term with the
  same definition (Smart Data Models contexts repeat `id`, `type`, `location`, ...); a different
  definition of a core term is ignored, the core one stays.
- Later entries override earlier ones; within one object, `@vocab` applies before the terms, terms
  may use prefixes defined in the same object in any order, and a definition whose `@id` is the
  term itself (or missing) expands against `@vocab`.
- A user `@vocab` replaces the default vocabulary for terms that nothing defines; `"@vocab": null`
  restores `DEFAULT_VOCAB`. A `null` entry resets to the core context alone.
- `@import` is honoured; scoped contexts (`@context` inside a term definition), `@reverse` terms,
  `@base`, `@language` and `@direction` are ignored, as NGSI-LD does not use them. A term mapped
  to `null` is treated as not defined.

`expand_entity` / `compact_entity` rewrite an entity's type and attribute names between terms and
IRIs without any per-call validation: plain dicts in, plain dicts out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from urllib.parse import urljoin, urlsplit

import orjson

from ngsi._core_context import CORE_CONTEXT_URL, CORE_CONTEXT_URLS, CORE_TERMS, DEFAULT_VOCAB
from ngsi._errors import BadRequestData, LdContextNotAvailable

if TYPE_CHECKING:
    from ngsi._context_store import ContextStore

__all__ = [
    "ATTRIBUTE_MEMBERS",
    "ATTRIBUTE_TYPES",
    "ENTITY_MEMBERS",
    "Context",
    "ContextEntry",
    "ContextSpec",
    "TermDefinition",
    "compact_entity",
    "compact_names",
    "expand_entity",
    "expand_names",
]

ContextEntry = str | Mapping[str, Any] | None
"""One item of an `@context`: a URL, an inline context object, or `null` (reset to the core)."""

ContextSpec = ContextEntry | Sequence[ContextEntry]
"""What an `@context` member or a Link header may carry: one entry or a list of entries."""

DocumentLoader = Callable[[str], Mapping[str, Any]]
"""Returns the JSON-LD document (an object with an `@context` member) found at a URL."""

ENTITY_MEMBERS: Final = frozenset(
    {"id", "@id", "type", "@type", "scope", "createdAt", "modifiedAt", "deletedAt", "@context"}
)
"""Entity members that are not attributes: never renamed (`type`'s value is expanded as a type).
Every other member of an entity is an attribute whose name is expanded, including the core
`location`, `observationSpace` and `operationSpace`, which expand to their core IRIs."""

ATTRIBUTE_MEMBERS: Final = frozenset(
    {
        "type",
        "value",
        "object",
        "objects",
        "objectList",
        "objectType",
        "observedAt",
        "unitCode",
        "datasetId",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "instanceId",
        "languageMap",
        "lang",
        "json",
        "vocab",
        "valueList",
        "entity",
        "entityList",
        "previousValue",
        "previousObject",
        "previousObjectList",
        "previousLanguageMap",
        "previousJson",
        "previousVocab",
        "previousValueList",
        "@context",
    }
)
"""Members of an attribute that the core context defines; every other member is a sub-attribute."""

ATTRIBUTE_TYPES: Final = frozenset(
    {
        "Property",
        "Relationship",
        "GeoProperty",
        "LanguageProperty",
        "JsonProperty",
        "VocabProperty",
        "ListProperty",
        "ListRelationship",
    }
)
"""Values of an attribute's `type` member."""

# Members whose presence (without a `type`) makes an object a concise attribute.
_VALUE_MEMBERS: Final = frozenset(
    {"value", "object", "objectList", "languageMap", "json", "vocab", "valueList"}
)
# Attribute members typed `@vocab` by the core context: their values are terms / IRIs.
_VOCAB_MEMBERS: Final = frozenset({"vocab", "previousVocab", "objectType"})

_GEN_DELIMS: Final = frozenset(":/?#[]@")
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_CACHE_LIMIT: Final = 20_000
_MISSING: Final = object()


class TermDefinition(NamedTuple):
    """One resolved term: its absolute IRI (or keyword), `@type` mapping and `@container`."""

    iri: str
    type: str | None = None
    container: tuple[str, ...] = ()
    prefix: bool = False


def _is_prefix_candidate(term: str, iri: str) -> bool:
    return (
        ":" not in term
        and "/" not in term
        and not iri.startswith("@")
        and (iri[-1:] in _GEN_DELIMS or iri.startswith("_:"))
    )


def _core_definitions() -> dict[str, TermDefinition]:
    defs: dict[str, TermDefinition] = {}
    for term, value in CORE_TERMS.items():
        if isinstance(value, str):
            defs[term] = TermDefinition(value, prefix=_is_prefix_candidate(term, value))
        else:
            container = value.get("@container")
            defs[term] = TermDefinition(
                value["@id"],
                value.get("@type"),
                (container,) if container else (),
            )
    return defs


_CORE_DEFS: Final = _core_definitions()


class _Builder:
    """Context processing: folds entries into term definitions, starting from the core."""

    def __init__(self, loader: DocumentLoader, max_depth: int) -> None:
        self.defs: dict[str, TermDefinition] = dict(_CORE_DEFS)
        self.vocab = DEFAULT_VOCAB
        self.urls: set[str] = set()
        self._loader = loader
        self._max_depth = max_depth
        self._stack: list[str] = []

    def process(self, spec: Any) -> None:
        if isinstance(spec, list | tuple):
            for item in spec:
                self._process_one(item)
        else:
            self._process_one(spec)

    def _process_one(self, item: Any) -> None:
        if item is None:
            self.defs = dict(_CORE_DEFS)
            self.vocab = DEFAULT_VOCAB
        elif isinstance(item, str):
            self._process_url(item)
        elif isinstance(item, Mapping):
            self._process_local(item)
        else:
            raise BadRequestData(
                f"@context: an entry must be a URL, an object or null, not {type(item).__name__}"
                f"{self._where()}"
            )

    def _where(self) -> str:
        return f" (in {self._stack[-1]})" if self._stack else ""

    def _absolute(self, url: str) -> str:
        if self._stack:
            url = urljoin(self._stack[-1], url)
        if not urlsplit(url).scheme:
            raise BadRequestData(f"@context: {url!r} is not an absolute URL{self._where()}")
        return url

    def _load(self, url: str) -> Any:
        if url in self._stack:
            chain = " → ".join([*self._stack, url])
            raise LdContextNotAvailable(f"@context {url} includes itself: {chain}")
        if len(self._stack) >= self._max_depth:
            chain = " → ".join([*self._stack, url])
            raise LdContextNotAvailable(
                f"@context {url}: more than {self._max_depth} nested remote contexts ({chain})"
            )
        document = self._loader(url)
        self.urls.add(url)
        return document["@context"]

    def _process_url(self, url: str) -> None:
        url = self._absolute(url)
        if url in CORE_CONTEXT_URLS:
            return
        spec = self._load(url)
        self._stack.append(url)
        try:
            self.process(spec)
        finally:
            self._stack.pop()

    def _process_local(self, local: Mapping[str, Any]) -> None:
        if "@import" in local:
            local = self._with_import(local)
        if "@vocab" in local:
            self.vocab = self._vocab_mapping(local["@vocab"], local)
        defined: dict[str, bool] = {}
        for term in local:
            if not term.startswith("@"):
                self._define(term, local, defined)

    def _with_import(self, local: Mapping[str, Any]) -> Mapping[str, Any]:
        target = local["@import"]
        if not isinstance(target, str):
            raise BadRequestData(f"@context: @import must be a URL, not {target!r}{self._where()}")
        url = self._absolute(target)
        imported = {} if url in CORE_CONTEXT_URLS else self._load(url)
        if not isinstance(imported, Mapping) or "@import" in imported:
            raise BadRequestData(
                f"@context: @import {url} must hold one context object without @import"
            )
        merged = dict(imported)
        merged.update((k, v) for k, v in local.items() if k != "@import")
        return merged

    def _vocab_mapping(self, value: Any, local: Mapping[str, Any]) -> str:
        if value is None:
            return DEFAULT_VOCAB
        if isinstance(value, str) and ":" in value:
            return self._expand_iri(value, local, {}, skip_term=True)
        raise BadRequestData(
            f"@context: @vocab must be an absolute IRI, a compact IRI or null, not {value!r}"
            f"{self._where()}"
        )

    def _define(self, term: str, local: Mapping[str, Any], defined: dict[str, bool]) -> None:
        state = defined.get(term)
        if state:
            return
        if state is False:
            raise BadRequestData(
                f"@context: term {term!r} is defined through itself (cyclic IRI mapping)"
                f"{self._where()}"
            )
        defined[term] = False
        definition = self._create(term, local[term], local, defined)
        defined[term] = True
        core = _CORE_DEFS.get(term)
        if core is not None and definition != core:
            return
        if definition is None:
            self.defs.pop(term, None)
        else:
            self.defs[term] = definition

    def _create(
        self, term: str, value: Any, local: Mapping[str, Any], defined: dict[str, bool]
    ) -> TermDefinition | None:
        if value is None:
            return None
        type_value: Any = None
        container: Any = None
        prefix_option: Any = None
        if isinstance(value, str):
            id_value: Any = value
            simple = True
        elif isinstance(value, Mapping):
            if "@reverse" in value:
                return None
            id_value = value.get("@id", _MISSING)
            if id_value is None:
                return None
            type_value = value.get("@type")
            container = value.get("@container")
            prefix_option = value.get("@prefix")
            simple = False
        else:
            raise BadRequestData(
                f"@context: the definition of term {term!r} must be a string, an object or null,"
                f" not {type(value).__name__}{self._where()}"
            )

        if id_value is not _MISSING and id_value != term:
            if not isinstance(id_value, str):
                raise BadRequestData(
                    f"@context: @id of term {term!r} must be a string{self._where()}"
                )
            iri = self._expand_iri(id_value, local, defined)
        elif ":" in term[1:] or "/" in term:
            iri = self._expand_iri(term, local, defined, skip_term=True)
        else:
            iri = self.vocab + term

        term_type: str | None = None
        if type_value is not None:
            if not isinstance(type_value, str):
                raise BadRequestData(
                    f"@context: @type of term {term!r} must be a string{self._where()}"
                )
            term_type = self._expand_iri(type_value, local, defined)

        containers: tuple[str, ...] = ()
        if container is not None:
            items = [container] if isinstance(container, str) else container
            if not isinstance(items, list) or not all(isinstance(c, str) for c in items):
                raise BadRequestData(
                    f"@context: @container of term {term!r} must be a keyword or a list of"
                    f" keywords{self._where()}"
                )
            containers = tuple(sorted(items))

        if isinstance(prefix_option, bool):
            prefix = prefix_option
        else:
            prefix = simple and _is_prefix_candidate(term, iri)
        return TermDefinition(iri, term_type, containers, prefix)

    def _expand_iri(
        self,
        value: str,
        local: Mapping[str, Any],
        defined: dict[str, bool],
        *,
        skip_term: bool = False,
    ) -> str:
        if value.startswith("@"):
            return value
        if not skip_term:
            if value in local and not defined.get(value):
                self._define(value, local, defined)
            definition = self.defs.get(value)
            if definition is not None:
                return definition.iri
        colon = value.find(":")
        if colon > 0:
            prefix, suffix = value[:colon], value[colon + 1 :]
            if prefix == "_" or suffix.startswith("//"):
                return value
            if prefix in local and not defined.get(prefix):
                self._define(prefix, local, defined)
            prefix_definition = self.defs.get(prefix)
            if prefix_definition is not None and prefix_definition.prefix:
                return prefix_definition.iri + suffix
            if _SCHEME.fullmatch(prefix):
                return value
        return self.vocab + value


def _normalize_entries(spec: Any) -> tuple[ContextEntry, ...]:
    if spec is None:
        return ()
    if isinstance(spec, str | Mapping):
        return (spec,)
    if isinstance(spec, list | tuple):
        for item in spec:
            if item is not None and not isinstance(item, str | Mapping):
                raise BadRequestData(
                    "@context: an entry must be a URL, an object or null, not"
                    f" {type(item).__name__}"
                )
        return tuple(spec)
    raise BadRequestData(
        f"@context must be a URL, an object or a list of them, not {type(spec).__name__}"
    )


def _entry_key(entry: ContextEntry) -> str:
    if entry is None:
        return "null"
    if isinstance(entry, str):
        return entry
    try:
        return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as exc:
        raise BadRequestData(f"@context: an inline context is not plain JSON: {exc}") from None


def _entries_key(entries: tuple[ContextEntry, ...]) -> tuple[str, ...]:
    return tuple(_entry_key(entry) for entry in entries)


def _build_context(
    entries: tuple[ContextEntry, ...],
    key: tuple[str, ...],
    *,
    loader: DocumentLoader,
    max_depth: int,
) -> Context:
    builder = _Builder(loader, max_depth)
    builder.process(list(entries))
    return Context._create(
        entries=entries,
        key=key,
        defs=builder.defs,
        vocab=builder.vocab,
        urls=frozenset(builder.urls),
    )


class Context:
    """A resolved active context: the core context plus the request's entries, immutable.

    Get one from `ContextStore.resolve(entries)` (which returns the same object for the same
    entries), `Context.core()` or `Context.from_entries(...)`. Two contexts built from the same
    entries are equal and hash alike. Every method is safe to call from several threads; results
    are memoised per context (bounded caches).
    """

    __slots__ = (
        "__weakref__",
        "_compact_cache",
        "_defs",
        "_entries",
        "_expand_cache",
        "_hash",
        "_inverse",
        "_key",
        "_prefixes",
        "_urls",
        "_vocab",
    )

    _compact_cache: dict[str, str]
    _defs: dict[str, TermDefinition]
    _entries: tuple[ContextEntry, ...]
    _expand_cache: dict[str, str]
    _hash: int
    _inverse: dict[str, str]
    _key: tuple[str, ...]
    _prefixes: tuple[tuple[str, str], ...]
    _urls: frozenset[str]
    _vocab: str

    def __init__(self) -> None:
        raise TypeError(
            "Context is built by ContextStore.resolve(), Context.core() or Context.from_entries()"
        )

    @classmethod
    def _create(
        cls,
        *,
        entries: tuple[ContextEntry, ...],
        key: tuple[str, ...],
        defs: dict[str, TermDefinition],
        vocab: str,
        urls: frozenset[str],
    ) -> Context:
        self = object.__new__(cls)
        inverse: dict[str, str] = {}
        for term, definition in defs.items():
            iri = definition.iri
            if iri.startswith("@"):
                continue
            best = inverse.get(iri)
            if best is None or (len(term), term) < (len(best), best):
                inverse[iri] = term
        prefixes = tuple(sorted((d.iri, t) for t, d in defs.items() if d.prefix))
        put = object.__setattr__
        put(self, "_entries", entries)
        put(self, "_key", key)
        put(self, "_hash", hash(key))
        put(self, "_defs", defs)
        put(self, "_vocab", vocab)
        put(self, "_urls", urls)
        put(self, "_inverse", inverse)
        put(self, "_prefixes", prefixes)
        put(self, "_expand_cache", {})
        put(self, "_compact_cache", {})
        return self

    @classmethod
    def core(cls) -> Context:
        """The core context alone (what a request without any context gets)."""
        return _CORE_CONTEXT

    @classmethod
    def from_entries(cls, entries: ContextSpec, *, store: ContextStore | None = None) -> Context:
        """Resolve `entries` with `store`, or with a shared offline store (core URLs and inline
        objects only; any other URL raises `LdContextNotAvailable`)."""
        if store is None:
            from ngsi._context_store import default_store  # here: the store module imports this one

            store = default_store()
        return store.resolve(entries)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Context is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Context is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Context):
            return NotImplemented
        return self is other or self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        shown = [e if isinstance(e, str) or e is None else "{...}" for e in self._entries]
        return f"Context({shown!r})"

    # Properties

    @property
    def entries(self) -> tuple[ContextEntry, ...]:
        """The entries this context was built from, as given (the core context not added)."""
        return self._entries

    @property
    def urls(self) -> frozenset[str]:
        """Every remote context URL it depends on, nested ones included (core URLs excluded)."""
        return self._urls

    @property
    def vocab(self) -> str:
        """Where undefined terms expand to: `DEFAULT_VOCAB` unless a user `@vocab` says so."""
        return self._vocab

    @property
    def url(self) -> str | None:
        """The one URL that names this context, for a Link header: the single non-core URL entry
        (core URLs next to it add nothing), the core URL given alone, `CORE_CONTEXT_URL` when
        there are no entries, or None when inline objects or several URLs are involved."""
        entries = self._entries
        if not entries:
            return CORE_CONTEXT_URL
        rest = [e for e in entries if not (isinstance(e, str) and e in CORE_CONTEXT_URLS)]
        if not rest:
            first = entries[0]
            return first if len(entries) == 1 and isinstance(first, str) else CORE_CONTEXT_URL
        if len(rest) == 1 and isinstance(rest[0], str):
            return rest[0]
        return None

    def to_jsonld(self) -> Any:
        """The value for an `@context` member in a response body: the entries as given, a single
        entry unwrapped, `CORE_CONTEXT_URL` when there are none."""
        if not self._entries:
            return CORE_CONTEXT_URL
        if len(self._entries) == 1:
            return self._entries[0]
        return list(self._entries)

    # Terms

    def definition(self, term: str) -> TermDefinition | None:
        """The definition of `term` in this context (core terms included), or None."""
        return self._defs.get(term)

    def defines(self, term: str) -> bool:
        """Whether `term` has a definition (it does not expand through `@vocab`)."""
        return term in self._defs

    def expand_term(self, term: str) -> str:
        """The absolute IRI of an attribute name, entity type or other vocabulary term.

        Order: a defined term → its IRI; `prefix:suffix` with a defined prefix → the prefix IRI
        plus suffix; an absolute IRI (`https://…`, `urn:…`) or blank node → unchanged; anything
        else → `@vocab` + term. Keywords (`@id`) are returned as they are.
        """
        iri = self._expand_cache.get(term)
        if iri is None:
            iri = self._expand(term)
            cache = self._expand_cache
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[term] = iri
        return iri

    def expand_type(self, type_name: str) -> str:
        """The absolute IRI of an entity type (types expand like terms)."""
        return self.expand_term(type_name)

    def compact_iri(self, iri: str) -> str:
        """The shortest name that expands back to `iri` in this context.

        Order: a term whose IRI is exactly `iri` (user or core; among several, the shortest, then
        the lexicographically smallest); the part after `@vocab` when that part is not a term
        defined otherwise; a compact IRI `prefix:suffix` (same tie-break); else `iri` unchanged.
        `expand_term(compact_iri(x)) == x` holds for every absolute IRI `x`.
        """
        term = self._compact_cache.get(iri)
        if term is None:
            term = self._compact(iri)
            cache = self._compact_cache
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[iri] = term
        return term

    def compact_type(self, iri: str) -> str:
        """The short name of an entity type IRI (types compact like terms)."""
        return self.compact_iri(iri)

    def term_type(self, name: str) -> str | None:
        """The `@type` mapping of a term (or of the term an IRI compacts to): `@id`, `@vocab`,
        `@json`, a datatype IRI, or None."""
        definition = self._defs.get(name)
        if definition is None:
            term = self._inverse.get(name)
            definition = self._defs.get(term) if term is not None else None
        return definition.type if definition is not None else None

    def is_id_typed(self, name: str) -> bool:
        """Whether the values of `name` are IRIs (`"@type": "@id"`): `object`, `datasetId`..."""
        return self.term_type(name) == "@id"

    def is_vocab_typed(self, name: str) -> bool:
        """Whether the values of `name` are vocabulary terms (`"@type": "@vocab"`), like `vocab`,
        `objectType` or `watchedAttributes`: such values expand and compact like names."""
        return self.term_type(name) == "@vocab"

    def _expand(self, term: str) -> str:
        if not term or term[0] == "@":
            return term
        definition = self._defs.get(term)
        if definition is not None:
            return definition.iri
        colon = term.find(":")
        if colon > 0:
            prefix, suffix = term[:colon], term[colon + 1 :]
            if prefix == "_" or suffix.startswith("//"):
                return term
            prefix_definition = self._defs.get(prefix)
            if prefix_definition is not None and prefix_definition.prefix:
                return prefix_definition.iri + suffix
            if _SCHEME.fullmatch(prefix):
                return term
        return self._vocab + term

    def _compact(self, iri: str) -> str:
        if not iri or iri[0] == "@":
            return iri
        term = self._inverse.get(iri)
        if term is not None:
            return term
        defs = self._defs
        vocab = self._vocab
        if len(iri) > len(vocab) and iri.startswith(vocab):
            suffix = iri[len(vocab) :]
            if suffix not in defs and self._expand(suffix) == iri:
                return suffix
        best: str | None = None
        for prefix_iri, prefix_term in self._prefixes:
            if len(iri) > len(prefix_iri) and iri.startswith(prefix_iri):
                candidate = f"{prefix_term}:{iri[len(prefix_iri) :]}"
                if (
                    (best is None or (len(candidate), candidate) < (len(best), best))
                    and candidate not in defs
                    and self._expand(candidate) == iri
                ):
                    best = candidate
        return iri if best is None else best


_CORE_CONTEXT: Final = Context._create(
    entries=(), key=(), defs=dict(_CORE_DEFS), vocab=DEFAULT_VOCAB, urls=frozenset()
)


# Entities


def _map_names(value: Any, rename: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return rename(value)
    if isinstance(value, list):
        return [rename(item) if isinstance(item, str) else item for item in value]
    return value


def _is_attribute(value: Mapping[str, Any]) -> bool:
    kind = value.get("type")
    if kind is not None:
        return isinstance(kind, str) and kind in ATTRIBUTE_TYPES
    return not _VALUE_MEMBERS.isdisjoint(value)


def _rewrite_attribute(
    value: Any, rename: Callable[[str], str], revocab: Callable[[str], str]
) -> Any:
    if isinstance(value, Mapping):
        if _is_attribute(value):
            return _rewrite_attribute_object(value, rename, revocab)
        return value
    if isinstance(value, list):
        return [
            _rewrite_attribute_object(item, rename, revocab)
            if isinstance(item, Mapping) and _is_attribute(item)
            else item
            for item in value
        ]
    return value


def _rewrite_attribute_object(
    attribute: Mapping[str, Any], rename: Callable[[str], str], revocab: Callable[[str], str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attribute.items():
        if key in ATTRIBUTE_MEMBERS:
            out[key] = _map_names(value, revocab) if key in _VOCAB_MEMBERS else value
        else:
            out[rename(key)] = _rewrite_attribute(value, rename, revocab)
    return out


def _rewrite_entity(
    entity: Mapping[str, Any],
    rename: Callable[[str], str],
    retype: Callable[[str], str],
    *,
    key_values: bool,
    direction: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in entity.items():
        if key in ENTITY_MEMBERS:
            if key == "type" or key == "@type":
                out[key] = _map_names(value, retype)
            elif key != "@context":
                out[key] = value
            continue
        name = rename(key)
        if name in out:
            first = next(
                (k for k in entity if k != key and k not in ENTITY_MEMBERS and rename(k) == name),
                name,
            )
            raise BadRequestData(
                f"entity {entity.get('id')!r}: attributes {first!r} and {key!r} both {direction}"
                f" to {name!r}; send them as one attribute (a list for several datasetIds)"
            )
        out[name] = value if key_values else _rewrite_attribute(value, rename, retype)
    return out


def expand_entity(
    entity: Mapping[str, Any], context: Context, *, key_values: bool = False
) -> dict[str, Any]:
    """The entity with its type(s), attribute and sub-attribute names expanded to IRIs.

    Works on normalized, concise and keyValues entities alike: `id`, `scope`, `createdAt`,
    `modifiedAt`, `deletedAt` and the core members of attributes (`value`, `object`,
    `observedAt`, `unitCode`, `datasetId`, `languageMap`, ...) are kept as they are; the values of
    `vocab` and `objectType` (typed `@vocab` by the core context) are expanded like names. An
    object is taken for an attribute when its `type` is an attribute type (`Property`, ...) or,
    without `type`, when it has a value member (`value`, `object`, `languageMap`, ...); other
    values (GeoJSON geometries, structured keyValues values) are left alone, not copied. With
    `key_values=True`, no value is looked into. An `@context` member is dropped (it is consumed
    by `context_from_request`). Two names expanding to the same IRI raise `BadRequestData`.
    """
    expand = context.expand_term
    return _rewrite_entity(entity, expand, expand, key_values=key_values, direction="expand")


def compact_entity(
    entity: Mapping[str, Any], context: Context, *, key_values: bool = False
) -> dict[str, Any]:
    """The inverse of `expand_entity`: type(s), attribute names and `@vocab` values compacted
    with `context` (`Context.compact_iri`). No `@context` member is added."""
    compact = context.compact_iri
    return _rewrite_entity(entity, compact, compact, key_values=key_values, direction="compact")


def expand_names(names: Iterable[str], context: Context) -> list[str]:
    """Expanded IRIs of attribute or type names (`attrs=`, `watchedAttributes`), in order."""
    expand = context.expand_term
    return [expand(name) for name in names]


def compact_names(iris: Iterable[str], context: Context) -> list[str]:
    """Short names of attribute or type IRIs, in order."""
    compact = context.compact_iri
    return [compact(iri) for iri in iris]
