"""Local snapshot storage (private, atomic, never clobbering) and retention."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nodeops.etcd import (
    SnapshotError,
    SnapshotMeta,
    load_local,
    retention,
    snapshot_name,
    store_local,
    utc_timestamp,
)


@pytest.fixture
def private_root() -> Iterator[Path]:
    """A scratch dir outside /tmp (store_local refuses shared temp dirs, as on nodes)."""
    base = Path.home() / ".cache"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="nodeops-etcd-test-", dir=base))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


WHEN = datetime(2026, 11, 27, 4, 45, 0, tzinfo=UTC)
DATA = b"\x00etcd-bolt-db" * 1000


def meta_for(
    data: bytes, when: datetime = WHEN, node: str = "cp1", **changes: object
) -> SnapshotMeta:
    base = SnapshotMeta(
        file=snapshot_name(node, when),
        node=node,
        taken_at=utc_timestamp(when),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        revision=10,
        total_keys=7,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_names() -> None:
    assert snapshot_name("cp1", WHEN) == "etcd-cp1-20261127T044500Z.db"
    assert snapshot_name("../evil/ name", WHEN) == "etcd-_evil__name-20261127T044500Z.db"
    assert utc_timestamp(WHEN) == "2026-11-27T04:45:00Z"


def test_store_local_is_private_even_with_umask_000(private_root: Path) -> None:
    dest = private_root / "backups" / "cluster-a"
    old = os.umask(0)
    try:
        stored = store_local(DATA, dest, meta_for(DATA))
    finally:
        os.umask(old)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.meta_path.stat().st_mode) == 0o600
    assert stored.path.read_bytes() == DATA
    assert stored.meta_path.name == "etcd-cp1-20261127T044500Z.db.json"
    assert SnapshotMeta.from_json(stored.meta_path.read_text()) == stored.meta
    assert sorted(p.name for p in dest.iterdir()) == [stored.path.name, stored.meta_path.name]
    assert load_local(dest) == [stored.meta]


def test_store_local_never_overwrites(private_root: Path) -> None:
    first = store_local(DATA, private_root, meta_for(DATA))
    other = DATA + b"more"
    second = store_local(other, private_root, meta_for(other))
    third = store_local(other, private_root, meta_for(other))
    assert first.path.read_bytes() == DATA
    assert second.path.name == "etcd-cp1-20261127T044500Z-1.db"
    assert third.path.name == "etcd-cp1-20261127T044500Z-2.db"
    assert second.meta.file == second.path.name
    assert second.meta_path.name == "etcd-cp1-20261127T044500Z-1.db.json"
    assert not [p for p in private_root.iterdir() if p.name.startswith(".")]


def test_store_local_from_a_path_tightens_an_existing_dir(private_root: Path) -> None:
    src = private_root / "fetched.db"
    src.write_bytes(DATA)
    dest = private_root / "dest"
    dest.mkdir(mode=0o755)
    os.chmod(dest, 0o755)
    stored = store_local(src, dest, meta_for(DATA))
    assert stored.path.read_bytes() == DATA
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700


def test_store_local_refuses_a_corrupt_copy(private_root: Path) -> None:
    corrupt = DATA[:-10]
    with pytest.raises(SnapshotError, match="does not match"):
        store_local(corrupt, private_root / "d", meta_for(DATA))
    assert not (private_root / "d").exists()


def test_store_local_refuses_symlinks_shared_and_tmp_dirs(private_root: Path) -> None:
    real = private_root / "real"
    real.mkdir()
    link = private_root / "link"
    link.symlink_to(real)
    with pytest.raises(SnapshotError, match="symlink"):
        store_local(DATA, link, meta_for(DATA))
    shared = private_root / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    with pytest.raises(SnapshotError, match="world-writable"):
        store_local(DATA, shared, meta_for(DATA))
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    for tmp in ("/tmp", "/tmp/nodeops-backups", "/dev/shm/x"):
        with pytest.raises(SnapshotError, match="under"):
            store_local(DATA, Path(tmp), meta_for(DATA))
    assert stat.S_IMODE(Path("/tmp").stat().st_mode) == 0o1777


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 27, hour, minute, tzinfo=UTC)


def test_retention_keeps_the_newest_valid_and_reports_invalid() -> None:
    metas = [meta_for(DATA, at(h)) for h in (1, 2, 3, 4, 5)]
    metas[4] = metas[4].marked_invalid("trial restore failed")  # the newest is invalid
    plan = retention(metas, keep=2)
    assert plan.keep == (metas[3].file, metas[2].file)
    assert plan.delete == (metas[1].file, metas[0].file)
    assert plan.invalid == (metas[4].file,)


def test_retention_never_deletes_the_newest() -> None:
    metas = [meta_for(DATA, at(h)) for h in (3, 1, 2)]
    plan = retention(metas, keep=1)
    assert plan.keep == (metas[0].file,)
    assert set(plan.delete) == {metas[1].file, metas[2].file}
    with pytest.raises(ValueError):
        retention(metas, keep=0)
    assert retention([], keep=3).delete == ()


def test_retention_on_paths_ignores_foreign_files_and_orders_collisions() -> None:
    paths = [
        Path("/b/etcd-cp1-20261127T010000Z.db"),
        Path("/b/etcd-cp1-20261127T030000Z.db"),
        Path("/b/etcd-cp1-20261127T030000Z-1.db"),
        Path("/b/my-manual-backup.db"),
        Path("/b/etcd-cp1-20261127T020000Z.db.json"),
    ]
    plan = retention(paths, keep=2)
    assert plan.keep == (
        "/b/etcd-cp1-20261127T030000Z-1.db",
        "/b/etcd-cp1-20261127T030000Z.db",
    )
    assert plan.delete == ("/b/etcd-cp1-20261127T010000Z.db",)
