"""The lab as a kubeadm cluster over real SSH: nodes Ready, static and mirror pods, etcd."""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodeops import lab as nodeops_lab
from nodeops.lab import cluster

pytestmark = pytest.mark.lab

VERSION = "1.29.3"
KUBECTL = "HOME=/tmp/kubectl-home kubectl --kubeconfig /etc/kubernetes/admin.conf"
ETCDCTL = (
    "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379"
    " --cacert=/etc/kubernetes/pki/etcd/ca.crt"
    " --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt"
    " --key=/etc/kubernetes/pki/etcd/healthcheck-client.key"
)
EXPECTED_OS = {
    "cp1": "Ubuntu 22.04",
    "worker1": "Ubuntu 24.04",
    "worker2": "Rocky Linux 9.3",
}

Sh = Callable[..., subprocess.CompletedProcess[str]]


class Cluster:
    """A lab made a cluster, with its build report."""

    def __init__(self, state: nodeops_lab.LabState, info: cluster.ClusterInfo) -> None:
        self.state = state
        self.info = info

    def sh(self, node: str, script: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a shell script on a node over SSH."""
        done = subprocess.run(
            nodeops_lab.ssh_argv(self.state.name, node, [script]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{node}: {script!r} exited {done.returncode}: {done.stderr}")
        return done

    def kubectl_json(self, args: str) -> Any:
        """`kubectl ARGS -o json` on cp1, decoded."""
        return json.loads(self.sh("cp1", f"{KUBECTL} {args} -o json").stdout)


def _wait(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def built(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A lab of cp1 (ubuntu-22.04), worker1 (ubuntu-24.04), worker2 (rocky-9) made a cluster."""
    name = fresh_lab_name()
    spec = nodeops_lab.default_spec(name, workers=2)
    inventory = tmp_path_factory.mktemp("cluster-inventory") / "lab.yaml"
    try:
        state = nodeops_lab.up(spec, inventory_path=inventory)
        info = cluster.build_cluster(state, version=VERSION, timeout=60)
        yield Cluster(state, info)
    finally:
        nodeops_lab.down(name)


def test_bring_up_registers_every_node(built: Cluster) -> None:
    # How fast is the benchmarks' business (bench/), not a timed test's.
    print(f"cluster bring-up: {built.info.seconds:.2f} s")
    assert {n.name for n in built.info.nodes} == {"cp1", "worker1", "worker2"}


def test_kubectl_lists_every_node_ready_with_its_version(built: Cluster) -> None:
    out = built.sh("cp1", f"{KUBECTL} get nodes -o wide").stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == set(EXPECTED_OS)
    for name, line in rows.items():
        words = line.split()
        assert words[1] == "Ready", line
        assert words[4] == f"v{VERSION}", line
        assert words[5] == built.state.node(name).address, line
        assert EXPECTED_OS[name] in line
        assert line.rstrip().endswith("containerd://1.7.13")
    assert rows["cp1"].split()[2] == "control-plane"


def test_node_objects_as_the_kubelet_registers_them(built: Cluster) -> None:
    node = built.kubectl_json("get node worker2")
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "worker2"
    assert labels["kubernetes.io/os"] == labels["beta.kubernetes.io/os"] == "linux"
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
    )
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == f"v{VERSION}"
    assert info["osImage"] == "Rocky Linux 9.3 (Blue Onyx)"
    assert {"type": "Hostname", "address": "worker2"} in node["status"]["addresses"]
    cp = built.kubectl_json("get node cp1")
    assert cp["spec"]["taints"] == [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    ]
    lease = built.kubectl_json("get lease -n kube-node-lease worker1")
    assert lease["spec"]["holderIdentity"] == "worker1"


def test_kubelet_healthz_answers_as_kubeadm_expects(built: Cluster) -> None:
    probe = "python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:10248/healthz').read().decode())\""
    assert built.sh("worker1", probe).stdout.strip() == "ok"


def test_not_ready_fault_switch(built: Cluster) -> None:
    def ready(node: str) -> str:
        conditions = built.kubectl_json(f"get node {node}")["status"]["conditions"]
        return next(c["status"] for c in conditions if c["type"] == "Ready")

    built.sh(
        "worker2", "mkdir -p /run/nodeops/faults && touch /run/nodeops/faults/kubelet-not-ready"
    )
    try:
        _wait("worker2 NotReady", lambda: ready("worker2") == "False", timeout=5)
        out = built.sh("cp1", f"{KUBECTL} get node worker2").stdout
        assert "NotReady" in out
    finally:
        built.sh("worker2", "rm -f /run/nodeops/faults/kubelet-not-ready")
    _wait("worker2 Ready again", lambda: ready("worker2") == "True", timeout=5)


def test_control_plane_runs_as_mirrored_static_pods(built: Cluster) -> None:
    def ready_pods() -> dict[str, Any] | None:
        pods = built.kubectl_json("get pods -n kube-system")["items"]
        by_name = {p["metadata"]["name"]: p for p in pods}
        wanted = [by_name.get(f"{c}-cp1") for c in ("etcd", "kube-apiserver")]
        ok = all(
            p
            and any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"]
            )
            for p in wanted
        )
        return by_name if ok else None

    # Their startup and readiness probes pass within a few seconds of lab time.
    by_name = _wait("etcd and kube-apiserver Ready", ready_pods)
    for component in ("etcd", "kube-apiserver"):
        pod = by_name[f"{component}-cp1"]
        ann = pod["metadata"]["annotations"]
        assert ann["kubernetes.io/config.source"] == "file"
        assert ann["kubernetes.io/config.mirror"] == ann["kubernetes.io/config.hash"]
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Node"
        status = pod["status"]
        assert status["phase"] == "Running"
        assert status["podIP"] == built.state.node("cp1").address  # hostNetwork
        (cs,) = status["containerStatuses"]
        assert cs["ready"] and cs["started"] and "running" in cs["state"]
        assert cs["containerID"].startswith("containerd://")
    assert by_name["kube-apiserver-cp1"]["status"]["containerStatuses"][0]["image"] == (
        f"registry.k8s.io/kube-apiserver:v{VERSION}"
    )
    ps = built.sh("cp1", "ps -eo args").stdout
    assert "/usr/bin/etcd --advertise-client-urls=" in ps
    assert "-m nodeops.lab.sim.apiserver --advertise-address=" in ps


def test_etcd_answers_with_the_manifest_certificates(built: Cluster) -> None:
    done = built.sh("cp1", f"{ETCDCTL} endpoint health")
    assert "https://127.0.0.1:2379 is healthy" in done.stdout + done.stderr


def test_kubeadm_files_on_the_nodes(built: Cluster) -> None:
    listing = built.sh(
        "cp1",
        "cd /etc/kubernetes && ls admin.conf super-admin.conf kubelet.conf controller-manager.conf"
        " scheduler.conf manifests pki pki/etcd && stat -c '%a %n' /var/lib/etcd admin.conf",
    ).stdout
    assert "etcd.yaml" in listing and "kube-scheduler.yaml" in listing
    assert "700 /var/lib/etcd" in listing and "600 admin.conf" in listing
    config = yaml.safe_load(built.sh("worker1", "cat /var/lib/kubelet/config.yaml").stdout)
    assert config["staticPodPath"] == "/etc/kubernetes/manifests"
    flags = built.sh("worker1", "cat /var/lib/kubelet/kubeadm-flags.env").stdout
    assert flags.startswith('KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix://')
    # kubelet.conf points at the rotated client certificate, as after kubeadm init / join.
    client = "/var/lib/kubelet/pki/kubelet-client-current.pem"
    kubeconfig = yaml.safe_load(built.sh("worker1", "cat /etc/kubernetes/kubelet.conf").stdout)
    assert kubeconfig["users"] == [
        {"name": "default-auth", "user": {"client-certificate": client, "client-key": client}}
    ]
    kubeconfig = yaml.safe_load(built.sh("cp1", "cat /etc/kubernetes/kubelet.conf").stdout)
    assert kubeconfig["users"][0]["name"] == "system:node:cp1"
    subject = built.sh("worker1", f"openssl x509 -noout -subject -in {client}").stdout
    assert "O = system:nodes" in subject and "CN = system:node:worker1" in subject
    assert built.sh("worker1", f"stat -L -c %a {client}").stdout.strip() == "600"
    assert built.sh("worker1", "test -e /etc/kubernetes/admin.conf", check=False).returncode == 1
    assert built.sh("worker1", "test -s /etc/kubernetes/pki/ca.crt", check=False).returncode == 0


def test_kubeadm_configmaps(built: Cluster) -> None:
    cm = built.kubectl_json("get configmap -n kube-system kubeadm-config")
    conf = yaml.safe_load(cm["data"]["ClusterConfiguration"])
    assert conf["kubernetesVersion"] == f"v{VERSION}"
    kubelet = built.kubectl_json("get configmap -n kube-system kubelet-config")
    assert yaml.safe_load(kubelet["data"]["kubelet"])["kind"] == "KubeletConfiguration"
    info = built.kubectl_json("get configmap -n kube-public cluster-info")
    server = yaml.safe_load(info["data"]["kubeconfig"])["clusters"][0]["cluster"]["server"]
    assert server == built.info.server


STATIC_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: extra
  namespace: kube-system
spec:
  containers:
  - name: proxy
    image: haproxy:2.8
"""


def _mirror_names(built: Cluster, node: str) -> set[str]:
    pods = built.kubectl_json(f"get pods -A --field-selector spec.nodeName={node}")["items"]
    return {
        p["metadata"]["name"]
        for p in pods
        if "kubernetes.io/config.mirror" in p["metadata"].get("annotations", {})
    }


def test_static_pod_on_a_worker_is_mirrored_and_removed(built: Cluster) -> None:
    d = "/etc/kubernetes/manifests"
    script = (
        f"printf %s {shlex.quote(STATIC_POD)} > {d}/extra.yaml"
        f" && printf %s {shlex.quote(STATIC_POD.replace('extra', 'hidden'))} > {d}/.hidden.yaml"
        f" && printf 'kind: Pod\\nmetadata: [\\n' > {d}/broken.yaml"
    )
    built.sh("worker1", script)
    try:
        _wait("the mirror pod", lambda: "extra-worker1" in _mirror_names(built, "worker1"))
        pod = built.kubectl_json("get pod -n kube-system extra-worker1")
        _wait(
            "the static pod to run",
            lambda: (
                built.kubectl_json("get pod -n kube-system extra-worker1")["status"].get("phase")
                == "Running"
            ),
        )
        assert pod["spec"]["nodeName"] == "worker1"
        assert _mirror_names(built, "worker1") == {"extra-worker1"}  # not the dot-file's pod
        assert (
            "nodeops.lab.sim.container kube-system/extra-worker1/proxy"
            in built.sh("worker1", "ps -eo args").stdout
        )
        # The kubelet's log: its journal under the simulated systemd, else its own file.
        log = built.sh(
            "worker1", "journalctl -u kubelet 2>/dev/null; cat /var/log/kubelet.log", check=False
        ).stdout
        assert '"Could not process manifest file"' in log and f'path="{d}/broken.yaml"' in log
    finally:
        built.sh("worker1", f"rm -f {d}/extra.yaml {d}/.hidden.yaml {d}/broken.yaml")
    _wait("the mirror pod to go", lambda: "extra-worker1" not in _mirror_names(built, "worker1"))
    _wait(
        "the static pod's process to end",
        lambda: "extra-worker1" not in built.sh("worker1", "ps -eo args").stdout,
    )


def test_pod_bound_to_a_node_runs_and_graceful_deletion_finishes(built: Cluster) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bound", "namespace": "default"},
        "spec": {"nodeName": "worker2", "containers": [{"name": "c", "image": "nginx:1.25"}]},
    }
    built.sh("cp1", f"echo {shlex.quote(json.dumps(pod))} | {KUBECTL} create --validate=false -f -")
    got = _wait(
        "the pod to run",
        lambda: (
            (p := built.kubectl_json("get pod bound"))["status"].get("phase") == "Running" and p
        ),
    )
    (cs,) = got["status"]["containerStatuses"]
    assert cs["image"] == "docker.io/library/nginx:1.25"
    assert cs["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert cs["restartCount"] == 0 and "startedAt" in cs["state"]["running"]
    assert got["status"]["hostIP"] == built.state.node("worker2").address
    assert got["status"]["podIP"] and got["status"]["podIP"] != got["status"]["hostIP"]
    built.sh("cp1", f"{KUBECTL} delete pod bound --wait=true --timeout=60s")
    assert "default/bound/c" not in built.sh("worker2", "ps -eo args").stdout


def test_run_to_completion_pod_succeeds(built: Cluster) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "once", "namespace": "default"},
        "spec": {
            "nodeName": "worker1",
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"]}],
        },
    }
    built.sh("cp1", f"echo {shlex.quote(json.dumps(pod))} | {KUBECTL} create --validate=false -f -")
    try:
        got = _wait(
            "the pod to succeed",
            lambda: (
                (p := built.kubectl_json("get pod once"))["status"].get("phase") == "Succeeded"
                and p
            ),
        )
        (cs,) = got["status"]["containerStatuses"]
        assert cs["state"]["terminated"]["reason"] == "Completed"
        assert cs["restartCount"] == 0
    finally:
        built.sh("cp1", f"{KUBECTL} delete pod once --wait=true --timeout=20s", check=False)


def _kubelet_pid(built: Cluster, node: str) -> int:
    # The simulated kubelet names its process `kubelet`, as the real binary is named.
    out = built.sh(node, "pgrep -x kubelet || true").stdout.split()
    assert len(out) <= 1, f"more than one kubelet on {node}: {out}"
    return int(out[0]) if out else 0


def test_kubelet_restart_keeps_running_containers(built: Cluster) -> None:
    etcd_before = built.sh("cp1", "pgrep -x etcd").stdout.split()
    assert len(etcd_before) == 1
    pid = _kubelet_pid(built, "cp1")
    assert pid
    if built.sh("cp1", "systemctl is-active kubelet", check=False).returncode == 0:
        built.sh("cp1", "systemctl restart kubelet")
    else:
        # Started directly (no simulated packages): stop it and start it as the cluster did.
        built.sh("cp1", f"kill {pid}")
        _wait("the kubelet to stop", lambda: _kubelet_pid(built, "cp1") != pid)
        cluster.start_kubelet(built.state, "cp1", VERSION, packages=False)
    new_pid = _wait("the kubelet to start again", lambda: _kubelet_pid(built, "cp1"))
    assert new_pid != pid
    time.sleep(1.5)  # a few sync passes of the new kubelet
    assert built.sh("cp1", "pgrep -x etcd").stdout.split() == etcd_before
    assert built.sh("cp1", f"{ETCDCTL} endpoint health").returncode == 0
    node = built.kubectl_json("get node cp1")
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


def test_moved_etcd_data_dir_is_bind_mounted_at_the_container_path(built: Cluster) -> None:
    manifest = "/etc/kubernetes/manifests/etcd.yaml"
    original = built.sh("cp1", f"cat {manifest}").stdout
    doc = yaml.safe_load(original)
    for v in doc["spec"]["volumes"]:
        if v["name"] == "etcd-data":
            v["hostPath"]["path"] = "/var/lib/etcd-restored"
    old_pid = built.sh("cp1", "pgrep -x etcd").stdout.split()
    assert len(old_pid) == 1
    # What a restore does: a copy of the data in a new directory, the manifest pointed at it
    # (written outside the manifest directory, then renamed in).
    built.sh(
        "cp1",
        "cp -a /var/lib/etcd /var/lib/etcd-restored"
        f" && printf %s {shlex.quote(yaml.safe_dump(doc))} > /etc/kubernetes/etcd.yaml.new"
        f" && mv /etc/kubernetes/etcd.yaml.new {manifest}",
    )
    try:
        new_pid = _wait(
            "etcd to restart",
            lambda: (
                (p := built.sh("cp1", "pgrep -x etcd", check=False).stdout.split())
                and p != old_pid
                and p
            ),
        )
        mounts = built.sh("cp1", f"cat /proc/{new_pid[0]}/mountinfo").stdout
        assert any(" /var/lib/etcd " in line for line in mounts.splitlines())
        _wait(
            "etcd to answer",
            lambda: built.sh("cp1", f"{ETCDCTL} endpoint health", check=False).returncode == 0,
        )
        # Writes land in the new directory on the node.
        built.sh("cp1", f"{ETCDCTL} put /nodeops-test moved")
        assert built.sh("cp1", "ls /var/lib/etcd-restored/member/wal").stdout.strip()
    finally:
        moved = built.sh("cp1", "pgrep -x etcd", check=False).stdout.split()
        built.sh(
            "cp1",
            f"printf %s {shlex.quote(original)} > /etc/kubernetes/etcd.yaml.new"
            f" && mv /etc/kubernetes/etcd.yaml.new {manifest}",
        )
        # Leave the cluster as it was: the original etcd back and the API answering.
        _wait(
            "etcd to be back",
            lambda: (
                (p := built.sh("cp1", "pgrep -x etcd", check=False).stdout.split()) and p != moved
            ),
        )
        _wait(
            "the API to answer again",
            lambda: (
                built.sh("cp1", f"{KUBECTL} get --raw /readyz", check=False).returncode == 0
                and built.sh("cp1", f"{KUBECTL} get nodes", check=False).returncode == 0
            ),
        )


def test_kubeadm_addons_exist(built: Cluster) -> None:
    proxy = built.kubectl_json("get daemonset -n kube-system kube-proxy")
    image = proxy["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"registry.k8s.io/kube-proxy:v{VERSION}"
    dns = built.kubectl_json("get deployment -n kube-system coredns")
    assert dns["spec"]["template"]["spec"]["containers"][0]["image"].endswith("coredns:v1.11.1")


def test_sample_workloads_exist(built: Cluster) -> None:
    assert built.kubectl_json("get deployment web")["spec"]["replicas"] == 3
    assert built.kubectl_json("get pdb web")["spec"]["minAvailable"] == 2
    assert built.kubectl_json("get daemonset node-agent")["metadata"]["name"] == "node-agent"
    assert built.kubectl_json("get deployment cache")["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "emptyDir": {}}
    ]
    assert built.kubectl_json("get pod standalone")["metadata"]["name"] == "standalone"


@pytest.mark.skipif(
    importlib.util.find_spec("nodeops.lab.sim.scheduler") is None
    or importlib.util.find_spec("nodeops.lab.sim.controller_manager") is None,
    reason="the simulated scheduler and controller manager are not there yet",
)
def test_sample_workloads_run_on_the_workers(built: Cluster) -> None:
    def running() -> list[dict[str, Any]] | None:
        pods = built.kubectl_json("get pods -l app=web")["items"]
        ok = [p for p in pods if p["status"].get("phase") == "Running"]
        return ok if len(ok) == 3 else None

    pods = _wait("3 web pods running", running, timeout=30)
    assert {p["spec"]["nodeName"] for p in pods} <= {"worker1", "worker2"}
