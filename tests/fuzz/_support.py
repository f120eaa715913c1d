"""What the fuzz tests share: how many examples, the seed corpus, JSON mutations.

`DREHSCHEIBE_FUZZ_EXAMPLES` sets the examples per test (default 100: the module runs in
seconds); a long run is

    DREHSCHEIBE_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/fuzz -p no:cacheprovider

Every test asserts "no crash": a parser either returns a value or raises its documented error
type; anything else fails the test with the input hypothesis shrank it to.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.conftest import SHARED

EXAMPLES = int(os.environ.get("DREHSCHEIBE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=EXAMPLES <= 100,
)
"""The settings of every fuzz test (derandomized at the default size, so CI is repeatable;
a long run explores new inputs each time)."""

SOURCE_OF = {
    "tts_v3": "tts",
    "chirpstack_v4": "chirpstack-v4",
    "chirpstack_v3_pbjson": "chirpstack-v3",
}


def uplink_vectors(shared: Path = SHARED) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(source kind, MQTT topic or None, message) of every uplink vector."""
    index = json.loads((shared / "vectors" / "uplinks" / "index.json").read_text())
    found = []
    for vector in index["uplinks"]:
        topic = vector.get("topic")
        topic = topic.split()[0] if isinstance(topic, str) and topic else None
        if topic is None:
            # some vectors name their topic in the transport text only
            words = str(vector.get("transport", "")).split()
            topic = next((w for w in words if w.startswith(("application/", "v3/"))), None)
        source = SOURCE_OF[vector["expected_normalized"]["ns"]]
        found.append((source, topic, vector["message"]))
    return found


def webhook_path_vars(shared: Path = SHARED) -> list[dict[str, str]]:
    """The webhook path variables each uplink vector would arrive with (its device)."""
    index = json.loads((shared / "vectors" / "uplinks" / "index.json").read_text())
    found = []
    for vector in index["uplinks"]:
        expected = vector["expected_normalized"]
        # a field-masked webhook body names no device: its path does
        path_vars = {"devEUI": expected.get("dev_eui") or "70B3D57ED0000001"}
        if expected.get("device_id"):
            path_vars["devID"] = expected["device_id"]
        found.append(path_vars)
    return found


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "AAAA",
            "====",
            "not base64!",
            "0004A30B001C0530",
            "00-04-a3-0b-00-1c-05-30",
            "AgICAgICAgI=",
            "2024-02-30T25:61:00Z",
            "2024-05-01T12:00:00.123456789Z",
            "1e400",
            "-0",
            "\u0000",
            "\ud7ff\ue000",
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _slots(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON document, depth first."""
    if isinstance(value, dict):
        for key in list(value):
            out.append((value, key))
            _slots(value[key], out)
    elif isinstance(value, list):
        for index in range(len(value)):
            out.append((value, index))
            _slots(value[index], out)
    return out


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """`document` (a deep copy) with 1 to 4 mutations: a member deleted, a value replaced by
    any JSON value or a value of another type, a member added."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(doc, [])
        if not slots:
            return doc
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        action = draw(st.sampled_from(["delete", "replace", "retype", "add"]))
        if action == "delete":
            del container[key]
        elif action == "replace":
            container[key] = draw(json_values)
        elif action == "retype":
            old = container[key]
            container[key] = (
                str(old) if not isinstance(old, str) else draw(st.sampled_from([0, [], {}, None]))
            )
        elif isinstance(container, dict):
            container[draw(st.text(max_size=12))] = draw(json_values)
        else:
            container.insert(key, draw(json_values))
    return doc


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` truncated, with bytes flipped, inserted or deleted."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        action = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        if action == "truncate":
            del out[at:]
        elif action == "flip":
            out[at] = draw(st.integers(0, 255))
        elif action == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del out[at]
    return bytes(out)
