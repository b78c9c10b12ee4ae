"""The soak, short: two runs on fresh one-worker labs, one killing nodeops mid-upgrade and one
failing `kubeadm upgrade apply` with a lab fault, each resumed, every invariant checked.

The seeds are the first ones (from 0) whose plans are such runs against the lab's fault kinds
as they are now, so a new fault kind moves them but never loses them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nodeops.lab import soakrun
from nodeops.lab.soak import KILL, SoakPlan, run_line

pytestmark = pytest.mark.lab

MID_CHAIN = ("cordon", "drain", "install-kubeadm", "kubeadm-upgrade", "install-kubelet")
BEFORE_APPLY = ("etcd-snapshot", "check-node", "switch-repo", "cordon", "drain")


def first_seed(wanted: Callable[[SoakPlan], bool]) -> SoakPlan:
    for seed in range(5000):
        plan = soakrun.plan_for(seed)
        if len(plan.worker_os) == 1 and wanted(plan):
            return plan
    raise AssertionError("no seed below 5000 plans such a run")


def test_killed_and_faulted_upgrades_resume_and_keep_every_invariant(
    lab_root: Path, tmp_path: Path
) -> None:
    killed = first_seed(lambda p: p.fault == KILL and p.node == "cp1" and p.step in MID_CHAIN)
    faulted = first_seed(
        lambda p: p.fault == "kubeadm-fail" and p.node == "cp1" and p.step in BEFORE_APPLY
    )
    assert soakrun.plan_for(killed.seed) == killed  # reproducible from its seed
    results = []
    for plan in (killed, faulted):
        result = soakrun.run_one(plan, tmp_path / f"seed-{plan.seed}")
        print(f"\n{run_line(result)}\n    plan: {plan.describe()}")
        results.append(result)
    kill, fault = results
    assert kill.outcome == "killed+resumed", run_line(kill)
    assert fault.outcome == "failed(1)+resumed", run_line(fault)
    for result in results:
        assert [c.name for c in result.checks] == [
            "manifests",
            "etcd",
            "cordons",
            "holds",
            "target",
        ]
        assert result.ok, run_line(result)
    journal = next((tmp_path / f"seed-{faulted.seed}").glob("*.jsonl")).read_text()
    assert '"event": "run-resumed"' in journal
