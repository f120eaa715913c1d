"""FIWARE Smart Data Models as typed entities that become NGSI-LD.

    from models import AirQualityObserved, Measured

    aqo = AirQualityObserved(
        id="urn:ngsi-ld:AirQualityObserved:berlin-mitte",
        dateObserved="2024-05-01T12:00:00Z",
        location={"type": "Point", "coordinates": [13.40, 52.52]},
        temperature=21.3,                                   # plain: the default unit, CEL
        co2=Measured(value=612, observed_at="2024-05-01T11:59:30Z"),
        refDevice="urn:ngsi-ld:Device:70B3D57ED0000001",
    )
    aqo.to_ngsi("normalized")   # Properties with unitCode/observedAt, a GeoProperty, a Relationship
    AirQualityObserved.from_ngsi(data)          # normalized, concise or keyValues

Every type is written and read with its own subject's @context (`Model.context_url()`, the
registry's `context_url(type)`), never a merged one.
"""

from models._base import SUBJECT_CONTEXT_URL, AttributeType, ModelError, SmartDataModel
from models._contexts import context_urls, subject_context, write_subject_contexts
from models._ngsi import ReadRepresentation, Representation
from models._registry import (
    ModelInfo,
    ModelRegistry,
    UnknownModel,
    default_registry,
    entity_from_ngsi,
    model_class,
    model_info,
)
from models._schema import entity_json_schema
from models._types import (
    Address,
    DateTime,
    DateTimeText,
    EntityId,
    EntityRef,
    GeoJSON,
    Measurable,
    Measured,
    StructuredValue,
    format_datetime,
)
from models.device import Device, DeviceMeasurement, DeviceModel
from models.environment import (
    AirQualityObserved,
    FloodMonitoring,
    IndoorEnvironmentObserved,
    NoiseLevelObserved,
    WaterObserved,
)
from models.parking import OffStreetParking, OnStreetParking, ParkingSpot
from models.transportation import CrowdFlowObserved, ItemFlowObserved, TrafficFlowObserved
from models.weather import WeatherForecast, WeatherObserved

__all__ = [
    "SUBJECT_CONTEXT_URL",
    "Address",
    "AirQualityObserved",
    "AttributeType",
    "CrowdFlowObserved",
    "DateTime",
    "DateTimeText",
    "Device",
    "DeviceMeasurement",
    "DeviceModel",
    "EntityId",
    "EntityRef",
    "FloodMonitoring",
    "GeoJSON",
    "IndoorEnvironmentObserved",
    "ItemFlowObserved",
    "Measurable",
    "Measured",
    "ModelError",
    "ModelInfo",
    "ModelRegistry",
    "NoiseLevelObserved",
    "OffStreetParking",
    "OnStreetParking",
    "ParkingSpot",
    "ReadRepresentation",
    "Representation",
    "SmartDataModel",
    "StructuredValue",
    "TrafficFlowObserved",
    "UnknownModel",
    "WaterObserved",
    "WeatherForecast",
    "WeatherObserved",
    "context_urls",
    "default_registry",
    "entity_from_ngsi",
    "entity_json_schema",
    "format_datetime",
    "model_class",
    "model_info",
    "subject_context",
    "write_subject_contexts",
]
