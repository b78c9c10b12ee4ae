"""The soak's pure parts: a run's plan from its seed, the invariants, and how runs are reported.

One soak run builds a small lab (cp1 and one or two workers of mixed OS), upgrades it one
minor with the real CLI, switches one fault on when the journal shows a chosen step of a
chosen node started (or SIGKILLs nodeops a moment later), clears it, resumes the run and
checks the invariants. Everything random about a run comes from `plan_run(seed, ...)`, so
`invoke soak --runs 1 --seed S` replays run S exactly (up to the lab's own timing).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

KILL = "kill"  # SIGKILL the nodeops process itself
KILL_SHARE = 0.25  # of the runs: a kill can land anywhere, the switches each at one symptom
CONTROL_PLANE_NODE = "cp1"
CONTROL_PLANE_OS = "ubuntu-22.04"  # default_spec's control plane
DEBIAN_FAMILY = ("ubuntu", "debian")
ETCD_SNAPSHOT = "etcd-snapshot"  # journaled before the first control plane's steps
# Start minors the lab's machine has kubectl for, with a target minor above each one.
START_MINORS = (28, 29, 30, 31, 32)
START_PATCH = 2
# The sample PodDisruptionBudget over app=web (3 replicas): as built (minAvailable 2), relaxed,
# or deleted. Every drain of a node with web pods waits kubectl's 5 s retry per refused
# eviction under a budget; runs without one are faster, runs with one keep drains honest.
BUDGETS: tuple[int | None, ...] = (2, 1, None)
PRECORDON_CHANCE = 0.3
TWO_WORKERS = 0.3  # of the labs; the others have one worker, and cost a third less
KILL_DELAY = (0.0, 3.0)  # seconds after the trigger step starts
# Half the faults are transient (on for HOLD seconds: nodeops may ride them out), half stay
# on until nodeops gives up (it must fail cleanly, and the resume must finish the job), but
# at most LONG_HOLD seconds.
HOLD = (1.0, 10.0)
LONG_HOLD = 150.0
# Faults that act at one later moment of a node's upgrade (the next kubeadm run, kubelet
# restart, install, drain ...): triggered at that step or before it, or they would do nothing.
ACTS_AT = {
    "kubeadm-fail": "kubeadm-upgrade",
    "ssh-cut-kubeadm": "kubeadm-upgrade",
    "ssh-cut-restart": "restart-kubelet",
    "kubelet-not-ready-on-restart": "restart-kubelet",
    "dpkg-interrupt": "install-kubelet",
    "slow-download": "install-kubelet",
    "pdb-blocking": "drain",
}


@dataclass(frozen=True)
class SoakPlan:
    """Everything random about one soak run."""

    seed: int
    worker_os: tuple[str, ...]
    start: str  # the lab's version before the run, e.g. "1.29.2"
    to: str  # the target minor, e.g. "1.30"
    budget: int | None  # minAvailable of the sample web budget; None: no budget
    precordon: str | None  # a node the operator cordoned before the run
    fault: str  # a lab fault kind, or KILL
    node: str  # the node the fault hits (KILL: the node whose step triggers it)
    step: str  # the step whose start triggers the fault
    delay: float  # seconds after that start
    hold: float | None  # seconds the fault stays on; None: until nodeops exits (LONG_HOLD at most)

    @property
    def nodes(self) -> tuple[str, ...]:
        """The lab's node names."""
        return (CONTROL_PLANE_NODE, *(f"worker{i + 1}" for i in range(len(self.worker_os))))

    def os_of(self, node: str) -> str:
        """A node's operating system."""
        if node == CONTROL_PLANE_NODE:
            return CONTROL_PLANE_OS
        return self.worker_os[self.nodes.index(node) - 1]

    def describe(self) -> str:
        """One line: the lab, the fault and its trigger."""
        lab = ",".join(f"{n}:{self.os_of(n)}" for n in self.nodes)
        budget = "none" if self.budget is None else f"minAvailable={self.budget}"
        hold = "until exit" if self.hold is None else f"{self.hold:.1f}s"
        timing = f"+{self.delay:.1f}s" + ("" if self.fault == KILL else f" hold {hold}")
        return (
            f"seed={self.seed} {self.start}->{self.to} [{lab}] budget={budget}"
            f" precordon={self.precordon or '-'} fault={self.fault} node={self.node}"
            f" step={self.step} {timing}"
        )


def run_seed(base: int, index: int) -> int:
    """The seed of run `index` of a soak started with seed `base` (replay: --runs 1 --seed it)."""
    return base + index


def debian_family(os_name: str) -> bool:
    """Whether a lab OS uses apt and dpkg."""
    return os_name.split("-", 1)[0] in DEBIAN_FAMILY


def fault_nodes(kind: str, os_by_node: Mapping[str, str]) -> list[str]:
    """The nodes a fault kind can be switched on for (kinds unknown here: any node)."""
    if kind == "apiserver-down":
        return [CONTROL_PLANE_NODE]
    if kind.startswith("dpkg-"):  # dpkg-lock, dpkg-interrupt: Debian-family nodes only
        return [n for n, os_name in os_by_node.items() if debian_family(os_name)]
    return list(os_by_node)


def trigger_steps(node: str, steps: Sequence[str], kind: str = KILL) -> list[str]:
    """The steps whose start can trigger a fault on a node (the first control plane's etcd
    snapshot comes before its steps); up to the step a fault acts at, when it has one."""
    chain = ([ETCD_SNAPSHOT] if node == CONTROL_PLANE_NODE else []) + list(steps)
    last = ACTS_AT.get(kind)
    return chain[: chain.index(last) + 1] if last in chain else chain


def plan_run(
    seed: int,
    kinds: Sequence[str],
    steps: Sequence[str],
    operating_systems: Sequence[str],
) -> SoakPlan:
    """The plan of one run, a pure function of its arguments.

    `kinds` are the lab's fault switches (KILL is added), `steps` a node upgrade's step
    names in order, `operating_systems` the OSes a worker may run. A budget over app=web
    needs two schedulable workers (the control plane is tainted): with one worker, or one
    of two cordoned by the operator, its drain could never finish, so those runs have none.
    """
    rng = random.Random(seed)  # noqa: S311 -- reproducible test plans, not secrets
    workers = 2 if rng.random() < TWO_WORKERS else 1
    worker_os = tuple(rng.choice(tuple(operating_systems)) for _ in range(workers))
    minor = rng.choice(START_MINORS)
    precordon = None
    if workers == 2 and rng.random() < PRECORDON_CHANCE:
        precordon = rng.choice(("worker1", "worker2"))
    budget = rng.choice(BUDGETS) if workers == 2 and precordon is None else None
    fault = KILL if rng.random() < KILL_SHARE else rng.choice(sorted(set(kinds)))
    os_by_node = {CONTROL_PLANE_NODE: CONTROL_PLANE_OS}
    os_by_node.update({f"worker{i + 1}": o for i, o in enumerate(worker_os)})
    node = rng.choice(fault_nodes(fault, os_by_node) or list(os_by_node))
    step = rng.choice(trigger_steps(node, steps, fault))
    delay = round(rng.uniform(*KILL_DELAY), 2) if fault == KILL else 0.0
    hold = round(rng.uniform(*HOLD), 1) if rng.random() < 0.5 else None
    return SoakPlan(
        seed=seed,
        worker_os=worker_os,
        start=f"1.{minor}.{START_PATCH}",
        to=f"1.{minor + 1}",
        budget=budget,
        precordon=precordon,
        fault=fault,
        node=node,
        step=step,
        delay=delay,
        hold=hold,
    )


# ---- invariants


@dataclass(frozen=True)
class NodeSnapshot:
    """What the invariants look at on one node."""

    name: str
    unschedulable: bool
    ready: bool
    kubelet: str  # the version the kubelet reports, without "v"
    packages: Mapping[str, str]  # kubeadm/kubelet/kubectl -> upstream version ("" if missing)
    held: frozenset[str]
    manifests: Mapping[str, str]  # file name in the static pod directory -> sha256
    images: Mapping[str, str] = field(default_factory=dict)  # control-plane pod -> image tag


@dataclass(frozen=True)
class ClusterSnapshot:
    """The lab's state before or after a run."""

    nodes: Mapping[str, NodeSnapshot]
    etcd_keys: frozenset[str]  # keys of kept kinds (not events, leases, pods)
    sentinel: str | None  # the sentinel ConfigMap's data as written before the run
    lock: bool  # the cluster lock file exists


@dataclass(frozen=True)
class Check:
    """One invariant's verdict."""

    name: str
    ok: bool
    detail: str = ""


KUBEADM_MANIFESTS = frozenset(
    {"etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"}
)
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
CONTROL_PLANE_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def check_manifests(before: ClusterSnapshot, after: ClusterSnapshot) -> Check:
    """No static pod manifest lost, emptied or added; those kubeadm does not own unchanged."""
    problems: list[str] = []
    for name, old in before.nodes.items():
        new = after.nodes.get(name)
        now = new.manifests if new is not None else {}
        lost = sorted(set(old.manifests) - set(now))
        added = sorted(set(now) - set(old.manifests))
        empty = sorted(f for f, sha in now.items() if sha == EMPTY_SHA256)
        changed = sorted(
            f
            for f in set(old.manifests) & set(now) - KUBEADM_MANIFESTS
            if old.manifests[f] != now[f]
        )
        for what, files in (("lost", lost), ("added", added), ("empty", empty)):
            if files:
                problems.append(f"{name}: {what} {', '.join(files)}")
        if changed:
            problems.append(f"{name}: changed (not kubeadm's) {', '.join(changed)}")
    return Check("manifests", not problems, "; ".join(problems))


def check_etcd(before: ClusterSnapshot, after: ClusterSnapshot) -> Check:
    """No etcd key of a kept kind lost; the sentinel ConfigMap unchanged."""
    problems: list[str] = []
    lost = sorted(before.etcd_keys - after.etcd_keys)
    if lost:
        problems.append(f"{len(lost)} key(s) lost: {', '.join(lost[:5])}")
    if before.sentinel is not None and after.sentinel != before.sentinel:
        problems.append(f"sentinel is {after.sentinel!r}, was {before.sentinel!r}")
    if not before.etcd_keys:
        problems.append("no etcd key was read before the run")
    return Check("etcd", not problems, "; ".join(problems))


def check_cordons(before: ClusterSnapshot, after: ClusterSnapshot) -> Check:
    """Cordoned exactly the nodes cordoned before the run."""
    was = {n for n, s in before.nodes.items() if s.unschedulable}
    now = {n for n, s in after.nodes.items() if s.unschedulable}
    problems = []
    if now - was:
        problems.append(f"left cordoned: {', '.join(sorted(now - was))}")
    if was - now:
        problems.append(f"operator's cordon removed: {', '.join(sorted(was - now))}")
    return Check("cordons", not problems, "; ".join(problems))


def check_holds(before: ClusterSnapshot, after: ClusterSnapshot) -> Check:
    """Every hold there was before the run is there after it."""
    problems = []
    for name, old in before.nodes.items():
        new = after.nodes.get(name)
        missing = sorted(old.held - (new.held if new is not None else frozenset()))
        if missing:
            problems.append(f"{name}: not held: {', '.join(missing)}")
    return Check("holds", not problems, "; ".join(problems))


def check_target(after: ClusterSnapshot, to: str, printed: str | None) -> Check:
    """Every node Ready, its kubelet and packages (and control-plane images) at one version of
    the target minor: the one nodeops printed when it printed one."""
    problems = []
    versions = {s.kubelet for s in after.nodes.values()}
    version = next(iter(versions)) if len(versions) == 1 else None
    if version is None:
        problems.append(f"kubelets at {', '.join(sorted(versions)) or 'nothing'}")
    elif _minor(version) != to:
        problems.append(f"kubelets at {version}, not {to}")
    elif printed is not None and printed != version:
        problems.append(f"kubelets at {version}, nodeops said {printed}")
    for name, s in sorted(after.nodes.items()):
        if not s.ready:
            problems.append(f"{name}: NotReady")
        wrong = sorted(f"{p} {v or 'missing'}" for p, v in s.packages.items() if v != s.kubelet)
        if wrong:
            problems.append(f"{name}: {', '.join(wrong)} (kubelet {s.kubelet})")
        stale = sorted(f"{p} {t}" for p, t in s.images.items() if t != f"v{s.kubelet}")
        if stale:
            problems.append(f"{name}: images {', '.join(stale)}")
    if after.lock:
        problems.append("the cluster lock was left behind")
    return Check("target", not problems, "; ".join(problems))


def check_all(
    before: ClusterSnapshot, after: ClusterSnapshot, to: str, printed: str | None
) -> list[Check]:
    """Every invariant, in report order."""
    return [
        check_manifests(before, after),
        check_etcd(before, after),
        check_cordons(before, after),
        check_holds(before, after),
        check_target(after, to, printed),
    ]


# ---- reporting


@dataclass(frozen=True)
class RunResult:
    """How one run went."""

    plan: SoakPlan
    outcome: str  # e.g. "failed(1)+resumed", "killed+resumed", "tolerated", "not-triggered"
    checks: tuple[Check, ...]
    seconds: float
    error: str = ""  # what went wrong outside the invariants (a resume that failed ...)

    @property
    def ok(self) -> bool:
        """Every invariant held and the driver met no error."""
        return not self.error and all(c.ok for c in self.checks)


def run_line(result: RunResult) -> str:
    """One line per run: seed, fault, node, step, outcome, invariants, wall time."""
    p = result.plan
    verdicts = " ".join(f"{c.name}={'ok' if c.ok else 'BROKEN'}" for c in result.checks)
    line = (
        f"seed={p.seed} fault={p.fault} node={p.node} step={p.step}"
        f" outcome={result.outcome} {verdicts} {result.seconds:.1f}s"
    )
    details = [f"{c.name}: {c.detail}" for c in result.checks if not c.ok]
    if result.error:
        details.insert(0, f"error: {result.error}")
    return line + "".join(f"\n    {d}" for d in details)


def summary(results: Sequence[RunResult]) -> str:
    """Runs, faults by kind, outcomes, failures (with the seeds to replay) and wall time."""
    kinds = Counter(r.plan.fault for r in results)
    outcomes = Counter(r.outcome.split(":")[0] for r in results)
    failed = [r for r in results if not r.ok]
    seconds = sorted(r.seconds for r in results)
    lines = [
        f"runs: {len(results)}",
        "faults: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
        "outcomes: " + ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items())),
        f"failures: {len(failed)}"
        + (
            f" (seeds {', '.join(str(s) for s in sorted(r.plan.seed for r in failed))})"
            if failed
            else ""
        ),
    ]
    if seconds:
        median = seconds[len(seconds) // 2]
        lines.append(
            f"wall per run: median {median:.1f} s, max {seconds[-1]:.1f} s,"
            f" total {sum(seconds) / 60:.1f} min"
        )
    broken = Counter(c.name for r in results for c in r.checks if not c.ok)
    if broken:
        lines.append(
            "invariants broken: " + ", ".join(f"{k} {n}" for k, n in sorted(broken.items()))
        )
    return "\n".join(lines)
