"""Scheduling predicates, pure: taints vs tolerations, node selectors and affinity, label selectors.

Each function follows the upstream code named in its docstring (k8s.io/api core/v1
toleration.go, k8s.io/component-helpers scheduling/corev1 nodeaffinity, apimachinery labels).
Objects are the plain dicts `kubectl get -o json` prints.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "NO_EXECUTE",
    "NO_SCHEDULE",
    "PREFER_NO_SCHEDULE",
    "SelectorError",
    "label_selector_matches",
    "matches_node_selector_term",
    "matches_required_affinity",
    "parse_selector",
    "preferred_affinity_score",
    "requirement_matches",
    "taints_tolerated",
    "tolerates",
    "toleration_tolerates",
    "untolerated_taint",
]

NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"

Obj = Mapping[str, Any]
_INT64 = re.compile(r"[+-]?[0-9]+", re.ASCII)


class SelectorError(ValueError):
    """A label selector string that cannot be parsed."""


# --- taints and tolerations ------------------------------------------------------------------


def toleration_tolerates(toleration: Obj, taint: Obj) -> bool:
    """One toleration against one taint, as core/v1 Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return operator == "Exists"


def tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    """Whether any of the tolerations tolerates the taint."""
    return any(toleration_tolerates(t, taint) for t in tolerations)


def untolerated_taint(
    tolerations: Sequence[Obj],
    taints: Iterable[Obj],
    effects: Iterable[str] = (NO_SCHEDULE, NO_EXECUTE),
) -> Obj | None:
    """First taint with one of `effects` that nothing tolerates (FindMatchingUntoleratedTaint)."""
    wanted = frozenset(effects)
    for taint in taints:
        if taint.get("effect") in wanted and not tolerates(tolerations, taint):
            return taint
    return None


def taints_tolerated(
    tolerations: Sequence[Obj],
    taints: Iterable[Obj],
    effects: Iterable[str] = (NO_SCHEDULE, NO_EXECUTE),
) -> bool:
    """Whether every taint with one of `effects` is tolerated (PreferNoSchedule is not a filter)."""
    return untolerated_taint(tolerations, taints, effects) is None


# --- label requirements (apimachinery labels.Requirement) ------------------------------------


def _int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), or None when Go would return an error."""
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def _requirement_valid(operator: str, values: Sequence[str]) -> bool:
    """labels.NewRequirement's checks on operator and values (key syntax is not re-validated)."""
    if operator in ("In", "NotIn"):
        return len(values) > 0
    if operator in ("Exists", "DoesNotExist"):
        return len(values) == 0
    if operator in ("Gt", "Lt"):
        return len(values) == 1 and _int64(values[0]) is not None
    return False


def requirement_matches(key: str, operator: str, values: Sequence[str], labels: Obj) -> bool:
    """One requirement against labels; an invalid requirement matches nothing."""
    if not _requirement_valid(operator, values):
        return False
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if not present:
        return False
    have = _int64(str(labels[key]))
    want = _int64(values[0])
    if have is None or want is None:
        return False
    return have > want if operator == "Gt" else have < want


# --- node selector terms and affinity --------------------------------------------------------


def _term_valid(term: Obj) -> bool:
    for expr in term.get("matchExpressions") or ():
        if not _requirement_valid(expr.get("operator", ""), expr.get("values") or ()):
            return False
    for expr in term.get("matchFields") or ():
        if expr.get("operator") not in ("In", "NotIn") or len(expr.get("values") or ()) != 1:
            return False
    return True


def matches_node_selector_term(term: Obj, labels: Obj, node_name: str | None = None) -> bool:
    """A NodeSelectorTerm: expressions ANDed; empty or invalid terms match nothing.

    matchFields (only `metadata.name`) is checked when `node_name` is given, as upstream
    skips field matching for a node without a name.
    """
    exprs = term.get("matchExpressions") or ()
    fields = term.get("matchFields") or ()
    if not exprs and not fields:
        return False
    if not _term_valid(term):
        return False
    for expr in exprs:
        if not requirement_matches(
            expr.get("key", ""), expr["operator"], expr.get("values") or (), labels
        ):
            return False
    if node_name:
        have = {"metadata.name": node_name}
        for expr in fields:
            actual = have.get(expr.get("key", ""))
            equal = actual == expr["values"][0]
            if (expr["operator"] == "In") != equal:
                return False
    return True


def _node_labels(node: Obj) -> Obj:
    labels: Obj = (node.get("metadata") or {}).get("labels") or {}
    return labels


def _node_name(node: Obj) -> str:
    return str((node.get("metadata") or {}).get("name") or "")


def _node_affinity(pod: Obj) -> Obj:
    affinity: Obj = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    return affinity


def matches_required_affinity(pod: Obj, node: Obj) -> bool:
    """nodeSelector AND the required nodeAffinity terms, ORed (GetRequiredNodeAffinity)."""
    labels = _node_labels(node)
    selector: Obj = (pod.get("spec") or {}).get("nodeSelector") or {}
    for key, value in selector.items():
        if labels.get(key) != value:
            return False
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    name = _node_name(node)
    return any(
        matches_node_selector_term(term, labels, name)
        for term in required.get("nodeSelectorTerms") or ()
    )


def preferred_affinity_score(pod: Obj, node: Obj) -> int:
    """Sum of the weights of the preferred terms the node matches (NodeAffinity's raw score)."""
    labels = _node_labels(node)
    name = _node_name(node)
    score = 0
    for term in _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or ():
        weight = int(term.get("weight") or 0)
        if weight and matches_node_selector_term(term.get("preference") or {}, labels, name):
            score += weight
    return score


# --- label selectors (metav1.LabelSelector and the --selector string syntax) ----------------


def label_selector_matches(selector: Obj | None, labels: Obj, *, empty_matches: bool) -> bool:
    """A metav1.LabelSelector; `empty_matches` decides what a missing or empty selector selects."""
    if selector is None:
        return False
    match_labels: Obj = selector.get("matchLabels") or {}
    exprs = selector.get("matchExpressions") or ()
    if not match_labels and not exprs:
        return empty_matches
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    for expr in exprs:
        operator = expr.get("operator", "")
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
        if not requirement_matches(expr.get("key", ""), operator, expr.get("values") or (), labels):
            return False
    return True


_SET_REQ = re.compile(r"\s*(!?)\s*([^\s!=<>(),]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*", re.ASCII)
_CMP_REQ = re.compile(r"\s*([^\s!=<>(),]+)\s*(==|=|!=|>|<)\s*([^\s!=<>(),]*)\s*", re.ASCII)


def _split_requirements(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def parse_selector(text: str) -> Callable[[Obj], bool]:
    """Parse a `-l/--pod-selector` string (`a=b,c!=d,e in (f,g),!h,i>1`) into a predicate."""
    if not text.strip():
        return lambda labels: True
    reqs: list[tuple[str, str, tuple[str, ...]]] = []
    for part in _split_requirements(text):
        cmp = _CMP_REQ.fullmatch(part)
        if cmp:
            key, op, value = cmp.groups()
            operator = {"=": "In", "==": "In", "!=": "NotIn", ">": "Gt", "<": "Lt"}[op]
            reqs.append((key, operator, (value,)))
            continue
        setreq = _SET_REQ.fullmatch(part)
        if setreq is None or (setreq.group(1) and setreq.group(3)):
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
        neg, key, op, values = setreq.groups()
        if op:
            vals = tuple(v.strip() for v in values.split(",")) if values.strip() else ()
            reqs.append((key, "In" if op == "in" else "NotIn", vals))
        else:
            reqs.append((key, "DoesNotExist" if neg else "Exists", ()))
    for key, operator, values in reqs:
        if not _requirement_valid(operator, values):
            raise SelectorError(f"invalid requirement {key} {operator} {list(values)}")
    frozen = tuple(reqs)
    return lambda labels: all(requirement_matches(k, o, v, labels) for k, o, v in frozen)
