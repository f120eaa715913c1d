"""The simulator: a fleet's uplinks as the network server would publish them.

    simulator = Simulator(fleet, counters=FrameCounters("state.json"), duplicate_rate=0.01)
    for message in simulator.messages(1000, start=now, interval=0.1):
        publish(message.topic, message.payload)

Devices take turns in a fixed order (a permutation of the fleet drawn from the seed). Each
uplink takes the device's next frame counter, its reading at the uplink's time, and the radio
side from the gateways around it; the message is the network server's JSON (compact, as both
servers write it). With `duplicate_rate`, an uplink is published twice (the same bytes, as an
MQTT redelivery); with `corrupt_rate`, it is broken in one of `corruptions`. Everything that is
drawn comes from generators seeded by the fleet's seed, the DevEUI and the frame counter, so a
run is reproducible for the same start time, and a restarted run (with the frame counters kept)
continues rather than repeats.

`iter_messages(fleet, n)` is the fast path for benchmarks: `n` (topic, payload) pairs without a
state file.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from agents.simulator._fleet import Fleet, FleetDevice, FleetError, NetworkServer
from agents.simulator._messages import (
    CORRUPTIONS,
    chirpstack_topic,
    chirpstack_uplink,
    corrupt,
    tts_topic,
    tts_uplink,
)
from agents.simulator._radio import radio_for, rank_gateways
from agents.simulator._sites import GatewaySite
from agents.simulator._state import FrameCounters
from agents.simulator._values import SUPPORTED_PROFILES, Reading, reading_for

__all__ = ["SimulatedMessage", "Simulator", "iter_messages"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedMessage:
    """One message as published: `topic` and `payload` (the wire bytes), and what it is.

    `at` is when the gateways received the uplink; `duplicate` marks the second copy of a
    duplicated uplink; `corruption` names how the message was broken (None: a good message).
    `reading` is what the device measured and sent.
    """

    topic: str
    payload: bytes
    network_server: NetworkServer
    application: str
    dev_eui: str
    device_id: str
    profile: str
    f_cnt: int
    at: datetime
    reading: Reading
    duplicate: bool = False
    corruption: str | None = None

    @property
    def path_vars(self) -> dict[str, str]:
        """The path variables of a The Things Stack webhook for this message."""
        return {"devEUI": self.dev_eui, "devID": self.device_id, "appID": self.application}

    def to_json_line(self) -> bytes:
        """A JSON line for `--dry-run`: topic, flags and the body (as text when it is not
        JSON, for corrupt messages)."""
        body: Any
        try:
            body = orjson.loads(self.payload)
        except orjson.JSONDecodeError:
            body = self.payload.decode("utf-8", errors="replace")
        record: dict[str, Any] = {"topic": self.topic, "dev_eui": self.dev_eui, "f_cnt": self.f_cnt}
        if self.duplicate:
            record["duplicate"] = True
        if self.corruption:
            record["corruption"] = self.corruption
        record["payload"] = body
        return orjson.dumps(record)


def _rate(value: float, name: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, not {value}")
    return value


class Simulator:
    """Uplinks of `fleet` (see the module docstring).

    `counters` keeps the frame counters (default: in memory, starting at 0); `seed` overrides
    the fleet's. Raises `FleetError` when a device's profile has no value model, `ValueError`
    for rates outside 0..1 or an unknown corruption. Not thread-safe: one thread drives it.
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        counters: FrameCounters | None = None,
        duplicate_rate: float = 0.0,
        corrupt_rate: float = 0.0,
        corruptions: Iterable[str] = tuple(CORRUPTIONS),
        seed: int | None = None,
    ) -> None:
        self.fleet = fleet
        self.seed = fleet.seed if seed is None else seed
        self.counters = counters if counters is not None else FrameCounters()
        self.duplicate_rate = _rate(duplicate_rate, "the duplicate rate")
        self.corrupt_rate = _rate(corrupt_rate, "the corrupt rate")
        self.corruptions = tuple(corruptions)
        unknown = [kind for kind in self.corruptions if kind not in CORRUPTIONS]
        if unknown or (corrupt_rate and not self.corruptions):
            raise ValueError(
                f"unknown corruption(s) {', '.join(unknown) or '(none given)'}; "
                f"known: {', '.join(CORRUPTIONS)}"
            )
        unsupported = sorted({d.profile for d in fleet.devices} - set(SUPPORTED_PROFILES))
        if unsupported:
            raise FleetError(
                f"no value model for profile(s) {', '.join(unsupported)}; the simulator "
                f"supports {', '.join(SUPPORTED_PROFILES)}"
            )
        order = list(fleet.devices)
        random.Random(f"{self.seed}:order").shuffle(order)
        self._order = order
        self._cursor = 0
        self._budgets: dict[str, tuple[tuple[GatewaySite, float], ...]] = {}

    def next_device(self) -> FleetDevice:
        """The device whose turn it is (round-robin over the fleet in the simulator's order)."""
        device = self._order[self._cursor]
        self._cursor = (self._cursor + 1) % len(self._order)
        return device

    def uplink(self, device: FleetDevice, at: datetime | None = None) -> list[SimulatedMessage]:
        """One uplink of `device` received at `at` (default now): one message, or two when it
        is duplicated. Takes the device's next frame counter."""
        at_ns = time.time_ns() if at is None else round(at.timestamp() * 1e9)
        when = at if at is not None else datetime.fromtimestamp(at_ns / 1e9, UTC)
        fleet = self.fleet
        f_cnt = self.counters.take(device.dev_eui)
        reading = reading_for(device, when, f_cnt=f_cnt, seed=self.seed, timezone=fleet.timezone)
        rng = random.Random(f"{self.seed}:{device.dev_eui}:{f_cnt}:wire")
        budgets = self._budgets.get(device.dev_eui)
        if budgets is None:
            budgets = rank_gateways(device, fleet.gateways, seed=self.seed)
            self._budgets[device.dev_eui] = budgets
        radio = radio_for(budgets, rng)
        if fleet.network_server == "tts":
            topic = tts_topic(fleet, device)
            body = tts_uplink(
                fleet, device, f_cnt=f_cnt, reading=reading, radio=radio, at_ns=at_ns, rng=rng
            )
        else:
            topic = chirpstack_topic(fleet, device)
            body = chirpstack_uplink(
                fleet, device, f_cnt=f_cnt, reading=reading, radio=radio, at_ns=at_ns, rng=rng
            )
        corruption: str | None = None
        if self.corrupt_rate and rng.random() < self.corrupt_rate:
            corruption = rng.choice(self.corruptions)
            payload = corrupt(corruption, body, network_server=fleet.network_server, rng=rng)
        else:
            payload = orjson.dumps(body)
        message = SimulatedMessage(
            topic=topic,
            payload=payload,
            network_server=fleet.network_server,
            application=fleet.application,
            dev_eui=device.dev_eui,
            device_id=device.device_id,
            profile=device.profile,
            f_cnt=f_cnt,
            at=when,
            reading=reading,
            corruption=corruption,
        )
        if self.duplicate_rate and rng.random() < self.duplicate_rate:
            return [
                message,
                SimulatedMessage(
                    topic=topic,
                    payload=payload,
                    network_server=fleet.network_server,
                    application=fleet.application,
                    dev_eui=device.dev_eui,
                    device_id=device.device_id,
                    profile=device.profile,
                    f_cnt=f_cnt,
                    at=when,
                    reading=reading,
                    corruption=corruption,
                    duplicate=True,
                ),
            ]
        return [message]

    def messages(
        self, count: int, *, start: datetime | None = None, interval: float = 0.0
    ) -> Iterator[SimulatedMessage]:
        """`count` uplinks (plus their duplicates), the devices taking turns, the i-th received
        at `start + i * interval` seconds (default start: now)."""
        origin = (start or datetime.now(UTC)).timestamp()
        for index in range(count):
            at = datetime.fromtimestamp(origin + index * interval, UTC)
            yield from self.uplink(self.next_device(), at)


def iter_messages(
    fleet: Fleet,
    n: int,
    *,
    start: datetime | None = None,
    rate: float = 100.0,
    duplicate_rate: float = 0.0,
    corrupt_rate: float = 0.0,
    seed: int | None = None,
) -> Iterator[tuple[str, bytes]]:
    """`n` (topic, payload) pairs of `fleet` without publishing them (for benchmarks).

    Uplinks are `1 / rate` seconds apart from `start` (default now); frame counters start at
    0 in memory. Duplicates count towards `n`.
    """
    if n <= 0:
        return
    if rate <= 0:
        raise ValueError(f"the rate must be positive, not {rate}")
    simulator = Simulator(
        fleet, duplicate_rate=duplicate_rate, corrupt_rate=corrupt_rate, seed=seed
    )
    messages = simulator.messages(n, start=start, interval=1.0 / rate)
    for produced, message in enumerate(messages, start=1):
        yield message.topic, message.payload
        if produced == n:
            return
