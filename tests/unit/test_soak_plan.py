"""The soak's pure parts: plans from seeds, the invariants, the report lines, output parsing."""

from __future__ import annotations

import dataclasses

import pytest

from nodeops.lab import soak
from nodeops.lab.soak import (
    EMPTY_SHA256,
    KILL,
    Check,
    ClusterSnapshot,
    NodeSnapshot,
    RunResult,
    check_all,
    check_cordons,
    check_etcd,
    check_holds,
    check_manifests,
    check_target,
    plan_run,
    run_line,
    summary,
)
from nodeops.lab.soakrun import parse_node_lines, resume_args

KINDS = ("dpkg-lock", "kubeadm-fail", "apiserver-down", "pdb-blocking", "dpkg-interrupt")
STEPS = ("check-node", "switch-repo", "cordon", "drain", "kubeadm-upgrade", "uncordon")
OSES = ("ubuntu-22.04", "ubuntu-24.04", "debian-12", "rocky-9")
PLANS = [plan_run(seed, KINDS, STEPS, OSES) for seed in range(400)]


def test_the_same_seed_gives_the_same_plan() -> None:
    assert plan_run(7, KINDS, STEPS, OSES) == plan_run(7, KINDS, STEPS, OSES)
    # The order the kinds are listed in does not matter: a plan depends on the set.
    assert plan_run(7, KINDS, STEPS, OSES) == plan_run(7, KINDS[::-1], STEPS, OSES)
    assert len({(p.fault, p.node, p.step, p.worker_os, p.start) for p in PLANS[:50]}) > 40


def test_plans_cover_every_kind_kill_node_count_budget_and_precordon() -> None:
    assert {p.fault for p in PLANS} == {*KINDS, KILL}
    assert {len(p.worker_os) for p in PLANS} == {1, 2}
    assert {p.budget for p in PLANS} == {2, 1, None}
    assert any(p.precordon for p in PLANS) and any(not p.precordon for p in PLANS)
    assert {p.start for p in PLANS} == {f"1.{m}.2" for m in soak.START_MINORS}
    assert {os for p in PLANS for os in p.worker_os} == set(OSES)
    assert {p.hold is None for p in PLANS if p.fault != KILL} == {True, False}
    kubeadm_fail = {p.step for p in PLANS if p.fault == "kubeadm-fail" and p.node != "cp1"}
    assert kubeadm_fail == set(STEPS[: STEPS.index("kubeadm-upgrade") + 1])


def test_every_plan_is_one_a_lab_can_run() -> None:
    for plan in PLANS:
        check_runnable(plan)


def check_runnable(plan: soak.SoakPlan) -> None:
    major, minor, _ = plan.start.split(".")
    assert plan.to == f"{major}.{int(minor) + 1}"
    assert plan.node in plan.nodes
    if plan.fault == "apiserver-down":
        assert plan.node == "cp1"
    if plan.fault.startswith("dpkg-"):
        assert plan.os_of(plan.node).split("-")[0] in ("ubuntu", "debian")
    assert plan.step in STEPS or (plan.step == "etcd-snapshot" and plan.node == "cp1")
    # A budget over web needs two schedulable workers, or every drain would hang.
    if len(plan.worker_os) == 1 or plan.precordon:
        assert plan.budget is None
    assert plan.precordon in (None, "worker1", "worker2")
    if plan.precordon:
        assert len(plan.worker_os) == 2
    if plan.fault == KILL:
        assert 0 <= plan.delay <= 3
    else:
        assert plan.delay == 0
        assert plan.hold is None or 1 <= plan.hold <= 10
    acts_at = soak.ACTS_AT.get(plan.fault)
    if acts_at in STEPS:  # a fault for the next kubeadm run is switched on before that run
        assert STEPS.index(plan.step) <= STEPS.index(acts_at) if plan.step in STEPS else True


def test_the_plan_line_names_everything_needed_to_replay_it() -> None:
    plan = dataclasses.replace(PLANS[0], seed=42, worker_os=("rocky-9",), budget=None)
    line = plan.describe()
    assert line.startswith("seed=42 ")
    assert "worker1:rocky-9" in line and "cp1:ubuntu-22.04" in line and "budget=none" in line
    assert f"fault={plan.fault} node={plan.node} step={plan.step}" in line


def test_unknown_kinds_from_a_newer_faults_module_may_hit_any_node() -> None:
    nodes = {"cp1": "ubuntu-22.04", "worker1": "rocky-9"}
    assert soak.fault_nodes("ssh-cut-kubeadm", nodes) == ["cp1", "worker1"]
    assert soak.fault_nodes("dpkg-interrupt", nodes) == ["cp1"]
    assert soak.fault_nodes("apiserver-down", nodes) == ["cp1"]
    assert soak.run_seed(1000, 7) == 1007


# ---- invariants


def node(name: str, **changes: object) -> NodeSnapshot:
    base = NodeSnapshot(
        name=name,
        unschedulable=False,
        ready=True,
        kubelet="1.30.14",
        packages={"kubeadm": "1.30.14", "kubectl": "1.30.14", "kubelet": "1.30.14"},
        held=frozenset({"kubeadm", "kubectl", "kubelet"}),
        manifests={"etcd.yaml": "a" * 64, "kube-apiserver.yaml": "b" * 64} if name == "cp1" else {},
        images={"kube-apiserver": "v1.30.14"} if name == "cp1" else {},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def cluster(*nodes: NodeSnapshot, **changes: object) -> ClusterSnapshot:
    base = ClusterSnapshot(
        nodes={n.name: n for n in nodes},
        etcd_keys=frozenset(
            {"/registry/configmaps/default/soak-sentinel", "/registry/minions/cp1"}
        ),
        sentinel='{"seed": "1"}',
        lock=False,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


GOOD = cluster(node("cp1"), node("worker1"))


def test_a_clean_upgrade_keeps_every_invariant() -> None:
    before = cluster(node("cp1", kubelet="1.29.2"), node("worker1", kubelet="1.29.2"))
    assert all(c.ok for c in check_all(before, GOOD, "1.30", "1.30.14"))


def test_manifests_lost_added_emptied_or_foreign_ones_changed_break_the_invariant() -> None:
    cp = GOOD.nodes["cp1"]
    upgraded = {**cp.manifests, "kube-apiserver.yaml": "c" * 64}  # kubeadm rewrote it: fine
    assert check_manifests(GOOD, cluster(node("cp1", manifests=upgraded), node("worker1"))).ok
    lost = check_manifests(GOOD, cluster(node("cp1", manifests={"etcd.yaml": "a" * 64})))
    assert not lost.ok and "cp1: lost kube-apiserver.yaml" in lost.detail
    extra = {**cp.manifests, ".kube-apiserver.yaml.swp": "d" * 64}
    added = check_manifests(GOOD, cluster(node("cp1", manifests=extra), node("worker1")))
    assert not added.ok and "added .kube-apiserver.yaml.swp" in added.detail
    empty = {**cp.manifests, "etcd.yaml": EMPTY_SHA256}
    emptied = check_manifests(GOOD, cluster(node("cp1", manifests=empty), node("worker1")))
    assert not emptied.ok and "empty etcd.yaml" in emptied.detail
    mine = cluster(node("cp1", manifests={**cp.manifests, "mine.yaml": "e" * 64}), node("worker1"))
    changed = cluster(node("cp1", manifests={**cp.manifests, "mine.yaml": "f" * 64}))
    assert "changed (not kubeadm's) mine.yaml" in check_manifests(mine, changed).detail


def test_etcd_keys_lost_or_the_sentinel_changed_break_the_invariant() -> None:
    more = cluster(node("cp1"), etcd_keys=GOOD.etcd_keys | {"/registry/configmaps/x/new"})
    assert check_etcd(GOOD, more).ok  # new keys are fine
    lost = check_etcd(GOOD, cluster(node("cp1"), etcd_keys=frozenset({"/registry/minions/cp1"})))
    assert (
        not lost.ok and "1 key(s) lost: /registry/configmaps/default/soak-sentinel" in lost.detail
    )
    changed = check_etcd(GOOD, cluster(node("cp1"), sentinel="unreadable: 404"))
    assert not changed.ok and "sentinel" in changed.detail
    assert not check_etcd(cluster(etcd_keys=frozenset()), GOOD).ok  # nothing read: no verdict


def test_cordons_left_behind_or_an_operators_cordon_removed_break_the_invariant() -> None:
    cordoned = cluster(node("cp1"), node("worker1", unschedulable=True))
    left = check_cordons(GOOD, cordoned)
    assert not left.ok and left.detail == "left cordoned: worker1"
    removed = check_cordons(cordoned, GOOD)
    assert not removed.ok and removed.detail == "operator's cordon removed: worker1"
    assert check_cordons(cordoned, cordoned).ok


def test_a_hold_lost_breaks_the_invariant() -> None:
    unheld = cluster(node("cp1"), node("worker1", held=frozenset({"kubeadm"})))
    result = check_holds(GOOD, unheld)
    assert not result.ok and result.detail == "worker1: not held: kubectl, kubelet"


@pytest.mark.parametrize(
    ("after", "printed", "message"),
    [
        (
            cluster(node("cp1"), node("worker1", kubelet="1.29.2")),
            None,
            "kubelets at 1.29.2, 1.30.14",
        ),
        (GOOD, None, "not 1.31"),
        (GOOD, "1.30.13", "nodeops said 1.30.13"),
        (cluster(node("cp1"), node("worker1", ready=False)), None, "worker1: NotReady"),
        (
            cluster(
                node("cp1", packages={"kubeadm": "1.30.14", "kubectl": "", "kubelet": "1.30.14"})
            ),
            None,
            "cp1: kubectl missing (kubelet 1.30.14)",
        ),
        (
            cluster(node("cp1", images={"kube-apiserver": "v1.29.2"})),
            None,
            "images kube-apiserver v1.29.2",
        ),
        (cluster(node("cp1"), lock=True), None, "lock was left behind"),
    ],
)
def test_a_node_not_at_the_target_breaks_the_invariant(
    after: ClusterSnapshot, printed: str | None, message: str
) -> None:
    to = "1.31" if message == "not 1.31" else "1.30"
    result = check_target(after, to, printed)
    assert not result.ok and message in result.detail, result.detail


# ---- reporting and parsing


def test_run_line_and_summary_name_the_failures_and_their_seeds() -> None:
    plan = PLANS[3]
    ok = RunResult(plan, "killed+resumed", (Check("cordons", True),), 41.04)
    bad = RunResult(
        dataclasses.replace(plan, seed=99, fault="kill"),
        "killed+resumed",
        (Check("cordons", False, "left cordoned: worker1"),),
        50.0,
    )
    assert run_line(ok) == (
        f"seed={plan.seed} fault={plan.fault} node={plan.node} step={plan.step}"
        " outcome=killed+resumed cordons=ok 41.0s"
    )
    assert run_line(bad).endswith("cordons=BROKEN 50.0s\n    cordons: left cordoned: worker1")
    errored = RunResult(plan, "failed(1)+resumed-failed(1)", (), 10.0, "the resume exited 1")
    assert not errored.ok and "\n    error: the resume exited 1" in run_line(errored)
    text = summary([ok, bad, errored])
    assert "runs: 3" in text
    assert f"failures: 2 (seeds {plan.seed}, 99)" in text
    assert "invariants broken: cordons 1" in text
    assert "outcomes: failed(1)+resumed-failed(1) 1, killed+resumed 2" in text


def test_node_script_output_is_parsed_into_groups() -> None:
    text = (
        "manifest\tetcd.yaml\t" + "a" * 64 + "\n"
        "package\tkubelet\t1.30.2-1.1\npackage\tkubeadm\t1.30.2\n"
        "held\tkubelet\nheld\tcri-tools\nimage\tkube-apiserver\tv1.30.2\n"
        "key\t/registry/minions/cp1\nlock\n"
    )
    found = parse_node_lines(text)
    assert found["manifest"] == {"etcd.yaml": "a" * 64}
    assert found["package"] == {"kubelet": "1.30.2", "kubeadm": "1.30.2"}
    assert found["held"] == {"kubelet", "cri-tools"}
    assert found["image"] == {"kube-apiserver": "v1.30.2"}
    assert found["key"] == {"/registry/minions/cp1"} and found["lock"] is True


def test_resume_uses_the_printed_line_else_the_journals_run_id() -> None:
    plan = dataclasses.replace(PLANS[0], to="1.30")
    err = (
        'error: cp1: step "Drain node" failed\n'
        "  resume with: nodeops upgrade-cluster --to 1.30 --force -i /x/lab.yaml --resume R1\n"
    )
    assert resume_args(err, "R1", plan) == [
        "upgrade-cluster",
        "--to",
        "1.30",
        "--force",
        "--resume",
        "R1",
    ]
    killed = resume_args("", "R2", plan)
    assert killed == [
        "upgrade-cluster", "--to", "1.30", "--force", "--delete-emptydir-data", "--resume", "R2",
    ]  # fmt: skip
    assert resume_args("", None, plan) is None
