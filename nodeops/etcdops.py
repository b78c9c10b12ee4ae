"""etcd operations over a Transport: read the member from its static pod, take a verified
snapshot and fetch it, restore one in place (undoable), and export the API's resources.

The pure parts live in `nodeops.etcd`; this module runs them. Reads are read-only round
trips; every command of a run that changes a node should go through a JournaledTransport
(the tasks in nodeops/tasks/etcd.py do that). Snapshots cross the SSH connection as
base64 in bounded chunks, so a large one never sits in memory whole.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import posixpath
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from nodeops import kube
from nodeops.cmd import Cmd, Raw, cmd
from nodeops.errors import NodeopsError
from nodeops.etcd import (
    REMOTE_SNAPSHOT_DIR,
    EtcdctlArgs,
    EtcdManifestError,
    EtcdMember,
    EtcdTools,
    RestorePlan,
    RestoreRefused,
    SnapshotError,
    SnapshotMeta,
    SnapshotStatus,
    StoredSnapshot,
    Verdict,
    Wait,
    assess_snapshot,
    client_pair_check,
    etcdctl_connection,
    load_local,
    make_private_dir,
    parse_etcd_manifest,
    parse_sha256sum,
    parse_snapshot_save,
    parse_snapshot_status,
    parse_tool_version,
    plan_restore,
    remove_file,
    retention,
    sha256,
    snapshot_name,
    snapshot_save,
    snapshot_status,
    store_local,
    tools_for,
    trial_restore,
    utc_timestamp,
)
from nodeops.etcd.flags import parse_command_flags
from nodeops.etcd.snapshot import SHARED_TMP
from nodeops.facts.script import Probe, script_for, show_files, split_files, split_probes
from nodeops.journal import JournaledTransport
from nodeops.kubeletconfig import (
    kubelet_config_probe,
    parse_kubelet_probe,
    parse_read_files,
    read_files_probe,
    resolve,
    with_files,
)
from nodeops.result import Result
from nodeops.transport import Transport

#: Bytes of snapshot per SSH round trip (base64 makes it a third bigger on the wire).
CHUNK_BYTES = 16 * 1024 * 1024
ETCD_MANIFEST = "etcd.yaml"
APISERVER_MANIFEST = "kube-apiserver.yaml"
DEFAULT_APISERVER_PORT = 6443
POLL_SECONDS = 0.5

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    """A `say` that prints nothing."""


class EtcdOpsFailed(NodeopsError):
    """A change that was started but did not end as asked; the message says the state left."""


# --- waiting -------------------------------------------------------------------------------


@dataclass
class Waiter:
    """Polling with an injectable clock, so unit tests do not sleep."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    poll: float = POLL_SECONDS

    def until(self, timeout: float, check: Callable[[], bool]) -> bool:
        """Call check until it is true (True) or the timeout passes (False)."""
        deadline = self.clock() + timeout
        while True:
            if check():
                return True
            if self.clock() >= deadline:
                return False
            self.sleep(self.poll)


def wait_for(t: Transport, wait: Wait, waiter: Waiter) -> bool:
    """Poll a plan's Wait probe until it succeeds (until_ok) or fails (not until_ok)."""

    def done() -> bool:
        ok = t.run(wait.probe, timeout=max(wait.timeout_seconds, 10.0)).ok
        return ok if wait.until_ok else not ok

    return waiter.until(wait.timeout_seconds, done)


# --- the member, as its static pod describes it ----------------------------------------------


@dataclass(frozen=True)
class EtcdSite:
    """What a control-plane node says about its etcd member (read-only round trips)."""

    node: str
    static_pod_path: str
    member: EtcdMember
    etcdctl: EtcdctlArgs
    tools: EtcdTools
    etcdctl_version: str | None
    apiserver_manifests: tuple[str, ...]
    apiserver_port: int | None
    apiserver_image_version: str | None
    notes: tuple[str, ...] = ()

    @property
    def etcd_manifest(self) -> str:
        """The etcd manifest's path on the node."""
        return posixpath.join(self.static_pod_path, ETCD_MANIFEST)

    @property
    def tool_version_text(self) -> str | None:
        """The offline tool's version as text (3.4.23), None when unknown."""
        version = self.tools.version
        return ".".join(map(str, version)) if version else None


def static_pod_path(t: Transport) -> str:
    """The kubelet's staticPodPath, found as the kubelet finds it; refused when unresolved."""
    probe = t.run(kubelet_config_probe())
    evidence = parse_kubelet_probe(probe.stdout)
    finding = resolve(evidence)
    if finding.needs_files:
        files = list(finding.needs_files)
        read = t.run(read_files_probe(files))
        finding = resolve(with_files(evidence, parse_read_files(read.stdout, files)))
    try:
        return finding.require_static_pod_path()
    except NodeopsError as error:
        raise SnapshotError(f"{t.node.name}: cannot find the etcd static pod: {error}") from None


def _site_probe(pod_dir: str) -> Cmd:
    return script_for(
        (
            Probe(
                "manifests",
                show_files(
                    posixpath.join(pod_dir, ETCD_MANIFEST),
                    posixpath.join(pod_dir, APISERVER_MANIFEST),
                ),
            ),
            Probe("etcdctl", Cmd(("etcdctl", "version"))),
            Probe(
                "etcdutl",
                Cmd(
                    (
                        Raw("if command -v etcdutl >/dev/null 2>&1; then"),
                        "etcdutl",
                        "version",
                        Raw("; else exit 127; fi"),
                    )
                ),
            ),
        )
    )


def _apiserver(text: str | None) -> tuple[int | None, str | None]:
    """The secure port and image version of a kube-apiserver manifest."""
    if not text:
        return None, None
    try:
        pod = yaml.safe_load(text)
        container = pod["spec"]["containers"][0]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return DEFAULT_APISERVER_PORT, None
    argv = [str(x) for x in (container.get("command") or [])]
    argv += [str(x) for x in (container.get("args") or [])]
    flags = parse_command_flags(argv)
    port_text = flags.get("secure-port", str(DEFAULT_APISERVER_PORT))
    port = int(port_text) if port_text.isdigit() else DEFAULT_APISERVER_PORT
    image = str(container.get("image") or "")
    match = re.search(r":v?(\d+\.\d+\.\d+[^@]*)", image)
    return port, ("v" + match.group(1) if match else None)


def read_site(t: Transport) -> EtcdSite:
    """The etcd member of this node: manifest found through staticPodPath, endpoint, CA,
    client pair (healthcheck-client when present, else the server pair), tool versions."""
    pod_dir = static_pod_path(t)
    out = split_probes(t.run(_site_probe(pod_dir)).stdout)
    manifests = out.get("manifests")
    files = split_files(manifests.text) if manifests is not None else {}
    etcd_path = posixpath.join(pod_dir, ETCD_MANIFEST)
    text = files.get(etcd_path)
    if text is None:
        raise SnapshotError(
            f"{t.node.name}: no {ETCD_MANIFEST} in the static pod directory {pod_dir}: not a "
            "kubeadm control plane with a local (stacked) etcd member"
        )
    try:
        member = parse_etcd_manifest(text)
    except EtcdManifestError as error:
        raise SnapshotError(f"{t.node.name}: {etcd_path}: {error}") from None
    notes: list[str] = []
    etcdctl_out = out.get("etcdctl")
    etcdutl_out = out.get("etcdutl")
    if etcdctl_out is None or not etcdctl_out.ok:
        raise SnapshotError(
            f"{t.node.name}: etcdctl is not usable on the node "
            f"({etcdctl_out.tail() if etcdctl_out else 'no output'}); install the etcd client "
            "of the cluster's etcd version"
        )
    ctl_version = parse_tool_version(etcdctl_out.text)
    utl_version = parse_tool_version(etcdutl_out.text) if etcdutl_out and etcdutl_out.ok else None
    tools = tools_for(utl_version or ctl_version or member.version)
    if tools.offline == "etcdutl" and utl_version is None:
        # etcd 3.5+ by the image or etcdctl, but no etcdutl on the node: etcdctl 3.5 still has
        # `snapshot status/restore` (deprecated), so use it rather than fail.
        tools = replace(tools, offline="etcdctl", bump_revision=False)
        notes.append("etcdutl is not installed: etcdctl does the offline work")
    args = etcdctl_connection(member)
    args = replace(args, api_v3_env=ctl_version is None or ctl_version < (3, 4, 0))
    if args.pair == "healthcheck-client" and not t.run(client_pair_check(args)).ok:
        args = replace(etcdctl_connection(member, healthcheck=False), api_v3_env=args.api_v3_env)
        notes.append("no healthcheck-client pair: using etcd's server certificate")
    if args.pair == "server" and not t.run(client_pair_check(args)).ok:
        raise SnapshotError(
            f"{t.node.name}: the etcd CA or client certificate named in {etcd_path} is not "
            f"readable: {', '.join(x for x in (args.cacert, args.cert, args.key) if x)}"
        )
    api_path = posixpath.join(pod_dir, APISERVER_MANIFEST)
    api_text = files.get(api_path)
    port, api_version = _apiserver(api_text)
    return EtcdSite(
        node=t.node.name,
        static_pod_path=pod_dir,
        member=member,
        etcdctl=args,
        tools=tools,
        etcdctl_version=".".join(map(str, ctl_version)) if ctl_version else None,
        apiserver_manifests=(APISERVER_MANIFEST,) if api_text is not None else (),
        apiserver_port=port,
        apiserver_image_version=api_version,
        notes=tuple(notes),
    )


def cluster_version(t: Transport, site: EtcdSite) -> str | None:
    """The API server's gitVersion (`kubectl version`), else its image tag; None if unknown."""
    result = t.run(kube.kubectl("version", "-o", "json"), timeout=30)
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        version = json.loads(result.stdout).get("serverVersion", {}).get("gitVersion")
        if isinstance(version, str) and version:
            return version
    return site.apiserver_image_version


def member_list(args: EtcdctlArgs) -> Cmd:
    """`etcdctl … member list -w json` (read-only)."""
    env = [f"{k}={v}" for k, v in args.env.items()]
    prefix = ["env", *env] if env else []
    return cmd(
        *prefix, args.binary, *args.global_flags(), "member", "list", "-w", "json", sudo=True
    )


def parse_member_list(text: str) -> list[str]:
    """Member names (or ids when unnamed) from `member list -w json`."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("{") and '"members"' in stripped:
            data = json.loads(stripped)
            return [str(m.get("name") or m.get("ID")) for m in data.get("members") or []]
    raise SnapshotError(f"no member list in {text.strip()[:200]!r}")


# --- small node commands -------------------------------------------------------------------


def private_dir(path: str) -> Cmd:
    """make_private_dir under `umask 077`, so parents it creates are root-only too."""
    return Cmd((Raw("umask 077 &&"), *make_private_dir(path).argv), sudo=True)


def stat_modes(*paths: str) -> Cmd:
    """`stat -c '%a %U %s %n' -- PATH…`: mode, owner, size, name (read-only)."""
    return cmd("stat", "-c", "%a %U %s %n", "--", *paths, sudo=True)


def parse_stat(text: str) -> dict[str, tuple[str, str, int]]:
    """Path -> (octal mode, owner, size) from stat_modes output."""
    found: dict[str, tuple[str, str, int]] = {}
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2].isdigit():
            found[parts[3]] = (parts[0], parts[1], int(parts[2]))
    return found


def read_chunk(path: str, index: int, chunk: int = CHUNK_BYTES) -> Cmd:
    """Bytes [index*chunk, (index+1)*chunk) of a root-only file, base64 on one line."""
    return Cmd(
        (
            "dd",
            f"if={path}",
            f"bs={chunk}",
            f"skip={index}",
            "count=1",
            "status=none",
            Raw("|"),
            "base64",
            "-w",
            "0",
        ),
        sudo=True,
    )


def write_chunk(path: str, *, first: bool) -> Cmd:
    """Decode base64 from stdin into a root-only file (created 0600, or appended to)."""
    return Cmd(
        (Raw("umask 077 &&"), "base64", "-d", Raw(">" if first else ">>"), path),
        sudo=True,
    )


def move_new(src: str, dest: str) -> Cmd:
    """Rename SRC to DEST, never over an existing DEST."""
    return Cmd(("test", "!", "-e", dest, Raw("&&"), "mv", "-T", "--", src, dest), sudo=True)


def utc_stamp(when: datetime) -> str:
    """20261127T044500Z."""
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


# --- local files ---------------------------------------------------------------------------


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """umask 077 for files and directories made locally (the caller's umask may be 000)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def check_local_dest(path: Path) -> None:
    """Refuse a local snapshot directory in shared temp, or a path that is no directory."""
    absolute = Path(os.path.abspath(path.expanduser()))
    for tmp in SHARED_TMP:
        if absolute == Path(tmp) or Path(tmp) in absolute.parents:
            raise SnapshotError(
                f"{path} is under {tmp}: snapshots there are cleaned up, lost on reboot or "
                "readable by others; choose another --dest"
            )
    if absolute.exists() and (absolute.is_symlink() or not absolute.is_dir()):
        raise SnapshotError(f"{path} is not a directory")


def private_local_dir(path: Path) -> Path:
    """Create (or tighten) a local 0700 directory, whatever the umask."""
    with private_umask():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.is_symlink() or not path.is_dir():
        raise SnapshotError(f"{path} is not a directory")
    os.chmod(path, 0o700)
    return path


# --- backup --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupResult:
    """A stored snapshot and what retention removed."""

    stored: StoredSnapshot
    deleted: tuple[str, ...]
    invalid_kept: tuple[str, ...]
    remote_modes: Mapping[str, tuple[str, str, int]] = field(default_factory=dict)
    seconds: float = 0.0


def run_quietly(t: Transport, command: Cmd) -> Result:
    """Run a command whose output must not reach the journal (snapshot bytes: etcd holds
    every Secret). A journaled transport still records the command, its exit code and the
    output's size."""
    if not isinstance(t, JournaledTransport):
        return t.run(command)
    result = t.inner.run(command)
    t.journal.record(
        "command",
        node=result.node,
        step=t.step,
        command=result.command,
        exit_code=result.exit_code,
        seconds=round(result.seconds, 3),
        stdout=f"({len(result.stdout)} characters of snapshot data, not journaled)",
        stderr=result.stderr[-2000:],
    )
    return result


def fetch(t: Transport, remote: str, size: int, dest: Path, expected_sha256: str) -> Path:
    """Copy a node's file to a new local 0600 file in chunks; checks size and sha256."""
    digest = hashlib.sha256()
    got = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb", closefd=False) as out:
            for index in range(max(1, -(-size // CHUNK_BYTES))):
                result = run_quietly(t, read_chunk(remote, index)).check()
                block = base64.b64decode(result.stdout.strip(), validate=True)
                digest.update(block)
                got += len(block)
                out.write(block)
            out.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        raise
    os.close(fd)
    if got != size or digest.hexdigest() != expected_sha256:
        dest.unlink()
        raise SnapshotError(
            f"the copy of {remote} from {t.node.name} is corrupt ({got} of {size} bytes, "
            f"sha256 {digest.hexdigest()[:16]}… vs {expected_sha256[:16]}…)"
        )
    return dest


def take_backup(
    t: Transport,
    *,
    dest_dir: Path,
    keep: int,
    trial: bool = True,
    say: Say = _quiet,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BackupResult:
    """Snapshot the node's etcd member, check it, copy it here (0600 in a 0700 dir, with a
    metadata file), remove the node's copy and keep the newest `keep` snapshots locally.

    A snapshot that fails its checks is still stored, marked invalid (restore refuses it;
    retention never deletes it), and SnapshotError is raised. On a failure before the
    local copy exists, the node's copy is left in its 0700 directory and named.
    """
    if keep < 1:
        raise SnapshotError("--keep must be at least 1")
    check_local_dest(dest_dir)
    started = time.monotonic()
    node = t.node.name
    site = read_site(t)
    for note in site.notes:
        say(f"{node}: note: {note}")
    version = cluster_version(t, site)
    when = now()
    name = snapshot_name(node, when)
    remote_dir = REMOTE_SNAPSHOT_DIR
    remote = posixpath.join(remote_dir, name)
    t.run(private_dir(remote_dir)).check()
    saved = t.run(snapshot_save(site.etcdctl, remote))
    outcome = parse_snapshot_save(saved.stdout + "\n" + saved.stderr, saved.exit_code)
    if not outcome.saved:
        raise SnapshotError(
            f"{node}: etcd snapshot failed: {outcome.reason}\n  "
            + saved.describe_failure().replace("\n", "\n  ")
        )
    say(f"{node}: saved {remote}")
    try:
        stored, verdict, modes = _verify_and_fetch(
            t, site, remote, name, when, version, dest_dir, trial=trial
        )
    except (NodeopsError, OSError) as error:
        raise SnapshotError(
            f"{error}\nthe node's copy stays at {remote} (0600, root-only dir); remove it with "
            f"`rm -f -- {remote}` on {node} once it is not needed"
        ) from None
    say(
        f"{node}: copied to {stored.path} ({stored.meta.size} bytes, sha256 "
        f"{stored.meta.sha256[:16]}…)"
    )
    t.run(remove_file(remote)).check()
    plan = retention(load_local(dest_dir), keep)
    for old in plan.delete:
        for doomed in (dest_dir / old, dest_dir / f"{old}.json"):
            with contextlib.suppress(FileNotFoundError):
                doomed.unlink()
    if plan.delete:
        say(f"retention (keep {keep}): deleted {', '.join(plan.delete)}")
    result = BackupResult(stored, plan.delete, plan.invalid, modes, time.monotonic() - started)
    if not verdict.valid:
        raise SnapshotError(
            f"{node}: the snapshot failed its checks and is kept marked invalid at "
            f"{stored.path}: {'; '.join(verdict.problems)}"
        )
    return result


def _verify_and_fetch(
    t: Transport,
    site: EtcdSite,
    remote: str,
    name: str,
    when: datetime,
    version: str | None,
    dest_dir: Path,
    *,
    trial: bool,
) -> tuple[StoredSnapshot, Verdict, dict[str, tuple[str, str, int]]]:
    """Check the node's snapshot (modes, sha256, status, trial restore) and copy it here."""
    node = t.node.name
    remote_dir = posixpath.dirname(remote)
    modes = parse_stat(t.run(stat_modes(remote_dir, remote)).check().stdout)
    problems: list[str] = []
    for path, want in ((remote_dir, "700"), (remote, "600")):
        mode = modes.get(path)
        if mode is None or mode[0] != want or mode[1] != "root":
            problems.append(f"{path} is {mode[0] if mode else '?'} {mode[1] if mode else ''}")
    if problems:
        raise SnapshotError(
            f"{node}: the snapshot is not private ({'; '.join(problems)}); it stays at {remote} "
            f"for you to inspect and remove (`rm -f -- {remote}`)"
        )
    size = modes[remote][2]
    digest = parse_sha256sum(t.run(sha256(remote)).check().stdout)
    status: SnapshotStatus | None = None
    status_error: str | None = None
    status_run = t.run(snapshot_status(site.tools, remote))
    try:
        status = parse_snapshot_status(status_run.stdout + "\n" + status_run.stderr)
    except SnapshotError as error:
        status_error = str(error)
    trial_ok: bool | None = None
    trial_error: str | None = None
    if trial:
        check_dir = posixpath.join(remote_dir, f"check-{utc_stamp(when)}")
        t.run(private_dir(check_dir)).check()
        tried = t.run(trial_restore(site.tools, remote, check_dir))
        trial_ok = tried.ok
        trial_error = None if tried.ok else tried.describe_failure()
        t.run(cmd("rm", "-rf", "--", check_dir, sudo=True)).check()
    verdict = assess_snapshot(
        expected_sha256=None,
        actual_sha256=digest,
        status=status,
        status_error=status_error,
        trial_restore_ok=trial_ok,
        trial_restore_error=trial_error,
        require_trial_restore=trial,
    )
    meta = SnapshotMeta(
        file=name,
        node=node,
        taken_at=utc_timestamp(when),
        sha256=digest,
        size=size,
        revision=status.revision if status else 0,
        total_keys=status.total_keys if status else 0,
        hash=status.hash if status else None,
        etcd_version=site.tool_version_text or site.etcdctl_version,
        cluster_version=version,
        member=site.member.name,
        valid=verdict.valid,
        problems=verdict.problems,
    )
    private_local_dir(dest_dir)
    scratch = dest_dir / f".fetch-{name}.{secrets.token_hex(4)}"
    try:
        fetch(t, remote, size, scratch, digest)
        with private_umask():
            stored = store_local(scratch, dest_dir, meta)
    finally:
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()
    return stored, verdict, modes


def backup_etcd(
    transport: Transport,
    *,
    dest_dir: Path,
    keep: int,
    trial: bool = True,
    say: Say = _quiet,
) -> SnapshotMeta:
    """A verified snapshot of the node's etcd member, stored locally; its metadata.

    For callers such as the upgrade of the first control plane: SnapshotError unless the
    snapshot passed `snapshot status`, the checksum and (with `trial`) a trial restore.
    The transport should be journaled.
    """
    return take_backup(transport, dest_dir=dest_dir, keep=keep, trial=trial, say=say).stored.meta


# --- restore -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalSnapshot:
    """A local snapshot whose bytes match its metadata file."""

    path: Path
    meta: SnapshotMeta


def _file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def check_local_snapshot(path: Path) -> LocalSnapshot:
    """Refuse a snapshot without metadata, marked invalid, or whose size or sha256 differ
    from its metadata (`<snapshot>.json` next to it). Local and read-only."""
    if not path.is_file():
        raise RestoreRefused(f"no snapshot file {path}")
    meta_path = path.with_name(path.name + ".json")
    if not meta_path.is_file():
        raise RestoreRefused(
            f"no metadata file {meta_path}: nodeops restores only snapshots it took "
            "(etcd-backup writes the metadata with the checksum)"
        )
    try:
        meta = SnapshotMeta.from_json(meta_path.read_text())
    except SnapshotError as error:
        raise RestoreRefused(f"{meta_path}: {error}") from None
    actual, size = _file_sha256(path)
    problems: list[str] = []
    if actual != meta.sha256.lower():
        problems.append(f"its sha256 is {actual[:16]}…, the metadata recorded {meta.sha256[:16]}…")
    if size != meta.size:
        problems.append(f"it has {size} bytes, the metadata recorded {meta.size}")
    if not meta.valid:
        problems.append(f"it is marked invalid: {'; '.join(meta.problems)}")
    if meta.revision <= 0 or meta.total_keys <= 0:
        problems.append(f"revision {meta.revision} and {meta.total_keys} keys")
    if problems:
        raise RestoreRefused(
            f"etcd restore refused, nothing changed: the snapshot {path} cannot be trusted: "
            + "; ".join(problems)
        )
    return LocalSnapshot(path, meta)


MULTI_MEMBER_HELP = (
    "Restoring a multi-member etcd cluster is a whole-cluster operation that this task does "
    "not do one node at a time: stop the API servers and etcd on EVERY control plane (move "
    "kube-apiserver.yaml and etcd.yaml out of the static pod directory), copy the SAME "
    "snapshot to every etcd node, run `etcdutl snapshot restore` on each with its own "
    "--name and --initial-advertise-peer-urls and the same --initial-cluster listing all "
    "members (and a new --initial-cluster-token), move each old data dir aside, put the "
    "restored dirs in place, then start etcd everywhere before the API servers. Restoring "
    "only one member would start a new one-member cluster beside the old one. See "
    "https://kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd/"
    "#restoring-an-etcd-cluster"
)


@dataclass(frozen=True)
class RestorePrep:
    """Everything a restore needs, found with read-only commands only."""

    site: EtcdSite
    plan: RestorePlan
    remote_snapshot: str
    members: tuple[str, ...]
    stamp: str
    notes: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """What the restore will do, step by step, every command shown (secrets masked)."""
        lines = [
            f"node {self.site.node}: etcd member {self.site.member.name}, data dir "
            f"{self.plan.data_dir} (kept as {self.plan.kept_dir}), static pods in "
            f"{self.site.static_pod_path}, manifests parked in {self.plan.backup_dir}",
            f"  upload the snapshot to {self.remote_snapshot} (0600 in a 0700 dir)",
        ]
        for number, step in enumerate(self.plan.steps, 1):
            lines.append(f"  {number}. {step.title}")
            lines.extend(f"       {c.display(as_root=True)}" for c in step.do)
            if step.wait is not None:
                lines.append(f"       wait up to {step.wait.timeout_seconds:g} s: {step.wait.what}")
        lines.append(f"  then remove {self.remote_snapshot}")
        return lines


def prepare_restore(
    t: Transport,
    snap: LocalSnapshot,
    *,
    stamp: str | None = None,
    etcd_timeout: float = 180.0,
) -> RestorePrep:
    """Read the node (read-only) and plan the restore; RestoreRefused when it must not run."""
    node = t.node.name
    site = read_site(t)
    notes = list(site.notes)
    stamp = stamp or utc_stamp(datetime.now(UTC))
    listed = t.run(member_list(site.etcdctl), timeout=30)
    members: tuple[str, ...]
    if listed.ok:
        members = tuple(parse_member_list(listed.stdout))
    else:
        members = site.member.cluster_names
        notes.append(
            "etcd does not answer `member list`: the member count comes from the manifest's "
            "--initial-cluster"
        )
    if len(members) > 1 or len(site.member.cluster_names) > 1:
        names = members if len(members) > 1 else site.member.cluster_names
        raise RestoreRefused(
            f"etcd restore refused, nothing changed: {node}'s etcd cluster has {len(names)} "
            f"members ({', '.join(names)}). {MULTI_MEMBER_HELP}"
        )
    data_dir = site.member.data_dir_host
    exists = True
    if data_dir is not None:
        exists = t.run(cmd("test", "-d", data_dir, sudo=True)).ok
        if not exists:
            notes.append(f"the data dir {data_dir} does not exist: nothing to keep")
    remote = posixpath.join(REMOTE_SNAPSHOT_DIR, f"restore-{stamp}-{snap.meta.file}")
    try:
        plan = plan_restore(
            site.member,
            remote,
            tools=site.tools,
            etcdctl=site.etcdctl,
            timestamp=stamp,
            manifest_dir=site.static_pod_path,
            apiserver_manifests=site.apiserver_manifests,
            meta=snap.meta,
            data_dir_exists=exists,
            apiserver_port=site.apiserver_port,
            api_ready_probe=kube.kubectl("get", "--raw=/readyz"),
            etcd_start_seconds=etcd_timeout,
            api_start_seconds=etcd_timeout,
        )
    except RestoreRefused as error:
        text = str(error)
        if "members" in text:
            text += "\n" + MULTI_MEMBER_HELP
        raise RestoreRefused(f"{node}: {text}") from None
    except ValueError as error:
        raise RestoreRefused(f"{node}: etcd restore refused, nothing changed: {error}") from None
    # The names the plan will use must be free (never into or over an existing path).
    free = [plan.kept_dir, plan.staging_dir, plan.backup_dir, remote]
    taken = t.run(
        Cmd(
            (
                Raw("for p in"),
                *free,
                Raw('; do [ -e "$p" ] && printf "%s\\n" "$p"; done; true'),
            ),
            sudo=True,
        )
    ).check()
    if taken.stdout.strip():
        raise RestoreRefused(
            f"{node}: etcd restore refused, nothing changed: these paths already exist: "
            + ", ".join(taken.stdout.split())
        )
    return RestorePrep(site, plan, remote, members, stamp, tuple(notes))


@dataclass(frozen=True)
class RestoreOutcome:
    """A finished restore: where the old data is kept, and how long each part took."""

    kept_dir: str
    seconds: float
    step_seconds: tuple[tuple[str, float], ...]


def upload(t: Transport, local: Path, remote: str, meta: SnapshotMeta) -> None:
    """Copy a local snapshot to the node: chunks into `remote.part` (0600, 0700 dir), the
    sha256 checked on the node, then renamed into place."""
    t.run(private_dir(posixpath.dirname(remote))).check()
    part = remote + ".part"
    with local.open("rb") as handle:
        first = True
        while True:
            block = handle.read(CHUNK_BYTES)
            if not block and not first:
                break
            encoded = base64.b64encode(block).decode()
            t.run(write_chunk(part, first=first), stdin=encoded).check()
            first = False
            if not block:
                break
    digest = parse_sha256sum(t.run(sha256(part)).check().stdout)
    if digest != meta.sha256.lower():
        t.run(remove_file(part))
        raise SnapshotError(
            f"{t.node.name}: the uploaded snapshot's sha256 is {digest[:16]}…, not "
            f"{meta.sha256[:16]}… (removed again); nothing else changed"
        )
    t.run(move_new(part, remote)).check()


def _hand_commands(plan: RestorePlan, failed_at: int) -> str:
    return "\n    ".join(c.display(as_root=True) for c in plan.rollback(failed_at))


def rollback(
    t: Transport, prep: RestorePrep, failed_at: int, waiter: Waiter, say: Say
) -> tuple[bool, list[str]]:
    """Undo steps failed_at..0, newest first, waiting where an undo starts or stops a pod.
    (ok, what could not be confirmed)."""
    unconfirmed: list[str] = []
    for step in reversed(prep.plan.steps[: failed_at + 1]):
        for undo in step.undo:
            result = t.run(undo)
            if not result.ok:
                return False, [
                    f"`{undo.display(as_root=True)}` failed: {result.describe_failure()}"
                ]
        if step.undo and step.undo_wait is not None:
            say(f"{t.node.name}: rollback: waiting for {step.undo_wait.what}")
            if not wait_for(t, step.undo_wait, waiter):
                if not step.undo_wait.until_ok:
                    # Renaming data dirs under a running etcd would corrupt it: stop here.
                    return False, [f"{step.undo_wait.what} did not happen in time"]
                unconfirmed.append(step.undo_wait.what)
    return True, unconfirmed


def run_restore(
    t: Transport,
    prep: RestorePrep,
    snap: LocalSnapshot,
    *,
    waiter: Waiter | None = None,
    say: Say = _quiet,
) -> RestoreOutcome:
    """Upload the snapshot and run the plan's steps with their waits. On a failure, undo
    what was done (old manifests and data dir back) and raise EtcdOpsFailed saying so; if
    the undo itself fails, the message lists the commands that finish it by hand."""
    waiter = waiter or Waiter()
    node = t.node.name
    started = time.monotonic()
    timings: list[tuple[str, float]] = []
    upload(t, snap.path, prep.remote_snapshot, snap.meta)
    timings.append(("upload", time.monotonic() - started))
    say(f"{node}: uploaded {prep.remote_snapshot}")
    plan = prep.plan
    for index, step in enumerate(plan.steps):
        step_started = time.monotonic()
        say(f"{node}: {index + 1}/{len(plan.steps)} {step.title}")
        failure: str | None = None
        for command in step.do:
            try:
                result = t.run(command)
            except NodeopsError as error:
                raise EtcdOpsFailed(
                    f"{node}: the connection failed during step {index + 1} ({step.title}): "
                    f"{error}\nthe node may be half way; to put the old manifests and data dir "
                    f"back by hand, run as root on {node}, in order:\n    "
                    + _hand_commands(plan, index)
                ) from None
            if not result.ok:
                failure = result.describe_failure()
                break
        if failure is None and step.wait is not None and not wait_for(t, step.wait, waiter):
            failure = (
                f"{step.wait.what}: not within {step.wait.timeout_seconds:g} s "
                f"(`{step.wait.probe.display(as_root=True)}`)"
            )
        timings.append((step.title, time.monotonic() - step_started))
        if failure is None:
            continue
        say(f"{node}: step {index + 1} ({step.title}) failed; rolling back")
        try:
            ok, unconfirmed = rollback(t, prep, index, waiter, say)
        except NodeopsError as error:
            ok, unconfirmed = False, [str(error)]
        if ok:
            t.run(remove_file(prep.remote_snapshot))
            t.run(cmd("rmdir", "--", plan.backup_dir, sudo=True))  # only when empty
            state = "rolled back: the old manifests and data dir are in place again" + (
                f" (not confirmed: {', '.join(unconfirmed)})"
                if unconfirmed
                else ", etcd and the API server are up"
            )
        else:
            state = (
                f"the rollback stopped ({'; '.join(unconfirmed)}). To finish it by hand, run as "
                f"root on {node}, in order (each is a no-op when already done):\n    "
                + _hand_commands(plan, index)
            )
        raise EtcdOpsFailed(
            f"{node}: etcd restore failed at step {index + 1} ({step.title}): {failure}\n{state}"
        )
    t.run(remove_file(prep.remote_snapshot)).check()
    t.run(cmd("rmdir", "--", plan.backup_dir, sudo=True))
    return RestoreOutcome(plan.kept_dir, time.monotonic() - started, tuple(timings))


@dataclass(frozen=True)
class NodeReadiness:
    """Node names and whether each is Ready."""

    ready: tuple[str, ...]
    not_ready: tuple[str, ...]


def parse_node_readiness(text: str) -> NodeReadiness:
    """Ready and not-Ready node names from `kubectl get nodes -o json`."""
    ready: list[str] = []
    not_ready: list[str] = []
    for item in json.loads(text).get("items") or []:
        name = str(item.get("metadata", {}).get("name"))
        conditions = (item.get("status") or {}).get("conditions") or []
        ok = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        (ready if ok else not_ready).append(name)
    return NodeReadiness(tuple(ready), tuple(not_ready))


def wait_nodes_ready(t: Transport, timeout: float, waiter: Waiter | None = None) -> NodeReadiness:
    """Poll `kubectl get nodes` until every node is Ready or the timeout passes (read-only)."""
    waiter = waiter or Waiter()
    seen = [NodeReadiness((), ())]

    def check() -> bool:
        result = t.run(kube.kubectl("get", "nodes", "-o", "json"), timeout=30)
        if not result.ok:
            return False
        try:
            seen[0] = parse_node_readiness(result.stdout)
        except ValueError:
            return False
        return bool(seen[0].ready) and not seen[0].not_ready

    waiter.until(timeout, check)
    return seen[0]


# --- resource export -----------------------------------------------------------------------

#: Kinds never exported: records of what happened (Events) and runtime state (Leases:
#: heartbeats and leader election, renewed by their holders), not desired state.
SKIPPED_RESOURCES = frozenset({"events", "events.events.k8s.io", "leases.coordination.k8s.io"})
SECRET_RESOURCES = frozenset({"secrets"})
#: metadata fields the API server owns; applying them elsewhere fails or lies.
STRIPPED_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "managedFields",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def api_resources() -> Cmd:
    """`kubectl api-resources --verbs=list -o name` (read-only)."""
    return kube.kubectl("api-resources", "--verbs=list", "-o", "name")


def parse_api_resources(text: str) -> list[str]:
    """Resource names, one per line, validated (`deployments.apps`)."""
    names: list[str] = []
    for line in text.splitlines():
        name = line.strip()
        if name and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name):
            names.append(name)
    return names


def get_resources(names: Sequence[str]) -> Cmd:
    """One round trip: `kubectl get -A -o json -- NAME` for each name, each its own probe
    (after `--`, a name can never be read as an option)."""
    probes = [
        Probe(f"r{index}", kube.kubectl("get", "--all-namespaces", "-o", "json", "--", name))
        for index, name in enumerate(names)
    ]
    return script_for(probes)


def clean_object(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as it can be applied again: no status, no server-owned metadata."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for key in STRIPPED_METADATA:
        meta.pop(key, None)
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    spec = out.get("spec")
    if isinstance(spec, dict):
        spec = dict(spec)
        if out.get("kind") == "Service" and spec.get("clusterIP") not in (None, "None"):
            # Allocated by the API server: on another cluster the address may be taken.
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        if out.get("kind") == "Node":
            spec.pop("podCIDR", None)  # immutable once set; assigned by the controller
            spec.pop("podCIDRs", None)
            spec.pop("providerID", None)
        out["spec"] = spec
    return out


def _controlled(obj: Mapping[str, Any]) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(r, dict) and r.get("controller") for r in refs)


@dataclass(frozen=True)
class Export:
    """Exported objects (cleaned), what was skipped, and kinds that could not be read."""

    objects: tuple[dict[str, Any], ...]
    kinds: tuple[str, ...]
    skipped_owned: int
    errors: tuple[str, ...]
    secrets: int

    def to_yaml(self) -> str:
        """A multi-document YAML stream: namespaces and CRDs first, then the rest."""
        return yaml.safe_dump_all(self.objects, sort_keys=True, default_flow_style=False)


def _order(obj: Mapping[str, Any]) -> tuple[int, str, str, str]:
    kind = str(obj.get("kind"))
    first = {"CustomResourceDefinition": 0, "Namespace": 1}.get(kind, 2)
    meta = obj.get("metadata") or {}
    return (first, kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def export_resources(t: Transport, *, include_secrets: bool) -> Export:
    """Every listable kind the API offers, as objects that apply again (read-only).

    Skipped: Events, objects a controller owns (its owner recreates them: ReplicaSets of
    Deployments, their Pods, mirror pods), and Secrets unless `include_secrets`.
    """
    listed = t.run(api_resources())
    errors: list[str] = []
    if not listed.ok:
        if not listed.stdout.strip():
            raise NodeopsError(
                f"{t.node.name}: kubectl api-resources failed: {listed.describe_failure()}"
            )
        errors.append(f"api-resources: {listed.stderr.strip()[:300]}")
    names = [
        n
        for n in parse_api_resources(listed.stdout)
        if n not in SKIPPED_RESOURCES and (include_secrets or n not in SECRET_RESOURCES)
    ]
    if not names:
        raise NodeopsError(f"{t.node.name}: the API lists no resources")
    result = t.run(get_resources(names))
    outputs = split_probes(result.stdout)
    objects: list[dict[str, Any]] = []
    owned = 0
    secrets_count = 0
    for index, name in enumerate(names):
        out = outputs.get(f"r{index}")
        if out is None or not out.ok:
            # Never echo the output: it may hold Secret data.
            errors.append(f"{name}: kubectl get exited {out.exit_code if out else 'early'}")
            continue
        try:
            document = json.loads(out.text)
        except json.JSONDecodeError:
            errors.append(f"{name}: kubectl did not print JSON")
            continue
        for item in document.get("items") or []:
            if not isinstance(item, dict):
                continue
            if _controlled(item):
                owned += 1
                continue
            if item.get("kind") == "Secret":
                secrets_count += 1
            objects.append(clean_object(item))
    objects.sort(key=_order)
    return Export(tuple(objects), tuple(names), owned, tuple(errors), secrets_count)


def write_private_new(path: Path, text: str) -> Path:
    """Write a new 0600 file atomically (temp file, fsync, link); never over an existing one."""
    if path.exists() or path.is_symlink():
        raise NodeopsError(f"{path} exists: nodeops does not overwrite it; choose another --out")
    parent = path.parent
    if not parent.exists():
        private_local_dir(parent)
    tmp = parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as out:
            out.write(text)
            out.flush()
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise NodeopsError(f"{path} exists: nodeops does not overwrite it") from None
    finally:
        tmp.unlink()
    return path
