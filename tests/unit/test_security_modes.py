"""Files nodeops writes on this machine are private, whatever the umask: journals (they hold
command output), known_hosts, etcd snapshots and their metadata, resource exports — each
0600, in directories (and parents it creates) of 0700."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from nodeops.etcd import SnapshotMeta, store_local
from nodeops.etcdops import write_private_new
from nodeops.hostkeys import record_host_key
from nodeops.journal import Journal


@pytest.fixture()
def home() -> Iterator[Path]:
    """A fresh tree outside /tmp (snapshot storage refuses shared temp dirs)."""
    base = Path.home() / ".cache"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="nodeops-modes-", dir=base))
    root.chmod(0o700)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def host_key(tmp_path_factory: pytest.TempPathFactory) -> paramiko.PKey:
    path = tmp_path_factory.mktemp("key") / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def modes(root: Path) -> dict[str, int]:
    """Every path below root (relative) and its permission bits."""
    return {
        str(path.relative_to(root)): stat.S_IMODE(path.lstat().st_mode)
        for path in sorted(root.rglob("*"))
    }


def test_journal_is_0600_in_0700_directories_with_umask_000(home: Path, umask_000: None) -> None:
    journal = Journal.start(home / ".local" / "state" / "nodeops" / "journal", "upgrade", {})
    journal.record("step-finished", node="w1")
    assert modes(home) == {
        ".local": 0o700,
        ".local/state": 0o700,
        ".local/state/nodeops": 0o700,
        ".local/state/nodeops/journal": 0o700,
        f".local/state/nodeops/journal/{journal.path.name}": 0o600,
    }


def test_a_journal_reopened_to_resume_stays_0600(home: Path, umask_000: None) -> None:
    # A resumed run appends to the journal by path; if it has gone meanwhile (cleaned up,
    # moved), the new file must be as private as the first.
    path = home / "resumed.jsonl"
    Journal(path=path, run_id="20261127T000000Z-upgrade-abcdef").record("run-resumed")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_known_hosts_and_the_directories_made_for_it_are_private(
    home: Path, umask_000: None, host_key: paramiko.PKey
) -> None:
    record_host_key(home / ".ssh" / "nodeops" / "known_hosts", "[10.0.0.5]:2222", host_key)
    assert modes(home) == {".ssh": 0o700, ".ssh/nodeops": 0o700, ".ssh/nodeops/known_hosts": 0o600}


def test_etcd_snapshots_and_exports_are_0600_in_0700_directories(
    home: Path, umask_000: None
) -> None:
    data = b"\x00bolt" * 100
    meta = SnapshotMeta(
        file="etcd-cp1-20261127T044500Z.db",
        node="cp1",
        taken_at="2026-11-27T04:45:00Z",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        revision=10,
        total_keys=7,
    )
    stored = store_local(data, home / "share" / "etcd-backups", meta)
    export = write_private_new(home / "share" / "resources" / "r.yaml", "kind: List\n")
    found = modes(home)
    assert found == {
        "share": 0o700,
        "share/etcd-backups": 0o700,
        f"share/etcd-backups/{stored.path.name}": 0o600,
        f"share/etcd-backups/{stored.meta_path.name}": 0o600,
        "share/resources": 0o700,
        f"share/resources/{export.name}": 0o600,
    }
