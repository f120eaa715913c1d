"""Mapping: a decoded uplink of a registered device → Smart Data Models entities in NGSI-LD.

    mapped = map_uplink(uplink, measurements, device, profile, now=now, config=config)
    mapped.entities       # normalized entities, each with its subject's @context URL
    mapped.warnings       # values left out or flagged, with device, entity and attribute

The observation entities belong to the device's measuring point and point at the Device with
`refDevice`; the Device gets what the agent owns of it (battery, rssi, dateLastValueReported).
All of them are meant for `upsert` with `options=update`. Per uplink nothing builds a model or
runs a JSON Schema: each value is checked by its model field's validator, and each profile's
entity shapes are validated once (`validate_profile_shapes`).
"""

from agents.mapping._errors import (
    MappingError,
    MappingErrorReason,
    MappingWarning,
    MappingWarningReason,
)
from agents.mapping._map import (
    DEFAULT_MAPPING_CONFIG,
    QUALITY_IMPLAUSIBLE,
    RSSI_UNIT,
    SNR_UNIT,
    MappedUplink,
    MappingConfig,
    TimeSourceUsed,
    assemble_observation,
    map_uplink,
)
from agents.mapping._plan import AttributePlan, EntityPlan, ProfilePlan, compile_profile
from agents.mapping._shape import (
    SAMPLE_DEV_EUI,
    ShapeReport,
    sample_uplink,
    validate_mapped,
    validate_profile_shapes,
)

__all__ = [
    "DEFAULT_MAPPING_CONFIG",
    "QUALITY_IMPLAUSIBLE",
    "RSSI_UNIT",
    "SAMPLE_DEV_EUI",
    "SNR_UNIT",
    "AttributePlan",
    "EntityPlan",
    "MappedUplink",
    "MappingConfig",
    "MappingError",
    "MappingErrorReason",
    "MappingWarning",
    "MappingWarningReason",
    "ProfilePlan",
    "ShapeReport",
    "TimeSourceUsed",
    "assemble_observation",
    "compile_profile",
    "map_uplink",
    "sample_uplink",
    "validate_mapped",
    "validate_profile_shapes",
]
