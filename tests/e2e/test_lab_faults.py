"""The lab's fault switches over real SSH: each shows the symptom an operator meets upstream and
clears back to a working node."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nodeops import lab as nodeops_lab
from nodeops.errors import LabError
from nodeops.lab import faults
from tests.e2e.labkit import KUBECTL, ClusterLab, running_cluster, wait

pytestmark = pytest.mark.lab

APT_KUBECTL = "apt-get install -y --allow-change-held-packages --allow-downgrades kubectl='{}-*'"
LOCK_ERROR = (
    "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process {} (unattended-upgr)"
)


class Lab(ClusterLab):
    def ready(self, node: str) -> str:
        out = self.sh("cp1", f"{KUBECTL} get node {node} -o json", check=False).stdout
        conditions = json.loads(out)["status"]["conditions"] if out else []
        return next((c["status"] for c in conditions if c["type"] == "Ready"), "")


@pytest.fixture(scope="module")
def lab(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """cp1 (ubuntu-22.04), worker1 (ubuntu-24.04), worker2 (rocky-9) at 1.29.3."""
    name = fresh_lab_name()
    with running_cluster(name, tmp_path_factory.mktemp("faults"), timeout=60) as built:
        try:
            yield Lab(built.state, built.inventory, built.home)
        finally:
            faults.clear(name)


def test_dpkg_lock_until_cleared_and_for_some_seconds(lab: Lab) -> None:
    # (the simulated apt, like the real one, takes the lock only for a change: each install
    # here changes kubectl's version)
    on = faults.inject(lab.name, "worker1", "dpkg-lock")
    pid = re.search(r"process (\d+)", on.detail)
    assert pid is not None, on.detail
    blocked = lab.sh("worker1", APT_KUBECTL.format("1.29.2"), check=False)
    assert blocked.returncode == 100
    assert blocked.stderr.splitlines()[0] == LOCK_ERROR.format(pid.group(1))
    assert [f.kind for f in faults.clear(lab.name, "worker1")] == ["dpkg-lock"]
    assert lab.sh("worker1", APT_KUBECTL.format("1.29.2")).returncode == 0
    # for some seconds: then apt gets the lock by itself
    faults.inject(lab.name, "worker1", "dpkg-lock", seconds=3)
    assert lab.sh("worker1", APT_KUBECTL.format("1.29.3"), check=False).returncode == 100

    def apt_works() -> bool:
        return lab.sh("worker1", APT_KUBECTL.format("1.29.3"), check=False).returncode == 0

    wait("the lock to be free", apt_works, timeout=8)
    assert faults.clear(lab.name, "worker1", "dpkg-lock") == []
    with pytest.raises(LabError, match="needs a Debian-family node"):
        faults.inject(lab.name, "worker2", "dpkg-lock")


def test_kubelet_not_ready_stops_kubeadm_preflight(lab: Lab) -> None:
    faults.inject(lab.name, "cp1", "kubelet-not-ready")
    wait("cp1 NotReady", lambda: lab.ready("cp1") == "False")
    assert "NotReady" in lab.sh("cp1", f"{KUBECTL} get node cp1").stdout
    plan = lab.sh("cp1", "kubeadm upgrade plan", check=False)
    assert plan.returncode == 1
    assert plan.stderr == (
        "[upgrade/health] FATAL: [preflight] Some fatal errors occurred:\n"
        "\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster:"
        " [cp1]\n"
        "[preflight] If you know what you are doing, you can make a check non-fatal with"
        " `--ignore-preflight-errors=...`\n"
        "To see the stack trace of this error execute with --v=5 or higher\n"
    )
    assert [f.kind for f in faults.clear(lab.name, "cp1", "kubelet-not-ready")] == [
        "kubelet-not-ready"
    ]
    wait("cp1 Ready", lambda: lab.ready("cp1") == "True")


def test_sshd_down_and_back_with_the_same_host_key(lab: Lab) -> None:
    faults.inject(lab.name, "worker2", "sshd-down")
    cut = lab.sh("worker2", "true", check=False)
    assert cut.returncode == 255 and "Connection refused" in cut.stderr
    assert any("sshd" in p for p in nodeops_lab.problems(lab.state))
    assert [f.kind for f in faults.clear(lab.name, "worker2")] == ["sshd-down"]
    # strict host key checking against the lab's known_hosts: the key is the same one
    assert lab.sh("worker2", "hostname").stdout == "worker2\n"
    state = nodeops_lab.status(lab.name)
    assert state is not None and nodeops_lab.problems(state) == []


def test_kubeadm_fail_rolls_back_and_keeps_the_backup(lab: Lab) -> None:
    lab.sh(
        "cp1",
        "sed -i 's#/v1.29/#/v1.30/#' /etc/apt/sources.list.d/kubernetes.list && apt-get update"
        " && apt-get install -y --allow-change-held-packages kubeadm='1.30.2-*'",
    )
    before = lab.sh("cp1", "cat /etc/kubernetes/manifests/*.yaml").stdout
    faults.inject(lab.name, "cp1", "kubeadm-fail")
    failed = lab.sh("cp1", "kubeadm upgrade apply v1.30.2 -y", check=False)
    assert failed.returncode == 1
    assert failed.stderr == (
        "[upgrade/apply] FATAL: fatal error when trying to upgrade the etcd cluster, rolled the"
        " state back to pre-upgrade state: couldn't upgrade control plane. kubeadm has tried to"
        " recover everything into the earlier state. Errors faced: static Pod hash for component"
        " etcd on Node cp1 did not change after 5m0s: timed out waiting for the condition\n"
        "To see the stack trace of this error execute with --v=5 or higher\n"
    )
    assert "[upgrade/etcd] Etcd was rolled back and is now available" in failed.stdout
    assert lab.sh("cp1", "cat /etc/kubernetes/manifests/*.yaml").stdout == before
    tmp = lab.sh("cp1", "ls /etc/kubernetes/tmp").stdout.split()
    assert any(t.startswith("kubeadm-backup-manifests-") for t in tmp), tmp
    assert any(t.startswith("kubeadm-backup-etcd-") for t in tmp), tmp
    assert faults.clear(lab.name, "cp1") == []  # the run used the fault up
    # a worker's `kubeadm upgrade node` fails too, its kubelet config untouched
    config = lab.sh("worker2", "cat /var/lib/kubelet/config.yaml").stdout
    faults.inject(lab.name, "worker2", "kubeadm-fail")
    node = lab.sh("worker2", "kubeadm upgrade node", check=False)
    assert node.returncode == 1
    assert node.stderr.startswith("error execution phase kubelet-config:")
    assert lab.sh("worker2", "cat /var/lib/kubelet/config.yaml").stdout == config
    wait("the API after the rollback", lambda: lab.ready("cp1") == "True")


def test_apiserver_down(lab: Lab) -> None:
    faults.inject(lab.name, "cp1", "apiserver-down")
    address = lab.state.node("cp1").address
    down = lab.sh("cp1", f"{KUBECTL} get nodes", check=False)
    assert down.returncode == 1
    assert down.stderr.strip().endswith(
        f"The connection to the server {address}:6443 was refused - did you specify the right"
        " host or port?"
    )
    plan = lab.sh("cp1", "kubeadm upgrade plan", check=False)
    assert plan.returncode == 1
    assert plan.stderr.startswith(
        "[upgrade/config] FATAL: unable to fetch the kubeadm-config ConfigMap: failed to get"
        f' config map: Get "https://{address}:6443/api/v1/namespaces/kube-system/configmaps/'
        f'kubeadm-config?timeout=10s": dial tcp {address}:6443: connect: connection refused\n'
    )
    assert [f.kind for f in faults.clear(lab.name, "cp1")] == ["apiserver-down"]
    wait("the API", lambda: lab.sh("cp1", f"{KUBECTL} get nodes", check=False).returncode == 0)


def test_pdb_blocking_stops_a_drain(lab: Lab) -> None:
    pods = json.loads(lab.sh("cp1", f"{KUBECTL} get pods -l app=web -o json").stdout)["items"]
    node = pods[0]["spec"]["nodeName"]
    faults.inject(lab.name, node, "pdb-blocking")
    drain = lab.sh(
        "cp1",
        f"{KUBECTL} drain {node} --ignore-daemonsets --delete-emptydir-data --force --timeout=6s",
        check=False,
    )
    try:
        assert drain.returncode == 1
        assert (
            "Cannot evict pod as it would violate the pod's disruption budget." in drain.stderr
        ), drain.stderr
        assert "global timeout reached: 6s" in drain.stderr
    finally:
        lab.sh("cp1", f"{KUBECTL} uncordon {node}")
    assert [f.kind for f in faults.clear(lab.name, node)] == ["pdb-blocking"]
    pdb = json.loads(lab.sh("cp1", f"{KUBECTL} get pdb web -o json").stdout)
    assert pdb["spec"]["minAvailable"] == 2


def test_slow_download_through_the_task(lab: Lab) -> None:
    task = [sys.executable, "-m", "invoke", "--search-root", str(Path(__file__).parents[2])]
    on = subprocess.run(
        [*task, "lab.fault", "--name", lab.name, "--node", "worker1", "slow-download", "-s", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert on.returncode == 0, on.stderr
    assert on.stdout == (
        "worker1: slow-download: /var/lib/nodeops-sim/faults/slow-download:"
        " 1 s per package download\n"
    )
    started = time.monotonic()
    lab.sh("worker1", APT_KUBECTL.format("1.29.1"))  # not downloaded before
    assert time.monotonic() - started >= 1
    off = subprocess.run(
        [*task, "lab.fault", "--name", lab.name, "--clear", "all"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert off.returncode == 0, off.stderr
    assert off.stdout == (
        "worker1: slow-download: /var/lib/nodeops-sim/faults/slow-download removed\n"
    )
