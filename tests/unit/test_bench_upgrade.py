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


def test_the_tables_group_repetitions_into_medians_and_ratios() -> None:
    from bench.report import upgrade_markdown

    def one(tool: str, wall: float, window: float, steps: bool) -> UpgradeResult:
        run = Run(wall=wall, cpu=1.0, exit_code=0, output="")
        r = UpgradeResult(tool, 1, "1", run, {"cp1": 9.0, "w1": window}, (1.0, 1.0, 1.0))
        if steps:
            r.steps = {"w1": {"drain": 1.0, "restart-kubelet": 0.5, "wait-ready": 5.0}}
            r.batches, r.spans = [["cp1"], ["w1"]], {"cp1": (0.0, 20.0), "w1": (15.0, 30.0)}
        return r

    text = upgrade_markdown(
        [
            one("nodeops", 30.0, 8.0, True),
            one("Ansible", 60.0, 9.0, False),
            one("nodeops", 34.0, 8.4, True),
            one("Ansible", 66.0, 10.0, False),
            one("nodeops", 32.0, 20.0, True),
            one("Ansible", 62.0, 9.5, False),
        ]
    )
    rows = [line for line in text.splitlines() if line.startswith("| 1 |")]
    assert rows[0].startswith("| 1 | nodeops | 1 | 3 | 32.00 (30.00-34.00) | 1.00x |")
    assert rows[1].startswith("| 1 | Ansible | 1 | 3 | 62.00 (60.00-66.00) | 1.94x |")
    # w1's window target is 1 + 0.5 + 5 + 2 = 8.5 s: met in two runs of three.
    assert "| w1 | 8.4 | 1.0 | 0.5 | 5.0 | 0.0 | 8.5 | **2/3** |" in text
    assert "Window target met in 2 of 3 worker runs." in text
    # Critical paths 20 + 10 = 30 s: 1.00x, 1.13x, 1.07x.
    assert "1.00x, 1.13x, 1.07x — met in 2 of 3 runs." in text
