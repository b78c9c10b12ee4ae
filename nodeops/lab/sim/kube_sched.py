"""Pure scheduling rules: which nodes fit a pod, how they rank, and upstream's failure message.

Filters run in the default profile's order (NodeUnschedulable, NodeName, TaintToleration,
NodeAffinity, NodeResourcesFit) and a node reports only its first failure, as upstream.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

_SUFFIXES = {
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "P": 1e15, "E": 1e18, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40,
    "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(value: Any) -> float:
    """A resource.Quantity (`100m`, `1Gi`, `2`) as a number of base units."""
    if isinstance(value, int | float):
        return float(value)
    m = _QUANTITY.match(str(value).strip())
    if m is None or m.group(2) not in _SUFFIXES:
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    return float(m.group(1)) * _SUFFIXES[m.group(2)]


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """v1.Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated(
    taints: Iterable[Mapping[str, Any]], tolerations: Sequence[Mapping[str, Any]], effects: set[str]
) -> Mapping[str, Any] | None:
    """The first taint with one of `effects` that no toleration tolerates."""
    for taint in taints:
        if taint.get("effect") in effects and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _expression_matches(expr: Mapping[str, Any], values: Mapping[str, str]) -> bool:
    key, op = expr.get("key", ""), expr.get("operator", "")
    wanted = list(expr.get("values") or [])
    present = key in values
    have = values.get(key, "")
    if op == "In":
        return present and have in wanted
    if op == "NotIn":
        return not present or have not in wanted
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        try:
            number, limit = int(have), int(wanted[0])
        except (ValueError, IndexError):
            return False
        return present and (number > limit if op == "Gt" else number < limit)
    return False


def term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A NodeSelectorTerm: its expressions (labels) and fields (metadata.name) ANDed."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no objects
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    node_fields = {"metadata.name": meta.get("name", "")}
    return all(_expression_matches(e, labels) for e in exprs) and all(
        _expression_matches(f, node_fields) for f in fields
    )


def matches_node_affinity(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """nodeSelector and required node affinity (terms ORed, expressions ANDed)."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if terms is None:
        return True
    return any(term_matches(t, node) for t in terms)


def pod_requests(pod: Mapping[str, Any]) -> dict[str, float]:
    """Requests of the pod: sum over containers, at least the largest init container."""
    spec = pod.get("spec") or {}
    total: dict[str, float] = collections.defaultdict(float)
    for container in spec.get("containers") or []:
        for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] += parse_quantity(value)
    for container in spec.get("initContainers") or []:
        for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] = max(total[name], parse_quantity(value))
    return dict(total)


@dataclass(frozen=True)
class Verdict:
    """Why a node does not fit (empty reason: it fits); `resolvable` by preemption or not."""

    node: str
    reason: str = ""
    resolvable: bool = False


def _assigned(pods: Iterable[Mapping[str, Any]], node: str) -> list[Mapping[str, Any]]:
    return [
        p
        for p in pods
        if (p.get("spec") or {}).get("nodeName") == node
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


def check_node(
    pod: Mapping[str, Any], node: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]
) -> Verdict:
    """Run the filters on one node; the first failure wins."""
    spec = pod.get("spec") or {}
    node_spec = node.get("spec") or {}
    name = (node.get("metadata") or {}).get("name", "")
    tolerations = spec.get("tolerations") or []
    taints = node_spec.get("taints") or []
    if node_spec.get("unschedulable") and not any(
        tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}) for t in tolerations
    ):
        return Verdict(name, "node(s) were unschedulable")
    if spec.get("nodeName") and spec["nodeName"] != name:
        return Verdict(name, "node(s) didn't match the requested node name")
    taint = untolerated(taints, tolerations, {"NoSchedule", "NoExecute"})
    if taint is not None:
        return Verdict(
            name, f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
        )
    if not matches_node_affinity(pod, node):
        return Verdict(name, "node(s) didn't match Pod's node affinity/selector")
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    assigned = _assigned(pods, name)
    if len(assigned) + 1 > parse_quantity(allocatable.get("pods", 110)):
        return Verdict(name, "Too many pods", resolvable=True)
    wanted = pod_requests(pod)
    used: dict[str, float] = collections.defaultdict(float)
    for other in assigned:
        for key, value in pod_requests(other).items():
            used[key] += value
    for resource in sorted(wanted):
        if resource not in allocatable and wanted[resource] == 0:
            continue
        free = parse_quantity(allocatable.get(resource, 0)) - used[resource]
        if wanted[resource] > free + 1e-9:
            return Verdict(name, f"Insufficient {resource}", resolvable=True)
    return Verdict(name)


def score_node(
    pod: Mapping[str, Any], node: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]
) -> float:
    """Higher is better: preferred affinity weights, no PreferNoSchedule taints, fewer pods."""
    spec = pod.get("spec") or {}
    score = 0.0
    preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"
    ) or []
    for item in preferred:
        if term_matches(item.get("preference") or {}, node):
            score += float(item.get("weight", 0)) * 100
    taints = (node.get("spec") or {}).get("taints") or []
    tolerations = spec.get("tolerations") or []
    for taint in taints:
        if taint.get("effect") == "PreferNoSchedule" and not any(
            tolerates(t, taint) for t in tolerations
        ):
            score -= 1000
    name = (node.get("metadata") or {}).get("name", "")
    score -= len(_assigned(pods, name))
    return score


def choose_node(
    pod: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]
) -> tuple[str | None, list[Verdict]]:
    """The best feasible node's name (None when none fits) and every node's verdict."""
    verdicts = [check_node(pod, node, pods) for node in nodes]
    feasible = [n for n, v in zip(nodes, verdicts, strict=True) if not v.reason]
    if not feasible:
        return None, verdicts
    best = max(feasible, key=lambda n: (score_node(pod, n, pods), _neg_name(n)))
    return (best.get("metadata") or {}).get("name"), verdicts


def _neg_name(node: Mapping[str, Any]) -> tuple[int, ...]:
    # Ties go to the first name in sort order.
    return tuple(-ord(c) for c in (node.get("metadata") or {}).get("name", ""))


def _summary(counts: Mapping[str, int]) -> str:
    return ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))


def failure_message(verdicts: Sequence[Verdict]) -> str:
    """framework.FitError.Error(): the counts by reason, then the preemption summary."""
    total = len(verdicts)
    if total == 0:
        return "no nodes available to schedule pods"
    reasons = collections.Counter(v.reason for v in verdicts if v.reason)
    preemption: collections.Counter[str] = collections.Counter()
    for verdict in verdicts:
        if verdict.resolvable:
            preemption["No preemption victims found for incoming pod"] += 1
        else:
            preemption["Preemption is not helpful for scheduling"] += 1
    return (
        f"0/{total} nodes are available: {_summary(reasons)}."
        f" preemption: 0/{total} nodes are available: {_summary(preemption)}."
    )
