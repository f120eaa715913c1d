"""Turning a JSON Schema into a validator that is fast enough for a stream of entities.

Two things make the official Smart Data Models schemas slow under `jsonschema` as they are: every
`$ref` is looked up again for every entity, and the GeoJSON `location` is a `oneOf` of six
geometries, all six of which are tried for every entity. So a schema is compiled once:

1. **bundled**: every `$ref` is resolved through the `referencing.Registry` (local files only)
   and its target inlined; a `$ref` that leads back into a schema being inlined (recursion) is
   left in place, made absolute, and resolved by the registry at run time. Annotation keywords
   (`description`, `title`, ...) are dropped, because they cost time and never fail.
2. validated by a `Draft202012Validator` whose `oneOf` knows **discriminated unions**: when every
   branch requires one and the same member to be a different single constant (GeoJSON's
   `type`), only the branch named by the instance's member is checked. Validity is unchanged
   (the other branches cannot match), the errors are the chosen branch's, which also reads
   better ("coordinates is too short" rather than "not valid under any of the given schemas").

A compiled validator is immutable and safe to share between threads.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import referencing.exceptions
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

# `jsonschema` is imported on first use: importing it costs about a second (its `uri` format
# checker builds a grammar), which a command that never validates should not pay.

__all__ = ["UnresolvableReference", "bundle", "compile_validator"]

_ANNOTATIONS = frozenset(
    {
        "description",
        "title",
        "$comment",
        "examples",
        "$schemaVersion",
        "modelTags",
        "derivedFrom",
        "license",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_ONE = frozenset(
    {
        "items",
        "not",
        "if",
        "then",
        "else",
        "additionalProperties",
        "contains",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "additionalItems",
    }
)


class UnresolvableReference(LookupError):
    """A `$ref` points at a document the registry does not hold (`uri` is the absolute URL)."""

    def __init__(self, uri: str, detail: str) -> None:
        self.uri = uri
        super().__init__(f"cannot resolve $ref {uri}: {detail}")


def bundle(schema: Mapping[str, Any], registry: Registry[Any]) -> dict[str, Any]:
    """`schema` with every resolvable `$ref` replaced by its target and annotations dropped.

    Raises `UnresolvableReference` when a reference cannot be resolved from `registry`.
    """
    resource = Resource.from_contents(schema, default_specification=DRAFT202012)
    resolver = registry.resolver_with_root(resource)
    base = resource.id() or ""
    bundled = _Bundler().schema(schema, resolver, base)
    if not isinstance(bundled, dict):
        raise TypeError("a JSON Schema document must be an object")
    for keyword in ("$schema", "$id"):
        if keyword in schema:
            bundled[keyword] = schema[keyword]
    return bundled


class _Bundler:
    def __init__(self) -> None:
        self._expanding: list[str] = []

    def schema(self, node: Any, resolver: Any, base: str) -> Any:
        if not isinstance(node, dict):
            return node
        own_id = node.get("$id")
        if isinstance(own_id, str) and own_id != base:
            base = urljoin(base, own_id)
            sub = Resource.from_contents(node, default_specification=DRAFT202012)
            resolver = resolver.in_subresource(sub)
        out: dict[str, Any] = {}
        inlined: Any = None
        for key, value in node.items():
            if key in _ANNOTATIONS or key in ("$id", "$schema"):
                continue
            if key == "$ref" and isinstance(value, str):
                inlined = self.reference(value, resolver, base)
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: self.schema(sub, resolver, base) for name, sub in value.items()}
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [self.schema(sub, resolver, base) for sub in value]
            elif key in _SCHEMA_ONE:
                out[key] = self.schema(value, resolver, base)
            elif key == "dependentSchemas" and isinstance(value, dict):
                out[key] = {name: self.schema(sub, resolver, base) for name, sub in value.items()}
            else:
                out[key] = value
        if inlined is None:
            return out
        if not out:
            return inlined
        # A $ref beside other keywords applies in addition to them (2020-12), like an allOf.
        out.setdefault("allOf", [])
        out["allOf"] = [inlined, *out["allOf"]]
        return out

    def reference(self, ref: str, resolver: Any, base: str) -> Any:
        absolute = urljoin(base, ref) if base else ref
        if absolute in self._expanding:
            return {"$ref": absolute}
        try:
            resolved = resolver.lookup(ref)
        except referencing.exceptions.Unresolvable as exc:
            raise UnresolvableReference(absolute, str(exc) or type(exc).__name__) from None
        target_base = absolute.split("#", 1)[0]
        self._expanding.append(absolute)
        try:
            return self.schema(resolved.contents, resolved.resolver, target_base)
        finally:
            self._expanding.pop()


def _discriminator(branches: list[Any]) -> tuple[str, dict[str, int]] | None:
    """(member, {constant: branch index}) when `branches` form a discriminated union."""
    member: str | None = None
    table: dict[str, int] = {}
    for index, branch in enumerate(branches):
        if not isinstance(branch, dict):
            return None
        properties = branch.get("properties")
        required = branch.get("required")
        if not isinstance(properties, dict) or not isinstance(required, list):
            return None
        candidates = [
            name
            for name in required
            if isinstance(properties.get(name), dict) and _constant(properties[name]) is not None
        ]
        if member is None:
            if not candidates:
                return None
            member = candidates[0]
        elif member not in candidates:
            return None
        constant = _constant(properties[member])
        if constant is None or constant in table:
            return None
        table[constant] = index
    return (member, table) if member is not None else None


def _constant(schema: Mapping[str, Any]) -> str | None:
    if isinstance(schema.get("const"), str):
        return str(schema["const"])
    enum = schema.get("enum")
    if isinstance(enum, list) and len(enum) == 1 and isinstance(enum[0], str):
        return enum[0]
    return None


_DISCRIMINATORS: dict[int, tuple[list[Any], tuple[str, dict[str, int]] | None]] = {}


def _one_of(
    validator: Any, one_of: list[Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    cached = _DISCRIMINATORS.get(id(one_of))
    if cached is None or cached[0] is not one_of:
        cached = (one_of, _discriminator(one_of))
        _DISCRIMINATORS[id(one_of)] = cached
    union = cached[1]
    if union is not None and isinstance(instance, dict):
        member, table = union
        tag = instance.get(member)
        index = table.get(tag) if isinstance(tag, str) else None
        if index is not None:
            yield from validator.descend(instance, one_of[index], schema_path=index)
            return
    yield from _validator_class()[1](validator, one_of, instance, schema)


@functools.cache
def _validator_class() -> tuple[Any, Any]:
    """The draft 2020-12 validator class with the discriminated `oneOf`, and the standard
    `oneOf` it falls back to."""
    from jsonschema import Draft202012Validator, validators

    standard = Draft202012Validator.VALIDATORS["oneOf"]
    fast = validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, {"oneOf": _one_of}
    )
    return fast, standard


def compile_validator(schema: Mapping[str, Any], registry: Registry[Any]) -> Validator:
    """A draft 2020-12 validator for `schema`, bundled against `registry`, with format checks.

    Formats (`date-time`, `uri`, `email`, `ipv4`, ...) are checked with the draft's format
    checker. Raises `UnresolvableReference` when a `$ref` has no local document.
    """
    from jsonschema import Draft202012Validator

    bundled = bundle(schema, registry)
    validator: Validator = _validator_class()[0](
        bundled,
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    return validator
