"""`drehscheibe devices import --from chirpstack|tts`: devices read from a network server's API
(a small HTTP server on loopback answering in the documented shapes) become registrations."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from tests.broker.conftest import RunningBroker
from tests.conftest import free_port
from tests.fleet.conftest import cli, device_entity

KEY = "NNSXS.TESTKEY.SECRET"
APP = "0d6e5b8a-4bd3-4a52-8e2b-3f0c6c1a9e11"

CHIRPSTACK_LIST = {
    "totalCount": "2",
    "result": [
        {
            "devEui": "a84041000181c061",
            "name": "klima-rathaus",
            "description": "Rathausplatz",
            "deviceProfileId": "f4d5c1a0-0000-4000-8000-000000000001",
            "deviceProfileName": "LHT65",
            "lastSeenAt": "2026-11-25T10:00:00Z",
        },
        {
            "devEui": "a84041000181c062",
            "name": "klima-markt",
            "description": "",
            "deviceProfileId": "f4d5c1a0-0000-4000-8000-000000000001",
            "deviceProfileName": "LHT65",
        },
    ],
}
CHIRPSTACK_DETAIL = {
    "a84041000181c061": {
        "device": {
            "devEui": "a84041000181c061",
            "name": "klima-rathaus",
            "description": "Rathausplatz",
            "applicationId": APP,
            "deviceProfileId": "f4d5c1a0-0000-4000-8000-000000000001",
            "isDisabled": False,
            "variables": {},
            "tags": {
                "measuring_point": "rathaus",
                "latitude": "51.2277",
                "longitude": "6.7735",
                "district": "Altstadt",
            },
        },
        "createdAt": "2026-01-10T08:00:00Z",
    },
    "a84041000181c062": {
        "device": {
            "devEui": "a84041000181c062",
            "name": "klima-markt",
            "applicationId": APP,
            "tags": {"profile": "air-quality-lpp"},
        }
    },
}
TTS_DEVICES = {
    "end_devices": [
        {
            "ids": {
                "device_id": "pegel-rhein-1",
                "application_ids": {"application_id": "city-water"},
                "dev_eui": "70B3D57ED0050001",
                "join_eui": "0000000000000000",
            },
            "name": "Pegel Rheinufer",
            "description": "Water level at the promenade",
            "attributes": {"owner": "urn:ngsi-ld:Organization:umweltamt", "river": "Rhein"},
            "locations": {
                "user": {
                    "latitude": 51.2254,
                    "longitude": 6.7703,
                    "altitude": 32,
                    "source": "SOURCE_REGISTRY",
                }
            },
            "created_at": "2026-02-01T09:00:00Z",
        },
        {
            "ids": {
                "device_id": "pegel-no-eui",
                "application_ids": {"application_id": "city-water"},
            },
        },
    ]
}


@dataclass
class NetworkServer:
    url: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def network_server() -> Iterator[NetworkServer]:
    port = free_port()
    found = NetworkServer(url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found.requests.append((self.path, dict(self.headers.items())))
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            body: Any = None
            auth = self.headers.get("Authorization")
            if auth != f"Bearer {KEY}":
                return self.answer(401, {"code": 16, "message": "unauthenticated"})
            if parts.path == "/api/devices" and query.get("applicationId") == APP:
                body = (
                    CHIRPSTACK_LIST
                    if query.get("offset") == "0"
                    else {"totalCount": "2", "result": []}
                )
            elif parts.path.startswith("/api/devices/"):
                body = CHIRPSTACK_DETAIL.get(parts.path.rsplit("/", 1)[1])
            elif parts.path == "/api/v3/applications/city-water/devices":
                assert "attributes" in query.get("field_mask", "")
                body = TTS_DEVICES if query.get("page") == "1" else {"end_devices": []}
            if body is None:
                return self.answer(404, {"code": 5, "message": "not found"})
            return self.answer(200, body)

        def answer(self, status: int, body: Any) -> None:
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def device(broker: RunningBroker, tenant: str, dev_eui: str) -> dict[str, Any]:
    found = device_entity(broker, tenant, dev_eui)
    assert found is not None, f"no Device entity for {dev_eui}"
    return found


def test_import_from_a_chirpstack_application_with_tags(
    broker: RunningBroker, tenant: str, network_server: NetworkServer
) -> None:
    result = cli(
        "devices", "import", "--from", "chirpstack", "--url", network_server.url,
        "--application", APP, "--profile", "temperature-humidity-lpp",
        "--broker", broker.url, "--tenant", tenant, "--output", "json",
        env={**os.environ, "DREHSCHEIBE_NS_API_KEY": KEY},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = orjson.loads(result.stdout)
    assert sorted(report["registered"]) == ["A84041000181C061", "A84041000181C062"]
    assert report["failed"] == []
    first = device(broker, tenant, "A84041000181C061")
    assert first["name"] == "klima-rathaus"
    assert first["profile"] == "temperature-humidity-lpp"
    assert first["measuringPoint"] == "rathaus"
    assert first["location"] == {"type": "Point", "coordinates": [6.7735, 51.2277]}
    assert first["tags"] == {"district": "Altstadt"}
    second = device(broker, tenant, "A84041000181C062")
    assert second["profile"] == "air-quality-lpp"
    # the key went in the gateway's header too, and never in a URL
    headers = network_server.requests[0][1]
    assert headers["Grpc-Metadata-Authorization"] == f"Bearer {KEY}"
    assert all(KEY not in path for path, _ in network_server.requests)


def test_import_from_a_things_stack_application(
    broker: RunningBroker, tenant: str, network_server: NetworkServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "tts-key"
    key_file.write_text(KEY + "\n")
    result = cli(
        "devices", "import", "--from", "tts", "--url", network_server.url,
        "--application", "city-water", "--api-key-file", str(key_file),
        "--broker", broker.url, "--tenant", tenant, "--output", "json",
        env={k: v for k, v in os.environ.items() if k != "DREHSCHEIBE_NS_API_KEY"},
    )  # fmt: skip
    # the device without a DevEUI fails; the other one is registered (unprovisioned: no profile)
    assert result.returncode == 6, result.stdout + result.stderr
    report = orjson.loads(result.stdout)
    assert report["registered"] == ["70B3D57ED0050001"]
    assert [problem["where"] for problem in report["failed"]] == ["end device pegel-no-eui"]
    found = device(broker, tenant, "70B3D57ED0050001")
    assert found["name"] == "Pegel Rheinufer"
    assert found["deviceState"] == "unprovisioned"
    assert found["owner"] in (
        ["urn:ngsi-ld:Organization:umweltamt"],
        "urn:ngsi-ld:Organization:umweltamt",
    )
    assert found["location"]["coordinates"] == [6.7703, 51.2254, 32]
    assert found["tags"] == {"river": "Rhein"}


def test_import_needs_a_key_and_says_when_it_is_refused(
    broker: RunningBroker, tenant: str, network_server: NetworkServer, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DREHSCHEIBE_NS_API_KEY"}
    args = ("devices", "import", "--from", "tts", "--url", network_server.url,
            "--application", "city-water", "--broker", broker.url, "--tenant", tenant)  # fmt: skip
    missing = cli(*args, env=env)
    assert missing.returncode == 6
    assert "DREHSCHEIBE_NS_API_KEY" in missing.stderr
    wrong = cli(*args, env={**env, "DREHSCHEIBE_NS_API_KEY": "wrong"})
    assert wrong.returncode == 6
    assert "refused the API key (401" in wrong.stderr
    plain = cli(*args, "--api-key", KEY, env=env)
    assert plain.returncode == 2  # no option takes the key itself
