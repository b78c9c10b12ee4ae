"""Local snapshot files: names, private atomic storage, and which ones retention removes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from nodeops.etcd.snapshot import SHARED_TMP, SnapshotError, SnapshotMeta

#: `etcd-<node>-<YYYYmmddTHHMMSSZ>[-N].db`: the only files retention ever considers.
NAME_RE = re.compile(r"^etcd-(?P<node>.+)-(?P<ts>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?\.db$")


def snapshot_name(node: str, when: datetime) -> str:
    """`etcd-<node>-<UTC timestamp>.db`, the node name made file-safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", node).strip(".") or "node"
    return f"etcd-{safe}-{when.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.db"


def utc_timestamp(when: datetime) -> str:
    """ISO 8601 UTC with a Z, seconds precision: what SnapshotMeta.taken_at holds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class StoredSnapshot:
    """A snapshot stored locally: the file, its metadata file, and the metadata."""

    path: Path
    meta_path: Path
    meta: SnapshotMeta


def _private_dir(dest_dir: Path) -> None:
    """Make sure dest_dir is ours and 0700; refuse shared temp dirs and foreign directories."""
    absolute = Path(os.path.abspath(dest_dir))
    for tmp in SHARED_TMP:
        if absolute == Path(tmp) or Path(tmp) in absolute.parents:
            raise SnapshotError(
                f"{dest_dir} is under {tmp}: snapshots there are cleaned up or lost on reboot"
            )
    # umask 077 while creating: parents made by mkdir(parents=True) get 0777 & ~umask, so a
    # umask of 000 would leave world-writable parents (anyone could swap the directory).
    old_umask = os.umask(0o077)
    try:
        dest_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    finally:
        os.umask(old_umask)
    info = dest_dir.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise SnapshotError(f"{dest_dir} is not a directory (a symlink is refused)")
    if info.st_uid != os.geteuid():
        raise SnapshotError(f"{dest_dir} belongs to uid {info.st_uid}, not to this user")
    if info.st_mode & (stat.S_ISVTX | stat.S_IWOTH):
        raise SnapshotError(f"{dest_dir} is a shared (world-writable) directory")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(dest_dir, 0o700)


def _write_private_new(dest_dir: Path, name: str, chunks: Sequence[bytes] | Path) -> Path:
    """Write to a hidden temp file in dest_dir, fsync, then link to a free name (no clobber)."""
    tmp = dest_dir / f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "wb", closefd=False) as out:
            if isinstance(chunks, Path):
                with chunks.open("rb") as src:
                    while block := src.read(1 << 20):
                        out.write(block)
            else:
                for chunk in chunks:
                    out.write(chunk)
            out.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    os.close(fd)
    try:
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        for attempt in range(1000):
            candidate = name if attempt == 0 else f"{stem}-{attempt}{dot}{ext}"
            try:
                os.link(tmp, dest_dir / candidate)  # atomic, and fails if the name exists
            except FileExistsError:
                continue
            _fsync_dir(dest_dir)
            return dest_dir / candidate
        raise SnapshotError(f"no free name for {name} in {dest_dir}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256_of(src: bytes | Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    if isinstance(src, Path):
        with src.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                size += len(block)
    else:
        digest.update(src)
        size = len(src)
    return digest.hexdigest(), size


def store_local(src: bytes | Path, dest_dir: Path, meta: SnapshotMeta) -> StoredSnapshot:
    """Store a fetched snapshot: 0600 file in a 0700 dir, atomic, never over an existing one.

    The bytes must match `meta.sha256` (the digest taken on the node) — a copy that does
    not is refused and nothing is written. A name collision gets `-1`, `-2`, … ; the
    metadata file `<name>.json` follows the name actually used.
    """
    actual, size = _sha256_of(src)
    if meta.sha256 and actual != meta.sha256.lower():
        raise SnapshotError(
            f"the local copy of {meta.file} does not match the node's sha256 "
            f"({actual[:16]}… vs {meta.sha256[:16]}…): the copy is corrupt; nothing was stored"
        )
    _private_dir(dest_dir)
    body: Sequence[bytes] | Path = src if isinstance(src, Path) else [src]
    path = _write_private_new(dest_dir, meta.file, body)
    final_meta = replace(meta, file=path.name, sha256=actual, size=size)
    meta_name = path.name + ".json"
    meta_path = dest_dir / meta_name
    tmp_meta = _write_private_new(
        dest_dir, "." + meta_name + ".new", [final_meta.to_json().encode()]
    )
    os.replace(tmp_meta, meta_path)  # the metadata alone may be rewritten (marking invalid)
    _fsync_dir(dest_dir)
    return StoredSnapshot(path, meta_path, final_meta)


def load_local(dest_dir: Path) -> list[SnapshotMeta]:
    """Metadata of every snapshot in dest_dir that has a metadata file next to it."""
    found: list[SnapshotMeta] = []
    if not dest_dir.is_dir():
        return found
    for meta_path in sorted(dest_dir.glob("etcd-*.db.json")):
        if (dest_dir / meta_path.name[: -len(".json")]).is_file():
            found.append(SnapshotMeta.from_json(meta_path.read_text()))
    return found


@dataclass(frozen=True)
class RetentionPlan:
    """What retention keeps, deletes, and leaves for a person to look at."""

    keep: tuple[str, ...]
    delete: tuple[str, ...]
    invalid: tuple[str, ...]


def _when(item: SnapshotMeta | Path | str) -> tuple[str, int, str] | None:
    """A sort key (timestamp, collision number, name) or None when the name is not ours."""
    name = item.file if isinstance(item, SnapshotMeta) else Path(item).name
    match = NAME_RE.match(name)
    if isinstance(item, SnapshotMeta):
        stamp = re.sub(r"[^0-9TZ]", "", item.taken_at)
        return (stamp, int(match.group("n") or 0) if match else 0, name)
    if not match:
        return None
    return (match.group("ts"), int(match.group("n") or 0), name)


def retention(existing: Sequence[SnapshotMeta | Path | str], keep: int) -> RetentionPlan:
    """Keep the newest `keep` valid snapshots; delete older valid ones.

    Never deletes the newest valid snapshot (`keep` must be >= 1). Invalid-marked snapshots
    neither count toward `keep` nor get deleted silently: they are listed in `invalid` for
    the operator (they are evidence of what went wrong). Paths without metadata count as
    valid; files whose names nodeops did not give are never touched.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1: the newest snapshot is never deleted")
    valid: list[tuple[tuple[str, int, str], str]] = []
    invalid: list[str] = []
    for item in existing:
        key = _when(item)
        name = item.file if isinstance(item, SnapshotMeta) else str(item)
        if key is None:
            continue
        if isinstance(item, SnapshotMeta) and not item.valid:
            invalid.append(name)
            continue
        valid.append((key, name))
    valid.sort(reverse=True)
    kept = tuple(name for _, name in valid[:keep])
    deleted = tuple(name for _, name in valid[keep:])
    return RetentionPlan(kept, deleted, tuple(sorted(invalid)))
