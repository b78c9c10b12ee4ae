"""The runbook: the ordered plan of a cluster upgrade, printed before anything changes.

Planning is pure (`plan_runbook`): from what the cluster and the nodes said, the target, and
a drain planner, it decides the hop (a target several minors ahead is reached one minor at
a time: the first hop now, the next ones planned again when their turn comes), refuses what
must be refused (a single node asked to skip a minor, a kubelet more than one minor behind, a
downgrade without --allow-downgrade or of more than one minor, an unknown or NotReady node, a
worker whose control plane is not ahead of it, a version the current repository does not
serve), and orders the nodes: control planes one by one, then workers in batches of
--max-unavailable, split until no batch's drain would be blocked by a PodDisruptionBudget (a
minor downgrade the other way round: workers first, as no kubelet may be newer than the
apiserver). `execute` runs it: one node's steps after another, the batch's nodes in
parallel, the line stopped at the first failure.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nodeops.drainplan import DrainPlan, Verdict
from nodeops.errors import NodeopsError
from nodeops.facts import NodeFacts
from nodeops.facts.packages import CORE_PACKAGES
from nodeops.node import Node
from nodeops.upgrade.cluster import ClusterState
from nodeops.versions import (
    ClusterVersions,
    PackageVersion,
    Version,
    VersionError,
    allowed_kubelet_range,
    check_hop,
    minor_text,
    parse_package_version,
    parse_version,
)

Format = Literal["text", "markdown", "json"]
STEP_TITLES = (
    "Check node",
    "Switch package repository",
    "Download packages before cordoning",
    "Record whether the node is schedulable",
    "Cordon node",
    "Drain node",
    "Install kubeadm",
    "Run kubeadm upgrade",
    "Install kubelet and kubectl",
    "Restart kubelet",
    "Wait until the node is Ready at the target version",
    "Uncordon node",
    "Verify node",
)


class Refused(NodeopsError):
    """The upgrade cannot start: every reason is listed; nothing was changed."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("refused before any change:\n  - " + "\n  - ".join(reasons))
        self.reasons = list(reasons)


@dataclass(frozen=True)
class NodePlan:
    """One node's place in the runbook."""

    name: str
    role: Literal["control-plane", "worker"]
    current: str
    action: Literal["apply", "node"] = "node"
    skip: str | None = None
    cordoned_before: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "node": self.name,
            "role": self.role,
            "current": self.current,
            "kubeadm": f"upgrade {self.action}",
            "skip": self.skip,
            "cordoned_before": self.cordoned_before,
        }


@dataclass(frozen=True)
class Runbook:
    """The ordered plan of an upgrade."""

    current: Version
    minor: tuple[int, int]
    target: Version | None
    control_planes: tuple[NodePlan, ...]
    batches: tuple[tuple[NodePlan, ...], ...]
    skipped: tuple[NodePlan, ...] = ()
    notes: tuple[str, ...] = ()
    drain_flags: tuple[str, ...] = field(default=())
    later: tuple[str, ...] = ()
    # A planned downgrade (--allow-downgrade); for a minor one the workers go first, because
    # the skew policy never allows a kubelet newer than the apiserver.
    downgrade: bool = False
    workers_first: bool = False

    @property
    def target_text(self) -> str:
        """The target as people read it."""
        if self.target is not None:
            return str(self.target)
        return (
            f"the latest patch the v{minor_text(self.minor)} repository serves, read when the"
            " hop starts"
        )

    @property
    def nodes(self) -> list[NodePlan]:
        """Every node that will be worked on, in order."""
        workers = [n for b in self.batches for n in b]
        if self.workers_first:
            return [*workers, *self.control_planes]
        return [*self.control_planes, *workers]

    @property
    def empty(self) -> bool:
        """Nothing to do in this hop: every node is at its target."""
        return not self.nodes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "current": str(self.current),
            "minor": minor_text(self.minor),
            "target": str(self.target) if self.target else None,
            "target_text": self.target_text,
            "control_planes": [n.to_dict() for n in self.control_planes],
            "worker_batches": [[n.to_dict() for n in b] for b in self.batches],
            "already_done": [n.to_dict() for n in self.skipped],
            "steps_per_node": list(STEP_TITLES),
            "drain_flags": list(self.drain_flags),
            "notes": list(self.notes),
            "later_hops": list(self.later),
            "downgrade": self.downgrade,
            "order": "workers first" if self.workers_first else "control planes first",
        }

    def render(self, fmt: Format = "text") -> str:
        """The runbook as text, markdown or JSON."""
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        md = fmt == "markdown"
        lines: list[str] = []
        head = f"Upgrade from {self.current} to {self.target_text}"
        if self.downgrade:
            head = f"DOWNGRADE from {self.current} to {self.target_text} (--allow-downgrade)"
        if self.later:
            head += f" (hop 1 of {len(self.later) + 1})"
        lines.append(f"# {head}" if md else head)
        for number, hop in enumerate(self.later, 2):
            lines.append(
                f"then hop {number}: to {hop}, planned again from the cluster's state once the"
                " hop before it has finished"
            )
        if self.downgrade:
            order = (
                "worker batches first, then the control planes one by one (a kubelet may never"
                " be newer than the apiserver)"
                if self.workers_first
                else "control planes one by one, then the worker batches (a patch downgrade)"
            )
            mark = "**" if md else ""
            lines.append(
                f"{mark}DOWNGRADE: every node goes back to {self.target_text}; order: {order}{mark}"
            )
        lines.append("")

        def node_line(n: NodePlan) -> str:
            extra = " (cordoned before the run: stays cordoned)" if n.cordoned_before else ""
            return f"{n.name} [{n.role}, now {n.current}, kubeadm upgrade {n.action}]{extra}"

        entries = [f"control plane {node_line(n)}" for n in self.control_planes]
        batches = [
            f"worker batch {index} (in parallel): {', '.join(node_line(n) for n in batch)}"
            for index, batch in enumerate(self.batches, 1)
        ]
        entries = [*batches, *entries] if self.workers_first else [*entries, *batches]
        for step, entry in enumerate(entries, 1):
            lines.append(f"{step}. {entry}")
        if not self.nodes:
            lines.append("Nothing to do: every node is already at the target.")
        for n in self.skipped:
            lines.append(f"{'- ' if md else '   '}{n.name}: skipped, {n.skip}")
        lines.append("")
        lines.append(("## " if md else "") + "Steps on each node")
        for number, title in enumerate(STEP_TITLES, 1):
            lines.append(f"{'' if md else '   '}{number}. {title}")
        ahead_of_control_planes = bool(self.control_planes) and not self.workers_first
        if self.batches and (len(self.batches) > 1 or ahead_of_control_planes):
            during = "the control planes and earlier batches are upgraded"
            if not ahead_of_control_planes:
                during = "earlier batches are cordoned"
            lines.append(
                "Workers run steps 1-3 (check, repository, download) ahead of their batch,"
                f" while {during}; a batch is cordoned only once the batch before it is back."
            )
        if self.drain_flags:
            lines.append("")
            lines.append(f"drain flags: {' '.join(self.drain_flags)}")
        for note in self.notes:
            lines.append(f"note: {note}")
        lines.append(
            "The line stops at the first failure; a failed node stays as it was left,"
            " and the message says how to resume."
        )
        return "\n".join(lines) + "\n"


def parse_target(text: str, current: Version) -> Version:
    """--to: VERSION (1.30.2, v1.30.2, 1.30), latest-patch or next-minor."""
    text = text.strip() if text == text.strip() else text
    if text == "latest-patch":
        return Version(current.major, current.minor)
    if text == "next-minor":
        return Version(current.major, current.minor + 1)
    return parse_version(text, allow_bare_minor=True)


def parse_max_unavailable(text: str | int, workers: int) -> int:
    """--max-unavailable N or P% of the workers; at least 1."""
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            percent = float(raw[:-1])
            if not 0 < percent <= 100:
                raise ValueError
            return max(1, math.floor(workers * percent / 100))
        count = int(raw)
        if count < 1:
            raise ValueError
        return count
    except ValueError:
        raise NodeopsError(
            f"--max-unavailable takes a whole number of nodes (1, 2 …) or a percentage (25%),"
            f" not {raw!r}"
        ) from None


def _installed(facts: NodeFacts, name: str) -> PackageVersion | None:
    raw = facts.packages.get(name)
    try:
        return parse_package_version(raw) if raw else None
    except VersionError:
        return None


def split_batches(
    workers: Sequence[str],
    size: int,
    drain_plan: Callable[[list[str]], DrainPlan],
    blocked: list[str] | None = None,
) -> tuple[list[list[str]], list[str]]:
    """Batches of at most `size`, split until no batch's drain is blocked by a budget;
    also the kubectl flags any single node's drain would need (--force ...). Nodes whose
    drain a budget blocks even alone are added to `blocked`."""
    out: list[list[str]] = []
    flags: list[str] = []

    def place(batch: list[str]) -> None:
        plan = drain_plan(batch)
        if Verdict.BLOCKED in plan.verdicts and len(batch) > 1:
            half = len(batch) // 2
            place(batch[:half])
            place(batch[half:])
            return
        for flag in plan.flags_needed:
            if flag not in flags:
                flags.append(flag)
        if Verdict.BLOCKED in plan.verdicts and blocked is not None:
            blocked.extend(batch)
        out.append(batch)

    for start in range(0, len(workers), size):
        place(list(workers[start : start + size]))
    return out, flags


def plan_runbook(
    *,
    state: ClusterState,
    nodes: Sequence[Node],
    facts: dict[str, NodeFacts],
    to: str,
    current_repo: Sequence[PackageVersion],
    max_unavailable: str | int = 1,
    drain_plan: Callable[[list[str]], DrainPlan] | None = None,
    drain_flags: Sequence[str] = (),
    hops: bool = False,
    allow_downgrade: bool = False,
    cordoned_by_run: frozenset[str] = frozenset(),
) -> Runbook:
    """Decide the upgrade (pure). Raises Refused listing every reason it cannot start.

    With `hops`, a target more than one minor ahead is reached one minor at a time: this
    runbook is the first hop, and `later` names the hops after it (each planned again from
    the cluster's state once the one before has finished). A target older than the newest
    apiserver is a downgrade: refused unless `allow_downgrade`, and then only to an exact
    version at most one minor down (kubeadm's limit); a minor downgrade puts the workers first.
    """
    reasons: list[str] = []
    apiservers = state.apiservers
    if not apiservers:
        raise Refused(["no kube-apiserver pod found in kube-system: is this a kubeadm cluster?"])
    current = min(apiservers.values())
    newest = max(apiservers.values())
    target = parse_target(to, current)
    if target.is_prerelease:
        raise Refused([f"{target} is a pre-release; nodeops upgrades to releases only"])
    minor = target.minor_key
    if target.major != current.major:
        raise Refused([f"cannot change the major version from {current} to {target}"])
    downgrade = minor < newest.minor_key or (target.patch is not None and target < newest)
    if downgrade:
        _check_downgrade(target, newest, allow_downgrade)
        current = newest  # what the downgrade goes back from
    workers_first = downgrade and minor < newest.minor_key
    later: list[str] = []
    if minor[1] > current.minor + 1:
        if not hops:
            raise Refused(
                [
                    f"one minor at a time: the control plane is at {current}; upgrade to"
                    f" {current.major}.{current.minor + 1} before {target}"
                    " (upgrade-cluster goes through every minor in turn)"
                ]
            )
        for step in range(current.minor + 2, minor[1]):
            later.append(f"{current.major}.{step} (its latest patch)")
        later.append(str(target) if target.patch is not None else f"{target} (its latest patch)")
        target = Version(current.major, current.minor + 1)
        minor = target.minor_key
    # A bare minor follows a control plane already there, else the repository's latest.
    at_minor = [v for v in apiservers.values() if v.minor_key == minor]
    selects_control_plane = any(n.name in apiservers for n in nodes)
    if target.patch is None and at_minor and not selects_control_plane:
        target = max(at_minor)  # workers alone follow their control plane
    elif target.patch is None and minor == current.minor_key:
        served = sorted(p for p in current_repo if p.minor_key == minor)
        if not served:
            raise Refused([f"the v{minor_text(minor)} repository serves nothing"])
        target = max(max(at_minor), served[-1].version)
    elif target.patch is None and at_minor:
        target = max(at_minor)
    # The current repository is the current minor's (a minor downgrade's is checked on each
    # node when its repository is switched, before any cordon).
    if target.patch is not None and minor == current.minor_key:
        served = sorted(p for p in current_repo if p.minor_key == minor)
        if not any(p.version == target for p in served):
            low = f"{served[0].version} … {served[-1].version}" if served else "nothing"
            reasons.append(
                f"the v{minor_text(minor)} repository serves {low}; {target} is not there"
            )
    probe = target if target.patch is not None else Version(minor[0], minor[1], 0)
    if workers_first and not selects_control_plane:
        # Workers alone go down first: the control plane does not move, so only the skew
        # between their kubelets at the target and the apiservers matters.
        allowed = allowed_kubelet_range(apiservers)
        if target not in allowed:
            reasons.append(
                f"a kubelet at {target} is outside what the apiservers allow ({allowed})"
            )
    else:
        versions = state.versions()
        if workers_first:
            versions = _after_workers_first(versions, {n.name for n in nodes}, target)
        reasons.extend(check_hop(versions, probe, allow_downgrade=downgrade))

    for name, seen in sorted(state.nodes.items()):
        if not seen.ready:
            reasons.append(f"node {name} is NotReady ({seen.ready_message or 'no message'})")
    control_planes: list[NodePlan] = []
    workers: list[NodePlan] = []
    skipped: list[NodePlan] = []
    apply_taken = any(v == target for v in apiservers.values()) if target.patch else bool(at_minor)
    for node in nodes:
        status = state.nodes.get(node.name)
        node_facts = facts.get(node.name)
        if status is None:
            reasons.append(f"{node.name} is in the inventory but not a node of the cluster")
            continue
        if node_facts is None or node_facts.platform is None:
            why = node_facts.os_error if node_facts else "facts could not be gathered"
            reasons.append(f"{node.name}: unsupported OS or unreadable node: {why}")
            continue
        role: Literal["control-plane", "worker"] = (
            "control-plane" if node.name in apiservers else "worker"
        )
        current_text = status.kubelet_version.v if status.kubelet_version else "unknown"
        installed = {n: _installed(node_facts, n) for n in CORE_PACKAGES}
        at_target = (
            target.patch is not None
            and status.kubelet_version == target
            and all(v is not None and v.version == target for v in installed.values())
            and (role == "worker" or state.control_plane_at(node.name, target))
        )
        # A node this (resumed) run cordoned is not "cordoned before the run": it is given back.
        ours = status.unschedulable and node.name in cordoned_by_run
        cordoned_before = status.unschedulable and not ours
        plan = NodePlan(node.name, role, current_text, cordoned_before=cordoned_before)
        kubelet = status.kubelet_version
        if downgrade and role == "worker" and kubelet is not None and kubelet < target:
            why = f"its kubelet ({kubelet}) is older than {target}: a downgrade never raises a node"
            skipped.append(NodePlan(node.name, role, current_text, skip=why))
            continue
        if not at_target and kubelet is not None and kubelet.minor_key[1] < minor[1] - 1:
            reasons.append(
                f"{node.name}: its kubelet ({kubelet}) is more than one minor behind"
                f" {minor_text(minor)}: upgrade it to {kubelet.major}.{kubelet.minor + 1}"
                " first"
            )
        if at_target and not ours:
            skipped.append(NodePlan(node.name, role, current_text, skip=f"already at {target}"))
            continue
        if role == "control-plane":
            action: Literal["apply", "node"] = "node" if apply_taken else "apply"
            apply_taken = True
            control_planes.append(
                NodePlan(node.name, role, current_text, action, None, cordoned_before)
            )
        else:
            workers.append(plan)
    if workers and not control_planes:
        behind = {n: v for n, v in apiservers.items() if target.patch is None or v < target}
        behind = {n: v for n, v in behind.items() if v.minor_key < minor or target.patch}
        if behind:
            who = ", ".join(f"kube-apiserver on {n} is at {v}" for n, v in sorted(behind.items()))
            for w in workers:
                reasons.append(
                    f"{w.name}: the control plane is not ahead of it ({who}); upgrade the"
                    f" control plane{'s' if len(apiservers) > 1 else ''} to {target} first"
                )
    worker_names = [w.name for w in workers]
    batches: list[list[str]] = [[n] for n in worker_names]
    flags: list[str] = []
    blocked: list[str] = []
    if drain_plan is not None:
        total = len([n for n in state.nodes if n not in apiservers]) or 1
        size = parse_max_unavailable(max_unavailable, total)
        batches, flags = split_batches(worker_names, size, drain_plan, blocked)
        for cp in control_planes:
            for flag in drain_plan([cp.name]).flags_needed:
                if flag not in flags:
                    flags.append(flag)
    if flags:
        reasons.append(
            f"kubectl drain would refuse without {' '.join(flags)} (see `nodeops drain-plan"
            " --node NAME`); pass the same option to the upgrade if losing those pods is"
            " acceptable, or move them first"
        )
    if reasons:
        raise Refused(reasons)
    by_name = {w.name: w for w in workers}
    notes = [
        f"draining {name} is blocked by a PodDisruptionBudget right now: the drain waits up to"
        " its timeout, then the node is given back (uncordoned if nodeops cordoned it) and"
        " the run stops"
        for name in blocked
    ]
    if workers_first and control_planes and control_planes[0].action == "apply":
        notes.append(
            "kubeadm never downgrades etcd: it stays at its newer version (the etcd snapshot"
            " taken before the first node is the way back to the data as it was)"
        )
    if target.patch is None:
        notes.append(
            f"the exact {minor_text(minor)} patch is read from the v{minor_text(minor)}"
            " repository on the first node, after its repository switch and before any cordon"
        )
    return Runbook(
        current=current,
        minor=minor,
        target=target if target.patch is not None else None,
        control_planes=tuple(control_planes),
        batches=tuple(tuple(by_name[n] for n in b) for b in batches),
        skipped=tuple(skipped),
        notes=tuple(notes),
        drain_flags=tuple(drain_flags),
        later=tuple(later),
        downgrade=downgrade,
        workers_first=workers_first,
    )


def _check_downgrade(target: Version, newest: Version, allowed: bool) -> None:
    """Refuse a downgrade unless allowed, then one that is not to an exact version at most
    one minor below the newest apiserver (kubeadm downgrades one minor at a time)."""
    if not allowed:
        raise Refused(
            [
                f"{target} is older than the control plane ({newest}): downgrades are refused"
                " (--allow-downgrade allows one minor down at most)"
            ]
        )
    if target.minor < newest.minor - 1:
        raise Refused(
            [
                f"one minor at a time: a downgrade goes back at most one minor, from {newest}"
                f" to {newest.major}.{newest.minor - 1}, not to {target} (kubeadm downgrades"
                " one minor at a time), even with --allow-downgrade"
            ]
        )
    if target.patch is None:
        raise Refused(
            [
                f"a downgrade goes to an exact version: name the {target} patch to go back to"
                f" ({target}.N), not the bare minor"
            ]
        )


def _after_workers_first(
    versions: ClusterVersions, names: set[str], target: Version
) -> ClusterVersions:
    """The versions a minor downgrade's control plane meets: the run's kubelets already at
    the target (workers go first; a control plane's own kubelet follows its kubeadm step).
    A kubelet newer than every apiserver stays as it is, so the skew check still sees it."""
    newest = max(v.minor_key for v in versions.apiservers.values())
    kubelets = {
        name: target
        if name in names and version > target and version.minor_key <= newest
        else version
        for name, version in versions.kubelets.items()
    }
    return dataclasses.replace(versions, kubelets=kubelets)
