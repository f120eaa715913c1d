"""The page's settings: which broker it reads, where it listens, how it draws the map."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ngsi import get_profile

__all__ = ["WebSettings"]


class WebSettings(BaseModel):
    """Settings of `create_app` and `serve`.

    `tile_url` is an optional raster tile URL template with `{z}`, `{x}` and `{y}` (an
    `http(s)://` URL, or a path on this server); without it the map draws markers on a plain
    grid, so the page works with no tile server at all. Nothing is fetched from anywhere else:
    the page's script, styles and map drawing are served by this app.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker_url: str = "http://127.0.0.1:1026"
    tenant: str | None = None
    broker_profile: str = "orion-ld"
    broker_token: SecretStr | None = None
    broker_timeout: float = Field(default=5.0, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    title: str = Field(default="Drehscheibe: city sensors", min_length=1, max_length=200)
    refresh_seconds: float = Field(default=5.0, ge=0.5, le=3600)
    history_last_n: int = Field(default=100, ge=1, le=1000)
    tile_url: str | None = None
    tile_attribution: str | None = Field(default=None, max_length=300)
    tile_max_zoom: int = Field(default=19, ge=0, le=24)
    log_level: str = "warning"

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expected the broker's http(s) base URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("broker_profile")
    @classmethod
    def _profile(cls, value: str) -> str:
        return get_profile(value).name

    @field_validator("tile_url")
    @classmethod
    def _tile_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        missing = [part for part in ("{z}", "{x}", "{y}") if part not in value]
        if missing:
            raise ValueError(
                f"the tile URL template needs {', '.join(missing)}, e.g. "
                "http://tiles.example.org/{z}/{x}/{y}.png"
            )
        parts = urlsplit(value)
        if not (parts.scheme in ("http", "https") and parts.netloc) and not value.startswith("/"):
            raise ValueError(f"the tile URL template must be http(s)://... or /..., got {value!r}")
        return value

    @property
    def tile_origin(self) -> str | None:
        """The scheme and host tiles come from, when they are not on this server."""
        if self.tile_url is None or self.tile_url.startswith("/"):
            return None
        parts = urlsplit(self.tile_url)
        return f"{parts.scheme}://{parts.netloc}"
