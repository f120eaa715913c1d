"""The registry of Smart Data Models classes: entity type name → class, subject, the version of
the official schema the class follows, and the subject's @context URL.

One `@context` per entity type, never a merged one: Smart Data Models subjects map the same term
to different IRIs (`temperature` in Environment and in Weather), so every type is written and
read with the context its registry entry names.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from models._base import ModelError, SmartDataModel
from models._ngsi import ReadRepresentation
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
    "ModelInfo",
    "ModelRegistry",
    "UnknownModel",
    "default_registry",
    "entity_from_ngsi",
    "model_class",
    "model_info",
]


class UnknownModel(KeyError):
    """No model is registered for an entity type."""

    def __init__(self, type_name: str, known: list[str]) -> None:
        self.type_name = type_name
        super().__init__(
            f"no Smart Data Model is registered for type {type_name!r}; known: {', '.join(known)}"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class ModelInfo(BaseModel):
    """What the registry knows about one entity type."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    type_name: str
    model: type[SmartDataModel]
    subject: str
    """The Smart Data Models subject, without the `dataModel.` prefix (`Environment`)."""
    repository: str
    """The upstream repository (`dataModel.Environment`)."""
    schema_version: str
    """The `$schemaVersion` of the official schema the class follows."""
    context_url: str


def _info(model: type[SmartDataModel]) -> ModelInfo:
    if not model.subject or not model.schema_version:
        raise TypeError(f"{model.__name__} must set `subject` and `schema_version`")
    return ModelInfo(
        type_name=model.type_name(),
        model=model,
        subject=model.subject,
        repository=f"dataModel.{model.subject}",
        schema_version=model.schema_version,
        context_url=model.context_url(),
    )


class ModelRegistry:
    """Entity type name → `ModelInfo`. Thread-safe; `register` adds a class (replacing one
    registered for the same type only with `replace=True`)."""

    def __init__(self, models: Iterable[type[SmartDataModel]] = ()) -> None:
        self._lock = threading.Lock()
        self._infos: dict[str, ModelInfo] = {}
        for model in models:
            self.register(model)

    def register(self, model: type[SmartDataModel], *, replace: bool = False) -> ModelInfo:
        """Add `model`; `ValueError` if its type is taken and `replace` is False."""
        info = _info(model)
        with self._lock:
            if info.type_name in self._infos and not replace:
                raise ValueError(f"type {info.type_name!r} is already registered")
            self._infos[info.type_name] = info
        return info

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._infos

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(sorted(self._infos.values(), key=lambda info: (info.subject, info.type_name)))

    def __len__(self) -> int:
        return len(self._infos)

    def types(self) -> list[str]:
        """The registered entity types, sorted."""
        return sorted(self._infos)

    def info(self, type_name: str) -> ModelInfo:
        """The registry entry of `type_name`; `UnknownModel` if there is none."""
        found = self._infos.get(type_name)
        if found is None:
            raise UnknownModel(type_name, self.types())
        return found

    def model(self, type_name: str) -> type[SmartDataModel]:
        """The class of `type_name`; `UnknownModel` if there is none."""
        return self.info(type_name).model

    def context_url(self, type_name: str) -> str:
        """The @context URL entities of `type_name` are written and read with."""
        return self.info(type_name).context_url

    def subjects(self) -> dict[str, list[str]]:
        """Subject → its registered types, both sorted."""
        found: dict[str, list[str]] = {}
        for info in self:
            found.setdefault(info.subject, []).append(info.type_name)
        return found

    def from_ngsi(
        self, data: Mapping[str, Any], *, representation: ReadRepresentation = "auto"
    ) -> SmartDataModel:
        """Read an entity of any registered type (picked by its `type`)."""
        if not isinstance(data, Mapping):
            raise ModelError([("", f"an entity must be a JSON object, got {type(data).__name__}")])
        type_name = data.get("type")
        if not isinstance(type_name, str):
            raise ModelError([("type", "an entity needs a string type")], entity_id=data.get("id"))
        return self.model(type_name).from_ngsi(data, representation=representation)


default_registry = ModelRegistry(
    [
        AirQualityObserved,
        NoiseLevelObserved,
        IndoorEnvironmentObserved,
        WaterObserved,
        FloodMonitoring,
        WeatherObserved,
        WeatherForecast,
        TrafficFlowObserved,
        CrowdFlowObserved,
        ItemFlowObserved,
        ParkingSpot,
        OffStreetParking,
        OnStreetParking,
        Device,
        DeviceModel,
        DeviceMeasurement,
    ]
)
"""The models this project ships."""


def model_class(type_name: str) -> type[SmartDataModel]:
    """The class of `type_name` in the default registry."""
    return default_registry.model(type_name)


def model_info(type_name: str) -> ModelInfo:
    """The default registry's entry for `type_name`."""
    return default_registry.info(type_name)


def entity_from_ngsi(
    data: Mapping[str, Any], *, representation: ReadRepresentation = "auto"
) -> SmartDataModel:
    """Read an entity of any type the default registry knows."""
    return default_registry.from_ngsi(data, representation=representation)
