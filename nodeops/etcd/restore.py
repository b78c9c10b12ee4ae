"""Restoring an etcd member from a snapshot: input checks, the restore command, the step plan.

The plan restores into a staging directory next to the data dir (same filesystem) while
etcd still runs, then swaps directories: the old data dir is renamed to
`<data dir>.nodeops-<ts>` and kept, the restored one takes its place. The manifest is never
edited: kubeadm re-renders etcd.yaml from ClusterConfiguration (etcd.local.dataDir) on every
`kubeadm upgrade`, so a manifest pointing at a new hostPath would silently be pointed back
at the old directory; and undoing a swap is two renames.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from nodeops.cmd import Cmd, Raw, cmd
from nodeops.errors import NodeopsError
from nodeops.etcd.flags import EtcdctlArgs, EtcdMember
from nodeops.etcd.snapshot import (
    DEFAULT_BUMP,
    EtcdTools,
    SnapshotMeta,
    check_node_path,
    endpoint_health,
    make_private_dir,
    snapshot_status,
    trial_restore,
)


class RestoreRefused(NodeopsError):
    """A restore nodeops will not start; nothing on the node was changed."""


def _norm_url(url: str) -> str:
    part = urlsplit(url)
    host = (part.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    port = part.port
    return f"{part.scheme.lower()}://{host}" + (f":{port}" if port else "")


def effective_initial_cluster(
    member: EtcdMember, override: Sequence[tuple[str, str]] | None = None
) -> tuple[tuple[str, str], ...]:
    """The `--initial-cluster` a restore uses: the override, else the manifest's."""
    return tuple(override) if override is not None else member.initial_cluster


def check_restore_inputs(
    member: EtcdMember,
    *,
    meta: SnapshotMeta | None = None,
    initial_cluster: Sequence[tuple[str, str]] | None = None,
    whole_cluster: bool = False,
) -> list[str]:
    """Every reason this restore must not start (empty when it may). Pure; run before changes.

    - `--name` is known and appears in the initial cluster, whose URLs for it equal
      `--initial-advertise-peer-urls` (3.4 silently records http://localhost:2380 otherwise);
    - the data dir is a hostPath nodeops can rename, and not a top-level directory;
    - the snapshot is not marked invalid and has a revision and keys;
    - a multi-member cluster is only restored as a whole (`whole_cluster=True`: every member
      from the same snapshot with the same initial cluster). A single restored member would
      form a new cluster beside the old one. A joined member's manifest may list only the
      members that existed when it joined: pass the full `initial_cluster` then.
    """
    problems: list[str] = []
    cluster = effective_initial_cluster(member, initial_cluster)
    names = tuple(dict.fromkeys(name for name, _ in cluster))
    if not member.name:
        problems.append("the etcd manifest has no --name")
    if not cluster:
        problems.append("no --initial-cluster (in the manifest or given)")
    elif member.name and member.name not in names:
        problems.append(
            f"--name {member.name!r} is not in --initial-cluster ({', '.join(names)}): the "
            "restored member would not find itself in the cluster"
        )
    if not member.initial_advertise_peer_urls:
        problems.append(
            "no --initial-advertise-peer-urls: a restore would record http://localhost:2380"
        )
    elif member.name and member.name in names:
        mine = {_norm_url(url) for name, url in cluster if name == member.name}
        advertised = {_norm_url(url) for url in member.initial_advertise_peer_urls}
        if mine != advertised:
            problems.append(
                f"--initial-cluster gives {member.name!r} {sorted(mine)} but "
                f"--initial-advertise-peer-urls is {sorted(advertised)}"
            )
    if len(names) > 1 and not whole_cluster:
        problems.append(
            f"the cluster has {len(names)} members ({', '.join(names)}): restore every member "
            "from the same snapshot (whole_cluster), or remove and re-add this member instead"
        )
    if member.data_dir_host is None:
        problems.append(f"the data dir {member.data_dir} is not backed by a hostPath volume")
    else:
        try:
            path = check_node_path(member.data_dir_host, what="data dir")
        except ValueError as error:
            problems.append(str(error))
        else:
            if path.count("/") < 2:
                problems.append(f"refusing to rename the top-level directory {path}")
    if member.wal_dir and member.wal_dir_host is None:
        problems.append(f"the WAL dir {member.wal_dir} is not backed by a hostPath volume")
    if member.wal_dir:
        problems.append("a separate --wal-dir is not handled by the restore plan yet")
    if meta is not None:
        if not meta.valid:
            problems.append(f"the snapshot is marked invalid: {'; '.join(meta.problems)}")
        if meta.revision <= 0 or meta.total_keys <= 0:
            problems.append(f"the snapshot has revision {meta.revision} and {meta.total_keys} keys")
    return problems


def require_restore_inputs(
    member: EtcdMember,
    *,
    meta: SnapshotMeta | None = None,
    initial_cluster: Sequence[tuple[str, str]] | None = None,
    whole_cluster: bool = False,
) -> None:
    """Raise RestoreRefused with every problem check_restore_inputs finds."""
    problems = check_restore_inputs(
        member, meta=meta, initial_cluster=initial_cluster, whole_cluster=whole_cluster
    )
    if problems:
        raise RestoreRefused("etcd restore refused, nothing changed:\n  " + "\n  ".join(problems))


def restore(
    member: EtcdMember,
    path: str,
    new_dir: str,
    *,
    tools: EtcdTools,
    bump: int = 0,
    initial_cluster: Sequence[tuple[str, str]] | None = None,
) -> Cmd:
    """`etcdutl|etcdctl snapshot restore FILE --data-dir NEW --name … --initial-cluster …`.

    `bump` > 0 adds `--bump-revision=N --mark-compacted` (etcd 3.5.10+); asking for it with
    a tool that lacks it is an error rather than a silently different restore.
    """
    cluster = effective_initial_cluster(member, initial_cluster)
    if not member.name or not cluster or not member.initial_advertise_peer_urls:
        raise RestoreRefused("restore needs --name, --initial-cluster and peer URLs")
    if bump and not tools.bump_revision:
        raise RestoreRefused(
            f"{tools.offline} {_v(tools)} has no --bump-revision/--mark-compacted (3.5.10+)"
        )
    argv: list[str] = []
    if tools.env:
        argv += ["env", *(f"{k}={v}" for k, v in tools.env.items())]
    argv += [
        tools.offline,
        "snapshot",
        "restore",
        check_node_path(path, what="snapshot path"),
        f"--data-dir={check_node_path(new_dir, what='restore dir')}",
        f"--name={member.name}",
        "--initial-cluster=" + ",".join(f"{n}={u}" for n, u in cluster),
        "--initial-advertise-peer-urls=" + ",".join(member.initial_advertise_peer_urls),
    ]
    if member.initial_cluster_token:
        argv.append(f"--initial-cluster-token={member.initial_cluster_token}")
    if bump:
        argv += [f"--bump-revision={bump}", "--mark-compacted"]
    return cmd(*argv, sudo=True)


def _v(tools: EtcdTools) -> str:
    return ".".join(map(str, tools.version)) if tools.version else "(unknown version)"


@dataclass(frozen=True)
class Wait:
    """A probe the orchestrator polls after a step: until it succeeds, or until it fails."""

    probe: Cmd
    until_ok: bool
    timeout_seconds: float
    what: str


@dataclass(frozen=True)
class RestoreStep:
    """One step: its commands in order, the commands that undo it, and what to wait for
    (after `do`, and after `undo`: a rollback must also wait for etcd to stop before it
    renames data directories)."""

    title: str
    do: tuple[Cmd, ...]
    undo: tuple[Cmd, ...] = ()
    wait: Wait | None = None
    changes_node: bool = True
    undo_wait: Wait | None = None


@dataclass(frozen=True)
class RestorePlan:
    """Ordered steps; on failure at step i, run the undo of steps i..0 in reverse order."""

    steps: tuple[RestoreStep, ...]
    data_dir: str
    kept_dir: str
    staging_dir: str
    backup_dir: str

    def rollback(self, failed_at: int) -> list[Cmd]:
        """Undo commands after step `failed_at` failed (its own undo included, newest first)."""
        cmds: list[Cmd] = []
        for step in reversed(self.steps[: failed_at + 1]):
            cmds.extend(step.undo)
        return cmds


def _move(src: str, dest: str) -> Cmd:
    """Rename SRC to DEST; fails when DEST exists (never into it, never over it)."""
    return Cmd(("test", "!", "-e", dest, Raw("&&"), "mv", "-T", "--", src, dest), sudo=True)


def _move_back(src: str, dest: str) -> Cmd:
    """Undo of a rename: nothing to do when SRC is gone; still never over an existing DEST."""
    gone = ("test", "!", "-e", src)
    move = ("test", "!", "-e", dest, Raw("&&"), "mv", "-T", "--", src, dest)
    return Cmd((*gone, Raw("|| {"), *move, Raw("; }")), sudo=True)


def port_listening(port: int) -> Cmd:
    """Exit 0 while something listens on TCP `port` on the node (`ss -Hltn`)."""
    if not 0 < port < 65536:
        raise ValueError(f"not a TCP port: {port}")
    return Cmd(("ss", "-Hltn", f"sport = :{port}", Raw("| grep -q .")), sudo=True)


def etcd_present(etcdctl: EtcdctlArgs) -> Cmd:
    """Exit 0 while an etcd process runs or its client port listens: the data dir is not
    safe to rename until both are gone (a dying etcd can still write)."""
    port = urlsplit(etcdctl.endpoint).port or 2379
    return Cmd(
        (
            "pgrep",
            "-x",
            "etcd",
            Raw(">/dev/null ||"),
            *port_listening(port).argv,
        ),
        sudo=True,
    )


def plan_restore(
    member: EtcdMember,
    snapshot: str,
    *,
    tools: EtcdTools,
    etcdctl: EtcdctlArgs,
    timestamp: str,
    manifest_dir: str = "/etc/kubernetes/manifests",
    backup_root: str = "/etc/kubernetes/tmp",
    apiserver_manifests: Sequence[str] = ("kube-apiserver.yaml",),
    etcd_manifest: str = "etcd.yaml",
    bump: int | None = None,
    meta: SnapshotMeta | None = None,
    initial_cluster: Sequence[tuple[str, str]] | None = None,
    whole_cluster: bool = False,
    etcd_stop_seconds: float = 60.0,
    etcd_start_seconds: float = 180.0,
    data_dir_exists: bool = True,
    owner: str | None = None,
    apiserver_port: int | None = None,
    api_ready_probe: Cmd | None = None,
    api_stop_seconds: float = 60.0,
    api_start_seconds: float = 180.0,
) -> RestorePlan:
    """The restore as ordered, undoable steps; refused (RestoreRefused) before any change.

    `bump` None means "the default when the tool has it" (1e9, after the Kubernetes docs);
    0 disables it. `timestamp` (e.g. 20261127T044500Z) names the kept and staging dirs and
    the manifest backup dir `<backup_root>/nodeops-etcd-restore-<ts>/`, outside the static
    pod dir (the kubelet runs every file there).

    The restored dir gets the old data dir's owner (`chown --reference`), or `owner`
    ("uid:gid") when given. `data_dir_exists=False` (the disaster case: the data dir is gone)
    drops the "keep" step; the orchestrator probes it with `test -d`.

    `apiserver_port` adds a wait until nothing listens on it after the API server
    manifests are moved out; `api_ready_probe` (e.g. `kubectl get --raw=/readyz`) a wait
    until it succeeds after they are put back. Stopping etcd waits until no etcd process
    runs and its client port is closed (not only until it stops answering).
    """
    require_restore_inputs(
        member, meta=meta, initial_cluster=initial_cluster, whole_cluster=whole_cluster
    )
    if bump is None:
        bump = DEFAULT_BUMP if tools.bump_revision else 0
    assert member.data_dir_host is not None  # checked above
    data_dir = check_node_path(member.data_dir_host, what="data dir")
    kept = f"{data_dir}.nodeops-{timestamp}"
    staging = f"{data_dir}.nodeops-restore-{timestamp}"
    manifests = check_node_path(manifest_dir, what="manifest dir")
    backup = posixpath.join(
        check_node_path(backup_root, what="backup dir"), f"nodeops-etcd-restore-{timestamp}"
    )
    if backup == manifests or backup.startswith(manifests.rstrip("/") + "/"):
        raise RestoreRefused("the manifest backup dir must be outside the static pod dir")
    snap = check_node_path(snapshot, what="snapshot path")
    etcd_live = posixpath.join(manifests, etcd_manifest)
    etcd_parked = posixpath.join(backup, etcd_manifest)
    trial_dir = f"{data_dir}.nodeops-check-{timestamp}"

    if owner is not None:
        chown = cmd("chown", "-R", owner, "--", staging, sudo=True)
    elif data_dir_exists:
        chown = cmd("chown", "-R", f"--reference={data_dir}", "--", staging, sudo=True)
    else:
        chown = cmd("chown", "-R", "0:0", "--", staging, sudo=True)
    etcd_gone = Wait(
        etcd_present(etcdctl),
        until_ok=False,
        timeout_seconds=etcd_stop_seconds,
        what="etcd stopped (no etcd process, client port closed)",
    )
    etcd_healthy = Wait(
        endpoint_health(etcdctl),
        until_ok=True,
        timeout_seconds=etcd_start_seconds,
        what="etcd healthy",
    )
    api_gone = (
        Wait(
            port_listening(apiserver_port),
            until_ok=False,
            timeout_seconds=api_stop_seconds,
            what=f"the API server stopped (port {apiserver_port} closed)",
        )
        if apiserver_port and apiserver_manifests
        else None
    )
    api_ready = (
        Wait(
            api_ready_probe,
            until_ok=True,
            timeout_seconds=api_start_seconds,
            what="the API server ready (/readyz)",
        )
        if api_ready_probe is not None and apiserver_manifests
        else None
    )
    steps: list[RestoreStep] = [
        RestoreStep(
            "Check the snapshot (status)",
            (snapshot_status(tools, snap),),
            changes_node=False,
        ),
        RestoreStep(
            "Check the snapshot (trial restore)",
            (
                make_private_dir(trial_dir),
                trial_restore(tools, snap, trial_dir),
                cmd("rmdir", "--", trial_dir, sudo=True),
            ),
            undo=(cmd("rm", "-rf", "--", trial_dir, sudo=True),),
        ),
        RestoreStep(
            "Restore into a staging directory",
            (
                cmd("test", "!", "-e", staging, sudo=True),
                cmd("test", "!", "-e", kept, sudo=True),
                restore(
                    member, snap, staging, tools=tools, bump=bump, initial_cluster=initial_cluster
                ),
                # The etcd data dir's owner (root, or kubeadm's rootless etcd user) and 0700.
                chown,
                cmd("chmod", "0700", "--", staging, sudo=True),
            ),
            undo=(cmd("rm", "-rf", "--", staging, sudo=True),),
        ),
        RestoreStep(
            "Stop the API servers",
            (
                cmd("install", "-d", "-m", "0700", "--", backup, sudo=True),
                *(
                    _move(posixpath.join(manifests, name), posixpath.join(backup, name))
                    for name in apiserver_manifests
                ),
            ),
            undo=tuple(
                _move_back(posixpath.join(backup, name), posixpath.join(manifests, name))
                for name in apiserver_manifests
            ),
            wait=api_gone,
            undo_wait=api_ready,
        ),
        RestoreStep(
            "Stop etcd",
            (_move(etcd_live, etcd_parked),),
            undo=(_move_back(etcd_parked, etcd_live),),
            wait=etcd_gone,
            undo_wait=etcd_healthy,
        ),
        RestoreStep(
            "Keep the old data directory",
            (_move(data_dir, kept),),
            undo=(_move_back(kept, data_dir),),
        ),
        RestoreStep(
            "Put the restored data in place",
            (_move(staging, data_dir),),
            undo=(_move_back(data_dir, staging),),
        ),
        RestoreStep(
            "Start etcd",
            (_move(etcd_parked, etcd_live),),
            undo=(_move_back(etcd_live, etcd_parked),),
            wait=etcd_healthy,
            undo_wait=etcd_gone,
        ),
        RestoreStep(
            "Start the API servers",
            tuple(
                _move(posixpath.join(backup, name), posixpath.join(manifests, name))
                for name in apiserver_manifests
            ),
            undo=tuple(
                _move_back(posixpath.join(manifests, name), posixpath.join(backup, name))
                for name in apiserver_manifests
            ),
            wait=api_ready,
            undo_wait=api_gone,
        ),
    ]
    if not data_dir_exists:
        steps = [step for step in steps if step.title != "Keep the old data directory"]
    return RestorePlan(tuple(steps), data_dir, kept, staging, backup)
