"""Subscription templates: what traffic, environment and planning consumers (and QuantumLeap)
usually subscribe to, with a few parameters instead of a page of NGSI-LD.

    - name: flow
      template: traffic.flow
      params: {minIntensity: 10, area: {near: {point: [13.40, 52.52], maxDistance: 2000}}}

- `traffic.flow`: TrafficFlowObserved changes of `watch` (intensity, occupancy, speed,
  congestion), optionally only from `minIntensity`, up to `maxAverageSpeed`, `congestedOnly`,
  in an `area`, at most one notification per `throttling` seconds.
- `traffic.parking`: part `spots`, ParkingSpot `status` changes; part `sites`, OffStreetParking
  occupancy changes (availableSpotNumber, occupiedSpotNumber, occupancy), optionally only while
  `maxAvailable` or fewer spots are free.
- `environment.archive`: every update of AirQualityObserved, NoiseLevelObserved, WaterObserved
  and FloodMonitoring (or `types`), with system attributes, never throttled.
- `environment.alerts`: one part per entity type, notified only while a `rules` threshold is
  exceeded (`q` such as `no2>200|pm10>50`), on changes of the rule attributes.
- `planning.snapshots`: one part per subject, all matching entities every `interval` seconds
  (`timeInterval`: no watchedAttributes, no throttling).
- `planning.changes`: one part per subject, the full change stream with `showChanges` (previous
  values) and system attributes, for analysis.
- `quantumleap`: one part per subject, changes in Orion-LD's `x-ngsiv2-normalized-compacted`
  format, which QuantumLeap (an NGSI-v2 service) reads: NGSI-v2 entities with the names
  compacted by the subject's @context (`type: AirQualityObserved`, attribute `no2`), which
  become QuantumLeap's table and column names. `x-ngsiv2-normalized` would send the expanded
  IRIs (`https://smartdatamodels.org/dataModel.Environment/AirQualityObserved`) instead.

Rules every template keeps, so that Orion-LD accepts what they make: entity types and attribute
names are the Smart Data Models' own (checked against `models`); each part has one entity
subject and is created with that subject's @context (the models registry names it), never a
merged one; `timeInterval` never comes with `watchedAttributes` or `throttling`; no
`notificationTrigger`, `temporalQ`, `scopeQ` or `csf`; no `expiresAt`; `showChanges` never with
`keyValues`.

History without QuantumLeap needs no template: the broker's temporal API
(`/ngsi-ld/v1/temporal/entities`, served by Orion-LD with Mintaka, or by the embedded broker)
keeps the history of every attribute by itself, without any subscription. A "template" for it
would create nothing, so there is none: read history with the client's temporal calls.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from models import default_registry
from ngsi import NgsiApiError, SubscriptionGeoQuery, parse_q

__all__ = [
    "TEMPLATES",
    "Template",
    "TemplateError",
    "TemplatePart",
    "render_template",
]

Format = Literal["normalized", "concise", "keyValues"]


class TemplateError(ValueError):
    """A template's parameters are wrong; `problems` are (path inside params, message)."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{path or 'params'}: {message}" for path, message in problems))


@dataclass(frozen=True, kw_only=True)
class TemplatePart:
    """One subscription a template makes: its name suffix (None for a single one), the
    @context URL its names are in, and the subscription members (without name and endpoint)."""

    part: str | None
    context: str
    body: dict[str, Any] = field(default_factory=dict)


# --- parameters ------------------------------------------------------------------------------


class _Params(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Near(_Params):
    point: tuple[float, float]
    """[longitude, latitude]"""
    max_distance: float = Field(gt=0)
    """metres"""


class Area(_Params):
    """Where: `near` a point, `within` a polygon (its coordinates), or a raw NGSI-LD `geoQ`."""

    near: Near | None = None
    within: list[list[list[float]]] | None = None
    geo_q: SubscriptionGeoQuery | None = None

    @model_validator(mode="after")
    def _one(self) -> Area:
        given = [n for n in ("near", "within", "geo_q") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of near, within or geoQ")
        try:
            self.to_geo_q()
        except ValidationError as exc:
            raise ValueError(
                "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            ) from None
        return self

    def to_geo_q(self) -> dict[str, Any]:
        if self.near is not None:
            distance = self.near.max_distance
            metres = int(distance) if float(distance).is_integer() else distance
            geo = {
                "geometry": "Point",
                "coordinates": list(self.near.point),
                "georel": f"near;maxDistance=={metres}",
            }
        elif self.within is not None:
            geo = {"geometry": "Polygon", "coordinates": self.within, "georel": "within"}
        else:
            assert self.geo_q is not None
            return self.geo_q.model_dump(mode="json", by_alias=True, exclude_none=True)
        return SubscriptionGeoQuery.model_validate(geo).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )


class TrafficFlowParams(_Params):
    types: list[str] = Field(default_factory=lambda: ["TrafficFlowObserved"], min_length=1)
    watch: list[str] = Field(
        default_factory=lambda: ["intensity", "occupancy", "averageVehicleSpeed", "congested"],
        min_length=1,
    )
    attributes: list[str] | None = None
    min_intensity: float | None = Field(default=None, ge=0)
    max_average_speed: float | None = Field(default=None, ge=0)
    congested_only: bool = False
    q: str | None = None
    area: Area | None = None
    throttling: float | None = Field(default=None, gt=0)
    format: Format = "normalized"


class TrafficParkingParams(_Params):
    spots: bool = True
    sites: bool = True
    spot_status: list[Literal["closed", "free", "occupied", "unknown"]] | None = None
    max_available: int | None = Field(default=None, ge=0)
    area: Area | None = None
    throttling: float | None = Field(default=None, gt=0)
    format: Format = "normalized"

    @model_validator(mode="after")
    def _something(self) -> TrafficParkingParams:
        if not (self.spots or self.sites):
            raise ValueError("spots and sites are both false: the template would make nothing")
        return self


_ENVIRONMENT_TYPES = [
    "AirQualityObserved",
    "NoiseLevelObserved",
    "WaterObserved",
    "FloodMonitoring",
]


class EnvironmentArchiveParams(_Params):
    types: list[str] = Field(default_factory=lambda: list(_ENVIRONMENT_TYPES), min_length=1)
    watch: list[str] | None = None
    attributes: list[str] | None = None
    area: Area | None = None
    format: Format = "normalized"


class ThresholdRule(_Params):
    type: str
    attribute: str
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _bound(self) -> ThresholdRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above or below")
        return self


class EnvironmentAlertsParams(_Params):
    rules: list[ThresholdRule] = Field(min_length=1)
    attributes: list[str] | None = None
    area: Area | None = None
    throttling: float | None = Field(default=None, gt=0)
    format: Format = "normalized"


class PlanningSnapshotsParams(_Params):
    types: list[str] = Field(min_length=1)
    interval: float = Field(default=3600, ge=1)
    """seconds between snapshots (`timeInterval`)"""
    attributes: list[str] | None = None
    area: Area | None = None
    format: Format = "normalized"


class PlanningChangesParams(_Params):
    types: list[str] = Field(min_length=1)
    watch: list[str] | None = None
    attributes: list[str] | None = None
    area: Area | None = None
    format: Literal["normalized", "concise"] = "normalized"


class QuantumLeapParams(_Params):
    types: list[str] = Field(min_length=1)
    watch: list[str] | None = None
    attributes: list[str] | None = None
    throttling: float | None = Field(default=None, gt=0)


# --- helpers ---------------------------------------------------------------------------------


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_types(types: Sequence[str], where: str, *, subject: str | None = None) -> list[str]:
    problems: list[tuple[str, str]] = []
    for index, name in enumerate(types):
        if name not in default_registry:
            problems.append(
                (
                    f"{where}/{index}",
                    f"{name!r} is not a Smart Data Models type this project knows"
                    f"{_suggest(name, default_registry.types())}",
                )
            )
        elif subject is not None and default_registry.info(name).subject != subject:
            problems.append(
                (f"{where}/{index}", f"{name!r} is not a {subject} type of Smart Data Models")
            )
    if problems:
        raise TemplateError(problems)
    return list(dict.fromkeys(types))


def _check_attributes(types: Sequence[str], names: Sequence[str] | None, where: str) -> None:
    if not names:
        return
    known: dict[str, None] = {}
    for type_name in types:
        known.update(dict.fromkeys(default_registry.model(type_name).attribute_names()))
    problems = [
        (
            f"{where}/{index}",
            f"{name!r} is not an attribute of {' or '.join(types)}{_suggest(name, known)}",
        )
        for index, name in enumerate(names)
        if name not in known
    ]
    if problems:
        raise TemplateError(problems)


def _by_subject(types: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for type_name in types:
        groups.setdefault(default_registry.info(type_name).subject, []).append(type_name)
    return dict(sorted(groups.items()))


def _context(types: Sequence[str]) -> str:
    return default_registry.context_url(types[0])


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _check_q(q: str, where: str) -> str:
    try:
        return str(parse_q(q))
    except NgsiApiError as exc:
        raise TemplateError([(where, str(exc.problem.detail or exc))]) from None


def _notification(
    *,
    attributes: Sequence[str] | None = None,
    format: str = "normalized",
    sys_attrs: bool = False,
    show_changes: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if attributes:
        out["attributes"] = list(attributes)
    if format != "normalized":
        out["format"] = format
    if sys_attrs:
        out["sysAttrs"] = True
    if show_changes:
        out["showChanges"] = True
    return out


def _body(
    types: Sequence[str],
    *,
    watch: Sequence[str] | None = None,
    q: str | None = None,
    area: Area | None = None,
    throttling: float | None = None,
    time_interval: float | None = None,
    notification: dict[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"entities": [{"type": name} for name in types]}
    if watch:
        body["watchedAttributes"] = list(watch)
    if q:
        body["q"] = q
    if area is not None:
        body["geoQ"] = area.to_geo_q()
    if throttling is not None:
        body["throttling"] = _seconds(throttling)
    if time_interval is not None:
        body["timeInterval"] = _seconds(time_interval)
    body["notification"] = notification
    return body


def _and(*terms: str | None) -> str | None:
    present = [term for term in terms if term]
    if not present:
        return None
    return ";".join(f"({term})" if "|" in term else term for term in present)


# --- the templates ---------------------------------------------------------------------------


def _traffic_flow(p: TrafficFlowParams) -> list[TemplatePart]:
    types = _check_types(p.types, "types", subject="Transportation")
    _check_attributes(types, p.watch, "watch")
    _check_attributes(types, p.attributes, "attributes")
    q = _and(
        f"intensity>={_number(p.min_intensity)}" if p.min_intensity is not None else None,
        f"averageVehicleSpeed<={_number(p.max_average_speed)}"
        if p.max_average_speed is not None
        else None,
        "congested==true" if p.congested_only else None,
        _check_q(p.q, "q") if p.q else None,
    )
    body = _body(
        types,
        watch=p.watch,
        q=q,
        area=p.area,
        throttling=p.throttling,
        notification=_notification(attributes=p.attributes, format=p.format),
    )
    return [TemplatePart(part=None, context=_context(types), body=body)]


def _traffic_parking(p: TrafficParkingParams) -> list[TemplatePart]:
    parts: list[TemplatePart] = []
    notification = _notification(format=p.format)
    if p.spots:
        q = None
        if p.spot_status:
            q = "status==" + ",".join(f'"{status}"' for status in dict.fromkeys(p.spot_status))
        parts.append(
            TemplatePart(
                part="spots",
                context=_context(["ParkingSpot"]),
                body=_body(
                    ["ParkingSpot"],
                    watch=["status"],
                    q=q,
                    area=p.area,
                    throttling=p.throttling,
                    notification=dict(notification),
                ),
            )
        )
    if p.sites:
        q = f"availableSpotNumber<={p.max_available}" if p.max_available is not None else None
        parts.append(
            TemplatePart(
                part="sites",
                context=_context(["OffStreetParking"]),
                body=_body(
                    ["OffStreetParking"],
                    watch=["availableSpotNumber", "occupiedSpotNumber", "occupancy"],
                    q=q,
                    area=p.area,
                    throttling=p.throttling,
                    notification=dict(notification),
                ),
            )
        )
    return parts


def _environment_archive(p: EnvironmentArchiveParams) -> list[TemplatePart]:
    types = _check_types(p.types, "types", subject="Environment")
    _check_attributes(types, p.watch, "watch")
    _check_attributes(types, p.attributes, "attributes")
    body = _body(
        types,
        watch=p.watch,
        area=p.area,
        notification=_notification(attributes=p.attributes, format=p.format, sys_attrs=True),
    )
    return [TemplatePart(part=None, context=_context(types), body=body)]


def _environment_alerts(p: EnvironmentAlertsParams) -> list[TemplatePart]:
    by_type: dict[str, list[ThresholdRule]] = {}
    for index, rule in enumerate(p.rules):
        _check_types([rule.type], f"rules/{index}/type", subject="Environment")
        _check_attributes([rule.type], [rule.attribute], f"rules/{index}/attribute")
        by_type.setdefault(rule.type, []).append(rule)
    parts: list[TemplatePart] = []
    for type_name, rules in sorted(by_type.items()):
        _check_attributes([type_name], p.attributes, "attributes")
        terms = [
            f"{r.attribute}>{_number(r.above)}"
            if r.above is not None
            else f"{r.attribute}<{_number(r.below)}"  # type: ignore[arg-type]
            for r in rules
        ]
        q = "|".join(dict.fromkeys(terms))
        watch = list(dict.fromkeys(r.attribute for r in rules))
        parts.append(
            TemplatePart(
                part=type_name,
                context=_context([type_name]),
                body=_body(
                    [type_name],
                    watch=watch,
                    q=q,
                    area=p.area,
                    throttling=p.throttling,
                    notification=_notification(attributes=p.attributes, format=p.format),
                ),
            )
        )
    return parts


def _per_subject(
    types: Sequence[str], build: Callable[[list[str]], dict[str, Any]]
) -> list[TemplatePart]:
    return [
        TemplatePart(part=subject.lower(), context=_context(group), body=build(group))
        for subject, group in _by_subject(types).items()
    ]


def _planning_snapshots(p: PlanningSnapshotsParams) -> list[TemplatePart]:
    types = _check_types(p.types, "types")

    def build(group: list[str]) -> dict[str, Any]:
        _check_attributes(group, p.attributes, "attributes")
        return _body(
            group,
            area=p.area,
            time_interval=p.interval,
            notification=_notification(attributes=p.attributes, format=p.format),
        )

    return _per_subject(types, build)


def _planning_changes(p: PlanningChangesParams) -> list[TemplatePart]:
    types = _check_types(p.types, "types")

    def build(group: list[str]) -> dict[str, Any]:
        _check_attributes(group, p.watch, "watch")
        _check_attributes(group, p.attributes, "attributes")
        return _body(
            group,
            watch=p.watch,
            area=p.area,
            notification=_notification(
                attributes=p.attributes, format=p.format, sys_attrs=True, show_changes=True
            ),
        )

    return _per_subject(types, build)


def _quantumleap(p: QuantumLeapParams) -> list[TemplatePart]:
    types = _check_types(p.types, "types")

    def build(group: list[str]) -> dict[str, Any]:
        _check_attributes(group, p.watch, "watch")
        _check_attributes(group, p.attributes, "attributes")
        return _body(
            group,
            watch=p.watch,
            throttling=p.throttling,
            notification=_notification(
                attributes=p.attributes, format="x-ngsiv2-normalized-compacted"
            ),
        )

    return _per_subject(types, build)


@dataclass(frozen=True, kw_only=True)
class Template:
    """A named template: its parameters (a pydantic model) and how it builds subscriptions."""

    name: str
    summary: str
    params: type[_Params]
    build: Callable[[Any], list[TemplatePart]]


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            name="traffic.flow",
            summary="TrafficFlowObserved changes, with thresholds, area and throttling",
            params=TrafficFlowParams,
            build=_traffic_flow,
        ),
        Template(
            name="traffic.parking",
            summary="ParkingSpot status and OffStreetParking occupancy changes",
            params=TrafficParkingParams,
            build=_traffic_parking,
        ),
        Template(
            name="environment.archive",
            summary="every update of environment observations, for archives",
            params=EnvironmentArchiveParams,
            build=_environment_archive,
        ),
        Template(
            name="environment.alerts",
            summary="threshold exceedances (q) of environment observations, for alerts",
            params=EnvironmentAlertsParams,
            build=_environment_alerts,
        ),
        Template(
            name="planning.snapshots",
            summary="periodic snapshots (timeInterval) of any types",
            params=PlanningSnapshotsParams,
            build=_planning_snapshots,
        ),
        Template(
            name="planning.changes",
            summary="full change streams with previous values (showChanges)",
            params=PlanningChangesParams,
            build=_planning_changes,
        ),
        Template(
            name="quantumleap",
            summary="changes for QuantumLeap, in Orion-LD's x-ngsiv2-normalized-compacted format",
            params=QuantumLeapParams,
            build=_quantumleap,
        ),
    )
}


def render_template(name: str, params: dict[str, Any]) -> list[TemplatePart]:
    """The subscriptions template `name` makes with `params`; `TemplateError` names the bad
    parameter (`KeyError` for an unknown template)."""
    template = TEMPLATES[name]
    try:
        parsed = template.params.model_validate(params)
    except ValidationError as exc:
        raise TemplateError(
            [
                (
                    "/".join(str(step) for step in error["loc"]),
                    error["msg"].removeprefix("Value error, "),
                )
                for error in exc.errors(include_url=False)
            ]
        ) from None
    return template.build(parsed)
