"""What goes wrong with a profile: `ProfileProblem` (where and what) and `ProfileError`."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

__all__ = ["ProfileError", "ProfileNotFound", "ProfileProblem", "TransformError"]


class ProfileProblem(BaseModel):
    """One thing wrong in a profile: `path` inside the document (`entities/0/attributes/co2/unit`,
    empty for the whole document), its `line` in the file when known, and what is wrong."""

    model_config = ConfigDict(frozen=True)

    path: str
    message: str
    line: int | None = None

    def render(self, source: str | None = None) -> str:
        """`file.yaml:12: entities/0/attributes/co2/unit: message`."""
        where = source or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.path or '(document)'}: {self.message}"


class ProfileError(ValueError):
    """A profile cannot be used. `problems` lists every problem found; `source` is the file (or
    the profile's name when it has no file). `str()` has one line per problem."""

    def __init__(self, problems: Sequence[ProfileProblem], *, source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        lines = [problem.render(source) for problem in self.problems]
        super().__init__("\n".join(lines) if lines else f"{source}: unusable profile")


class ProfileNotFound(KeyError):
    """No profile has that name; the message lists the known ones."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = list(known)
        super().__init__(
            f"no device profile named {name!r}; known: {', '.join(self.known) or 'none'}"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class TransformError(ValueError):
    """A transform cannot apply to a value (text where a number is needed, a value an enum map
    does not list); the message says what was expected."""
