"""klog-style log lines on stderr, as the kubelet writes them (structured, `key="value"`)."""

from __future__ import annotations

import datetime
import json
import os
import sys
import threading
from typing import TextIO

_lock = threading.Lock()


def header(severity: str, where: str, now: datetime.datetime | None = None) -> str:
    """klog's line prefix: `I1127 04:30:00.123456    1234 kubelet.go:123] `."""
    t = now or datetime.datetime.now()
    return f"{severity}{t:%m%d %H:%M:%S.%f} {os.getpid():7d} {where}] "


def line(severity: str, where: str, msg: str, fields: dict[str, object]) -> str:
    """One structured log line (without the newline)."""
    parts = [header(severity, where) + json.dumps(msg)]
    for key, value in fields.items():
        if isinstance(value, str):
            parts.append(f"{key}={json.dumps(value)}")
        elif isinstance(value, BaseException):
            parts.append(f"{key}={json.dumps(str(value))}")
        else:
            parts.append(f"{key}={json.dumps(value, default=str)}")
    return " ".join(parts)


def _emit(text: str, stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    with _lock:
        out.write(text + "\n")
        out.flush()


def info(where: str, msg: str, **fields: object) -> None:
    """An info line."""
    _emit(line("I", where, msg, fields))


def warning(where: str, msg: str, **fields: object) -> None:
    """A warning line."""
    _emit(line("W", where, msg, fields))


def error(where: str, msg: str, err: object = None, **fields: object) -> None:
    """An error line; `err` goes first, as klog.ErrorS puts it."""
    if err is not None:
        fields = {"err": str(err), **fields}
    _emit(line("E", where, msg, fields))


def plain(text: str) -> None:
    """A line without a klog header (flag deprecation warnings are printed that way)."""
    _emit(text)
