"""The JSON Schemas this project owns, shipped as package data in `schemas/json/`.

A schema is known by its name, the file name without `.schema.json`: `AirQualityObserved` (the
entity schemas generated from `models`), and the documents other parts of the project define
(device profiles, agent configuration, subscription files) as they add their files. Every schema
is draft 2020-12 with `$id` `urn:drehscheibe:schemas:<name>`; schemas may `$ref` each other by
that id. Validators are compiled once and reused.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
import referencing.exceptions
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from schemas._compile import UnresolvableReference, compile_validator
from schemas._errors import SchemaError, SchemaNotFound, Violation
from schemas._sdm import violations_from_errors

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = [
    "OWN_SCHEMA_DIR",
    "OWN_SCHEMA_ID_PREFIX",
    "document_validator",
    "load_schema",
    "schema_names",
    "schema_path",
    "validate_document",
]

OWN_SCHEMA_DIR: Final = Path(__file__).resolve().parent / "json"
OWN_SCHEMA_ID_PREFIX: Final = "urn:drehscheibe:schemas:"
_SUFFIX: Final = ".schema.json"
_lock = threading.Lock()


def schema_names() -> list[str]:
    """The names of the project's own schemas, sorted."""
    return sorted(path.name[: -len(_SUFFIX)] for path in OWN_SCHEMA_DIR.glob(f"*{_SUFFIX}"))


def schema_path(name: str) -> Path:
    """Where the schema `name` is (it may not exist yet: see `load_schema`)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise SchemaNotFound(name, searched=OWN_SCHEMA_DIR, hint="not a schema name")
    return OWN_SCHEMA_DIR / f"{name}{_SUFFIX}"


@functools.lru_cache(maxsize=128)
def _load(name: str) -> dict[str, Any]:
    path = schema_path(name)
    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise SchemaNotFound(
            name, searched=OWN_SCHEMA_DIR, hint=f"known: {', '.join(schema_names())}"
        ) from None
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"schema file {path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SchemaError(f"schema file {path} does not hold a JSON object")
    return document


def load_schema(name: str) -> dict[str, Any]:
    """The schema `name` as a dict (a fresh copy); `SchemaNotFound` when there is none."""
    return orjson.loads(orjson.dumps(_load(name)))  # type: ignore[no-any-return]


def _retrieve(uri: str) -> Resource[Any]:
    if not uri.startswith(OWN_SCHEMA_ID_PREFIX):
        raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]
    try:
        contents = _load(uri[len(OWN_SCHEMA_ID_PREFIX) :])
    except SchemaError:
        raise referencing.exceptions.NoSuchResource(ref=uri) from None  # type: ignore[call-arg]
    return Resource.from_contents(contents, default_specification=DRAFT202012)


# attrs field aliases are invisible to the type checker
_REGISTRY: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
_VALIDATORS: dict[str, Validator] = {}


def document_validator(name: str) -> Validator:
    """The compiled validator of schema `name` (compiled once, then reused)."""
    found = _VALIDATORS.get(name)
    if found is not None:
        return found
    try:
        compiled = compile_validator(_load(name), _REGISTRY)
    except UnresolvableReference as exc:
        raise SchemaNotFound(
            name, searched=OWN_SCHEMA_DIR, hint=f"its $ref {exc.uri} is missing"
        ) from None
    with _lock:
        return _VALIDATORS.setdefault(name, compiled)


def validate_document(name: str, data: Any) -> list[Violation]:
    """Every rule of the project's schema `name` that `data` breaks (empty when valid).

    Violations name the path inside `data` (`sources/0/port`), the keyword and the message;
    `entity_id` is set when `data` is an object with a string `id`.
    """
    validator = document_validator(name)
    document_id = data.get("id") if isinstance(data, dict) else None
    document_type = data.get("type") if isinstance(data, dict) else None
    return violations_from_errors(
        validator.iter_errors(data),
        entity_id=document_id if isinstance(document_id, str) else None,
        entity_type=document_type if isinstance(document_type, str) else None,
    )
