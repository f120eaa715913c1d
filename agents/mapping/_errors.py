"""What mapping reports: `MappingError` (the uplink cannot be mapped at all) and `MappingWarning`
(one attribute or entity was left out or flagged; the rest of the uplink is good)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MappingError",
    "MappingErrorReason",
    "MappingWarning",
    "MappingWarningReason",
]

MappingErrorReason = Literal["not-in-service", "unprovisioned", "bad-profile", "no-device"]
"""Why an uplink was not mapped: the device is inactive or decommissioned (`not-in-service`),
has no profile yet (`unprovisioned`), its profile cannot be compiled (`bad-profile`), or the
uplink names no device (`no-device`)."""

MappingWarningReason = Literal[
    "bad-value",
    "implausible",
    "no-measurements",
    "no-location",
    "bad-location",
    "bad-time",
    "no-time",
]
"""What a warning is about: a value the transforms or the model refused (`bad-value`, the
attribute is left out), a reading outside its plausible range (`implausible`, written and
flagged), an uplink with none of the profile's measurements, an entity that needs a location
and has none, a payload position or timestamp that was unusable, no time but the agent's clock.
"""


class MappingError(ValueError):
    """An uplink that cannot be mapped: `reason` for counting, `dev_eui` and `attribute` (when
    one is to blame) and a message that says what was expected.

    `str(error)` is `"<reason>: <message>"`, like `CodecError`.
    """

    def __init__(
        self,
        reason: MappingErrorReason,
        message: str,
        *,
        dev_eui: str | None = None,
        attribute: str | None = None,
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: MappingErrorReason = reason
        self.message = message
        self.dev_eui = dev_eui
        self.attribute = attribute

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.reason, self.message, self.dev_eui, self.attribute))


def _rebuild(
    reason: MappingErrorReason, message: str, dev_eui: str | None, attribute: str | None
) -> MappingError:
    return MappingError(reason, message, dev_eui=dev_eui, attribute=attribute)


@dataclass(frozen=True, slots=True)
class MappingWarning:
    """Something about one uplink that a person may want to fix; the uplink was still mapped.

    `entity_type` and `attribute` say where (None when the whole uplink is meant);
    `str(warning)` reads `70B3D57ED0000001 AirQualityObserved.co2: implausible: ...`.
    """

    reason: MappingWarningReason
    message: str
    dev_eui: str
    entity_type: str | None = None
    attribute: str | None = None

    def __str__(self) -> str:
        where = self.dev_eui
        if self.entity_type and self.attribute:
            where += f" {self.entity_type}.{self.attribute}"
        elif self.entity_type or self.attribute:
            where += f" {self.entity_type or self.attribute}"
        return f"{where}: {self.reason}: {self.message}"
