"""Which subscriptions a consumers file owns: the ownership rule, in one place.

A subscription belongs to the consumers file of project `P` exactly when its `subscriptionName`
is `P/<consumer>/<subscription>` (a template that makes several subscriptions from one entry
names them `P/<consumer>/<subscription>.<part>`). Nothing else marks it: not the endpoint, not
the entity types, not the id, not the description. Two subscriptions with the same endpoint are
two subscriptions; a subscription whose name does not start with `P/` is never read as one of
the file's, whatever else it has in common with them.

Project, consumer and subscription names are made of letters, digits, `_` and `-` (and start with
a letter or digit); `/` separates them and `.` separates a template part, so a name always splits
back into the same pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["NAME_PATTERN", "OwnedName", "is_valid_name", "owned_name", "parse_owned_name"]

NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
_NAME: Final = re.compile(NAME_PATTERN)


def is_valid_name(text: str) -> bool:
    """True when `text` may be a project, consumer, subscription or part name."""
    return bool(_NAME.match(text))


@dataclass(frozen=True, order=True, slots=True)
class OwnedName:
    """The pieces of an owned `subscriptionName`."""

    project: str
    consumer: str
    subscription: str
    part: str | None = None

    def __str__(self) -> str:
        base = f"{self.project}/{self.consumer}/{self.subscription}"
        return f"{base}.{self.part}" if self.part else base


def owned_name(project: str, consumer: str, subscription: str, part: str | None = None) -> str:
    """The `subscriptionName` that marks a subscription as owned by `project`'s file."""
    for what, value in (
        ("project", project),
        ("consumer", consumer),
        ("subscription", subscription),
    ):
        if not is_valid_name(value):
            raise ValueError(
                f"{what} name {value!r} must be letters, digits, '_' or '-' (at most 63)"
            )
    if part is not None and not is_valid_name(part):
        raise ValueError(f"template part {part!r} must be letters, digits, '_' or '-'")
    return str(OwnedName(project, consumer, subscription, part))


def parse_owned_name(name: str | None, *, project: str | None = None) -> OwnedName | None:
    """The pieces of `name` if it is an owned name (of `project`, when given), else None."""
    if not name:
        return None
    pieces = name.split("/")
    if len(pieces) != 3:
        return None
    owner, consumer, rest = pieces
    subscription, dot, part = rest.partition(".")
    if not (is_valid_name(owner) and is_valid_name(consumer) and is_valid_name(subscription)):
        return None
    if dot and not is_valid_name(part):
        return None
    if project is not None and owner != project:
        return None
    return OwnedName(owner, consumer, subscription, part if dot else None)
