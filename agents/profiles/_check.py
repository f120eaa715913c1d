"""Checks of a profile against the Smart Data Models classes of `models`.

The JSON Schema checks a profile's structure; these check its meaning: the entity types exist,
every target attribute is one the model declares (or is marked `extra`), is a Property the
agent may write, has a unit when it holds a number, and every constant validates.

`field_adapter(model, attribute)` gives the pydantic validator of one attribute's value, which
the mapping also uses to check each value of each uplink without building a whole model.
"""

from __future__ import annotations

import difflib
import functools
import typing
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Tag, TypeAdapter, ValidationError

from agents.profiles._errors import ProfileProblem
from agents.profiles._model import AttributeSpec, DeviceProfile, MapValues
from models import Device, SmartDataModel, UnknownModel
from models import default_registry as model_registry

__all__ = [
    "AGENT_OBSERVATION_ATTRIBUTES",
    "DEVICE_MEASURED_ATTRIBUTES",
    "TIME_ATTRIBUTES",
    "check_profile",
    "field_adapter",
    "model_for",
    "time_attribute",
    "value_validator",
]

TIME_ATTRIBUTES = ("dateObserved", "observationDateTime", "timeInstant")
"""The attribute that states when an observation was made, in order of preference."""

AGENT_OBSERVATION_ATTRIBUTES = frozenset(
    {
        "id",
        "type",
        "location",
        "refDevice",
        "dateObservedFrom",
        "dateObservedTo",
        "dataProvider",
        "source",
        *TIME_ATTRIBUTES,
    }
)
"""Attributes of an observation entity the mapping writes itself; a profile cannot map them."""

DEVICE_MEASURED_ATTRIBUTES = frozenset(
    {
        "batteryLevel",
        "value",
        "distance",
        "depth",
        "direction",
        "relativePosition",
        "firmwareVersion",
        "softwareVersion",
        "hardwareVersion",
        "osVersion",
        "dstAware",
    }
)
"""Device attributes a device may report about itself, which a profile may map from an uplink.
Everything else on the Device belongs to its registration (or to the radio metadata)."""


def model_for(entity_type: str) -> type[SmartDataModel]:
    """The models class of `entity_type`; `UnknownModel` if the project ships none."""
    return model_registry.model(entity_type)


@functools.cache
def field_adapter(model: type[SmartDataModel], attribute: str) -> TypeAdapter[Any] | None:
    """The validator of a plain value of `attribute` (official name) of `model`; None for an
    attribute the model does not declare."""
    field_name = model._field_names.get(attribute)
    if field_name is None:
        return None
    annotation: Any = model.model_fields[field_name].annotation
    return TypeAdapter(annotation)


def _plain_branch(annotation: Any) -> Any | None:
    """`T` of a field annotated `Measurable[T]` (optional or not), with T's own validators."""
    candidates = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if getattr(annotation, "__metadata__", None) is not None:
        candidates = [annotation]
    for candidate in candidates:
        union = typing.get_args(candidate)[0] if hasattr(candidate, "__metadata__") else None
        for branch in typing.get_args(union) if union is not None else ():
            metadata = getattr(branch, "__metadata__", ())
            if any(isinstance(item, Tag) and item.tag == "plain" for item in metadata):
                rest = tuple(item for item in metadata if not isinstance(item, Tag))
                return Annotated[(branch.__origin__, *rest)] if rest else branch.__origin__
    return None


@functools.cache
def value_validator(model: type[SmartDataModel], attribute: str) -> Callable[[Any], Any] | None:
    """A fast validator of one plain value of `attribute` of `model` (the `T` of its
    `Measurable[T]`, without the Measured branch): returns the value as the model would hold it,
    raises `pydantic.ValidationError`. None for an attribute the model does not declare."""
    adapter = field_adapter(model, attribute)
    if adapter is None:
        return None
    field_name = model._field_names[attribute]
    plain = _plain_branch(model.model_fields[field_name].annotation)
    if plain is None:
        return adapter.validate_python
    plain_adapter: TypeAdapter[Any] = TypeAdapter(plain)
    validator: Callable[[Any], Any] = plain_adapter.validator.validate_python
    return validator


def time_attribute(model: type[SmartDataModel]) -> str | None:
    """The attribute of `model` that says when an observation was made, if it has one."""
    declared = model._attribute_kinds
    for name in TIME_ATTRIBUTES:
        if name in declared:
            return name
    return None


def _accepts(adapter: TypeAdapter[Any], value: object) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def _first_error(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    return str(first["msg"]).removeprefix("Value error, ")


def _check_attribute(
    model: type[SmartDataModel],
    name: str,
    spec: AttributeSpec,
    path: str,
    problems: list[ProfileProblem],
) -> None:
    adapter = field_adapter(model, name)
    type_name = model.type_name()
    if adapter is None:
        if not spec.extra:
            close = difflib.get_close_matches(name, model.attribute_names(), n=3)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            problems.append(
                ProfileProblem(
                    path=path,
                    message=f"{type_name} declares no attribute {name!r}{hint}; set "
                    "`extra: true` to write it anyway",
                )
            )
            return
        if not spec.unit_given:
            problems.append(
                ProfileProblem(
                    path=f"{path}/unit",
                    message=f"{name!r} is not a {type_name} attribute, so it has no default "
                    "unit: state `unit:` (a UN/CEFACT code, null for text and flags)",
                )
            )
        return
    if model.attribute_type(name) != "Property":
        problems.append(
            ProfileProblem(
                path=path,
                message=f"{type_name}.{name} is a {model.attribute_type(name)}; a profile maps "
                "measurements to Properties only",
            )
        )
        return
    ends_in_map = bool(spec.transforms) and isinstance(spec.transforms[-1], MapValues)
    numeric = _accepts(adapter, 1) or _accepts(adapter, 0.5)
    if (
        numeric
        and not ends_in_map
        and not spec.unit_given
        and model.default_unit(name) is None
        and not _accepts(adapter, True)
    ):
        problems.append(
            ProfileProblem(
                path=f"{path}/unit",
                message=f"{type_name}.{name} holds a number and the model has no default unit "
                "for it: state `unit:` (a UN/CEFACT code; C62 for counts and fractions)",
            )
        )


def check_profile(profile: DeviceProfile) -> list[ProfileProblem]:
    """Every problem of `profile` against the `models` classes (empty when it is usable)."""
    problems: list[ProfileProblem] = []
    seen: dict[str, int] = {}
    for index, entity in enumerate(profile.entities):
        base = f"entities/{index}"
        if entity.key in seen:
            problems.append(
                ProfileProblem(
                    path=base,
                    message=f"entities/{seen[entity.key]} writes {entity.key} already: give "
                    "each entity of one type its own id_suffix",
                )
            )
        seen.setdefault(entity.key, index)
        try:
            model = model_for(entity.type)
        except UnknownModel as exc:
            problems.append(ProfileProblem(path=f"{base}/type", message=str(exc)))
            continue
        if entity.period is not None and "dateObservedFrom" not in model._attribute_kinds:
            problems.append(
                ProfileProblem(
                    path=f"{base}/period",
                    message=f"{entity.type} has no dateObservedFrom/dateObservedTo",
                )
            )
        if (
            "dateObservedFrom" in model.model_fields
            and model.model_fields["dateObservedFrom"].is_required()
            and entity.period is None
            and profile.reporting_interval is None
        ):
            problems.append(
                ProfileProblem(
                    path=base,
                    message=f"{entity.type} is an observation over a period: set `period` "
                    "(seconds) or the profile's `reporting_interval`",
                )
            )
        for name, spec in entity.attributes.items():
            path = f"{base}/attributes/{name}"
            if name in AGENT_OBSERVATION_ATTRIBUTES:
                problems.append(
                    ProfileProblem(
                        path=path,
                        message=f"{name!r} is written by the agent itself (time, location, "
                        "refDevice, dataProvider, source); map another attribute",
                    )
                )
                continue
            _check_attribute(model, name, spec, path, problems)
        for name, value in entity.static.items():
            path = f"{base}/static/{name}"
            adapter = field_adapter(model, name)
            if name in AGENT_OBSERVATION_ATTRIBUTES or name in entity.attributes:
                problems.append(
                    ProfileProblem(path=path, message=f"{name!r} is written from the uplink")
                )
            elif adapter is None:
                problems.append(
                    ProfileProblem(
                        path=path, message=f"{entity.type} declares no attribute {name!r}"
                    )
                )
            else:
                try:
                    adapter.validate_python(value)
                except ValidationError as exc:
                    problems.append(ProfileProblem(path=path, message=_first_error(exc)))
    for name, spec in profile.device.attributes.items():
        path = f"device/attributes/{name}"
        if name not in DEVICE_MEASURED_ATTRIBUTES and not spec.extra:
            problems.append(
                ProfileProblem(
                    path=path,
                    message=f"a profile maps only what a device reports about itself to the "
                    f"Device ({', '.join(sorted(DEVICE_MEASURED_ATTRIBUTES))}); {name!r} "
                    "belongs to the registration or the radio metadata",
                )
            )
            continue
        _check_attribute(Device, name, spec, path, problems)
    if profile.time.format == "iso8601" and profile.time.field is None:
        problems.append(
            ProfileProblem(path="time/format", message="a format needs `field` (the timestamp)")
        )
    return problems
