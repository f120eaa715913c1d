"""Prometheus text exposition (format 0.0.4) for the agent's `/metrics`, without a client library.

The agent's figures already live as plain integers in the objects that own them
(`DeliveryCounters`, the pipeline's counters, each source's counters), each written by one
thread. Exporting them needs no registry of global metric objects: at scrape time the agent's
collectors read those integers and render them. Only the latency histograms are kept here, as
`Histogram` objects with their own lock (observed once per batch, not per uplink).

    families = [
        counter("drehscheibe_uplinks_total", "Uplinks by source and outcome.",
                [({"source": "tts", "outcome": "accepted"}, 1200)]),
        gauge("drehscheibe_outbox_depth", "Entities waiting for the broker.", [({}, 12)]),
        histogram.family(),
    ]
    render(families)  # the text a Prometheus server scrapes

Names follow Prometheus conventions: `_total` for counters, base units (seconds, bytes).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CONTENT_TYPE",
    "Histogram",
    "MetricFamily",
    "Sample",
    "counter",
    "gauge",
    "render",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The media type of the text exposition format."""

MetricKind = Literal["counter", "gauge", "histogram"]

Sample = tuple[Mapping[str, str], float]
"""One sample: its labels and its value."""


@dataclass(frozen=True)
class MetricFamily:
    """A metric name with its help text, kind and samples.

    For a histogram, `samples` are rendered as given: they carry their own suffixes in
    `suffixed` (`_bucket`, `_sum`, `_count`) instead.
    """

    name: str
    help: str
    kind: MetricKind
    samples: Sequence[Sample] = ()
    suffixed: Sequence[tuple[str, Mapping[str, str], float]] = field(default=())


def counter(name: str, help: str, samples: Iterable[Sample]) -> MetricFamily:
    """A counter family (`name` should end in `_total`)."""
    return MetricFamily(name, help, "counter", list(samples))


def gauge(name: str, help: str, samples: Iterable[Sample]) -> MetricFamily:
    """A gauge family."""
    return MetricFamily(name, help, "gauge", list(samples))


class Histogram:
    """A latency (or size) histogram with fixed upper bounds, optionally labelled.

    `observe(value, labels)` is thread-safe. Buckets are cumulative in the output, with `+Inf`.
    """

    def __init__(
        self, name: str, help: str, *, buckets: Sequence[float], labelnames: Sequence[str] = ()
    ) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or any(math.isnan(b) for b in bounds):
            raise ValueError(f"histogram {name} needs at least one bucket bound")
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._bounds = bounds
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, value: float, labels: Sequence[str] = ()) -> None:
        """Count one observation (`labels` in the order of `labelnames`)."""
        key = tuple(labels)
        if len(key) != len(self.labelnames):
            raise ValueError(f"histogram {self.name} takes labels {self.labelnames}, got {key}")
        index = bisect.bisect_left(self._bounds, value)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                # per bucket counts, then +Inf count, then the sum
                series = self._series[key] = [0.0] * (len(self._bounds) + 2)
            series[index] += 1
            series[-1] += value

    def count(self, labels: Sequence[str] = ()) -> int:
        """How many observations the series has."""
        with self._lock:
            series = self._series.get(tuple(labels))
            return 0 if series is None else int(sum(series[:-1]))

    def quantile(self, q: float, labels: Sequence[str] = ()) -> float | None:
        """The upper bound of the bucket holding quantile `q` (None without observations)."""
        with self._lock:
            series = self._series.get(tuple(labels))
            if series is None:
                return None
            counts = list(series[:-1])
        total = sum(counts)
        if total == 0:
            return None
        running = 0.0
        for index, n in enumerate(counts):
            running += n
            if running >= q * total:
                return self._bounds[index] if index < len(self._bounds) else math.inf
        return math.inf

    def family(self) -> MetricFamily:
        """The histogram as a family to render."""
        rows: list[tuple[str, Mapping[str, str], float]] = []
        with self._lock:
            snapshot = {key: list(series) for key, series in self._series.items()}
        for key, series in sorted(snapshot.items()):
            labels = dict(zip(self.labelnames, key, strict=True))
            running = 0.0
            for bound, n in zip(self._bounds, series, strict=False):
                running += n
                rows.append(("_bucket", {**labels, "le": _number(bound)}, running))
            running += series[len(self._bounds)]
            rows.append(("_bucket", {**labels, "le": "+Inf"}, running))
            rows.append(("_sum", labels, series[-1]))
            rows.append(("_count", labels, running))
        return MetricFamily(self.name, self.help, "histogram", (), rows)


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{_escape_label(str(value))}"' for name, value in labels.items())
    return "{" + inner + "}"


def render(families: Iterable[MetricFamily]) -> str:
    """The text exposition of `families` (each name once, in the order given)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            lines.append(f"{family.name}{_labels(labels)} {_number(float(value))}")
        for suffix, labels, value in family.suffixed:
            lines.append(f"{family.name}{suffix}{_labels(labels)} {_number(float(value))}")
    return "\n".join(lines) + "\n"
