"""kubectl builders and the drain-plan task's reading of one kubectl List."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nodeops import kube
from nodeops.drainplan import DrainOptions
from nodeops.errors import InventoryError, NodeopsError
from nodeops.fanout import Sessions
from nodeops.inventory import load_inventory
from nodeops.node import Node
from nodeops.tasks import drain as drain_task
from nodeops.transport import FakeTransport, SSHOptions

CLUSTER = Path(__file__).parent / "data" / "drainplan" / "cluster.json"


def test_kubectl_runs_as_root_with_the_admin_kubeconfig() -> None:
    command = kube.get_json(["nodes", "pods"])
    assert command.sudo
    assert command.render(as_root=True) == (
        "kubectl --kubeconfig=/etc/kubernetes/admin.conf get nodes,pods --all-namespaces -o json"
    )


def test_drain_flags_follow_the_options_and_always_time_out() -> None:
    options = DrainOptions(ignore_daemonsets=True, delete_emptydir_data=True, pod_selector="a=b")
    rendered = kube.drain("worker1", options, timeout_seconds=300).render(as_root=True)
    assert rendered == (
        "kubectl --kubeconfig=/etc/kubernetes/admin.conf drain --timeout=300s "
        "--ignore-daemonsets --delete-emptydir-data --pod-selector=a=b -- worker1"
    )
    with pytest.raises(NodeopsError):
        kube.drain("worker1", options, timeout_seconds=0)


@pytest.mark.parametrize("hostile", ["w1;id", "$(id)", "-oProxyCommand=x", "--all"])
def test_node_names_are_validated_before_any_command(hostile: str) -> None:
    for build in (kube.cordon, kube.uncordon):
        with pytest.raises(InventoryError):
            build(hostile)
    with pytest.raises(InventoryError):
        kube.drain(hostile, DrainOptions(), timeout_seconds=60)


def test_split_kinds_groups_a_mixed_list() -> None:
    grouped = kube.split_kinds(CLUSTER.read_text())
    assert set(grouped) >= {"Node", "Pod"}
    with pytest.raises(NodeopsError, match="did not return JSON"):
        kube.split_kinds("error: the server doesn't have a resource type")


def test_drain_plan_reads_one_list_from_the_first_control_plane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        "nodes:\n  w0: {address: 10.0.0.9, roles: [worker]}\n"
        "  cp1: {address: 10.0.0.1, roles: [control-plane]}\n"
    )
    used: list[str] = []

    def factory(node: Node, options: SSHOptions) -> FakeTransport:
        used.append(node.name)
        return FakeTransport(node, rules=[("get nodes,pods", (0, CLUSTER.read_text(), ""))])

    def sessions(options: SSHOptions) -> Sessions:
        return Sessions(options, factory=factory)  # type: ignore[arg-type]

    monkeypatch.setattr(drain_task, "Sessions", sessions)
    nodes = [
        n["metadata"]["name"]
        for n in json.loads(CLUSTER.read_text())["items"]
        if n["kind"] == "Node"
    ]
    config: dict[str, Any] = {}
    plan = drain_task.fetch_plan(
        load_inventory(inventory), config, None, [nodes[0]], DrainOptions(ignore_daemonsets=True)
    )
    assert used == ["cp1"]
    assert plan.nodes == (nodes[0],)
    assert plan.fates, "the sample cluster has pods on its first node"
