"""Tasks about etcd and the cluster's data: snapshot backup, in-place restore, resource export."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.exceptions import Exit
from invoke.tasks import task

from nodeops import report
from nodeops.errors import NodeopsError
from nodeops.settings import open_inventory, setting, ssh_options
from nodeops.tasks.common import EXIT_NODE_FAILED, SELECT_HELP, Sessions, reported

# Task bodies import what they use: `nodeops --help` must not pay for paramiko and YAML.
if TYPE_CHECKING:
    from nodeops.inventory import Inventory
    from nodeops.node import Node

_NODE = "The control-plane node whose etcd member is used (default: the inventory's first)."
_COMMON = {
    "inventory": SELECT_HELP["inventory"],
    "accept_new_host_keys": SELECT_HELP["accept_new_host_keys"],
}


def _control_plane(inventory: Inventory, name: str | None) -> Node:
    if name:
        node = inventory.node(name)
        if not node.is_control_plane:
            raise NodeopsError(f"{name} is not a control-plane node in {inventory.source}")
        return node
    for node in inventory.nodes:
        if node.is_control_plane:
            return node
    raise NodeopsError(
        f"{inventory.source}: no node has the control-plane role; name one with --node"
    )


def _journal_dir(config: Any) -> Path:
    return Path(str(setting(config, "journal_dir"))).expanduser()


def _positive_int(value: Any, option: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise NodeopsError(f"{option} takes a whole number, not {value!r}") from None
    if number < 1:
        raise NodeopsError(f"{option} must be at least 1, not {number}")
    return number


@task(
    help={
        "node": _NODE,
        "dest": "Local directory for snapshots (default: nodeops.etcd_backup_dir, "
        "~/.local/share/nodeops/etcd-backups). Created 0700; never /tmp.",
        "keep": "How many valid snapshots to keep there, newest first (default 7).",
        "trial_restore": "Restore the snapshot into a scratch directory on the node as a "
        "check of its hash (default on; --no-trial-restore skips it).",
        "json": "Print the snapshot's metadata as JSON.",
        **_COMMON,
    }
)
@reported
def etcd_backup(
    c: Any,
    node: str | None = None,
    dest: str | None = None,
    keep: str | None = None,
    trial_restore: bool = True,
    json: bool = False,
    inventory: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Take a verified etcd snapshot and copy it here.

    Finds etcd.yaml through the kubelet's staticPodPath, derives the endpoint, CA and client
    pair from it (kubeadm's healthcheck-client pair when present), runs `etcdctl snapshot
    save` against that one endpoint into /var/lib/nodeops/etcd-snapshots (0700, root) on the
    node, checks it (`snapshot status`: revision and key count; sha256; a trial restore into
    a scratch directory), copies it here as a 0600 file in a 0700 directory with
    `<snapshot>.json` (cluster and etcd versions, revision, keys, sha256, node, time),
    removes the node's copy and keeps the newest --keep snapshots. A snapshot that fails its
    checks is kept marked invalid (etcd-restore refuses it) and the task exits 1. Every
    command is journaled.
    """
    from nodeops import etcdops
    from nodeops.journal import Journal, JournaledTransport

    inv = open_inventory(c.config, inventory)
    target = _control_plane(inv, node)
    dest_dir = Path(dest or str(setting(c.config, "etcd_backup_dir"))).expanduser()
    count = _positive_int(
        keep if keep is not None else setting(c.config, "etcd_backup_keep"), "--keep"
    )
    etcdops.check_local_dest(dest_dir)  # bad input: refused before connecting (exit 2)
    options = ssh_options(c.config, inv, accept_new_host_keys=accept_new_host_keys)
    journal = Journal.start(
        _journal_dir(c.config),
        "etcd-backup",
        {"node": target.name, "dest": str(dest_dir), "keep": count, "trial": trial_restore},
    )
    say = (lambda _: None) if json else print
    with Sessions(options) as sessions:
        node_j = JournaledTransport(sessions.to(target), journal, "etcd-backup")
        try:
            result = etcdops.take_backup(
                node_j, dest_dir=dest_dir, keep=count, trial=trial_restore, say=say
            )
        except NodeopsError as error:
            journal.record("run-finished", status="failed", error=str(error))
            report.print_error(f"{error}\njournal: {journal.path}")
            raise Exit(code=EXIT_NODE_FAILED) from None
    meta = result.stored.meta
    journal.record(
        "run-finished",
        status="succeeded",
        snapshot=str(result.stored.path),
        sha256=meta.sha256,
        seconds=round(result.seconds, 3),
        deleted=list(result.deleted),
    )
    if json:
        report.print_json(
            {"path": str(result.stored.path), **meta.__dict__, "seconds": round(result.seconds, 3)}
        )
        return
    print(
        f"{target.name}: snapshot {result.stored.path}: revision {meta.revision}, "
        f"{meta.total_keys} keys, {meta.size} bytes, etcd {meta.etcd_version or '?'}, cluster "
        f"{meta.cluster_version or '?'}; verified in {result.seconds:.1f} s"
    )
    if result.invalid_kept:
        print(
            f"note: snapshots marked invalid are kept for you to look at: "
            f"{', '.join(result.invalid_kept)}"
        )


@task(
    help={
        "snapshot": "The local snapshot file (etcd-backup's, with its .json next to it).",
        "node": _NODE,
        "yes": "Do not ask before changing the node (required when stdin is not a terminal).",
        "dry_run": "Check everything and show the plan: only read-only commands reach the node.",
        "timeout": "Seconds to wait for etcd healthy and for the API server ready "
        "(default: nodeops.etcd_restore_timeout, 180).",
        **_COMMON,
    }
)
@reported
def etcd_restore(
    c: Any,
    snapshot: str | None = None,
    node: str | None = None,
    yes: bool = False,
    dry_run: bool = False,
    timeout: str | None = None,
    inventory: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Restore a single-member etcd in place from a snapshot etcd-backup took.

    Refuses, before touching the node, a snapshot whose size or sha256 differ from its
    metadata or that is marked invalid, and a cluster of more than one etcd member (the help
    then says how a multi-member restore goes). Shows every step and asks unless --yes (with
    no terminal, --yes is required). Then: uploads the snapshot (0600 in a 0700 dir);
    checks it and restores it into a staging dir beside the data dir with the member flags
    of etcd.yaml; moves kube-apiserver.yaml out of the static pod dir to
    /etc/kubernetes/tmp/nodeops-etcd-restore-<ts>/ and waits until its port closes; moves
    etcd.yaml there and waits until etcd is gone; renames the data dir to
    <data dir>.nodeops-<ts> (kept) and the restored dir into place; puts etcd.yaml back and
    waits until etcd is healthy; puts the API server back and waits for /readyz. On any
    failure it puts the old manifests and data dir back and says so. Journaled.
    """
    from nodeops import etcdops
    from nodeops.journal import Journal, JournaledTransport

    if not snapshot:
        raise NodeopsError("name the snapshot with --snapshot FILE")
    wait = float(
        _positive_int(
            timeout if timeout is not None else setting(c.config, "etcd_restore_timeout"),
            "--timeout",
        )
    )
    snap = etcdops.check_local_snapshot(Path(snapshot).expanduser())
    inv = open_inventory(c.config, inventory)
    target = _control_plane(inv, node)
    options = ssh_options(c.config, inv, accept_new_host_keys=accept_new_host_keys)
    with Sessions(options) as sessions:
        node_t = sessions.to(target)
        prep = etcdops.prepare_restore(node_t, snap, etcd_timeout=wait)
        meta = snap.meta
        print(
            f"snapshot {snap.path}: taken {meta.taken_at} on {meta.node}, revision "
            f"{meta.revision}, {meta.total_keys} keys, cluster {meta.cluster_version or '?'}, "
            f"sha256 {meta.sha256[:16]}… (matches)"
        )
        for note in prep.notes:
            print(f"note: {note}")
        print("\n".join(prep.describe()))
        if dry_run:
            print("dry run: nothing was changed")
            return
        if not yes:
            if not sys.stdin.isatty():
                raise NodeopsError(
                    "refusing to restore without confirmation: stdin is not a terminal; pass --yes"
                )
            answer = input(f"Restore etcd on {target.name} from this snapshot? [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise NodeopsError("not confirmed: nothing was changed")
        journal = Journal.start(
            _journal_dir(c.config),
            "etcd-restore",
            {
                "node": target.name,
                "snapshot": str(snap.path),
                "sha256": meta.sha256,
                "stamp": prep.stamp,
            },
        )
        node_j = JournaledTransport(node_t, journal, "etcd-restore")
        try:
            outcome = etcdops.run_restore(node_j, prep, snap, say=print)
        except NodeopsError as error:
            journal.record("run-finished", status="failed", error=str(error))
            report.print_error(f"{error}\njournal: {journal.path}")
            raise Exit(code=EXIT_NODE_FAILED) from None
        journal.record(
            "run-finished",
            status="succeeded",
            kept=outcome.kept_dir,
            seconds=round(outcome.seconds, 3),
            steps={title: round(s, 3) for title, s in outcome.step_seconds},
        )
        nodes = etcdops.wait_nodes_ready(node_t, wait)
    print(
        f"{target.name}: etcd restored from {snap.path.name} in {outcome.seconds:.1f} s; "
        f"the old data dir is kept at {outcome.kept_dir}"
    )
    if nodes.not_ready:
        print(f"warning: nodes not Ready after {wait:g} s: {', '.join(nodes.not_ready)}")
    else:
        print(f"nodes Ready: {', '.join(nodes.ready)}")


@task(
    help={
        "out": "The YAML file to write (default: a new file in nodeops.resource_backup_dir). "
        "Never overwritten.",
        "include_secrets": "Export Secrets too (the file is 0600 either way).",
        "node": "The control-plane node kubectl runs on (default: the inventory's first).",
        **_COMMON,
    }
)
@reported
def backup_resources(
    c: Any,
    inventory: str | None = None,
    out: str | None = None,
    include_secrets: bool = False,
    node: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Export every listable kind the API offers as YAML that `kubectl apply -f` takes back.

    `kubectl get all` misses most kinds; this lists them with `kubectl api-resources
    --verbs=list`, namespaced and cluster-wide, and gets each. Left out: Events, objects a
    controller owns (their owner recreates them: ReplicaSets of Deployments, their Pods,
    mirror pods), Leases and Secrets unless --include-secrets. Stripped: status, uid,
    resourceVersion, creationTimestamp, managedFields, generation, the last-applied
    annotation, a Service's allocated clusterIP and a Node's podCIDR. Written as a new 0600
    file. Read-only on the cluster. Exits 1 when a kind could not be read (the rest is
    written).
    """
    from nodeops import etcdops

    inv = open_inventory(c.config, inventory)
    target = _control_plane(inv, node)
    if out:
        path = Path(out).expanduser()
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = (
            Path(str(setting(c.config, "resource_backup_dir"))).expanduser()
            / f"resources-{target.name}-{stamp}.yaml"
        )
    if path.exists() or path.is_symlink():
        raise NodeopsError(f"{path} exists: nodeops does not overwrite it; choose another --out")
    options = ssh_options(c.config, inv, accept_new_host_keys=accept_new_host_keys)
    with Sessions(options) as sessions:
        export = etcdops.export_resources(sessions.to(target), include_secrets=include_secrets)
    etcdops.write_private_new(path, export.to_yaml())
    secrets_note = f", {export.secrets} Secrets" if include_secrets else " (no Secrets)"
    print(
        f"{path}: {len(export.objects)} objects of {len(export.kinds)} kinds{secrets_note}; "
        f"{export.skipped_owned} owned by a controller left out"
    )
    if export.errors:
        report.print_error("some kinds were not exported:\n  " + "\n  ".join(export.errors))
        raise Exit(code=EXIT_NODE_FAILED)
