"""Restore: refusals before any change, the exact restore argv, and the undoable step plan."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeops.cmd import Cmd
from nodeops.etcd import (
    RestoreRefused,
    SnapshotMeta,
    check_restore_inputs,
    etcdctl_connection,
    parse_etcd_manifest,
    plan_restore,
    restore,
    tools_for,
)

SNAP = "/var/lib/nodeops/etcd/etcd-cp1-20261127T044500Z.db"
TS = "20261127T044500Z"


def manifest(data_host: str = "/var/lib/etcd", **flags: str) -> str:
    values = {
        "name": "cp1",
        "initial-cluster": "cp1=https://10.0.0.11:2380",
        "initial-advertise-peer-urls": "https://10.0.0.11:2380",
    } | flags
    lines = "".join(f"    - --{k}={v}\n" for k, v in values.items() if v)
    return f"""\
apiVersion: v1
kind: Pod
metadata: {{name: etcd, namespace: kube-system}}
spec:
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.5.10-0
    command:
    - etcd
    - --data-dir=/var/lib/etcd
    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.11:2379
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --key-file=/etc/kubernetes/pki/etcd/server.key
{lines}    volumeMounts:
    - {{mountPath: /var/lib/etcd, name: etcd-data}}
  volumes:
  - {{name: etcd-data, hostPath: {{path: {data_host!r}, type: DirectoryOrCreate}}}}
"""


MEMBER = parse_etcd_manifest(manifest())


def test_a_sound_member_passes() -> None:
    assert check_restore_inputs(MEMBER) == []


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"name": "cp2"}, "'cp2' is not in --initial-cluster"),
        ({"name": ""}, "no --name"),
        ({"initial-cluster": ""}, "no --initial-cluster"),
        ({"initial-advertise-peer-urls": ""}, "http://localhost:2380"),
        (
            {"initial-advertise-peer-urls": "https://10.0.0.99:2380"},
            "--initial-advertise-peer-urls",
        ),
        ({"wal-dir": "/var/lib/etcd-wal"}, "--wal-dir"),
    ],
)
def test_refusals(flags: dict[str, str], needle: str) -> None:
    member = parse_etcd_manifest(manifest(**flags))
    problems = check_restore_inputs(member)
    assert any(needle in p for p in problems), problems
    with pytest.raises(RestoreRefused, match="nothing changed"):
        plan_restore(
            member,
            SNAP,
            tools=tools_for((3, 5, 10)),
            etcdctl=etcdctl_connection(member),
            timestamp=TS,
        )


def test_peer_urls_compare_normalised() -> None:
    member = parse_etcd_manifest(
        manifest(**{"initial-advertise-peer-urls": "HTTPS://10.0.0.11:2380"})
    )
    assert check_restore_inputs(member) == []


@pytest.mark.parametrize("host", ["/", "/etcd", "/tmp/etcd"])
def test_dangerous_data_dirs_are_refused(host: str) -> None:
    assert check_restore_inputs(parse_etcd_manifest(manifest(host)))


def test_invalid_snapshots_are_refused() -> None:
    meta = SnapshotMeta(
        file="x.db",
        node="cp1",
        taken_at="2026-11-27T04:45:00Z",
        sha256="0" * 64,
        size=1,
        revision=10,
        total_keys=7,
    )
    assert check_restore_inputs(MEMBER, meta=meta) == []
    bad = meta.marked_invalid("trial restore failed: snapshot file integrity check failed")
    assert any("marked invalid" in p for p in check_restore_inputs(MEMBER, meta=bad))
    empty = SnapshotMeta("x.db", "cp1", "2026-11-27T04:45:00Z", "0" * 64, 1, 0, 0)
    assert any("revision 0" in p for p in check_restore_inputs(MEMBER, meta=empty))


def test_restore_argv_by_version() -> None:
    new = "/var/lib/etcd.nodeops-restore-x"
    common = (
        f"snapshot restore {SNAP} --data-dir={new} --name=cp1 "
        "--initial-cluster=cp1=https://10.0.0.11:2380 "
        "--initial-advertise-peer-urls=https://10.0.0.11:2380"
    )
    assert restore(MEMBER, SNAP, new, tools=tools_for((3, 4, 23))).render(as_root=True) == (
        "etcdctl " + common
    )
    assert restore(MEMBER, SNAP, new, tools=tools_for((3, 3, 15))).render(as_root=True) == (
        "env ETCDCTL_API=3 etcdctl " + common
    )
    bumped = restore(MEMBER, SNAP, new, tools=tools_for((3, 5, 10)), bump=1_000_000_000)
    assert bumped.render(as_root=True) == (
        "etcdutl " + common + " --bump-revision=1000000000 --mark-compacted"
    )
    assert bumped.sudo
    with pytest.raises(RestoreRefused, match="bump-revision"):
        restore(MEMBER, SNAP, new, tools=tools_for((3, 4, 23)), bump=1000)
    with_token = parse_etcd_manifest(manifest(**{"initial-cluster-token": "tok en"}))
    line = restore(with_token, SNAP, new, tools=tools_for((3, 5, 9))).render(as_root=True)
    assert line.endswith(" '--initial-cluster-token=tok en'")


def test_plan_shape_and_rollback_order() -> None:
    plan = plan_restore(
        MEMBER, SNAP, tools=tools_for((3, 5, 10)), etcdctl=etcdctl_connection(MEMBER), timestamp=TS
    )
    assert [s.title for s in plan.steps] == [
        "Check the snapshot (status)",
        "Check the snapshot (trial restore)",
        "Restore into a staging directory",
        "Stop the API servers",
        "Stop etcd",
        "Keep the old data directory",
        "Put the restored data in place",
        "Start etcd",
        "Start the API servers",
    ]
    assert plan.kept_dir == f"/var/lib/etcd.nodeops-{TS}"
    assert plan.staging_dir == f"/var/lib/etcd.nodeops-restore-{TS}"
    assert plan.backup_dir == f"/etc/kubernetes/tmp/nodeops-etcd-restore-{TS}"
    assert not plan.steps[0].changes_node
    restore_line = plan.steps[2].do[2].render(as_root=True)
    assert "--bump-revision=1000000000 --mark-compacted" in restore_line
    assert f"--data-dir={plan.staging_dir}" in restore_line
    assert plan.steps[2].do[3].render(as_root=True) == (
        f"chown -R --reference=/var/lib/etcd -- {plan.staging_dir}"
    )
    stop = plan.steps[4].wait
    start = plan.steps[7].wait
    assert stop is not None and not stop.until_ok
    assert start is not None and start.until_ok
    assert "endpoint health" in start.probe.render(as_root=True)
    # Failing at "Start etcd": undo newest first, back to the old directory and manifests.
    undo = [c.render(as_root=True) for c in plan.rollback(7)]
    assert "manifests/etcd.yaml" in undo[0].split("&&")[-1].split("mv -T --")[1].split()[0]
    assert f"mv -T -- /var/lib/etcd {plan.staging_dir}" in undo[1]
    assert f"mv -T -- {plan.kept_dir} /var/lib/etcd" in undo[2]
    assert undo[-2] == f"rm -rf -- {plan.staging_dir}"
    no_bump = plan_restore(
        MEMBER,
        SNAP,
        tools=tools_for((3, 5, 10)),
        etcdctl=etcdctl_connection(MEMBER),
        timestamp=TS,
        bump=0,
    )
    assert "--bump-revision" not in no_bump.steps[2].do[2].render(as_root=True)
    old = plan_restore(
        MEMBER, SNAP, tools=tools_for((3, 4, 23)), etcdctl=etcdctl_connection(MEMBER), timestamp=TS
    )
    assert "--bump-revision" not in old.steps[2].do[2].render(as_root=True)


def test_manifest_backup_dir_must_be_outside_the_static_pod_dir() -> None:
    with pytest.raises(RestoreRefused, match="outside the static pod dir"):
        plan_restore(
            MEMBER,
            SNAP,
            tools=tools_for((3, 5, 10)),
            etcdctl=etcdctl_connection(MEMBER),
            timestamp=TS,
            backup_root="/etc/kubernetes/manifests",
        )


# --- the plan's file moves, for real, in a scratch tree ----------------------------------


@pytest.fixture
def node_root() -> Iterator[Path]:
    """A scratch 'node' outside /tmp (node paths under /tmp are refused by design)."""
    base = Path.home() / ".cache"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="nodeops-etcd-restore-", dir=base))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def sh(command: Cmd) -> int:
    return subprocess.run(["/bin/sh", "-c", command.render(as_root=True)], check=False).returncode


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): (p.read_text() if p.is_file() else "<dir>")
        for p in sorted(root.rglob("*"))
    }


def scratch_plan(root: Path):  # type: ignore[no-untyped-def]
    data = root / "var/lib/etcd"
    (data / "member").mkdir(parents=True)
    (data / "member/db").write_text("old")
    manifests = root / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    for name in ("etcd.yaml", "kube-apiserver.yaml", "kube-scheduler.yaml"):
        (manifests / name).write_text(name)
    member = parse_etcd_manifest(manifest(str(data)))
    plan = plan_restore(
        member,
        SNAP,
        tools=tools_for((3, 4, 23)),
        etcdctl=etcdctl_connection(member),
        timestamp=TS,
        manifest_dir=str(manifests),
        backup_root=str(root / "etc/kubernetes/tmp"),
    )
    return plan, data, manifests


def run_moves(plan, upto: int) -> None:  # type: ignore[no-untyped-def]
    """Run steps 3..upto (the file moves); the restore itself is faked by a prepared dir."""
    Path(plan.staging_dir, "member").mkdir(parents=True)
    Path(plan.staging_dir, "member/db").write_text("restored")
    for step in plan.steps[3 : upto + 1]:
        for command in step.do:
            assert sh(command) == 0, command


def test_plan_moves_succeed_and_keep_the_old_dir(node_root: Path) -> None:
    plan, data, manifests = scratch_plan(node_root)
    run_moves(plan, len(plan.steps) - 1)
    assert (data / "member/db").read_text() == "restored"
    assert Path(plan.kept_dir, "member/db").read_text() == "old"
    assert not Path(plan.staging_dir).exists()
    assert sorted(p.name for p in manifests.iterdir()) == [
        "etcd.yaml",
        "kube-apiserver.yaml",
        "kube-scheduler.yaml",
    ]
    assert list(Path(plan.backup_dir).iterdir()) == []


@pytest.mark.parametrize("failed_at", [3, 4, 5, 6, 7, 8])
def test_rollback_restores_the_starting_state(node_root: Path, failed_at: int) -> None:
    plan, data, _ = scratch_plan(node_root)
    before = tree(node_root)
    run_moves(plan, failed_at)
    for command in plan.rollback(failed_at):
        assert sh(command) == 0, command
    after = tree(node_root)
    backup_rel = str(Path(plan.backup_dir).relative_to(node_root))
    after = {k: v for k, v in after.items() if not k.startswith(str(Path(backup_rel).parent))}
    assert after == before
    assert (data / "member/db").read_text() == "old"


def test_moves_never_overwrite(node_root: Path) -> None:
    plan, data, _ = scratch_plan(node_root)
    Path(plan.kept_dir).mkdir()  # a leftover from an earlier attempt
    run_moves(plan, 4)
    keep = plan.steps[5]
    assert sh(keep.do[0]) != 0
    assert (data / "member/db").read_text() == "old"


def test_plan_when_the_data_dir_is_gone(node_root: Path) -> None:
    _, data, _ = scratch_plan(node_root)
    member = parse_etcd_manifest(manifest(str(data)))
    shutil.rmtree(data)
    gone = plan_restore(
        member,
        SNAP,
        tools=tools_for((3, 4, 23)),
        etcdctl=etcdctl_connection(member),
        timestamp=TS,
        manifest_dir=str(node_root / "etc/kubernetes/manifests"),
        backup_root=str(node_root / "etc/kubernetes/tmp"),
        data_dir_exists=False,
    )
    assert "Keep the old data directory" not in [s.title for s in gone.steps]
    assert gone.steps[2].do[3].render(as_root=True) == f"chown -R 0:0 -- {gone.staging_dir}"
    run_moves(gone, len(gone.steps) - 1)
    assert (data / "member/db").read_text() == "restored"
    owned = plan_restore(
        member,
        SNAP,
        tools=tools_for((3, 4, 23)),
        etcdctl=etcdctl_connection(member),
        timestamp=TS,
        owner="998:998",
    )
    assert owned.steps[2].do[3].render(as_root=True) == f"chown -R 998:998 -- {owned.staging_dir}"
