"""Cities the simulator knows: named sites for each kind of sensor, and gateways.

A `City` is data: sites (a kind of sensor at a named place, WGS84 coordinates, and the numbers
that make its readings differ from its neighbours', such as a road's traffic capacity) and the
network's gateways. Düsseldorf is built in: air quality on the main roads, noise in the
Altstadt's night-life streets, parking garages, traffic and pedestrian counters, the Rhine gauge,
soil moisture in the parks and weather stations. Coordinates are the places' own, to about
50 m.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CITIES",
    "DUESSELDORF",
    "KINDS",
    "City",
    "GatewaySite",
    "Kind",
    "KindSpec",
    "Site",
]

Kind = Literal[
    "air-quality",
    "noise",
    "parking",
    "traffic",
    "people",
    "water-level",
    "soil",
    "weather",
    "microclimate",
]
"""What a site measures; each kind has one built-in device profile (`KINDS`)."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class KindSpec(BaseModel):
    """How devices of one kind are named and which built-in profile they use.

    `code` prefixes device IDs (`aq-cornelius`), `label` names devices for people
    (`Luftqualität Corneliusstraße`), `unit_label` numbers extra devices at a site
    (`Stellplatz 12`).
    """

    model_config = _FROZEN

    profile: str
    code: str
    label: str
    unit_label: str = "Sensor"


KINDS: dict[str, KindSpec] = {
    "air-quality": KindSpec(profile="air-quality-lpp", code="aq", label="Luftqualität"),
    "noise": KindSpec(profile="noise-level", code="noise", label="Lärmpegel"),
    "parking": KindSpec(
        profile="parking-occupancy-lpp", code="park", label="Parken", unit_label="Stellplatz"
    ),
    "traffic": KindSpec(
        profile="traffic-counter",
        code="traffic",
        label="Verkehrszählung",
        unit_label="Fahrstreifen",
    ),
    "people": KindSpec(profile="people-counter", code="people", label="Passantenzählung"),
    "water-level": KindSpec(profile="water-level-lpp", code="water", label="Pegel"),
    "soil": KindSpec(profile="soil-moisture-lpp", code="soil", label="Bodenfeuchte"),
    "weather": KindSpec(profile="weather-station-lpp", code="wx", label="Wetterstation"),
    "microclimate": KindSpec(profile="temperature-humidity-lpp", code="th", label="Mikroklima"),
}


class Site(BaseModel):
    """A place with a sensor of `kind`: `name` for people, `slug` (lowercase ASCII, at most 20
    characters) for IDs, `lon`/`lat` in WGS84, and `params` for the value model (see
    `agents.simulator._values`: `capacity`, `free_speed`, `level`, `base`...)."""

    model_config = _FROZEN

    kind: Kind
    name: str
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,19}$")
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    params: dict[str, float] = Field(default_factory=dict)


class GatewaySite(BaseModel):
    """A LoRaWAN gateway: ID as the network server names it, EUI, position, antenna height."""

    model_config = _FROZEN

    gateway_id: str = Field(pattern=r"^[a-z0-9](?:[-]?[a-z0-9]){2,}$")
    eui: str = Field(pattern=r"^[0-9A-F]{16}$")
    name: str
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    altitude: float = 40.0


class City(BaseModel):
    """A city to simulate: `slug` prefixes measuring points, `timezone` drives the daily
    curves, `center` is where extra devices cluster when sites run out."""

    model_config = _FROZEN

    slug: str
    name: str
    timezone: str
    center: tuple[float, float]
    sites: tuple[Site, ...]
    gateways: tuple[GatewaySite, ...]


def _site(kind: Kind, name: str, slug: str, lat: float, lon: float, **params: float) -> Site:
    return Site(kind=kind, name=name, slug=slug, lon=lon, lat=lat, params=params)


DUESSELDORF = City(
    slug="duesseldorf",
    name="Düsseldorf",
    timezone="Europe/Berlin",
    center=(6.7735, 51.2277),
    sites=(
        # Air quality on the main roads (level: traffic exposure, 1 = a busy city road).
        _site("air-quality", "Corneliusstraße", "cornelius", 51.2079, 6.7855, level=1.5),
        _site("air-quality", "Merowingerstraße", "merowinger", 51.2010, 6.7747, level=1.2),
        _site("air-quality", "Dorotheenstraße", "dorotheen", 51.2287, 6.8076, level=1.1),
        _site("air-quality", "Heinrich-Heine-Allee", "heine-allee", 51.2255, 6.7769, level=1.2),
        _site("air-quality", "Graf-Adolf-Straße", "graf-adolf", 51.2186, 6.7840, level=1.1),
        _site("air-quality", "Berliner Allee", "berliner-allee", 51.2203, 6.7858, level=1.2),
        _site("air-quality", "Kaiserswerther Straße", "kaiserswerther", 51.2428, 6.7731, level=1.0),
        _site("air-quality", "Ludenberger Straße", "ludenberger", 51.2360, 6.8250, level=0.7),
        # Noise at the Altstadt's night-life streets (base: dB(A) on a quiet weekday afternoon).
        _site("noise", "Bolkerstraße", "bolker", 51.2266, 6.7743, base=58, nightlife=1.0),
        _site("noise", "Kurze Straße", "kurze", 51.2272, 6.7726, base=56, nightlife=1.0),
        _site("noise", "Andreasstraße", "andreas", 51.2284, 6.7748, base=55, nightlife=0.8),
        _site("noise", "Mertensgasse", "mertens", 51.2261, 6.7722, base=54, nightlife=0.9),
        _site("noise", "Ratinger Straße", "ratinger", 51.2298, 6.7762, base=55, nightlife=0.8),
        _site("noise", "Burgplatz", "burgplatz", 51.2277, 6.7715, base=53, nightlife=0.6),
        # Parking garages (level: how popular; spots are numbered within a garage).
        _site("parking", "Kö-Galerie", "koe-galerie", 51.2238, 6.7806, level=1.1),
        _site("parking", "Schadow Arkaden", "schadow-arkaden", 51.2261, 6.7829, level=1.0),
        _site("parking", "Kö-Bogen", "koe-bogen", 51.2283, 6.7810, level=1.05),
        _site("parking", "Carsch-Haus", "carsch-haus", 51.2252, 6.7787, level=0.95),
        _site("parking", "Wehrhahn-Center", "wehrhahn", 51.2292, 6.7893, level=0.8),
        _site("parking", "Stadttor", "stadttor", 51.2134, 6.7622, level=0.7),
        # Traffic counters (capacity: vehicles per 5 minutes at the peak; free_speed in km/h).
        _site(
            "traffic", "Rheinuferstraße", "rheinufer", 51.2232, 6.7690, capacity=330, free_speed=50
        ),
        _site(
            "traffic", "Königsallee", "koenigsallee", 51.2220, 6.7799, capacity=120, free_speed=30
        ),
        _site(
            "traffic", "Kennedydamm", "kennedydamm", 51.2468, 6.7696, capacity=300, free_speed=60
        ),
        _site(
            "traffic", "Danziger Straße", "danziger", 51.2600, 6.7560, capacity=420, free_speed=70
        ),
        _site("traffic", "Südring", "suedring", 51.1958, 6.7810, capacity=320, free_speed=60),
        _site(
            "traffic", "Toulouser Allee", "toulouser", 51.2372, 6.7955, capacity=220, free_speed=50
        ),
        _site(
            "traffic",
            "Rheinkniebrücke",
            "rheinkniebruecke",
            51.2212,
            6.7620,
            capacity=380,
            free_speed=60,
        ),
        # Pedestrian counters (capacity: people per 15 minutes at the peak).
        _site("people", "Schadowstraße", "schadowstrasse", 51.2254, 6.7842, capacity=1400),
        _site("people", "Königsallee (Ost)", "koe-ost", 51.2231, 6.7808, capacity=1100),
        _site("people", "Flinger Straße", "flinger", 51.2256, 6.7752, capacity=1200),
        _site(
            "people", "Rheinuferpromenade", "promenade", 51.2262, 6.7700, capacity=900, evening=1.0
        ),
        # Water levels (base: mean level in metres at the gauge).
        _site("water-level", "Pegel Düsseldorf (Rhein)", "pegel-rhein", 51.2247, 6.7704, base=3.3),
        _site("water-level", "Rhein Kaiserswerth", "kaiserswerth", 51.3018, 6.7352, base=3.0),
        _site(
            "water-level",
            "Düssel Hofgarten",
            "duessel-hofgarten",
            51.2306,
            6.7838,
            base=0.45,
            creek=1.0,
        ),
        _site(
            "water-level",
            "Kittelbach Angermund",
            "kittelbach",
            51.3230,
            6.7600,
            base=0.35,
            creek=1.0,
        ),
        # Soil moisture under street trees and in the parks (base: volumetric %).
        _site("soil", "Hofgarten", "hofgarten", 51.2315, 6.7812, base=28),
        _site("soil", "Nordpark", "nordpark", 51.2527, 6.7565, base=30),
        _site("soil", "Südpark", "suedpark", 51.1885, 6.8045, base=27),
        _site("soil", "Volksgarten", "volksgarten", 51.2043, 6.8003, base=29),
        _site("soil", "Rheinpark Golzheim", "rheinpark", 51.2423, 6.7628, base=25),
        _site("soil", "Ostpark", "ostpark", 51.2337, 6.8330, base=31),
        # Weather stations.
        _site("weather", "Rheinturm", "rheinturm", 51.2179, 6.7617, exposure=1.3),
        _site("weather", "Universität", "uni", 51.1906, 6.7941),
        _site("weather", "Gerresheim", "gerresheim", 51.2341, 6.8660),
        _site("weather", "Benrath", "benrath", 51.1622, 6.8748),
        # Microclimate (urban heat island: heat in K above the city mean).
        _site("microclimate", "Marktplatz", "marktplatz", 51.2260, 6.7727, heat=1.2),
        _site("microclimate", "Medienhafen", "medienhafen", 51.2137, 6.7535, heat=0.8),
        _site("microclimate", "Oberbilker Markt", "oberbilk", 51.2117, 6.8052, heat=1.5),
        _site("microclimate", "Stadtwald Grafenberg", "grafenberg", 51.2465, 6.8320, heat=-1.0),
    ),
    gateways=(
        GatewaySite(
            gateway_id="dus-rathaus",
            eui="58A0CBFFFE800101",
            name="Rathaus",
            lat=51.2262,
            lon=6.7731,
            altitude=55,
        ),
        GatewaySite(
            gateway_id="dus-hbf",
            eui="58A0CBFFFE800102",
            name="Hauptbahnhof",
            lat=51.2200,
            lon=6.7937,
            altitude=60,
        ),
        GatewaySite(
            gateway_id="dus-stadttor",
            eui="58A0CBFFFE800103",
            name="Stadttor",
            lat=51.2133,
            lon=6.7619,
            altitude=110,
        ),
        GatewaySite(
            gateway_id="dus-uni",
            eui="58A0CBFFFE800104",
            name="Universität",
            lat=51.1910,
            lon=6.7950,
            altitude=70,
        ),
        GatewaySite(
            gateway_id="dus-arena",
            eui="58A0CBFFFE800105",
            name="Arena",
            lat=51.2612,
            lon=6.7331,
            altitude=65,
        ),
        GatewaySite(
            gateway_id="dus-gerresheim",
            eui="58A0CBFFFE800106",
            name="Gerresheim",
            lat=51.2338,
            lon=6.8600,
            altitude=80,
        ),
        GatewaySite(
            gateway_id="dus-benrath",
            eui="58A0CBFFFE800107",
            name="Benrath",
            lat=51.1620,
            lon=6.8760,
            altitude=60,
        ),
        GatewaySite(
            gateway_id="dus-kaiserswerth",
            eui="58A0CBFFFE800108",
            name="Kaiserswerth",
            lat=51.3010,
            lon=6.7380,
            altitude=50,
        ),
    ),
)

CITIES: dict[str, City] = {"duesseldorf": DUESSELDORF}
"""Built-in cities by slug."""
