"""Broker credentials of the CLI (`drehscheibe.commands._common`): a token file, a token in the
environment, or OAuth2 client credentials, against the embedded broker started with an API key
(which takes `Authorization: Bearer <key>`, as a PEP proxy in front of Orion-LD would)."""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest

from tests.broker.conftest import BrokerProcess, start_broker_process
from tests.conftest import REPO

KEY = "k3y-for-the-cli-test-0123456789"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    folder = tmp_path_factory.mktemp("auth")
    (folder / "key").write_text(KEY + "\n")
    running = start_broker_process(folder / "data", "--api-key-file", str(folder / "key"))
    try:
        yield running
    finally:
        running.stop()


def cli(broker: BrokerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DREHSCHEIBE_")}
    return subprocess.run(
        [sys.executable, "-m", "drehscheibe", "subscriptions", "list", "-o", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env={**clean, "DREHSCHEIBE_BROKER_URL": broker.url, **env},
    )


def test_without_credentials_the_broker_refuses(broker: BrokerProcess) -> None:
    result = cli(broker)
    assert result.returncode == 4, result.stdout + result.stderr


def test_a_token_file_or_a_token_in_the_environment(broker: BrokerProcess, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(KEY + "\n")
    by_file = cli(broker, "--token-file", str(token))
    assert by_file.returncode == 0, by_file.stderr
    assert json.loads(by_file.stdout) == []
    by_env = cli(broker, DREHSCHEIBE_BROKER_TOKEN=KEY)
    assert by_env.returncode == 0, by_env.stderr
    wrong = cli(broker, DREHSCHEIBE_BROKER_TOKEN_FILE=str(token), DREHSCHEIBE_BROKER_TOKEN="x")
    assert wrong.returncode == 2
    assert "given twice" in wrong.stderr


def test_a_wrong_token_is_refused_and_never_printed(broker: BrokerProcess) -> None:
    result = cli(broker, DREHSCHEIBE_BROKER_TOKEN="not-the-key-5f2e")
    assert result.returncode == 4
    assert "not-the-key-5f2e" not in result.stdout + result.stderr


class _TokenEndpoint(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        self.requests.append((self.headers.get("Authorization", ""), body))
        answer = json.dumps({"access_token": KEY, "token_type": "Bearer", "expires_in": 300})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_oauth2_client_credentials_from_the_environment(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = tmp_path / "client-secret"
    secret.write_text("s3cr3t\n")
    try:
        token_url = f"http://127.0.0.1:{server.server_address[1]}/token"
        result = cli(
            broker,
            DREHSCHEIBE_BROKER_TOKEN_URL=token_url,
            DREHSCHEIBE_BROKER_CLIENT_ID="drehscheibe-cli",
            DREHSCHEIBE_BROKER_CLIENT_SECRET_FILE=str(secret),
            DREHSCHEIBE_BROKER_SCOPE="ngsi-ld",
        )
        assert result.returncode == 0, result.stderr
        ((authorization, body),) = _TokenEndpoint.requests
        basic = base64.b64encode(b"drehscheibe-cli:s3cr3t").decode()
        assert authorization == f"Basic {basic}"
        assert "grant_type=client_credentials" in body
        assert "scope=ngsi-ld" in body
        incomplete = cli(broker, DREHSCHEIBE_BROKER_TOKEN_URL=token_url)
        assert incomplete.returncode == 2
        assert "DREHSCHEIBE_BROKER_CLIENT_ID" in incomplete.stderr
    finally:
        server.shutdown()
        server.server_close()


class _DeviceEndpoints(http.server.BaseHTTPRequestHandler):
    """A device authorization endpoint and a token endpoint whose person has already confirmed."""

    grants: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if self.path == "/device":
            answer: dict[str, Any] = {
                "device_code": "dc-1",
                "user_code": "WDJB-MJHT",
                "verification_uri": "https://idp.city.example/device",
                "expires_in": 600,
                "interval": 1,
            }
        else:
            self.grants.append(form["grant_type"])
            answer = {
                "access_token": KEY,
                "token_type": "Bearer",
                "expires_in": 300,
                "refresh_token": "rt-1",
            }
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(answer).encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_a_person_signs_in_once_with_a_device_code(broker: BrokerProcess, tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DeviceEndpoints)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    env = {
        "DREHSCHEIBE_BROKER_DEVICE_AUTH_URL": f"{base}/device",
        "DREHSCHEIBE_BROKER_TOKEN_URL": f"{base}/token",
        "DREHSCHEIBE_BROKER_CLIENT_ID": "drehscheibe-cli",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    try:
        first = cli(broker, **env)
        assert first.returncode == 0, first.stderr
        assert "WDJB-MJHT" in first.stderr
        assert "https://idp.city.example/device" in first.stderr
        assert _DeviceEndpoints.grants == ["urn:ietf:params:oauth:grant-type:device_code"]
        kept = list((tmp_path / "config").rglob("drehscheibe-cli.json"))
        assert len(kept) == 1
        assert kept[0].stat().st_mode & 0o777 == 0o600
        again = cli(broker, **env)
        assert again.returncode == 0, again.stderr
        assert "WDJB-MJHT" not in again.stderr
        assert _DeviceEndpoints.grants[1:] == ["refresh_token"]
        with_secret = cli(broker, **env, DREHSCHEIBE_BROKER_CLIENT_SECRET="s")
        assert with_secret.returncode == 2
        assert "without a client secret" in " ".join(with_secret.stderr.split())
    finally:
        server.shutdown()
        server.server_close()
