"""Tasks that upgrade kubeadm clusters and move nodes in and out of service."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.exceptions import Exit
from invoke.tasks import task

from nodeops import report
from nodeops.errors import NodeopsError
from nodeops.settings import DEFAULTS, open_inventory, setting, ssh_options
from nodeops.tasks.common import EXIT_NODE_FAILED, SELECT_HELP, reported
from nodeops.tasks.drain import control_plane

# Task bodies import what they use: `nodeops --help` must not pay for paramiko and the planner.
if TYPE_CHECKING:
    from nodeops.cmd import Cmd
    from nodeops.drainplan import DrainOptions
    from nodeops.fanout import Sessions
    from nodeops.inventory import Inventory
    from nodeops.node import Node
    from nodeops.result import Result
    from nodeops.runbook import Format, Runbook
    from nodeops.transport import SSHOptions, Transport
    from nodeops.upgrade import cluster
    from nodeops.upgrade.execute import NodeOutcome
    from nodeops.upgrade.nodesteps import UpgradeSettings

FORMATS = ("text", "markdown", "json")
REPAIR_DPKG_HELP = (
    "On a node whose dpkg was interrupted, run `dpkg --configure -a` first (otherwise such a"
    " node is refused)."
)
# How each node is reached (None: FabricTransport); unit tests put a FakeTransport factory here.
TRANSPORT_FACTORY: Callable[[Node, SSHOptions], Transport] | None = None
DRAIN_HELP = {
    "delete_emptydir_data": "Let the drain delete emptyDir data (kubectl --delete-emptydir-data).",
    "force": "Let the drain delete pods without a controller, for good (kubectl --force).",
}
COMMON_HELP = {
    "to": "Target: a version (1.30.2), a minor (1.30: its latest patch), latest-patch or "
    "next-minor.",
    "inventory": SELECT_HELP["inventory"],
    "accept_new_host_keys": SELECT_HELP["accept_new_host_keys"],
    "via": "The control-plane node kubectl runs on (default: the inventory's first).",
    "allow_downgrade": "Allow a target older than the control plane: an exact version at most"
    " one minor down (a minor downgrade does the workers first).",
    **DRAIN_HELP,
}


def _sessions(c: Any, inv: Inventory, accept_new_host_keys: bool) -> Sessions:
    from nodeops.fanout import Sessions
    from nodeops.transport import FabricTransport

    options = ssh_options(c.config, inv, accept_new_host_keys=accept_new_host_keys)
    return Sessions(options, factory=TRANSPORT_FACTORY or FabricTransport)


def _path_setting(config: Any, key: str) -> Path | None:
    """A directory setting, or None when this build has no such setting."""
    if key not in DEFAULTS:
        return None
    return Path(str(setting(config, key))).expanduser()


def _settings(config: Any, options: DrainOptions, repair_dpkg: bool = False) -> UpgradeSettings:
    from nodeops.upgrade.nodesteps import UpgradeSettings

    return UpgradeSettings(
        drain_timeout=int(setting(config, "drain_timeout")),
        dpkg_lock_timeout=int(setting(config, "dpkg_lock_timeout")),
        ready_timeout=float(setting(config, "ready_timeout")),
        command_timeout=float(setting(config, "command_timeout")),
        drain_options=options,
        repair_dpkg=repair_dpkg,
    )


def _drain_options(delete_emptydir_data: bool, force: bool) -> DrainOptions:
    from nodeops.drainplan import DrainOptions

    return DrainOptions(
        ignore_daemonsets=True, delete_emptydir_data=delete_emptydir_data, force=force
    )


def _flags(options: DrainOptions) -> list[str]:
    flags = ["--ignore-daemonsets"]
    if options.delete_emptydir_data:
        flags.append("--delete-emptydir-data")
    if options.force:
        flags.append("--force")
    return flags


def _check_format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise NodeopsError(f"--format is one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt  # type: ignore[return-value]


def _plan(
    c: Any,
    inv: Inventory,
    sessions: Sessions,
    cp: Node,
    nodes: list[Node],
    to: str,
    options: DrainOptions,
    max_unavailable: str,
    resume: str | None,
    hops: bool,
    allow_downgrade: bool = False,
    cordoned_by_run: frozenset[str] = frozenset(),
) -> Runbook:
    from nodeops.runbook import plan_runbook
    from nodeops.upgrade import lock
    from nodeops.upgrade.execute import drain_planner, read_inputs

    inputs = read_inputs(sessions, cp, nodes, parallel=int(setting(c.config, "parallel")))
    lock.check_free(sessions.to(cp), resume)
    return plan_runbook(
        state=inputs.state,
        nodes=nodes,
        facts=inputs.facts,
        to=to,
        current_repo=inputs.current_repo,
        max_unavailable=max_unavailable,
        drain_plan=drain_planner(inputs.drain_kinds, options),
        drain_flags=_flags(options),
        hops=hops,
        allow_downgrade=allow_downgrade,
        cordoned_by_run=cordoned_by_run,
    )


def _resume_command(task_name: str, to: str, run_id: str, extra: list[str]) -> str:
    return shlex.join(["nodeops", task_name, "--to", to, *extra, "--resume", run_id])


def _report_failure(outcome: NodeOutcome, resume: str) -> None:
    lines = [f'{outcome.node}: step "{outcome.failed_step}" failed: {outcome.error}']
    output = [line for line in outcome.output.strip().splitlines() if line.strip()]
    tail = output[-10:]
    # The first distinct error lines too: kubectl's reason often comes before its summary.
    errors = list(dict.fromkeys(line for line in output[:-10] if "error" in line.lower()))[:3]
    if errors:
        lines.append("  first errors:")
        lines.extend(f"    {line}" for line in errors)
    if tail:
        lines.append("  last output:")
        lines.extend(f"    {line}" for line in tail)
    lines.append(f"  node state now: {outcome.state}")
    lines.append(f"  resume with: {resume}")
    if "--repair-dpkg" in (outcome.error or "") and "--repair-dpkg" not in resume:
        # Never implied: the operator chooses whether nodeops may run dpkg --configure -a.
        lines.append(f"  or, letting nodeops finish dpkg first: {resume} --repair-dpkg")
    report.print_error("\n".join(lines))


def summary_rows(outcomes: list[NodeOutcome], not_started: list[str]) -> list[list[str]]:
    """One row per node and hop: where it ended, its cordoned window, what failed."""
    rows = []
    for o in outcomes:
        window = "-" if o.cordoned_seconds is None else f"{o.cordoned_seconds:.1f} s"
        if o.staged_only:
            rows.append([o.node, "not started", o.state, window, "the line was stopped"])
        elif o.ok:
            changed = sum(1 for r in o.reports if r.status.value == "changed")
            result = f"at {o.target}" if changed else f"at {o.target} (unchanged)"
            rows.append([o.node, "ok", result, window, ""])
        else:
            rows.append([o.node, "FAILED", o.state or "unknown", window, o.failed_step or ""])
    rows.extend([name, "not started", "", "-", "the line was stopped"] for name in not_started)
    return rows


def _print_summary(outcomes: list[NodeOutcome], not_started: list[str]) -> None:
    if not outcomes and not not_started:
        return
    print()
    report.print_table(
        "Summary",
        ["NODE", "RESULT", "STATE", "CORDONED", "FAILED STEP"],
        summary_rows(outcomes, not_started),
    )
    sys.stdout.flush()


def _upgrade(
    c: Any,
    task_name: str,
    *,
    to: str,
    node_names: list[str] | None,
    max_unavailable: str | None,
    dry_run: bool,
    resume: str | None,
    fmt: str,
    inventory: str | None,
    via: str | None,
    delete_emptydir_data: bool,
    force: bool,
    accept_new_host_keys: bool,
    repair_dpkg: bool = False,
    allow_downgrade: bool = False,
) -> None:
    from nodeops import journal as journals
    from nodeops.progress import Progress
    from nodeops.upgrade.execute import execute

    if not to:
        raise NodeopsError("name the target with --to (1.30.2, 1.30, latest-patch, next-minor)")
    form = _check_format(fmt)
    inv = open_inventory(c.config, inventory)
    cp = control_plane(inv, via)
    nodes = [inv.node(n) for n in node_names] if node_names else list(inv.nodes)
    options = _drain_options(delete_emptydir_data, force)
    unavailable = max_unavailable or str(setting(c.config, "max_unavailable"))
    journal_dir = Path(str(setting(c.config, "journal_dir"))).expanduser()
    cordoned_earlier: set[str] = set()
    journal: journals.Journal | None = None
    if resume:
        path = journal_dir / f"{Path(resume).name}.jsonl"
        events = journals.read(path)
        started = next((e for e in events if e.get("event") == "run-started"), {})
        if started.get("to") != to:
            raise NodeopsError(
                f"run {resume} upgraded to {started.get('to')!r}, not {to!r}: resume it with"
                f" the same --to"
            )
        cordoned_earlier = journals.cordoned_by_run(events)
    started_at = time.monotonic()
    with _sessions(c, inv, accept_new_host_keys) as s:
        hops = task_name == "upgrade-cluster"
        runbook = _plan(
            c, inv, s, cp, nodes, to, options, unavailable, resume, hops, allow_downgrade,
            frozenset(cordoned_earlier),
        )  # fmt: skip
        sys.stdout.write(runbook.render(form))
        sys.stdout.flush()
        if dry_run:
            return
        if runbook.empty and not runbook.later:
            return
        details: dict[str, Any] = {
            "to": to,
            "nodes": [n.name for n in runbook.nodes],
            "target": runbook.target_text,
        }
        if runbook.downgrade:
            # Journaled as such: a reader of the run sees it was a deliberate downgrade.
            details["downgrade"] = {
                "from": str(runbook.current),
                "order": "workers first" if runbook.workers_first else "control planes first",
            }
        if resume:
            journal = journals.Journal(
                journal_dir / f"{Path(resume).name}.jsonl", Path(resume).name
            )
            journal.record("run-resumed", **details)
        else:
            journal = journals.Journal.start(journal_dir, task_name, details)
        print(f"run {journal.run_id}; journal {journal.path}")
        extra = [] if not node_names else [f"--node={n}" for n in node_names]
        if task_name == "upgrade-cluster" and max_unavailable:
            extra.append(f"--max-unavailable={max_unavailable}")
        extra += [
            f
            for f, on in (
                ("--delete-emptydir-data", delete_emptydir_data),
                ("--force", force),
                ("--repair-dpkg", repair_dpkg),
                ("--allow-downgrade", allow_downgrade),
            )
            if on
        ]
        if inventory:
            extra += ["-i", inventory]
        resume_cmd = _resume_command(task_name, to, journal.run_id, extra)

        shown = Progress()

        def progress(outcome: NodeOutcome) -> None:
            if outcome.ok:
                window = (
                    f", cordoned {outcome.cordoned_seconds:.1f} s"
                    if outcome.cordoned_seconds is not None
                    else ""
                )
                changed = sum(1 for r in outcome.reports if r.status.value == "changed")
                shown.say(
                    f"{outcome.node}: at {outcome.target} ({changed} step(s) changed{window})"
                )

        outcomes: list[NodeOutcome] = []
        run_error: NodeopsError | None = None
        with shown:
            while True:
                try:
                    last = execute(
                        runbook,
                        sessions=s,
                        inventory_nodes={n.name: n for n in inv.nodes},
                        kubectl_node=cp,
                        journal=journal,
                        settings=_settings(c.config, options, repair_dpkg),
                        cordoned_earlier=cordoned_earlier,
                        on_node=progress,
                        on_step=shown.step,
                        etcd_backup_dir=_path_setting(c.config, "etcd_backup_dir"),
                        etcd_backup_keep=int(
                            setting(c.config, "etcd_backup_keep")
                            if "etcd_backup_keep" in DEFAULTS
                            else 7
                        ),
                        say=shown.say,
                    )
                    outcomes.extend(last)
                    if not all(o.ok for o in last) or len(last) < len(runbook.nodes):
                        break
                    if not runbook.later:
                        break
                    # The next minor: planned again from what the cluster says now.
                    cordoned_earlier = journals.cordoned_by_run(journals.read(journal.path))
                    runbook = _plan(
                        c, inv, s, cp, nodes, to, options, unavailable, journal.run_id, hops,
                        allow_downgrade, frozenset(cordoned_earlier),
                    )  # fmt: skip
                    shown.say("\n" + runbook.render(form).rstrip("\n"))
                except NodeopsError as error:
                    run_error = error
                    break
    if run_error is not None:
        journal.record("run-finished", status="failed", error=str(run_error))
        _print_summary(outcomes, [])
        report.print_error(f"{run_error}\n  resume with: {resume_cmd}")
        raise Exit(code=EXIT_NODE_FAILED)
    failed = [o for o in outcomes if not o.ok and not o.staged_only]
    seconds = time.monotonic() - started_at
    listed = {o.node for o in last}
    done = {o.node for o in last if not o.staged_only}
    _print_summary(outcomes, [n.name for n in runbook.nodes if n.name not in listed])
    if failed or len(done) < len(runbook.nodes):
        journal.record("run-finished", status="failed", seconds=round(seconds, 1))
        for outcome in failed:
            _report_failure(outcome, resume_cmd)
        not_started = len(runbook.nodes) - len(done)
        if not_started:
            report.print_error(f"{not_started} node(s) not started: the line was stopped")
        raise Exit(code=EXIT_NODE_FAILED)
    journal.record("run-finished", status="succeeded", seconds=round(seconds, 1))
    print(f"done in {seconds:.1f} s: every node is at {outcomes[-1].target if outcomes else to}")


@task(
    help={
        **COMMON_HELP,
        "format": "text, markdown or json.",
        "max_unavailable": "Workers upgraded at once: N or P% (default from invoke.yaml).",
    }
)
@reported
def plan(
    c: Any,
    to: str = "",
    format: str = "text",
    max_unavailable: str | None = None,
    inventory: str | None = None,
    via: str | None = None,
    delete_emptydir_data: bool = False,
    force: bool = False,
    accept_new_host_keys: bool = False,
    allow_downgrade: bool = False,
) -> None:
    """Print the runbook of a cluster upgrade, read-only; refusals exit 2.

    The target (a minor's latest patch is read from its repository when the hop starts),
    the control planes one by one, the worker batches, and the steps of each node. When
    the upgrade would be refused, every reason is listed and the exit code is 2.
    """
    _upgrade(
        c,
        "upgrade-cluster",
        to=to,
        node_names=None,
        max_unavailable=max_unavailable,
        dry_run=True,
        resume=None,
        fmt=format,
        inventory=inventory,
        via=via,
        delete_emptydir_data=delete_emptydir_data,
        force=force,
        accept_new_host_keys=accept_new_host_keys,
        allow_downgrade=allow_downgrade,
    )


@task(
    help={
        **COMMON_HELP,
        "node": "The node to upgrade.",
        "dry_run": "Print the runbook only.",
        "resume": "Continue a failed run by its id (the journal says what it cordoned).",
        "repair_dpkg": REPAIR_DPKG_HELP,
    }
)
@reported
def upgrade(
    c: Any,
    node: str = "",
    to: str = "latest-patch",
    dry_run: bool = False,
    resume: str | None = None,
    inventory: str | None = None,
    via: str | None = None,
    delete_emptydir_data: bool = False,
    force: bool = False,
    accept_new_host_keys: bool = False,
    repair_dpkg: bool = False,
    allow_downgrade: bool = False,
) -> None:
    """Upgrade one node to a version, safely; exit 0 only when it reached the target.

    Check, switch its repository, pre-stage packages, cordon, drain, kubeadm, kubelet, wait
    Ready, uncordon (only if it was schedulable before), verify. A worker is refused while
    the control plane is not ahead of it.
    """
    if not node:
        raise NodeopsError("name the node with --node")
    _upgrade(
        c,
        "upgrade",
        to=to,
        node_names=[node],
        max_unavailable=None,
        dry_run=dry_run,
        resume=resume,
        fmt="text",
        inventory=inventory,
        via=via,
        delete_emptydir_data=delete_emptydir_data,
        force=force,
        accept_new_host_keys=accept_new_host_keys,
        repair_dpkg=repair_dpkg,
        allow_downgrade=allow_downgrade,
    )


@task(
    name="upgrade-cluster",
    help={
        **COMMON_HELP,
        "max_unavailable": "Workers upgraded at once: N or P% (shrunk so budgets hold).",
        "dry_run": "Print the runbook and stop; only read-only commands are sent.",
        "resume": "Continue a failed run by its id (the journal says what it cordoned).",
        "format": "Runbook format: text, markdown or json.",
        "repair_dpkg": REPAIR_DPKG_HELP,
    },
)
@reported
def upgrade_cluster(
    c: Any,
    to: str = "",
    max_unavailable: str | None = None,
    dry_run: bool = False,
    resume: str | None = None,
    format: str = "text",
    inventory: str | None = None,
    via: str | None = None,
    delete_emptydir_data: bool = False,
    force: bool = False,
    accept_new_host_keys: bool = False,
    repair_dpkg: bool = False,
    allow_downgrade: bool = False,
) -> None:
    """Upgrade every node of the cluster; exit 0 only when every node reached the target.

    Control planes one by one (the first with `kubeadm upgrade apply`), then workers in
    batches. Prints the runbook first, stops the line at the first failure and says how to
    resume (`--resume RUN_ID`).
    """
    _upgrade(
        c,
        "upgrade-cluster",
        to=to,
        node_names=None,
        max_unavailable=max_unavailable,
        dry_run=dry_run,
        resume=resume,
        fmt=format,
        inventory=inventory,
        via=via,
        delete_emptydir_data=delete_emptydir_data,
        force=force,
        accept_new_host_keys=accept_new_host_keys,
        repair_dpkg=repair_dpkg,
        allow_downgrade=allow_downgrade,
    )


def _change_node(
    c: Any,
    task_name: str,
    node: str,
    command: Cmd,
    *,
    inventory: str | None,
    via: str | None,
    accept_new_host_keys: bool,
    timeout: float | None = None,
) -> tuple[Result, cluster.NodeStatus]:
    """Run one kubectl change on a control plane, journaled, and read the node back."""
    from nodeops import journal as journals

    inv = open_inventory(c.config, inventory)
    inv.node(node)
    cp = control_plane(inv, via)
    journal_dir = Path(str(setting(c.config, "journal_dir"))).expanduser()
    journal = journals.Journal.start(journal_dir, task_name, {"node": node, "via": cp.name})
    with _sessions(c, inv, accept_new_host_keys) as s:
        transport = journals.JournaledTransport(s.to(cp), journal, task_name)
        result = transport.run(command, timeout=timeout)
        status = _read_back(s, cp, node)
    journal.record(
        "run-finished",
        status="succeeded" if result.ok else "failed",
        unschedulable=status.unschedulable,
    )
    return result, status


NODE_CHANGE_HELP = {
    "node": "The node.",
    "inventory": SELECT_HELP["inventory"],
    "via": COMMON_HELP["via"],
    "accept_new_host_keys": SELECT_HELP["accept_new_host_keys"],
}


def _read_back(sessions: Sessions, cp: Node, name: str) -> cluster.NodeStatus:
    from nodeops.upgrade import cluster

    out = sessions.to(cp).run(cluster.get_node(name)).check().stdout
    return cluster.parse_node_json(out)


@task(help=NODE_CHANGE_HELP)
@reported
def cordon(
    c: Any,
    node: str = "",
    inventory: str | None = None,
    via: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Mark a node unschedulable, then read `.spec.unschedulable` back (exit 1 if not set)."""
    from nodeops import kube

    _, status = _change_node(
        c, "cordon", node, kube.cordon(node),
        inventory=inventory, via=via, accept_new_host_keys=accept_new_host_keys,
    )  # fmt: skip
    print(f"{node}: {status.describe()}")
    if not status.unschedulable:
        raise Exit(code=EXIT_NODE_FAILED)


@task(help=NODE_CHANGE_HELP)
@reported
def uncordon(
    c: Any,
    node: str = "",
    inventory: str | None = None,
    via: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Mark a node schedulable again, then read it back (exit 1 if still cordoned)."""
    from nodeops import kube

    _, status = _change_node(
        c, "uncordon", node, kube.uncordon(node),
        inventory=inventory, via=via, accept_new_host_keys=accept_new_host_keys,
    )  # fmt: skip
    print(f"{node}: {status.describe()}")
    if status.unschedulable:
        raise Exit(code=EXIT_NODE_FAILED)


@task(
    help={
        "node": "The node.",
        "inventory": SELECT_HELP["inventory"],
        "via": COMMON_HELP["via"],
        "timeout": "Seconds the drain may take (default: drain_timeout in invoke.yaml).",
        "accept_new_host_keys": SELECT_HELP["accept_new_host_keys"],
        **DRAIN_HELP,
    }
)
@reported
def drain(
    c: Any,
    node: str = "",
    timeout: int = 0,
    delete_emptydir_data: bool = False,
    force: bool = False,
    inventory: str | None = None,
    via: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Cordon and drain a node with a finite timeout, then read the cordon back.

    DaemonSet pods are ignored; `drain-plan` says first what the drain will do to each pod.
    `.spec.unschedulable` is read back afterwards (kubectl can exit 0 without cordoning).
    Exits 1 when the drain fails or the node is schedulable.
    """
    from nodeops import kube

    seconds = int(timeout) or int(setting(c.config, "drain_timeout"))
    command = kube.drain(node, _drain_options(delete_emptydir_data, force), timeout_seconds=seconds)
    result, status = _change_node(
        c, "drain", node, command,
        inventory=inventory, via=via, accept_new_host_keys=accept_new_host_keys,
        timeout=seconds + 60,
    )  # fmt: skip
    sys.stdout.write(result.stdout)
    print(f"{node}: {status.describe()}")
    if not result.ok or not status.unschedulable:
        report.print_error(result.describe_failure() if not result.ok else f"{node} is schedulable")
        raise Exit(code=EXIT_NODE_FAILED)
