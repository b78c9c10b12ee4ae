"""Journal: an append-only JSONL record of a run — every step and every command that ran.

Each line is flushed and fsynced before the work goes on, so whatever stops the run (a
crash, SIGKILL, a lost laptop lid) leaves a journal that says exactly how far it got. A
later run reads it to resume: above all, to know which nodes nodeops cordoned itself (a
node cordoned before the run began must never be uncordoned by it).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nodeops.cmd import Cmd
from nodeops.errors import NodeopsError
from nodeops.hostkeys import make_private_dirs
from nodeops.node import Node
from nodeops.result import Result
from nodeops.transport import Transport

# How much of a command's output a journal line keeps: enough to diagnose, bounded in size.
OUTPUT_TAIL_CHARS = 4000


class JournalError(NodeopsError):
    """A journal that cannot be written or read."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id(task: str) -> str:
    """A sortable, unique run id: UTC time, the task, a short random part."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{task}-{secrets.token_hex(3)}"


def _tail(text: str) -> str:
    return text if len(text) <= OUTPUT_TAIL_CHARS else "…" + text[-OUTPUT_TAIL_CHARS:]


@dataclass
class Journal:
    """One run's journal file. Thread-safe: nodes of a batch write to it at once."""

    path: Path
    run_id: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def start(cls, directory: Path, task: str, details: Mapping[str, Any]) -> Journal:
        """Create a new journal (0600 in a 0700 directory) and record the run's start."""
        directory = directory.expanduser()
        try:
            make_private_dirs(directory)
            run_id = new_run_id(task)
            path = directory / f"{run_id}.jsonl"
            # O_EXCL: a journal is never overwritten, even by a run started the same second.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as error:
            raise JournalError(f"cannot create a journal in {directory}: {error}") from None
        journal = cls(path=path, run_id=run_id)
        journal.record("run-started", task=task, **details)
        return journal

    def record(self, event: str, **fields: Any) -> None:
        """Append one event and make it durable before returning."""
        line = json.dumps(
            {"time": _now(), "run": self.run_id, "event": event, **fields},
            sort_keys=True,
            default=str,
        )
        with self._lock:
            try:
                # 0600 even when a resumed run has to create the file again.
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as out:
                    out.write(line + "\n")
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as error:
                raise JournalError(f"cannot write the journal {self.path}: {error}") from None

    def command(self, step: str | None, result: Result) -> None:
        """Record a command that ran (its display form: secrets are already masked)."""
        self.record(
            "command",
            node=result.node,
            step=step,
            command=result.command,
            exit_code=result.exit_code,
            seconds=round(result.seconds, 3),
            stdout=_tail(result.stdout),
            stderr=_tail(result.stderr),
        )


class JournaledTransport:
    """A Transport that journals every command it runs, including ones that fail to run."""

    def __init__(self, inner: Transport, journal: Journal, step: str | None = None) -> None:
        self.inner = inner
        self.node: Node = inner.node
        self.journal = journal
        self.step = step

    def for_step(self, step: str) -> JournaledTransport:
        """The same connection, journaling under another step's name."""
        return JournaledTransport(self.inner, self.journal, step)

    def run(
        self, command: Cmd, *, timeout: float | None = None, stdin: str | None = None
    ) -> Result:
        started = time.monotonic()
        try:
            result = self.inner.run(command, timeout=timeout, stdin=stdin)
        except NodeopsError as error:
            self.journal.record(
                "command-error",
                node=self.node.name,
                step=self.step,
                # Shown as the "command" events show it (no sudo wrapper when root).
                command=command.display(as_root=bool(getattr(self.inner, "as_root", False))),
                seconds=round(time.monotonic() - started, 3),
                error=str(error),
            )
            raise
        self.journal.command(self.step, result)
        return result

    def close(self) -> None:
        self.inner.close()


def read(path: Path) -> list[dict[str, Any]]:
    """Every event of a journal. A torn last line (the run was killed mid-write) is dropped."""
    events: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise JournalError(f"cannot read the journal {path}: {error}") from None
    for number, line in enumerate(lines, 1):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise JournalError(f"{path}:{number}: not a journal line") from None
        if isinstance(event, dict):
            events.append(event)
    return events


def runs(directory: Path, task: str | None = None) -> Iterator[Path]:
    """Journal files in a directory, newest first, optionally of one task only."""
    directory = directory.expanduser()
    if not directory.is_dir():
        return
    paths = sorted(directory.glob("*.jsonl"), reverse=True)
    for path in paths:
        # `<stamp>-<task>-<random>`: compare the whole task, so `upgrade` is not `upgrade-cluster`.
        if task is None or path.stem.split("-", 1)[-1].rsplit("-", 1)[0] == task:
            yield path


def last_unfinished(directory: Path, task: str) -> Path | None:
    """The newest journal of a task whose run did not finish successfully, if any."""
    for path in runs(directory, task):
        events = read(path)
        finished = [e for e in events if e.get("event") == "run-finished"]
        if finished and finished[-1].get("status") == "succeeded":
            return None
        return path
    return None


def cordoned_by_run(events: list[dict[str, Any]]) -> set[str]:
    """Nodes this run cordoned and has not uncordoned since: the only ones it may uncordon."""
    cordoned: set[str] = set()
    for event in events:
        if event.get("event") != "node-state":
            continue
        node = str(event.get("node"))
        if event.get("cordoned_by_nodeops") is True:
            cordoned.add(node)
        elif event.get("cordoned_by_nodeops") is False:
            cordoned.discard(node)
    return cordoned


def finished_steps(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(node, step) pairs the run finished, so a resume can say what it skips and why."""
    return {
        (str(e.get("node")), str(e.get("step")))
        for e in events
        if e.get("event") == "step-finished" and e.get("status") in {"done", "unchanged"}
    }
