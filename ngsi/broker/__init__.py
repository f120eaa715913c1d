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
from ngsi.broker._auth import (
    OPERATIONS,
    ApiKeyEntry,
    Authenticator,
    AuthMiddleware,
    BrokerAuth,
    Grant,
    OAuth2Issuer,
    Operation,
    Principal,
    anonymous_allowed,
    exposure_problem,
    generate_api_key,
    hash_api_key,
    operation_for,
    parse_grant,
)
from ngsi.broker._events import ChangeKind, ChangeListener, EntityChange
from ngsi.broker._retention import RetentionExtension, StateRetention
from ngsi.broker._settings import DEFAULT_BODY_LIMIT, DEFAULT_NOTIFICATION_TIMEOUT, BrokerSettings
from ngsi.broker._state import Broker
from ngsi.broker._store import Store
from ngsi.broker._subscriptions import SubscriptionService, subscription_routes
from ngsi.broker._temporal import History, temporal_routes

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_NOTIFICATION_TIMEOUT",
    "EXTENSION_FACTORIES",
    "OPERATIONS",
    "ApiKeyEntry",
    "AuthMiddleware",
    "Authenticator",
    "Broker",
    "BrokerAuth",
    "BrokerExtension",
    "BrokerSettings",
    "ChangeKind",
    "ChangeListener",
    "EntityChange",
    "ExtensionFactory",
    "Grant",
    "History",
    "OAuth2Issuer",
    "Operation",
    "Principal",
    "RetentionExtension",
    "StateRetention",
    "Store",
    "SubscriptionService",
    "anonymous_allowed",
    "create_app",
    "default_extensions",
    "exposure_problem",
    "generate_api_key",
    "hash_api_key",
    "operation_for",
    "parse_grant",
    "serve",
    "subscription_routes",
    "temporal_routes",
]
