"""The public projection: what leaves the city, in a tenant of its own.

    rules = load_rules("publish.yaml")                  # schemas/json/publish-rules.schema.json
    projector = Projector(rules, key=read_key(rules))   # one entity → its public form
    projector.project(entity)                           # None when the type is not published

    projection = PublicProjection(rules, client=client, key=read_key(rules))
    projection.subscribe("http://127.0.0.1:8090/notify")  # kept current by notifications
    projection.resync()                                   # and rebuilt in full on request

The projection keeps only the attributes the rules list, rounds every coordinate, removes or
pseudonymizes device identifiers and suppresses small people counts (see `agents.publish.
_project`). `drehscheibe publish` runs it.
"""

from agents.publish._project import (
    DEVICE_ID_ATTRIBUTES,
    DEVICE_RELATIONSHIPS,
    Projector,
    round_coordinates,
)
from agents.publish._rules import (
    DEFAULT_COORDINATE_DECIMALS,
    KEY_ENV,
    DeviceIdentifiers,
    PublishRules,
    RulesError,
    TypeRule,
    load_rules,
    read_key,
)
from agents.publish._sync import PublicProjection, SyncReport, subscription_name

__all__ = [
    "DEFAULT_COORDINATE_DECIMALS",
    "DEVICE_ID_ATTRIBUTES",
    "DEVICE_RELATIONSHIPS",
    "KEY_ENV",
    "DeviceIdentifiers",
    "Projector",
    "PublicProjection",
    "PublishRules",
    "RulesError",
    "SyncReport",
    "TypeRule",
    "load_rules",
    "read_key",
    "round_coordinates",
    "subscription_name",
]
