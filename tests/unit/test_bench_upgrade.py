"""The rolling-upgrade benchmark's arithmetic: per-batch critical paths from journal spans."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import Run
from bench.upgrade import UpgradeResult, _journal_steps, describe, from_json


def result(spans: dict[str, tuple[float, float]], batches: list[list[str]]) -> UpgradeResult:
    run = Run(wall=0.0, cpu=0.0, exit_code=0, output="")
    return UpgradeResult("nodeops", 2, "1", run, {}, (0.0, 0.0, 0.0), batches=batches, spans=spans)


def test_a_batch_staged_during_the_one_before_counts_from_its_end() -> None:
    # cp1 0-20; w1 20-35 (staged 20-25); w2 staged 25-30 while w1 was cordoned, done at 45.
    r = result({"cp1": (0, 20), "w1": (20, 35), "w2": (25, 45)}, [["cp1"], ["w1"], ["w2"]])
    assert r.critical_paths == [20, 15, 10]


def test_batches_in_sequence_count_whole_and_the_longest_node_wins() -> None:
    spans = {"cp1": (0, 10), "w1": (11, 20), "w2": (11, 24), "w3": (25, 30)}
    r = result(spans, [["cp1"], ["w1", "w2"], ["w3"]])
    assert r.critical_paths == [10, 13, 5]


def test_spans_survive_the_raw_json() -> None:
    r = result({"cp1": (1.5, 2.5)}, [["cp1"]])
    again = from_json(json.loads(json.dumps(describe(r))))
    assert again.spans == {"cp1": (1.5, 2.5)} and again.critical_paths == [1.0]


def test_journal_steps_give_each_nodes_span_and_step_durations(tmp_path: Path) -> None:
    journal = tmp_path / ".local/state/nodeops/journal"
    journal.mkdir(parents=True)
    events = [
        ("2026-11-27T10:00:00.000+00:00", "step-started", "w1", "check-node"),
        ("2026-11-27T10:00:01.500+00:00", "step-finished", "w1", "check-node"),
        ("2026-11-27T10:00:02.000+00:00", "step-started", "w1", "cordon"),
        ("2026-11-27T10:00:02.250+00:00", "step-finished", "w1", "cordon"),
    ]
    lines = [json.dumps({"time": t, "event": e, "node": n, "step": s}) for t, e, n, s in events]
    (journal / "r1-upgrade-cluster.jsonl").write_text("\n".join(lines) + "\n")
    steps, spans = _journal_steps(tmp_path)
    assert steps == {"w1": {"check-node": 1.5, "cordon": 0.25}}
    start, end = spans["w1"]
    assert end - start == 2.25
