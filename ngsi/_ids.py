"""Identifiers: entity ids (URIs and `urn:ngsi-ld:` URNs), attribute and type names.

Every `validate_*` function returns its argument unchanged when it is valid and raises
`BadRequestData` otherwise, with a detail that quotes the offending value and says why, so that
the broker can let the error travel straight to the ProblemDetails body.

Rules, and where they come from:

- An entity id is an absolute URI (RFC 3986): a scheme (a letter, then letters, digits, `+`, `-`,
  `.`), a colon and something after it. No whitespace or control characters, none of
  `<>"{}|\\^`` ` (not allowed anywhere in a URI), and every `%` starts a two-digit hex escape.
  Non-ASCII letters are accepted (JSON-LD identifiers are IRIs). A `urn:` id also needs a namespace
  identifier of 2 to 32 letters, digits or hyphens (not starting or ending with a hyphen) and a
  non-empty namespace-specific string (RFC 8141).
- Ids minted by `entity_urn` are stricter, because they end up in URL paths, in `q` filters and
  in other brokers: the type part uses only letters, digits and `-._~`; the local id uses only
  the characters RFC 8141 allows in a namespace-specific string, minus `/` (it would split the
  `/entities/{id}` path on brokers that decode `%2F`), minus `?` and `#` (they start URN query and
  fragment components) and minus `'();=` (NGSI-LD's forbidden characters). `:` is fine, so
  `urn:ngsi-ld:Device:eui-70b3d57ed0000001` and `urn:ngsi-ld:Street:berlin:unter-den-linden` both
  work.
- Attribute and type names must not contain whitespace, control characters or any of NGSI-LD's
  forbidden characters `<>"'=;()`. Full IRIs (`https://smartdatamodels.org/name`) are allowed.
- An entity attribute cannot be named like an entity member (`id`, `type`, `scope`, `@context`,
  the system attributes `createdAt`, `modifiedAt`, `deletedAt`) or like any other JSON-LD keyword
  (`@...`); a sub-attribute cannot be named like an attribute member (`value`, `object`,
  `observedAt`, `unitCode`, `datasetId`, ...).
"""

from __future__ import annotations

import re

from ngsi._errors import BadRequestData

__all__ = [
    "ATTRIBUTE_MEMBERS",
    "ENTITY_MEMBERS",
    "FORBIDDEN_NAME_CHARACTERS",
    "SYSTEM_ATTRIBUTES",
    "attribute_name_problem",
    "entity_urn",
    "is_valid_uri",
    "parse_urn",
    "type_name_problem",
    "uri_problem",
    "validate_attribute_name",
    "validate_entity_id",
    "validate_type_name",
    "validate_uri",
]

FORBIDDEN_NAME_CHARACTERS = frozenset("<>\"'=;()")
"""Characters NGSI-LD forbids in names (and Orion-LD in most strings)."""

SYSTEM_ATTRIBUTES = frozenset({"createdAt", "modifiedAt", "deletedAt"})
"""Members the broker maintains on entities and attributes."""

ENTITY_MEMBERS = frozenset({"id", "type", "scope", "@context"}) | SYSTEM_ATTRIBUTES
"""Members of an entity that are not attributes."""

ATTRIBUTE_MEMBERS = (
    frozenset(
        {
            "type",
            "value",
            "object",
            "objectType",
            "languageMap",
            "json",
            "vocab",
            "valueList",
            "observedAt",
            "unitCode",
            "datasetId",
            "instanceId",
            "@context",
        }
    )
    | SYSTEM_ATTRIBUTES
)
"""Members of an attribute that are not sub-attributes."""

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:(?:[^\s<>\"{}|\\^`%\x00-\x1f\x7f]|%[0-9A-Fa-f]{2})+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_URN_NID = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]{0,30}[A-Za-z0-9]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ILLEGAL_IN_URI = frozenset('<>"{}|\\^`')
_URN_TYPE = re.compile(r"[A-Za-z0-9\-._~]+")
_URN_LOCAL = re.compile(r"(?:[A-Za-z0-9\-._~!$&*+,:@]|%[0-9A-Fa-f]{2})+")
_URN_PREFIX = "urn:ngsi-ld:"


def _bad_character(text: str) -> tuple[int, str] | None:
    """The first whitespace or control character in `text`, with its position."""
    for position, char in enumerate(text):
        if char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F:
            return position, char
    return None


def uri_problem(text: object) -> str | None:
    """Why `text` is not an absolute URI, or None when it is one."""
    if not isinstance(text, str):
        return f"it is a {type(text).__name__}, not a string"
    if _URI.fullmatch(text) is not None:
        if text[:4].lower() == "urn:":
            return _urn_problem(text)
        return None
    if not text:
        return "it is empty"
    bad = _bad_character(text)
    if bad is not None:
        return f"it contains whitespace or a control character ({bad[1]!r} at position {bad[0]})"
    scheme, colon, rest = text.partition(":")
    if not colon:
        return "it has no scheme (an absolute URI starts with one, as in 'urn:ngsi-ld:...')"
    if _SCHEME.fullmatch(scheme) is None:
        return (
            f"{scheme!r} before the first ':' is not a URI scheme (a letter, then letters, "
            "digits, '+', '-' or '.')"
        )
    if not rest:
        return "there is nothing after the scheme"
    for char in rest:
        if char in _ILLEGAL_IN_URI:
            return f"it contains {char!r}, which is not allowed in a URI"
    if _BAD_ESCAPE.search(rest):
        return "it contains a '%' that does not start a two-digit hex escape"
    return "it is not a valid URI"  # pragma: no cover - the checks above cover the pattern


def _urn_problem(text: str) -> str | None:
    nid, colon, nss = text[4:].partition(":")
    if not colon or _URN_NID.fullmatch(nid) is None:
        return (
            f"a URN needs a namespace identifier of 2 to 32 letters, digits or hyphens "
            f"after 'urn:' and a ':' after it, got {nid!r}"
        )
    if not nss:
        return f"the URN has nothing after 'urn:{nid}:'"
    return None


def is_valid_uri(text: object) -> bool:
    """Whether `text` is an absolute URI (`urn:ngsi-ld:...`, `https://...`, any `scheme:...`)."""
    if not isinstance(text, str) or _URI.fullmatch(text) is None:
        return False
    return text[:4].lower() != "urn:" or _urn_problem(text) is None


def validate_uri(text: object, *, what: str = "URI") -> str:
    """Return `text` if it is an absolute URI, else raise BadRequestData naming `what` and why."""
    problem = uri_problem(text)
    if problem is not None or not isinstance(text, str):
        raise BadRequestData(f"{what} {text!r} is not an absolute URI: {problem}")
    return text


def validate_entity_id(entity_id: object) -> str:
    """Return `entity_id` if it is a valid NGSI-LD entity id (an absolute URI), else raise."""
    return validate_uri(entity_id, what="entity id")


def _name_problem(name: object, *, kind: str) -> str | None:
    if not isinstance(name, str):
        return f"{kind} must be a string, got {type(name).__name__}"
    if not name:
        return f"{kind} is empty"
    for position, char in enumerate(name):
        if char in FORBIDDEN_NAME_CHARACTERS:
            return (
                f"{kind} {name!r} contains {char!r} at position {position}; NGSI-LD forbids "
                "the characters < > \" ' = ; ( ) in names"
            )
    bad = _bad_character(name)
    if bad is not None:
        return (
            f"{kind} {name!r} contains whitespace or a control character "
            f"({bad[1]!r} at position {bad[0]})"
        )
    return None


def attribute_name_problem(name: object, *, sub_attribute: bool = False) -> str | None:
    """Why `name` cannot name an attribute (or a sub-attribute), or None if it can."""
    kind = "sub-attribute name" if sub_attribute else "attribute name"
    problem = _name_problem(name, kind=kind)
    if problem is not None or not isinstance(name, str):
        return problem
    if sub_attribute:
        if name in ATTRIBUTE_MEMBERS:
            return f"{name!r} is a member of every attribute and cannot name a sub-attribute"
    elif name in ENTITY_MEMBERS:
        return f"{name!r} is a member of every entity and cannot name an attribute"
    if name.startswith("@"):
        return f"{kind} {name!r} starts with '@', which JSON-LD reserves for its keywords"
    return None


def type_name_problem(name: object) -> str | None:
    """Why `name` cannot name an entity type, or None if it can."""
    return _name_problem(name, kind="type name")


def validate_attribute_name(name: object, *, sub_attribute: bool = False) -> str:
    """Return `name` if it can name an entity attribute (or a sub-attribute), else raise.

    See the module docstring for the rules.
    """
    problem = attribute_name_problem(name, sub_attribute=sub_attribute)
    if problem is not None or not isinstance(name, str):
        raise BadRequestData(problem or f"invalid attribute name {name!r}")
    return name


def validate_type_name(name: object) -> str:
    """Return `name` if it can name an entity type (short name or IRI), else raise."""
    problem = type_name_problem(name)
    if problem is not None or not isinstance(name, str):
        raise BadRequestData(problem or f"invalid type name {name!r}")
    return name


def entity_urn(entity_type: str, local_id: str) -> str:
    """The entity id `urn:ngsi-ld:<entity_type>:<local_id>`.

    `entity_type` uses letters, digits and `-._~` only (it is one URN segment, so no `:`);
    `local_id` may contain `:` and the other characters a URN allows, but no whitespace, `/`,
    `?`, `#` or `'();=` (see the module docstring for why). Raises BadRequestData naming the
    part and the character at fault.
    """
    if not isinstance(entity_type, str) or _URN_TYPE.fullmatch(entity_type) is None:
        problem = _urn_part_problem(entity_type, _URN_TYPE_CHAR, _URN_TYPE_ALLOWED)
        raise BadRequestData(
            f"entity type {entity_type!r} cannot be used in a urn:ngsi-ld id: {problem}"
        )
    if not isinstance(local_id, str) or _URN_LOCAL.fullmatch(local_id) is None:
        problem = _urn_part_problem(local_id, _URN_LOCAL_CHAR, _URN_LOCAL_ALLOWED)
        raise BadRequestData(f"local id {local_id!r} cannot be used in a urn:ngsi-ld id: {problem}")
    return f"{_URN_PREFIX}{entity_type}:{local_id}"


_URN_TYPE_CHAR = re.compile(r"[A-Za-z0-9\-._~]")
_URN_TYPE_ALLOWED = "letters, digits and - . _ ~"
_URN_LOCAL_CHAR = re.compile(r"[A-Za-z0-9\-._~!$&*+,:@%]")
_URN_LOCAL_ALLOWED = "letters, digits, %XX escapes and - . _ ~ ! $ & * + , : @"
_CHARACTER_REASONS = {
    "/": "it would split the /entities/{id} URL path",
    "?": "it starts a URN query component",
    "#": "it starts a URN fragment",
    ":": "it separates the type from the local id",
}


def _urn_part_problem(part: object, allowed_char: re.Pattern[str], allowed: str) -> str:
    if not isinstance(part, str):
        return f"it is a {type(part).__name__}, not a string"
    if not part:
        return "it is empty"
    for position, char in enumerate(part):
        if char == "%" and _BAD_ESCAPE.match(part, position):
            return f"the '%' at position {position} does not start a two-digit hex escape"
        if allowed_char.fullmatch(char) is None:
            reason = _CHARACTER_REASONS.get(char)
            if reason is None and char in FORBIDDEN_NAME_CHARACTERS:
                reason = "NGSI-LD forbids it"
            elif reason is None and (char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F):
                reason = "whitespace and control characters are not allowed in URNs"
            elif reason is None and ord(char) > 0x7F:
                reason = "URNs are ASCII; percent-encode it"
            elif reason is None:
                reason = "URNs do not allow it"
            return f"{char!r} at position {position} is not allowed ({reason}); use {allowed}"
    return f"use {allowed}"  # pragma: no cover - a failed fullmatch always has a culprit


def parse_urn(urn: str) -> tuple[str, str]:
    """Split `urn:ngsi-ld:<type>:<local id>` into `(type, local id)`; raise BadRequestData if
    `urn` is not of that shape. The local id may itself contain `:`."""
    if not isinstance(urn, str) or urn[: len(_URN_PREFIX)].lower() != _URN_PREFIX:
        raise BadRequestData(f"{urn!r} is not a urn:ngsi-ld id (it must start with 'urn:ngsi-ld:')")
    entity_type, colon, local_id = urn[len(_URN_PREFIX) :].partition(":")
    if not colon or not entity_type or not local_id:
        raise BadRequestData(
            f"{urn!r} is not of the form urn:ngsi-ld:<Type>:<local id> (type or local id missing)"
        )
    problem = uri_problem(urn)
    if problem is not None:
        raise BadRequestData(f"{urn!r} is not a valid URN: {problem}")
    return entity_type, local_id
