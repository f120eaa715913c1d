"""Reading profiles: YAML files, the built-in ones, and the catalog that holds them by name.

A profile file is checked in three passes: the JSON Schema `device-profile` (structure; built-in
files, which the test suite checks, skip it), the pydantic types (values), and `check_profile`
(meaning, against the Smart Data Models classes). Every problem is reported with the file, the
path inside the document and its line (`traffic.yaml:14: entities/0/attributes/intensity/unit:
...`).

`extends: <name>` takes the named profile's top-level members where the file does not state
them (a whole member is replaced, never merged): a profile for a codec with `normalizeUplink`
is `extends: ttn-normalized` plus its own `codec`. In the profiles folder, a file named like a
built-in profile overrides it; such a file that `extends` its own name extends the built-in.

The catalog (`ProfileCatalog`) loads the built-in profiles and those of an admin's folder
(`*.yaml`, `*.yml`), user ones overriding built-ins of the same name. A file that fails to load
does not stop the others: `catalog.get(name)` raises its `ProfileError`, `catalog.problems()`
lists them all.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from agents.codecs import Codec, CodecRegistry, default_registry
from agents.profiles._check import check_profile
from agents.profiles._errors import ProfileError, ProfileNotFound, ProfileProblem
from agents.profiles._model import DeviceProfile, map_key
from schemas import validate_document

__all__ = [
    "BUILTIN_PROFILES_DIR",
    "PROFILE_SCHEMA",
    "ProfileCatalog",
    "ProfileEntry",
    "ProfileOrigin",
    "load_profile",
    "parse_profile",
]

BUILTIN_PROFILES_DIR = Path(__file__).resolve().parent / "builtin"
"""Where the built-in profiles are (package data)."""

PROFILE_SCHEMA = "device-profile"
"""The name of the profile's JSON Schema in `schemas/`."""

ProfileOrigin = Literal["builtin", "user"]

_SUFFIXES = (".yaml", ".yml")
_TRANSFORM_CLASSES = frozenset({"Scale", "Offset", "Round", "Clamp", "MapValues"})

Resolver = Callable[[str, str], "_Loaded"]
"""(name wanted, name of the profile asking) → the loaded base profile."""


class _Document:
    """One profile file read as YAML: the data and the node tree for line numbers."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        try:
            self.root: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise ProfileError(
                [ProfileProblem(path="", message=f"not valid YAML: {problem}", line=line)],
                source=source,
            ) from None
        if not isinstance(data, dict):
            raise ProfileError(
                [ProfileProblem(path="", message="a profile is a YAML mapping (name: ..., ...)")],
                source=source,
            )
        self.data: dict[str, Any] = _text_map_keys(data)

    def line(self, path: str) -> int | None:
        return _line_of(self.root, path)

    def problem(self, path: str, message: str) -> ProfileProblem:
        return ProfileProblem(path=path, message=message, line=self.line(path))


class _Loaded(BaseModel):
    """A profile with the raw document it was made from (for profiles that extend it)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    profile: DeviceProfile
    data: dict[str, Any]


class ProfileEntry(BaseModel):
    """One profile of a catalog, for listings: where it comes from and whether it overrides
    a built-in profile; `error` is set (and the rest is partial) when it failed to load."""

    model_config = ConfigDict(frozen=True)

    name: str
    origin: ProfileOrigin
    path: str | None = None
    description: str = ""
    codec: str | None = None
    entity_types: list[str] = []
    extends: str | None = None
    overrides_builtin: bool = False
    error: str | None = None


def _text_map_keys(data: Any) -> Any:
    """YAML reads `0:` and `true:` as numbers and booleans; enum map keys are text."""
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            if key == "map" and isinstance(value, dict):
                out[key] = {map_key(item): entry for item, entry in value.items()}
            else:
                out[key] = _text_map_keys(value)
        return out
    if isinstance(data, list):
        return [_text_map_keys(item) for item in data]
    return data


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


def _readable(path: str, rule: str, message: str) -> str:
    """The schema's message, with what is expected where the bare rule says little."""
    if rule == "pattern" and path.endswith("/unit"):
        return (
            f"{message.split(' does not match')[0]} is not a UN/CEFACT common code: use CEL (°C), "
            "P1 (%), 59 (ppm), GQ (µg/m³), A97 (hPa), MTR (m), MTS (m/s), DD (°), 2N (dB), "
            "KMH (km/h), LUX, MMT (mm), C62 (counts)"
        )
    if rule == "oneOf" and "/transforms/" in path:
        return "a transform step has exactly one of scale, offset, round, clamp, map"
    if rule == "pattern" and path.endswith("name"):
        return (
            f"{message.split(' does not match')[0]} is not a profile name: lower-case letters, "
            "digits, '.', '_' and '-'"
        )
    return message


def _pydantic_path(loc: tuple[int | str, ...]) -> str:
    steps = [str(step) for step in loc if str(step) not in _TRANSFORM_CLASSES]
    return "/".join(step for step in steps if not step.startswith("function-"))


def _build(
    document: _Document,
    *,
    path: Path | None,
    builtin: bool,
    resolve: Resolver | None,
) -> _Loaded:
    # built-in profiles are package data the test suite checks against the schema; skipping
    # it here spares every agent and CLI start the JSON Schema machinery when no admin file
    # needs it
    violations = [] if builtin else validate_document(PROFILE_SCHEMA, document.data)
    if violations:
        raise ProfileError(
            [document.problem(v.path, _readable(v.path, v.rule, v.message)) for v in violations],
            source=document.source,
        )
    data = dict(document.data)
    base_dir = path.parent if path is not None else None
    extends = data.get("extends")
    if isinstance(extends, str):
        if resolve is None:
            raise ProfileError(
                [document.problem("extends", "profiles can only extend others in a catalog")],
                source=document.source,
            )
        try:
            base = resolve(extends, str(data["name"]))
        except (ProfileNotFound, ProfileError) as exc:
            raise ProfileError(
                [document.problem("extends", f"cannot extend {extends!r}: {exc}")],
                source=document.source,
            ) from None
        if "codec" not in data:
            base_dir = base.profile.base_dir
        merged = {key: value for key, value in base.data.items() if key != "description"}
        merged.update(data)
        data = merged
    try:
        profile = DeviceProfile.model_validate(
            {**data, "path": path, "builtin": builtin, "base_dir": base_dir}
        )
    except ValidationError as exc:
        problems = [
            document.problem(_pydantic_path(error["loc"]), str(error["msg"]))
            for error in exc.errors(include_url=False)
        ]
        raise ProfileError(problems, source=document.source) from None
    problems = [document.problem(p.path, p.message) for p in check_profile(profile)]
    if problems:
        raise ProfileError(problems, source=document.source)
    return _Loaded(profile=profile, data=data)


def parse_profile(
    text: str,
    *,
    source: str = "<profile>",
    path: Path | None = None,
    builtin: bool = False,
    resolve: Callable[[str], DeviceProfile] | None = None,
) -> DeviceProfile:
    """A profile from YAML text; raises `ProfileError` listing every problem.

    `path` is the file (codec paths resolve next to it); `resolve(name)` finds the profile an
    `extends` names (without it, a profile that extends another is refused).
    """
    document = _Document(text, source)
    resolver: Resolver | None = None
    if resolve is not None:
        lookup = resolve

        def resolver(name: str, _asking: str) -> _Loaded:
            base = lookup(name)
            return _Loaded(profile=base, data=base.model_dump(exclude_unset=True))

    return _build(document, path=path, builtin=builtin, resolve=resolver).profile


def load_profile(path: str | Path, *, catalog: ProfileCatalog | None = None) -> DeviceProfile:
    """The profile in the file `path`; `extends` resolves in `catalog` (default: the built-in
    profiles). Raises `ProfileError` (unreadable file included)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(
            [ProfileProblem(path="", message=f"cannot read: {exc}")], source=str(file)
        ) from None
    found = catalog if catalog is not None else ProfileCatalog()
    document = _Document(text, str(file))
    return _build(document, path=file, builtin=False, resolve=found._resolver()).profile


class ProfileCatalog:
    """The device profiles an agent knows, by name: built-in ones and those in `profiles_dir`.

    A user profile with a built-in's name overrides it (`entries()` says so). The catalog is
    loaded when made and by `reload()`; reads are safe from any thread. `codec(name)` builds a
    profile's codec once and keeps it (codecs are shareable between threads).
    """

    def __init__(
        self,
        profiles_dir: str | Path | None = None,
        *,
        builtin: bool = True,
        codecs: CodecRegistry | None = None,
    ) -> None:
        self.profiles_dir = Path(profiles_dir) if profiles_dir is not None else None
        self._with_builtin = builtin
        self._codec_registry = codecs if codecs is not None else default_registry()
        self._lock = threading.Lock()
        self._codecs: dict[str, Codec] = {}
        self._profiles: dict[str, _Loaded] = {}
        self._builtins: dict[str, _Loaded] = {}
        self._errors: dict[str, ProfileError] = {}
        self._entries: dict[str, ProfileEntry] = {}
        self.reload()

    # -- loading

    def reload(self) -> None:
        """Read the built-in profiles and the folder again (a file's changes take effect)."""
        builtin_docs = self._read_dir(BUILTIN_PROFILES_DIR) if self._with_builtin else {}
        if self.profiles_dir is not None and not self.profiles_dir.is_dir():
            raise ProfileError(
                [ProfileProblem(path="", message="the profiles folder does not exist")],
                source=str(self.profiles_dir),
            )
        user_docs = self._read_dir(self.profiles_dir) if self.profiles_dir is not None else {}
        state = _Resolution(builtin_docs, user_docs)
        state.run()
        with self._lock:
            self._builtins = state.builtins
            self._profiles = state.profiles
            self._errors = state.errors
            self._entries = state.entries
            self._codecs = {}

    @staticmethod
    def _read_dir(folder: Path) -> dict[str, tuple[Path, _Document | ProfileError]]:
        found: dict[str, tuple[Path, _Document | ProfileError]] = {}
        files = sorted(p for p in folder.iterdir() if p.suffix in _SUFFIXES and p.is_file())
        for file in files:
            try:
                document: _Document | ProfileError = _Document(
                    file.read_text(encoding="utf-8"), str(file)
                )
            except ProfileError as exc:
                document = exc
            except (OSError, UnicodeDecodeError) as exc:
                document = ProfileError(
                    [ProfileProblem(path="", message=f"cannot read: {exc}")], source=str(file)
                )
            name = file.stem
            if isinstance(document, _Document) and isinstance(document.data.get("name"), str):
                name = document.data["name"]
            if name in found:
                other = found[name][0]
                document = ProfileError(
                    [ProfileProblem(path="name", message=f"{other.name} has this name already")],
                    source=str(file),
                )
                name = f"{name} ({file.name})"
            found[name] = (file, document)
        return found

    def _resolver(self) -> Resolver:
        def resolve(name: str, asking: str) -> _Loaded:
            with self._lock:
                table = self._builtins if name == asking else self._profiles
                found = table.get(name)
                error = self._errors.get(name)
            if found is not None:
                return found
            if error is not None and name != asking:
                raise error
            raise ProfileNotFound(name, sorted(table))

        return resolve

    # -- reading

    def names(self) -> list[str]:
        """The names of the usable profiles, sorted."""
        return sorted(self._profiles)

    def __contains__(self, name: object) -> bool:
        return name in self._profiles

    def get(self, name: str) -> DeviceProfile:
        """The profile `name`; `ProfileError` if its file failed to load, else `ProfileNotFound`."""
        found = self._profiles.get(name)
        if found is not None:
            return found.profile
        error = self._errors.get(name)
        if error is not None:
            raise error
        raise ProfileNotFound(name, self.names())

    def builtin(self, name: str) -> DeviceProfile | None:
        """The built-in profile `name`, even when a user profile overrides it."""
        found = self._builtins.get(name)
        return found.profile if found is not None else None

    def entries(self) -> list[ProfileEntry]:
        """Every profile, usable or not, sorted by name, with its origin."""
        return [self._entries[name] for name in sorted(self._entries)]

    def problems(self) -> dict[str, ProfileError]:
        """The profiles that failed to load, by name (or file)."""
        return dict(self._errors)

    def codec(self, name: str) -> Codec:
        """The codec of profile `name`, built on first use and kept; raises `CodecError`
        (a codec that cannot be built), `ProfileError` or `ProfileNotFound`."""
        found = self._codecs.get(name)
        if found is not None:
            return found
        profile = self.get(name)
        codec = self._codec_registry.create(profile.codec.name, profile.codec_config())
        with self._lock:
            return self._codecs.setdefault(name, codec)


class _Resolution:
    """Builds every profile of a catalog, following `extends` with cycle detection."""

    def __init__(
        self,
        builtin_docs: Mapping[str, tuple[Path, _Document | ProfileError]],
        user_docs: Mapping[str, tuple[Path, _Document | ProfileError]],
    ) -> None:
        self.builtin_docs = builtin_docs
        self.user_docs = user_docs
        self.builtins: dict[str, _Loaded] = {}
        self.profiles: dict[str, _Loaded] = {}
        self.errors: dict[str, ProfileError] = {}
        self.entries: dict[str, ProfileEntry] = {}
        self._builtin_errors: dict[str, ProfileError] = {}
        self._active: list[tuple[str, ProfileOrigin]] = []

    def run(self) -> None:
        origins: tuple[tuple[ProfileOrigin, Mapping[str, Any]], ...] = (
            ("builtin", self.builtin_docs),
            ("user", self.user_docs),
        )
        for kind, docs in origins:
            for name in docs:
                # a failure is recorded in the errors of its origin by _load
                with contextlib.suppress(ProfileError):
                    self._load(name, kind)
        for name, loaded in self.builtins.items():
            if name not in self.user_docs:
                self.profiles[name] = loaded
        for name, error in self._builtin_errors.items():
            if name not in self.user_docs:
                self.errors[name] = error
        for name, (path, _document) in {**self.builtin_docs, **self.user_docs}.items():
            origin: ProfileOrigin = "user" if name in self.user_docs else "builtin"
            self.entries[name] = self._entry(name, origin, path)

    def _entry(self, name: str, origin: ProfileOrigin, path: Path) -> ProfileEntry:
        loaded = self.profiles.get(name)
        overrides = origin == "user" and name in self.builtin_docs
        if loaded is None:
            error = self.errors.get(name)
            return ProfileEntry(
                name=name,
                origin=origin,
                path=str(path),
                overrides_builtin=overrides,
                error=str(error) if error is not None else "not loaded",
            )
        profile = loaded.profile
        return ProfileEntry(
            name=name,
            origin=origin,
            path=str(path) if origin == "user" else None,
            description=profile.description,
            codec=profile.codec.name,
            entity_types=[entity.type for entity in profile.entities],
            extends=profile.extends,
            overrides_builtin=overrides,
        )

    def _load(self, name: str, origin: ProfileOrigin) -> _Loaded:
        table = self.builtins if origin == "builtin" else self.profiles
        errors = self._builtin_errors if origin == "builtin" else self.errors
        docs = self.builtin_docs if origin == "builtin" else self.user_docs
        if name in table:
            return table[name]
        if name in errors:
            raise errors[name]
        path, document = docs[name]
        if isinstance(document, ProfileError):
            errors[name] = document
            raise document
        if (name, origin) in self._active:
            cycle = " → ".join(n for n, _ in self._active) + f" → {name}"
            raise ProfileError(
                [document.problem("extends", f"profiles extend each other in a cycle: {cycle}")],
                source=document.source,
            )
        self._active.append((name, origin))
        try:
            loaded = _build(
                document, path=path, builtin=origin == "builtin", resolve=self._resolve_from
            )
        except ProfileError as exc:
            errors[name] = exc
            raise
        finally:
            self._active.pop()
        table[name] = loaded
        return loaded

    def _resolve_from(self, name: str, asking: str) -> _Loaded:
        asking_origin = self._active[-1][1] if self._active else "user"
        if asking_origin == "builtin" or name == asking or name not in self.user_docs:
            if name not in self.builtin_docs:
                raise ProfileNotFound(name, sorted({*self.builtin_docs, *self.user_docs}))
            return self._load(name, "builtin")
        return self._load(name, "user")
