"""Structured logs: one JSON object per line, with the extra fields of the call."""

from __future__ import annotations

import io
import logging

import orjson

from agents.runtime import configure_logging


def test_json_lines_carry_level_logger_message_extras_and_errors() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(level="info", format="json", stream=stream)
        log = logging.getLogger("agents.runtime.test")
        log.debug("not shown")
        log.info("batch committed", extra={"uplinks": 500, "source": "tts"})
        try:
            raise ValueError("disk full")
        except ValueError:
            log.exception("commit failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["batch committed", "commit failed"]
    assert lines[0]["level"] == "info"
    assert lines[0]["logger"] == "agents.runtime.test"
    assert lines[0]["uplinks"] == 500
    assert lines[0]["source"] == "tts"
    assert lines[0]["time"].endswith("+00:00")
    assert "ValueError: disk full" in lines[1]["error"]
