"""Device profiles: what one kind of device's uplinks become, as data.

A profile (YAML, checked against the JSON Schema `device-profile` of `schemas/`) names the codec,
the Smart Data Models entity types an uplink updates, and for each target attribute the
measurement it comes from, its UN/CEFACT unit code, transforms (scale, offset, round, clamp,
enum map) and a plausibility range; where `observedAt` comes from (design decision 6); a
position from the payload; what the Device entity gets (battery, radio). No expressions are
evaluated.

    catalog = ProfileCatalog("/etc/drehscheibe/profiles")   # built-ins + the admin's folder
    profile = catalog.get("air-quality-lpp")
    codec = catalog.codec("air-quality-lpp")

Built-in profiles (`agents/profiles/builtin/*.yaml`) cover common city sensors; a file in the
profiles folder with the same name overrides one. `ttn-normalized` maps The Things Network's
normalized payload once, for every codec that implements `normalizeUplink`.
"""

from agents.profiles._check import (
    AGENT_OBSERVATION_ATTRIBUTES,
    DEVICE_MEASURED_ATTRIBUTES,
    TIME_ATTRIBUTES,
    check_profile,
    field_adapter,
    model_for,
    time_attribute,
    value_validator,
)
from agents.profiles._errors import ProfileError, ProfileNotFound, ProfileProblem
from agents.profiles._load import (
    BUILTIN_PROFILES_DIR,
    PROFILE_SCHEMA,
    ProfileCatalog,
    ProfileEntry,
    ProfileOrigin,
    load_profile,
    parse_profile,
)
from agents.profiles._model import (
    DEFAULT_TIME_PREFERENCE,
    AttributeSpec,
    Clamp,
    CodecSpec,
    CommandName,
    CommandSpec,
    DeviceProfile,
    DeviceSpec,
    DownlinkEncoderSpec,
    DownlinkPriority,
    DownlinkSpec,
    EntitySpec,
    LocationSpec,
    MapValues,
    Offset,
    PlausibleRange,
    Round,
    Scale,
    TimeFormat,
    TimePreference,
    TimeSpec,
    Transform,
    TransformError,
    map_key,
)
from agents.profiles._steps import Step

__all__ = [
    "AGENT_OBSERVATION_ATTRIBUTES",
    "BUILTIN_PROFILES_DIR",
    "DEFAULT_TIME_PREFERENCE",
    "DEVICE_MEASURED_ATTRIBUTES",
    "PROFILE_SCHEMA",
    "TIME_ATTRIBUTES",
    "AttributeSpec",
    "Clamp",
    "CodecSpec",
    "CommandName",
    "CommandSpec",
    "DeviceProfile",
    "DeviceSpec",
    "DownlinkEncoderSpec",
    "DownlinkPriority",
    "DownlinkSpec",
    "EntitySpec",
    "LocationSpec",
    "MapValues",
    "Offset",
    "PlausibleRange",
    "ProfileCatalog",
    "ProfileEntry",
    "ProfileError",
    "ProfileNotFound",
    "ProfileOrigin",
    "ProfileProblem",
    "Round",
    "Scale",
    "Step",
    "TimeFormat",
    "TimePreference",
    "TimeSpec",
    "Transform",
    "TransformError",
    "check_profile",
    "field_adapter",
    "load_profile",
    "map_key",
    "model_for",
    "parse_profile",
    "time_attribute",
    "value_validator",
]
