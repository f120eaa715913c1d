"""Templates: what each one makes, and that nothing they make is something Orion-LD refuses or
names something the subject's @context does not define."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.subscriptions import TEMPLATES, TemplateError, load_consumers_file, render_template
from models import default_registry
from ngsi import Subscription, parse_q
from schemas import load_schema
from tests.conftest import SHARED

ORION_LD_REFUSES = ("notificationTrigger", "temporalQ", "scopeQ", "csf")
SDM_URL = "https://raw.githubusercontent.com/smart-data-models/dataModel.{}/master/context.jsonld"


@cache
def context_terms(url: str) -> frozenset[str]:
    subject = url.split("dataModel.")[1].split("/")[0]
    data = json.loads((SHARED / "sdm" / f"dataModel.{subject}" / "context.jsonld").read_text())
    return frozenset(data["@context"])


def orion_ld_problems(body: dict[str, Any], context: str) -> list[str]:
    """What Orion-LD (per the reference notes) or the @context rule would object to."""
    problems = [f"has {m}" for m in ORION_LD_REFUSES if m in body]
    if "timeInterval" in body and ("watchedAttributes" in body or "throttling" in body):
        problems.append("timeInterval with watchedAttributes or throttling")
    if "expiresAt" in body and datetime.fromisoformat(body["expiresAt"]) <= datetime.now(UTC):
        problems.append("expiresAt in the past")
    for key in ("throttling", "timeInterval"):
        if key in body and not body[key] > 0:
            problems.append(f"{key} not > 0")
    if not body.get("entities") and not body.get("watchedAttributes"):
        problems.append("neither entities nor watchedAttributes")
    notification = body["notification"]
    if notification.get("showChanges") and notification.get("format") == "keyValues":
        problems.append("showChanges with keyValues")
    terms = context_terms(context)
    names = [e["type"] for e in body.get("entities", [])]
    names += body.get("watchedAttributes", [])
    names += notification.get("attributes", [])
    if "q" in body:
        names += [path.attr for path in parse_q(body["q"]).paths()]
    problems += [f"{name!r} is not a term of {context}" for name in names if name not in terms]
    subjects = {default_registry.info(e["type"]).subject for e in body.get("entities", [])}
    if len(subjects) != 1 or SDM_URL.format(subjects.pop()) != context:
        problems.append("entity types not all of the context's subject")
    try:
        Subscription.from_dict(
            {**body, "notification": {**notification, "endpoint": {"uri": "http://x/"}}}
        )
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def test_the_schema_lists_exactly_the_templates() -> None:
    schema = load_schema("consumers")
    listed = schema["$defs"]["subscription"]["properties"]["template"]["enum"]
    assert sorted(listed) == sorted(TEMPLATES)


@pytest.mark.parametrize(
    ("name", "params", "parts"),
    [
        ("traffic.flow", {}, [None]),
        ("traffic.parking", {}, ["spots", "sites"]),
        ("traffic.parking", {"sites": False}, ["spots"]),
        ("environment.archive", {}, [None]),
        (
            "environment.alerts",
            {
                "rules": [
                    {"type": "NoiseLevelObserved", "attribute": "LAeq", "above": 65},
                    {"type": "AirQualityObserved", "attribute": "no2", "above": 200},
                ]
            },
            ["AirQualityObserved", "NoiseLevelObserved"],
        ),
        (
            "planning.snapshots",
            {"types": ["OffStreetParking", "AirQualityObserved"]},
            ["environment", "parking"],
        ),
        ("planning.changes", {"types": ["TrafficFlowObserved"]}, ["transportation"]),
        (
            "quantumleap",
            {"types": ["AirQualityObserved", "WeatherObserved"]},
            ["environment", "weather"],
        ),
    ],
)
def test_each_template_makes_its_parts(
    name: str, params: dict[str, Any], parts: list[str | None]
) -> None:
    made = render_template(name, params)
    assert [p.part for p in made] == parts
    for part in made:
        assert orion_ld_problems(part.body, part.context) == []


def test_traffic_flow_thresholds_area_and_throttling() -> None:
    (part,) = render_template(
        "traffic.flow",
        {
            "minIntensity": 10,
            "maxAverageSpeed": 20.5,
            "congestedOnly": True,
            "q": "laneId==1|laneId==2",
            "area": {"near": {"point": [13.4, 52.52], "maxDistance": 500}},
            "throttling": 5,
        },
    )
    assert (
        part.body["q"]
        == "intensity>=10;averageVehicleSpeed<=20.5;congested==true;(laneId==1|laneId==2)"
    )
    assert part.body["geoQ"] == {
        "geometry": "Point",
        "coordinates": [13.4, 52.52],
        "georel": "near;maxDistance==500",
    }
    assert part.body["throttling"] == 5
    assert part.context == SDM_URL.format("Transportation")


def test_environment_alerts_are_q_exceedances_on_the_rule_attributes() -> None:
    (part,) = render_template(
        "environment.alerts",
        {
            "rules": [
                {"type": "AirQualityObserved", "attribute": "no2", "above": 200},
                {"type": "AirQualityObserved", "attribute": "pm10", "above": 50},
                {"type": "AirQualityObserved", "attribute": "o3", "below": 0.5},
            ]
        },
    )
    assert part.body["q"] == "no2>200|pm10>50|o3<0.5"
    assert part.body["watchedAttributes"] == ["no2", "pm10", "o3"]


def test_planning_snapshots_are_periodic_without_watched_attributes() -> None:
    for part in render_template(
        "planning.snapshots", {"types": ["TrafficFlowObserved"], "interval": 900}
    ):
        assert part.body["timeInterval"] == 900
        assert "watchedAttributes" not in part.body
        assert "throttling" not in part.body


def test_planning_changes_show_previous_values() -> None:
    (part,) = render_template("planning.changes", {"types": ["ParkingSpot"]})
    assert part.body["notification"] == {"sysAttrs": True, "showChanges": True}


def test_quantumleap_uses_the_ngsiv2_format() -> None:
    (part,) = render_template("quantumleap", {"types": ["AirQualityObserved"]})
    assert part.body["notification"]["format"] == "x-ngsiv2-normalized-compacted"


@pytest.mark.parametrize(
    ("name", "params", "where", "says"),
    [
        ("traffic.flow", {"watch": ["intensty"]}, "watch/0", "did you mean 'intensity'"),
        ("traffic.flow", {"types": ["AirQualityObserved"]}, "types/0", "not a Transportation type"),
        ("traffic.flow", {"throttling": 0}, "throttling", "greater than 0"),
        (
            "traffic.flow",
            {"area": {"near": {"point": [13, 52], "maxDistance": 1}, "within": [[[0, 0]]]}},
            "area",
            "exactly one",
        ),
        ("traffic.flow", {"q": "intensity>>1"}, "q", ""),
        ("traffic.flow", {"unknown": 1}, "unknown", "Extra inputs"),
        ("traffic.parking", {"spots": False, "sites": False}, "", "would make nothing"),
        (
            "environment.alerts",
            {"rules": [{"type": "AirQualityObserved", "attribute": "no2"}]},
            "rules/0",
            "exactly one",
        ),
        (
            "environment.alerts",
            {"rules": [{"type": "Foo", "attribute": "no2", "above": 1}]},
            "rules/0/type/0",
            "not a Smart Data Models type",
        ),
        (
            "planning.snapshots",
            {"types": ["TrafficFlowObserved"], "interval": 0},
            "interval",
            "greater than or equal to 1",
        ),
        (
            "planning.snapshots",
            {"types": ["TrafficFlowObserved"], "watch": ["intensity"]},
            "watch",
            "Extra inputs",
        ),
        ("planning.changes", {"types": ["ParkingSpot"], "format": "keyValues"}, "format", ""),
    ],
)
def test_bad_parameters_name_the_parameter(
    name: str, params: dict[str, Any], where: str, says: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        render_template(name, params)
    paths = [path for path, _ in caught.value.problems]
    assert any(path.startswith(where) for path in paths), caught.value.problems
    assert says in str(caught.value)


_ATTRS = {
    "Transportation": ["intensity", "occupancy", "averageVehicleSpeed", "congested", "laneId"],
    "Environment": ["no2", "pm10", "temperature", "LAeq", "currentLevel"],
}
_area = st.one_of(
    st.none(),
    st.builds(
        lambda lon, lat, d: {"near": {"point": [lon, lat], "maxDistance": d}},
        st.floats(-180, 180),
        st.floats(-90, 90),
        st.integers(1, 100_000),
    ),
)
_types = st.lists(
    st.sampled_from(sorted(default_registry.types())), min_size=1, max_size=4, unique=True
)


@st.composite
def template_calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(TEMPLATES)))
    params: dict[str, Any] = {}
    area = draw(_area)
    if name == "traffic.flow":
        params = {
            "watch": draw(
                st.lists(st.sampled_from(_ATTRS["Transportation"][:4]), min_size=1, unique=True)
            ),
            "minIntensity": draw(st.none() | st.integers(0, 1000)),
            "congestedOnly": draw(st.booleans()),
            "throttling": draw(st.none() | st.integers(1, 600)),
            "format": draw(st.sampled_from(["normalized", "concise", "keyValues"])),
        }
    elif name == "traffic.parking":
        spots = draw(st.booleans())
        params = {
            "spots": spots,
            "sites": draw(st.booleans()) if spots else True,
            "maxAvailable": draw(st.none() | st.integers(0, 100)),
            "spotStatus": draw(
                st.none() | st.lists(st.sampled_from(["free", "occupied"]), min_size=1)
            ),
            "throttling": draw(st.none() | st.floats(0.5, 60)),
        }
    elif name == "environment.archive":
        params = {
            "types": draw(
                st.lists(
                    st.sampled_from(
                        [
                            "AirQualityObserved",
                            "NoiseLevelObserved",
                            "WaterObserved",
                            "FloodMonitoring",
                        ]
                    ),
                    min_size=1,
                    unique=True,
                )
            )
        }
    elif name == "environment.alerts":
        rules = draw(
            st.lists(
                st.sampled_from(
                    [
                        {"type": "AirQualityObserved", "attribute": "no2", "above": 200},
                        {"type": "AirQualityObserved", "attribute": "pm10", "above": 50},
                        {"type": "NoiseLevelObserved", "attribute": "LAeq", "above": 65},
                        {"type": "FloodMonitoring", "attribute": "currentLevel", "above": 3.5},
                        {"type": "WaterObserved", "attribute": "flow", "below": 0.1},
                    ]
                ),
                min_size=1,
            )
        )
        params = {"rules": rules, "throttling": draw(st.none() | st.integers(1, 3600))}
    elif name == "planning.snapshots":
        params = {"types": draw(_types), "interval": draw(st.integers(1, 86_400))}
    elif name == "planning.changes":
        params = {"types": draw(_types), "format": draw(st.sampled_from(["normalized", "concise"]))}
    else:
        params = {"types": draw(_types), "throttling": draw(st.none() | st.integers(1, 60))}
    if area is not None and name not in ("quantumleap",):
        params["area"] = area
    return name, {k: v for k, v in params.items() if v is not None}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template_calls())
def test_no_template_makes_what_orion_ld_refuses(call: tuple[str, dict[str, Any]]) -> None:
    name, params = call
    for part in render_template(name, params):
        assert orion_ld_problems(part.body, part.context) == [], (name, params, part)


def test_the_example_file_is_valid(tmp_path: Path) -> None:
    from agents.subscriptions import desired_subscriptions

    file = load_consumers_file(Path(__file__).resolve().parents[2] / "examples" / "consumers.yaml")
    assert {c.kind for c in file.consumers} == {"traffic", "environment", "planning"}
    made = desired_subscriptions(file)
    assert len(made) == 10
    for item in made:
        body = {
            k: v
            for k, v in item.body.items()
            if k not in ("subscriptionName", "description", "jsonldContext", "type")
        }
        assert orion_ld_problems(body, item.context) == [], item.name
