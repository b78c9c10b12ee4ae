"""kubectl command builders, run on a control-plane node with the admin kubeconfig.

Results are read back rather than trusted: real kubectl can exit 0 from `cordon` or `drain`
when its PATCH failed, so callers check `.spec.unschedulable` afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from nodeops.cmd import Cmd, cmd
from nodeops.drainplan import DrainOptions
from nodeops.errors import NodeopsError
from nodeops.node import check_node_name

ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"

# What a drain plan needs, fetched in one request: kubectl returns one List of mixed kinds.
DRAIN_INPUT_KINDS = ("nodes", "pods", "poddisruptionbudgets", "daemonsets")


def kubectl(*args: str, kubeconfig: str = ADMIN_KUBECONFIG) -> Cmd:
    """`kubectl --kubeconfig ADMIN ARGS…`, as root (admin.conf is root-only)."""
    return cmd("kubectl", f"--kubeconfig={kubeconfig}", *args, sudo=True)


def get_json(kinds: Sequence[str], *, all_namespaces: bool = True) -> Cmd:
    """`kubectl get KIND,KIND… -o json`, across namespaces unless told otherwise."""
    scope = ["--all-namespaces"] if all_namespaces else []
    return kubectl("get", ",".join(kinds), *scope, "-o", "json")


def cordon(node: str) -> Cmd:
    """Mark a node unschedulable."""
    return kubectl("cordon", "--", check_node_name(node))


def uncordon(node: str) -> Cmd:
    """Mark a node schedulable again."""
    return kubectl("uncordon", "--", check_node_name(node))


def drain(node: str, options: DrainOptions, *, timeout_seconds: int) -> Cmd:
    """`kubectl drain` with the plan's options and a finite timeout (never wait forever)."""
    if timeout_seconds <= 0:
        raise NodeopsError(f"a drain needs a positive timeout, not {timeout_seconds}")
    flags = [f"--timeout={timeout_seconds}s"]
    if options.ignore_daemonsets:
        flags.append("--ignore-daemonsets")
    if options.delete_emptydir_data:
        flags.append("--delete-emptydir-data")
    if options.force:
        flags.append("--force")
    if options.disable_eviction:
        flags.append("--disable-eviction")
    if options.pod_selector:
        flags.append(f"--pod-selector={options.pod_selector}")
    return kubectl("drain", *flags, "--", check_node_name(node))


def split_kinds(list_json: str) -> dict[str, list[dict[str, Any]]]:
    """Items of a `kubectl get a,b,c -o json` List, grouped by kind (Node, Pod, ...)."""
    try:
        document = json.loads(list_json)
    except json.JSONDecodeError as error:
        raise NodeopsError(f"kubectl did not return JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise NodeopsError("kubectl returned JSON without an `items` list")
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in document["items"]:
        if isinstance(item, dict):
            grouped.setdefault(str(item.get("kind", "")), []).append(item)
    return grouped
