"""The Step lifecycle: prepare -> plan -> apply -> verify, cleanup always, statuses journaled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nodeops.cmd import Cmd, cmd
from nodeops.errors import TransportError
from nodeops.journal import Journal, read
from nodeops.steps import Change, Status, Step, StepFailed, run_checked, run_step


@dataclass
class Ctx:
    journal: Journal
    node_name: str = "worker1"
    steps: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    exit_code: int = 0
    state: str = "old"

    def begin(self, step: str) -> None:
        self.steps.append(step)

    def run_on_node(self, command: Cmd, *, timeout: float | None = None) -> tuple[int, str]:
        self.sent.append(str(command))
        if self.exit_code:
            return self.exit_code, "E: it broke\n"
        self.state = "new"
        return 0, ""


class SetState(Step[Ctx]):
    name = "set-state"
    title = "Set state"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def prepare(self, ctx: Ctx) -> None:
        self.calls.append("prepare")

    def plan(self, ctx: Ctx) -> list[Change]:
        self.calls.append("plan")
        return [] if ctx.state == "new" else [Change("write", (cmd("touch", "/x"),))]

    def apply(self, ctx: Ctx, changes: Sequence[Change]) -> None:
        self.calls.append("apply")
        super().apply(ctx, changes)

    def verify(self, ctx: Ctx) -> None:
        self.calls.append("verify")
        if ctx.state != "new":
            raise StepFailed("state is not new")

    def cleanup(self, ctx: Ctx, *, failed: bool) -> None:
        self.calls.append(f"cleanup failed={failed}")


def statuses(path: Path) -> list[str]:
    return [e["status"] for e in read(path) if e["event"] == "step-finished"]


@pytest.fixture()
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(Journal.start(tmp_path, "test", {}))


def test_changed_then_unchanged(ctx: Ctx) -> None:
    step = SetState()
    assert run_step(step, ctx).status is Status.CHANGED
    assert step.calls == ["prepare", "plan", "apply", "verify", "cleanup failed=False"]
    assert ctx.sent == ["touch /x"]
    again = SetState()
    assert run_step(again, ctx).status is Status.UNCHANGED
    assert again.calls == ["prepare", "plan", "verify", "cleanup failed=False"]
    assert statuses(ctx.journal.path) == ["changed", "unchanged"]
    assert ctx.steps == ["set-state", "set-state"]


def test_dry_run_plans_without_applying_or_cleaning_up(ctx: Ctx) -> None:
    step = SetState()
    report = run_step(step, ctx, dry_run=True)
    assert report.status is Status.PLANNED
    assert [c.what for c in report.changes] == ["write"]
    assert step.calls == ["prepare", "plan"]
    assert ctx.sent == []
    events = [e for e in read(ctx.journal.path) if e["event"] == "step-finished"]
    assert events[0]["status"] == "planned"
    assert events[0]["changes"] == [{"what": "write", "commands": ["touch /x"]}]


def test_failure_runs_cleanup_journals_and_keeps_output(ctx: Ctx) -> None:
    ctx.exit_code = 2
    step = SetState()
    with pytest.raises(StepFailed) as raised:
        run_step(step, ctx)
    assert "`touch /x` exited 2" in str(raised.value)
    assert raised.value.output == "E: it broke\n"
    assert step.calls[-1] == "cleanup failed=True"
    failed = next(e for e in read(ctx.journal.path) if e["event"] == "step-finished")
    assert failed["status"] == "failed" and "E: it broke" in failed["output"]


def test_a_lost_connection_becomes_a_step_failure(ctx: Ctx) -> None:
    class Lost(SetState):
        def prepare(self, ctx: Ctx) -> None:
            raise TransportError("worker1: the SSH connection was lost")

    step = Lost()
    with pytest.raises(StepFailed, match="connection was lost"):
        run_step(step, ctx)
    assert step.calls == ["cleanup failed=True"]


def test_skipped_step_runs_nothing(ctx: Ctx) -> None:
    class Skip(SetState):
        def skip_reason(self, ctx: Ctx) -> str | None:
            return "already at 1.30.2"

    step = Skip()
    report = run_step(step, ctx)
    assert report.status is Status.SKIPPED and report.detail == "already at 1.30.2"
    assert step.calls == [] and ctx.sent == []
    assert statuses(ctx.journal.path) == ["skipped"]


def test_run_checked_raises_with_output(ctx: Ctx) -> None:
    ctx.exit_code = 1
    with pytest.raises(StepFailed) as raised:
        run_checked(ctx, cmd("false"))
    assert raised.value.output == "E: it broke\n"
