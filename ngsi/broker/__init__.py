"""The embedded NGSI-LD broker: `create_app(settings)` for ASGI, `serve(settings)` to run it.

A real NGSI-LD context broker (1.6.1 behaviour, v1.8 core context) over SQLite, one file per
tenant. Orion-LD stays the production engine; this broker keeps the specification's defaults
and Orion-LD's documented limits, so that a client that works here works there.
"""

from ngsi.broker._app import BrokerExtension, create_app, default_extensions, serve
from ngsi.broker._events import ChangeKind, ChangeListener, EntityChange
from ngsi.broker._settings import DEFAULT_BODY_LIMIT, BrokerSettings
from ngsi.broker._state import Broker
from ngsi.broker._store import Store

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "Broker",
    "BrokerExtension",
    "BrokerSettings",
    "ChangeKind",
    "ChangeListener",
    "EntityChange",
    "Store",
    "create_app",
    "default_extensions",
    "serve",
]
