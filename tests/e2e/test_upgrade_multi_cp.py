"""Upgrading a cluster with two control planes: cp1 first (`kubeadm upgrade apply`), then cp2
(`kubeadm upgrade node`), then the worker, with the real CLI over SSH.

One lab for the module: cp1 (Ubuntu 22.04), cp2 (Debian 12, joined with a stacked etcd
member), worker1 (Rocky 9), kube 1.29.3. The tests run in file order: the joined control
plane first, then one upgrade to 1.30 and what it left behind.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.labkit import KUBECTL, UpgradeLab, upgrade_lab

pytestmark = pytest.mark.lab

DRAIN = ("--force", "--delete-emptydir-data")  # the lab runs a bare pod and an emptyDir pod
ETCDCTL = (
    "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt"
    " --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt"
    " --key=/etc/kubernetes/pki/etcd/healthcheck-client.key"
)
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


@pytest.fixture(scope="module")
def lab(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UpgradeLab]:
    with upgrade_lab(
        fresh_lab_name(),
        tmp_path_factory.mktemp("multi-cp"),
        workers=1,
        worker_os=("rocky-9",),
        control_planes=2,
        control_plane_os=("ubuntu-22.04", "debian-12"),
        version="1.29.3",
        timeout=90,
    ) as built:
        # One worker: the web Deployment's budget (minAvailable 2 of 3, every replica on
        # worker1, the control planes tainted) could never let worker1 drain.
        built.sh("cp1", f"{KUBECTL} delete pdb web")
        yield built


def _images(lab: UpgradeLab, node: str) -> dict[str, tuple[str, str]]:
    """component -> (image in the node's manifest, image of its Running mirror pod)."""
    pods = lab.kubectl_json("get pods -n kube-system")["items"]
    out: dict[str, tuple[str, str]] = {}
    for component in COMPONENTS:
        text = lab.sh(node, f"cat /etc/kubernetes/manifests/{component}.yaml").stdout
        manifest = yaml.safe_load(text)["spec"]["containers"][0]["image"]
        mirror = next(
            p
            for p in pods
            if p["metadata"]["name"] == f"{component}-{node}"
            and p["status"].get("phase") == "Running"
        )
        out[component] = (manifest, mirror["spec"]["containers"][0]["image"])
    return out


def test_second_control_plane_joined_with_its_own_etcd_member(lab: UpgradeLab) -> None:
    nodes = yaml.safe_load(lab.inventory.read_text())["nodes"]
    assert [n for n, v in nodes.items() if "control-plane" in v["roles"]] == ["cp1", "cp2"]
    members = json.loads(lab.sh("cp2", f"{ETCDCTL} member list -w json").stdout)["members"]
    assert sorted(m["name"] for m in members) == ["cp1", "cp2"]
    assert not any(m.get("isLearner") for m in members)  # promoted after the join
    # kubectl on cp2 with its own admin.conf, and cp2's own API server answers too.
    listed = lab.kubectl_json("get nodes", "cp2")["items"]
    assert sorted(n["metadata"]["name"] for n in listed) == ["cp1", "cp2", "worker1"]
    cp2 = next(n for n in listed if n["metadata"]["name"] == "cp2")
    assert "node-role.kubernetes.io/control-plane" in cp2["metadata"]["labels"]
    own = lab.sh("cp2", f"{KUBECTL} --server https://{lab.state.node('cp2').address}:6443 get ns")
    assert "kube-system" in own.stdout
    for node in ("cp1", "cp2"):
        images = _images(lab, node)
        assert images["kube-apiserver"] == ("registry.k8s.io/kube-apiserver:v1.29.3",) * 2


def test_one_controller_manager_and_one_scheduler_lead(lab: UpgradeLab) -> None:
    leases = {
        lease["metadata"]["name"]: lease["spec"]
        for lease in lab.kubectl_json("get leases -n kube-system")["items"]
    }
    for component in ("kube-controller-manager", "kube-scheduler"):
        holder = leases[component]["holderIdentity"]
        assert re.fullmatch(r"cp[12]_[0-9a-f-]{36}", holder), holder
        assert leases[component]["leaseDurationSeconds"] == 15
    # Only the holder runs its controllers; the other candidate keeps trying for the lease.
    holder = leases["kube-controller-manager"]["holderIdentity"].split("_")[0]
    other = "cp2" if holder == "cp1" else "cp1"
    logs = "cat /var/log/pods/kube-system_kube-controller-manager-{}_*/*/*.log"
    assert "controllers started" in lab.sh(holder, logs.format(holder)).stdout
    standby = lab.sh(other, logs.format(other)).stdout
    assert "attempting to acquire leader lease" in standby
    assert "controllers started" not in standby


def test_upgrade_cluster_goes_cp1_apply_then_cp2_node_then_worker1(lab: UpgradeLab) -> None:
    started = time.monotonic()
    run = lab.run("upgrade-cluster", "--to", "1.30", *DRAIN)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr
    print(f"\nupgrade-cluster 1.29.3 -> 1.30 (cp1, cp2, worker1): {seconds:.1f} s wall")
    out = run.stdout
    assert "1. control plane cp1 [control-plane, now v1.29.3, kubeadm upgrade apply]" in out
    assert "2. control plane cp2 [control-plane, now v1.29.3, kubeadm upgrade node]" in out
    assert out.index("control plane cp1") < out.index("control plane cp2") < out.index("worker1")
    done = re.findall(r"^(\w+): at (1\.30\.\d+) ", out, re.M)
    assert [n for n, _ in done] == ["cp1", "cp2", "worker1"], out
    version = done[0][1]
    lab.notes["version"] = version

    run_id = re.search(r"^run (\S+); journal (\S+)$", out, re.M)
    assert run_id, out
    events = [json.loads(line) for line in Path(run_id.group(2)).read_text().splitlines()]
    kubeadm = [
        (e["node"], e["command"])
        for e in events
        if e.get("event") == "command" and str(e.get("command", "")).startswith("kubeadm upgrade")
    ]
    assert kubeadm == [
        ("cp1", f"kubeadm upgrade apply v{version} -y"),
        ("cp2", "kubeadm upgrade node"),
        ("worker1", "kubeadm upgrade node"),
    ], kubeadm
    codes = [
        e.get("exit_code")
        for e in events
        if e.get("event") == "command" and str(e.get("command", "")).startswith("kubeadm upgrade")
    ]
    assert codes and set(codes) == {0}, codes


def test_every_node_ends_ready_schedulable_and_held_at_the_new_version(lab: UpgradeLab) -> None:
    version = lab.notes.get("version")
    if not version:
        pytest.skip("the upgrade did not finish")
    nodes = {n["metadata"]["name"]: n for n in lab.kubectl_json("get nodes", "cp2")["items"]}
    for name, node in nodes.items():
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", name
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{version}", name
        assert not node["spec"].get("unschedulable"), name
    facts = lab.run("facts", "--all", "--json")
    assert facts.returncode == 0, facts.stderr
    held = {n: set(f["held"]) for n, f in json.loads(facts.stdout).items()}
    assert sorted(held) == ["cp1", "cp2", "worker1"]
    assert all({"kubeadm", "kubelet", "kubectl"} <= h for h in held.values()), held
    # cp2's static pods run the cluster's new version (etcd the image kubeadm 1.30 pins).
    for node in ("cp1", "cp2"):
        images = _images(lab, node)
        for component in COMPONENTS[1:]:
            want = f"registry.k8s.io/{component}:v{version}"
            assert images[component] == (want, want), (node, images)
        assert images["etcd"] == ("registry.k8s.io/etcd:3.5.12-0",) * 2, (node, images)
    config = lab.kubectl_json("get cm kubeadm-config -n kube-system", "cp2")["data"]
    assert yaml.safe_load(config["ClusterConfiguration"])["kubernetesVersion"] == f"v{version}"
    members = json.loads(lab.sh("cp1", f"{ETCDCTL} member list -w json").stdout)["members"]
    assert sorted(m["name"] for m in members) == ["cp1", "cp2"]
