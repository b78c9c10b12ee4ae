"""Workers staged ahead: they check and download while the control planes and the batches
before them are upgraded; when the line stops, staging not begun is called off and the
staged nodes are reported as such."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from nodeops.journal import Journal
from nodeops.upgrade import execute as execute_mod
from nodeops.upgrade import lock
from nodeops.upgrade.execute import NodeOutcome, NodeRun, execute
from nodeops.upgrade.nodesteps import UpgradeSettings
from tests.unit.test_runbook import REPO_130, cluster, plan
from tests.unit.test_upgrade_downgrade import _Sessions

WORKERS = {f"w{n}": "1.29.3" for n in range(1, 5)}


def run_with(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    fail_staging: set[str] = frozenset(),  # type: ignore[assignment]
    fail_window: set[str] = frozenset(),  # type: ignore[assignment]
    events: list[str] | None = None,
    cp: str = "1.29.3",
) -> list[NodeOutcome]:
    events = [] if events is None else events
    guard = threading.Lock()

    def fake_run_until(self: NodeRun, stop: int) -> NodeOutcome:
        name = self.job.node.name
        part = "stage" if stop == execute_mod.STAGING_STEPS else "finish"
        if part == "finish" and self.done < execute_mod.STAGING_STEPS and self.outcome.ok:
            fake_run_until(self, execute_mod.STAGING_STEPS)  # a control plane: all in one go
        if not self.outcome.ok:
            return self.outcome
        with guard:
            events.append(f"{part} {name}")
        if part == "finish" and name in ("cp1", "w1"):
            # Upgraded until every worker has staged (or 5 s pass): staging must not wait
            # for this node's window to end.
            deadline = time.monotonic() + 5
            while "stage w4" not in events and time.monotonic() < deadline:
                time.sleep(0.01)
        failing = fail_staging if part == "stage" else fail_window
        if name in failing:
            self.outcome.ok, self.outcome.failed_step = False, part
        self.done = execute_mod.STAGING_STEPS if part == "stage" else len(self.steps)
        self.outcome.target = self.job.target
        return self.outcome

    monkeypatch.setattr(NodeRun, "run_until", fake_run_until)
    monkeypatch.setattr(execute_mod, "backup_etcd", lambda *a: "saved")
    monkeypatch.setattr(lock, "acquire", lambda t, run_id: None)
    monkeypatch.setattr(lock, "release", lambda t, run_id: None)
    world = cluster(cp=cp, workers=dict(WORKERS))
    repo = {"current_repo": REPO_130} if cp == "1.30.2" else {}
    book = plan("1.30.2", world=world, max_unavailable="1", **repo)  # type: ignore[arg-type]
    assert bool(book.control_planes) == (cp != "1.30.2")
    _, inventory, _ = world
    return execute(
        book,
        sessions=_Sessions(),  # type: ignore[arg-type]
        inventory_nodes={n.name: n for n in inventory},
        kubectl_node=inventory[0],
        journal=Journal.start(tmp_path, "upgrade-cluster", {"to": "1.30.2"}),
        settings=UpgradeSettings(),
        cordoned_earlier=set(),
    )


def test_every_later_batch_stages_before_its_turn_and_windows_keep_batch_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    events: list[str] = []
    outcomes = run_with(monkeypatch, tmp_path, events=events)
    assert [o.node for o in outcomes] == ["cp1", "w1", "w2", "w3", "w4"]
    assert all(o.ok for o in outcomes)
    finishes = [e for e in events if e.startswith("finish w")]
    assert finishes == ["finish w1", "finish w2", "finish w3", "finish w4"]
    for n in range(1, 5):
        assert events.index(f"stage w{n}") < events.index(f"finish w{n}")
    # Every worker was staged while cp1 was upgraded, without waiting for it to end.
    assert all(events.index(f"stage w{n}") < events.index("finish w1") for n in range(1, 5))
    # Without a control plane to upgrade: w2..w4 stage while w1 is cordoned.
    events.clear()
    assert all(o.ok for o in run_with(monkeypatch, tmp_path, events=events, cp="1.30.2"))
    assert all(events.index(f"stage w{n}") < events.index("finish w2") for n in range(2, 5))


def test_a_failed_window_reports_the_staged_nodes_as_staged_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    outcomes = run_with(monkeypatch, tmp_path, fail_window={"w2"})
    seen = [(o.node, o.ok, o.staged_only) for o in outcomes]
    assert seen[:3] == [("cp1", True, False), ("w1", True, False), ("w2", False, False)]
    # w3 and w4 were staged (or their staging was called off before it began): never failed,
    # never reported as upgraded.
    assert all(staged for _, ok, staged in seen[3:]) and {n for n, *_ in seen[3:]} <= {"w3", "w4"}


def test_a_first_batch_failing_its_staging_stages_nothing_ahead(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    events: list[str] = []
    outcomes = run_with(monkeypatch, tmp_path, fail_staging={"w1"}, events=events, cp="1.30.2")
    assert [(o.node, o.ok, o.failed_step) for o in outcomes] == [("w1", False, "stage")]
    assert not [e for e in events if e.startswith("stage w") and e != "stage w1"]


def test_a_failed_control_plane_reports_the_staged_workers_as_staged_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    outcomes = run_with(monkeypatch, tmp_path, fail_window={"cp1"})
    assert [(o.node, o.ok, o.staged_only) for o in outcomes] == [
        ("cp1", False, False),
        *[(f"w{n}", False, True) for n in range(1, 5)],
    ]


def test_a_later_node_failing_its_staging_stops_the_line_at_its_batch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    outcomes = run_with(monkeypatch, tmp_path, fail_staging={"w3"})
    seen = [(o.node, o.ok, o.staged_only) for o in outcomes]
    assert seen[:4] == [
        ("cp1", True, False),
        ("w1", True, False),
        ("w2", True, False),
        ("w3", False, False),
    ]
    assert seen[4:] in ([], [("w4", False, True)])
