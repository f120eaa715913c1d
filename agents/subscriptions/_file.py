"""The consumers file: YAML that declares the consumers and the subscriptions that notify them.

    project: city-hub                 # owner: every subscriptionName starts with "city-hub/"
    tenant: city                      # default NGSILD-Tenant (absent: the default tenant)
    consumers:
      - name: traffic-dashboard
        kind: traffic                 # traffic | environment | planning | quantumleap | custom
        endpoint:
          uri: http://traffic.internal:8081/notify
          receiverInfo: {X-Drehscheibe-Secret: "${TRAFFIC_SECRET}"}
        subscriptions:
          - name: flow
            template: traffic.flow
            params: {minIntensity: 10, throttling: 5}
          - name: bridge                      # written out, as NGSI-LD spells it
            entities:
              - {type: TrafficFlowObserved, idPattern: "urn:ngsi-ld:TrafficFlowObserved:bridge-.*"}
            watchedAttributes: [intensity]
            q: intensity>300

The file is checked against the JSON Schema `consumers` of `schemas/` (structure), then by the
templates and the pydantic types (meaning). Every problem is reported with its path in the file
and, for YAML read from a file, its line: `consumers.yaml:14: consumers/0/subscriptions/1/q: ...`.
`${NAME}` in an endpoint URI or a receiverInfo/notifierInfo value is replaced by the environment
variable NAME when the file is read (an unset variable is an error; `${NAME:-default}` falls back
to the default), so secrets stay out of the file and out of review.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from schemas import validate_document

__all__ = [
    "ConsumerSpec",
    "ConsumersFile",
    "ConsumersFileError",
    "EndpointSpec",
    "FileProblem",
    "SubscriptionSpec",
    "line_of",
    "load_consumers_file",
    "parse_consumers_file",
]

SCHEMA_NAME = "consumers"
ConsumerKind = Literal["traffic", "environment", "planning", "quantumleap", "custom"]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class FileProblem(BaseModel):
    """One thing wrong in a consumers file: where (path in the document, line) and what."""

    model_config = ConfigDict(frozen=True)

    path: str
    message: str
    line: int | None = None

    def render(self, source: str | None = None) -> str:
        where = ""
        if source and self.line:
            where = f"{source}:{self.line}: "
        elif source:
            where = f"{source}: "
        elif self.line:
            where = f"line {self.line}: "
        return f"{where}{self.path or '(document)'}: {self.message}"


class ConsumersFileError(ValueError):
    """The consumers file cannot be used; `problems` lists every problem found."""

    def __init__(self, problems: Sequence[FileProblem], *, source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        lines = [problem.render(source) for problem in self.problems]
        super().__init__("\n".join(lines) if lines else "the consumers file is invalid")


class _Spec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class EndpointSpec(_Spec):
    """A notification endpoint; `receiver_info` / `notifier_info` as ordered (key, value) pairs."""

    uri: str
    accept: Literal["application/json", "application/ld+json"] | None = None
    receiver_info: tuple[tuple[str, str], ...] = ()
    notifier_info: tuple[tuple[str, str], ...] = ()

    def to_ngsi(self) -> dict[str, Any]:
        """The subscription's `notification.endpoint` member."""
        out: dict[str, Any] = {"uri": self.uri}
        if self.accept:
            out["accept"] = self.accept
        if self.receiver_info:
            out["receiverInfo"] = [{"key": k, "value": v} for k, v in self.receiver_info]
        if self.notifier_info:
            out["notifierInfo"] = [{"key": k, "value": v} for k, v in self.notifier_info]
        return out


class SubscriptionSpec(_Spec):
    """One entry of a consumer's `subscriptions`: a template with params, or written out."""

    name: str
    description: str | None = None
    template: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    endpoint: EndpointSpec | None = None
    context: str | None = None
    is_active: bool | None = None
    entities: list[dict[str, str]] | None = None
    watched_attributes: list[str] | None = None
    q: str | None = None
    geo_q: dict[str, Any] | None = None
    time_interval: float | None = None
    throttling: float | None = None
    expires_at: str | None = None
    lang: str | None = None
    notification: dict[str, Any] | None = None


class ConsumerSpec(_Spec):
    """A consumer: who receives, where, and the subscriptions that notify it."""

    name: str
    kind: ConsumerKind
    description: str | None = None
    tenant: str | None = None
    endpoint: EndpointSpec | None = None
    subscriptions: list[SubscriptionSpec]


class ConsumersFile(_Spec):
    """A whole consumers file. `source` names where it was read from (for messages)."""

    project: str
    description: str | None = None
    tenant: str | None = None
    tenants: list[str] = Field(default_factory=list)
    consumers: list[ConsumerSpec]
    source: str | None = Field(default=None, exclude=True)
    text: str | None = Field(default=None, exclude=True, repr=False)

    def tenants_in_scope(self) -> list[str | None]:
        """Every tenant this file manages: the default, each consumer's, and `tenants`."""
        found: dict[str | None, None] = {}
        for consumer in self.consumers:
            found[consumer.tenant if consumer.tenant is not None else self.tenant] = None
        if not self.consumers:
            found[self.tenant] = None
        for tenant in self.tenants:
            found[tenant] = None
        return sorted(found, key=lambda t: (t is not None, t or ""))


# --- reading --------------------------------------------------------------------------------


def load_consumers_file(
    path: str | Path, *, environ: Mapping[str, str] | None = None
) -> ConsumersFile:
    """Read, check and resolve the consumers file at `path`; `ConsumersFileError` lists every
    problem with its line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConsumersFileError(
            [FileProblem(path="", message=f"cannot read the file: {exc.strerror or exc}")],
            source=str(file),
        ) from None
    return parse_consumers_file(text, source=str(file), environ=environ)


def parse_consumers_file(
    text: str, *, source: str | None = None, environ: Mapping[str, str] | None = None
) -> ConsumersFile:
    """Check and resolve a consumers file given as YAML (or JSON) text."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConsumersFileError(
            [FileProblem(path="", message=f"not valid YAML: {problem}", line=line)], source=source
        ) from None
    if not isinstance(data, dict):
        raise ConsumersFileError(
            [FileProblem(path="", message="expected a mapping with `project` and `consumers`")],
            source=source,
        )
    problems: list[FileProblem] = []
    for violation in validate_document(SCHEMA_NAME, data):
        if _is_entry_rule(violation.rule, violation.message):
            entry = _at(data, violation.path)
            found = _entry_problems(entry, violation.path) if isinstance(entry, dict) else []
            if found:
                problems.extend(
                    FileProblem(path=path, message=message, line=_line_of(root, path))
                    for path, message in found
                )
                continue
        problems.append(
            FileProblem(
                path=violation.path,
                message=_readable(violation.rule, violation.message),
                line=_line_of(root, violation.path),
            )
        )
    if problems:
        raise ConsumersFileError(_unique(problems), source=source)
    resolved, env_problems = _resolve_env(data, os.environ if environ is None else environ)
    problems.extend(
        FileProblem(path=path, message=message, line=_line_of(root, path))
        for path, message in env_problems
    )
    problems.extend(
        FileProblem(path=path, message=message, line=_line_of(root, path))
        for path, message in _duplicate_names(resolved)
    )
    if problems:
        raise ConsumersFileError(problems, source=source)
    try:
        parsed = ConsumersFile.model_validate({**resolved, "source": source, "text": text})
    except ValidationError as exc:
        raise ConsumersFileError(
            [
                FileProblem(
                    path="/".join(str(step) for step in error["loc"]),
                    message=error["msg"],
                    line=_line_of(root, "/".join(str(step) for step in error["loc"])),
                )
                for error in exc.errors(include_url=False)
            ],
            source=source,
        ) from None
    return parsed


def line_of(text: str, path: str) -> int | None:
    """The 1-based line of the value at `path` (`consumers/0/subscriptions/2/q`) in YAML text,
    or of the deepest existing parent; None when the text is not YAML."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    return _line_of(root, path)


def _line_of(root: yaml.Node | None, path: str) -> int | None:
    node = root
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for step in filter(None, path.split("/")):
        if isinstance(node, yaml.MappingNode):
            found = None
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == step:
                    found = value
                    line = key.start_mark.line + 1
                    break
            if found is None:
                return line
            node = found
        elif isinstance(node, yaml.SequenceNode) and step.isdigit() and int(step) < len(node.value):
            node = node.value[int(step)]
            line = node.start_mark.line + 1
        else:
            return line
    return line


_TEMPLATE_EXCLUDES = (
    "entities",
    "watchedAttributes",
    "q",
    "geoQ",
    "timeInterval",
    "throttling",
    "notification",
    "context",
)


def _is_entry_rule(rule: str, message: str) -> bool:
    return message.startswith("False schema does not allow") or (
        rule == "anyOf" and "entities" in message
    )


def _at(data: Any, path: str) -> Any:
    node = data
    for step in filter(None, path.split("/")):
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return None
    return node


def _entry_problems(entry: dict[str, Any], path: str) -> list[tuple[str, str]]:
    """The rules of a subscription entry the schema states with if/then and dependencies, as
    problems naming the member."""
    found: list[tuple[str, str]] = []
    if "template" in entry:
        found.extend(
            (
                f"{path}/{key}",
                f"a template entry takes its settings in `params`, not `{key}`",
            )
            for key in _TEMPLATE_EXCLUDES
            if key in entry
        )
    else:
        if "params" in entry:
            found.append(
                (f"{path}/params", "`params` goes with `template`; this entry has no template")
            )
        if "entities" not in entry and "watchedAttributes" not in entry:
            found.append(
                (path, "a written-out subscription needs `entities` or `watchedAttributes`")
            )
    if "timeInterval" in entry:
        found.extend(
            (
                f"{path}/{key}",
                f"not with `timeInterval`: a periodic subscription takes no `{key}`",
            )
            for key in ("watchedAttributes", "throttling")
            if key in entry
        )
    return found


def _readable(rule: str, message: str) -> str:
    if rule == "pattern" and "A-Za-z0-9" in message:
        return message.split(" does not match")[0] + (
            " is not a valid name: letters, digits, '_' and '-', starting with a letter or digit"
        )
    return message


def _unique(problems: list[FileProblem]) -> list[FileProblem]:
    seen: set[tuple[str, str]] = set()
    out: list[FileProblem] = []
    for problem in problems:
        key = (problem.path, problem.message)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return sorted(out, key=lambda p: (p.line or 0, p.path))


def _pairs(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return [(str(k), str(v)) for k, v in value.items()]
    return [(str(item["key"]), str(item["value"])) for item in value]


def _substitute(
    text: str, environ: Mapping[str, str], path: str, problems: list[tuple[str, str]]
) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name not in environ and default is not None:
            return default
        if name not in environ:
            problems.append((path, f"environment variable {name} is not set (used as ${{{name}}})"))
            return ""
        return environ[name]

    return _ENV_REF.sub(replace, text)


def _endpoint(
    value: Any, environ: Mapping[str, str], path: str, problems: list[tuple[str, str]]
) -> dict[str, Any]:
    spec: dict[str, Any] = {"uri": value} if isinstance(value, str) else dict(value)
    spec["uri"] = _substitute(
        spec["uri"], environ, f"{path}/uri" if not isinstance(value, str) else path, problems
    )
    for key in ("receiverInfo", "notifierInfo"):
        if key in spec:
            spec[key] = tuple(
                (k, _substitute(v, environ, f"{path}/{key}", problems))
                for k, v in _pairs(spec[key])
            )
    return spec


def _resolve_env(
    data: dict[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    out = dict(data)
    consumers = []
    for index, consumer in enumerate(data.get("consumers") or []):
        consumer = dict(consumer)
        where = f"consumers/{index}"
        if "endpoint" in consumer:
            consumer["endpoint"] = _endpoint(
                consumer["endpoint"], environ, f"{where}/endpoint", problems
            )
        subscriptions = []
        for number, entry in enumerate(consumer.get("subscriptions") or []):
            entry = dict(entry)
            if "endpoint" in entry:
                entry["endpoint"] = _endpoint(
                    entry["endpoint"], environ, f"{where}/subscriptions/{number}/endpoint", problems
                )
            subscriptions.append(entry)
        consumer["subscriptions"] = subscriptions
        consumers.append(consumer)
    out["consumers"] = consumers
    return out, problems


def _duplicate_names(data: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    consumers: dict[str, int] = {}
    for index, consumer in enumerate(data.get("consumers") or []):
        name = consumer["name"]
        if name in consumers:
            problems.append(
                (
                    f"consumers/{index}/name",
                    f"consumer {name!r} is declared twice (also consumers/{consumers[name]})",
                )
            )
        consumers.setdefault(name, index)
        seen: dict[str, int] = {}
        for number, entry in enumerate(consumer.get("subscriptions") or []):
            if entry["name"] in seen:
                problems.append(
                    (
                        f"consumers/{index}/subscriptions/{number}/name",
                        f"subscription {entry['name']!r} of consumer {name!r} is declared twice "
                        f"(also subscriptions/{seen[entry['name']]})",
                    )
                )
            seen.setdefault(entry["name"], number)
    return problems
