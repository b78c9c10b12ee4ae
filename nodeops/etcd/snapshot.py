"""etcd snapshots: command builders (save, status, trial restore, sha256), parsers, metadata.

Builders return `Cmd`s run as root on a control-plane node; parsers read what those commands
print. Which tool does the offline work is decided by the installed tool's version: etcdctl
up to 3.4, etcdutl from 3.5 (etcdctl's `snapshot status/restore` are deprecated in 3.5 and
gone in 3.6).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import asdict, dataclass, field, replace

from nodeops.cmd import Arg, Cmd, Raw, cmd
from nodeops.errors import NodeopsError
from nodeops.etcd.flags import EtcdctlArgs, Version

#: Directories a snapshot must never be written to: world-writable, often tmpfs, cleaned.
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/shm")  # noqa: S108 (a deny list)

#: Where snapshots wait on the node until fetched: root-only, on disk, not in shared temp.
REMOTE_SNAPSHOT_DIR = "/var/lib/nodeops/etcd-snapshots"

#: Default wait for `snapshot save`: etcdctl 3.4 can hang forever on a stalled stream.
SAVE_TIMEOUT_SECONDS = 300

#: Bump recommended by the Kubernetes docs for `--bump-revision` (kept well above any
#: revision written between the snapshot and the restore).
DEFAULT_BUMP = 1_000_000_000


class SnapshotError(NodeopsError):
    """A snapshot that cannot be taken, read or trusted."""


def check_node_path(path: str, *, what: str = "path") -> str:
    """An absolute, normalised path outside shared temp dirs; ValueError otherwise.

    Absolute paths never start with `-`, so they can never be read as an option.
    """
    if not path.startswith("/") or "\x00" in path:
        raise ValueError(f"{what} must be an absolute path: {path!r}")
    norm = posixpath.normpath(path)
    if norm == "/":
        raise ValueError(f"{what} cannot be /")
    for tmp in SHARED_TMP:
        if norm == tmp or norm.startswith(tmp + "/"):
            raise ValueError(f"{what} {path!r} is under {tmp}: snapshots never go to shared temp")
    return norm


# --- tools ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EtcdTools:
    """Which binaries do the offline work, and what they support, for one etcd version."""

    version: Version | None
    offline: str  # "etcdutl" or "etcdctl": snapshot status and restore
    bump_revision: bool  # `snapshot restore --bump-revision --mark-compacted`
    api_v3_env: bool  # ETCDCTL_API=3 for etcdctl

    @property
    def env(self) -> dict[str, str]:
        """Environment for the offline tool."""
        return {"ETCDCTL_API": "3"} if self.api_v3_env and self.offline == "etcdctl" else {}


def tools_for(version: Version | None) -> EtcdTools:
    """The tools for an installed etcd version (from `etcdctl version`; image tag as fallback).

    3.5+: etcdutl; `--bump-revision/--mark-compacted` from 3.5.10 (etcd PR #16165). Before
    3.5, and when unknown: etcdctl, no bump (3.4 has none).
    """
    if version is not None and version >= (3, 5, 0):
        return EtcdTools(version, "etcdutl", version >= (3, 5, 10), False)
    return EtcdTools(version, "etcdctl", False, version is None or version < (3, 4, 0))


# --- builders ------------------------------------------------------------------------------


def make_private_dir(path: str) -> Cmd:
    """`install -d -m 0700 -- DIR`: create (or tighten) a root-only directory."""
    return cmd("install", "-d", "-m", "0700", "--", check_node_path(path), sudo=True)


def make_private_file(path: str) -> Cmd:
    """`chmod 0600 -- FILE`."""
    return cmd("chmod", "0600", "--", check_node_path(path), sudo=True)


def remove_file(path: str) -> Cmd:
    """`rm -f -- FILE` (a snapshot copy, after it was fetched)."""
    return cmd("rm", "-f", "--", check_node_path(path), sudo=True)


def sha256(path: str) -> Cmd:
    """`sha256sum -- FILE`."""
    return cmd("sha256sum", "--", check_node_path(path), sudo=True)


def snapshot_save(
    args: EtcdctlArgs, path: str, *, timeout_seconds: int = SAVE_TIMEOUT_SECONDS
) -> Cmd:
    """`etcdctl … snapshot save FILE` against one endpoint, bounded by `timeout`.

    etcdctl writes FILE.part and renames it when complete; `umask 077` keeps both 0600 even
    when the session's umask is 000. `timeout` kills a stalled save on the node itself (the
    transport's own timeout would leave it running): etcdctl 3.4 waits forever after
    `created temporary db file` when the TLS handshake fails. A failed save removes its .part.
    """
    target = check_node_path(path, what="snapshot path")
    return Cmd(
        (
            Raw("umask 077 &&"),
            "timeout",
            "--kill-after=10",
            str(timeout_seconds),
            *_env_prefix(args.env),
            args.binary,
            *args.global_flags(),
            "snapshot",
            "save",
            target,
            Raw("; rc=$?; [ $rc -eq 0 ] || rm -f --"),
            target + ".part",
            Raw("; exit $rc"),
        ),
        sudo=True,
    )


def snapshot_status(tool: EtcdTools | EtcdctlArgs, path: str, *, json: bool = True) -> Cmd:
    """`etcdutl|etcdctl snapshot status FILE -w json`: hash, revision, keys, size.

    Given EtcdctlArgs, etcdctl does it (3.4); given EtcdTools, its offline tool.
    """
    target = check_node_path(path, what="snapshot path")
    binary, env = _offline(tool)
    fmt = ("--write-out=json",) if json else ("--write-out=table",)
    return Cmd((*_env_prefix(env), binary, "snapshot", "status", target, *fmt), sudo=True)


def trial_restore(tool: EtcdTools | EtcdctlArgs, path: str, tmpdir: str) -> Cmd:
    """Restore FILE into TMPDIR/restore-check and remove it again; exit status of the restore.

    The only check of the snapshot's own hash (status does not verify it). TMPDIR must exist
    (0700, see make_private_dir) and be on the node's disk: the WAL alone takes ~64 MB.
    """
    target = check_node_path(path, what="snapshot path")
    scratch = posixpath.join(check_node_path(tmpdir, what="trial restore dir"), "restore-check")
    binary, env = _offline(tool)
    return Cmd(
        (
            "rm",
            "-rf",
            "--",
            scratch,
            Raw("&&"),
            *_env_prefix(env),
            binary,
            "snapshot",
            "restore",
            target,
            f"--data-dir={scratch}",
            Raw("; rc=$?;"),
            "rm",
            "-rf",
            "--",
            scratch,
            Raw("; exit $rc"),
        ),
        sudo=True,
    )


def _offline(tool: EtcdTools | EtcdctlArgs) -> tuple[str, dict[str, str]]:
    if isinstance(tool, EtcdctlArgs):
        return tool.binary, tool.env
    return tool.offline, tool.env


def _env_prefix(env: dict[str, str]) -> tuple[str, ...]:
    if not env:
        return ()
    return ("env", *(f"{name}={value}" for name, value in env.items()))


def client_pair_check(args: EtcdctlArgs) -> Cmd:
    """`test -r CERT && test -r KEY && test -r CA`: are the client files there (as root)?"""
    files = [f for f in (args.cacert, args.cert, args.key) if f]
    if not files:
        return cmd("true")
    parts: list[Arg] = []
    for index, name in enumerate(files):
        if index:
            parts.append(Raw("&&"))
        parts += ["test", "-r", name]
    return Cmd(tuple(parts), sudo=True)


def endpoint_health(args: EtcdctlArgs) -> Cmd:
    """`etcdctl … endpoint health`: exit 0 when the member answers."""
    return cmd(
        *_env_prefix(args.env), args.binary, *args.global_flags(), "endpoint", "health", sudo=True
    )


def tool_version(binary: str = "etcdctl") -> Cmd:
    """`etcdctl version` (or etcdutl): which etcd tools the node really has."""
    return cmd(binary, "version", sudo=True)


# --- parsers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotStatus:
    """What `snapshot status` says of a file. `total_size` is exact only in json output."""

    hash: int
    revision: int
    total_keys: int
    total_size: int
    size_exact: bool

    @property
    def plausible(self) -> bool:
        """A usable Kubernetes snapshot has a revision and keys."""
        return self.revision > 0 and self.total_keys > 0


_SI = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15}
_IEC = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def parse_size(text: str) -> int:
    """go-humanize sizes (`25 kB`, `2.1 MB`, `4.3 MB`, `512 B`) as bytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit = float(match.group(1)), match.group(2) or "B"
    scale = _SI.get(unit) or _IEC.get(unit)
    if scale is None:
        raise ValueError(f"unknown size unit in {text!r}")
    return round(number * scale)


def parse_snapshot_status(text: str) -> SnapshotStatus:
    """`snapshot status` output in json, table or simple form (etcdctl 3.4 and etcdutl 3.5+)."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("{") and '"revision"' in stripped:
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError:
                continue
            if "level" in data and "msg" in data:
                continue  # a zap log line, not the status
            return SnapshotStatus(
                hash=int(data["hash"]),
                revision=int(data["revision"]),
                total_keys=int(data["totalKey"]),
                total_size=int(data["totalSize"]),
                size_exact=True,
            )
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.strip().startswith("|") and len(cells) == 4 and cells[0].upper() != "HASH":
            return _from_cells(cells, line)
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == 4 and re.fullmatch(r"[0-9a-fA-F]{1,16}", cells[0]):
            return _from_cells(cells, line)
    raise SnapshotError(f"no snapshot status in the output: {text.strip()[:200]!r}")


def _from_cells(cells: list[str], line: str) -> SnapshotStatus:
    try:
        return SnapshotStatus(
            hash=int(cells[0], 16),
            revision=int(cells[1]),
            total_keys=int(cells[2]),
            total_size=parse_size(cells[3]),
            size_exact=False,
        )
    except ValueError as error:
        raise SnapshotError(f"unreadable snapshot status line {line.strip()!r}: {error}") from None


@dataclass(frozen=True)
class SaveOutcome:
    """What `snapshot save` printed: saved, or how far it got."""

    saved: bool
    path: str | None
    partial_path: str | None
    reason: str


CERT_HINT = (
    "etcdctl says only `context deadline exceeded` when the TLS handshake fails: check that "
    "--cacert is the etcd CA (the manifest's --trusted-ca-file), that --cert/--key exist, are "
    "readable by root, belong together and are signed by that CA (the healthcheck-client or "
    "server pair in the etcd PKI dir, not the apiserver's), and that the endpoint is one etcd "
    "listens on (--listen-client-urls). etcd's own log names the real reason "
    "(`rejected connection`, `bad certificate`)."
)


def explain_etcdctl_error(text: str) -> str | None:
    """An operator hint for an etcdctl failure message, or None."""
    lowered = text.lower()
    if "context deadline exceeded" in lowered or "deadlineexceeded" in lowered:
        return CERT_HINT
    if "connection refused" in lowered:
        return "nothing listens on the endpoint: is etcd running, and on which client URL?"
    if "certificate signed by unknown authority" in lowered:
        return "the --cacert file is not the CA that signed etcd's server certificate"
    return None


def parse_snapshot_save(text: str, exit_code: int | None = None) -> SaveOutcome:
    """Read `snapshot save` output (plain, or 3.5's zap JSON lines): saved only on success.

    Success needs both a zero exit (when known) and `Snapshot saved at PATH`; a save that
    only got as far as `created temporary db file` (the hung 3.4.3 case) is a failure, with
    the .part path named so it can be removed.
    """
    saved_at: str | None = None
    partial: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        match = re.match(r"Snapshot saved at (.+)$", stripped)
        if match:
            saved_at = match.group(1).strip()
            continue
        if stripped.startswith("{"):
            try:
                entry = json.loads(stripped)
            except json.JSONDecodeError:
                continue
            if entry.get("msg") == "created temporary db file":
                partial = str(entry.get("path")) if entry.get("path") else partial
            elif entry.get("msg") == "saved" and entry.get("path"):
                saved_at = saved_at or str(entry["path"])
    if saved_at is not None and (exit_code is None or exit_code == 0):
        return SaveOutcome(True, saved_at, None, "saved")
    hint = explain_etcdctl_error(text)
    if exit_code in (124, 137):
        reason = "snapshot save timed out and was killed"
    elif partial is not None:
        reason = "snapshot save stopped after creating its temporary file (stalled or killed)"
    else:
        reason = "snapshot save did not report `Snapshot saved at`"
    if hint:
        reason += f"; {hint}"
    return SaveOutcome(False, None, partial, reason)


def parse_sha256sum(text: str) -> str:
    """The digest from `sha256sum FILE` output."""
    match = re.match(r"\s*\\?([0-9a-fA-F]{64})\s", text + " ")
    if not match:
        raise SnapshotError(f"no sha256 in {text.strip()[:120]!r}")
    return match.group(1).lower()


# --- metadata and verdicts -----------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotMeta:
    """The metadata file written next to each local snapshot (`<snapshot>.json`)."""

    file: str
    node: str
    taken_at: str  # UTC, ISO 8601, e.g. 2026-11-27T04:40:00Z
    sha256: str
    size: int
    revision: int
    total_keys: int
    hash: int | None = None
    etcd_version: str | None = None
    cluster_version: str | None = None
    member: str | None = None
    valid: bool = True
    problems: tuple[str, ...] = ()
    format: int = field(default=1)

    def to_json(self) -> str:
        """Stable JSON (sorted keys, one trailing newline)."""
        data = asdict(self)
        data["problems"] = list(self.problems)
        return json.dumps(data, sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SnapshotMeta:
        """Read a metadata file; unknown keys are ignored, missing required ones are errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SnapshotError(f"snapshot metadata is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise SnapshotError("snapshot metadata is not a JSON object")
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["problems"] = tuple(values.get("problems") or ())
        try:
            return cls(**values)
        except TypeError as error:
            raise SnapshotError(f"snapshot metadata is incomplete: {error}") from None

    def marked_invalid(self, *problems: str) -> SnapshotMeta:
        """The same metadata marked invalid, with the reasons added."""
        return replace(self, valid=False, problems=(*self.problems, *problems))


@dataclass(frozen=True)
class Verdict:
    """Whether a snapshot can be trusted, and every reason it cannot."""

    valid: bool
    problems: tuple[str, ...]


def assess_snapshot(
    *,
    expected_sha256: str | None,
    actual_sha256: str | None,
    status: SnapshotStatus | None,
    status_error: str | None = None,
    trial_restore_ok: bool | None = None,
    trial_restore_error: str | None = None,
    require_trial_restore: bool = True,
) -> Verdict:
    """Combine the checks: recorded sha256, `snapshot status`, and the trial restore."""
    problems: list[str] = []
    if expected_sha256 is not None and actual_sha256 is not None:
        if expected_sha256.lower() != actual_sha256.lower():
            problems.append(
                f"sha256 mismatch: recorded {expected_sha256[:16]}…, file {actual_sha256[:16]}…"
            )
    elif expected_sha256 is not None:
        problems.append("the file's sha256 was not computed")
    if status is None:
        problems.append(f"snapshot status failed: {status_error or 'no status'}")
    elif not status.plausible:
        problems.append(
            f"snapshot status shows revision {status.revision} and {status.total_keys} keys"
        )
    if trial_restore_ok is False:
        problems.append(f"trial restore failed: {trial_restore_error or 'non-zero exit'}")
    elif trial_restore_ok is None and require_trial_restore:
        problems.append("no trial restore was run (the only check of the snapshot's hash)")
    return Verdict(not problems, tuple(problems))
