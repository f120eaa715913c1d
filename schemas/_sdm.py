"""Validation against the official FIWARE Smart Data Models JSON Schemas, fully offline.

The schemas live in a local directory laid out like the upstream repositories::

    <root>/common-schema.json                                   (data-models)
    <root>/dataModel.Environment/Environment-schema.json        (a subject's shared definitions)
    <root>/dataModel.Environment/context.jsonld                 (the subject's @context)
    <root>/dataModel.Environment/AirQualityObserved/schema.json (one entity type)

`drehscheibe models pull` fills such a directory when the machine is online; an air-gapped site
copies one in. Which directory: the `root` given, else the environment variable
`DREHSCHEIBE_SDM_SCHEMAS`, else `$XDG_DATA_HOME/drehscheibe/sdm` (`~/.local/share/...`).

The official schemas `$ref` each other by remote URL, and by more than one URL for the same file
(`https://smart-data-models.github.io/<repo>/<path>` and
`https://raw.githubusercontent.com/smart-data-models/<repo>/master/<path>`). Every local file is
registered in a `referencing.Registry` under each of those URLs and under its own `$id`; any
other spelling of such a URL (another branch) is mapped to the same local file. Nothing is ever
fetched: a reference without a local file raises `SchemaNotFound`.

The schemas describe the key-values form. A normalized NGSI-LD entity is reduced to key-values
first (`key_values`): an attribute's `value`/`object`/... becomes the bare value, a JSON-LD typed
value `{"@type": "DateTime", "@value": "..."}` its `@value`, and each instance of a
multi-attribute is checked. Violations therefore name key-values paths (`location/coordinates`).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson
import referencing.exceptions
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from schemas._compile import UnresolvableReference, compile_validator
from schemas._errors import EntityInvalid, SchemaError, SchemaNotFound, Violation

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

__all__ = [
    "COMMON_REPOSITORY",
    "ENV_SDM_SCHEMAS",
    "GITHUB_PAGES",
    "RAW_GITHUB",
    "EntityRepresentation",
    "SdmSchemas",
    "default_sdm_dir",
    "key_values",
    "local_path_for_url",
    "sdm_schemas",
    "urls_for_local_path",
    "violations_from_errors",
]

ENV_SDM_SCHEMAS: Final = "DREHSCHEIBE_SDM_SCHEMAS"
GITHUB_PAGES: Final = "https://smart-data-models.github.io/"
RAW_GITHUB: Final = "https://raw.githubusercontent.com/smart-data-models/"
COMMON_REPOSITORY: Final = "data-models"
"""The upstream repository of `common-schema.json`; its files sit at the root of the directory."""

EntityRepresentation = Literal["auto", "normalized", "concise", "keyValues"]

_VALUE_MEMBERS: Final = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "JsonProperty": "json",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}
_CONCISE_MEMBERS: Final = ("value", "object", "languageMap", "json", "vocab", "valueList")
_ENTITY_MEMBERS: Final = frozenset({"id", "type", "scope", "createdAt", "modifiedAt", "deletedAt"})
_MESSAGE_LIMIT = 400


def default_sdm_dir() -> Path:
    """Where the official schemas are: `$DREHSCHEIBE_SDM_SCHEMAS`, else the user data folder."""
    configured = os.environ.get(ENV_SDM_SCHEMAS)
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "drehscheibe" / "sdm"


def urls_for_local_path(relative: str) -> list[str]:
    """The upstream URLs of a file at `relative` (POSIX path) inside a schema directory."""
    first, _, rest = relative.partition("/")
    repository, path = (first, rest) if rest and first.startswith("dataModel.") else ("", relative)
    repository = repository or COMMON_REPOSITORY
    return [f"{GITHUB_PAGES}{repository}/{path}", f"{RAW_GITHUB}{repository}/master/{path}"]


def local_path_for_url(url: str) -> str | None:
    """The relative path inside a schema directory that holds the document at `url`, if `url`
    is a Smart Data Models URL (GitHub Pages or raw GitHub, any branch); fragment ignored."""
    address = url.split("#", 1)[0]
    if address.startswith(GITHUB_PAGES):
        repository, _, path = address[len(GITHUB_PAGES) :].partition("/")
    elif address.startswith(RAW_GITHUB):
        repository, _, rest = address[len(RAW_GITHUB) :].partition("/")
        _branch, _, path = rest.partition("/")
    else:
        return None
    if not repository or not path or ".." in path.split("/"):
        return None
    if repository == COMMON_REPOSITORY:
        return path
    return f"{repository}/{path}"


def key_values(
    entity: Mapping[str, Any], *, representation: EntityRepresentation = "auto"
) -> dict[str, Any]:
    """The key-values form of an NGSI-LD entity, as the official schemas describe it.

    `auto` reduces every attribute whose `type` is an NGSI-LD attribute type (normalized) and
    leaves other values alone (key-values); `concise` also reduces objects holding `value`,
    `object`, ...; `keyValues` only unwraps JSON-LD typed values. `@context` is dropped. For a
    multi-attribute (several instances), the default instance (no `datasetId`) is kept, else the
    first; `violations` checks every instance.
    """
    concise = representation == "concise"
    reduce = representation != "keyValues"
    out: dict[str, Any] = {}
    for name, raw in entity.items():
        if name in _ENTITY_MEMBERS:
            out[name] = raw
        elif name != "@context":
            values = _instances(raw, concise) if reduce else None
            if values is None:
                out[name] = _bare(raw, reduce=reduce, concise=concise)
            else:
                out[name] = values[0]
    return out


def _instances(raw: Any, concise: bool) -> list[Any] | None:
    """The values of a multi-attribute, default instance first; None for anything else."""
    if not isinstance(raw, list) or not raw:
        return None
    if not all(_is_attribute(item, concise) for item in raw):
        return None
    ordered = sorted(raw, key=lambda item: "datasetId" in item)
    return [_bare(item, reduce=True, concise=concise) for item in ordered]


def _is_attribute(raw: Any, concise: bool) -> bool:
    if type(raw) is not dict:
        return False
    kind = raw.get("type")
    if kind.__class__ is str and kind in _VALUE_MEMBERS:
        return True
    return concise and "type" not in raw and any(member in raw for member in _CONCISE_MEMBERS)


def _bare(raw: Any, *, reduce: bool, concise: bool) -> Any:
    if type(raw) is not dict:
        return raw
    if reduce:
        kind = raw.get("type")
        if kind.__class__ is str and kind in _VALUE_MEMBERS:
            member = _VALUE_MEMBERS[kind]
            if member not in raw:
                return raw
            raw = raw[member]
            if kind == "ListRelationship" and isinstance(raw, list):
                return [item.get("object") if isinstance(item, dict) else item for item in raw]
        elif concise and "type" not in raw:
            for member in _CONCISE_MEMBERS:
                if member in raw:
                    raw = raw[member]
                    break
    if (
        type(raw) is dict
        and "@value" in raw
        and len(raw) <= 2
        and ("@type" in raw or len(raw) == 1)
    ):
        return raw["@value"]
    return raw


def violations_from_errors(
    errors: Iterable[ValidationError], *, entity_id: str | None, entity_type: str | None
) -> list[Violation]:
    """`Violation`s for `jsonschema` errors: key-values path, keyword and a readable message."""
    from jsonschema.exceptions import best_match

    found: list[Violation] = []
    for error in errors:
        path = "/".join(str(step) for step in error.absolute_path)
        rule = str(error.validator)
        message = error.message
        if rule == "required" and isinstance(error.instance, dict):
            expected: Any = error.validator_value
            missing = [
                name
                for name in expected
                if name not in error.instance and message.startswith(repr(name))
            ]
            if missing:
                path = "/".join(filter(None, (path, str(missing[0]))))
        elif error.context:
            closest = best_match(error.context)
            if closest is not None:
                where = "/".join(str(step) for step in closest.relative_path)
                message += f"; closest match fails at {where or 'the value'}: {closest.message}"
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 3] + "..."
        found.append(
            Violation(
                entity_id=entity_id,
                entity_type=entity_type,
                path=path,
                rule=rule,
                message=message,
                schema_path="/".join(str(step) for step in error.absolute_schema_path),
            )
        )
    return found


class SdmSchemas:
    """The official Smart Data Models schemas in one local directory, compiled on first use.

    `validator(type)` compiles an entity type's schema once (every `$ref` resolved from local
    files, formats checked) and keeps it; instances are thread-safe and meant to be shared
    (see `sdm_schemas`). Nothing here touches the network.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_sdm_dir()
        self._lock = threading.Lock()
        self._registry: Registry[Any] | None = None
        self._validators: dict[str, Validator] = {}
        self._paths: dict[str, Path] | None = None

    def __repr__(self) -> str:
        return f"SdmSchemas({str(self.root)!r})"

    # -- what is there

    def _schema_paths(self) -> dict[str, Path]:
        if self._paths is None:
            paths: dict[str, Path] = {}
            if self.root.is_dir():
                for path in sorted(self.root.glob("*/*/schema.json")):
                    paths.setdefault(path.parent.name, path)
            self._paths = paths
        return self._paths

    def types(self) -> list[str]:
        """The entity types that have a schema in this directory, sorted."""
        return sorted(self._schema_paths())

    def schema_path(self, entity_type: str) -> Path:
        """The `schema.json` of `entity_type`; `SchemaNotFound` when there is none."""
        path = self._schema_paths().get(entity_type)
        if path is None:
            hint = (
                "the directory does not exist; run `drehscheibe models pull` or set "
                f"{ENV_SDM_SCHEMAS}"
                if not self.root.is_dir()
                else f"expected <subject>/{entity_type}/schema.json"
            )
            raise SchemaNotFound(entity_type, searched=self.root, hint=hint)
        return path

    def schema(self, entity_type: str) -> dict[str, Any]:
        """The official schema of `entity_type` as stored (not bundled)."""
        return _read_json(self.schema_path(entity_type))

    def schema_version(self, entity_type: str) -> str | None:
        """The schema's `$schemaVersion`, if it states one."""
        version = self.schema(entity_type).get("$schemaVersion")
        return str(version) if version is not None else None

    def context_files(self) -> dict[str, Path]:
        """Each subject's @context URL (raw GitHub, `master`) mapped to its local file, for a
        context store's preload map."""
        found: dict[str, Path] = {}
        if self.root.is_dir():
            for path in sorted(self.root.glob("*/context.jsonld")):
                relative = path.relative_to(self.root).as_posix()
                found[urls_for_local_path(relative)[1]] = path
        return found

    # -- compiling

    def registry(self) -> Registry[Any]:
        """Every schema file of the directory, registered under every URL it is known by."""
        with self._lock:
            if self._registry is None:
                self._registry = self._build_registry()
            return self._registry

    def _build_registry(self) -> Registry[Any]:
        resources: list[tuple[str, Resource[Any]]] = []
        if self.root.is_dir():
            # schema.json, common-schema.json, Environment-schema.json, ...; not MANIFEST.json
            for path in sorted(self.root.rglob("*schema.json")):
                if "examples" in path.relative_to(self.root).parts:
                    continue
                contents = _read_json(path)
                resource = Resource.from_contents(contents, default_specification=DRAFT202012)
                urls = urls_for_local_path(path.relative_to(self.root).as_posix())
                own_id = contents.get("$id")
                if isinstance(own_id, str) and own_id not in urls:
                    urls.append(own_id)
                resources.extend((url, resource) for url in urls)
        # attrs field aliases are invisible to the type checker
        registry: Registry[Any] = Registry(retrieve=self._retrieve)  # type: ignore[call-arg]
        return registry.with_resources(resources)

    def _retrieve(self, uri: str) -> Resource[Any]:
        relative = local_path_for_url(uri)
        if relative is None or not (self.root / relative).is_file():
            raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]
        contents = _read_json(self.root / relative)
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    def validator(self, entity_type: str) -> Validator:
        """The compiled validator of `entity_type` (compiled once, then reused)."""
        found = self._validators.get(entity_type)
        if found is not None:
            return found
        schema = self.schema(entity_type)
        try:
            compiled = compile_validator(schema, self.registry())
        except UnresolvableReference as exc:
            relative = local_path_for_url(exc.uri)
            hint = f"its $ref {exc.uri} has no local file"
            if relative is not None:
                hint += f" {self.root / relative}"
            raise SchemaNotFound(entity_type, searched=self.root, hint=hint) from None
        with self._lock:
            return self._validators.setdefault(entity_type, compiled)

    # -- validating

    def violations(
        self, entity: object, *, representation: EntityRepresentation = "auto"
    ) -> list[Violation]:
        """Every rule of its official schema that `entity` breaks (empty when valid).

        `entity` is NGSI-LD normalized or key-values (see `key_values` for `representation`);
        its `type` picks the schema. Anything but a JSON object is one violation. Raises
        `SchemaNotFound` for a type without a schema.
        """
        if not isinstance(entity, Mapping):
            return [
                Violation(path="", rule="type", message="an entity must be a JSON object"),
            ]
        entity_id = entity.get("id") if isinstance(entity.get("id"), str) else None
        entity_type = entity.get("type")
        if not isinstance(entity_type, str):
            return [
                Violation(
                    entity_id=entity_id,
                    path="type",
                    rule="required",
                    message="an entity needs a string 'type' to pick its schema",
                )
            ]
        validator = self.validator(entity_type)
        document = key_values(entity, representation=representation)
        errors = list(validator.iter_errors(document))
        found = violations_from_errors(errors, entity_id=entity_id, entity_type=entity_type)
        if representation != "keyValues":
            found.extend(self._other_instances(entity, document, validator, found, representation))
        return found

    def _other_instances(
        self,
        entity: Mapping[str, Any],
        document: dict[str, Any],
        validator: Validator,
        seen: list[Violation],
        representation: EntityRepresentation,
    ) -> list[Violation]:
        concise = representation == "concise"
        known = {(v.path, v.rule, v.message) for v in seen}
        extra: list[Violation] = []
        for name, raw in entity.items():
            if name in _ENTITY_MEMBERS or name == "@context":
                continue
            values = _instances(raw, concise)
            for value in (values or [])[1:]:
                variant = {**document, name: value}
                for violation in violations_from_errors(
                    validator.iter_errors(variant),
                    entity_id=document.get("id") if isinstance(document.get("id"), str) else None,
                    entity_type=str(document.get("type")),
                ):
                    key = (violation.path, violation.rule, violation.message)
                    if key not in known:
                        known.add(key)
                        extra.append(violation)
        return extra

    def is_valid(self, entity: object) -> bool:
        """Whether `entity` satisfies its official schema (see `violations`)."""
        return not self.violations(entity)

    def validate(self, entity: object, *, representation: EntityRepresentation = "auto") -> None:
        """Raise `EntityInvalid` (listing every violation) unless `entity` is valid."""
        found = self.violations(entity, representation=representation)
        if found:
            entity_id = found[0].entity_id
            entity_type = found[0].entity_type
            raise EntityInvalid(
                found,
                entity_id=entity_id if isinstance(entity_id, str) else None,
                entity_type=entity_type if isinstance(entity_type, str) else None,
            )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        contents = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise SchemaError(f"cannot read schema file {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"schema file {path} is not valid JSON: {exc}") from None
    if not isinstance(contents, dict):
        raise SchemaError(f"schema file {path} does not hold a JSON object")
    return contents


@functools.lru_cache(maxsize=16)
def _shared(root: Path) -> SdmSchemas:
    return SdmSchemas(root)


def sdm_schemas(root: str | os.PathLike[str] | None = None) -> SdmSchemas:
    """The shared `SdmSchemas` of a directory (default: `default_sdm_dir()`), so that compiled
    validators are reused across calls."""
    path = Path(root).expanduser() if root is not None else default_sdm_dir()
    return _shared(path.resolve())
