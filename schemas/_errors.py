"""What validation reports: one `Violation` per broken rule, and the exceptions around them.

    SchemaError
    ├── SchemaNotFound     no schema for that entity type or document name (nothing was checked)
    ├── EntityInvalid      the entity was checked and breaks its schema (`.violations`)
    └── SchemaPullError    the official schemas could not be downloaded

A missing schema and an invalid entity are different failures on purpose: the first is an
installation problem (pull or copy the schemas), the second is bad data (dead-letter it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["EntityInvalid", "SchemaError", "SchemaNotFound", "SchemaPullError", "Violation"]


class Violation(BaseModel):
    """One rule of a JSON Schema that a document (an entity, a profile, a configuration) breaks.

    `path` is the JSON pointer of the offending value inside the document as it was validated
    (for an NGSI-LD entity: its key-values form, so `location/coordinates/1`, never
    `location/value/coordinates/1`); empty for the document itself. `attribute` is the first
    step of that path. `rule` is the JSON Schema keyword that failed (`type`, `minimum`,
    `format`, `required`, ...), `message` says what was expected.
    """

    model_config = ConfigDict(frozen=True)

    entity_id: str | None = None
    entity_type: str | None = None
    path: str
    rule: str
    message: str
    schema_path: str = ""

    @property
    def attribute(self) -> str | None:
        """The top-level member (entity attribute) the violation is about, if any."""
        return self.path.split("/", 1)[0] if self.path else None

    def __str__(self) -> str:
        where = []
        if self.entity_id is not None:
            where.append(f"entity {self.entity_id!r}")
        where.append(f"attribute {self.path!r}" if self.path else "(whole document)")
        return f"{', '.join(where)}: {self.rule}: {self.message}"


class SchemaError(Exception):
    """Base class of everything `schemas` raises."""


class SchemaNotFound(SchemaError):
    """There is no schema for `name` (an entity type or one of the project's document names).

    `searched` is where it was looked for: a directory of official Smart Data Models schemas or
    the project's own schema folder.
    """

    def __init__(self, name: str, *, searched: Path | str, hint: str = "") -> None:
        self.name = name
        self.searched = searched
        message = f"no schema for {name!r} in {searched}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class EntityInvalid(SchemaError):
    """An entity breaks its official schema; `violations` lists every broken rule."""

    def __init__(
        self,
        violations: Sequence[Violation],
        *,
        entity_id: str | None,
        entity_type: str | None,
    ) -> None:
        self.violations = list(violations)
        self.entity_id = entity_id
        self.entity_type = entity_type
        shown = "; ".join(str(v) for v in self.violations[:5])
        more = len(self.violations) - 5
        if more > 0:
            shown += f"; and {more} more"
        super().__init__(
            f"{entity_type or 'entity'} {entity_id!r} breaks its schema in "
            f"{len(self.violations)} place(s): {shown}"
        )


class SchemaPullError(SchemaError):
    """Downloading the official schemas failed (offline, a missing file, a bad answer)."""
