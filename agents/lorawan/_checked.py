"""Values of the parsers' models built from fields the parsers have checked themselves.

Compiled with the parsers (tools/native.py), apart from the models: mypyc cannot compile a
module that defines pydantic models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from agents.lorawan._uplink import GatewayReception, Location, Topic, Uplink

__all__ = ["from_checked"]

_Model = TypeVar("_Model", bound=BaseModel)
_set = object.__setattr__


class _CheckedBuilder:
    """Builds instances of one model from checked values (see `from_checked`)."""

    __slots__ = ("defaults", "factories", "model", "required", "size")

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        fields = model.model_fields
        self.defaults: dict[str, Any] = {}
        self.factories: dict[str, Callable[[], Any]] = {}
        self.required = tuple(name for name, info in fields.items() if info.is_required())
        for name, info in fields.items():
            factory = info.default_factory
            if factory is not None:
                self.factories[name] = factory  # type: ignore[assignment]
                self.defaults[name] = None  # holds the field's place in the order
            elif not info.is_required():
                self.defaults[name] = info.default
            else:
                self.defaults[name] = None
        plain = (
            all(info.alias is None and info.validation_alias is None for info in fields.values())
            and not model.__pydantic_post_init__
            and not model.__private_attributes__
            and model.model_config.get("extra") == "forbid"
        )
        if not plain:  # pragma: no cover - a guard against a model changed later
            raise TypeError(f"{model.__name__} cannot be built from checked values")
        self.size = len(self.defaults)

    def build(self, values: dict[str, Any]) -> BaseModel:
        model = self.model
        # a copy of the defaults (cloned whole) updated in place keeps the fields' order and
        # costs half of building the dict anew
        merged = self.defaults.copy()
        merged.update(values)
        if len(merged) != self.size or any(name not in values for name in self.required):
            return model.model_validate(values)  # raises: a field unknown, or one missing
        if self.factories:
            for name, factory in self.factories.items():
                if name not in values:
                    merged[name] = factory()
        instance = model.__new__(model)
        _set(instance, "__dict__", merged)
        _set(instance, "__pydantic_fields_set__", set(values))
        _set(instance, "__pydantic_extra__", None)
        _set(instance, "__pydantic_private__", None)
        return instance


_BUILDERS: dict[type[BaseModel], _CheckedBuilder] = {
    model: _CheckedBuilder(model) for model in (Uplink, GatewayReception, Location, Topic)
}


def from_checked(model: type[_Model], values: dict[str, Any]) -> _Model:
    """An `Uplink`, `GatewayReception`, `Location` or `Topic` from values a parser has checked
    itself.

    The result is what `model.model_validate(values)` returns for such values (equal, with the
    same fields set), without validating them again: the parsers' field readers have already
    checked every type and range, normalised EUIs and brought times to UTC, so the model's
    validation would repeat their work on every uplink. Nested models are passed as instances
    (build them with this function too). Only for values that passed those readers; a value
    that did not must go through `model_validate`, whose errors name the field. Values with a
    key the model does not have, or without a required one, go to `model_validate` (which
    refuses them).
    """
    builder = _BUILDERS.get(model)
    if builder is None:
        return model.model_validate(values)
    return builder.build(values)  # type: ignore[return-value]
