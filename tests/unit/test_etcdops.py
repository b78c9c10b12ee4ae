"""etcd operations over FakeTransport: exact command order, read-only dry runs, refusals
before any change, rollback after a failure, and the resource export's cleaning."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nodeops import etcdops
from nodeops.cmd import Cmd
from nodeops.errors import NodeopsError
from nodeops.etcd import RestoreRefused, SnapshotError, SnapshotMeta
from nodeops.node import Node
from nodeops.transport import FakeTransport

NODE = Node("cp1", "10.0.0.11", roles=frozenset({"control-plane", "etcd"}))
ADDR = "10.0.0.11"
ETCD_YAML = f"""\
apiVersion: v1
kind: Pod
metadata: {{name: etcd, namespace: kube-system}}
spec:
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.5.10-0
    command:
    - etcd
    - --advertise-client-urls=https://{ADDR}:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://{ADDR}:2380
    - --initial-cluster=cp1=https://{ADDR}:2380
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://{ADDR}:2379
    - --listen-peer-urls=https://{ADDR}:2380
    - --name=cp1
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    volumeMounts:
    - {{mountPath: /var/lib/etcd, name: etcd-data}}
    - {{mountPath: /etc/kubernetes/pki/etcd, name: etcd-certs}}
  volumes:
  - {{name: etcd-certs, hostPath: {{path: /etc/kubernetes/pki/etcd}}}}
  - {{name: etcd-data, hostPath: {{path: /var/lib/etcd, type: DirectoryOrCreate}}}}
"""
APISERVER_YAML = """\
apiVersion: v1
kind: Pod
metadata: {name: kube-apiserver, namespace: kube-system}
spec:
  containers:
  - name: kube-apiserver
    image: registry.k8s.io/kube-apiserver:v1.29.3
    command: [kube-apiserver, --secure-port=6443, --etcd-servers=https://127.0.0.1:2379]
"""
SNAPSHOT = b"etcd snapshot bytes \x00\x01\x02" * 100
WHEN = datetime(2026, 11, 27, 4, 45, tzinfo=UTC)
MEMBERS_ONE = json.dumps({"members": [{"ID": 1, "name": "cp1"}]})
MEMBERS_THREE = json.dumps(
    {"members": [{"ID": 1, "name": "cp1"}, {"ID": 2, "name": "cp2"}, {"ID": 3, "name": "cp3"}]}
)
STATUS = '{"hash":1378740333,"revision":324,"totalKey":327,"totalSize":794656}'

Answer = tuple[int, str, str]
Rule = tuple[str, Answer] | tuple[str, Callable[[Cmd], Answer]]

#: Words of commands that change a node: none may appear in a dry run or a refusal.
CHANGING = (
    "mv -T",
    "install -d",
    "rm -",
    "chmod",
    "chown",
    "base64 -d",
    "snapshot save",
    "snapshot restore",
    "rmdir",
)


def probes(**sections: tuple[int, str]) -> str:
    """Output of a facts-style probe script: each section between its markers."""
    out = []
    for name, (code, text) in sections.items():
        out.append(f"\n@@nodeops-probe {name}@@\n{text}\n@@nodeops-rc {name} {code}@@\n")
    return "".join(out)


KUBELET = probes(
    kubelet_ps=(0, "  42 /usr/bin/kubelet --pod-manifest-path=/etc/kubernetes/manifests"),
    kubelet_unit=(1, ""),
    kubelet_env=(0, ""),
)
SITE = probes(
    manifests=(
        0,
        f"==> /etc/kubernetes/manifests/etcd.yaml <==\n{ETCD_YAML}\n"
        f"==> /etc/kubernetes/manifests/kube-apiserver.yaml <==\n{APISERVER_YAML}\n",
    ),
    etcdctl=(0, "etcdctl version: 3.4.23\nAPI version: 3.4"),
    etcdutl=(127, ""),
)
SNAP_SHA = hashlib.sha256(SNAPSHOT).hexdigest()
SNAP_DIR = "/var/lib/nodeops/etcd-snapshots"
SNAP_NAME = "etcd-cp1-20261127T044500Z.db"
SNAP_PATH = f"{SNAP_DIR}/{SNAP_NAME}"


def stat_answer(command: Cmd) -> Answer:
    """`stat -c '%a %U %s %n' -- DIR FILE` as a private dir and file would answer."""
    directory, file = (str(a) for a in command.argv[-2:])
    return (0, f"700 root 4096 {directory}\n600 root {len(SNAPSHOT)} {file}\n", "")


def read_rules() -> list[Rule]:
    """Answers for every read-only command of read_site."""
    return [
        ("kubelet_ps", (0, KUBELET, "")),
        ("etcdutl", (0, SITE, "")),
        ("test -r", (0, "", "")),
    ]


def backup_rules(*, trial_ok: bool = True, status: str = STATUS) -> list[Rule]:
    return [
        *read_rules(),
        ("version -o json", (0, json.dumps({"serverVersion": {"gitVersion": "v1.29.3"}}), "")),
        ("snapshot save", (0, f"Snapshot saved at {SNAP_PATH}\n", "")),
        ("stat -c", stat_answer),
        ("sha256sum", (0, f"{SNAP_SHA}  {SNAP_PATH}\n", "")),
        ("snapshot status", (0, status + "\n", "")),
        ("snapshot restore", (0 if trial_ok else 1, "", "" if trial_ok else "crc mismatch")),
        ("install -d", (0, "", "")),
        ("rm -rf", (0, "", "")),
        ("dd if=", (0, base64.b64encode(SNAPSHOT).decode(), "")),
        ("rm -f", (0, "", "")),
    ]


def shown(fake: FakeTransport) -> list[str]:
    return [c.render(as_root=True) for c in fake.sent]


def positions(sent: list[str], needles: list[str]) -> list[int]:
    """Index of the first command containing each needle, in order (each after the last)."""
    found: list[int] = []
    start = 0
    for needle in needles:
        index = next((i for i in range(start, len(sent)) if needle in sent[i]), None)
        assert index is not None, f"no `{needle}` after command {start}: {sent[start:]}"
        found.append(index)
        start = index + 1
    return found


@pytest.fixture()
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture()
def dest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # tmp_path is under /tmp, which backups refuse: pretend it is not shared temp.
    monkeypatch.setattr(etcdops, "SHARED_TMP", ("/nonexistent-shared-tmp",))
    import sys

    monkeypatch.setattr(sys.modules["nodeops.etcd.retention"], "SHARED_TMP", ("/nonexistent",))
    return tmp_path / "home" / "backups"


# --- backup --------------------------------------------------------------------------------


def test_backup_commands_in_order_and_private_local_files(dest: Path, umask_000: None) -> None:
    fake = FakeTransport(NODE, backup_rules())
    result = etcdops.take_backup(fake, dest_dir=dest, keep=3, now=lambda: WHEN)
    sent = shown(fake)
    positions(
        sent,
        [
            "kubelet_ps",
            "etcdutl",
            "test -r /etc/kubernetes/pki/etcd/ca.crt && test -r "
            "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
            "kubectl --kubeconfig=/etc/kubernetes/admin.conf version -o json",
            f"umask 077 && install -d -m 0700 -- {SNAP_DIR}",
            "umask 077 && timeout --kill-after=10 300 etcdctl --endpoints=https://127.0.0.1:2379",
            f"stat -c '%a %U %s %n' -- {SNAP_DIR} {SNAP_PATH}",
            f"sha256sum -- {SNAP_PATH}",
            f"etcdctl snapshot status {SNAP_PATH} --write-out=json",
            f"install -d -m 0700 -- {SNAP_DIR}/check-20261127T044500Z",
            f"etcdctl snapshot restore {SNAP_PATH} --data-dir={SNAP_DIR}/check-",
            f"rm -rf -- {SNAP_DIR}/check-20261127T044500Z",
            f"dd if={SNAP_PATH} bs=16777216 skip=0 count=1 status=none | base64 -w 0",
            f"rm -f -- {SNAP_PATH}",
        ],
    )
    save = next(s for s in sent if "snapshot save" in s)
    assert "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt" in save
    assert "--cacert=/etc/kubernetes/pki/etcd/ca.crt" in save
    assert "ETCDCTL_API" not in save  # etcdctl 3.4 speaks v3 by default
    stored = result.stored
    assert stored.path == dest / SNAP_NAME
    assert stored.path.read_bytes() == SNAPSHOT
    for path, mode in ((dest, 0o700), (dest.parent, 0o700), (stored.path, 0o600)):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert stat.S_IMODE(stored.meta_path.stat().st_mode) == 0o600
    meta = SnapshotMeta.from_json(stored.meta_path.read_text())
    assert (meta.sha256, meta.size, meta.revision, meta.total_keys) == (
        SNAP_SHA,
        len(SNAPSHOT),
        324,
        327,
    )
    assert (meta.node, meta.cluster_version, meta.etcd_version, meta.valid) == (
        "cp1",
        "v1.29.3",
        "3.4.23",
        True,
    )
    assert meta.taken_at == "2026-11-27T04:45:00Z"
    assert not list(dest.glob(".*")), "no temp files left behind"


def test_backup_refuses_shared_tmp_before_any_command(tmp_path: Path) -> None:
    fake = FakeTransport(NODE, backup_rules())
    with pytest.raises(SnapshotError, match="under /tmp"):
        etcdops.take_backup(fake, dest_dir=Path("/tmp/x/backups"), keep=3)
    assert fake.sent == []


def test_backup_server_pair_when_no_healthcheck_pair(dest: Path) -> None:
    rules = [
        (
            "test -r /etc/kubernetes/pki/etcd/ca.crt && test -r /etc/kubernetes/pki/etcd/h",
            (1, "", ""),
        ),
        *backup_rules(),
    ]
    fake = FakeTransport(NODE, rules)
    etcdops.take_backup(fake, dest_dir=dest, keep=3, now=lambda: WHEN)
    save = next(s for s in shown(fake) if "snapshot save" in s)
    assert "--cert=/etc/kubernetes/pki/etcd/server.crt" in save
    assert "--key=/etc/kubernetes/pki/etcd/server.key" in save


def test_failed_trial_restore_keeps_snapshot_marked_invalid(dest: Path) -> None:
    fake = FakeTransport(NODE, backup_rules(trial_ok=False))
    with pytest.raises(SnapshotError, match="marked invalid"):
        etcdops.take_backup(fake, dest_dir=dest, keep=3, now=lambda: WHEN)
    meta = SnapshotMeta.from_json((dest / f"{SNAP_NAME}.json").read_text())
    assert not meta.valid and any("trial restore failed" in p for p in meta.problems)
    with pytest.raises(RestoreRefused, match="marked invalid"):
        etcdops.check_local_snapshot(dest / SNAP_NAME)


def test_failed_save_says_why_and_changes_nothing_locally(dest: Path) -> None:
    rules = [("snapshot save", (1, "", "context deadline exceeded")), *backup_rules()]
    fake = FakeTransport(NODE, rules)
    with pytest.raises(SnapshotError, match="TLS handshake"):
        etcdops.take_backup(fake, dest_dir=dest, keep=3, now=lambda: WHEN)
    assert not dest.exists()
    assert not any("dd if=" in s for s in shown(fake))


def test_unresolved_static_pod_path_is_refused(dest: Path) -> None:
    nothing = probes(kubelet_ps=(0, ""), kubelet_unit=(1, ""), kubelet_env=(0, ""))
    fake = FakeTransport(NODE, [("kubelet_ps", (0, nothing, ""))])
    with pytest.raises(SnapshotError, match="staticPodPath is unresolved"):
        etcdops.take_backup(fake, dest_dir=dest, keep=3)
    assert len(fake.sent) == 1


def constant(when: datetime) -> Callable[[], datetime]:
    return lambda: when


def test_retention_keeps_the_newest(dest: Path) -> None:
    for minute in range(3):
        fake = FakeTransport(NODE, backup_rules())
        when = WHEN.replace(minute=WHEN.minute + minute)
        etcdops.take_backup(fake, dest_dir=dest, keep=2, now=constant(when))
    names = sorted(p.name for p in dest.glob("etcd-*.db"))
    assert names == ["etcd-cp1-20261127T044600Z.db", "etcd-cp1-20261127T044700Z.db"]
    assert sorted(p.name for p in dest.glob("etcd-*.db.json")) == [n + ".json" for n in names]


# --- restore -------------------------------------------------------------------------------


def local_snapshot(tmp_path: Path, data: bytes = SNAPSHOT, **changes: object) -> Path:
    path = tmp_path / SNAP_NAME
    path.write_bytes(data)
    meta = SnapshotMeta(
        file=SNAP_NAME,
        node="cp1",
        taken_at="2026-11-27T04:45:00Z",
        sha256=SNAP_SHA,
        size=len(SNAPSHOT),
        revision=324,
        total_keys=327,
    )
    path.with_name(SNAP_NAME + ".json").write_text(replace(meta, **changes).to_json())  # type: ignore[arg-type]
    return path


def test_altered_truncated_or_unrecorded_snapshots_are_refused(tmp_path: Path) -> None:
    altered = bytearray(SNAPSHOT)
    altered[10] ^= 1
    for data in (bytes(altered), SNAPSHOT[:-7]):
        path = local_snapshot(tmp_path, data)
        with pytest.raises(RestoreRefused, match="cannot be trusted"):
            etcdops.check_local_snapshot(path)
    path = local_snapshot(tmp_path)
    path.with_name(path.name + ".json").unlink()
    with pytest.raises(RestoreRefused, match="no metadata file"):
        etcdops.check_local_snapshot(path)
    with pytest.raises(RestoreRefused, match="no snapshot file"):
        etcdops.check_local_snapshot(tmp_path / "missing.db")
    assert etcdops.check_local_snapshot(local_snapshot(tmp_path)).meta.sha256 == SNAP_SHA


def restore_rules(extra: list[Rule] | None = None) -> list[Rule]:
    return [
        *(extra or []),
        *read_rules(),
        ("member list", (0, MEMBERS_ONE, "")),
        ("test -d /var/lib/etcd", (0, "", "")),
        ("for p in", (0, "", "")),
    ]


def test_prepare_restore_is_read_only_and_plans_every_step(tmp_path: Path) -> None:
    snap = etcdops.check_local_snapshot(local_snapshot(tmp_path))
    fake = FakeTransport(NODE, restore_rules())
    prep = etcdops.prepare_restore(fake, snap, stamp="20261127T050000Z")
    for line in shown(fake):
        assert not any(word in line for word in CHANGING), line
    assert prep.plan.kept_dir == "/var/lib/etcd.nodeops-20261127T050000Z"
    assert prep.remote_snapshot == f"{SNAP_DIR}/restore-20261127T050000Z-{SNAP_NAME}"
    text = "\n".join(prep.describe())
    assert "wait up to 60 s: the API server stopped (port 6443 closed)" in text
    assert "wait up to 180 s: the API server ready (/readyz)" in text
    assert "--name=cp1 --initial-cluster=cp1=https://10.0.0.11:2380" in text


def test_multi_member_cluster_is_refused_with_the_procedure(tmp_path: Path) -> None:
    snap = etcdops.check_local_snapshot(local_snapshot(tmp_path))
    fake = FakeTransport(NODE, restore_rules([("member list", (0, MEMBERS_THREE, ""))]))
    with pytest.raises(RestoreRefused, match="3 members") as caught:
        etcdops.prepare_restore(fake, snap)
    assert "SAME snapshot to every etcd node" in str(caught.value)
    for line in shown(fake):
        assert not any(word in line for word in CHANGING), line


def test_taken_paths_are_refused(tmp_path: Path) -> None:
    snap = etcdops.check_local_snapshot(local_snapshot(tmp_path))
    taken = "/var/lib/etcd.nodeops-20261127T050000Z\n"
    fake = FakeTransport(NODE, restore_rules([("for p in", (0, taken, ""))]))
    with pytest.raises(RestoreRefused, match="already exist"):
        etcdops.prepare_restore(fake, snap, stamp="20261127T050000Z")


class Node_:
    """A stateful node: which manifests are in place decides what the probes say."""

    def __init__(self, *, etcd_starts: bool = True) -> None:
        self.etcd_in = True
        self.api_in = True
        self.etcd_starts = etcd_starts

    def __call__(self, command: Cmd) -> Answer:
        text = command.render(as_root=True)
        if "mv -T -- " in text:
            src, dest = text.split("mv -T -- ", 1)[1].split()[:2]
            for name, attr in (("etcd.yaml", "etcd_in"), ("kube-apiserver.yaml", "api_in")):
                if dest == f"/etc/kubernetes/manifests/{name}":
                    setattr(self, attr, True)
                elif src == f"/etc/kubernetes/manifests/{name}":
                    setattr(self, attr, False)
            return (0, "", "")
        if "pgrep -x etcd" in text:
            return (0 if self.etcd_in else 1, "", "")
        if "sport = :6443" in text:
            return (0 if self.api_in else 1, "", "")
        if "endpoint health" in text:
            return (0 if self.etcd_in and self.etcd_starts else 1, "", "")
        if "/readyz" in text:
            return (0 if self.api_in and self.etcd_in and self.etcd_starts else 1, "ok", "")
        return (0, "", "")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_plan(tmp_path: Path, node: Node_) -> tuple[FakeTransport, Callable[[], object]]:
    snap = etcdops.check_local_snapshot(local_snapshot(tmp_path))
    upload_sha = (0, f"{SNAP_SHA}  x.part\n", "")
    fake = FakeTransport(
        NODE,
        [
            ("sha256sum", upload_sha),
            *restore_rules(),
            ("", node),
        ],
    )
    prep = etcdops.prepare_restore(fake, snap, stamp="20261127T050000Z")
    fake.sent.clear()
    clock = Clock()
    waiter = etcdops.Waiter(clock=lambda: clock.now, sleep=clock.sleep)
    return fake, lambda: etcdops.run_restore(fake, prep, snap, waiter=waiter)


TS = "20261127T050000Z"
PARK = f"/etc/kubernetes/tmp/nodeops-etcd-restore-{TS}"
REMOTE = f"{SNAP_DIR}/restore-{TS}-{SNAP_NAME}"


def test_restore_runs_the_steps_in_order(tmp_path: Path) -> None:
    fake, go = run_plan(tmp_path, Node_())
    outcome = go()
    sent = shown(fake)
    positions(
        sent,
        [
            f"umask 077 && install -d -m 0700 -- {SNAP_DIR}",
            f"umask 077 && base64 -d > {REMOTE}.part",
            f"sha256sum -- {REMOTE}.part",
            f"mv -T -- {REMOTE}.part {REMOTE}",
            f"etcdctl snapshot status {REMOTE}",
            f"etcdctl snapshot restore {REMOTE} --data-dir=/var/lib/etcd.nodeops-check-{TS}/",
            f"etcdctl snapshot restore {REMOTE} --data-dir=/var/lib/etcd.nodeops-restore-{TS} "
            "--name=cp1",
            f"chown -R --reference=/var/lib/etcd -- /var/lib/etcd.nodeops-restore-{TS}",
            f"mv -T -- /etc/kubernetes/manifests/kube-apiserver.yaml {PARK}/kube-apiserver.yaml",
            "ss -Hltn 'sport = :6443'",
            f"mv -T -- /etc/kubernetes/manifests/etcd.yaml {PARK}/etcd.yaml",
            "pgrep -x etcd",
            f"mv -T -- /var/lib/etcd /var/lib/etcd.nodeops-{TS}",
            f"mv -T -- /var/lib/etcd.nodeops-restore-{TS} /var/lib/etcd",
            f"mv -T -- {PARK}/etcd.yaml /etc/kubernetes/manifests/etcd.yaml",
            "endpoint health",
            f"mv -T -- {PARK}/kube-apiserver.yaml /etc/kubernetes/manifests/kube-apiserver.yaml",
            "get --raw=/readyz",
            f"rm -f -- {REMOTE}",
            f"rmdir -- {PARK}",
        ],
    )
    # Upload: the snapshot's bytes went as stdin, never inside a command line.
    assert not any(base64.b64encode(SNAPSHOT).decode()[:40] in s for s in sent)
    assert outcome.kept_dir == f"/var/lib/etcd.nodeops-{TS}"  # type: ignore[attr-defined]


def test_restore_rolls_back_when_etcd_does_not_come_up(tmp_path: Path) -> None:
    node = Node_(etcd_starts=False)
    fake, go = run_plan(tmp_path, node)
    with pytest.raises(etcdops.EtcdOpsFailed) as caught:
        go()
    message = str(caught.value)
    assert "failed at step 8 (Start etcd)" in message
    assert "rolled back: the old manifests and data dir are in place again" in message
    sent = shown(fake)
    start = next(i for i, s in enumerate(sent) if "endpoint health" in s)
    positions(
        sent[start:],
        [
            "endpoint health",
            # Undo newest first: etcd out again and gone before any data dir moves.
            f"mv -T -- /etc/kubernetes/manifests/etcd.yaml {PARK}/etcd.yaml",
            "pgrep -x etcd",
            f"mv -T -- /var/lib/etcd /var/lib/etcd.nodeops-restore-{TS}",
            f"mv -T -- /var/lib/etcd.nodeops-{TS} /var/lib/etcd",
            f"mv -T -- {PARK}/etcd.yaml /etc/kubernetes/manifests/etcd.yaml",
            f"mv -T -- {PARK}/kube-apiserver.yaml /etc/kubernetes/manifests/kube-apiserver.yaml",
            f"rm -rf -- /var/lib/etcd.nodeops-restore-{TS}",
            f"rm -f -- {REMOTE}",
        ],
    )
    assert node.etcd_in and node.api_in


def test_restore_stops_rollback_when_etcd_will_not_stop(tmp_path: Path) -> None:
    node = Node_(etcd_starts=False)
    fake, go = run_plan(tmp_path, node)
    calls = [0]

    def stuck(command: Cmd) -> Answer:
        if "pgrep -x etcd" in command.render(as_root=True):
            calls[0] += 1
            return (1 if calls[0] == 1 else 0, "", "")  # gone once, then never again
        return node(command)

    fake.rules = [rule for rule in fake.rules if rule[0]] + [("", stuck)]
    with pytest.raises(etcdops.EtcdOpsFailed) as caught:
        go()
    message = str(caught.value)
    assert "failed at step 8 (Start etcd)" in message
    assert "the rollback stopped (etcd stopped" in message
    assert "To finish it by hand" in message
    assert f"mv -T -- {PARK}/etcd.yaml /etc/kubernetes/manifests/etcd.yaml" in message
    # After etcd was started again, no data dir was renamed while it still ran.
    sent = shown(fake)
    started = next(i for i, s in enumerate(sent) if "endpoint health" in s)
    assert not any("mv -T -- /var/lib/etcd" in s for s in sent[started:])


def test_restore_failing_to_stop_etcd_puts_everything_back(tmp_path: Path) -> None:
    node = Node_()
    fake, go = run_plan(tmp_path, node)

    def stuck(command: Cmd) -> Answer:
        if "pgrep -x etcd" in command.render(as_root=True):
            return (0, "", "")
        return node(command)

    fake.rules = [rule for rule in fake.rules if rule[0]] + [("", stuck)]
    with pytest.raises(etcdops.EtcdOpsFailed, match=r"(?s)failed at step 5 .*rolled back"):
        go()
    assert not any("mv -T -- /var/lib/etcd" in s for s in shown(fake))
    assert node.etcd_in and node.api_in


def test_upload_with_a_wrong_checksum_removes_the_copy(tmp_path: Path) -> None:
    snap = etcdops.check_local_snapshot(local_snapshot(tmp_path))
    fake = FakeTransport(NODE, [("sha256sum", (0, "0" * 64 + "  x\n", "")), ("", (0, "", ""))])
    with pytest.raises(SnapshotError, match="removed again"):
        etcdops.upload(fake, snap.path, REMOTE, snap.meta)
    assert shown(fake)[-1] == f"rm -f -- {REMOTE}.part"


# --- resource export -----------------------------------------------------------------------


def test_export_cleans_objects_and_leaves_out_owned_events_and_secrets() -> None:
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "u",
            "resourceVersion": "5",
            "creationTimestamp": "x",
            "generation": 2,
            "managedFields": [{}],
            "annotations": {etcdops.LAST_APPLIED: "{}"},
        },
        "spec": {"replicas": 1},
        "status": {"replicas": 1},
    }
    owned = {
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-1",
            "ownerReferences": [{"kind": "Deployment", "controller": True}],
        },
    }
    service = {
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "ports": []},
    }
    secret = {"kind": "Secret", "metadata": {"name": "token", "namespace": "default"}, "data": {}}
    ns = {"kind": "Namespace", "metadata": {"name": "default"}}
    lists = {
        "namespaces": [ns],
        "deployments.apps": [deploy],
        "replicasets.apps": [owned],
        "services": [service],
        "secrets": [secret],
    }
    names = "\n".join(["events", "leases.coordination.k8s.io", *lists])

    def answer(include: bool) -> Callable[[Cmd], Answer]:
        def get(command: Cmd) -> Answer:
            text = command.render(as_root=True)
            wanted = [n for n in lists if include or n != "secrets"]
            for kind in ("events ", "leases", "secrets") if not include else ("events ", "leases"):
                assert f"get {kind}" not in text
            return (
                0,
                probes(
                    **{
                        f"r{i}": (0, json.dumps({"items": lists[name]}))
                        for i, name in enumerate(wanted)
                    }
                ),
                "",
            )

        return get

    for include in (False, True):
        fake = FakeTransport(
            NODE, [("api-resources", (0, names, "")), ("--all-namespaces", answer(include))]
        )
        export = etcdops.export_resources(fake, include_secrets=include)
        kinds = [o["kind"] for o in export.objects]
        assert kinds[0] == "Namespace"
        assert ("Secret" in kinds) is include
        assert "ReplicaSet" not in kinds and export.skipped_owned == 1
        got = next(o for o in export.objects if o["kind"] == "Deployment")
        assert got == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 1},
        }
        svc = next(o for o in export.objects if o["kind"] == "Service")
        assert "clusterIP" not in svc["spec"] and "clusterIPs" not in svc["spec"]
        assert not export.errors


def test_export_reports_a_kind_it_could_not_read_without_its_output() -> None:
    out = probes(r0=(0, json.dumps({"items": []})), r1=(1, "Error: secret-looking text"))
    fake = FakeTransport(
        NODE, [("api-resources", (0, "configmaps\nwidgets.example.com", "")), ("get", (0, out, ""))]
    )
    export = etcdops.export_resources(fake, include_secrets=False)
    assert export.errors == ("widgets.example.com: kubectl get exited 1",)


def test_write_private_new_is_0600_and_never_overwrites(tmp_path: Path, umask_000: None) -> None:
    path = tmp_path / "new" / "out.yaml"
    etcdops.write_private_new(path, "a: 1\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with pytest.raises(NodeopsError, match="exists"):
        etcdops.write_private_new(path, "b: 2\n")
    assert path.read_text() == "a: 1\n"


def test_journal_has_every_command_but_never_the_snapshot_bytes(dest: Path, tmp_path: Path) -> None:
    from nodeops.journal import Journal, JournaledTransport

    journal = Journal.start(tmp_path / "journal", "etcd-backup", {})
    fake = FakeTransport(NODE, backup_rules())
    etcdops.take_backup(
        JournaledTransport(fake, journal, "etcd-backup"), dest_dir=dest, keep=3, now=lambda: WHEN
    )
    text = journal.path.read_text()
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["command"] for e in events if e["event"] == "command"] == [
        c.display(as_root=True) for c in fake.sent
    ]
    assert base64.b64encode(SNAPSHOT).decode()[:24] not in text
    assert "characters of snapshot data, not journaled" in text
