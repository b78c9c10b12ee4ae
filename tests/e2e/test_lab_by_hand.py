"""What an operator types by hand over SSH on the lab: kubectl reads, and the seed's etcd
backup/restore (snapshot save with the flags from etcd.yaml, restore into a new data dir,
point the manifest's hostPath at it) bringing a deleted Deployment back."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.labkit import KUBECTL, ClusterLab, running_cluster, wait

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterLab]:
    name = fresh_lab_name()
    with running_cluster(name, tmp_path_factory.mktemp("by-hand")) as built:
        yield built
    leftovers = subprocess.run(
        ["pgrep", "-af", f"nodeops-{name}-|nodeops.lab.sim"], capture_output=True, text=True
    ).stdout
    assert f"nodeops-{name}-" not in leftovers


def test_kubectl_reads_an_operator_uses(lab: ClusterLab) -> None:
    version = json.loads(lab.sh("cp1", f"{KUBECTL} version -o json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.29.3"
    wide = lab.sh("cp1", f"{KUBECTL} get pods -A -o wide").stdout
    header = wide.splitlines()[0].split()
    assert header[:3] == ["NAMESPACE", "NAME", "READY"] and "NODE" in header
    assert "etcd-cp1" in wide and "kube-apiserver-cp1" in wide
    everything = yaml.safe_load(lab.sh("cp1", f"{KUBECTL} get all -A -o yaml").stdout)
    kinds = {item["kind"] for item in everything["items"]}
    assert {"Pod", "Deployment", "ReplicaSet", "DaemonSet", "Service"} <= kinds


def test_seed_etcd_backup_and_restore_by_hand(lab: ClusterLab) -> None:
    manifest = yaml.safe_load(lab.sh("cp1", "cat /etc/kubernetes/manifests/etcd.yaml").stdout)
    flags = dict(
        arg.removeprefix("--").split("=", 1)
        for arg in manifest["spec"]["containers"][0]["command"][1:]
    )
    endpoint = flags["listen-client-urls"].split(",")[0]
    etcdctl = (
        f"ETCDCTL_API=3 etcdctl --endpoints={endpoint} --cacert={flags['trusted-ca-file']}"
        f" --cert={flags['cert-file']} --key={flags['key-file']}"
    )
    lab.sh("cp1", f"mkdir -p -m 0700 /root/backup && {etcdctl} snapshot save /root/backup/snap.db")
    lab.sh("cp1", f"{KUBECTL} delete deployment web --wait=false")
    wait(
        "web to be gone",
        lambda: lab.sh("cp1", f"{KUBECTL} get deployment web", check=False).returncode != 0,
    )
    restore = (
        f"{etcdctl} snapshot restore /root/backup/snap.db --data-dir /var/lib/etcd-from-backup"
        f" --name {flags['name']} --initial-cluster {flags['initial-cluster']}"
        f" --initial-advertise-peer-urls {flags['initial-advertise-peer-urls']}"
    )
    lab.sh("cp1", restore)
    for volume in manifest["spec"]["volumes"]:
        if volume["name"] == "etcd-data":
            volume["hostPath"]["path"] = "/var/lib/etcd-from-backup"
    lab.sh(
        "cp1",
        f"printf %s {shlex.quote(yaml.safe_dump(manifest))} > /etc/kubernetes/etcd.yaml.new"
        " && mv /etc/kubernetes/etcd.yaml.new /etc/kubernetes/manifests/etcd.yaml",
    )
    wait(
        "the restored Deployment",
        lambda: lab.sh("cp1", f"{KUBECTL} get deployment web", check=False).returncode == 0,
        timeout=45,
    )
    nodes = json.loads(lab.sh("cp1", f"{KUBECTL} get nodes -o json").stdout)["items"]
    assert len(nodes) == 3
    # The old data dir is untouched, the new one is what etcd now runs on.
    assert lab.sh("cp1", "ls /var/lib/etcd/member").stdout.split() == ["snap", "wal"]
    etcd_pid = lab.sh("cp1", "pgrep -x etcd").stdout.split()[0]
    mounts = lab.sh("cp1", f"cat /proc/{etcd_pid}/mountinfo").stdout
    assert any(" /var/lib/etcd " in line for line in mounts.splitlines())


def test_drain_of_the_control_plane_skips_mirror_pods(lab: ClusterLab) -> None:
    drained = lab.sh(
        "cp1", f"{KUBECTL} drain cp1 --ignore-daemonsets --delete-emptydir-data --timeout=30s 2>&1"
    )
    try:
        assert "node/cp1 cordoned" in drained.stdout
        assert "node/cp1 drained" in drained.stdout
        assert "evicting pod kube-system/etcd-cp1" not in drained.stdout
        pods = json.loads(lab.sh("cp1", f"{KUBECTL} get pods -n kube-system -o json").stdout)[
            "items"
        ]
        mirrors = {p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == "cp1"}
        assert {"etcd-cp1", "kube-apiserver-cp1", "kube-scheduler-cp1"} <= mirrors
        node = json.loads(lab.sh("cp1", f"{KUBECTL} get node cp1 -o json").stdout)
        assert node["spec"]["unschedulable"] is True
    finally:
        lab.sh("cp1", f"{KUBECTL} uncordon cp1")
