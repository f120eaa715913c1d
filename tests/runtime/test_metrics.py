"""The Prometheus text exposition the agent serves on /metrics."""

from __future__ import annotations

import math

import pytest

from agents.runtime._metrics import Histogram, counter, gauge, render


def test_counter_and_gauge_render_in_the_text_format() -> None:
    text = render(
        [
            counter(
                "drehscheibe_uplinks_total",
                "Uplinks by source and outcome.",
                [
                    ({"source": "tts", "outcome": "accepted"}, 3),
                    ({"source": 'a"b', "outcome": "x"}, 1),
                ],
            ),
            gauge("drehscheibe_outbox_depth", "Entities waiting.\nSecond line.", [({}, 12.5)]),
        ]
    )
    assert text.splitlines() == [
        "# HELP drehscheibe_uplinks_total Uplinks by source and outcome.",
        "# TYPE drehscheibe_uplinks_total counter",
        'drehscheibe_uplinks_total{source="tts",outcome="accepted"} 3',
        'drehscheibe_uplinks_total{source="a\\"b",outcome="x"} 1',
        "# HELP drehscheibe_outbox_depth Entities waiting.\\nSecond line.",
        "# TYPE drehscheibe_outbox_depth gauge",
        "drehscheibe_outbox_depth 12.5",
    ]


def test_histogram_buckets_are_cumulative_with_inf_sum_and_count() -> None:
    histogram = Histogram(
        "batch_seconds", "Batch latency.", buckets=[0.01, 0.1], labelnames=["stage"]
    )
    for value in (0.005, 0.05, 0.05, 3.0):
        histogram.observe(value, ["commit"])
    lines = render([histogram.family()]).splitlines()
    assert lines[2:] == [
        'batch_seconds_bucket{stage="commit",le="0.01"} 1',
        'batch_seconds_bucket{stage="commit",le="0.1"} 3',
        'batch_seconds_bucket{stage="commit",le="+Inf"} 4',
        'batch_seconds_sum{stage="commit"} 3.105',
        'batch_seconds_count{stage="commit"} 4',
    ]
    assert histogram.count(["commit"]) == 4
    assert histogram.quantile(0.5, ["commit"]) == 0.1
    assert histogram.quantile(0.99, ["commit"]) == math.inf
    assert histogram.quantile(0.5, ["other"]) is None


def test_histogram_refuses_wrong_labels() -> None:
    histogram = Histogram("h", "h", buckets=[1], labelnames=["a"])
    with pytest.raises(ValueError, match="takes labels"):
        histogram.observe(1.0, [])
