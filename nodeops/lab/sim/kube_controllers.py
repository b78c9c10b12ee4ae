"""Pure parts of the controllers: hashes, pod templates, DaemonSet eligibility, PDB arithmetic."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from nodeops.lab.sim.kube_objects import meta, pod_ready
from nodeops.lab.sim.kube_sched import matches_node_affinity, untolerated

Obj = dict[str, Any]
_SAFE = "bcdfghjklmnpqrstvwxz2456789"

# What the DaemonSet controller adds to every daemon pod (AddOrUpdateDaemonPodTolerations).
DAEMON_TOLERATIONS: tuple[Obj, ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


def fnv32a(data: bytes) -> int:
    """FNV-1a, 32 bits (what controller.ComputeHash feeds the template through)."""
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: map each character onto the vowel-free alphabet."""
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in text)


def template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """pod-template-hash / controller-revision-hash of a pod template."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(fnv32a(data)))


def pod_from_template(
    template: Mapping[str, Any], owner_ref: Obj, generate_name: str, extra_labels: Mapping[str, str]
) -> Obj:
    """A pod to create from a controller's template."""
    tmeta = copy.deepcopy(dict(template.get("metadata") or {}))
    labels = {**(tmeta.get("labels") or {}), **extra_labels}
    metadata: Obj = {
        "generateName": generate_name,
        "labels": labels,
        "ownerReferences": [owner_ref],
    }
    if tmeta.get("annotations"):
        metadata["annotations"] = tmeta["annotations"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": copy.deepcopy(dict(template.get("spec") or {})),
    }


def with_daemon_tolerations(spec: Obj) -> Obj:
    """A pod spec with the DaemonSet tolerations added (once)."""
    result = copy.deepcopy(spec)
    tolerations = result.setdefault("tolerations", [])
    for extra in DAEMON_TOLERATIONS:
        if not any(
            t.get("key") == extra["key"] and t.get("effect") == extra["effect"] for t in tolerations
        ):
            tolerations.append(dict(extra))
    return result


def daemon_should_run(ds: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """Whether a DaemonSet wants a pod on `node` (selector, affinity, untolerated taints)."""
    template = (ds.get("spec") or {}).get("template") or {}
    pod = {"spec": with_daemon_tolerations(dict(template.get("spec") or {}))}
    if not matches_node_affinity(pod, node):
        return False
    taints = (node.get("spec") or {}).get("taints") or []
    return untolerated(taints, pod["spec"]["tolerations"], {"NoSchedule", "NoExecute"}) is None


def node_affinity_for(node_name: str, spec: Obj) -> Obj:
    """The spec with a required node affinity to `node_name` (matchFields metadata.name)."""
    result = copy.deepcopy(spec)
    affinity = result.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
        ]
    }
    return result


def scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        amount = int(text[:-1]) * total / 100
        return math.ceil(amount) if round_up else math.floor(amount)
    return int(text)


def pdb_status(
    pdb: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    expected_from_controllers: int,
    now_seconds: float,
    disrupted_since: Mapping[str, float],
) -> Obj:
    """currentHealthy, desiredHealthy, expectedPods and disruptionsAllowed of a PDB.

    `pods` are the pods its selector matches; `expected_from_controllers` the summed scale of
    their controllers (used for maxUnavailable and percentage minAvailable, as upstream).
    """
    spec = pdb.get("spec") or {}
    healthy = 0
    for pod in pods:
        if meta(pod).get("deletionTimestamp"):
            continue
        since = disrupted_since.get(meta(pod).get("name", ""))
        if since is not None and now_seconds - since < 120:
            continue
        if pod_ready(pod):
            healthy += 1
    if spec.get("maxUnavailable") is not None:
        expected = expected_from_controllers
        desired = max(0, expected - scaled_value(spec["maxUnavailable"], expected, round_up=True))
    elif isinstance(spec.get("minAvailable"), str) and str(spec["minAvailable"]).endswith("%"):
        expected = expected_from_controllers
        desired = scaled_value(spec["minAvailable"], expected, round_up=True)
    else:
        expected = len(pods)
        desired = int(spec.get("minAvailable") or 0)
    return {
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "disruptionsAllowed": max(0, healthy - desired) if expected > 0 or desired == 0 else 0,
    }
