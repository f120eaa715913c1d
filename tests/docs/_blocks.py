"""Reading the documentation's code blocks: the shell commands, the files and the Python examples
of README.md and docs/*.md, each with the section it stands in. No tests live here."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO

DOCUMENTS: tuple[Path, ...] = (
    REPO / "README.md",
    REPO / "docs" / "configuration.md",
    REPO / "docs" / "metrics.md",
    REPO / "docs" / "performance.md",
)
"""The documents whose commands tests/docs runs; a page added to docs/ joins them here."""
SHELL = frozenset({"sh", "bash", "shell", "console"})

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_HEADING = re.compile(r"^(#{1,2}) (.+?)\s*$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, the file name after the language (`yaml agent.yaml`),
    its text, and where it is."""

    document: str
    section: str
    line: int
    language: str
    name: str | None
    text: str

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line} ({self.section})"


@dataclass(frozen=True)
class Command:
    """One shell command of a block, continuation lines joined and the comment removed."""

    block: Block
    line: int
    text: str
    env: dict[str, str] = field(default_factory=dict)
    argv: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.block.document}:{self.line} ({self.block.section})"

    @property
    def program(self) -> str:
        return Path(self.argv[0]).name if self.argv else ""

    @property
    def words(self) -> tuple[str, ...]:
        """`drehscheibe` subcommand words before the first option: ('devices', 'register')."""
        out: list[str] = []
        for word in self.argv[1:3]:
            if word.startswith("-"):
                break
            out.append(word)
        return tuple(out)


def blocks(document: Path) -> list[Block]:
    """Every fenced code block of `document`, with the `#`/`##` heading it stands under."""
    found: list[Block] = []
    lines = document.read_text(encoding="utf-8").splitlines()
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        heading = _HEADING.match(line)
        if heading:
            section = heading.group(2)
        fence = _FENCE.match(line)
        if not fence:
            index += 1
            continue
        marker = fence.group("fence")
        info = fence.group("info").split()
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(marker):
            body.append(lines[index])
            index += 1
        index += 1
        found.append(
            Block(
                document=document.name,
                section=section,
                line=start + 1,
                language=info[0] if info else "",
                name=info[1] if len(info) > 1 else None,
                text="\n".join(body) + "\n",
            )
        )
    return found


def commands(block: Block) -> list[Command]:
    """The commands of a shell block: `\\` continuations joined, `# comments` removed, leading
    `VAR=value` assignments split off into `env`."""
    out: list[Command] = []
    pending = ""
    first = 0
    for offset, raw in enumerate(block.text.splitlines()):
        if not pending:
            first = block.line + 1 + offset
        stripped = raw.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = (pending + stripped).strip()
        pending = ""
        words = shlex.split(text, comments=True)
        if not words:
            continue
        env: dict[str, str] = {}
        while words and _ASSIGNMENT.match(words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        out.append(Command(block=block, line=first, text=text, env=env, argv=tuple(words)))
    return out


def all_blocks() -> list[Block]:
    return [block for document in DOCUMENTS for block in blocks(document)]


def all_commands() -> list[Command]:
    return [c for block in all_blocks() if block.language in SHELL for c in commands(block)]
