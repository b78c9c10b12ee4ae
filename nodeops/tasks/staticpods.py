"""Tasks about the kubelet's configuration and static pods."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.exceptions import Exit
from invoke.tasks import task

from nodeops import report
from nodeops.errors import NodeopsError
from nodeops.settings import open_inventory, ssh_options
from nodeops.tasks.common import (
    EXIT_NODE_FAILED,
    SELECT_HELP,
    Sessions,
    reported,
    seconds_option,
)

# Task bodies import what they use: `nodeops --help` must not pay for paramiko and Jinja2.
if TYPE_CHECKING:
    from nodeops.kubeletconfig import KubeletConfigFinding
    from nodeops.node import Node

#: Where journals go when the config names no `nodeops.journal_dir`.
DEFAULT_JOURNAL_DIR = "~/.local/state/nodeops/journal"

_COMMON = {
    "node": "The node (its name in the inventory).",
    "inventory": SELECT_HELP["inventory"],
    "accept_new_host_keys": SELECT_HELP["accept_new_host_keys"],
}
_VIA = "The control-plane node kubectl runs on (default: the inventory's first)."


def _journal_dir(config: Any) -> Path:
    section = config.get("nodeops", {}) if config is not None else {}
    return Path(str(section.get("journal_dir") or DEFAULT_JOURNAL_DIR)).expanduser()


def _one_node(c: Any, inventory: str | None, node: str | None) -> tuple[Any, Node]:
    if not node:
        raise NodeopsError("name the node with --node")
    inv = open_inventory(c.config, inventory)
    return inv, inv.node(node)


def _finding(
    c: Any, inventory: str | None, node: str | None, accept: bool
) -> tuple[Node, KubeletConfigFinding]:
    from nodeops import staticpodops

    inv, target = _one_node(c, inventory, node)
    with Sessions(ssh_options(c.config, inv, accept_new_host_keys=accept)) as sessions:
        return target, staticpodops.read_kubelet_config(sessions.to(target))


@task(help={**_COMMON, "json": "Print JSON instead of lines."})
@reported
def kubelet_config(
    c: Any,
    node: str | None = None,
    inventory: str | None = None,
    json: bool = False,
    accept_new_host_keys: bool = False,
) -> None:
    """Show which configuration file a node's kubelet reads and its staticPodPath, each with
    where it was found (the running kubelet's flags, the systemd unit and its drop-ins, the
    environment files, the config file), and anything that disagrees. Read-only.
    """
    target, finding = _finding(c, inventory, node, accept_new_host_keys)
    if json:
        report.print_json({"node": target.name, **finding.to_dict()})
        return
    config = finding.config_path
    static = finding.static_pod_path
    print(f"node:          {target.name}")
    print(f"flags from:    {finding.argv_source or '-'}")
    print(f"config file:   {config.value + '  (' + config.source + ')' if config else '-'}")
    print(
        "staticPodPath: "
        + (f"{static.value}  ({static.source})" if static else f"- ({finding.static_pod_reason})")
    )
    for conflict in finding.conflicts:
        print(f"conflict:      {conflict}")
    for note in finding.notes:
        print(f"note:          {note}")


@task(help=_COMMON)
@reported
def static_pod_path(
    c: Any,
    node: str | None = None,
    inventory: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Print a node's staticPodPath and where it comes from (`PATH<TAB>SOURCE`). Exits 2
    when it cannot be resolved, saying why. Read-only.
    """
    from nodeops import staticpodops

    target, finding = _finding(c, inventory, node, accept_new_host_keys)
    path = staticpodops.static_pod_path(finding, target.name)
    source = finding.static_pod_path.source if finding.static_pod_path else ""
    print(f"{path}\t{source}")


@task(help={**_COMMON, "via": _VIA, "json": "Print JSON instead of a table."})
@reported
def static_pods(
    c: Any,
    node: str | None = None,
    inventory: str | None = None,
    via: str | None = None,
    json: bool = False,
    accept_new_host_keys: bool = False,
) -> None:
    """List the manifests in a node's staticPodPath with the status of their mirror pods
    (NAME-NODENAME in the API), and any stray files the kubelet would also read. Read-only.
    """
    from nodeops import staticpodops

    inv, target = _one_node(c, inventory, node)
    api_node = staticpodops.control_plane(inv, via)
    options = ssh_options(c.config, inv, accept_new_host_keys=accept_new_host_keys)
    with Sessions(options) as sessions:
        finding = staticpodops.read_kubelet_config(sessions.to(target))
        path = staticpodops.static_pod_path(finding, target.name)
        pod_dir = staticpodops.read_static_pod_dir(sessions.to(target), path)
        mirrors = staticpodops.mirror_pods(sessions.to(api_node), target.name)
    rows: list[dict[str, Any]] = []
    for manifest in pod_dir.manifests:
        mirror = None
        if manifest.pod_name:
            key = (
                manifest.namespace or "default",
                staticpodops.mirror_name(manifest.pod_name, target.name),
            )
            mirror = mirrors.get(key)
        rows.append(
            {
                "file": manifest.file,
                "pod": manifest.pod_name,
                "namespace": manifest.namespace,
                "mirror": mirror.to_dict() if mirror else None,
                "problem": manifest.problem,
            }
        )
    if json:
        report.print_json(
            {
                "node": target.name,
                "static_pod_path": path,
                "manifests": rows,
                "stray_files": pod_dir.stray,
            }
        )
        return
    report.print_table(
        f"Static pods on {target.name} ({path})",
        ("FILE", "NAMESPACE", "MIRROR POD", "PHASE", "READY"),
        [
            [
                r["file"],
                r["namespace"] or "-",
                r["mirror"]["name"] if r["mirror"] else (r["problem"] or "(no mirror pod)"),
                r["mirror"]["phase"] if r["mirror"] else "-",
                r["mirror"]["ready"] if r["mirror"] else "-",
            ]
            for r in rows
        ],
    )
    if pod_dir.stray:
        print(f"stray files (read by the kubelet, no manifests): {', '.join(pod_dir.stray)}")


@task(
    iterable=["set"],
    help={
        **_COMMON,
        "template": "scheduler (a second kube-scheduler copied from the node's own: --set"
        " name=NAME), generic (--set name=… image=…, optional namespace, container_name,"
        " image_pull_policy, host_network, port, command/args as a JSON list, env.VAR), web"
        " (name, image, port, namespace, role), or a path to a local *.j2 template.",
        "set": "A template value, key=value (repeatable).",
        "dry_run": "Print the diff and stop: only read-only commands reach the node.",
        "allow_stray_files": "Write even though the manifest directory holds stray files.",
        "timeout": "Seconds to wait for the mirror pod to be Running (default 120).",
        "via": _VIA,
    },
)
@reported
def static_pod_apply(
    c: Any,
    node: str | None = None,
    inventory: str | None = None,
    template: str | None = None,
    set: list[str] | None = None,
    dry_run: bool = False,
    allow_stray_files: bool = False,
    timeout: str | None = None,
    via: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Render a static pod from a template and install it in the node's staticPodPath.

    Prints a unified diff against the node's file; writes atomically (a 0600 temp file in
    /etc/kubernetes/tmp, then a rename); keeps a replaced manifest in
    /etc/kubernetes/tmp/nodeops-<stamp>/; then waits until mirror pod NAME-NODENAME is
    Running and, if it is not in time, puts the previous manifest back. Refuses a template
    that renders anything but one valid Pod, and a directory with stray files (*.bak, *~,
    #…#). Every command is journaled. Exits 1 when the pod did not come up, 2 when refused.
    """
    from nodeops import staticpodops
    from nodeops.journal import Journal, JournaledTransport

    if not template:
        raise NodeopsError("name a template with --template (scheduler, generic, web or a file)")
    staticpodops.check_template(template)
    sets = staticpodops.parse_sets(set or [])
    wait = seconds_option(timeout, "--timeout") or staticpodops.DEFAULT_TIMEOUT
    inv, target = _one_node(c, inventory, node)
    # Templates that need nothing from the node are rendered and validated before connecting.
    rendered = staticpodops.render_offline(template, sets)
    api_node = staticpodops.control_plane(inv, via)
    stamp = staticpodops.new_stamp()
    options = ssh_options(c.config, inv, accept_new_host_keys=accept_new_host_keys)
    with Sessions(options) as sessions:
        node_t = sessions.to(target)
        finding = staticpodops.read_kubelet_config(node_t)
        path = staticpodops.static_pod_path(finding, target.name)
        extra = []
        if template == "scheduler":
            config = staticpodops.scheduler_config_path(sets)
            extra = [config] if config else []
        pod_dir = staticpodops.read_static_pod_dir(node_t, path, extra)
        plan = staticpodops.plan_apply(
            target.name,
            template,
            sets,
            pod_dir,
            stamp=stamp,
            allow_stray_files=allow_stray_files,
            rendered=rendered,
        )
        diff = plan.diff()
        if diff:
            sys.stdout.write(diff)
        if dry_run:
            verb = "would change" if plan.changes else "would leave unchanged"
            print(f"dry run: {target.name}: {verb} {plan.manifest.path}; nothing was written")
            return
        if not plan.changes:
            mirror = staticpodops.mirror_pod(
                sessions.to(api_node), target.name, plan.namespace, plan.mirror
            )
            state = f"{mirror.phase}, {mirror.ready} ready" if mirror else "no mirror pod"
            print(
                f"{target.name}: {plan.manifest.path} unchanged;"
                f" {plan.namespace}/{plan.mirror}: {state}"
            )
            return
        journal = Journal.start(
            _journal_dir(c.config),
            "static-pod-apply",
            {"node": target.name, "template": template, "pod": plan.pod_name, "stamp": stamp},
        )
        node_j = JournaledTransport(node_t, journal, "static-pod-apply")
        api_j = JournaledTransport(sessions.to(api_node), journal, "wait-mirror-pod")
        try:
            outcome = staticpodops.apply(node_j, api_j, plan, timeout=wait, say=print)
        except staticpodops.StaticPodFailed as error:
            journal.record("run-finished", status="failed", error=str(error))
            report.print_error(f"{error}\njournal: {journal.path}")
            raise Exit(code=EXIT_NODE_FAILED) from None
        except NodeopsError as error:
            journal.record("run-finished", status="failed", error=str(error))
            raise NodeopsError(f"{error}\njournal: {journal.path}") from None
        journal.record(
            "run-finished", status="succeeded", changed=plan.changes, seconds=outcome.seconds
        )
    mirror = outcome.mirror
    state = f"{mirror.phase}, {mirror.ready} ready" if mirror else "no mirror pod"
    print(
        f"{target.name}: {plan.namespace}/{plan.mirror} {state} after {outcome.seconds or 0:.1f} s"
    )


@task(
    help={
        **_COMMON,
        "name": "The static pod's name (as in its manifest, or its mirror pod NAME-NODENAME).",
        "dry_run": "Say what would be moved and stop: only read-only commands reach the node.",
        "timeout": "Seconds to wait for the mirror pod to disappear (default 120).",
        "via": _VIA,
    }
)
@reported
def static_pod_remove(
    c: Any,
    node: str | None = None,
    inventory: str | None = None,
    name: str | None = None,
    dry_run: bool = False,
    timeout: str | None = None,
    via: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Remove a static pod: its manifest is moved out of staticPodPath to
    /etc/kubernetes/tmp/nodeops-<stamp>/ (kept, never deleted), with the configuration file
    of a second scheduler nodeops made; then waits until the mirror pod is gone. kubeadm's
    own control-plane pods are refused. Journaled; exits 1 when the mirror pod stays.
    """
    from nodeops import staticpodops
    from nodeops.journal import Journal, JournaledTransport

    if not name:
        raise NodeopsError("name the static pod with --name")
    wait = seconds_option(timeout, "--timeout") or staticpodops.DEFAULT_TIMEOUT
    inv, target = _one_node(c, inventory, node)
    api_node = staticpodops.control_plane(inv, via)
    stamp = staticpodops.new_stamp()
    options = ssh_options(c.config, inv, accept_new_host_keys=accept_new_host_keys)
    with Sessions(options) as sessions:
        node_t = sessions.to(target)
        finding = staticpodops.read_kubelet_config(node_t)
        path = staticpodops.static_pod_path(finding, target.name)
        pod_dir = staticpodops.read_static_pod_dir(node_t, path)
        plan = staticpodops.plan_remove(target.name, name, pod_dir, stamp=stamp)
        for moved in plan.paths:
            print(
                f"{target.name}: {'would move' if dry_run else 'moving'} {moved} to"
                f" {plan.kept(moved)}"
            )
        if dry_run:
            print("dry run: nothing was moved")
            return
        journal = Journal.start(
            _journal_dir(c.config),
            "static-pod-remove",
            {"node": target.name, "pod": plan.pod_name, "stamp": stamp},
        )
        node_j = JournaledTransport(node_t, journal, "static-pod-remove")
        api_j = JournaledTransport(sessions.to(api_node), journal, "wait-mirror-pod-gone")
        try:
            seconds = staticpodops.remove(node_j, api_j, plan, timeout=wait)
        except staticpodops.StaticPodFailed as error:
            journal.record("run-finished", status="failed", error=str(error))
            report.print_error(f"{error}\njournal: {journal.path}")
            raise Exit(code=EXIT_NODE_FAILED) from None
        except NodeopsError as error:
            journal.record("run-finished", status="failed", error=str(error))
            raise NodeopsError(f"{error}\njournal: {journal.path}") from None
        journal.record("run-finished", status="succeeded", seconds=seconds)
    print(
        f"{target.name}: mirror pod {plan.namespace}/{plan.mirror} gone after {seconds:.1f} s;"
        f" manifest kept at {plan.kept(plan.paths[0])}"
    )
