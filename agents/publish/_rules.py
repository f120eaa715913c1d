"""The rule file of the public projection: what leaves the city, and in which shape.

    target_tenant: public
    coordinate_decimals: 3            # every coordinate rounded to 3 decimals (~110 m)
    device_identifiers: remove        # or pseudonymize
    pseudonym_key_file: publish.key   # else $DREHSCHEIBE_PUBLISH_KEY
    types:
      - type: WeatherObserved
        attributes: [temperature, relativeHumidity, location, dateObserved]
      - type: CrowdFlowObserved
        attributes: [peopleCount, location, dateObserved]
        suppress_below: {peopleCount: 5}

The file is validated against `schemas/json/publish-rules.schema.json`, then read into
`PublishRules`. Errors name the file and the path inside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models import default_registry
from schemas import validate_document

__all__ = [
    "DEFAULT_COORDINATE_DECIMALS",
    "KEY_ENV",
    "DeviceIdentifiers",
    "PublishRules",
    "RulesError",
    "TypeRule",
    "load_rules",
    "read_key",
]

SCHEMA_NAME = "publish-rules"
DEFAULT_COORDINATE_DECIMALS = 3
KEY_ENV = "DREHSCHEIBE_PUBLISH_KEY"
MIN_KEY_BYTES = 16

DeviceIdentifiers = Literal["remove", "pseudonymize"]


class RulesError(ValueError):
    """The rule file (or the pseudonym key) is missing, unreadable or invalid."""


class TypeRule(BaseModel):
    """How one entity type is published (see the module documentation)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    attributes: tuple[str, ...]
    context: str | None = None
    coordinate_decimals: int | None = Field(default=None, ge=0, le=7)
    device_identifiers: DeviceIdentifiers | None = None
    suppress_below: dict[str, float] = Field(default_factory=dict)

    def context_url(self) -> str | None:
        """The @context of the type: the rule's, else the Smart Data Models subject's, else
        None (the core context)."""
        if self.context is not None:
            return self.context
        if self.type in default_registry:
            return default_registry.context_url(self.type)
        return None


class PublishRules(BaseModel):
    """The whole rule file. `rule(type)` finds the rule of a type (None: not published)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target_tenant: str
    types: tuple[TypeRule, ...]
    source_tenant: str | None = None
    coordinate_decimals: int = Field(default=DEFAULT_COORDINATE_DECIMALS, ge=0, le=7)
    device_identifiers: DeviceIdentifiers = "remove"
    pseudonym_key_file: Path | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PublishRules:
        if self.source_tenant == self.target_tenant:
            raise ValueError(
                f"target_tenant {self.target_tenant!r} is the source tenant: the public "
                "projection needs a tenant of its own"
            )
        seen: set[str] = set()
        for rule in self.types:
            if rule.type in seen:
                raise ValueError(f"types: {rule.type!r} has more than one rule")
            seen.add(rule.type)
            unknown = set(rule.suppress_below) - set(rule.attributes)
            if unknown:
                raise ValueError(
                    f"types/{rule.type}: suppress_below names {sorted(unknown)}, which are not "
                    "in its attributes"
                )
        return self

    def rule(self, type_name: str) -> TypeRule | None:
        for rule in self.types:
            if rule.type == type_name:
                return rule
        return None

    def decimals(self, rule: TypeRule) -> int:
        return (
            self.coordinate_decimals
            if rule.coordinate_decimals is None
            else (rule.coordinate_decimals)
        )

    def identifiers(self, rule: TypeRule) -> DeviceIdentifiers:
        return rule.device_identifiers or self.device_identifiers

    @classmethod
    def from_mapping(
        cls, data: Any, *, base_dir: Path | None = None, where: str = "rules"
    ) -> PublishRules:
        """Rules from a parsed document: the JSON Schema first, then the model; `base_dir`
        resolves a relative `pseudonym_key_file`. RulesError lists what is wrong."""
        violations = validate_document(SCHEMA_NAME, data)
        if violations:
            lines = "; ".join(f"{v.path or '(top)'}: {v.message}" for v in violations[:10])
            raise RulesError(f"{where}: {lines}")
        try:
            rules = cls.model_validate(data)
        except ValidationError as exc:
            lines = "; ".join(
                f"{'/'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
                for error in exc.errors()
            )
            raise RulesError(f"{where}: {lines}") from None
        key_file = rules.pseudonym_key_file
        if key_file is not None and base_dir is not None and not key_file.is_absolute():
            rules = rules.model_copy(update={"pseudonym_key_file": base_dir / key_file})
        return rules


def load_rules(path: str | Path) -> PublishRules:
    """Read and validate a rule file (YAML or JSON); RulesError says what is wrong where."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"cannot read the rule file {file}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{file} is not valid YAML: {exc}") from None
    return PublishRules.from_mapping(data, base_dir=file.parent, where=str(file))


def read_key(rules: PublishRules, *, environ: dict[str, str] | None = None) -> bytes:
    """The secret key of the pseudonyms: `pseudonym_key_file`, else $DREHSCHEIBE_PUBLISH_KEY.

    At least 16 bytes (surrounding white space is ignored). Without a key the projection does
    not run: a pseudonym without a secret could be reversed by trying every DevEUI of a vendor.
    """
    env = os.environ if environ is None else environ
    if rules.pseudonym_key_file is not None:
        try:
            text = rules.pseudonym_key_file.read_bytes().strip()
        except OSError as exc:
            raise RulesError(
                f"cannot read pseudonym_key_file {rules.pseudonym_key_file}: {exc.strerror or exc}"
            ) from None
        where = str(rules.pseudonym_key_file)
    else:
        text = env.get(KEY_ENV, "").strip().encode()
        where = f"${KEY_ENV}"
        if not text:
            raise RulesError(
                f"no pseudonym key: set pseudonym_key_file in the rules or {KEY_ENV} "
                f"(at least {MIN_KEY_BYTES} random bytes, e.g. `openssl rand -hex 32`)"
            )
    if len(text) < MIN_KEY_BYTES:
        raise RulesError(f"the pseudonym key in {where} is shorter than {MIN_KEY_BYTES} bytes")
    return text
