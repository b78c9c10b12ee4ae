"""kubectl taint replaces a node's taint list: the lab's strategic merge must not merge it."""

from __future__ import annotations

from nodeops.lab.sim.kube_patch import strategic_merge_patch


def test_taints_are_replaced_whole_as_upstream_atomic_list() -> None:
    node = {
        "spec": {
            "taints": [
                {"key": "dedicated", "value": "a", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            ]
        }
    }
    # What kubectl taint sends for `dedicated-` when it read both taints.
    unschedulable = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    patch = {"spec": {"taints": [unschedulable]}}
    patched = strategic_merge_patch(node, patch)
    assert patched["spec"]["taints"] == [
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    ]
