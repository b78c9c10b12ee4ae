"""etcd-backup, etcd-restore and backup-resources as an operator runs them, over real SSH on a
lab with real etcd and kubectl: a verified private snapshot, refusals that leave the node
byte-identical, a restore that brings deleted objects back and keeps the old data dir, and
an export that `kubectl apply -f` takes back."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodeops import etcdops
from nodeops import lab as nodeops_lab
from nodeops.etcd import RestoreRefused
from nodeops.lab import cluster

pytestmark = pytest.mark.lab

KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
REMOTE_DIR = "/var/lib/nodeops/etcd-snapshots"
#: What must not change when a restore is refused: manifests' checksums, the data dirs.
NODE_STATE = (
    "sha256sum /etc/kubernetes/manifests/*; ls -d /var/lib/etcd*;"
    " stat -c '%i %a %U %n' /var/lib/etcd /var/lib/etcd/member /var/lib/etcd/member/*;"
    " ls -1 /var/lib/etcd/member/wal; echo etcd pid $(pgrep -x etcd);"
    f" ls -A {REMOTE_DIR} 2>&1; ls -A /etc/kubernetes/tmp 2>&1; true"
)


class Lab:
    """The lab, a private HOME for the CLI, and timings to report."""

    def __init__(self, state: nodeops_lab.LabState, home: Path) -> None:
        self.state = state
        self.home = home
        self.timings: dict[str, float] = {}

    @property
    def backups(self) -> Path:
        return self.home / ".local" / "share" / "nodeops" / "etcd-backups"

    def sh(
        self, node: str, script: str, *, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            nodeops_lab.ssh_argv(self.state.name, node, [script]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            input=stdin,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{node}: {script!r} exited {done.returncode}: {done.stderr}")
        return done

    def kubectl(self, args: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.sh("cp1", f"{KUBECTL} {args}", check=check)

    def nodeops(
        self, *args: str, umask: int = 0o022, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.home)}
        env.pop("NODEOPS_INVENTORY", None)
        return subprocess.run(
            [sys.executable, "-m", "nodeops", *args, "-i", str(self.state.inventory_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            umask=umask,
        )

    def journal_events(self, task: str) -> list[dict[str, Any]]:
        directory = self.home / ".local" / "state" / "nodeops" / "journal"
        newest = sorted(directory.glob(f"*-{task}-*.jsonl"))[-1]
        return [json.loads(line) for line in newest.read_text().splitlines()]


def wait(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)
    return result


@pytest.fixture(scope="module")
def lab(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """cp1 and one worker as a cluster; a private HOME outside /tmp (backups refuse /tmp)."""
    name = fresh_lab_name()
    inventory = tmp_path_factory.mktemp("etcd-backup") / "lab.yaml"
    home = Path(tempfile.mkdtemp(prefix=".nodeops-e2e-etcd-", dir=Path.home()))
    made: Lab | None = None
    try:
        state = nodeops_lab.up(nodeops_lab.default_spec(name, workers=1), inventory_path=inventory)
        cluster.build_cluster(state)
        made = Lab(state, home)
        yield made
    finally:
        nodeops_lab.down(name)
        shutil.rmtree(home, ignore_errors=True)
        if made is not None:
            print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in made.timings.items()))
    leftovers = subprocess.run(
        ["pgrep", "-af", f"nodeops-{name}-"], capture_output=True, text=True
    ).stdout
    assert not leftovers.strip()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"nodeops-{name}-" not in namespaces


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_case_28_backup_is_verified_and_private_whatever_the_umask(lab: Lab) -> None:
    """Case 28: umask 000 on both sides; the node's snapshot is 0600 in a 0700 directory
    (not /tmp), the local copy 0600 in 0700 directories; it was verified (revision, keys,
    trial restore) and the run journaled."""
    assert not REMOTE_DIR.startswith("/tmp")
    lab.kubectl("create deployment keepme --image=busybox:1.36 -- sleep infinity")
    lab.kubectl("create configmap keepme --from-literal=colour=blue")
    # umask 000 on both sides: the node's root shell and the local process.
    lab.sh("cp1", "echo 'umask 000' > /root/.bashrc")
    assert lab.sh("cp1", "umask").stdout.strip() == "0000"
    started = time.monotonic()
    run = lab.nodeops("etcd-backup", umask=0)
    lab.timings["etcd-backup"] = time.monotonic() - started
    assert run.returncode == 0, run.stderr + run.stdout
    snapshots = sorted(lab.backups.glob("etcd-cp1-*.db"))
    assert len(snapshots) == 1
    snapshot = snapshots[0]
    meta = json.loads(snapshot.with_name(snapshot.name + ".json").read_text())
    assert meta["valid"] is True and meta["problems"] == []
    assert meta["revision"] > 0 and meta["total_keys"] > 0
    assert meta["cluster_version"] == "v1.29.3" and meta["etcd_version"].startswith("3.4.")
    assert meta["node"] == "cp1" and meta["size"] == snapshot.stat().st_size
    assert f"snapshot {snapshot}: revision {meta['revision']}" in run.stdout
    for path in (lab.backups, lab.backups.parent, lab.home / ".local" / "share"):
        assert mode(path) == 0o700, path
    assert mode(snapshot) == 0o600
    assert mode(snapshot.with_name(snapshot.name + ".json")) == 0o600
    # On the node: the snapshot was 0600 in a 0700 dir (stat, journaled), and is gone now.
    events = lab.journal_events("etcd-backup")
    stats = [e for e in events if e.get("event") == "command" and "stat -c" in e["command"]]
    lines = stats[0]["stdout"].splitlines()
    assert lines[0].startswith("700 root ") and lines[0].endswith(REMOTE_DIR)
    assert lines[1].startswith("600 root ") and lines[1].endswith(snapshot.name)
    assert any("snapshot restore" in e.get("command", "") for e in events), "trial restore"
    listing = lab.sh("cp1", f"stat -c '%a %U' /var/lib/nodeops {REMOTE_DIR}; ls -A {REMOTE_DIR}")
    parent, own = listing.stdout.split("\n")[:2]
    # The parent only root can write to (install -d makes it 0755), the directory root's alone.
    assert parent.endswith(" root") and int(parent.split()[0], 8) & 0o022 == 0
    assert own == "700 root"
    assert listing.stdout.split("\n")[2] == ""
    assert events[-1]["event"] == "run-finished" and events[-1]["status"] == "succeeded"


# Fault for case 29: the node's etcdctl truncates every snapshot it saves (a disk that
# loses the tail, a save cut short after the rename).
TRUNCATING_ETCDCTL = """#!/bin/sh
/usr/bin/etcdctl "$@"; rc=$?
case "$*" in *"snapshot save"*) for a; do last=$a; done; truncate -s -4096 "$last";; esac
exit $rc
"""


def test_case_29_corrupt_or_truncated_snapshots_are_marked_invalid_and_refused(lab: Lab) -> None:
    """Case 29: a snapshot truncated on the node fails its trial restore (etcd's sha256
    trailer): the backup exits 1, is kept marked invalid and restore refuses it; an altered
    or truncated local copy fails its recorded sha256; an unconfirmed restore changes
    nothing. The node stays byte-identical throughout."""
    snapshot = sorted(lab.backups.glob("etcd-cp1-*.db"))[-1]
    before = lab.sh("cp1", NODE_STATE).stdout
    bad = lab.home / "bad"
    bad.mkdir(mode=0o700)
    data = snapshot.read_bytes()
    altered = bad / f"altered-{snapshot.name}"
    altered.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    truncated = bad / f"truncated-{snapshot.name}"
    truncated.write_bytes(data[: len(data) // 2])
    for copy in (altered, truncated):
        shutil.copy(
            snapshot.with_name(snapshot.name + ".json"), copy.with_name(copy.name + ".json")
        )
    lab.sh(
        "cp1",
        "cat > /usr/local/sbin/etcdctl && chmod 0755 /usr/local/sbin/etcdctl",
        stdin=TRUNCATING_ETCDCTL,
    )
    try:
        time.sleep(1.1)  # snapshot names carry the second: never the good one's name
        failed = lab.nodeops("etcd-backup")
    finally:
        lab.sh("cp1", "rm -f /usr/local/sbin/etcdctl")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "the snapshot failed its checks and is kept marked invalid" in failed.stderr
    invalid = [p for p in lab.backups.glob("etcd-cp1-*.db") if p != snapshot]
    assert len(invalid) == 1 and mode(invalid[0]) == 0o600
    meta = json.loads(invalid[0].with_name(invalid[0].name + ".json").read_text())
    # Which check catches it depends on where the cut falls: `snapshot status` (the bolt
    # pages) or the trial restore (etcd's sha256 trailer).
    problems = " ".join(meta["problems"])
    assert meta["valid"] is False and meta["sha256"], meta
    assert "trial restore failed" in problems or "status" in problems, problems
    assert problems.split(":")[0] in failed.stderr
    assert lab.journal_events("etcd-backup")[-1]["status"] == "failed"
    refused = lab.nodeops("etcd-restore", "--snapshot", str(invalid[0]), "--yes")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "cannot be trusted: it is marked invalid" in refused.stderr
    # Out of the way of the later tests, which restore the newest snapshot.
    for path in (invalid[0], invalid[0].with_name(invalid[0].name + ".json")):
        path.rename(bad / path.name)
    assert lab.sh("cp1", NODE_STATE).stdout == before
    run = lab.nodeops("etcd-restore", "--snapshot", str(altered), "--yes")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "cannot be trusted" in run.stderr and "sha256" in run.stderr
    # The same check, in process (each CLI start costs seconds on a loaded machine).
    with pytest.raises(RestoreRefused, match=r"cannot be trusted.*bytes"):
        etcdops.check_local_snapshot(truncated)
    # A good snapshot, but no terminal and no --yes: the plan is shown, nothing is done.
    run = lab.nodeops("etcd-restore", "--snapshot", str(snapshot))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "pass --yes" in run.stderr and "Stop etcd" in run.stdout
    dry = lab.nodeops("etcd-restore", "--snapshot", str(snapshot), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was changed" in dry.stdout
    assert lab.sh("cp1", NODE_STATE).stdout == before


def test_case_31_a_member_missing_from_initial_cluster_is_refused_first(lab: Lab) -> None:
    """Case 31, validation: etcd.yaml's --name is not in its --initial-cluster: refused
    before anything stops; manifests, data dirs and the API server as they were."""
    snapshot = sorted(lab.backups.glob("etcd-cp1-*.db"))[-1]
    before = lab.sh("cp1", NODE_STATE).stdout
    manifest = "/etc/kubernetes/manifests/etcd.yaml"
    lab.sh(
        "cp1",
        f"cp -p {manifest} /root/etcd.yaml && sed -i"
        f" 's#--initial-cluster=cp1=#--initial-cluster=other=#' {manifest}",
    )
    try:
        run = lab.nodeops("etcd-restore", "--snapshot", str(snapshot), "--yes")
    finally:
        lab.sh("cp1", f"cp -p /root/etcd.yaml {manifest} && rm /root/etcd.yaml")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "etcd restore refused, nothing changed" in run.stderr
    assert "--name 'cp1' is not in --initial-cluster (other)" in run.stderr
    wait("the API server answering", lambda: lab.kubectl("get ns", check=False).returncode == 0)
    # The kubelet restarted etcd for the edited manifest and again for the restored one.
    assert without_pid(lab.sh("cp1", NODE_STATE).stdout) == without_pid(before)


def test_case_31_restore_validates_stops_the_apiservers_and_keeps_the_old_data(
    lab: Lab,
) -> None:
    """Case 31: checks first (snapshot, member flags, trial restore, a staging restore
    owned like the old data dir), then the API servers stop; the old data dir is renamed to
    /var/lib/etcd.nodeops-<ts> and kept; no --bump-revision on etcd 3.4 (it has none)."""
    snapshot = sorted(lab.backups.glob("etcd-cp1-*.db"))[-1]
    lab.kubectl("delete deployment keepme")
    lab.kubectl("delete configmap keepme")
    lab.kubectl("create configmap later --from-literal=made=after-the-backup")
    started = time.monotonic()
    run = lab.nodeops("etcd-restore", "--snapshot", str(snapshot), "--yes", timeout=240)
    lab.timings["etcd-restore"] = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr
    assert "etcd restored" in run.stdout
    assert lab.kubectl("get deployment keepme", check=False).returncode == 0
    cm = json.loads(lab.kubectl("get configmap keepme -o json").stdout)
    assert cm["data"] == {"colour": "blue"}
    assert "NotFound" in lab.kubectl("get configmap later", check=False).stderr

    def all_ready() -> bool:
        nodes = json.loads(lab.kubectl("get nodes -o json").stdout)["items"]
        return len(nodes) == 2 and all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
            for n in nodes
        )

    wait("every node Ready", all_ready, timeout=60)
    kept = lab.sh("cp1", "ls -d /var/lib/etcd.nodeops-*").stdout.split()
    assert len(kept) == 1
    assert lab.sh("cp1", f"ls {kept[0]}/member").stdout.split() == ["snap", "wal"]
    manifests = lab.sh("cp1", "ls /etc/kubernetes/manifests").stdout.split()
    assert {"etcd.yaml", "kube-apiserver.yaml"} <= set(manifests)
    assert lab.sh("cp1", f"ls -A {REMOTE_DIR}").stdout == ""
    events = lab.journal_events("etcd-restore")
    assert events[-1]["status"] == "succeeded"
    assert any("mv -T -- /var/lib/etcd " in e.get("command", "") for e in events)
    commands = [e.get("command", "") for e in events if e.get("event") == "command"]

    def first(needle: str) -> int:
        return next(i for i, c in enumerate(commands) if needle in c)

    stop_api = first("manifests/kube-apiserver.yaml")
    assert first("snapshot restore") < stop_api  # the trial restore
    assert first("chown -R --reference=/var/lib/etcd") < stop_api
    assert first("mv -T -- /var/lib/etcd ") > stop_api
    assert not any("--bump-revision" in c for c in commands)  # etcd 3.4.x in the lab
    assert f"the old data dir is kept at {kept[0]}" in run.stdout
    assert re.fullmatch(r"/var/lib/etcd\.nodeops-[0-9TZ-]+", kept[0]), kept
    owners = lab.sh("cp1", f"stat -c '%a %U' /var/lib/etcd {kept[0]}").stdout.split("\n")
    assert owners[0] == "700 root" and owners[1].endswith(" root")


def without_pid(state: str) -> str:
    """The node's state without what a restarted etcd changes by itself: its pid, and the
    next WAL segment its file pipeline preallocates (`0.tmp`, `1.tmp`) in the background."""
    return "\n".join(
        line
        for line in state.splitlines()
        if not line.startswith("etcd pid") and not re.fullmatch(r"\d+\.tmp", line)
    )


def test_case_31_a_restore_whose_etcd_never_gets_healthy_puts_the_old_dir_back(
    lab: Lab,
) -> None:
    """Case 31, failure: etcd never healthy after the restore: the old manifests and the
    old data dir (same inodes) are back, nothing staged or kept is left, exit 1."""
    snapshot = sorted(lab.backups.glob("etcd-cp1-*.db"))[-1]
    lab.kubectl("create configmap survivor --from-literal=kept=yes")
    before = lab.sh("cp1", NODE_STATE).stdout
    # Fault: etcd answers no health check (an etcdctl earlier in root's PATH says so).
    wrapper = (
        "#!/bin/sh\n"
        'case "$*" in *"endpoint health"*) echo unhealthy >&2; exit 1;; esac\n'
        'exec /usr/bin/etcdctl "$@"\n'
    )
    lab.sh(
        "cp1", "cat > /usr/local/sbin/etcdctl && chmod 0755 /usr/local/sbin/etcdctl", stdin=wrapper
    )
    try:
        run = lab.nodeops("etcd-restore", "--snapshot", str(snapshot), "--yes", "--timeout", "2")
    finally:
        lab.sh("cp1", "rm -f /usr/local/sbin/etcdctl")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "failed at step 8 (Start etcd)" in run.stderr
    assert "rolled back: the old manifests and data dir are in place again" in run.stderr
    wait(
        "the API server back on the old data",
        lambda: lab.kubectl("get configmap survivor", check=False).returncode == 0,
    )
    after = lab.sh("cp1", NODE_STATE).stdout
    # The same manifests and the same data dir (inodes), no staging or kept dir left; only
    # etcd's process is new.
    assert without_pid(after) == without_pid(before)
    events = lab.journal_events("etcd-restore")
    assert events[-1]["status"] == "failed"


def test_backup_resources_reapply_after_the_workloads_are_deleted(lab: Lab) -> None:
    lab.kubectl("create secret generic db --from-literal=password=hunter2-e2e")
    out = lab.home / "exports" / "resources.yaml"
    # With Secrets (their exclusion by default is a unit test: each CLI start costs seconds).
    run = lab.nodeops("backup-resources", "--out", str(out), "--include-secrets", umask=0)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 Secrets" in run.stdout and "hunter2" not in run.stdout + run.stderr
    assert mode(out) == 0o600 and mode(out.parent) == 0o700
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "ConfigMap", "DaemonSet", "Node", "Service"} <= kinds
    assert not kinds & {"Event", "ReplicaSet", "Lease"}
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["metadata"]["name"] == "db" and "password" in secret["data"]
    for doc in docs:
        assert "status" not in doc
        assert not {"uid", "resourceVersion", "creationTimestamp", "managedFields"} & set(
            doc["metadata"]
        )
    assert docs[0]["kind"] == "Namespace"
    lab.kubectl("delete deployment web cache keepme")
    lab.kubectl("delete daemonset node-agent")
    lab.kubectl("delete configmap keepme")
    lab.kubectl("delete secret db")
    lab.kubectl("delete pod standalone --wait=false")
    wait(
        "the sample pods gone",
        lambda: "standalone" not in lab.kubectl("get pods -o name").stdout,
    )
    lab.sh("cp1", "umask 077 && cat > /root/resources.yaml", stdin=out.read_text())
    applied = lab.sh("cp1", f"{KUBECTL} apply -f /root/resources.yaml", check=False)
    assert applied.returncode == 0, applied.stderr
    for name in ("deployment/web", "deployment/cache", "configmap/keepme", "secret/db"):
        assert lab.kubectl(f"get {name}", check=False).returncode == 0, name
    wait(
        "web back to 3 ready replicas",
        lambda: (
            json.loads(lab.kubectl("get deployment web -o json").stdout)
            .get("status", {})
            .get("readyReplicas")
            == 3
        ),
    )
