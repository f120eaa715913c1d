"""What the fuzz runs found, pinned: deeply nested parentheses in `type` and `scopeQ` once
recursed until Python gave up (a RecursionError, answered 500), and so did an `idPattern` (of a
query or a subscription) in Python's regular-expression parser; they are now a 400 naming the
limit, as for `q`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ngsi import BadRequestData, Context
from ngsi.broker._params import parse_type_expression
from ngsi.broker._scope import compile_scope_q
from tests.broker.conftest import start_broker

DEEP = 2000


def test_deep_type_expressions_are_refused() -> None:
    with pytest.raises(BadRequestData, match="nested deeper than 32"):
        parse_type_expression("(" * DEEP + "A" + ")" * DEEP, Context.core().expand_term)
    assert parse_type_expression("(" * 32 + "A" + ")" * 32, lambda t: t) == [["A"]]


def test_deep_scope_queries_are_refused() -> None:
    with pytest.raises(BadRequestData, match="nested deeper than 32"):
        compile_scope_q("(" * DEEP + "/a" + ")" * DEEP)
    matches = compile_scope_q("(" * 32 + "/a" + ")" * 32)
    assert matches({"scope": "/a"})


def test_the_broker_answers_400(tmp_path: Path) -> None:
    with start_broker(tmp_path) as broker:
        for params in (
            {"type": "(" * DEEP + "A" + ")" * DEEP},
            {"type": "A", "scopeQ": "(" * DEEP + "/a" + ")" * DEEP},
        ):
            answer = httpx.get(f"{broker.api}/entities", params=params, timeout=10)
            assert answer.status_code == 400, answer.text
            assert "nested deeper" in answer.json()["detail"]
        deep_regex = "(" * DEEP + "a" + ")" * DEEP
        answer = httpx.get(
            f"{broker.api}/entities", params={"type": "A", "idPattern": deep_regex}, timeout=10
        )
        assert answer.status_code == 400, answer.text
        assert "nested too deeply" in answer.json()["detail"]
        answer = httpx.post(
            f"{broker.api}/subscriptions",
            json={
                "type": "Subscription",
                "entities": [{"type": "A", "idPattern": deep_regex}],
                "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}},
            },
            timeout=10,
        )
        assert answer.status_code == 400, answer.text
        assert "nested too deeply" in answer.json()["detail"]
