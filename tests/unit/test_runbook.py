"""The runbook: hop, order, batches split by budgets, and every refusal before any change."""

from __future__ import annotations

import json

import pytest

from nodeops.drainplan import DrainOptions, DrainPlan, FateKind, PodFate
from nodeops.errors import NodeopsError
from nodeops.facts import NodeFacts, parse_facts
from nodeops.node import Node
from nodeops.runbook import Refused, parse_max_unavailable, plan_runbook
from nodeops.upgrade.cluster import ClusterState, NodeStatus, StaticPod
from nodeops.versions import Version, VersionError, parse_package_version
from tests.unit.test_facts import DEBIAN_NODE, canned

CURRENT_REPO = [parse_package_version(f"1.29.{p}-1.1") for p in (0, 3, 15)]
REPO_130 = [parse_package_version(f"1.30.{p}-1.1") for p in (0, 1, 2, 3)]


def v(text: str) -> Version:
    major, minor, patch = (int(x) for x in text.split("."))
    return Version(major, minor, patch)


def facts(name: str, version: str = "1.29.3") -> NodeFacts:
    node = dict(DEBIAN_NODE)
    node["packages_dpkg"] = (
        "".join(f"{n}\t{version}-1.1\thi \n" for n in ("kubeadm", "kubelet", "kubectl")),
        0,
    )
    return parse_facts(name, canned(node))


def cluster(
    cp: str = "1.29.3",
    workers: dict[str, str] | None = None,
    ready: dict[str, bool] | None = None,
    cordoned: tuple[str, ...] = (),
) -> tuple[ClusterState, list[Node], dict[str, NodeFacts]]:
    workers = workers if workers is not None else {"w1": "1.29.3", "w2": "1.29.3", "w3": "1.29.3"}
    versions = {"cp1": cp, **workers}
    ready = ready or {}
    nodes = {
        name: NodeStatus(name, ready.get(name, True), name in cordoned, v(ver))
        for name, ver in versions.items()
    }
    pods = [
        StaticPod(component, "cp1", v(cp), True)
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ]
    inventory = [Node("cp1", "192.0.2.10", roles=frozenset({"control-plane"}))] + [
        Node(name, f"192.0.2.{11 + i}") for i, name in enumerate(workers)
    ]
    return ClusterState(nodes, pods), inventory, {n: facts(n, ver) for n, ver in versions.items()}


def safe_drains(names: list[str]) -> DrainPlan:
    return DrainPlan(tuple(names), DrainOptions(ignore_daemonsets=True), ())


def blocked_when_together(names: list[str]) -> DrainPlan:
    kind = FateKind.BLOCKED if len(names) > 1 else FateKind.EVICTED
    fate = PodFate("default", "web-1", names[0], kind, "PodDisruptionBudget web")
    return DrainPlan(tuple(names), DrainOptions(ignore_daemonsets=True), (fate,))


def plan(to: str, **kwargs: object):  # type: ignore[no-untyped-def]
    state, nodes, node_facts = kwargs.pop("world", None) or cluster()  # type: ignore[misc]
    return plan_runbook(
        state=state,
        nodes=nodes,
        facts=node_facts,
        to=to,
        current_repo=kwargs.pop("current_repo", CURRENT_REPO),  # type: ignore[arg-type]
        drain_plan=kwargs.pop("drain_plan", safe_drains),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def test_control_plane_first_with_apply_then_worker_batches() -> None:
    book = plan("1.30", max_unavailable="2")
    assert [(n.name, n.action) for n in book.control_planes] == [("cp1", "apply")]
    assert [[n.name for n in b] for b in book.batches] == [["w1", "w2"], ["w3"]]
    assert book.target is None
    text = book.render("text")
    assert "the latest patch the v1.30 repository serves, read when the hop starts" in text
    assert text.index("cp1") < text.index("w1") < text.index("w3")
    assert "Drain node" in text and "Uncordon node" in text
    # The runbook says when workers stage: ahead of their batch, during the control planes.
    assert "ahead of their batch, while the control planes and earlier batches are upgraded" in (
        text
    )


def test_workers_alone_in_one_batch_stage_in_their_turn() -> None:
    state, nodes, node_facts = cluster(cp="1.30.2")
    only_worker = [n for n in nodes if n.name == "w1"]
    book = plan("1.30", world=(state, only_worker, node_facts), current_repo=REPO_130)
    assert "ahead of their batch" not in book.render("text")
    two = [n for n in nodes if n.name in ("w1", "w2")]
    book = plan(
        "1.30", world=(state, two, node_facts), current_repo=REPO_130, max_unavailable="1"
    )
    assert "ahead of their batch, while earlier batches are cordoned" in book.render("text")


def test_a_named_patch_is_the_target() -> None:
    book = plan("1.30.2")
    assert book.target == v("1.30.2")
    assert "Upgrade from 1.29.3 to 1.30.2" in book.render()


def test_batches_split_until_no_budget_blocks() -> None:
    book = plan("1.30", max_unavailable="100%", drain_plan=blocked_when_together)
    assert [[n.name for n in b] for b in book.batches] == [["w1"], ["w2"], ["w3"]]


def test_percent_and_bad_max_unavailable() -> None:
    assert parse_max_unavailable("50%", 4) == 2
    assert parse_max_unavailable("10%", 4) == 1
    assert parse_max_unavailable("3", 4) == 3
    for bad in ("0", "-1", "x", "0%", "150%", ""):
        with pytest.raises(NodeopsError, match="max-unavailable"):
            parse_max_unavailable(bad, 4)


def test_skipping_a_minor_is_refused() -> None:
    with pytest.raises(Refused, match="one minor at a time"):
        plan("1.31")


def test_downgrade_is_refused() -> None:
    with pytest.raises(Refused, match="downgrades are refused"):
        plan("1.28.5")
    with pytest.raises(Refused, match="downgrades are refused"):
        plan("1.29.1")


@pytest.mark.parametrize(
    "text", ["1.30.2;id", " 1.30.2", "1.030.2", "1.30.2-rc.1", "\uff11.30.2", "$(id)", ""]
)
def test_rejected_version_strings(text: str) -> None:
    with pytest.raises(VersionError):
        plan(text)


def test_target_not_served_in_the_current_repo_is_refused() -> None:
    with pytest.raises(Refused, match=r"serves 1\.29\.0 … 1\.29\.15; 1\.29\.99 is not there"):
        plan("1.29.99")


def test_latest_patch_reads_the_current_repo() -> None:
    book = plan("latest-patch")
    assert book.target == v("1.29.15")


def test_unknown_node_is_refused() -> None:
    state, nodes, node_facts = cluster()
    nodes.append(Node("ghost", "192.0.2.99"))
    with pytest.raises(Refused, match="ghost is in the inventory but not a node of the cluster"):
        plan("1.30", world=(state, nodes, node_facts))


def test_worker_refused_while_the_control_plane_is_not_ahead() -> None:
    state, nodes, node_facts = cluster()
    only_worker = [n for n in nodes if n.name == "w1"]
    with pytest.raises(Refused, match="w1: the control plane is not ahead of it"):
        plan("1.30.2", world=(state, only_worker, node_facts))


def test_worker_follows_an_upgraded_control_plane() -> None:
    state, nodes, node_facts = cluster(cp="1.30.2")
    only_worker = [n for n in nodes if n.name == "w1"]
    book = plan("1.30", world=(state, only_worker, node_facts), current_repo=REPO_130)
    assert book.target == v("1.30.2") and book.control_planes == ()
    assert [[n.name for n in b] for b in book.batches] == [["w1"]]


def test_not_ready_node_stops_everything() -> None:
    with pytest.raises(Refused, match="node w2 is NotReady"):
        plan("1.30", world=cluster(ready={"w2": False}))


def test_nodes_at_target_are_skipped_and_a_second_run_plans_nothing() -> None:
    world = cluster(cp="1.30.2", workers={"w1": "1.30.2"})
    world[0].static_pods[:] = [
        StaticPod(c, "cp1", v("1.30.2"), True)
        for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ]
    book = plan("1.30.2", world=world, current_repo=REPO_130)
    assert book.empty
    assert {n.name for n in book.skipped} == {"cp1", "w1"}
    assert "Nothing to do" in book.render()


def test_a_resumed_run_gives_back_a_node_at_target_it_cordoned_itself() -> None:
    def at_target(cordoned: tuple[str, ...]):  # type: ignore[no-untyped-def]
        world = cluster(cp="1.30.2", workers={"w1": "1.30.2", "w2": "1.29.3"}, cordoned=cordoned)
        world[0].static_pods[:] = [
            StaticPod(c, "cp1", v("1.30.2"), True)
            for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
        ]
        return world

    # w1 reached 1.30.2 but the run stopped before its uncordon: the journal says nodeops
    # cordoned it, so the resumed run takes it again (its steps then only uncordon it).
    book = plan(
        "1.30.2",
        world=at_target(("w1",)),
        current_repo=REPO_130,
        cordoned_by_run=frozenset({"w1"}),
    )
    assert [n.name for n in book.nodes] == ["w1", "w2"]
    assert not any(n.cordoned_before for n in book.nodes)
    assert "stays cordoned" not in book.render()
    # An operator's cordon on a node at target: skipped, left alone.
    book = plan("1.30.2", world=at_target(("w1",)), current_repo=REPO_130)
    assert [n.name for n in book.nodes] == ["w2"] and "w1" in {n.name for n in book.skipped}


def test_drain_needing_force_is_refused_up_front() -> None:
    def needs_force(names: list[str]) -> DrainPlan:
        fate = PodFate(
            "default", "standalone", names[0], FateKind.FAILS, "no controller", flags=("--force",)
        )
        return DrainPlan(tuple(names), DrainOptions(ignore_daemonsets=True), (fate,))

    with pytest.raises(Refused, match="kubectl drain would refuse without --force"):
        plan("1.30", drain_plan=needs_force)


def test_operator_cordoned_node_is_marked_in_the_runbook() -> None:
    book = plan("1.30", world=cluster(cordoned=("w2",)))
    assert "w2 [worker, now v1.29.3, kubeadm upgrade node] (cordoned before the run" in (
        book.render()
    )


def test_json_and_markdown() -> None:
    book = plan("1.30.2")
    data = json.loads(book.render("json"))
    assert data["target"] == "1.30.2"
    assert data["control_planes"][0]["kubeadm"] == "upgrade apply"
    assert data["steps_per_node"][0] == "Check node"
    assert book.render("markdown").startswith("# Upgrade from 1.29.3 to 1.30.2")


def test_a_node_blocked_even_alone_is_noted_not_refused() -> None:
    def always_blocked(names: list[str]) -> DrainPlan:
        fate = PodFate("default", "web-1", names[0], FateKind.BLOCKED, "PodDisruptionBudget web")
        return DrainPlan(tuple(names), DrainOptions(ignore_daemonsets=True), (fate,))

    book = plan("1.30", drain_plan=always_blocked, max_unavailable="3")
    assert [[n.name for n in b] for b in book.batches] == [["w1"], ["w2"], ["w3"]]
    assert "draining w1 is blocked by a PodDisruptionBudget right now" in book.render()


def test_upgrade_cluster_goes_one_minor_at_a_time_through_later_hops() -> None:
    book = plan("1.31", hops=True)
    assert book.minor == (1, 30) and book.target is None
    assert book.later == ("1.31 (its latest patch)",)
    text = book.render()
    assert "(hop 1 of 2)" in text and "then hop 2: to 1.31 (its latest patch)" in text
    three = plan("1.32.1", hops=True)
    assert three.later == ("1.31 (its latest patch)", "1.32.1")
    assert json.loads(three.render("json"))["later_hops"] == list(three.later)


def test_a_kubelet_more_than_one_minor_behind_is_refused() -> None:
    world = cluster(cp="1.30.2", workers={"w1": "1.29.3", "w2": "1.30.2"})
    with pytest.raises(Refused, match=r"w1: its kubelet \(1\.29\.3\) is more than one minor"):
        plan("1.31", world=world, current_repo=REPO_130)
