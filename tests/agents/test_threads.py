"""Native thread names: what `top -H` and /proc show for the agent's threads."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from agents._threads import name_native_thread
from agents.delivery import Outbox, Sender
from tests.agents.test_sender import FakeSink

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux names")


def native_names() -> set[str]:
    return {path.read_text().strip() for path in Path("/proc/self/task").glob("*/comm")}


def native_name_of(thread: threading.Thread) -> str:
    return Path(f"/proc/self/task/{thread.native_id}/comm").read_text().strip()


def test_a_thread_takes_its_python_name_or_the_one_given_cut_to_15_bytes() -> None:
    named = threading.Event()
    done = threading.Event()

    def run(name: str | None) -> None:
        name_native_thread(name)
        named.set()
        done.wait(5)

    for given, expected in (
        (None, "agent-sample"),
        ("mqtt-a-rather-long-source", "mqtt-a-rather-l"),
    ):
        named.clear()
        done.clear()
        thread = threading.Thread(target=run, args=(given,), name="agent-sample")
        thread.start()
        try:
            assert named.wait(5)
            assert native_name_of(thread) == expected
        finally:
            done.set()
            thread.join()


def test_the_sender_workers_are_named(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        sender = Sender(outbox, FakeSink(), workers=2, idle_wait=0.05)
        sender.start()
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if {"outbox-sender-1", "outbox-sender-2"} <= native_names():
                    break
                time.sleep(0.02)
            assert {"outbox-sender-1", "outbox-sender-2"} <= native_names()
        finally:
            sender.stop(drain_timeout=1)
