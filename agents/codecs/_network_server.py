"""The `network-server` codec: the network server already decoded the payload; take it as it is.

It reads `Uplink.decoded` (The Things Stack `decoded_payload`, ChirpStack `object`, ChirpStack v3
`objectJSON`) or, with `use: normalized`, The Things Stack's `normalized_payload`, and flattens it
into measurements by the rules of `flatten` (nested objects joined with dots, array items by
index). A normalized payload with one measurement object flattens as that object; with several,
each gets its index as a prefix (`0.air.temperature`, `1.air.temperature`).

`dialect: cayennelpp` is for network servers whose CayenneLPP formatter decoded the payload: names
go through the CayenneLPP alias table and values are rounded to the type's resolution, so the
measurements equal what the `cayennelpp` codec gives for the same bytes (27.200000762939453 from
The Things Stack, `{"temperatureSensor": {"3": 27.2}}` from ChirpStack → `temperature_3: 27.2`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from agents.codecs._base import CodecError, Measurements, Value, flatten
from agents.codecs._cayennelpp import normalize_cayenne_object

if TYPE_CHECKING:
    from agents.lorawan import Uplink

__all__ = ["NetworkServerCodec", "NetworkServerConfig"]


class NetworkServerConfig(BaseModel):
    """Configuration of the `network-server` codec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    use: Literal["decoded", "normalized"] = "decoded"
    dialect: Literal["plain", "cayennelpp"] = "plain"


class NetworkServerCodec:
    """The `network-server` codec (see the module docstring). Stateless and thread-safe.

    It ignores the payload bytes and needs `uplink`; an uplink without the chosen object raises
    `CodecError("no-decoded-object")` naming the device.
    """

    name = "network-server"

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        try:
            self.config = NetworkServerConfig.model_validate(dict(config or {}))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise CodecError("bad-config", f"network-server: {where}: {first['msg']}") from None

    def decode(
        self, payload: bytes, /, *, f_port: int, uplink: Uplink | None = None
    ) -> Measurements:
        """Flatten the network server's decoded (or normalized) object into measurements."""
        if uplink is None:
            raise CodecError(
                "no-decoded-object", "the network-server codec reads the uplink: pass uplink="
            )
        device = uplink.dev_eui or uplink.device_id or "the device"
        if self.config.use == "normalized":
            items = uplink.normalized_payload
            if not items:
                raise CodecError(
                    "no-decoded-object",
                    f"{device}: the uplink has no normalized payload (the device's codec has no "
                    "normalizeUplink, or the network server is not The Things Stack)",
                )
            data: dict[str, Value] = (
                flatten(items[0])
                if len(items) == 1
                else flatten({str(index): item for index, item in enumerate(items)})
            )
            return Measurements(data, uplink.decoded_warnings)
        decoded = uplink.decoded
        if decoded is None:
            raise CodecError(
                "no-decoded-object",
                f"{device}: the network server sent no decoded object (no payload formatter or "
                "codec is set for the device, or it failed)",
            )
        values = (
            normalize_cayenne_object(decoded)
            if self.config.dialect == "cayennelpp"
            else flatten(decoded)
        )
        return Measurements(values, uplink.decoded_warnings)
