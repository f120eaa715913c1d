"""The city's sensors on a page: a map, a list and a history chart, served by the stack.

    from drehscheibe.web import WebSettings, create_app, serve

    serve(WebSettings(broker_url="http://127.0.0.1:1026", port=8090))

The page is plain HTML, CSS and JavaScript in `static/` (no build step, no CDN); it reads the
JSON API of `create_app`, which reads the broker through `ngsi.Client` with each entity type's
Smart Data Models @context. `drehscheibe web serve` runs it.
"""

from drehscheibe.web._app import STATIC_DIR, create_app, serve
from drehscheibe.web._read import UnknownEntityType, read_devices, read_history
from drehscheibe.web._settings import WebSettings
from drehscheibe.web._units import UNIT_LABELS, format_reading, unit_label
from drehscheibe.web._views import (
    DevicesView,
    DeviceView,
    HistoryPoint,
    HistoryView,
    ObservationView,
    PageConfig,
    Reading,
)

__all__ = [
    "STATIC_DIR",
    "UNIT_LABELS",
    "DeviceView",
    "DevicesView",
    "HistoryPoint",
    "HistoryView",
    "ObservationView",
    "PageConfig",
    "Reading",
    "UnknownEntityType",
    "WebSettings",
    "create_app",
    "format_reading",
    "read_devices",
    "read_history",
    "serve",
    "unit_label",
]
