"""What `kubectl drain` would do to each pod on the nodes drained together, and why."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fractions import Fraction
from typing import Any

from nodeops.drainplan.matching import (
    PREFER_NO_SCHEDULE,
    label_selector_matches,
    matches_required_affinity,
    parse_selector,
    preferred_affinity_score,
    tolerates,
    untolerated_taint,
)
from nodeops.drainplan.resources import (
    insufficient_resources,
    node_allocatable,
    pod_requests,
    sum_requests,
)
from nodeops.errors import NodeopsError

__all__ = [
    "DAEMONSET_FATAL",
    "EVICTION_REFUSED",
    "LOCAL_STORAGE_FATAL",
    "UNMANAGED_FATAL",
    "UNMANAGED_FATAL_LEGACY",
    "DrainOptions",
    "DrainPlan",
    "DrainPlanError",
    "FateKind",
    "PdbImpact",
    "PodFate",
    "Verdict",
    "plan_drain",
]

Obj = Mapping[str, Any]

# kubectl's own wording (k8s.io/kubectl/pkg/drain/filters.go); errors() prefixes "cannot delete ".
DAEMONSET_FATAL = "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
LOCAL_STORAGE_FATAL = (
    "cannot delete Pods with local storage (use --delete-emptydir-data to override)"
)
UNMANAGED_FATAL = "cannot delete Pods that declare no controller (use --force to override)"
# kubectl before the kubectl#1467 fix said "Pods declare no controller".
UNMANAGED_FATAL_LEGACY = "cannot delete Pods declare no controller (use --force to override)"
# The eviction subresource's 429 (pkg/registry/core/pod/storage/eviction.go).
EVICTION_REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
MULTIPLE_PDBS = (
    "This pod has more than one PodDisruptionBudget, "
    "which the eviction subresource does not support."
)
_FINISHED = ("Succeeded", "Failed")
_UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class DrainPlanError(NodeopsError):
    """A drain plan that cannot be computed: an unknown node or an invalid pod selector."""


class FateKind(StrEnum):
    """What happens to one pod."""

    IGNORED = "ignored"
    EVICTED = "evicted"
    LOST = "lost"
    BLOCKED = "blocked"
    PENDING = "pending"
    FAILS = "fails"


class Verdict(StrEnum):
    """The drain as a whole, worst first; NEEDS_FORCE covers every missing kubectl flag."""

    NEEDS_FORCE = "needs force"
    BLOCKED = "blocked"
    WOULD_LOSE_DATA = "would lose data"
    WOULD_LEAVE_PENDING = "would leave pods Pending"
    SAFE = "safe"


@dataclass(frozen=True)
class DrainOptions:
    """kubectl drain's flags that decide what happens to pods."""

    ignore_daemonsets: bool = False
    delete_emptydir_data: bool = False
    force: bool = False
    disable_eviction: bool = False
    pod_selector: str = ""


@dataclass(frozen=True)
class PdbImpact:
    """A budget's status, the disruptions this plan takes from it and the evictions it refuses.

    `disruptions` counts every eviction it lets through, `waited` those of them that first wait
    for an earlier evicted pod's replacement to be Ready, `refused` those it never lets through.
    """

    namespace: str
    name: str
    disruptions_allowed: int
    current_healthy: int
    desired_healthy: int
    expected_pods: int
    disruptions: int = 0
    refused: int = 0
    waited: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "disruptionsAllowed": self.disruptions_allowed,
            "currentHealthy": self.current_healthy,
            "desiredHealthy": self.desired_healthy,
            "expectedPods": self.expected_pods,
            "disruptions": self.disruptions,
            "refused": self.refused,
            "waited": self.waited,
        }


@dataclass(frozen=True)
class PodFate:
    """What the drain does to one pod, why, and where it could go.

    `candidates` are the nodes that could take its replacement, best first; `target` is the
    one this plan puts it on; `pdb` names the budget(s) that cover it and `budget` is that
    budget as this pod's eviction leaves it (its disruptions and refusals so far). `waits` is
    True when the budget lets the eviction through only after an earlier evicted pod's
    replacement is Ready (kubectl retries the 429 every 5s meanwhile): slower, not blocked.
    """

    namespace: str
    name: str
    node: str
    kind: FateKind
    reason: str
    flags: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()
    target: str | None = None
    pdb: str | None = None
    budget: PdbImpact | None = None
    data_loss: tuple[str, ...] = ()
    waits: bool = False

    @property
    def flag(self) -> str | None:
        """The first kubectl flag the drain needs for this pod, if any."""
        return self.flags[0] if self.flags else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "node": self.node,
            "kind": self.kind.value,
            "reason": self.reason,
            "flags": list(self.flags),
            "candidates": list(self.candidates),
            "target": self.target,
            "pdb": self.pdb,
            "budget": self.budget.to_dict() if self.budget else None,
            "dataLoss": list(self.data_loss),
            "waitsForReplacement": self.waits,
        }


ROW_HEADERS = ("NAMESPACE", "POD", "NODE", "FATE", "TARGET", "REASON")


@dataclass(frozen=True)
class DrainPlan:
    """Every pod's fate for draining `nodes` together, and the verdict."""

    nodes: tuple[str, ...]
    options: DrainOptions
    fates: tuple[PodFate, ...]
    pdbs: tuple[PdbImpact, ...] = field(default=())

    @property
    def verdicts(self) -> tuple[Verdict, ...]:
        """Every problem the plan has, worst first; (SAFE,) when there is none."""
        kinds = {f.kind for f in self.fates}
        found = []
        if FateKind.FAILS in kinds:
            found.append(Verdict.NEEDS_FORCE)
        if FateKind.BLOCKED in kinds:
            found.append(Verdict.BLOCKED)
        if FateKind.LOST in kinds or any(f.data_loss for f in self.fates):
            found.append(Verdict.WOULD_LOSE_DATA)
        if FateKind.PENDING in kinds:
            found.append(Verdict.WOULD_LEAVE_PENDING)
        return tuple(found) or (Verdict.SAFE,)

    @property
    def verdict(self) -> Verdict:
        """The worst problem, or SAFE."""
        return self.verdicts[0]

    @property
    def clean(self) -> bool:
        """True when the drain would evict everything it touches and every pod lands elsewhere."""
        return self.verdict is Verdict.SAFE

    @property
    def waits_for_replacements(self) -> int:
        """How many evictions wait for a replacement to be Ready: a slower drain, still clean."""
        return sum(1 for f in self.fates if f.waits)

    @property
    def flags_needed(self) -> tuple[str, ...]:
        """kubectl flags missing for the drain to start at all."""
        seen: dict[str, None] = {}
        for fate in self.fates:
            if fate.kind is FateKind.FAILS:
                seen.update(dict.fromkeys(fate.flags))
        return tuple(seen)

    def of(self, namespace: str, name: str) -> PodFate:
        """The fate of one pod."""
        for fate in self.fates:
            if (fate.namespace, fate.name) == (namespace, name):
                return fate
        raise KeyError(f"{namespace}/{name}")

    def rows(self) -> list[tuple[str, ...]]:
        """One row per pod, matching ROW_HEADERS, for a table."""
        return [
            (f.namespace, f.name, f.node, f.kind.value, f.target or "", f.reason)
            for f in self.fates
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "nodes": list(self.nodes),
            "options": {
                "ignoreDaemonsets": self.options.ignore_daemonsets,
                "deleteEmptydirData": self.options.delete_emptydir_data,
                "force": self.options.force,
                "disableEviction": self.options.disable_eviction,
                "podSelector": self.options.pod_selector,
            },
            "verdict": self.verdict.value,
            "verdicts": [v.value for v in self.verdicts],
            "clean": self.clean,
            "waitsForReplacements": self.waits_for_replacements,
            "flagsNeeded": list(self.flags_needed),
            "pods": [f.to_dict() for f in self.fates],
            "pdbs": [p.to_dict() for p in self.pdbs],
        }


# --- small readers ---------------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.get("metadata") or {}
    return meta


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def _namespace(obj: Obj) -> str:
    return str(_meta(obj).get("namespace") or "default")


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _controller(pod: Obj) -> Obj | None:
    for ref in _meta(pod).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def _condition_true(obj: Obj, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or ()
    )


def _emptydirs(pod: Obj) -> tuple[str, ...]:
    return tuple(
        str(v.get("name", ""))
        for v in (pod.get("spec") or {}).get("volumes") or ()
        if v.get("emptyDir") is not None
    )


def _unchecked(pod: Obj) -> tuple[str, ...]:
    """Scheduling constraints the pod has that this plan does not model."""
    spec: Obj = pod.get("spec") or {}
    affinity: Obj = spec.get("affinity") or {}
    found = [k for k in ("podAffinity", "podAntiAffinity") if affinity.get(k)]
    if spec.get("topologySpreadConstraints"):
        found.append("topologySpreadConstraints")
    containers = [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]
    if any(port.get("hostPort") for c in containers for port in c.get("ports") or ()):
        found.append("hostPort")
    if any(v.get("persistentVolumeClaim") for v in spec.get("volumes") or ()):
        found.append("PersistentVolumeClaim (volume node affinity)")
    return tuple(found)


def _tolerations(pod: Obj) -> list[Obj]:
    return list((pod.get("spec") or {}).get("tolerations") or ())


def _taints(node: Obj) -> list[Obj]:
    return list((node.get("spec") or {}).get("taints") or ())


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# --- kubectl's filters -----------------------------------------------------------------------


@dataclass
class _Filtered:
    """The outcome of kubectl's pod filters for one pod."""

    delete: bool
    kind: FateKind | None = None
    reason: str = ""
    flags: tuple[str, ...] = ()
    orphan_daemonset: str | None = None


def _filter(pod: Obj, options: DrainOptions, daemonsets: set[tuple[str, str]] | None) -> _Filtered:
    """skipDeleted, daemonSet, mirrorPod, localStorage, unreplicated, in kubectl's order."""
    finished = _phase(pod) in _FINISHED
    ref = _controller(pod)
    errors: list[tuple[str, str]] = []  # (message, flag) of every filter that would refuse
    orphan: str | None = None
    is_daemonset = ref is not None and ref.get("kind") == "DaemonSet" and not finished
    if is_daemonset and ref is not None:
        ds_name = str(ref.get("name", ""))
        if daemonsets is not None and (_namespace(pod), ds_name) not in daemonsets:
            orphan = f'daemonsets.apps "{ds_name}" not found'
            if not options.force:
                errors.append((orphan, "--force"))
        elif not options.ignore_daemonsets:
            errors.append((DAEMONSET_FATAL, "--ignore-daemonsets"))
        else:
            return _Filtered(False, FateKind.IGNORED, "ignoring DaemonSet-managed Pods")
    mirror = MIRROR_ANNOTATION in (_meta(pod).get("annotations") or {})
    if mirror and not errors:
        return _Filtered(False, FateKind.IGNORED, "mirror pod of a static pod: the kubelet owns it")
    if _emptydirs(pod) and not finished and not options.delete_emptydir_data:
        errors.append((LOCAL_STORAGE_FATAL, "--delete-emptydir-data"))
    if not finished and ref is None and not options.force and not mirror:
        errors.append((UNMANAGED_FATAL, "--force"))
    if errors:
        # kubectl stops at the first refusing filter; later ones show up once it is fixed.
        return _Filtered(False, FateKind.FAILS, errors[0][0], tuple(f for _, f in errors))
    return _Filtered(True, orphan_daemonset=orphan)


# --- PodDisruptionBudgets (the eviction subresource, retried by kubectl) --------------------
#
# kubectl drain evicts every pod of a node at once and retries each 429 every 5s. A budget
# lets `disruptionsAllowed` evictions through at once; each evicted Ready pod whose owner
# makes a replacement that the scheduler can place (on a node not being drained: those are
# all cordoned first) frees one more disruption when that replacement is Ready. An eviction
# is refused for good only when nothing can free the budget: it allows nothing even with
# every expected pod healthy, or the earlier evictions' replacements stay Pending or are never
# made. Those are `blocked`; the others wait, and the drain is only slower.

# Owners whose controllers recreate a deleted pod (a StatefulSet under the same name).
_REPLACING_OWNERS = frozenset(
    {"ReplicaSet", "ReplicationController", "StatefulSet", "Job", "DaemonSet"}
)


@dataclass
class _Budget:
    pdb: Obj
    allowed: int
    healthy: int
    desired: int
    expected: int
    disruptions: int = 0
    refused: int = 0
    waited: int = 0
    credits: int = 0  # replacements on their way to Ready, not yet spent by a waiting eviction
    stalls: list[str] = field(default_factory=list)  # why earlier evictions free nothing
    touched: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (_namespace(self.pdb), _name(self.pdb))

    @property
    def at_a_time(self) -> int:
        """Disruptions allowed with every expected pod healthy."""
        return self.expected - self.desired

    def impact(self) -> PdbImpact:
        status: Obj = self.pdb.get("status") or {}
        return PdbImpact(
            namespace=self.key[0],
            name=self.key[1],
            disruptions_allowed=_int(status.get("disruptionsAllowed")),
            current_healthy=_int(status.get("currentHealthy")),
            desired_healthy=_int(status.get("desiredHealthy")),
            expected_pods=_int(status.get("expectedPods")),
            disruptions=self.disruptions,
            refused=self.refused,
            waited=self.waited,
        )


def _budget(pdb: Obj) -> _Budget:
    status: Obj = pdb.get("status") or {}
    return _Budget(
        pdb,
        allowed=_int(status.get("disruptionsAllowed")),
        healthy=_int(status.get("currentHealthy")),
        desired=_int(status.get("desiredHealthy")),
        expected=_int(status.get("expectedPods")),
    )


def _budgets_for(pod: Obj, budgets: Sequence[_Budget]) -> list[_Budget]:
    # As the eviction subresource: same namespace; a missing or empty selector matches nothing.
    labels = _meta(pod).get("labels") or {}
    return [
        b
        for b in budgets
        if _namespace(b.pdb) == _namespace(pod)
        and label_selector_matches(
            (b.pdb.get("spec") or {}).get("selector"), labels, empty_matches=False
        )
    ]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass
class _Eviction:
    """One eviction as the budget decides it."""

    blocked: str | None = None
    pdb: str | None = None
    note: str = ""
    snapshot: PdbImpact | None = None
    waits: bool = False
    budget: _Budget | None = None  # the budget this eviction uses (its replacement frees it)


def _refusal(budget: _Budget) -> str:
    name = budget.key[1]
    head = f"{EVICTION_REFUSED} PodDisruptionBudget {name}"
    retry = "kubectl retries every 5s until --timeout (forever without one)"
    if budget.at_a_time <= 0:
        return (
            f"{head} allows 0 disruptions even with all {budget.expected} expected pods healthy "
            f"(needs {budget.desired}): no eviction of its pods can succeed; {retry}"
        )
    status = (
        f"allows {_plural(budget.allowed, 'disruption')} now (healthy {budget.healthy}, needs "
        f"{budget.desired}, expected {budget.expected})"
    )
    if budget.stalls:
        why = "; ".join(dict.fromkeys(budget.stalls))
        return (
            f"{head} {status}, this would be disruption {budget.disruptions + 1}, and no "
            f"replacement of the pods evicted before it can become Ready to free it: {why}; "
            f"{retry}"
        )
    return (
        f"{head} {status} and nothing this drain does makes another pod of it Ready "
        f"(it waits for the budget's unhealthy pods, which this plan cannot promise); {retry}"
    )


def _evict(pod: Obj, budgets: Sequence[_Budget]) -> _Eviction:
    """Simulate one eviction, retried as kubectl does: through now, after waiting, or never."""
    if _phase(pod) in (*_FINISHED, "Pending") or _meta(pod).get("deletionTimestamp"):
        return _Eviction(note="eviction skips PodDisruptionBudgets for this pod")
    mine = _budgets_for(pod, budgets)
    for budget in mine:
        budget.touched = True
    if len(mine) > 1:
        for budget in mine:
            budget.refused += 1
        names = ", ".join(b.key[1] for b in mine)
        return _Eviction(blocked=f"{MULTIPLE_PDBS} ({names})", pdb=names)
    if not mine:
        return _Eviction()
    budget = mine[0]
    name = budget.key[1]
    policy = (budget.pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
    healthy_now = budget.healthy - (budget.disruptions - budget.waited)
    if not _condition_true(pod, "Ready") and (
        policy == "AlwaysAllow" or (healthy_now >= budget.desired and budget.desired > 0)
    ):
        note = f"not Ready: evicted without using PodDisruptionBudget {name}"
        return _Eviction(pdb=name, note=note, snapshot=budget.impact())
    left = budget.allowed - (budget.disruptions - budget.waited)
    if left > 0:
        budget.disruptions += 1
        note = f"PodDisruptionBudget {name}: {left - 1} disruption(s) left"
        return _Eviction(pdb=name, note=note, snapshot=budget.impact(), budget=budget)
    if budget.credits > 0 and budget.at_a_time > 0:
        budget.credits -= 1
        budget.disruptions += 1
        budget.waited += 1
        note = (
            f"evicted after a replacement is Ready: PodDisruptionBudget {name} allows "
            f"{_plural(budget.at_a_time, 'disruption')} at a time (kubectl retries the eviction "
            "every 5s meanwhile)"
        )
        return _Eviction(pdb=name, note=note, snapshot=budget.impact(), waits=True, budget=budget)
    budget.refused += 1
    return _Eviction(blocked=_refusal(budget), pdb=name, snapshot=budget.impact())


def _replaced(pod: Obj, budget: _Budget | None, stall: str | None) -> None:
    """Record what the evicted pod's replacement does for its budget: frees it, or not (why)."""
    if budget is None:
        return
    if stall is None:
        budget.credits += 1
    else:
        budget.stalls.append(f"{_name(pod)}: {stall}")


# --- placement (the scheduler's filters, then a deterministic choice) ----------------------


@dataclass
class _Candidate:
    node: Obj
    name: str
    allocatable: dict[str, int]
    used: dict[str, int]


def _why_not(
    pod: Obj, cand: _Candidate, requests: Mapping[str, int], draining: frozenset[str]
) -> list[str]:
    """The scheduler's reasons this node is unfit, first failing plugin only (like upstream)."""
    spec: Obj = cand.node.get("spec") or {}
    # Drained nodes are never candidates; another cordoned node takes pods that tolerate
    # node.kubernetes.io/unschedulable:NoSchedule (NodeUnschedulable), like DaemonSet pods.
    cordoned = bool(spec.get("unschedulable")) and not tolerates(
        _tolerations(pod), _UNSCHEDULABLE_TAINT
    )
    if cand.name in draining or cordoned:
        return ["node(s) were unschedulable"]
    if not _condition_true(cand.node, "Ready"):
        return ["node(s) were not Ready"]
    taint = untolerated_taint(_tolerations(pod), _taints(cand.node))
    if taint is not None:
        key, value = taint.get("key", ""), taint.get("value", "")
        return [f"node(s) had untolerated taint {{{key}: {value}}}"]
    if not matches_required_affinity(pod, cand.node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    short = insufficient_resources(requests, cand.allocatable, cand.used)
    return ["Too many pods" if r == "pods" else f"Insufficient {r}" for r in short]


def _load(cand: _Candidate, requests: Mapping[str, int]) -> Fraction:
    worst = Fraction(0)
    for name in ("cpu", "memory"):
        total = cand.allocatable.get(name, 0)
        if total > 0:
            worst = max(worst, Fraction(cand.used.get(name, 0) + requests.get(name, 0), total))
    return worst


def _preference(pod: Obj, cand: _Candidate, requests: Mapping[str, int]) -> tuple[Any, ...]:
    prefer_not = sum(
        1
        for t in _taints(cand.node)
        if untolerated_taint(_tolerations(pod), [t], (PREFER_NO_SCHEDULE,)) is not None
    )
    return (-preferred_affinity_score(pod, cand.node), prefer_not, _load(cand, requests), cand.name)


def _place(
    pod: Obj, cands: Sequence[_Candidate], draining: frozenset[str], total_nodes: int
) -> tuple[str | None, tuple[str, ...], str]:
    requests = pod_requests(pod)
    fit: list[_Candidate] = []
    reasons: dict[str, int] = {}
    for cand in cands:
        why = _why_not(pod, cand, requests, draining)
        if why:
            for reason in why:
                reasons[reason] = reasons.get(reason, 0) + 1
        else:
            fit.append(cand)
    if not fit:
        summary = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))
        return None, (), f"0/{total_nodes} nodes are available: {summary}."
    fit.sort(key=lambda c: _preference(pod, c, requests))
    chosen = fit[0]
    for name, value in requests.items():
        chosen.used[name] = chosen.used.get(name, 0) + value
    chosen.used["pods"] = chosen.used.get("pods", 0) + 1
    return chosen.name, tuple(c.name for c in fit), f"rescheduled to {chosen.name}"


# --- the plan ------------------------------------------------------------------------------


def plan_drain(
    nodes: Sequence[Obj],
    pods: Sequence[Obj],
    pdbs: Sequence[Obj],
    drain: Sequence[str],
    options: DrainOptions,
    *,
    daemonsets: Sequence[Obj] | None = None,
) -> DrainPlan:
    """Decide each pod's fate when `drain` nodes are drained together with `options`.

    Inputs are the `items` of `kubectl get nodes|pods|poddisruptionbudgets -A -o json`.
    `daemonsets`, when given, lets the plan see DaemonSet pods whose DaemonSet is gone
    (kubectl deletes those only with --force); without it every DaemonSet is assumed present.
    """
    drain = list(dict.fromkeys(drain))
    by_name = {_name(n): n for n in nodes}
    for name in drain:
        if name not in by_name:
            raise DrainPlanError(f'nodes "{name}" not found')
    try:
        selected = parse_selector(options.pod_selector)
    except ValueError as exc:
        raise DrainPlanError(f"invalid --pod-selector: {exc}") from exc
    draining = frozenset(drain)
    known_ds = None if daemonsets is None else {(_namespace(d), _name(d)) for d in daemonsets}
    budgets = [_budget(p) for p in pdbs]

    # What already runs where: every unfinished pod bound to a node (as the scheduler's cache).
    used: dict[str, list[dict[str, int]]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and _phase(pod) not in _FINISHED:
            used.setdefault(str(node), []).append(pod_requests(pod))
    cands = [
        _Candidate(n, _name(n), node_allocatable(n), sum_requests(used.get(_name(n), [])))
        for n in sorted(nodes, key=_name)
    ]

    order = {name: i for i, name in enumerate(drain)}
    on_drained = sorted(
        (p for p in pods if (p.get("spec") or {}).get("nodeName") in draining),
        key=lambda p: (order[str(p["spec"]["nodeName"])], _namespace(p), _name(p)),
    )
    fates = [
        _fate(pod, options, selected, known_ds, budgets, cands, draining, len(nodes))
        for pod in on_drained
    ]
    touched = [b.impact() for b in budgets if b.touched]
    return DrainPlan(tuple(drain), options, tuple(fates), tuple(touched))


def _fate(
    pod: Obj,
    options: DrainOptions,
    selected: Callable[[Obj], bool],
    known_ds: set[tuple[str, str]] | None,
    budgets: Sequence[_Budget],
    cands: Sequence[_Candidate],
    draining: frozenset[str],
    total_nodes: int,
) -> PodFate:
    base = PodFate(_namespace(pod), _name(pod), str(pod["spec"]["nodeName"]), FateKind.EVICTED, "")
    if not selected(_meta(pod).get("labels") or {}):
        return replace(base, kind=FateKind.IGNORED, reason="not selected by --pod-selector")
    filtered = _filter(pod, options, known_ds)
    if not filtered.delete:
        assert filtered.kind is not None
        return replace(base, kind=filtered.kind, reason=filtered.reason, flags=filtered.flags)

    notes: list[str] = []
    used: _Budget | None = None
    waits = False
    if options.disable_eviction:
        notes.append("deleted (--disable-eviction): PodDisruptionBudgets are bypassed")
    else:
        eviction = _evict(pod, budgets)
        base = replace(base, pdb=eviction.pdb, budget=eviction.snapshot)
        if eviction.blocked is not None:
            return replace(base, kind=FateKind.BLOCKED, reason=eviction.blocked)
        used, waits = eviction.budget, eviction.waits
        if waits:
            base = replace(base, waits=True)
        elif eviction.note:
            notes.append(eviction.note)
    fate = _after_eviction(pod, base, notes, filtered, used, cands, draining, total_nodes)
    if waits:
        fate = replace(fate, reason=f"{eviction.note}; {fate.reason}")
    return fate


def _after_eviction(
    pod: Obj,
    base: PodFate,
    notes: list[str],
    filtered: _Filtered,
    used: _Budget | None,
    cands: Sequence[_Candidate],
    draining: frozenset[str],
    total_nodes: int,
) -> PodFate:
    """Where the evicted pod's replacement goes, and what that does for its budget."""
    phase = _phase(pod)
    if phase in _FINISHED:
        reason = f"finished ({phase}): deleted, not replaced"
        _replaced(pod, used, "finished, not replaced")
        return replace(base, kind=FateKind.EVICTED, reason=_join(reason, notes))
    if _meta(pod).get("deletionTimestamp"):
        reason = "already terminating: kubectl waits for it; its controller replaces it"
        return replace(base, kind=FateKind.EVICTED, reason=_join(reason, notes))
    data_loss = _emptydirs(pod)
    if data_loss:
        notes.append("emptyDir data deleted: " + ", ".join(data_loss))
    if filtered.orphan_daemonset:
        reason = f"deleted and never recreated: {filtered.orphan_daemonset} (--force)"
        _replaced(pod, used, "never recreated (its DaemonSet is gone)")
        return replace(base, kind=FateKind.LOST, reason=_join(reason, notes), data_loss=data_loss)
    owner = _controller(pod)
    if owner is None:
        reason = "deleted and never recreated: no controller (--force)"
        _replaced(pod, used, "never recreated (no controller)")
        return replace(base, kind=FateKind.LOST, reason=_join(reason, notes), data_loss=data_loss)
    kind = str(owner.get("kind") or "")
    if kind not in _REPLACING_OWNERS:
        notes.append(f"assumes its owner ({kind} {owner.get('name', '')}) recreates it")
    elif kind == "StatefulSet":
        notes.append("its StatefulSet recreates it under the same name")
    unchecked = _unchecked(pod)
    if unchecked:
        notes.append("not checked: " + ", ".join(unchecked))
    target, candidates, placed = _place(pod, cands, draining, total_nodes)
    if target is None:
        _replaced(pod, used, "its replacement would stay Pending")
        return replace(
            base,
            kind=FateKind.PENDING,
            reason=_join(f"replacement would stay Pending: {placed}", notes),
            data_loss=data_loss,
        )
    _replaced(pod, used, None)
    return replace(
        base,
        kind=FateKind.LOST if data_loss else FateKind.EVICTED,
        reason=_join(placed, notes),
        candidates=candidates,
        target=target,
        data_loss=data_loss,
    )


def _join(reason: str, notes: Sequence[str]) -> str:
    return "; ".join([reason, *notes])
