"""The radio side of a simulated uplink: which gateways hear it, how well, on which channel.

A log-distance path-loss model for 868 MHz in a city (about −105 dBm at 1 km, −120 dBm at 3 km
from a 14 dBm device), with fixed shadowing per device and gateway (buildings) and a little
fading per uplink. The SNR is the RSSI above the noise floor of a 125 kHz channel (−117 dBm),
capped where gateways cap it. Each device gets the spreading factor the network server's ADR
would give it (the smallest with a 10 dB margin at its best gateway); a gateway hears an uplink
when its SNR is above the spreading factor's demodulation floor. The best gateway always hears
it: an uplink nobody hears is never published, and the simulator publishes what it generates.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from agents.simulator._fleet import FleetDevice
from agents.simulator._sites import GatewaySite

__all__ = [
    "EU868_CHANNELS",
    "GatewayRx",
    "Radio",
    "airtime",
    "distance_m",
    "link_budget",
    "radio_for",
    "rank_gateways",
]

EU868_CHANNELS: tuple[int, ...] = (
    868_100_000,
    868_300_000,
    868_500_000,
    867_100_000,
    867_300_000,
    867_500_000,
    867_700_000,
    867_900_000,
)
"""The eight uplink channels of a typical EU868 network, by channel index."""

_BANDWIDTH = 125_000
_TX_POWER_DBM = 14.0
_NOISE_FLOOR_DBM = -117.0
_SNR_CAP = 13.5
_ADR_MARGIN_DB = 10.0
_DEMODULATION_FLOOR = {7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}


@dataclass(frozen=True, slots=True)
class GatewayRx:
    """One gateway's copy: RSSI (dBm), SNR (dB), and how long after the gateway's receive
    time the network server got it (ms)."""

    gateway: GatewaySite
    rssi: int
    snr: float
    delay_ms: float


@dataclass(frozen=True, slots=True)
class Radio:
    """Transmission settings of one uplink and the gateways that heard it (best first)."""

    spreading_factor: int
    bandwidth: int
    frequency: int
    channel_index: int
    coding_rate: str
    receptions: tuple[GatewayRx, ...]

    @property
    def data_rate_index(self) -> int:
        """The EU868 data rate (DR5 = SF7 ... DR0 = SF12)."""
        return 12 - self.spreading_factor


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(min(1.0, math.sqrt(h)))


def _unit_gauss(*parts: object) -> float:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    u1 = (int.from_bytes(digest[:4]) + 1) / (2**32 + 1)
    u2 = int.from_bytes(digest[4:]) / 2**32
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2 * math.pi * u2)


def link_budget(device: FleetDevice, gateway: GatewaySite, *, seed: int) -> float:
    """The mean RSSI (dBm) of `device` at `gateway`, shadowing included."""
    lon, lat = device.location
    km = max(distance_m(lon, lat, gateway.lon, gateway.lat) / 1000.0, 0.05)
    height_gain = 6.0 * math.log10(max(gateway.altitude, 10.0) / 40.0)
    shadowing = 6.0 * _unit_gauss(seed, device.dev_eui, gateway.gateway_id)
    path_loss = 120.5 + 33.0 * math.log10(km) - height_gain + shadowing
    return _TX_POWER_DBM + 2.0 - path_loss


def rank_gateways(
    device: FleetDevice, gateways: tuple[GatewaySite, ...], *, seed: int
) -> tuple[tuple[GatewaySite, float], ...]:
    """The gateways with their mean RSSI for `device`, best first (fixed per device: callers
    computing many uplinks keep it)."""
    ranked = [(gateway, link_budget(device, gateway, seed=seed)) for gateway in gateways]
    ranked.sort(key=lambda item: -item[1])
    return tuple(ranked)


def _spreading_factor(best_rssi: float) -> int:
    best_snr = min(best_rssi - _NOISE_FLOOR_DBM, _SNR_CAP)
    for sf in range(7, 13):
        if best_snr - _DEMODULATION_FLOOR[sf] >= _ADR_MARGIN_DB:
            return sf
    return 12


def radio_for(budgets: tuple[tuple[GatewaySite, float], ...], rng: random.Random) -> Radio:
    """The radio side of one uplink of a device whose `rank_gateways` are `budgets` (see the
    module docstring); `rng` draws the channel, the fading and the delays, so the same
    generator state gives the same result."""
    sf = _spreading_factor(budgets[0][1])
    floor = _DEMODULATION_FLOOR[sf]
    channel_index = rng.randrange(len(EU868_CHANNELS))
    heard: list[GatewayRx] = []
    for position, (gateway, mean_rssi) in enumerate(budgets):
        rssi = mean_rssi + rng.gauss(0.0, 2.5)
        snr = min(rssi - _NOISE_FLOOR_DBM + rng.gauss(0.0, 1.0), _SNR_CAP)
        if snr < floor:
            if position > 0:
                continue
            snr = floor + 0.5
        heard.append(
            GatewayRx(
                gateway=gateway,
                rssi=max(round(rssi), -140),
                snr=round(snr, 2),
                delay_ms=rng.uniform(8.0, 60.0),
            )
        )
    heard.sort(key=lambda rx: (-rx.snr, -rx.rssi))
    return Radio(
        spreading_factor=sf,
        bandwidth=_BANDWIDTH,
        frequency=EU868_CHANNELS[channel_index],
        channel_index=channel_index,
        coding_rate="4/5",
        receptions=tuple(heard),
    )


def airtime(payload_size: int, *, spreading_factor: int, bandwidth: int = _BANDWIDTH) -> float:
    """LoRa time on air in seconds of a PHYPayload of `payload_size` bytes (explicit header,
    CRC on, coding rate 4/5, 8 preamble symbols, low data rate optimisation from SF11 at
    125 kHz)."""
    symbol = (1 << spreading_factor) / bandwidth
    low_rate = 1 if spreading_factor >= 11 and bandwidth == 125_000 else 0
    numerator = 8 * payload_size - 4 * spreading_factor + 28 + 16
    symbols = 8 + max(math.ceil(numerator / (4 * (spreading_factor - 2 * low_rate))) * 5, 0)
    return (8 + 4.25) * symbol + symbols * symbol
