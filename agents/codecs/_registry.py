"""Codec factories by name, each building a fresh codec from a configuration mapping.

A device profile names its codec (`cayennelpp`, `network-server`, `javascript`) and gives it a
configuration block; `CodecRegistry.create(name, config)` builds the codec, validating the block
(unknown keys are refused). `default_registry()` returns a new registry holding the built-in
codecs; callers add their own with `register`. There is no module-level registry to mutate.

`javascript` configuration:

    file: codecs/th-sensor.js          # a codec script, or
    codec: vendor/acme/th-sensor.yaml  # a Device Repository codec file (examples checked)
    base_dir: /etc/drehscheibe/profiles  # relative paths resolve here (default: working dir)
    entry: decodeUplink                # optional: decodeUplink | Decoder | Decode
    output: decoded                    # or normalized (normalizeUplink's result)
    variables: {apiKey: "..."}         # ChirpStack device variables
    time_limit_ms: 100
    memory_limit_mib: 16
    check_examples: true
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.codecs._base import Codec, CodecError
from agents.codecs._cayennelpp import CayenneLPPCodec
from agents.codecs._javascript import (
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_TIME_LIMIT,
    EntryPoint,
    JavaScriptCodec,
    load_device_repository_codec,
)
from agents.codecs._network_server import NetworkServerCodec

__all__ = [
    "CodecFactory",
    "CodecRegistry",
    "JavaScriptConfig",
    "create_codec",
    "default_registry",
    "javascript_codec",
]

CodecFactory = Callable[[Mapping[str, Any]], Codec]
"""Builds one codec from its configuration block; raises `CodecError("bad-config")`."""


class JavaScriptConfig(BaseModel):
    """Configuration of the `javascript` codec (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = None
    codec: Path | None = None
    base_dir: Path | None = None
    entry: EntryPoint | None = None
    output: Literal["decoded", "normalized"] = "decoded"
    variables: dict[str, str] = Field(default_factory=dict)
    time_limit_ms: float = Field(default=DEFAULT_TIME_LIMIT * 1000, gt=0, le=60_000)
    memory_limit_mib: float = Field(default=DEFAULT_MEMORY_LIMIT / 2**20, ge=1, le=1024)
    check_examples: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> JavaScriptConfig:
        if (self.file is None) == (self.codec is None):
            raise ValueError("give exactly one of 'file' (a script) and 'codec' (a codec YAML)")
        if self.codec is not None and self.entry is not None:
            raise ValueError("'entry' applies to 'file' only; a codec YAML uses decodeUplink")
        return self

    def resolve(self, path: Path) -> Path:
        """`path` against `base_dir` when it is relative."""
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path


def javascript_codec(config: Mapping[str, Any]) -> JavaScriptCodec:
    """The `javascript` factory."""
    try:
        options = JavaScriptConfig.model_validate(dict(config))
    except ValidationError as error:
        raise CodecError("bad-config", f"javascript: {_first(error)}") from None
    limits: dict[str, Any] = {
        "time_limit": options.time_limit_ms / 1000,
        "memory_limit": int(options.memory_limit_mib * 2**20),
        "output": options.output,
        "variables": options.variables,
    }
    if options.codec is not None:
        return load_device_repository_codec(
            options.resolve(options.codec), check_examples=options.check_examples, **limits
        )
    assert options.file is not None
    return JavaScriptCodec.from_file(options.resolve(options.file), entry=options.entry, **limits)


def _first(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


class CodecRegistry:
    """Codec factories by name. Not thread-safe for `register`; `create` may run anywhere."""

    def __init__(self) -> None:
        self._factories: dict[str, CodecFactory] = {}

    def register(self, name: str, factory: CodecFactory, *, replace: bool = False) -> None:
        """Add a factory; an existing name is refused unless `replace`."""
        if name in self._factories and not replace:
            raise ValueError(f"a codec named {name!r} is registered already")
        self._factories[name] = factory

    def names(self) -> list[str]:
        """The registered codec names, sorted."""
        return sorted(self._factories)

    def create(self, name: str, config: Mapping[str, Any] | None = None) -> Codec:
        """A new codec `name` built from `config`; `CodecError("unknown-codec")` for a bad name."""
        factory = self._factories.get(name)
        if factory is None:
            raise CodecError(
                "unknown-codec",
                f"no codec named {name!r}; known: {', '.join(self.names()) or 'none'}",
            )
        return factory(dict(config or {}))


def default_registry() -> CodecRegistry:
    """A new registry with the built-in codecs: `cayennelpp`, `network-server`, `javascript`."""
    registry = CodecRegistry()
    registry.register("cayennelpp", CayenneLPPCodec)
    registry.register("network-server", NetworkServerCodec)
    registry.register("javascript", javascript_codec)
    return registry


def create_codec(name: str, config: Mapping[str, Any] | None = None) -> Codec:
    """Build a built-in codec by name (a shortcut for `default_registry().create`)."""
    return default_registry().create(name, config)
