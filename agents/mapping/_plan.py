"""A profile compiled for the hot path: everything that does not depend on the uplink, decided
once.

For each entity and attribute the plan holds the measurement names to look for, the transform
steps as functions, the unit code, the plausible range, and the validator of the attribute's
value taken from the `models` class (`field_adapter`): each uplink's values are checked by the
same pydantic types the model uses, without building the model. What the model would decide
about the entity's shape (which attribute is the observation time and whether it is a typed
date-time, whether `refDevice` is a list, whether a location is required, the constant
attributes) is decided here by asking the model once.

`compile_profile(profile)` compiles once per profile object and keeps the plan.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from agents.mapping._errors import MappingError
from agents.profiles import (
    AttributeSpec,
    DeviceProfile,
    EntitySpec,
    ProfileError,
    Round,
    Step,
    check_profile,
    field_adapter,
    model_for,
    time_attribute,
    value_validator,
)
from models import Device, SmartDataModel

__all__ = ["AttributePlan", "EntityPlan", "ProfilePlan", "compile_profile", "compiled_plan"]

_lock = threading.Lock()
_SAMPLE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
_SAMPLE_REF = "urn:ngsi-ld:Device:0000000000000000"


class AttributePlan:
    """One target attribute, ready to fill from measurements."""

    __slots__ = (
        "entity_type",
        "name",
        "plausible",
        "plausible_text",
        "rounding",
        "sources",
        "steps",
        "unit",
        "validate",
    )

    def __init__(
        self, name: str, spec: AttributeSpec, model: type[SmartDataModel], entity_type: str
    ) -> None:
        self.name = name
        self.entity_type = entity_type
        self.sources = spec.source
        self.steps: tuple[Step, ...] = tuple(transform.step() for transform in spec.transforms)
        rounds = [transform for transform in spec.transforms if isinstance(transform, Round)]
        self.rounding: Step | None = rounds[-1].step() if rounds else None
        self.unit = spec.unit if spec.unit_given else model.default_unit(name)
        self.plausible: tuple[float, float] | None = None
        self.plausible_text = ""
        if spec.plausible is not None:
            low = spec.plausible.min if spec.plausible.min is not None else float("-inf")
            high = spec.plausible.max if spec.plausible.max is not None else float("inf")
            self.plausible = (low, high)
            self.plausible_text = str(spec.plausible)
        self.validate: Callable[[Any], Any] | None = value_validator(model, name)


class EntityPlan:
    """One observation entity of the profile."""

    __slots__ = (
        "attributes",
        "context",
        "id_suffix",
        "location_required",
        "model",
        "period",
        "ref_as_list",
        "requires",
        "static",
        "time_attribute",
        "time_interval_text",
        "time_typed",
        "type",
    )

    def __init__(self, spec: EntitySpec, profile: DeviceProfile) -> None:
        model = model_for(spec.type)
        self.model = model
        self.type = spec.type
        self.context = model.context_url()
        self.id_suffix = spec.id_suffix
        self.requires = spec.requires
        self.attributes = tuple(
            AttributePlan(name, attribute, model, spec.type)
            for name, attribute in spec.attributes.items()
        )
        declared = model._attribute_kinds
        self.time_attribute = time_attribute(model)
        self.time_typed = self.time_attribute is not None and _is_typed_datetime(
            model, self.time_attribute
        )
        has_period = "dateObservedFrom" in declared and "dateObservedTo" in declared
        period = spec.period
        if period is None and has_period and model.model_fields["dateObservedFrom"].is_required():
            period = profile.reporting_interval
        self.period: float | None = period if has_period else None
        self.time_interval_text = (
            self.period is not None and self.time_attribute is not None and not self.time_typed
        )
        self.ref_as_list: bool | None = _ref_is_list(model) if "refDevice" in declared else None
        location = model.model_fields.get("location")
        self.location_required = location is not None and location.is_required()
        self.static = _static_attributes(model, spec.static)


def _is_typed_datetime(model: type[SmartDataModel], attribute: str) -> bool:
    adapter = field_adapter(model, attribute)
    assert adapter is not None
    return isinstance(adapter.validate_python(_SAMPLE_TIME), datetime)


def _ref_is_list(model: type[SmartDataModel]) -> bool:
    adapter = field_adapter(model, "refDevice")
    assert adapter is not None
    try:
        adapter.validate_python(_SAMPLE_REF)
    except ValidationError:
        return True
    return False


def _static_attributes(model: type[SmartDataModel], static: dict[str, Any]) -> dict[str, Any]:
    """The constant attributes in normalized form, rendered by the model itself."""
    if not static:
        return {}
    out: dict[str, Any] = {}
    for name, value in static.items():
        kind = model.attribute_type(name)
        if kind == "Relationship":
            out[name] = {"type": "Relationship", "object": value}
        elif kind == "GeoProperty":
            out[name] = {"type": "GeoProperty", "value": value}
        else:
            out[name] = {"type": "Property", "value": value}
            unit = model.default_unit(name)
            if unit is not None:
                out[name]["unitCode"] = unit
    return out


class ProfilePlan:
    """A compiled profile: its entity plans, the Device attribute plans, time and location."""

    __slots__ = (
        "device_attributes",
        "entities",
        "location",
        "profile",
        "radio",
        "source_names",
        "time_field",
        "time_format",
        "time_prefer",
    )

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile
        self.entities = tuple(EntityPlan(spec, profile) for spec in profile.entities)
        self.device_attributes = tuple(
            AttributePlan(name, spec, Device, "Device")
            for name, spec in profile.device.attributes.items()
        )
        self.radio = profile.device.radio
        self.time_prefer = profile.time.prefer
        self.time_field = profile.time.field
        self.time_format = profile.time.format
        self.location = profile.location
        self.source_names = frozenset(profile.measurement_names())


_PLANS: dict[int, tuple[DeviceProfile, ProfilePlan]] = {}
_MAX_PLANS = 4096


def compiled_plan(profile: DeviceProfile) -> ProfilePlan:
    """The plan of `profile` (compiled on first use): the hot path's lookup, by identity."""
    found = _PLANS.get(id(profile))
    if found is not None and found[0] is profile:
        return found[1]
    return compile_profile(profile)


def compile_profile(profile: DeviceProfile) -> ProfilePlan:
    """The plan of `profile`, compiled on first use and kept while the profile lives (plans are
    kept by the profile's identity; profiles are frozen).

    A profile built in code (not through the catalog) is checked here; raises `MappingError`
    (`bad-profile`) listing its problems.
    """
    with _lock:
        found = _PLANS.get(id(profile))
        if found is not None and found[0] is profile:
            return found[1]
        problems = check_profile(profile)
        if problems:
            error = ProfileError(problems, source=str(profile.path or profile.name))
            raise MappingError("bad-profile", str(error))
        plan = ProfilePlan(profile)
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[id(profile)] = (profile, plan)
        return plan
