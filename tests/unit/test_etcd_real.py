"""The builders against a real etcd 3.4 (Debian's etcd-server/etcd-client) on loopback.

Starts etcd on free ports in a scratch dir (plain HTTP), writes keys, then runs the very
Cmds nodeops sends to nodes through a local `sh -c`: save, status, sha256, trial restore,
restore; corrupt copies are refused; a restored dir serves the keys under the right peer
URL. etcd is always stopped and waited for.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodeops.cmd import Cmd, cmd
from nodeops.etcd import (
    EtcdctlArgs,
    EtcdMember,
    assess_snapshot,
    etcdctl_connection,
    make_private_dir,
    parse_etcd_manifest,
    parse_sha256sum,
    parse_snapshot_save,
    parse_snapshot_status,
    parse_tool_version,
    restore,
    sha256,
    snapshot_save,
    snapshot_status,
    tools_for,
    trial_restore,
)
from nodeops.etcd.snapshot import EtcdTools, SnapshotError

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"

pytestmark = pytest.mark.skipif(
    not (os.access(ETCD, os.X_OK) and os.access(ETCDCTL, os.X_OK)),
    reason="etcd/etcdctl are not installed (Debian: etcd-server, etcd-client)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sh(command: Cmd, *, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    """Run a Cmd as the node would (we are root here, so no sudo wrapper)."""
    line = command.render(as_root=True)
    return subprocess.run(
        ["/bin/sh", "-c", f"umask {umask:03o}; {line}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


MANIFEST = """\
apiVersion: v1
kind: Pod
metadata: {{name: etcd, namespace: kube-system}}
spec:
  hostNetwork: true
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.4.23-0
    command:
    - etcd
    - --name=lab-cp1
    - --data-dir=/var/lib/etcd
    - --listen-client-urls=http://127.0.0.1:{client}
    - --advertise-client-urls=http://127.0.0.1:{client}
    - --listen-peer-urls=http://127.0.0.1:{peer}
    - --initial-advertise-peer-urls=http://127.0.0.1:{peer}
    - --initial-cluster=lab-cp1=http://127.0.0.1:{peer}
    volumeMounts:
    - {{mountPath: /var/lib/etcd, name: etcd-data}}
  volumes:
  - {{name: etcd-data, hostPath: {{path: {data}, type: DirectoryOrCreate}}}}
"""


@dataclass
class RealEtcd:
    root: Path
    member: EtcdMember
    args: EtcdctlArgs
    tools: EtcdTools
    process: subprocess.Popen[bytes] | None = None

    def start(self, data_dir: str) -> None:
        flags = [f"--{k}={v}" for k, v in self.member.flags.items() if k != "data-dir"]
        log = (self.root / "etcd.log").open("ab")
        self.process = subprocess.Popen(
            [ETCD, *flags, f"--data-dir={data_dir}"], stdout=log, stderr=log
        )
        log.close()
        health = cmd(ETCDCTL, f"--endpoints={self.args.endpoint}", "endpoint", "health")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError((self.root / "etcd.log").read_text()[-2000:])
            if sh(health).returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError("etcd did not become healthy within 10 s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def etcdctl(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return sh(cmd(ETCDCTL, *self.args.global_flags(), *argv))


@pytest.fixture
def real_etcd() -> Iterator[RealEtcd]:
    base = Path.home() / ".cache"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="nodeops-etcd-real-", dir=base))
    data = root / "var-lib-etcd"
    text = MANIFEST.format(client=free_port(), peer=free_port(), data=data)
    member = parse_etcd_manifest(text)
    assert member.data_dir_host == str(data)
    version = parse_tool_version(sh(cmd(ETCDCTL, "version")).stdout)
    etcd = RealEtcd(root, member, etcdctl_connection(member), tools_for(version))
    try:
        etcd.start(str(data))
        yield etcd
    finally:
        etcd.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_save_status_verify_corrupt_and_restore(real_etcd: RealEtcd) -> None:
    etcd, root = real_etcd, real_etcd.root
    assert etcd.args.endpoint.startswith("http://127.0.0.1:")
    assert etcd.tools.offline == "etcdctl" and not etcd.tools.bump_revision  # 3.4
    for index in range(5):
        assert etcd.etcdctl("put", f"/registry/k{index}", f"v{index}").returncode == 0

    snapdir = str(root / "snapshots")
    path = f"{snapdir}/etcd-lab-cp1-20261127T044500Z.db"
    assert sh(make_private_dir(snapdir), umask=0).returncode == 0
    saved = sh(snapshot_save(etcd.args, path, timeout_seconds=20), umask=0)
    outcome = parse_snapshot_save(saved.stdout + saved.stderr, saved.returncode)
    assert outcome.saved and outcome.path == path, saved.stderr
    assert stat.S_IMODE(os.stat(snapdir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not Path(path + ".part").exists()

    status_run = sh(snapshot_status(etcd.tools, path))
    assert status_run.returncode == 0, status_run.stderr
    status = parse_snapshot_status(status_run.stdout)
    # Revision 1 + five puts; "total keys" counts every bolt bucket's keys (members, meta, ...).
    assert status.revision == 6 and status.total_keys >= 5
    assert status.size_exact and status.total_size == os.path.getsize(path) - 32  # + sha256
    table = parse_snapshot_status(sh(snapshot_status(etcd.tools, path, json=False)).stdout)
    assert (table.hash, table.revision, table.total_keys) == (status.hash, 6, status.total_keys)
    digest = parse_sha256sum(sh(sha256(path)).stdout)

    check_dir = str(root / "check")
    assert sh(make_private_dir(check_dir)).returncode == 0
    trial = sh(trial_restore(etcd.tools, path, check_dir))
    assert trial.returncode == 0, trial.stderr
    assert os.listdir(check_dir) == []  # the scratch restore is removed again
    verdict = assess_snapshot(
        expected_sha256=digest, actual_sha256=digest, status=status, trial_restore_ok=True
    )
    assert verdict.valid

    # Corrupt copies: truncated, and one byte flipped in the middle.
    blob = Path(path).read_bytes()
    truncated = f"{snapdir}/truncated.db"
    flipped = f"{snapdir}/flipped.db"
    Path(truncated).write_bytes(blob[: len(blob) // 2])
    middle = len(blob) // 2
    Path(flipped).write_bytes(blob[:middle] + bytes([blob[middle] ^ 0xFF]) + blob[middle + 1 :])
    for bad in (truncated, flipped):
        run = sh(snapshot_status(etcd.tools, bad))
        try:
            bad_status = parse_snapshot_status(run.stdout) if run.returncode == 0 else None
        except SnapshotError:
            bad_status = None
        bad_trial = sh(trial_restore(etcd.tools, bad, check_dir))
        actual = parse_sha256sum(sh(sha256(bad)).stdout)
        verdict = assess_snapshot(
            expected_sha256=digest,
            actual_sha256=actual,
            status=bad_status,
            status_error=run.stderr.strip()[-200:],
            trial_restore_ok=bad_trial.returncode == 0,
            trial_restore_error=bad_trial.stderr.strip()[-200:],
        )
        assert not verdict.valid
        assert "sha256 mismatch" in verdict.problems[0]
        # Without the recorded digest only the trial restore catches it: etcd 3.4's
        # `snapshot status` happily reads a half-truncated or byte-flipped file.
        assert bad_trial.returncode != 0, bad
        assert "sha256" in bad_trial.stderr or "missing hash" in bad_trial.stderr
    assert os.listdir(check_dir) == []

    # Restore with the member's name, cluster and peer URL; serve it; the keys are back and
    # the member's peer URL is the manifest's, not http://localhost:2380.
    etcd.stop()
    restored = str(root / "var-lib-etcd.nodeops-restore")
    run = sh(restore(etcd.member, path, restored, tools=etcd.tools))
    assert run.returncode == 0, run.stderr
    etcd.start(restored)
    keys = etcd.etcdctl("get", "/registry/", "--prefix", "--keys-only").stdout.split()
    assert keys == [f"/registry/k{i}" for i in range(5)]
    members = etcd.etcdctl("member", "list").stdout
    assert etcd.member.initial_advertise_peer_urls[0] in members
    assert "localhost:2380" not in members


def test_a_stalled_save_is_killed_reported_and_cleaned_up(real_etcd: RealEtcd) -> None:
    # TLS against a plain-HTTP listener: etcdctl 3.4 prints `created temporary db file` and
    # then waits forever (the hung-partial fixture). `timeout` ends it on the node.
    etcd, root = real_etcd, real_etcd.root
    wrong = EtcdctlArgs(endpoint=etcd.args.endpoint.replace("http://", "https://"))
    snapdir = str(root / "snapshots")
    path = f"{snapdir}/etcd-lab-cp1-20261127T050000Z.db"
    assert sh(make_private_dir(snapdir)).returncode == 0
    run = sh(snapshot_save(wrong, path, timeout_seconds=2))  # 124: `timeout` ended it
    outcome = parse_snapshot_save(run.stdout + run.stderr, run.returncode)
    assert run.returncode == 124
    assert not outcome.saved
    assert outcome.partial_path == path + ".part"
    assert "timed out" in outcome.reason
    assert os.listdir(snapdir) == []  # neither the snapshot nor its .part is left
