"""Reading the devices of a network-server application, to register them without typing twice.

    api_key = read_api_key(file=Path("/run/secrets/chirpstack-key"))  # or the environment
    parsed = read_network_server("chirpstack", "https://chirpstack.city:8090",
                                 application="7d5c...", api_key=api_key, profile="lpp-climate")
    report = registry.import_devices(parsed, where="chirpstack application 7d5c...")

ChirpStack v4, through its REST API (the gRPC gateway): `GET /api/devices?applicationId=...
&limit=&offset=` for the list (`{"totalCount", "result": [{"devEui", "name", "description",
"deviceProfileName", ...}]}`, counts may be strings), then `GET /api/devices/{devEui}` for each
device's `tags` (`{"device": {..., "tags": {...}}}`). The key goes in
`Grpc-Metadata-Authorization: Bearer <key>` (and `Authorization`, for a proxy that expects it).

The Things Stack, through the Identity Server's end-device registry:
`GET /api/v3/applications/{app}/devices?field_mask=name,description,attributes,locations&limit=
&page=` (`{"end_devices": [{"ids": {"device_id", "dev_eui"}, "name", "description",
"attributes": {...}, "locations": {"user": {"latitude", "longitude", "altitude"}}}]}`, pages
from 1, the total in `X-Total-Count`), with `Authorization: Bearer <key>`.

What becomes of a device: its DevEUI, name (ChirpStack's name, The Things Stack's name or
device id), description; its tags (ChirpStack) or attributes (The Things Stack) become the
registration's `tags`, except these keys, which fill fields: `profile` (else the default
profile given, else it is registered unprovisioned), `measuring_point` / `measuringPoint`,
`owner`, `device_model`, `latitude` + `longitude` (The Things Stack's user location wins).
Keys and session keys are never requested (the field mask names only what is listed above).

The API key is read from a file or an environment variable, never from the command line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from agents.registry._device import RegisteredDevice, RegistryError
from agents.registry._import import ImportProblem, ParsedImport

__all__ = [
    "API_KEY_ENV",
    "NetworkServerKind",
    "devices_from_chirpstack",
    "devices_from_tts",
    "read_api_key",
    "read_network_server",
]

NetworkServerKind = Literal["chirpstack", "tts"]

API_KEY_ENV = "DREHSCHEIBE_NS_API_KEY"
"""The environment variable holding the network server's API key (when no file is given)."""

_PAGE = 100
_TTS_FIELDS = "name,description,attributes,locations"
_FIELD_TAGS = {
    "profile": "profile",
    "measuring_point": "measuring_point",
    "measuringpoint": "measuring_point",
    "measuring-point": "measuring_point",
    "owner": "owner",
    "device_model": "device_model",
    "devicemodel": "device_model",
}


def read_api_key(*, file: Path | None = None, env: str = API_KEY_ENV) -> str:
    """The API key from `file` (its content, trimmed) or else the environment variable `env`;
    `RegistryError` saying where it was looked for when there is none."""
    if file is not None:
        try:
            key = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RegistryError(f"cannot read the API key file {file}: {exc.strerror}") from None
        if not key:
            raise RegistryError(f"the API key file {file} is empty")
        return key
    key = os.environ.get(env, "").strip()
    if not key:
        raise RegistryError(
            f"no API key: give --api-key-file or set the environment variable {env}"
        )
    return key


def _number(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _get(client: httpx.Client, path: str, params: Mapping[str, Any] | None = None) -> Any:
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise RegistryError(
            f"the network server at {client.base_url} is unreachable: {exc}"
        ) from None
    if response.status_code in (401, 403):
        raise RegistryError(
            f"the network server refused the API key ({response.status_code} for {path}): "
            "check the key and its rights on the application"
        )
    if response.status_code == 404:
        raise RegistryError(
            f"the network server has no {path} (404): check --url and --application"
        )
    if response.status_code >= 400:
        raise RegistryError(
            f"the network server answered {response.status_code} for {path}: {response.text[:200]}"
        )
    try:
        return response.json()
    except ValueError:
        raise RegistryError(f"the network server's answer for {path} is not JSON") from None


def _chirpstack_devices(client: httpx.Client, application: str) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        page = _get(
            client,
            "/api/devices",
            {"applicationId": application, "limit": _PAGE, "offset": offset},
        )
        items = page.get("result") if isinstance(page, Mapping) else None
        if not isinstance(items, list):
            raise RegistryError("the ChirpStack answer has no 'result' list")
        for item in items:
            if not isinstance(item, Mapping):
                continue
            dev_eui = str(item.get("devEui") or "")
            detail = _get(client, f"/api/devices/{quote(dev_eui)}") if dev_eui else {}
            device = detail.get("device") if isinstance(detail, Mapping) else None
            yield {**item, **(device if isinstance(device, Mapping) else {})}
        offset += len(items)
        if not items or offset >= _number(page.get("totalCount")):
            return


def _tts_devices(client: httpx.Client, application: str) -> Iterator[dict[str, Any]]:
    path = f"/api/v3/applications/{quote(application)}/devices"
    page = 1
    seen: set[str] = set()
    while True:
        body = _get(client, path, {"field_mask": _TTS_FIELDS, "limit": _PAGE, "page": page})
        items = body.get("end_devices", []) if isinstance(body, Mapping) else None
        if not isinstance(items, list):
            raise RegistryError("The Things Stack's answer has no 'end_devices' list")
        fresh = 0
        for item in items:
            if not isinstance(item, Mapping):
                continue
            ids = item.get("ids")
            key = str(ids.get("device_id")) if isinstance(ids, Mapping) else str(len(seen))
            if key in seen:
                continue
            seen.add(key)
            fresh += 1
            yield dict(item)
        # a server that ignores `page` would repeat the first page forever
        if len(items) < _PAGE or not fresh:
            return
        page += 1


def _fields_from_tags(tags: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    fields: dict[str, Any] = {}
    rest: dict[str, str] = {}
    latitude = longitude = None
    for key, value in tags.items():
        text = str(value)
        name = _FIELD_TAGS.get(key.lower())
        if name == "owner":
            fields["owner"] = tuple(part.strip() for part in text.split(";") if part.strip())
        elif name is not None:
            fields[name] = text
        elif key.lower() in ("latitude", "lat"):
            latitude = text
        elif key.lower() in ("longitude", "lon", "lng"):
            longitude = text
        else:
            rest[str(key)] = text
    if latitude is not None and longitude is not None:
        try:
            fields["location"] = {
                "type": "Point",
                "coordinates": [float(longitude), float(latitude)],
            }
        except ValueError:
            rest.update({"latitude": latitude, "longitude": longitude})
    return fields, rest


def _device(
    where: str, record: dict[str, Any], *, profile: str | None
) -> RegisteredDevice | ImportProblem:
    dev_eui = str(record.get("dev_eui") or "").upper() or None
    fields: dict[str, Any] = {key: value for key, value in record.items() if value is not None}
    fields["dev_eui"] = dev_eui
    fields.setdefault("profile", profile)
    if fields.get("profile") is None:
        fields["state"] = "unprovisioned"
    try:
        return RegisteredDevice.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(step) for step in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        return ImportProblem(
            where=where, message=f"{field}: {message}" if field else message, dev_eui=dev_eui
        )


def _collect(items: list[tuple[str, dict[str, Any]]], *, profile: str | None) -> ParsedImport:
    devices: list[RegisteredDevice] = []
    problems: list[ImportProblem] = []
    for where, record in items:
        made = _device(where, record, profile=profile)
        if isinstance(made, ImportProblem):
            problems.append(made)
        else:
            devices.append(made)
    return ParsedImport(devices=devices, problems=problems)


def devices_from_chirpstack(
    items: list[dict[str, Any]], *, profile: str | None = None
) -> ParsedImport:
    """Registrations from ChirpStack v4 device objects (list entries merged with the `device`
    of their detail, see the module docstring)."""
    records: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        tags = item.get("tags") if isinstance(item.get("tags"), Mapping) else {}
        fields, rest = _fields_from_tags(tags or {})
        record: dict[str, Any] = {
            "dev_eui": item.get("devEui"),
            "name": item.get("name") or None,
            "description": item.get("description") or None,
            **fields,
        }
        if rest:
            record["tags"] = rest
        records.append((f"chirpstack device {index}", record))
    return _collect(records, profile=profile)


def devices_from_tts(items: list[dict[str, Any]], *, profile: str | None = None) -> ParsedImport:
    """Registrations from The Things Stack end devices (see the module docstring)."""
    records: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        ids = item.get("ids") if isinstance(item.get("ids"), Mapping) else {}
        attributes = item.get("attributes")
        fields, rest = _fields_from_tags(attributes if isinstance(attributes, Mapping) else {})
        locations = item.get("locations")
        user = locations.get("user") if isinstance(locations, Mapping) else None
        if isinstance(user, Mapping) and "latitude" in user and "longitude" in user:
            coordinates = [user.get("longitude"), user.get("latitude")]
            if user.get("altitude") is not None:
                coordinates.append(user["altitude"])
            fields["location"] = {"type": "Point", "coordinates": coordinates}
        device_id = ids.get("device_id") if isinstance(ids, Mapping) else None
        record: dict[str, Any] = {
            "dev_eui": ids.get("dev_eui") if isinstance(ids, Mapping) else None,
            "name": item.get("name") or device_id or None,
            "description": item.get("description") or None,
            **fields,
        }
        if rest:
            record["tags"] = rest
        records.append((f"end device {device_id or index}", record))
    return _collect(records, profile=profile)


def read_network_server(
    kind: NetworkServerKind,
    url: str,
    *,
    application: str,
    api_key: str,
    profile: str | None = None,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> ParsedImport:
    """Every device of a network-server application as registrations (see the module
    docstring); `profile` is the default for devices without a `profile` tag. Raises
    `RegistryError` when the server cannot be read (unreachable, key refused, not found)."""
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    if kind == "chirpstack":
        headers["Grpc-Metadata-Authorization"] = f"Bearer {api_key}"
    with httpx.Client(
        base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
    ) as client:
        if kind == "chirpstack":
            return devices_from_chirpstack(
                list(_chirpstack_devices(client, application)), profile=profile
            )
        if kind == "tts":
            return devices_from_tts(list(_tts_devices(client, application)), profile=profile)
    raise RegistryError(f"unknown network server {kind!r}: chirpstack or tts")
