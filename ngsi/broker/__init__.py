"""The embedded NGSI-LD broker: `create_app(settings)` for ASGI, `serve(settings)` to run it.

A real NGSI-LD context broker (1.6.1 behaviour, v1.8 core context) over SQLite, one file per
tenant. Orion-LD stays the production engine; this broker keeps the specification's defaults
and Orion-LD's documented limits, so that a client that works here works there.
"""

from ngsi.broker._app import (
    EXTENSION_FACTORIES,
    BrokerExtension,
    ExtensionFactory,
    create_app,
    default_extensions,
    serve,
)
from ngsi.broker._events import ChangeKind, ChangeListener, EntityChange
from ngsi.broker._settings import DEFAULT_BODY_LIMIT, DEFAULT_NOTIFICATION_TIMEOUT, BrokerSettings
from ngsi.broker._state import Broker
from ngsi.broker._store import Store
from ngsi.broker._subscriptions import SubscriptionService, subscription_routes
from ngsi.broker._temporal import History, temporal_routes

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_NOTIFICATION_TIMEOUT",
    "EXTENSION_FACTORIES",
    "Broker",
    "BrokerExtension",
    "BrokerSettings",
    "ChangeKind",
    "ChangeListener",
    "EntityChange",
    "ExtensionFactory",
    "History",
    "Store",
    "SubscriptionService",
    "create_app",
    "default_extensions",
    "serve",
    "subscription_routes",
    "temporal_routes",
]
