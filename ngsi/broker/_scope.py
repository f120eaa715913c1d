"""Scope queries (`scopeQ`, NGSI-LD clause 4.19): hierarchical scopes such as `/Madrid/Gardens`.

    scopeQ  = Or
    Or      = And *("," And)
    And     = Term *(";" Term)
    Term    = "(" Or ")" / "/" segment *("/" segment) ["/#"] / "/#"

A segment `+` matches any one level; a trailing `#` matches the level before it and anything
below (so `/#` is any non-empty scope). A term holds when one of the entity's scopes matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ngsi._errors import BadRequestData
from ngsi._query import MAX_NESTING

__all__ = ["compile_scope_q"]

_TOKEN = re.compile(r"\s*([(),;]|[^(),;\s]+)")


def _pattern(term: str, *, text: str) -> re.Pattern[str]:
    if not term.startswith("/"):
        raise BadRequestData(f"scopeQ {text!r}: a scope starts with '/', got {term!r}")
    if term == "/#":
        return re.compile(r"/.+")
    segments = term[1:].split("/")
    parts: list[str] = []
    for index, segment in enumerate(segments):
        if segment == "#":
            if index != len(segments) - 1:
                raise BadRequestData(f"scopeQ {text!r}: '#' must come last")
            return re.compile("".join(parts) + r"(?:/.*)?")
        if segment == "+":
            parts.append(r"/[^/]+")
        elif not segment or "#" in segment or "+" in segment:
            raise BadRequestData(f"scopeQ {text!r}: bad scope level {segment!r}")
        else:
            parts.append("/" + re.escape(segment))
    return re.compile("".join(parts))


def compile_scope_q(text: str) -> Callable[[Mapping[str, Any]], bool]:
    """A test for stored documents: does the entity's `scope` satisfy `text`?"""
    tokens = [m.group(1) for m in _TOKEN.finditer(text)]
    position = 0
    depth = 0
    Test = Callable[[list[str]], bool]

    def disjunction() -> Test:
        nonlocal position
        terms = [conjunction()]
        while position < len(tokens) and tokens[position] == ",":
            position += 1
            terms.append(conjunction())
        return lambda scopes: any(t(scopes) for t in terms)

    def conjunction() -> Test:
        nonlocal position
        terms = [factor()]
        while position < len(tokens) and tokens[position] == ";":
            position += 1
            terms.append(factor())
        return lambda scopes: all(t(scopes) for t in terms)

    def factor() -> Test:
        nonlocal position, depth
        if position >= len(tokens):
            raise BadRequestData(f"scopeQ {text!r}: a scope is missing")
        token = tokens[position]
        position += 1
        if token == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise BadRequestData(f"scopeQ: parentheses nested deeper than {MAX_NESTING} levels")
            inner = disjunction()
            if position >= len(tokens) or tokens[position] != ")":
                raise BadRequestData(f"scopeQ {text!r}: a ')' is missing")
            position += 1
            depth -= 1
            return inner
        pattern = _pattern(token, text=text)
        return lambda scopes: any(pattern.fullmatch(s) for s in scopes)

    test = disjunction()
    if position != len(tokens):
        raise BadRequestData(f"scopeQ {text!r}: unexpected {tokens[position]!r}")

    def matches(doc: Mapping[str, Any]) -> bool:
        scope = doc.get("scope")
        if scope is None:
            return False
        scopes = [scope] if isinstance(scope, str) else [s for s in scope if isinstance(s, str)]
        return bool(scopes) and test(scopes)

    return matches
