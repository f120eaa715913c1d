"""The one error type of the LoRaWAN sources: a reason code a runner can count, and a message."""

from __future__ import annotations

from typing import Literal

__all__ = ["UplinkError", "UplinkErrorReason"]

UplinkErrorReason = Literal[
    "malformed-json",
    "malformed-message",
    "missing-field",
    "too-large",
    "bad-base64",
    "bad-dev-eui",
    "missing-dev-eui",
    "missing-device",
    "bad-topic",
    "topic-mismatch",
    "unsupported-event",
    "unknown-source",
]
"""Why a network-server message was refused.

- `malformed-json`: the body is not JSON, or not a JSON object.
- `malformed-message`: a field has the wrong JSON type or an impossible value (the field is named).
- `missing-field`: a field the event cannot do without is absent (`uplink_message`, ...).
- `too-large`: the body is larger than the caller's limit.
- `bad-base64`: the frame payload is not base64 and the network server decoded nothing either.
- `bad-dev-eui`: a DevEUI (or JoinEUI, gateway EUI) is not 8 bytes of hex or base64.
- `missing-dev-eui`: a ChirpStack message names no DevEUI, neither in the body nor in the topic.
- `missing-device`: a The Things Stack message names neither a DevEUI nor a device ID (body,
  topic or webhook path).
- `bad-topic`: the MQTT topic does not have the network server's layout.
- `topic-mismatch`: topic (or webhook path) and body disagree (device, application, event kind).
- `unsupported-event`: a well-formed event of a kind this package does not turn into a value
  (ChirpStack `log`, The Things Stack `service/data`, ...): count it and move on.
- `unknown-source`: the caller named a network server this package does not know.
"""


class UplinkError(ValueError):
    """A network-server message that cannot become an `Uplink` (or another event value).

    `reason` is one of `UplinkErrorReason`; `field` names the offending JSON field as a dotted
    path when there is one (`uplink_message.rx_metadata[0].rssi`); `message` says what was
    expected. `str(error)` is `"<reason>: <message>"`.
    """

    def __init__(
        self, reason: UplinkErrorReason, message: str, *, field: str | None = None
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: UplinkErrorReason = reason
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.reason, self.message, self.field))


def _rebuild(reason: UplinkErrorReason, message: str, field: str | None) -> UplinkError:
    return UplinkError(reason, message, field=field)
