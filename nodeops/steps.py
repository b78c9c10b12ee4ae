"""Step: prepare (read-only facts) -> plan (pure: the changes) -> apply -> verify; cleanup.

A step reads what it needs in `prepare` (read-only commands only), decides in `plan` what
must change (each change with the exact commands it sends; an empty plan means the node is
already as wanted: status "unchanged"), makes the changes in `apply`, and checks the real
end state in `verify`, never trusting an exit code alone. `cleanup` always runs, after a
failure too (to re-hold packages, restore a repository file, ...). `run_step` journals the
step's status: planned (dry run), skipped, unchanged, changed or failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from nodeops.cmd import Cmd
from nodeops.errors import NodeopsError
from nodeops.journal import Journal


class Status(StrEnum):
    """What a step did."""

    PLANNED = "planned"
    SKIPPED = "skipped"
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    FAILED = "failed"


@dataclass(frozen=True)
class Change:
    """One change a step will make, with the exact commands that make it."""

    what: str
    commands: tuple[Cmd, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (commands as displayed: secrets masked)."""
        return {"what": self.what, "commands": [c.display() for c in self.commands]}


class StepFailed(NodeopsError):
    """A step that could not reach its end state; `output` keeps the commands' output."""

    def __init__(self, message: str, *, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class StepContext(Protocol):
    """What run_step needs from a node's context: its name, the journal, step switching."""

    @property
    def node_name(self) -> str:
        """The node the steps act on."""
        ...

    @property
    def journal(self) -> Journal:
        """The run's journal."""
        ...

    def begin(self, step: str) -> None:
        """Journal the following commands under this step's name."""
        ...

    def run_on_node(self, command: Cmd, *, timeout: float | None = None) -> tuple[int, str]:
        """Run a command on the step's node: (exit code, stdout and stderr)."""
        ...


C = TypeVar("C", bound=StepContext)


class Step(Generic[C]):
    """One idempotent piece of work on a node. Subclasses set `name` and `title`."""

    name: str = "step"
    title: str = "Do nothing"

    def skip_reason(self, ctx: C) -> str | None:
        """Why this step does not apply at all (journaled as skipped), or None."""
        return None

    def prepare(self, ctx: C) -> None:
        """Read what the plan needs; read-only commands only."""

    def plan(self, ctx: C) -> list[Change]:
        """The changes to make (pure: no command); empty when there is nothing to do."""
        return []

    def apply(self, ctx: C, changes: Sequence[Change]) -> None:
        """Make the changes. The default runs each change's commands in order."""
        for change in changes:
            for command in change.commands:
                run_checked(ctx, command)

    def verify(self, ctx: C) -> None:
        """Check the real end state; raise StepFailed when it is not what the step promised."""

    def cleanup(self, ctx: C, *, failed: bool) -> None:
        """Always runs after the step, failed or not (e.g. re-hold packages after a failure)."""


def run_checked(ctx: StepContext, command: Cmd, *, timeout: float | None = None) -> str:
    """Run a command on the context's node; StepFailed with its output tail if it fails."""
    code, output = ctx.run_on_node(command, timeout=timeout)
    if code != 0:
        raise StepFailed(f"`{command.display()}` exited {code}", output=output)
    return output


@dataclass
class StepReport:
    """How one step went on one node."""

    node: str
    step: str
    title: str
    status: Status
    detail: str = ""
    changes: list[Change] = field(default_factory=list)
    output: str = ""


def run_step(step: Step[C], ctx: C, *, dry_run: bool = False) -> StepReport:
    """Run one step through prepare, plan, apply, verify and cleanup, journaling its status.

    Raises StepFailed (after cleanup) when the step fails; any NodeopsError on the way
    (a lost connection, a refused command) becomes a StepFailed naming the step.
    """
    journal, node = ctx.journal, ctx.node_name
    ctx.begin(step.name)
    reason = step.skip_reason(ctx)
    if reason is not None:
        journal.record(
            "step-finished",
            node=node,
            step=step.name,
            title=step.title,
            status="skipped",
            reason=reason,
        )
        return StepReport(node, step.name, step.title, Status.SKIPPED, reason)
    journal.record("step-started", node=node, step=step.name, title=step.title, dry_run=dry_run)
    changes: list[Change] = []
    failed = True
    try:
        step.prepare(ctx)
        changes = step.plan(ctx)
        if dry_run:
            failed = False
            journal.record(
                "step-finished",
                node=node,
                step=step.name,
                title=step.title,
                status=Status.PLANNED.value,
                changes=[c.to_dict() for c in changes],
            )
            return StepReport(node, step.name, step.title, Status.PLANNED, changes=changes)
        if changes:
            step.apply(ctx, changes)
        step.verify(ctx)
        failed = False
    except StepFailed as error:
        _record_failure(journal, node, step, str(error), error.output)
        raise
    except NodeopsError as error:
        _record_failure(journal, node, step, str(error), "")
        raise StepFailed(str(error)) from error
    finally:
        if not dry_run:
            try:
                step.cleanup(ctx, failed=failed)
            except NodeopsError as error:
                journal.record("step-cleanup-failed", node=node, step=step.name, error=str(error))
                if not failed:
                    raise StepFailed(f"cleanup failed: {error}") from error
    status = Status.CHANGED if changes else Status.UNCHANGED
    journal.record(
        "step-finished",
        node=node,
        step=step.name,
        title=step.title,
        status=status.value,
        changes=[c.to_dict() for c in changes],
    )
    return StepReport(node, step.name, step.title, status, changes=changes)


def _record_failure(journal: Journal, node: str, step: Step[C], error: str, output: str) -> None:
    journal.record(
        "step-finished",
        node=node,
        step=step.name,
        title=step.title,
        status=Status.FAILED.value,
        error=error,
        output=output[-4000:],
    )
