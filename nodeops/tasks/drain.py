"""Tasks about draining: say what a drain would do before anything is touched."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke.exceptions import Exit
from invoke.tasks import task

from nodeops import report
from nodeops.errors import NodeopsError
from nodeops.settings import open_inventory, ssh_options
from nodeops.tasks.common import EXIT_NODE_FAILED, SELECT_HELP, Sessions, reported

# Task bodies import what they use: `nodeops --help` must not pay for paramiko and the planner.
if TYPE_CHECKING:
    from nodeops.drainplan import DrainOptions, DrainPlan
    from nodeops.inventory import Inventory
    from nodeops.node import Node


def control_plane(inventory: Inventory, via: str | None) -> Node:
    """The node kubectl runs on: --via, else the inventory's first control plane."""
    if via:
        return inventory.node(via)
    for node in inventory.nodes:
        if node.is_control_plane:
            return node
    raise NodeopsError(
        f"{inventory.source}: no node has the control-plane role; name one with --via"
    )


def fetch_plan(
    inventory: Inventory,
    config: Any,
    via: str | None,
    drain: list[str],
    options: DrainOptions,
    *,
    accept_new_host_keys: bool = False,
) -> DrainPlan:
    """Read nodes, pods, budgets and DaemonSets in one kubectl call and plan the drain."""
    from nodeops import kube
    from nodeops.drainplan import plan_drain

    where = control_plane(inventory, via)
    with Sessions(ssh_options(config, inventory, accept_new_host_keys=accept_new_host_keys)) as s:
        result = s.to(where).run(kube.get_json(kube.DRAIN_INPUT_KINDS)).check()
    kinds = kube.split_kinds(result.stdout)
    return plan_drain(
        kinds.get("Node", []),
        kinds.get("Pod", []),
        kinds.get("PodDisruptionBudget", []),
        drain,
        options,
        daemonsets=kinds.get("DaemonSet", []),
    )


@task(
    iterable=["node"],
    help={
        "node": "A node to drain (repeatable: nodes drained together share their budgets).",
        "ignore_daemonsets": "As kubectl's --ignore-daemonsets (on by default, as upgrades drain).",
        "delete_emptydir_data": "As kubectl's --delete-emptydir-data: emptyDir data is lost.",
        "force": "As kubectl's --force: pods without a controller are deleted for good.",
        "pod_selector": "As kubectl's --pod-selector: only drain matching pods.",
        "via": "The control-plane node kubectl runs on (default: the inventory's first).",
        "json": "Print the plan as JSON.",
        "inventory": SELECT_HELP["inventory"],
        "accept_new_host_keys": SELECT_HELP["accept_new_host_keys"],
    },
)
@reported
def drain_plan(
    c: Any,
    node: list[str] | None = None,
    inventory: str | None = None,
    ignore_daemonsets: bool = True,
    delete_emptydir_data: bool = False,
    force: bool = False,
    pod_selector: str = "",
    via: str | None = None,
    json: bool = False,
    accept_new_host_keys: bool = False,
) -> None:
    """Say what draining nodes would do to every pod on them, before anything is touched:
    evicted (and where it can go), ignored, lost, blocked by a PodDisruptionBudget, or left
    Pending. An eviction a budget refuses at first but lets through once an earlier evicted
    pod's replacement is Ready (kubectl retries every 5s) is evicted, marked as waiting: the
    drain is slower, still clean. Read-only. Exits 1 unless the drain would be clean.
    """
    from nodeops.drainplan import ROW_HEADERS, DrainOptions

    if not node:
        raise NodeopsError("name the node(s) to drain with --node")
    options = DrainOptions(
        ignore_daemonsets=ignore_daemonsets,
        delete_emptydir_data=delete_emptydir_data,
        force=force,
        pod_selector=pod_selector,
    )
    inv = open_inventory(c.config, inventory)
    plan = fetch_plan(inv, c.config, via, node, options, accept_new_host_keys=accept_new_host_keys)
    if json:
        report.print_json(plan.to_dict())
    else:
        report.print_table(f"Drain plan for {', '.join(plan.nodes)}", ROW_HEADERS, plan.rows())
        print(f"verdict: {', '.join(v.value for v in plan.verdicts)}")
        if plan.waits_for_replacements:
            print(
                f"slower: {plan.waits_for_replacements} eviction(s) wait for a replacement to be "
                "Ready (kubectl retries every 5s); give kubectl drain a --timeout that allows it"
            )
        if plan.flags_needed:
            print(f"kubectl would refuse without: {' '.join(plan.flags_needed)}")
    if not plan.clean:
        raise Exit(code=EXIT_NODE_FAILED)
