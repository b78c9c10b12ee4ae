"""Report: tables on a terminal, plain aligned lines otherwise, JSON for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def is_terminal(stream: TextIO) -> bool:
    """Whether a person is likely watching this stream."""
    return hasattr(stream, "isatty") and stream.isatty()


def print_table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    stream: TextIO | None = None,
) -> None:
    """A table: rich on a terminal, aligned plain columns elsewhere (logs, pipes, CI)."""
    out = stream or sys.stdout
    if is_terminal(out):
        from rich.console import Console  # rich costs import time only where it is used
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    for line in lines:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
        out.write("\n")


def print_json(data: Any, *, stream: TextIO | None = None) -> None:
    """Indented, key-sorted JSON: stable for diffs and scripts."""
    out = stream or sys.stdout
    json.dump(data, out, indent=2, sort_keys=True, default=str)
    out.write("\n")


def print_error(message: str, *, stream: TextIO | None = None) -> None:
    """One error line (or paragraph) on stderr."""
    out = stream or sys.stderr
    out.write(f"error: {message}\n")
