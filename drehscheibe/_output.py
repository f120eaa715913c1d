"""Presenting results: JSON for scripts, rich tables for people, errors as one line.

Exit codes mean something to scripts (see `ExitCode`): data goes to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.table import Table

from ngsi import NgsiApiError, NgsiError, NgsiTransportError

__all__ = ["ExitCode", "OutputFormat", "fail", "ngsi_errors", "print_json", "print_table"]

stderr = Console(stderr=True, highlight=False)


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    UNREACHABLE = 3
    CLIENT_ERROR = 4
    SERVER_ERROR = 5
    INVALID = 6
    INTERRUPTED = 130


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    Console().print(table)


def fail(message: str, code: ExitCode = ExitCode.ERROR) -> NoReturn:
    stderr.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=int(code))


@contextmanager
def ngsi_errors() -> Iterator[None]:
    """Turn NGSI-LD errors into one line on stderr and an exit code a script can test."""
    try:
        yield
    except NgsiTransportError as exc:
        fail(f"broker unreachable: {exc}", ExitCode.UNREACHABLE)
    except NgsiApiError as exc:
        code = ExitCode.SERVER_ERROR if exc.status_code >= 500 else ExitCode.CLIENT_ERROR
        fail(str(exc), code)
    except NgsiError as exc:
        fail(str(exc))
