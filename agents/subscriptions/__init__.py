"""Subscriptions as code: a consumers file declares who is notified of what; `plan` shows the
difference to a broker and `apply_plan` reconciles it.

    from agents.subscriptions import apply_plan, load_consumers_file, plan, render_plan
    from ngsi import Client

    file = load_consumers_file("consumers.yaml")          # JSON Schema + templates checked
    with Client("http://localhost:1026", profile="orion-ld") as broker:
        changes = plan(broker, file, prune=False)
        print(render_plan(changes))                       # stable, field-level, secrets masked
        report = apply_plan(broker, changes)              # running plan again: no changes

Ownership: a subscription belongs to the file of project `P` exactly when its
`subscriptionName` is `P/<consumer>/<subscription>[.<part>]` (see `_names`). Nothing else
identifies a subscription (never its endpoint); subscriptions not owned are never touched.
Updates use PATCH when they only set members, and delete + create otherwise (see `_plan`).
Templates for traffic, environment, planning and QuantumLeap are in `_templates`.
"""

from agents.subscriptions._adhoc import (
    SubscriptionOptionError,
    build_subscription,
    context_for_types,
)
from agents.subscriptions._desired import DesiredSubscription, desired_subscriptions
from agents.subscriptions._export import ExportResult, context_of, export_file, read_subscriptions
from agents.subscriptions._file import (
    ConsumersFile,
    ConsumersFileError,
    ConsumerSpec,
    EndpointSpec,
    FileProblem,
    SubscriptionSpec,
    line_of,
    load_consumers_file,
    parse_consumers_file,
)
from agents.subscriptions._names import OwnedName, is_valid_name, owned_name, parse_owned_name
from agents.subscriptions._normalize import (
    FieldChange,
    field_changes,
    mask_secrets,
    mask_url_password,
    normalise,
)
from agents.subscriptions._plan import (
    Action,
    ApplyOutcome,
    ApplyReport,
    Change,
    Plan,
    SubscriptionClient,
    apply_plan,
    plan,
    render_plan,
)
from agents.subscriptions._probe import ProbeResult, probe_endpoint, sample_notification
from agents.subscriptions._templates import TEMPLATES, Template, TemplateError, render_template

__all__ = [
    "TEMPLATES",
    "Action",
    "ApplyOutcome",
    "ApplyReport",
    "Change",
    "ConsumerSpec",
    "ConsumersFile",
    "ConsumersFileError",
    "DesiredSubscription",
    "EndpointSpec",
    "ExportResult",
    "FieldChange",
    "FileProblem",
    "OwnedName",
    "Plan",
    "ProbeResult",
    "SubscriptionClient",
    "SubscriptionOptionError",
    "SubscriptionSpec",
    "Template",
    "TemplateError",
    "apply_plan",
    "build_subscription",
    "context_for_types",
    "context_of",
    "desired_subscriptions",
    "export_file",
    "field_changes",
    "is_valid_name",
    "line_of",
    "load_consumers_file",
    "mask_secrets",
    "mask_url_password",
    "normalise",
    "owned_name",
    "parse_consumers_file",
    "parse_owned_name",
    "plan",
    "probe_endpoint",
    "read_subscriptions",
    "render_plan",
    "render_template",
    "sample_notification",
]
