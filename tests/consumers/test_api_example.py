"""The "your own consumer in a few lines" example of `agents.consumers`, run exactly as written
(only its port is replaced by a free one) in a subprocess."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import httpx
import orjson

import agents.consumers
from tests.conftest import REPO, free_port, wait_for_port
from tests.subscriptions._support import now_text


def example() -> str:
    doc = agents.consumers.__doc__ or ""
    match = re.search(r"few lines:\n\n((?:    .*\n|\n)+?)\n\S", doc)
    assert match, "the module docstring lost its example"
    return textwrap.dedent(match.group(1))


def test_the_documented_example_works(tmp_path: Path) -> None:
    code = example()
    assert "consumer.run(port=8085)" in code
    port = free_port()
    script = tmp_path / "my_consumer.py"
    script.write_text(code.replace("8085", str(port)))
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    try:
        wait_for_port(port, timeout=30)
        body = {
            "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
            "type": "Notification",
            "subscriptionId": "urn:ngsi-ld:Subscription:noise",
            "notifiedAt": now_text(),
            "data": [
                {
                    "id": "urn:ngsi-ld:NoiseLevelObserved:plaza",
                    "type": "NoiseLevelObserved",
                    "LAeq": {"type": "Property", "value": 71.5, "observedAt": now_text()},
                },
                {
                    "id": "urn:ngsi-ld:NoiseLevelObserved:park",
                    "type": "NoiseLevelObserved",
                    "LAeq": {"type": "Property", "value": 40.0, "observedAt": now_text()},
                },
            ],
        }
        response = httpx.post(f"http://127.0.0.1:{port}/notify", json=body, timeout=10)
        assert response.status_code == 200
        assert response.json() == {"accepted": 2, "duplicates": 0}
        line = process.stdout.readline().decode() if process.stdout else ""
        assert line == "loud at urn:ngsi-ld:NoiseLevelObserved:plaza 71.5\n"
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=20)
    written = [orjson.loads(x) for x in (tmp_path / "noise.jsonl").read_bytes().splitlines()]
    assert [w["entityId"] for w in written] == [
        "urn:ngsi-ld:NoiseLevelObserved:plaza",
        "urn:ngsi-ld:NoiseLevelObserved:park",
    ]
    assert b"Traceback" not in err
