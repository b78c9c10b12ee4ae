"""Running an upgrade: read the cluster (read-only), plan the runbook, then work node by node."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeops import etcdops, kube, packages
from nodeops.cmd import cmd
from nodeops.drainplan import DrainOptions, DrainPlan, plan_drain
from nodeops.errors import NodeopsError, TransportError
from nodeops.facts import NodeFacts, gather_facts
from nodeops.fanout import Sessions, map_bounded
from nodeops.journal import Journal, JournaledTransport
from nodeops.node import Node
from nodeops.progress import StepEvent
from nodeops.runbook import NodePlan, Runbook
from nodeops.steps import Step, StepFailed, StepReport, run_step
from nodeops.upgrade import cluster, lock
from nodeops.upgrade.nodesteps import NodeJob, UpgradeSettings, node_steps
from nodeops.versions import PackageVersion, Version


@dataclass
class Inputs:
    """What planning reads from the cluster and the nodes (all read-only)."""

    state: cluster.ClusterState
    facts: dict[str, NodeFacts]
    current_repo: list[PackageVersion]
    drain_kinds: dict[str, list[dict[str, Any]]]


def read_inputs(
    sessions: Sessions, kubectl_node: Node, nodes: Sequence[Node], *, parallel: int = 32
) -> Inputs:
    """Nodes, control-plane pods, drain inputs, facts of every node, the current repo's versions."""
    t = sessions.to(kubectl_node)
    # One kubectl call: nodes, every pod (the static control-plane pods among them), budgets.
    drain_kinds = kube.split_kinds(t.run(kube.get_json(kube.DRAIN_INPUT_KINDS)).check().stdout)
    nodes_seen = [cluster.parse_node(item) for item in drain_kinds.get("Node", [])]
    state = cluster.ClusterState(
        {n.name: n for n in nodes_seen}, cluster.static_pods_of(drain_kinds.get("Pod", []))
    )
    everyone = list({n.name: n for n in [kubectl_node, *nodes]}.values())
    outcomes = sessions.each(everyone, gather_facts, parallel=parallel)
    facts: dict[str, NodeFacts] = {}
    for outcome in outcomes:
        if outcome.value is None:
            raise NodeopsError(f"cannot read {outcome.node.name}: {outcome.error}")
        facts[outcome.node.name] = outcome.value
    repo: list[PackageVersion] = []
    cp_facts = facts[kubectl_node.name]
    if cp_facts.platform is not None:
        pm = cp_facts.platform.package_manager
        listing = t.run(packages.available_versions_cmd(pm, "kubeadm"))
        if listing.ok:
            repo = packages.parse_available(pm, listing.stdout, "kubeadm")
    return Inputs(state, facts, repo, drain_kinds)


def drain_planner(
    kinds: dict[str, list[dict[str, Any]]], options: DrainOptions
) -> Callable[[list[str]], DrainPlan]:
    """Plan a drain of some nodes together from one read of the cluster."""

    def plan(names: list[str]) -> DrainPlan:
        return plan_drain(
            kinds.get("Node", []),
            kinds.get("Pod", []),
            kinds.get("PodDisruptionBudget", []),
            names,
            options,
            daemonsets=kinds.get("DaemonSet", []),
        )

    return plan


@dataclass
class NodeOutcome:
    """How one node's upgrade ended."""

    node: str
    ok: bool
    reports: list[StepReport] = field(default_factory=list)
    failed_step: str | None = None
    error: str | None = None
    output: str = ""
    state: str = ""
    target: Version | None = None
    cordoned_seconds: float | None = None
    # Staged ahead of its batch (repository switched, packages downloaded), then the line
    # stopped before the batch: not upgraded, not failed.
    staged_only: bool = False


# A step whose SSH connection dropped is run again (from its read of the real state) at most
# this many times, once the node answers again.
RETRIES_AFTER_CONNECTION_LOSS = 2


def _connection_lost(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, TransportError):
            return True
        seen = seen.__cause__
    return False


def wait_for_node(job: NodeJob) -> str | None:
    """Reconnect to the node (and the kubectl node) within `reconnect_seconds`; None when both
    answer again, else why not."""
    deadline = job.clock() + job.settings.reconnect_seconds
    while True:
        try:
            job.transport.run(cmd("true"), timeout=job.settings.poll_seconds + 10)
            job.kubectl.run(cmd("true"), timeout=job.settings.poll_seconds + 10)
            return None
        except TransportError as error:
            if job.clock() > deadline:
                return str(error)
        job.sleep(job.settings.poll_seconds)


def run_step_reconnecting(step: Step[NodeJob], job: NodeJob) -> StepReport:
    """Run a step; when its SSH connection drops, reconnect and run it again from its read of
    the node's real state (every step checks before it acts), a bounded number of times."""
    for attempt in range(RETRIES_AFTER_CONNECTION_LOSS + 1):
        try:
            return run_step(step, job)
        except StepFailed as error:
            if not _connection_lost(error) or attempt == RETRIES_AFTER_CONNECTION_LOSS:
                raise
            job.journal.record(
                "connection-lost", node=job.node.name, step=step.name, error=str(error)
            )
            why = wait_for_node(job)
            if why is not None:
                raise StepFailed(
                    f"{job.node.name}: the SSH connection was lost during step"
                    f' "{step.title}" and the node did not answer again within'
                    f" {job.settings.reconnect_seconds:g} s: {why}"
                ) from error
            job.journal.record("reconnected", node=job.node.name, step=step.name)
    raise AssertionError("unreachable")


# The steps before the cordon (check, repository, download): nothing a workload notices, so
# workers run them ahead of their batch (Stager) while earlier nodes are upgraded.
STAGING_STEPS = 3
# Nodes staged at once ahead of their batches: twice the widest batch (staging takes about
# as long as a batch's cordoned window), within what one controller keeps open comfortably.
STAGING_PARALLEL_MAX = 32


class NodeRun:
    """One node's steps, run in parts: the staging steps may run ahead of the node's batch.

    The same step instances run both parts (steps keep what they learned about the node)."""

    def __init__(self, job: NodeJob, on_step: Callable[[StepEvent], None] | None = None) -> None:
        self.job = job
        self.on_step = on_step
        self.steps = node_steps()
        self.outcome = NodeOutcome(job.node.name, ok=True)
        self.done = 0  # steps finished so far
        self._cordoned_at: float | None = None

    def run_until(self, stop: int) -> NodeOutcome:
        """Run the steps up to (not including) index `stop`, stopping at the first failure."""
        job, outcome = self.job, self.outcome
        while outcome.ok and self.done < min(stop, len(self.steps)):
            step = self.steps[self.done]
            index = self.done + 1
            began = job.clock()
            self._tell(step, index, "started", began)
            try:
                report = run_step_reconnecting(step, job)
            except StepFailed as error:
                self._tell(step, index, "failed", began)
                outcome.ok = False
                outcome.failed_step = step.title
                outcome.error = str(error)
                outcome.output = error.output
                try:
                    outcome.state = job.read_node().describe()
                except NodeopsError as read_error:
                    outcome.state = f"unknown ({read_error})"
                break
            self._tell(step, index, report.status.value, began)
            self.done += 1
            outcome.reports.append(report)
            if step.name == "cordon" and report.status.value == "changed":
                self._cordoned_at = job.clock()
            if step.name == "uncordon" and self._cordoned_at is not None:
                outcome.cordoned_seconds = job.clock() - self._cordoned_at
        outcome.target = job.target
        return outcome

    def stage(self) -> NodeRun:
        """The steps before the cordon."""
        self.run_until(STAGING_STEPS)
        return self

    def finish(self) -> NodeOutcome:
        """Every step not run yet."""
        return self.run_until(len(self.steps))

    def _tell(self, step: Step[NodeJob], index: int, status: str, began: float) -> None:
        if self.on_step is not None:
            seconds = float(self.job.clock() - began)
            event = StepEvent(
                self.job.node.name, index, len(self.steps), step.title, status, seconds
            )
            self.on_step(event)


def run_node(job: NodeJob, on_step: Callable[[StepEvent], None] | None = None) -> NodeOutcome:
    """Every step of one node, stopping at the first failure; the node's state after."""
    return NodeRun(job, on_step).finish()


def staged_only(run: NodeRun) -> NodeOutcome:
    """The outcome of a node staged ahead of a batch that never came (the line stopped)."""
    outcome = run.outcome
    if outcome.ok:
        outcome.ok = False
        outcome.staged_only = True
        outcome.state = "packages staged, never cordoned"
    return outcome


class Stager:
    """Stages worker nodes ahead of their batches: in batch order, in a bounded pool, while
    the nodes before them are upgraded. Each node's run is taken for its batch's turn."""

    def __init__(
        self, batches: Sequence[Sequence[NodePlan]], make_run: Callable[[NodePlan], NodeRun]
    ) -> None:
        self.batches = batches
        self.make_run = make_run
        widest = max((len(batch) for batch in batches), default=1)
        self.pool = ThreadPoolExecutor(
            max_workers=min(STAGING_PARALLEL_MAX, max(2 * widest, 4)),
            thread_name_prefix="stage",
        )
        self.staging: dict[str, Future[NodeRun]] = {}
        self.taken: set[str] = set()

    def _submit(self, plan: NodePlan) -> Future[NodeRun]:
        if plan.name not in self.staging:
            self.staging[plan.name] = self.pool.submit(self.make_run(plan).stage)
        return self.staging[plan.name]

    def stage_all(self) -> None:
        """Start staging every worker not started yet (the target must be known by now)."""
        for batch in self.batches:
            for plan in batch:
                self._submit(plan)

    def take(self, batch: Sequence[NodePlan]) -> list[NodeRun]:
        """A batch's staged runs, staging whatever was not staged ahead; waits for them."""
        futures = [self._submit(plan) for plan in batch]
        self.taken.update(plan.name for plan in batch)
        return [future.result() for future in futures]

    def stop(self) -> list[NodeOutcome]:
        """The line stopped: staging not begun is called off, staging under way is let finish
        (a download cut half way helps no one); the outcomes of the nodes it reached."""
        left = [f for name, f in self.staging.items() if name not in self.taken]
        for future in left:
            future.cancel()
        return [staged_only(f.result()) for f in left if not f.cancelled()]

    def close(self) -> None:
        """Wait for staging under way; call off the rest."""
        self.pool.shutdown(wait=True, cancel_futures=True)


def backup_etcd(
    sessions: Sessions, node: Node, journal: Journal, dest_dir: Path | None, keep: int
) -> str:
    """The first control plane's etcd snapshot (nodeops.etcdops), before anything changes.

    Skipped, and journaled as skipped with the reason, when no backup directory is
    configured; a failed snapshot stops the run (StepFailed) before any node is touched.
    """
    if dest_dir is None:
        reason = "no etcd_backup_dir is configured"
        journal.record(
            "step-finished",
            node=node.name,
            step="etcd-snapshot",
            title="Snapshot etcd",
            status="skipped",
            reason=reason,
        )
        return f"skipped: {reason}"
    transport = JournaledTransport(sessions.to(node), journal, "etcd-snapshot")
    journal.record("step-started", node=node.name, step="etcd-snapshot", title="Snapshot etcd")
    try:
        meta = etcdops.backup_etcd(transport, dest_dir=dest_dir, keep=keep)
    except NodeopsError as error:
        journal.record(
            "step-finished",
            node=node.name,
            step="etcd-snapshot",
            title="Snapshot etcd",
            status="failed",
            error=str(error),
        )
        raise StepFailed(
            f"{node.name}: the etcd snapshot failed, nothing was changed: {error}"
        ) from error
    where = f"{dest_dir}/{meta.file}"
    journal.record(
        "step-finished",
        node=node.name,
        step="etcd-snapshot",
        title="Snapshot etcd",
        status="changed",
        snapshot=where,
        sha256=getattr(meta, "sha256", None),
    )
    return f"saved {where}"


def execute(
    runbook: Runbook,
    *,
    sessions: Sessions,
    inventory_nodes: dict[str, Node],
    kubectl_node: Node,
    journal: Journal,
    settings: UpgradeSettings,
    cordoned_earlier: set[str],
    on_node: Callable[[NodeOutcome], None] = lambda o: None,
    on_step: Callable[[StepEvent], None] | None = None,
    etcd_backup_dir: Path | None = None,
    etcd_backup_keep: int = 7,
    say: Callable[[str], None] = lambda line: None,
) -> list[NodeOutcome]:
    """Take the cluster lock, upgrade control planes one by one, then worker batches in
    parallel (the other way round for a minor downgrade, after the etcd snapshot all the
    same); stop the line at the first failed node. Releases the lock at the end."""
    cp_transport = JournaledTransport(sessions.to(kubectl_node), journal, "cluster-lock")
    lock.acquire(cp_transport, journal.run_id)
    outcomes: list[NodeOutcome] = []
    run_dir = f"/etc/kubernetes/tmp/nodeops-{journal.run_id}"
    target = runbook.target

    def job_for(plan: NodePlan) -> NodeJob:
        node = inventory_nodes[plan.name]
        return NodeJob(
            node=node,
            transport=JournaledTransport(sessions.to(node), journal),
            kubectl=JournaledTransport(sessions.to(kubectl_node), journal),
            journal=journal,
            target=target,
            minor=runbook.minor,
            action=plan.action,
            run_dir=run_dir,
            settings=settings,
            cordoned_earlier_by_run=plan.name in cordoned_earlier,
            downgrade=runbook.downgrade,
        )

    stager = Stager(runbook.batches, lambda plan: NodeRun(job_for(plan), on_step))

    def control_planes() -> bool:
        nonlocal target
        for plan in runbook.control_planes:
            run = NodeRun(job_for(plan), on_step).stage()
            if run.outcome.ok and not runbook.workers_first:
                # The target is known once the first control plane switched its repository:
                # the workers stage from now on, while the control planes are upgraded.
                target = target or run.job.target
                if target is not None:
                    stager.stage_all()
            outcome = run.finish()
            outcomes.append(outcome)
            on_node(outcome)
            if not outcome.ok:
                outcomes.extend(stager.stop())
                return False
            target = outcome.target
        return True

    def worker_batches() -> bool:
        nonlocal target
        for number, batch in enumerate(runbook.batches):
            runs = stager.take(batch)
            if number == 0:
                if target is None and runs and runs[0].outcome.ok:
                    target = runs[0].job.target  # read when its repository was switched
                # A first batch that failed its staging stops the line: nothing staged ahead.
                if all(r.outcome.ok for r in runs):
                    stager.stage_all()
            results = map_bounded(NodeRun.finish, runs, max(1, len(runs)))
            for outcome in results:
                outcomes.append(outcome)
                on_node(outcome)
            if not all(o.ok for o in results):
                outcomes.extend(stager.stop())
                return False
        return True

    # A minor downgrade puts the workers first: a kubelet may never be newer than the apiserver.
    phases = (
        (worker_batches, control_planes)
        if runbook.workers_first
        else (control_planes, worker_batches)
    )
    try:
        if runbook.control_planes and runbook.control_planes[0].action == "apply":
            first = inventory_nodes[runbook.control_planes[0].name]
            say(f"etcd snapshot on {first.name}: ...")
            say(
                f"etcd snapshot on {first.name}: "
                + backup_etcd(sessions, first, journal, etcd_backup_dir, etcd_backup_keep)
            )
        for phase in phases:
            if not phase():
                break
        return outcomes
    finally:
        stager.close()
        try:
            lock.release(cp_transport, journal.run_id)
        except NodeopsError as error:
            journal.record("lock-release-failed", error=str(error))
