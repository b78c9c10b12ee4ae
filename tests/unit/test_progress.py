"""Rollout progress lines and the summary table."""

from __future__ import annotations

import io
import threading

import pytest

from nodeops.progress import Progress, StepEvent
from nodeops.steps import Status, StepReport
from nodeops.tasks.upgrade import summary_rows
from nodeops.upgrade.execute import NodeOutcome
from nodeops.versions import Version


def test_plain_progress_prints_one_line_per_finished_step_from_many_threads() -> None:
    out = io.StringIO()
    with Progress(out, live=False) as shown:
        workers = [
            threading.Thread(
                target=lambda n=n: [
                    shown.step(StepEvent(f"w{n}", i, 13, f"Step {i}", s, 0.5))
                    for i in range(1, 14)
                    for s in ("started", "changed")
                ]
            )
            for n in range(4)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        shown.say("w0: at 1.30.2")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 * 13 + 1
    assert "w2: [6/13] Step 6: changed (0.5 s)" in lines
    assert lines[-1] == "w0: at 1.30.2"


def test_live_progress_on_a_terminal_keeps_a_line_per_node() -> None:
    out = io.StringIO()
    with Progress(out, live=True) as shown:
        shown.step(StepEvent("cp1", 1, 13, "Check node", "started"))
        shown.step(StepEvent("cp1", 1, 13, "Check node", "unchanged", 0.5))
        shown.say("etcd snapshot on cp1: saved")
    text = out.getvalue()
    assert "cp1" in text and "Check node: unchanged" in text and "etcd snapshot" in text


def test_summary_rows_say_where_each_node_ended() -> None:
    target = Version(1, 30, 2)
    changed = StepReport("w1", "cordon", "Cordon node", Status.CHANGED)
    ok = NodeOutcome("w1", ok=True, reports=[changed], target=target, cordoned_seconds=7.25)
    same = NodeOutcome("w3", ok=True, reports=[], target=target)
    failed = NodeOutcome(
        "w2",
        ok=False,
        failed_step="Wait until the node is Ready at the target version",
        state="NotReady, cordoned",
    )
    staged = NodeOutcome(
        "w5", ok=False, staged_only=True, state="packages staged, never cordoned"
    )
    assert summary_rows([ok, same, failed, staged], ["w4"]) == [
        ["w1", "ok", "at 1.30.2", "7.2 s", ""],
        ["w3", "ok", "at 1.30.2 (unchanged)", "-", ""],
        [
            "w2",
            "FAILED",
            "NotReady, cordoned",
            "-",
            "Wait until the node is Ready at the target version",
        ],
        ["w5", "not started", "packages staged, never cordoned", "-", "the line was stopped"],
        ["w4", "not started", "", "-", "the line was stopped"],
    ]


def test_a_dpkg_failure_offers_the_repair_beside_the_plain_resume(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from nodeops.tasks.upgrade import _report_failure

    failed = NodeOutcome(
        "w2",
        ok=False,
        failed_step="Install kubeadm",
        error="w2: dpkg was interrupted; or let nodeops do it: run again with --repair-dpkg",
        state="Ready, cordoned, kubelet v1.31.13",
    )
    _report_failure(failed, "nodeops upgrade-cluster --to 1.32 --resume RUN")
    err = capsys.readouterr().err
    assert "  resume with: nodeops upgrade-cluster --to 1.32 --resume RUN\n" in err
    assert "or, letting nodeops finish dpkg first: nodeops upgrade-cluster --to 1.32" in err
    assert err.rstrip().endswith("--resume RUN --repair-dpkg")
    _report_failure(NodeOutcome("w1", ok=False, error="w1: the drain failed"), "nodeops x")
    assert "--repair-dpkg" not in capsys.readouterr().err
