"""Progress of a rollout: one live line per node on a terminal (rich), plain lines elsewhere."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

from nodeops.report import is_terminal


@dataclass(frozen=True)
class StepEvent:
    """A node's step began (status "started") or ended (its journal status)."""

    node: str
    index: int  # 1-based position of the step in the node's chain
    total: int
    title: str
    status: str
    seconds: float = 0.0


class Progress:
    """Shows step events as they come, from any thread."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = is_terminal(self.stream) if live is None else live
        self._lock = threading.Lock()
        self._rich: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Progress:
        if self.live:
            from rich.console import Console  # only where someone watches
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.fields[node]:<14}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._rich.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def say(self, line: str) -> None:
        """A line beside the progress (above the live lines on a terminal)."""
        with self._lock:
            if self._rich is not None:
                self._rich.console.print(line, markup=False, highlight=False)
            else:
                self.stream.write(line + "\n")
                self.stream.flush()

    def step(self, event: StepEvent) -> None:
        """One step event."""
        with self._lock:
            if self._rich is None:
                if event.status != "started":
                    self.stream.write(
                        f"{event.node}: [{event.index}/{event.total}] {event.title}:"
                        f" {event.status} ({event.seconds:.1f} s)\n"
                    )
                    self.stream.flush()
                return
            task = self._tasks.get(event.node)
            if task is None:
                task = self._rich.add_task("", total=event.total, node=event.node)
                self._tasks[event.node] = task
            if event.status == "started":
                self._rich.update(task, description=f"{event.title} ...")
            else:
                self._rich.update(
                    task, completed=event.index, description=f"{event.title}: {event.status}"
                )
