"""Reading `docker-compose.fiware.yml` the way Docker Compose does, without Docker.

* `read_env_file`: a Compose `.env` file (`KEY=VALUE`, comments, optional quotes).
* `interpolate`: Compose's variable substitution in one string: `$$`, `$VAR`, `${VAR}`,
  `${VAR:-default}` / `${VAR-default}`, `${VAR:?error}` / `${VAR?error}`, `${VAR:+alt}` /
  `${VAR+alt}`, nested in defaults. A required variable that is missing raises
  `MissingVariable`; a plain reference to an unset variable becomes "" and is recorded.
* `load_compose`: the YAML (merge keys resolved), every string value interpolated.
* `Service`: what the tests ask of one service (command line, environment, mounts, ports).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = [
    "Compose",
    "InterpolationError",
    "MissingVariable",
    "Mount",
    "PublishedPort",
    "Service",
    "Substitution",
    "interpolate",
    "load_compose",
    "read_env_file",
    "shell_expand",
    "variables_in",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class InterpolationError(ValueError):
    """A `$` expression Compose would reject."""


class MissingVariable(InterpolationError):
    """`${NAME:?message}` (or `${NAME?message}`) with NAME unset (or empty)."""

    def __init__(self, name: str, message: str, where: str) -> None:
        self.name = name
        self.message = message
        super().__init__(f"{where}: required variable {name} is missing: {message}")


@dataclass
class Substitution:
    """What interpolation used: every variable read, and those read while unset."""

    used: set[str] = field(default_factory=set)
    unset: set[str] = field(default_factory=set)


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a Compose env file, in order (later lines win)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise ValueError(f"{path}:{number}: expected NAME=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[name] = value
    return values


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` that closes the `{` at `start` (nested `${...}` allowed)."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise InterpolationError(f"unclosed '${{' in {text!r}")


def interpolate(
    text: str,
    env: Mapping[str, str],
    *,
    where: str = "",
    record: Substitution | None = None,
) -> str:
    """`text` with Compose's substitutions applied from `env`."""
    record = record if record is not None else Substitution()
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "$":
            out.append(char)
            index += 1
            continue
        following = text[index + 1 : index + 2]
        if following == "$":
            out.append("$")
            index += 2
        elif following == "{":
            end = _closing_brace(text, index + 1)
            out.append(_braced(text[index + 2 : end], env, where=where, record=record))
            index = end + 1
        else:
            found = _NAME.match(text, index + 1)
            if found is None:
                raise InterpolationError(f"{where}: invalid '$' in {text!r} (write $$ for $)")
            name = found.group()
            record.used.add(name)
            if name not in env:
                record.unset.add(name)
            out.append(env.get(name, ""))
            index = found.end()
    return "".join(out)


def _braced(body: str, env: Mapping[str, str], *, where: str, record: Substitution) -> str:
    found = _NAME.match(body)
    if found is None:
        raise InterpolationError(f"{where}: invalid substitution ${{{body}}}")
    name = found.group()
    rest = body[found.end() :]
    record.used.add(name)
    value = env.get(name)
    if not rest:
        if value is None:
            record.unset.add(name)
        return value or ""
    for operator in _OPERATORS:
        if not rest.startswith(operator):
            continue
        argument = rest[len(operator) :]
        holds = bool(value) if operator.startswith(":") else value is not None
        kind = operator[-1]
        if kind == "-":
            if holds:
                return value or ""
            return interpolate(argument, env, where=where, record=record)
        if kind == "?":
            if holds:
                return value or ""
            message = interpolate(argument, env, where=where, record=record)
            raise MissingVariable(name, message, where)
        return interpolate(argument, env, where=where, record=record) if holds else ""
    raise InterpolationError(f"{where}: invalid substitution ${{{body}}}")


def variables_in(text: str) -> set[str]:
    """Every variable name a string refers to, also inside defaults (`$$` escapes excluded)."""
    names: set[str] = set()
    index = 0
    while index < len(text):
        if text[index] != "$":
            index += 1
            continue
        following = text[index + 1 : index + 2]
        if following == "$":
            index += 2
        elif following == "{":
            end = _closing_brace(text, index + 1)
            body = text[index + 2 : end]
            found = _NAME.match(body)
            if found is not None:
                names.add(found.group())
                rest = body[found.end() :]
                for operator in _OPERATORS:
                    if rest.startswith(operator):
                        names |= variables_in(rest[len(operator) :])
                        break
            index = end + 1
        else:
            found = _NAME.match(text, index + 1)
            if found is not None:
                names.add(found.group())
                index = found.end()
            else:
                index += 1
    return names


def _interpolate_tree(
    value: Any, env: Mapping[str, str], *, where: str, record: Substitution
) -> Any:
    if isinstance(value, str):
        return interpolate(value, env, where=where, record=record)
    if isinstance(value, dict):
        return {
            key: _interpolate_tree(item, env, where=f"{where}/{key}", record=record)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate_tree(item, env, where=f"{where}/{number}", record=record)
            for number, item in enumerate(value)
        ]
    return value


def shell_expand(text: str, env: Mapping[str, str]) -> str:
    """`$NAME` and `${NAME}` expanded as a POSIX shell would inside double quotes."""

    def replace(found: re.Match[str]) -> str:
        return env.get(found.group(1) or found.group(2), "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", replace, text)


@dataclass(frozen=True)
class PublishedPort:
    service: str
    host_ip: str
    published: int
    target: int
    protocol: str


@dataclass(frozen=True)
class Mount:
    """One entry of a service's `volumes`: a bind mount (`source` is a host path) or a named
    volume (`source` is its name)."""

    kind: str  # "bind" or "volume"
    source: str
    target: str
    read_only: bool


@dataclass
class Service:
    name: str
    spec: dict[str, Any]

    @property
    def image(self) -> str | None:
        image = self.spec.get("image")
        return image if isinstance(image, str) else None

    @property
    def profiles(self) -> list[str]:
        return list(self.spec.get("profiles") or [])

    @property
    def environment(self) -> dict[str, str]:
        env = self.spec.get("environment") or {}
        if isinstance(env, list):
            pairs = (item.partition("=") for item in env)
            return {name: value for name, _, value in pairs}
        return {name: "" if value is None else str(value) for name, value in env.items()}

    @property
    def depends_on(self) -> dict[str, dict[str, Any]]:
        """Each dependency with its condition and `required` (defaults as Compose has them)."""
        value = self.spec.get("depends_on") or {}
        if isinstance(value, list):
            return {name: {"condition": "service_started", "required": True} for name in value}
        return {
            name: {
                "condition": item.get("condition", "service_started"),
                "required": item.get("required", True),
            }
            for name, item in value.items()
        }

    def argv(self) -> list[str]:
        """The drehscheibe (or image) arguments the container runs, without the program name.

        An entrypoint of `/bin/sh -c SCRIPT` is read as `exec PROGRAM ARGS...`; shell variables
        in it stay as written (see `shell_expand`)."""
        command = self.spec.get("command") or []
        entrypoint = self.spec.get("entrypoint") or []
        if isinstance(command, str):
            command = shlex.split(command)
        if list(entrypoint)[:2] == ["/bin/sh", "-c"]:
            words = shlex.split(command[0])
            if words and words[0] == "exec":
                words = words[1:]
            return words[1:] if words and words[0] == "drehscheibe" else words
        return [str(word) for word in command]

    def option(self, name: str) -> str | None:
        """The value of `--name VALUE` or `--name=VALUE` in `argv()`."""
        args = self.argv()
        for index, arg in enumerate(args):
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
        return None

    def mounts(self) -> list[Mount]:
        found: list[Mount] = []
        for entry in self.spec.get("volumes") or []:
            if isinstance(entry, dict):
                found.append(
                    Mount(
                        kind=str(entry.get("type", "volume")),
                        source=str(entry.get("source", "")),
                        target=str(entry["target"]),
                        read_only=bool(entry.get("read_only", False)),
                    )
                )
                continue
            parts = str(entry).split(":")
            if len(parts) == 1:
                found.append(Mount("volume", "", parts[0], False))
                continue
            source, target = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else "rw"
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            found.append(Mount(kind, source, target, "ro" in mode.split(",")))
        return found

    def host_path(self, container_path: str, root: Path) -> Path | None:
        """Where a container path of a bind mount is in the repository (`root`), if it is."""
        best: Mount | None = None
        for mount in self.mounts():
            inside = container_path == mount.target or container_path.startswith(
                mount.target.rstrip("/") + "/"
            )
            longer = best is None or len(mount.target) > len(best.target)
            if mount.kind == "bind" and inside and longer:
                best = mount
        if best is None:
            return None
        relative = container_path[len(best.target) :].lstrip("/")
        base = (root / best.source).resolve()
        return base / relative if relative else base

    def volume_for(self, container_path: str) -> Mount | None:
        """The named volume that holds `container_path`, if one does."""
        for mount in self.mounts():
            target = mount.target.rstrip("/")
            if mount.kind == "volume" and (
                container_path == target or container_path.startswith(target + "/")
            ):
                return mount
        return None

    def ports(self) -> list[PublishedPort]:
        found: list[PublishedPort] = []
        for entry in self.spec.get("ports") or []:
            if isinstance(entry, dict):
                if entry.get("published") in (None, ""):
                    continue
                found.append(
                    PublishedPort(
                        self.name,
                        str(entry.get("host_ip", "")),
                        int(entry["published"]),
                        int(entry["target"]),
                        str(entry.get("protocol", "tcp")),
                    )
                )
                continue
            text, _, protocol = str(entry).partition("/")
            parts = text.rsplit(":", 2)
            if len(parts) == 1:
                continue  # only a container port: Docker picks a free host port
            host_ip = parts[0].strip("[]") if len(parts) == 3 else ""
            found.append(
                PublishedPort(self.name, host_ip, int(parts[-2]), int(parts[-1]), protocol or "tcp")
            )
        return found

    def healthcheck_url(self) -> str | None:
        """The first http URL in the service's health check test, if any."""
        test = (self.spec.get("healthcheck") or {}).get("test")
        text = " ".join(test) if isinstance(test, list) else str(test or "")
        found = re.search(r"https?://[^\s'\"]+", text)
        return found.group() if found else None


@dataclass
class Compose:
    """The interpolated compose document, its services, and what interpolation used."""

    path: Path
    document: dict[str, Any]
    substitution: Substitution

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def services(self) -> dict[str, Service]:
        return {name: Service(name, spec) for name, spec in self.document["services"].items()}

    def service(self, name: str) -> Service:
        services = self.services
        if name not in services:
            raise AssertionError(f"{self.path.name}: no service {name!r} (have {sorted(services)})")
        return services[name]

    def running(self, *words: str) -> list[Service]:
        """The services whose command line starts with `words` (e.g. "consume", "run")."""
        return [s for s in self.services.values() if s.argv()[: len(words)] == list(words)]

    def by_url(self, url: str) -> Service:
        """The service a URL inside the compose network names by its host."""
        host = urlsplit(url).hostname or ""
        return self.service(host)


def load_compose(path: Path, env: Mapping[str, str]) -> Compose:
    """`path` as Compose reads it with the variables `env` (see the module docstring)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    record = Substitution()
    interpolated = _interpolate_tree(document, env, where=path.name, record=record)
    return Compose(path=path, document=interpolated, substitution=record)
