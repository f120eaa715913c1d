"""Validating a profile's entities once, instead of every uplink's.

Per uplink the mapping checks each value with the model's own field validator and nothing more
(see `agents.mapping._map`); what is the same for every uplink of a profile (which attributes an
entity has, of which kind, the time attributes, the relationship, the constants) is checked
here, once: `validate_profile_shapes` maps a sample uplink (a value of every measurement the
profile reads, chosen so the transforms and the model accept it) through the real mapping and
validates every entity it gives with the `models` class and, given the official schemas, with
`SdmSchemas`. A profile whose sample entities validate makes entities that validate, as long as
each value passes its field validator — which the mapping enforces.

Attributes the official schema requires but the agent does not write (a ParkingSpot's
`refParkingSite`, a Device's `controlledProperty`) are not errors: they belong to the entity an
admin creates or the registration; they are listed in `ShapeReport.admin_owned`.

`validate_mapped` validates the entities of one real mapped uplink the same way (the expensive
path, for `drehscheibe profiles test` and tests).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agents.codecs import Value
from agents.lorawan import GatewayReception, Uplink
from agents.mapping._map import MappedUplink, MappingConfig, map_uplink
from agents.mapping._plan import compile_profile
from agents.profiles import AttributeSpec, DeviceProfile, MapValues, TransformError
from agents.registry import RegisteredDevice
from models import ModelError, default_registry
from schemas import SchemaNotFound, SdmSchemas

__all__ = [
    "SAMPLE_DEV_EUI",
    "ShapeReport",
    "sample_uplink",
    "validate_mapped",
    "validate_profile_shapes",
]

SAMPLE_DEV_EUI = "0000000000000000"
_SAMPLE_TIME = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
_CANDIDATES: tuple[Value, ...] = (1, 50, 0.5, 0, 21.5, 1013, 420, True, False, "sample")


class ShapeReport(BaseModel):
    """The validation of one entity: its `key` (type, or type:id_suffix, or `Device`),
    `problems` (each a line naming the attribute and what is expected) and the required
    attributes the agent leaves to the entity's owner (`admin_owned`)."""

    model_config = ConfigDict(frozen=True)

    key: str
    entity_id: str
    problems: list[str]
    admin_owned: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _sample_raw(spec: AttributeSpec, validate: Any) -> Value:
    candidates: list[Value] = []
    for step in spec.transforms:
        if isinstance(step, MapValues):
            for key in step.map:
                candidates.append(key)
                if key in ("true", "false"):
                    candidates.append(key == "true")
                else:
                    with contextlib.suppress(ValueError):
                        candidates.append(int(key))
    if spec.plausible is not None and spec.plausible.min is not None:
        high = spec.plausible.max if spec.plausible.max is not None else spec.plausible.min + 2
        candidates.append((spec.plausible.min + high) / 2)
    candidates.extend(_CANDIDATES)
    for candidate in candidates:
        try:
            value: Any = spec.transform(candidate)
            if validate is not None:
                validate(value)
        except (TransformError, ValidationError):
            continue
        return candidate
    return candidates[0]


def sample_uplink(profile: DeviceProfile) -> tuple[Uplink, dict[str, Value]]:
    """An uplink with a gateway and measurements for every source the profile reads."""
    plan = compile_profile(profile)
    data: dict[str, Value] = {}
    specs: list[tuple[AttributeSpec, Any]] = []
    for entity_spec, entity_plan in zip(profile.entities, plan.entities, strict=True):
        for attribute_plan in entity_plan.attributes:
            specs.append((entity_spec.attributes[attribute_plan.name], attribute_plan.validate))
    for attribute_plan in plan.device_attributes:
        specs.append((profile.device.attributes[attribute_plan.name], attribute_plan.validate))
    for spec, validate in specs:
        data.setdefault(spec.source[0], _sample_raw(spec, validate))
    if profile.time.field is not None:
        data[profile.time.field] = (
            "2024-05-01T11:59:00Z"
            if profile.time.format == "iso8601"
            else int((_SAMPLE_TIME - timedelta(minutes=1)).timestamp())
        )
    if profile.location is not None:
        data[profile.location.latitude[0]] = 52.52
        data[profile.location.longitude[0]] = 13.405
    uplink = Uplink(
        source="tts",
        dev_eui=SAMPLE_DEV_EUI,
        f_port=1,
        f_cnt=1,
        received_at=_SAMPLE_TIME,
        gateway_time=_SAMPLE_TIME,
        gateways=(
            GatewayReception(gateway_id="sample-gateway", rssi=-97.0, snr=7.5, time=_SAMPLE_TIME),
        ),
    )
    return uplink, data


def _check_entity(entity: dict[str, Any], sdm: SdmSchemas | None) -> tuple[list[str], list[str]]:
    body = {key: value for key, value in entity.items() if key != "@context"}
    written = set(body)
    problems: list[str] = []
    admin_owned: set[str] = set()
    model = default_registry.model(str(body["type"]))
    try:
        model.from_ngsi(body, representation="normalized")
    except ModelError as exc:
        for attribute, message in exc.problems:
            top = attribute.split("/", 1)[0]
            if message == "Field required" and top not in written:
                admin_owned.add(top)
            else:
                problems.append(f"{attribute or '(entity)'}: {message}")
    if sdm is not None:
        try:
            violations = sdm.violations(body, representation="normalized")
        except SchemaNotFound as exc:
            problems.append(str(exc))
            violations = []
        for violation in violations:
            if violation.rule == "required" and violation.attribute not in written:
                admin_owned.add(str(violation.attribute))
            else:
                problems.append(
                    f"{violation.path or '(entity)'}: {violation.rule}: {violation.message}"
                )
    return problems, sorted(admin_owned)


def validate_mapped(mapped: MappedUplink, *, sdm: SdmSchemas | None = None) -> list[ShapeReport]:
    """Validate every entity of a mapped uplink with its model and (given) official schema."""
    reports: list[ShapeReport] = []
    for entity in mapped.entities:
        problems, admin_owned = _check_entity(entity, sdm)
        reports.append(
            ShapeReport(
                key=str(entity["type"]),
                entity_id=str(entity["id"]),
                problems=problems,
                admin_owned=admin_owned,
            )
        )
    return reports


def validate_profile_shapes(
    profile: DeviceProfile, *, sdm: SdmSchemas | None = None
) -> list[ShapeReport]:
    """Map a sample uplink with `profile` and validate each entity (see the module docstring).

    Every entity of the profile appears in the sample (each is given its measurements), plus
    the Device update. Raises `MappingError` for a profile that does not compile.
    """
    compile_profile(profile)
    uplink, data = sample_uplink(profile)
    device = RegisteredDevice(
        dev_eui=SAMPLE_DEV_EUI,
        profile=profile.name,
        measuring_point="sample-point",
        location={"type": "Point", "coordinates": [13.405, 52.52]},
    )
    config = MappingConfig(data_provider="Sample City", source="https://example.org/sensors")
    mapped = map_uplink(uplink, data, device, profile, now=_SAMPLE_TIME, config=config)
    reports: list[ShapeReport] = []
    for report in validate_mapped(mapped, sdm=sdm):
        parts = report.entity_id.split(":")
        key = report.key if len(parts) == 4 else f"{report.key}:{parts[-1]}"
        reports.append(report.model_copy(update={"key": key}))
    written = {report.key for report in reports}
    missing = [entity.key for entity in profile.entities if entity.key not in written]
    if missing:
        reports.append(
            ShapeReport(
                key=", ".join(missing),
                entity_id="",
                problems=["no sample value of these entities passes their transforms and model"],
                admin_owned=[],
            )
        )
    return reports
