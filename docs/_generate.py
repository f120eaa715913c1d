"""Render the configuration reference (docs/configuration.md) from the project's JSON Schemas.

    .venv/bin/python docs/_generate.py           # write docs/configuration.md
    .venv/bin/python docs/_generate.py --check   # exit 1 when the committed file is out of date

The documents a city writes (the agent configuration, the consumers file, device profiles) are
the schemas in `schemas/json/` whose names are lower case; the others are the entity schemas
generated from `models`, listed by name only. Every setting becomes one table row: its path
(`broker.url`, `sources[].mqtt.qos`), its type and allowed values, and the schema's own
description. A `$defs` entry that is an object of its own (a source, an entity, a transform) gets
its own table, linked from the rows that use it. Conditions (`if`/`then`, `oneOf` of required
members, `dependentRequired`, `dependentSchemas`) are written as sentences under the table.

The agent's environment variables come from the table it reads them by
(`agents.runtime._config.ENVIRONMENT`). The output depends on these only, so `render()` is the
same on every machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["OUTPUT", "SCHEMA_DIR", "config_schema_names", "entity_schema_names", "main", "render"]

REPO = Path(__file__).resolve().parents[1]
SCHEMA_DIR = REPO / "schemas" / "json"
OUTPUT = REPO / "docs" / "configuration.md"
_SUFFIX = ".schema.json"

_ABOUT: dict[str, tuple[str, str]] = {
    "agent-config": (
        "Agent configuration",
        "`drehscheibe agent run -c FILE` and `drehscheibe agent check -c FILE`. Every setting is "
        "optional unless marked required; `examples/agent.yaml` shows each one with its default.",
    ),
    "consumers": (
        "Consumers file",
        "`drehscheibe subscriptions diff|apply -f FILE`; `subscriptions export` writes one. "
        "`examples/consumers.yaml` is a complete example.",
    ),
    "device-profile": (
        "Device profile",
        "One YAML file per profile in the profiles folder (`--profiles-dir`, `profiles.dir`); "
        "the built-in ones are in `agents/profiles/builtin/`.",
    ),
    "publish-rules": (
        "Public projection rules",
        "`drehscheibe publish check|preview|resync|serve -r FILE`: which entity types and "
        "attributes reach the public tenant, and how (see `docs/data-protection.md`).",
    ),
}


def _name_of(path: Path) -> str:
    return path.name[: -len(_SUFFIX)]


def config_schema_names(schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The schemas of documents people write: file names in lower case, sorted."""
    names = (_name_of(p) for p in schema_dir.glob(f"*{_SUFFIX}"))
    return sorted(n for n in names if n == n.lower())


def entity_schema_names(schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The published entity schemas (generated from `models`), sorted."""
    names = (_name_of(p) for p in schema_dir.glob(f"*{_SUFFIX}"))
    return sorted(n for n in names if n != n.lower())


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"`{text}`"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


@dataclass
class _Section:
    """One table: the rows of an object schema, and the sentences about its conditions."""

    key: str
    title: str
    description: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Renderer:
    def __init__(self, name: str, schema: Mapping[str, Any]) -> None:
        self.name = name
        self.schema = schema
        self.defs: Mapping[str, Any] = schema.get("$defs", {})
        self.sections: list[_Section] = []
        self.queued: list[str] = []

    # --- $ref and links -----------------------------------------------------------------------

    def _def_name(self, node: Mapping[str, Any]) -> str | None:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return ref.removeprefix("#/$defs/")
        return None

    def _is_structure(self, node: Mapping[str, Any]) -> bool:
        """A schema that gets a table of its own: an object with members, or a choice of forms
        one of which has members."""
        if "properties" in node:
            return True
        if "additionalProperties" in node and node.get("type") == "object":
            return True
        for key in ("oneOf", "anyOf"):
            if any(self._is_structure(self._resolve(n)) for n in node.get(key, [])):
                return True
        return any(
            isinstance(node.get(k), Mapping) and "properties" in node[k] for k in ("then", "else")
        )

    def _resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        name = self._def_name(node)
        if name is None:
            return node
        merged = {**self.defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return merged

    def anchor(self, def_name: str) -> str:
        return f"{self.name}-{def_name}".lower()

    def _link(self, def_name: str) -> str:
        if def_name not in self.queued:
            self.queued.append(def_name)
        return f"[{def_name}](#{self.anchor(def_name)})"

    # --- types ------------------------------------------------------------------------------

    def type_text(self, node: Mapping[str, Any]) -> str:
        """The type column: type, allowed values and limits, or a link to a def's table."""
        def_name = self._def_name(node)
        if def_name is not None:
            target = self.defs[def_name]
            if self._is_structure(target):
                return self._link(def_name)
            return self.type_text(target)
        if "const" in node:
            return _code(node["const"])
        if "enum" in node:
            return " | ".join(_code(v) for v in node["enum"])
        for key in ("oneOf", "anyOf"):
            if key in node:
                return " or ".join(self.type_text(option) for option in node[key])
        kind = node.get("type")
        if "if" in node and "then" in node and "else" in node and isinstance(kind, list):
            return " or ".join(
                self.type_text({**node[branch], "type": t})
                for t, branch in zip(kind, ("then", "else"), strict=False)
            )
        kinds = kind if isinstance(kind, list) else [kind] if kind else []
        if kinds == ["array"] or (kinds and "items" in node and "array" in kinds):
            items = node.get("items")
            inner = self.type_text(items) if isinstance(items, Mapping) else "any"
            text = f"list of {inner}"
            if node.get("uniqueItems"):
                text += ", unique"
            text += self._limits(node, "minItems", "maxItems", "items")
            return text
        text = " or ".join(str(k) for k in kinds) if kinds else "any"
        if kinds == ["object"] and "properties" in node:
            members = ", ".join(_code(m) for m in node["properties"])
            return f"object with {members}"
        if kinds == ["object"] and isinstance(node.get("additionalProperties"), Mapping):
            text = f"map of {self.type_text(node['additionalProperties'])}"
            pattern = node.get("propertyNames", {}).get("pattern")
            if pattern:
                text += f", keys {_code(pattern)}"
        if "pattern" in node:
            text += f" matching {_code(node['pattern'])}"
        if "format" in node:
            text += f" ({node['format']})"
        text += self._limits(node, "minimum", "maximum", "")
        text += self._limits(node, "minLength", "maxLength", "characters")
        text += self._limits(node, "minProperties", "maxProperties", "members")
        if "exclusiveMinimum" in node:
            text += f", > {node['exclusiveMinimum']}"
        if "exclusiveMaximum" in node:
            text += f", < {node['exclusiveMaximum']}"
        return text

    @staticmethod
    def _limits(node: Mapping[str, Any], low: str, high: str, unit: str) -> str:
        lo, hi = node.get(low), node.get(high)
        suffix = f" {unit}" if unit else ""
        if lo is not None and hi is not None:
            return f", {lo}..{hi}{suffix}"
        if lo is not None:
            return f", ≥ {lo}{suffix}"
        if hi is not None:
            return f", ≤ {hi}{suffix}"
        return ""

    # --- rows -------------------------------------------------------------------------------

    def rows(self, node: Mapping[str, Any], prefix: str, section: _Section) -> None:
        """Rows for the members of `node`, nested objects flattened into dotted paths."""
        required = set(node.get("required", []))
        for member, raw in node.get("properties", {}).items():
            path = f"{prefix}{member}"
            if raw is False:
                continue
            resolved = self._resolve(raw)
            description = raw.get("description") or resolved.get("description", "")
            inline = (
                self._def_name(raw) is None
                and resolved.get("type") == "object"
                and "properties" in resolved
            )
            marker = " (required)" if member in required else ""
            if inline:
                if description:
                    section.rows.append((path, f"object{marker}", description))
                self.rows(resolved, f"{path}.", section)
                self.conditions(resolved, section, where=path)
                continue
            section.rows.append((path, self.type_text(raw) + marker, description))
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping) and "properties" not in node:
            key_pattern = node.get("propertyNames", {}).get("pattern")
            key = f"{prefix}<name>"
            text = self.type_text(extra)
            if key_pattern:
                text += f" (names matching {_code(key_pattern)})"
            section.rows.append((key, text, extra.get("description", "")))

    # --- conditions -------------------------------------------------------------------------

    def _when(self, condition: Mapping[str, Any]) -> str:
        if list(condition) == ["required"]:
            return "With " + ", ".join(_code(m) for m in condition["required"])
        inner = condition.get("not")
        if isinstance(inner, Mapping) and list(inner) == ["required"]:
            return "Without " + ", ".join(_code(m) for m in inner["required"])
        props = condition.get("properties")
        if isinstance(props, Mapping) and len(props) == 1:
            ((member, test),) = props.items()
            if isinstance(test, Mapping) and "const" in test:
                return f"When {_code(member)} is {_code(test['const'])}"
        return "When the document matches " + _code(condition)

    def _otherwise(self, condition: Mapping[str, Any]) -> str:
        if list(condition) == ["required"]:
            return "Without " + ", ".join(_code(m) for m in condition["required"])
        return "Otherwise"

    def _consequence(self, then: Mapping[str, Any]) -> str:
        parts: list[str] = []
        if "required" in then:
            parts.append(", ".join(_code(m) for m in then["required"]) + " required")
        forbidden = [m for m, s in then.get("properties", {}).items() if s is False]
        if forbidden:
            parts.append(", ".join(_code(m) for m in forbidden) + " not allowed")
        for option_key in ("anyOf", "oneOf"):
            options = then.get(option_key, [])
            if options and all(list(o) == ["required"] for o in options):
                names = " or ".join(_code(o["required"][0]) for o in options)
                word = "at least one of" if option_key == "anyOf" else "exactly one of"
                parts.append(f"{word} {names} required")
        known = {"required", "properties", "anyOf", "oneOf"}
        rest = {k: v for k, v in then.items() if k not in known}
        if rest:
            parts.append("also " + _code(rest))
        return "; ".join(parts) if parts else _code(then)

    def conditions(self, node: Mapping[str, Any], section: _Section, *, where: str = "") -> None:
        """Sentences for the conditions on `node`'s members."""
        at = f" (in {_code(where)})" if where else ""
        branches: list[Mapping[str, Any]] = list(node.get("allOf", []))
        if "if" in node:
            branches.append(node)
        for branch in branches:
            if "if" not in branch:
                continue
            if "then" in branch:
                section.notes.append(
                    f"{self._when(branch['if'])}{at}: {self._consequence(branch['then'])}."
                )
            if "else" in branch:
                section.notes.append(
                    f"{self._otherwise(branch['if'])}{at}: {self._consequence(branch['else'])}."
                )
        for key, word in (("oneOf", "exactly one of"), ("anyOf", "at least one of")):
            options = node.get(key, [])
            if options and all(isinstance(o, Mapping) and list(o) == ["required"] for o in options):
                names = ", ".join(_code(o["required"][0]) for o in options)
                section.notes.append(f"Give {word} {names}{at}.")
        for member, needs in node.get("dependentRequired", {}).items():
            section.notes.append(f"{_code(member)} needs {', '.join(_code(n) for n in needs)}{at}.")
        for member, then in node.get("dependentSchemas", {}).items():
            section.notes.append(f"With {_code(member)}{at}: {self._consequence(then)}.")

    # --- sections ---------------------------------------------------------------------------

    def _def_section(self, def_name: str) -> _Section:
        node = self.defs[def_name]
        section = _Section(
            key=self.anchor(def_name),
            title=f"`{def_name}`",
            description=node.get("description", ""),
        )
        choices = node.get("oneOf") or node.get("anyOf")
        if "properties" in node or isinstance(node.get("additionalProperties"), Mapping):
            self.rows(node, "", section)
            self.conditions(node, section)
        elif isinstance(node.get("else"), Mapping) or isinstance(node.get("then"), Mapping):
            # a member written either short (then: a string) or in full (else: an object)
            for branch in ("then", "else"):
                part = node.get(branch)
                if isinstance(part, Mapping) and "properties" in part:
                    self.rows(part, "", section)
                    self.conditions(part, section)
                elif isinstance(part, Mapping):
                    section.notes.append(f"Short form: {self.type_text(part)}.")
        elif choices:
            forms = []
            for option in choices:
                resolved = self._resolve(option)
                if "properties" in resolved and resolved.get("type") != "array":
                    self.rows(resolved, "", section)
                    self.conditions(resolved, section)
                else:
                    forms.append(self.type_text(option))
            if forms:
                label = "Short form" if section.rows else "Written as"
                section.notes.append(f"{label}: " + "; or ".join(forms) + ".")
        return section

    def render(self) -> list[_Section]:
        title, usage = _ABOUT.get(self.name, (self.schema.get("title", self.name), ""))
        description = self.schema.get("description", "")
        top = _Section(
            key=self.name,
            title=f"{title} (`{self.name}{_SUFFIX}`)",
            description=(usage + "\n\n" + description).strip(),
        )
        self.rows(self.schema, "", top)
        self.conditions(self.schema, top)
        self.sections.append(top)
        done: set[str] = set()
        while True:
            pending = [d for d in self.queued if d not in done]
            if not pending:
                break
            for def_name in pending:
                done.add(def_name)
                self.sections.append(self._def_section(def_name))
        return self.sections


def _lines(section: _Section, level: int) -> Iterator[str]:
    yield f'<a id="{section.key}"></a>'
    yield ""
    yield f"{'#' * level} {section.title}"
    yield ""
    if section.description:
        yield section.description
        yield ""
    if section.rows:
        yield "| setting | type | what it is |"
        yield "|---|---|---|"
        for path, kind, description in section.rows:
            yield f"| `{path}` | {_cell(kind)} | {_cell(description)} |"
        yield ""
    for note in section.notes:
        yield f"- {note}"
    if section.notes:
        yield ""


def _environment() -> list[str]:
    """The agent's environment variables, from the table the agent itself reads them by."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from agents.runtime._config import ENVIRONMENT

    lines = [
        '<a id="agent-environment"></a>',
        "",
        "## Environment variables of the agent",
        "",
        "They override the configuration file (containers set them instead of editing it). "
        "`<NAME>` is the source's name in upper case, every character other than a letter or "
        "digit written as `_`.",
        "",
        "| variable | sets |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {_cell(what)} |" for name, what in ENVIRONMENT.items()]
    return [*lines, ""]


def render(schema_dir: Path = SCHEMA_DIR) -> str:
    """The whole Markdown reference for the schemas in `schema_dir`."""
    names = config_schema_names(schema_dir)
    out: list[str] = [
        "# Configuration reference",
        "",
        "<!-- Generated by docs/_generate.py from schemas/json/*.schema.json: do not edit here. "
        "Run `.venv/bin/python docs/_generate.py` after changing a schema. -->",
        "",
        "Generated from the JSON Schemas in `schemas/json/`, which are what the agent, "
        "`drehscheibe subscriptions` and the profile loader validate against. Paths are "
        "written with dots; `[]` is an item of a list.",
        "",
    ]
    for name in names:
        title = _ABOUT.get(name, (name, ""))[0]
        out.append(f"- [{title}](#{name}) (`schemas/json/{name}{_SUFFIX}`)")
    out.append("")
    for name in names:
        schema = json.loads((schema_dir / f"{name}{_SUFFIX}").read_text(encoding="utf-8"))
        sections = _Renderer(name, schema).render()
        for index, section in enumerate(sections):
            out.extend(_lines(section, 2 if index == 0 else 3))
    out += _environment()
    entities = entity_schema_names(schema_dir)
    if entities:
        out += [
            "## Published entity schemas",
            "",
            "Generated from the model classes by `drehscheibe models schemas --write` (and "
            "checked with `--check`); they describe the entities the agent writes, not a "
            "configuration: " + ", ".join(f"`{n}`" for n in entities) + ".",
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(
                f"{args.output} is out of date: run .venv/bin/python docs/_generate.py",
                file=sys.stderr,
            )
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
