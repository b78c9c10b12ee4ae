"""Whole drain plans on a 3-node cluster as `kubectl get nodes,pods,pdb -A -o json` prints it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeops.drainplan import (
    DAEMONSET_FATAL,
    EVICTION_REFUSED,
    LOCAL_STORAGE_FATAL,
    ROW_HEADERS,
    UNMANAGED_FATAL,
    UNMANAGED_FATAL_LEGACY,
    DrainOptions,
    DrainPlan,
    DrainPlanError,
    FateKind,
    Verdict,
    plan_drain,
)

DATA = Path(__file__).parent / "data" / "drainplan" / "cluster.json"
OUTPUTS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "outputs"
ALL_FLAGS = DrainOptions(ignore_daemonsets=True, delete_emptydir_data=True, force=True)

WEB_A, WEB_B, WEB_C = "web-7d9c5-a1b2c", "web-7d9c5-d3e4f", "web-7d9c5-g5h6i"


def cluster() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    items = json.loads(DATA.read_text())["items"]
    kinds: dict[str, list[dict[str, Any]]] = {"Node": [], "Pod": [], "PodDisruptionBudget": []}
    for item in items:
        kinds[item["kind"]].append(item)
    return kinds["Node"], kinds["Pod"], kinds["PodDisruptionBudget"]


def plan(drain: list[str], options: DrainOptions = ALL_FLAGS, **changes: Any) -> DrainPlan:
    nodes, pods, pdbs = cluster()
    nodes = changes.get("nodes", nodes)
    pods = changes.get("pods", pods)
    pdbs = changes.get("pdbs", pdbs)
    return plan_drain(nodes, pods, pdbs, drain, options, daemonsets=changes.get("daemonsets"))


def pod_named(pods: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(p for p in pods if p["metadata"]["name"] == name)


# --- the whole cluster, draining node-a ---------------------------------------------------


def test_drain_node_a_with_all_flags() -> None:
    p = plan(["node-a"])
    kinds = {f.name: f.kind for f in p.fates}
    assert kinds == {
        WEB_A: FateKind.EVICTED,
        "kube-proxy-x8k2p": FateKind.IGNORED,
        "etcd-node-a": FateKind.IGNORED,
        "debug-shell": FateKind.LOST,
        "cache-5f6d7-q9w8e": FateKind.LOST,
        "ssd-app-6b8c9-r4t5y": FateKind.PENDING,
        "big-5c4b3-u7i8o": FateKind.PENDING,
        "report-28374650-zx9cv": FateKind.EVICTED,
    }
    assert p.verdict is Verdict.WOULD_LOSE_DATA
    assert p.verdicts == (Verdict.WOULD_LOSE_DATA, Verdict.WOULD_LEAVE_PENDING)
    assert not p.clean
    assert p.flags_needed == ()
    # only pods on the drained node appear, sorted by namespace then name
    assert [f.name for f in p.fates][:3] == ["big-5c4b3-u7i8o", "cache-5f6d7-q9w8e", "debug-shell"]


def test_deployment_pod_is_evicted_and_rescheduled_within_its_budget() -> None:
    web = plan(["node-a"]).of("default", WEB_A)
    assert web.kind is FateKind.EVICTED
    assert web.target in ("node-b", "node-c")
    assert set(web.candidates) == {"node-b", "node-c"}
    assert web.pdb == "web-pdb"
    assert "0 disruption(s) left" in web.reason


def test_daemonset_pod_is_ignored_with_the_flag_and_fails_without() -> None:
    assert plan(["node-a"]).of("kube-system", "kube-proxy-x8k2p").kind is FateKind.IGNORED
    fate = plan(["node-a"], DrainOptions(force=True, delete_emptydir_data=True)).of(
        "kube-system", "kube-proxy-x8k2p"
    )
    assert fate.kind is FateKind.FAILS
    assert fate.reason == DAEMONSET_FATAL
    assert fate.flag == "--ignore-daemonsets"


def test_bare_pod_is_lost_with_force_and_fails_without() -> None:
    lost = plan(["node-a"]).of("default", "debug-shell")
    assert lost.kind is FateKind.LOST
    assert "never recreated" in lost.reason
    assert lost.target is None
    fails = plan(["node-a"], DrainOptions(ignore_daemonsets=True)).of("default", "debug-shell")
    assert fails.kind is FateKind.FAILS
    assert (
        fails.reason
        == UNMANAGED_FATAL
        == ("cannot delete Pods that declare no controller (use --force to override)")
    )
    assert fails.flags == ("--force",)


def test_emptydir_pod_loses_its_data_with_the_flag_and_fails_without() -> None:
    cache = plan(["node-a"]).of("default", "cache-5f6d7-q9w8e")
    assert cache.kind is FateKind.LOST
    assert cache.data_loss == ("scratch",)
    assert cache.target in ("node-b", "node-c")
    assert "emptyDir data deleted: scratch" in cache.reason
    fails = plan(["node-a"], DrainOptions(ignore_daemonsets=True, force=True)).of(
        "default", "cache-5f6d7-q9w8e"
    )
    assert fails.kind is FateKind.FAILS
    assert fails.reason == LOCAL_STORAGE_FATAL
    assert fails.flag == "--delete-emptydir-data"


def test_without_flags_the_drain_needs_them_all() -> None:
    p = plan(["node-a"], DrainOptions())
    assert p.verdict is Verdict.NEEDS_FORCE
    assert set(p.flags_needed) == {"--ignore-daemonsets", "--force", "--delete-emptydir-data"}
    assert not p.clean


def test_bare_pod_with_emptydir_reports_kubectls_first_error_and_every_flag() -> None:
    nodes, pods, pdbs = cluster()
    bare = pod_named(pods, "debug-shell")
    bare["spec"]["volumes"] = [{"name": "tmp", "emptyDir": {"medium": "Memory"}}]
    fate = plan_drain(nodes, pods, pdbs, ["node-a"], DrainOptions()).of("default", "debug-shell")
    assert fate.reason == LOCAL_STORAGE_FATAL
    assert fate.flags == ("--delete-emptydir-data", "--force")


def test_mirror_pod_is_ignored_without_any_flag() -> None:
    etcd = plan(["node-a"], DrainOptions()).of("kube-system", "etcd-node-a")
    assert etcd.kind is FateKind.IGNORED
    assert "mirror" in etcd.reason


def test_pod_only_the_drained_node_matches_stays_pending() -> None:
    fate = plan(["node-a"]).of("default", "ssd-app-6b8c9-r4t5y")
    assert fate.kind is FateKind.PENDING
    assert fate.reason.startswith(
        "replacement would stay Pending: 0/3 nodes are available: "
        "1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector."
    )
    assert fate.candidates == ()


def test_pod_whose_requests_fit_nowhere_else_stays_pending_naming_cpu_and_memory() -> None:
    fate = plan(["node-a"]).of("default", "big-5c4b3-u7i8o")
    assert fate.kind is FateKind.PENDING
    assert "2 Insufficient cpu" in fate.reason
    assert "2 Insufficient memory" in fate.reason


def test_finished_job_pod_is_deleted_not_replaced() -> None:
    fate = plan(["node-a"], DrainOptions()).of("default", "report-28374650-zx9cv")
    assert fate.kind is FateKind.EVICTED
    assert "finished (Succeeded)" in fate.reason
    assert fate.target is None


# --- PodDisruptionBudgets across nodes drained together ---------------------------------


def test_draining_one_node_of_the_deployment_is_safe() -> None:
    p = plan(["node-c"], DrainOptions())
    assert [f.kind for f in p.fates] == [FateKind.EVICTED, FateKind.EVICTED]
    assert p.verdict is Verdict.SAFE
    assert p.clean
    assert p.pdbs[0].name == "web-pdb"
    assert p.pdbs[0].disruptions == 1


def test_draining_two_nodes_waits_for_a_replacement_instead_of_blocking() -> None:
    # The budget allows one disruption: kubectl's second eviction gets 429 and is retried every
    # 5s until the first pod's replacement is Ready on node-c, then it goes through.
    p = plan(["node-a", "node-b"])
    first, second = p.of("default", WEB_A), p.of("default", WEB_B)
    assert first.kind is FateKind.EVICTED
    assert first.target == "node-c"
    assert not first.waits
    assert second.kind is FateKind.EVICTED
    assert second.waits
    assert second.target == "node-c"
    assert second.pdb == "web-pdb"
    assert second.reason == (
        "evicted after a replacement is Ready: PodDisruptionBudget web-pdb allows 1 disruption "
        "at a time (kubectl retries the eviction every 5s meanwhile); rescheduled to node-c"
    )
    assert second.budget is not None
    assert (second.budget.disruptions, second.budget.waited, second.budget.refused) == (2, 1, 0)
    assert p.waits_for_replacements == 1
    assert Verdict.BLOCKED not in p.verdicts
    impact = p.to_dict()["pdbs"][0]
    assert impact == {
        "namespace": "default",
        "name": "web-pdb",
        "disruptionsAllowed": 1,
        "currentHealthy": 3,
        "desiredHealthy": 2,
        "expectedPods": 3,
        "disruptions": 2,
        "refused": 0,
        "waited": 1,
    }


def test_waiting_for_replacements_is_slower_but_clean() -> None:
    nodes, pods, pdbs = cluster()
    # node-c holds a second web pod: both go, one after the other's replacement is Ready
    extra = copy.deepcopy(pod_named(pods, WEB_A))
    extra["metadata"]["name"] = "web-7d9c5-z9z9z"
    extra["spec"]["nodeName"] = "node-c"
    pods.append(extra)
    pdbs[0]["status"].update(currentHealthy=4, expectedPods=4, desiredHealthy=3)
    p = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions())
    assert p.clean and p.verdict is Verdict.SAFE
    assert p.waits_for_replacements == 1
    assert [f.waits for f in p.fates if f.pdb] == [False, True]
    data = p.to_dict()
    assert data["clean"] is True
    assert data["waitsForReplacements"] == 1
    assert [pod["waitsForReplacement"] for pod in data["pods"] if pod["pdb"]] == [False, True]


def _pool_ab(nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
    """The web pods may only run on node-a and node-b."""
    for n in nodes:
        if n["metadata"]["name"] in ("node-a", "node-b"):
            n["metadata"]["labels"]["pool"] = "ab"
    for name in (WEB_A, WEB_B, WEB_C):
        pod_named(pods, name)["spec"]["nodeSelector"] = {"pool": "ab"}


def test_two_nodes_each_fine_alone_together_break_the_budget() -> None:
    nodes, pods, pdbs = cluster()
    _pool_ab(nodes, pods)
    for alone in ("node-a", "node-b"):
        p = plan_drain(nodes, pods, pdbs, [alone], DrainOptions(pod_selector="app=web"))
        assert p.clean, p.rows()
    p = plan_drain(nodes, pods, pdbs, ["node-a", "node-b"], DrainOptions(pod_selector="app=web"))
    first, second = p.of("default", WEB_A), p.of("default", WEB_B)
    assert first.kind is FateKind.PENDING  # its replacement has nowhere to go
    assert second.kind is FateKind.BLOCKED
    assert second.budget is not None
    assert (second.budget.disruptions, second.budget.refused) == (1, 1)
    assert second.reason == (
        "Cannot evict pod as it would violate the pod's disruption budget. PodDisruptionBudget "
        "web-pdb allows 1 disruption now (healthy 3, needs 2, expected 3), this would be "
        "disruption 2, and no replacement of the pods evicted before it can become Ready to "
        f"free it: {WEB_A}: its replacement would stay Pending; kubectl retries every 5s until "
        "--timeout (forever without one)"
    )
    assert p.verdicts == (Verdict.BLOCKED, Verdict.WOULD_LEAVE_PENDING)
    assert p.waits_for_replacements == 0


def test_replacements_compete_for_the_remaining_nodes() -> None:
    # Room on node-c for one replacement only: the second eviction waits for it, the third
    # pod's budget is never freed again because the second replacement stays Pending.
    nodes, pods, pdbs = cluster()
    by = {n["metadata"]["name"]: n for n in nodes}
    by["node-c"]["status"]["allocatable"]["pods"] = "3"  # web-c, filler-c and one more
    extra = copy.deepcopy(pod_named(pods, WEB_A))
    extra["metadata"]["name"] = "web-7d9c5-a0000"
    pods.append(extra)
    pdbs[0]["status"].update(currentHealthy=4, expectedPods=4, desiredHealthy=3)
    p = plan_drain(nodes, pods, pdbs, ["node-a", "node-b"], DrainOptions(pod_selector="app=web"))
    kinds = [(f.name, f.kind, f.waits) for f in p.fates if f.pdb]
    assert kinds == [
        ("web-7d9c5-a0000", FateKind.EVICTED, False),
        (WEB_A, FateKind.PENDING, True),
        (WEB_B, FateKind.BLOCKED, False),
    ]
    assert "web-7d9c5-a1b2c: its replacement would stay Pending" in p.of("default", WEB_B).reason


def test_budget_that_allows_nothing_even_when_healthy_blocks() -> None:
    nodes, pods, pdbs = cluster()
    pdbs[0]["spec"]["minAvailable"] = 3
    pdbs[0]["status"].update(desiredHealthy=3, disruptionsAllowed=0)
    fate = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C)
    assert fate.kind is FateKind.BLOCKED
    assert fate.reason == (
        "Cannot evict pod as it would violate the pod's disruption budget. PodDisruptionBudget "
        "web-pdb allows 0 disruptions even with all 3 expected pods healthy (needs 3): no "
        "eviction of its pods can succeed; kubectl retries every 5s until --timeout (forever "
        "without one)"
    )


def test_pods_never_replaced_do_not_free_their_budget() -> None:
    nodes, pods, pdbs = cluster()
    for name in (WEB_A, WEB_B):
        pod_named(pods, name)["metadata"]["ownerReferences"] = []
    p = plan_drain(
        nodes, pods, pdbs, ["node-a", "node-b"], DrainOptions(force=True, pod_selector="app=web")
    )
    assert p.of("default", WEB_A).kind is FateKind.LOST
    blocked = p.of("default", WEB_B)
    assert blocked.kind is FateKind.BLOCKED
    assert f"{WEB_A}: never recreated (no controller)" in blocked.reason


def test_statefulset_pod_is_replaced_under_its_name_and_frees_the_budget() -> None:
    nodes, pods, pdbs = cluster()
    for name in (WEB_A, WEB_B):
        pod_named(pods, name)["metadata"]["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True}
        ]
    p = plan_drain(nodes, pods, pdbs, ["node-a", "node-b"], DrainOptions(pod_selector="app=web"))
    second = p.of("default", WEB_B)
    assert (second.kind, second.waits) == (FateKind.EVICTED, True)
    assert "its StatefulSet recreates it under the same name" in second.reason


def test_order_of_drained_nodes_decides_which_pod_waits() -> None:
    p = plan(["node-b", "node-a"])
    assert not p.of("default", WEB_B).waits
    assert p.of("default", WEB_A).waits


def test_disable_eviction_bypasses_the_budget() -> None:
    opts = DrainOptions(
        ignore_daemonsets=True, delete_emptydir_data=True, force=True, disable_eviction=True
    )
    p = plan(["node-a", "node-b"], opts)
    assert p.of("default", WEB_B).kind is FateKind.EVICTED
    assert "--disable-eviction" in p.of("default", WEB_B).reason


def test_unready_pod_is_evicted_without_using_the_budget() -> None:
    nodes, pods, pdbs = cluster()
    pod_named(pods, WEB_A)["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    p = plan_drain(nodes, pods, pdbs, ["node-a", "node-b"], ALL_FLAGS)
    assert p.of("default", WEB_A).kind is FateKind.EVICTED
    assert "not Ready" in p.of("default", WEB_A).reason
    assert p.of("default", WEB_B).kind is FateKind.EVICTED


def test_budget_with_no_disruptions_left_blocks_a_single_node_drain() -> None:
    nodes, pods, pdbs = cluster()
    pdbs[0]["status"].update(currentHealthy=2, disruptionsAllowed=0)
    fate = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C)
    assert fate.kind is FateKind.BLOCKED
    # another pod of the budget is unhealthy: it may become Ready, but the plan cannot promise it
    assert "allows 0 disruptions now (healthy 2, needs 2, expected 3)" in fate.reason
    assert "cannot promise" in fate.reason


def test_two_budgets_on_one_pod_block_its_eviction() -> None:
    nodes, pods, pdbs = cluster()
    other = copy.deepcopy(pdbs[0])
    other["metadata"]["name"] = "web-pdb-2"
    fate = plan_drain(nodes, pods, [*pdbs, other], ["node-c"], DrainOptions()).of("default", WEB_C)
    assert fate.kind is FateKind.BLOCKED
    assert "more than one PodDisruptionBudget" in fate.reason


def test_budget_in_another_namespace_or_with_empty_selector_does_not_apply() -> None:
    nodes, pods, pdbs = cluster()
    pdbs[0]["status"]["disruptionsAllowed"] = 0
    elsewhere = copy.deepcopy(pdbs[0])
    elsewhere["metadata"]["namespace"] = "other"
    empty = copy.deepcopy(pdbs[0])
    empty["spec"]["selector"] = {}
    p = plan_drain(nodes, pods, [elsewhere, empty], ["node-c"], DrainOptions())
    assert p.clean


def test_terminating_pod_skips_the_budget_and_is_not_placed_again() -> None:
    nodes, pods, pdbs = cluster()
    pdbs[0]["status"]["disruptionsAllowed"] = 0
    pod_named(pods, WEB_C)["metadata"]["deletionTimestamp"] = "2026-11-27T04:00:00Z"
    fate = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C)
    assert fate.kind is FateKind.EVICTED
    assert "already terminating" in fate.reason
    assert fate.target is None


def test_terminating_bare_pod_still_needs_force() -> None:
    nodes, pods, pdbs = cluster()
    pod_named(pods, "debug-shell")["metadata"]["deletionTimestamp"] = "2026-11-27T04:00:00Z"
    fate = plan_drain(nodes, pods, pdbs, ["node-a"], DrainOptions()).of("default", "debug-shell")
    assert fate.kind is FateKind.FAILS


def test_pending_phase_pod_skips_the_budget() -> None:
    nodes, pods, pdbs = cluster()
    pdbs[0]["status"]["disruptionsAllowed"] = 0
    pod_named(pods, WEB_C)["status"]["phase"] = "Pending"
    fate = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C)
    assert fate.kind is FateKind.EVICTED
    assert fate.target is not None


# --- placement -----------------------------------------------------------------------------


def test_pods_moving_in_the_same_plan_count_against_each_other() -> None:
    nodes, pods, pdbs = cluster()
    # node-a has 240m cpu free, node-b 2900m; node-c's filler (1000m) moves first, by name
    for name in ("mover-1", "mover-2"):
        mover = copy.deepcopy(pod_named(pods, "filler-8f7e6-c1"))
        mover["metadata"]["name"] = name
        pods.append(mover)
    p = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions())
    assert p.of("default", "filler-8f7e6-c1").target == "node-b"
    assert p.of("default", "mover-1").target == "node-b"
    alone = p.of("default", "mover-2")
    assert alone.kind is FateKind.PENDING
    assert alone.reason.endswith(
        "0/3 nodes are available: 1 Insufficient memory, 1 node(s) were unschedulable, "
        "2 Insufficient cpu."
    )
    # by itself it would have fitted on node-b
    solo = [q for q in pods if q["metadata"]["name"] not in ("mover-1", "filler-8f7e6-c1")]
    assert (
        plan_drain(nodes, solo, pdbs, ["node-c"], DrainOptions()).of("default", "mover-2").target
        == "node-b"
    )


def test_untolerated_taint_cordoned_and_notready_nodes_are_not_candidates() -> None:
    nodes, pods, pdbs = cluster()
    by = {n["metadata"]["name"]: n for n in nodes}
    by["node-a"]["spec"]["taints"] = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    by["node-b"]["spec"]["unschedulable"] = True
    p = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions())
    fate = p.of("default", WEB_C)
    assert fate.kind is FateKind.PENDING
    assert fate.reason.startswith(
        "replacement would stay Pending: 0/3 nodes are available: "
        "1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) were unschedulable.; "
    )
    assert p.verdict is Verdict.WOULD_LEAVE_PENDING
    # a toleration lets it land on node-a
    pod_named(pods, WEB_C)["spec"]["tolerations"].append(
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    )
    assert (
        plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C).target
        == "node-a"
    )
    # a cordoned node that is not drained takes pods tolerating the unschedulable taint
    pod_named(pods, WEB_C)["spec"]["tolerations"].append(
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
    )
    fate = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C)
    assert fate.candidates == ("node-b", "node-a")  # best first: node-a is the busier one
    # a NotReady node is no candidate either
    by["node-a"]["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    fate = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C)
    assert fate.candidates == ("node-b",)
    by["node-b"]["spec"]["unschedulable"] = False
    by["node-b"]["status"]["conditions"] = []
    fate = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C)
    assert "1 node(s) were unschedulable, 2 node(s) were not Ready." in fate.reason


def test_prefer_no_schedule_and_preferred_affinity_only_steer() -> None:
    nodes, pods, pdbs = cluster()
    by = {n["metadata"]["name"]: n for n in nodes}
    by["node-a"]["spec"]["taints"] = [
        {"key": "spot", "value": "true", "effect": "PreferNoSchedule"}
    ]
    assert (
        plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C).target
        == "node-b"
    )
    pod_named(pods, WEB_C)["spec"]["affinity"] = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "preference": {
                        "matchExpressions": [
                            {"key": "disktype", "operator": "In", "values": ["ssd"]}
                        ]
                    },
                }
            ]
        }
    }
    fate = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C)
    assert fate.target == "node-a"
    assert fate.candidates == ("node-a", "node-b")


def test_constraints_the_plan_does_not_model_are_named() -> None:
    nodes, pods, pdbs = cluster()
    web = pod_named(pods, WEB_C)
    web["spec"]["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    web["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    web["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    fate = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C)
    assert fate.kind is FateKind.EVICTED
    assert fate.reason.endswith(
        "not checked: podAntiAffinity, hostPort, PersistentVolumeClaim (volume node affinity)"
    )


def test_required_affinity_gt_picks_the_only_matching_node() -> None:
    nodes, pods, pdbs = cluster()
    for n, cores in zip(nodes, ("4", "16", "8"), strict=True):
        n["metadata"]["labels"]["example.com/cores"] = cores
    pod_named(pods, WEB_C)["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "example.com/cores", "operator": "Gt", "values": ["8"]}
                        ]
                    }
                ]
            }
        }
    }
    fate = plan_drain(nodes, pods, pdbs, ["node-c"], DrainOptions()).of("default", WEB_C)
    assert (fate.target, fate.candidates) == ("node-b", ("node-b",))


# --- options and inputs ------------------------------------------------------------------


def test_pod_selector_leaves_other_pods_alone() -> None:
    p = plan(["node-a"], DrainOptions(pod_selector="app=web"))
    assert p.of("default", WEB_A).kind is FateKind.EVICTED
    other = p.of("default", "debug-shell")
    assert other.kind is FateKind.IGNORED
    assert other.reason == "not selected by --pod-selector"
    assert p.clean


def test_orphaned_daemonset_pod_needs_force_and_is_then_lost() -> None:
    fails = plan(
        ["node-a"], DrainOptions(ignore_daemonsets=True, delete_emptydir_data=True), daemonsets=[]
    ).of("kube-system", "kube-proxy-x8k2p")
    assert fails.kind is FateKind.FAILS
    assert fails.reason == 'daemonsets.apps "kube-proxy" not found'
    lost = plan(["node-a"], daemonsets=[]).of("kube-system", "kube-proxy-x8k2p")
    assert lost.kind is FateKind.LOST
    present = [{"metadata": {"name": "kube-proxy", "namespace": "kube-system"}}]
    assert (
        plan(["node-a"], daemonsets=present).of("kube-system", "kube-proxy-x8k2p").kind
        is FateKind.IGNORED
    )


def test_unknown_node_and_bad_selector_are_errors() -> None:
    with pytest.raises(DrainPlanError, match='nodes "node-z" not found'):
        plan(["node-z"])
    with pytest.raises(DrainPlanError, match="pod-selector"):
        plan(["node-a"], DrainOptions(pod_selector="app in ()"))


def test_nothing_to_drain_is_safe() -> None:
    nodes, _, pdbs = cluster()
    p = plan_drain(nodes, [], pdbs, ["node-a"], DrainOptions())
    assert p.fates == ()
    assert p.verdict is Verdict.SAFE


def test_to_dict_is_json_and_rows_match_headers() -> None:
    p = plan(["node-a", "node-b"])
    data = json.loads(json.dumps(p.to_dict()))
    assert data["verdict"] == "would lose data"
    assert data["clean"] is False
    assert data["waitsForReplacements"] == 1
    assert data["nodes"] == ["node-a", "node-b"]
    assert data["options"]["ignoreDaemonsets"] is True
    assert {pod["kind"] for pod in data["pods"]} == {"evicted", "ignored", "lost", "pending"}
    rows = p.rows()
    assert len(rows) == len(p.fates)
    assert all(len(row) == len(ROW_HEADERS) for row in rows)
    assert rows[[r[1] for r in rows].index(WEB_B)][:4] == ("default", WEB_B, "node-b", "evicted")


def test_plans_are_deterministic_and_inputs_untouched() -> None:
    nodes, pods, pdbs = cluster()
    before = copy.deepcopy((nodes, pods, pdbs))
    first = plan_drain(nodes, pods, pdbs, ["node-a"], ALL_FLAGS)
    second = plan_drain(nodes, list(reversed(pods)), pdbs, ["node-a"], ALL_FLAGS)
    assert first == second
    assert (nodes, pods, pdbs) == before


# --- kubectl's and the apiserver's own words, as real outputs show them ---------------------


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("kubectl-drain-no-controller-error.new-wording.txt", UNMANAGED_FATAL),
        ("kubectl-drain-no-controller-error.v1.25.txt", UNMANAGED_FATAL_LEGACY),
        ("kubectl-drain-pdb-retry.modern.txt", EVICTION_REFUSED),
    ],
)
def test_messages_match_real_kubectl_output(fixture: str, message: str) -> None:
    assert message in (OUTPUTS / fixture).read_text()


def test_local_storage_message_is_the_renamed_flag_of_the_v1_16_wording() -> None:
    old = (OUTPUTS / "kubectl-drain-local-storage-error.v1.16-era.txt").read_text()
    assert LOCAL_STORAGE_FATAL.replace("--delete-emptydir-data", "--delete-local-data") in old


# --- invariants on random clusters ----------------------------------------------------------


@st.composite
def random_cluster(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    names = [f"n{i}" for i in range(draw(st.integers(2, 5)))]
    nodes = []
    for name in names:
        node: dict[str, Any] = {
            "metadata": {"name": name, "labels": {"zone": draw(st.sampled_from(["a", "b"]))}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": str(draw(st.integers(1, 4))), "pods": "4"},
                "conditions": [
                    {"type": "Ready", "status": draw(st.sampled_from(["True", "False"]))}
                ],
            },
        }
        if draw(st.booleans()):
            node["spec"]["taints"] = [{"key": "t", "value": "", "effect": "NoSchedule"}]
        nodes.append(node)
    pods = []
    for i in range(draw(st.integers(0, 10))):
        spec: dict[str, Any] = {
            "nodeName": draw(st.sampled_from(names)),
            "containers": [
                {"name": "c", "resources": {"requests": {"cpu": f"{draw(st.integers(0, 1500))}m"}}}
            ],
        }
        if draw(st.booleans()):
            spec["tolerations"] = [{"key": "t", "operator": "Exists"}]
        if draw(st.booleans()):
            spec["nodeSelector"] = {"zone": draw(st.sampled_from(["a", "b"]))}
        owners = (
            [{"kind": "ReplicaSet", "name": "rs", "controller": True}]
            if draw(st.booleans())
            else []
        )
        pods.append(
            {
                "metadata": {"name": f"p{i}", "namespace": "default", "ownerReferences": owners},
                "spec": spec,
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            }
        )
    drain = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
    return nodes, pods, drain


@settings(max_examples=200, deadline=None)
@given(random_cluster(), st.booleans())
def test_plan_invariants(cluster_: Any, force: bool) -> None:
    nodes, pods, drain = cluster_
    p = plan_drain(nodes, pods, [], drain, DrainOptions(force=force))
    assert p == plan_drain(nodes, list(reversed(pods)), [], drain, DrainOptions(force=force))
    assert {(f.namespace, f.name) for f in p.fates} == {
        ("default", q["metadata"]["name"]) for q in pods if q["spec"]["nodeName"] in drain
    }
    alloc = {n["metadata"]["name"]: int(n["status"]["allocatable"]["cpu"]) * 1000 for n in nodes}
    load = {name: 0 for name in alloc}
    count = {name: 0 for name in alloc}
    for q in pods:
        load[q["spec"]["nodeName"]] += int(
            q["spec"]["containers"][0]["resources"]["requests"]["cpu"][:-1]
        )
        count[q["spec"]["nodeName"]] += 1
    before = dict(load)
    for f in p.fates:
        if f.target is not None:
            assert f.target not in drain
            assert f.target in f.candidates
            q = pod_named(pods, f.name)
            load[f.target] += int(q["spec"]["containers"][0]["resources"]["requests"]["cpu"][:-1])
            count[f.target] += 1
            target = next(n for n in nodes if n["metadata"]["name"] == f.target)
            assert target["status"]["conditions"][0]["status"] == "True"
            if target["spec"].get("taints"):
                assert q["spec"].get("tolerations")
        if f.kind is FateKind.FAILS:
            assert not force and f.flags == ("--force",)
        if f.kind is FateKind.LOST:
            assert force
        assert (f.kind is FateKind.PENDING) is (
            f.kind not in (FateKind.FAILS, FateKind.LOST) and f.target is None
        )
    for name in alloc:
        if load[name] != before[name]:
            assert load[name] <= alloc[name]
            assert count[name] <= 4
    assert p.clean is all(f.kind is FateKind.EVICTED for f in p.fates)


@settings(max_examples=200, deadline=None)
@given(random_cluster(), st.integers(0, 4), st.booleans())
def test_budget_invariants(cluster_: Any, min_available: int, force: bool) -> None:
    """Every pod is in one budget; evictions beyond what it allows now each wait for an earlier
    replacement, and a refusal only happens when nothing can free the budget any more."""
    nodes, pods, drain = cluster_
    for q in pods:
        q["metadata"]["labels"] = {"app": "x"}
    running = len(pods)
    pdb = {
        "metadata": {"name": "x", "namespace": "default"},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": "x"}}},
        "status": {
            "currentHealthy": running,
            "desiredHealthy": min_available,
            "expectedPods": running,
            "disruptionsAllowed": max(0, running - min_available),
        },
    }
    p = plan_drain(nodes, pods, [pdb], drain, DrainOptions(force=force))
    allowed = max(0, running - min_available)
    through = [f for f in p.fates if f.pdb and f.kind is not FateKind.BLOCKED]
    waited = [f for f in through if f.waits]
    assert len(through) - len(waited) <= allowed
    assert not waited or allowed > 0
    freed = 0
    for f in p.fates:
        if f.kind is FateKind.FAILS or not f.pdb:
            continue
        if f.kind is FateKind.BLOCKED:
            # blocked: nothing evicted so far can still free the budget
            assert freed == 0
            assert allowed == 0 or len(through) - len(waited) == allowed
            continue
        if f.waits:
            assert freed > 0
            freed -= 1
        if f.target is not None:
            freed += 1
    assert p.waits_for_replacements == len(waited)
    if Verdict.BLOCKED not in p.verdicts and not {f.kind for f in p.fates} - {FateKind.EVICTED}:
        assert p.clean
