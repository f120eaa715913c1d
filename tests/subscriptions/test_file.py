"""The consumers file: JSON Schema and meaning checks, errors with their path and line,
`${ENV}` references, names and ownership."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.subscriptions import (
    ConsumersFileError,
    desired_subscriptions,
    load_consumers_file,
    owned_name,
    parse_consumers_file,
    parse_owned_name,
)

GOOD = """\
project: city
consumers:
  - name: traffic
    kind: traffic
    endpoint: http://127.0.0.1:9/notify
    subscriptions:
      - name: flow
        template: traffic.flow
"""


def problems(text: str, **kw: object) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConsumersFileError) as caught:
        desired_subscriptions(parse_consumers_file(text, source="c.yaml", **kw))  # type: ignore[arg-type]
    return [(p.line, p.path, p.message) for p in caught.value.problems]


def test_a_good_file() -> None:
    file = parse_consumers_file(GOOD)
    (made,) = desired_subscriptions(file)
    assert made.name == "city/traffic/flow"
    assert made.tenant is None
    assert made.body["notification"]["endpoint"] == {"uri": "http://127.0.0.1:9/notify"}


@pytest.mark.parametrize(
    ("change", "line", "path", "says"),
    [
        (("project: city", "project: 'city hub'"), 1, "project", "not a valid name"),
        (("kind: traffic", "kind: trafic"), 4, "consumers/0/kind", "is not one of"),
        (("endpoint: http://", "endpoint: ftp://"), 5, "consumers/0/endpoint", ""),
        (
            ("template: traffic.flow", "template: traffic.flow\n        q: a>1"),
            9,
            "consumers/0/subscriptions/0/q",
            "takes its settings in `params`",
        ),
        (
            (
                "template: traffic.flow",
                "template: traffic.flow\n        params: {watch: [intensty]}",
            ),
            9,
            "consumers/0/subscriptions/0/params/watch/0",
            "did you mean 'intensity'",
        ),
        (
            (
                "template: traffic.flow",
                "entities: [{type: TrafficFlowObserved}]\n"
                "        timeInterval: 5\n        throttling: 1",
            ),
            10,
            "consumers/0/subscriptions/0/throttling",
            "periodic",
        ),
        (
            ("template: traffic.flow", "description: nothing to watch"),
            7,
            "consumers/0/subscriptions/0",
            "needs `entities` or `watchedAttributes`",
        ),
        (
            (
                "template: traffic.flow",
                "entities: [{type: TrafficFlowObserved}]\n        q: 'a>>1'",
            ),
            9,
            "consumers/0/subscriptions/0/q",
            "",
        ),
        (
            (
                "template: traffic.flow",
                "entities: [{type: TrafficFlowObserved}]\n"
                "        expiresAt: '2000-01-01T00:00:00Z'",
            ),
            9,
            "consumers/0/subscriptions/0/expiresAt",
            "in the past",
        ),
        (
            (
                "template: traffic.flow",
                "entities: [{type: TrafficFlowObserved}, {type: AirQualityObserved}]",
            ),
            8,
            "consumers/0/subscriptions/0/entities",
            "different Smart Data Models subjects",
        ),
        (
            ("template: traffic.flow", "entities: [{type: Sensor}]"),
            7,
            "consumers/0/subscriptions/0/context",
            "give `context`",
        ),
        (
            ("    endpoint: http://127.0.0.1:9/notify\n", ""),
            6,
            "consumers/0/subscriptions/0/endpoint",
            "no endpoint",
        ),
    ],
)
def test_problems_name_their_path_and_line(
    change: tuple[str, str], line: int, path: str, says: str
) -> None:
    text = GOOD.replace(*change)
    found = problems(text)
    assert any(n == line and p == path and says in m for n, p, m in found), found


def test_every_problem_is_reported_at_once() -> None:
    text = GOOD.replace("project: city", "project: 'a b'").replace("kind: traffic", "kind: x")
    assert len(problems(text)) == 2


def test_a_problem_renders_as_file_line_path_message(tmp_path: Path) -> None:
    path = tmp_path / "consumers.yaml"
    path.write_text(GOOD.replace("kind: traffic", "kind: trafic"))
    with pytest.raises(ConsumersFileError) as caught:
        load_consumers_file(path)
    assert str(caught.value).startswith(f"{path}:4: consumers/0/kind: 'trafic' is not one of")


def test_yaml_syntax_errors_have_a_line() -> None:
    assert problems("project: city\nconsumers: [\n  - x\n")[0][0] is not None


def test_names_are_unique_per_consumer_and_file() -> None:
    twice = GOOD + "      - name: flow\n        template: traffic.parking\n"
    assert any("declared twice" in m for _, _, m in problems(twice))
    collide = GOOD.replace("template: traffic.flow", "template: traffic.parking") + (
        "      - name: flow.spots\n        entities: [{type: ParkingSpot}]\n"
    )
    assert any("makes too" in m for _, _, m in problems(collide))


def test_env_references_are_resolved_and_missing_ones_reported() -> None:
    text = GOOD.replace(
        "endpoint: http://127.0.0.1:9/notify",
        "endpoint: {uri: 'http://${HOST}/notify', "
        "receiverInfo: {X-Secret: '${SECRET}', X-Tag: '${TAG:-demo}'}}",
    )
    (made,) = desired_subscriptions(
        parse_consumers_file(text, environ={"HOST": "10.0.0.1:80", "SECRET": "s3"})
    )
    assert made.body["notification"]["endpoint"] == {
        "uri": "http://10.0.0.1:80/notify",
        "receiverInfo": [{"key": "X-Secret", "value": "s3"}, {"key": "X-Tag", "value": "demo"}],
    }
    found = problems(text, environ={"HOST": "h"})
    assert [(p, m) for _, p, m in found] == [
        (
            "consumers/0/endpoint/receiverInfo",
            "environment variable SECRET is not set (used as ${SECRET})",
        )
    ]


def test_tenants_in_scope() -> None:
    text = GOOD.replace("project: city", "project: city\ntenant: main\ntenants: [old]") + (
        "  - name: other\n    kind: custom\n    tenant: side\n    endpoint: http://x/\n"
        "    subscriptions: []\n"
    )
    assert parse_consumers_file(text).tenants_in_scope() == ["main", "old", "side"]


def test_owned_names_round_trip() -> None:
    assert owned_name("city", "traffic", "parking", "spots") == "city/traffic/parking.spots"
    parsed = parse_owned_name("city/traffic/parking.spots", project="city")
    assert parsed is not None
    assert (parsed.consumer, parsed.subscription, parsed.part) == ("traffic", "parking", "spots")
    assert parse_owned_name("city/traffic/parking.spots", project="town") is None
    for other in ("city/traffic", "city/a/b/c", "city/a b/c", "", None, "city/a/b."):
        assert parse_owned_name(other) is None
    with pytest.raises(ValueError, match="letters"):
        owned_name("city", "a/b", "c")
