"""The simulated control plane against real etcd and real kubectl (1.29 and 1.33), on loopback.

etcd (TLS, client certificates from pki.py), the apiserver, controller manager and scheduler
run as subprocesses; a fake kubelet thread registers three nodes, heartbeats their leases,
marks bound pods Running and finishes graceful deletions.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from nodeops.lab.sim import module_env
from nodeops.lab.sim.kube_client import ApiStatusError, Client
from nodeops.lab.sim.pki import ADMIN_GROUP, write_kubeadm_pki, write_kubeconfig

pytestmark = pytest.mark.lab

KUBECTLS = {
    "1.29": "/usr/lib/google-cloud-sdk/bin/kubectl.1.29",
    "1.33": "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
}
NODES = ("cp1", "w1", "w2")
SERVER_VERSION = "v1.29.4"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate, timeout: float, what: str, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # not up yet: any error means try again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class FakeKubelet:
    """What kubelets would do: node objects, lease heartbeats, pods Running, final deletes."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list[str] = []

    def register(self) -> None:
        for index, name in enumerate(NODES):
            labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
            taints = []
            if name.startswith("cp"):
                labels["node-role.kubernetes.io/control-plane"] = ""
                taints = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels},
                "spec": {"taints": taints},
            }
            self.client.create("/api/v1/nodes", node)
            status = {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": f"10.77.0.{10 + index}"},
                    {"type": "Hostname", "address": name},
                ],
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "nodeInfo": {
                    "kubeletVersion": "v1.29.4" if name != "w2" else "v1.28.9",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0-sim",
                    "containerRuntimeVersion": "containerd://1.7.13",
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                },
            }
            self.client.patch(f"/api/v1/nodes/{name}/status", {"status": status})
            self.client.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "metadata": {"name": name, "namespace": "kube-node-lease"},
                    "spec": {
                        "holderIdentity": name,
                        "leaseDurationSeconds": 40,
                        "renewTime": _micro(),
                    },
                },
            )
        self.thread.start()

    def _run(self) -> None:
        last_beat = 0.0
        while not self.stop.is_set():
            try:
                if time.monotonic() - last_beat > 2:
                    last_beat = time.monotonic()
                    for name in NODES:
                        self.client.patch(
                            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}",
                            {"spec": {"renewTime": _micro()}},
                            "merge",
                        )
                for pod in self.client.items("/api/v1/pods"):
                    self._pod(pod)
            except (OSError, ApiStatusError) as exc:
                self.errors.append(str(exc))
            self.stop.wait(0.2)

    def _pod(self, pod: dict) -> None:  # type: ignore[type-arg]
        meta, spec = pod["metadata"], pod.get("spec") or {}
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        if spec.get("nodeName") not in NODES:
            return  # unbound, or on a node no fake kubelet runs
        if meta.get("deletionTimestamp"):
            try:
                self.client.delete(
                    path, {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
                )
            except ApiStatusError as err:
                if err.code not in (404, 409):
                    raise
            return
        if (pod.get("status") or {}).get("phase") == "Pending":
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            ip = f"10.244.{NODES.index(spec['nodeName'])}.{abs(hash(meta['name'])) % 250 + 2}"
            status = {
                "phase": "Running",
                "podIP": ip,
                "startTime": now,
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                ],
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "image": c.get("image", ""),
                        "ready": True,
                        "restartCount": 0,
                        "started": True,
                        "state": {"running": {"startedAt": now}},
                    }
                    for c in spec.get("containers") or []
                ],
            }
            self.client.patch(f"{path}/status", {"status": status})


def _micro() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _etcd_argv(
    data_dir: Path, pki: Path, client_port: int, peer_port: int, metrics_port: int
) -> list[str]:
    """kubeadm-like etcd flags on loopback ports."""
    return [
        "/usr/bin/etcd",
        "--name=cp1",
        f"--data-dir={data_dir}",
        f"--advertise-client-urls=https://127.0.0.1:{client_port}",
        f"--listen-client-urls=https://127.0.0.1:{client_port}",
        f"--listen-peer-urls=https://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=https://127.0.0.1:{peer_port}",
        f"--initial-cluster=cp1=https://127.0.0.1:{peer_port}",
        f"--listen-metrics-urls=http://127.0.0.1:{metrics_port}",
        f"--cert-file={pki / 'etcd/server.crt'}",
        f"--key-file={pki / 'etcd/server.key'}",
        f"--trusted-ca-file={pki / 'etcd/ca.crt'}",
        "--client-cert-auth=true",
        f"--peer-cert-file={pki / 'etcd/peer.crt'}",
        f"--peer-key-file={pki / 'etcd/peer.key'}",
        f"--peer-trusted-ca-file={pki / 'etcd/ca.crt'}",
        "--peer-client-cert-auth=true",
        "--snapshot-count=10000",
    ]


def _apiserver_argv(pki: Path, api_port: int, client_port: int) -> list[str]:
    """The simulated apiserver with kubeadm's flags."""
    return [
        sys.executable,
        "-m",
        "nodeops.lab.sim.apiserver",
        "--advertise-address=127.0.0.1",
        "--bind-address=127.0.0.1",
        f"--secure-port={api_port}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--etcd-cafile={pki / 'etcd/ca.crt'}",
        f"--etcd-certfile={pki / 'apiserver-etcd-client.crt'}",
        f"--etcd-keyfile={pki / 'apiserver-etcd-client.key'}",
        f"--etcd-servers=https://127.0.0.1:{client_port}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        "--service-cluster-ip-range=10.96.0.0/12",
    ]


@dataclass
class Cluster:
    """The running control plane."""

    root: Path
    kubeconfig: Path
    client: Client
    startup_seconds: float
    port: int

    def kubectl(
        self, version: str, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run real kubectl of `version` with a private HOME."""
        home = self.root / f"home-{version}"
        home.mkdir(exist_ok=True)
        env = {"HOME": str(home), "KUBECONFIG": str(self.kubeconfig), "PATH": os.environ["PATH"]}
        out = subprocess.run(
            [KUBECTLS[version], *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}"
            )
        return out

    def pods(self, selector: str = "") -> list[dict]:  # type: ignore[type-arg]
        """Pods in the default namespace."""
        params = {"labelSelector": selector} if selector else {}
        return self.client.items("/api/v1/namespaces/default/pods", **params)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """etcd + apiserver + controller manager + scheduler + fake kubelets; all torn down after."""
    for path in KUBECTLS.values():
        if not Path(path).exists():
            pytest.skip(f"{path} is not installed")
    root = tmp_path_factory.mktemp("simcp")
    pki = root / "pki"
    write_kubeadm_pki(
        pki,
        apiserver_names=["cp1"],
        apiserver_ips=["127.0.0.1"],
        etcd_names=["cp1"],
        etcd_ips=["127.0.0.1"],
    )
    client_port, peer_port, metrics_port, api_port = (_free_port() for _ in range(4))
    procs: list[subprocess.Popen[bytes]] = []
    logs = []

    def spawn(
        name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (root / f"{name}.log").open("wb")
        logs.append(log)
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        procs.append(proc)
        return proc

    kubelet: FakeKubelet | None = None
    try:
        spawn(
            "etcd",
            _etcd_argv(root / "etcd", pki, client_port, peer_port, metrics_port),
        )
        from nodeops.lab.sim.apiserver.etcd import Etcd

        etcd = Etcd(
            f"https://127.0.0.1:{client_port}",
            ca=str(pki / "etcd/ca.crt"),
            cert=str(pki / "apiserver-etcd-client.crt"),
            key=str(pki / "apiserver-etcd-client.key"),
            timeout=1,
        )
        _wait(etcd.revision, 20, "etcd")
        (root / "etcd.endpoint").write_text(f"https://127.0.0.1:{client_port}")
        sim_env = {**module_env(), "NODEOPS_COMPONENT_VERSION": SERVER_VERSION}
        started = time.monotonic()
        spawn(
            "apiserver",
            _apiserver_argv(pki, api_port, client_port),
            sim_env,
        )  # fmt: skip
        server = f"https://127.0.0.1:{api_port}"
        kubeconfigs = {}
        for name, user, groups in (
            ("admin.conf", "kubernetes-admin", [ADMIN_GROUP]),
            ("controller-manager.conf", "system:kube-controller-manager", []),
            ("scheduler.conf", "system:kube-scheduler", []),
            ("kubelet.conf", "system:node:fake", ["system:nodes"]),
        ):
            kubeconfigs[name] = root / name
            write_kubeconfig(
                root / name,
                ca_cert=pki / "ca.crt",
                ca_key=pki / "ca.key",
                server=server,
                user=user,
                groups=groups,
            )
        admin = Client.from_kubeconfig(kubeconfigs["admin.conf"])
        _wait(lambda: admin.get("/api/v1/namespaces/kube-node-lease"), 20, "apiserver ready")
        startup = time.monotonic() - started
        spawn(
            "controller-manager",
            [
                sys.executable,
                "-m",
                "nodeops.lab.sim.controller_manager",
                f"--kubeconfig={kubeconfigs['controller-manager.conf']}",
                "--node-monitor-grace-period=6s",
            ],
            sim_env,
        )
        spawn(
            "scheduler",
            [
                sys.executable,
                "-m",
                "nodeops.lab.sim.scheduler",
                f"--kubeconfig={kubeconfigs['scheduler.conf']}",
            ],
            sim_env,
        )
        kubelet = FakeKubelet(Client.from_kubeconfig(kubeconfigs["kubelet.conf"]))
        kubelet.register()
        yield Cluster(root, kubeconfigs["admin.conf"], admin, startup, api_port)
        assert [p.args for p in procs if p.poll() is not None] == [], "a component died"
        assert kubelet.thread.is_alive(), "the fake kubelet died"
    finally:
        if kubelet is not None:
            kubelet.stop.set()
            kubelet.thread.join(5)
        for proc in reversed(procs):
            _stop(proc)
        for log in logs:
            log.close()
        if os.environ.get("NODEOPS_SIM_LOGS"):
            for name in ("apiserver", "controller-manager", "scheduler"):
                print((root / f"{name}.log").read_text()[-3000:])


# --- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", sorted(KUBECTLS))
def test_version_and_get_nodes_wide(cluster: Cluster, version: str) -> None:
    out = cluster.kubectl(version, "version", "-o", "json")
    info = json.loads(out.stdout)
    assert info["serverVersion"]["gitVersion"] == SERVER_VERSION
    assert info["serverVersion"]["minor"] == "29"
    started = time.monotonic()
    out = cluster.kubectl(version, "get", "nodes", "-o", "wide")
    latency = time.monotonic() - started
    lines = out.stdout.splitlines()
    assert lines[0].split() == [
        "NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP",
        "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == sorted(NODES)
    assert rows["cp1"][1:3] == ["Ready", "control-plane"]
    assert rows["w1"][2] == "<none>"
    assert rows["w2"][4] == "v1.28.9"
    assert rows["w1"][5] == "10.77.0.11"
    assert "Debian GNU/Linux 12 (bookworm)" in out.stdout
    assert "containerd://1.7.13" in out.stdout
    narrow = cluster.kubectl(version, "get", "nodes").stdout.splitlines()[0].split()
    assert narrow == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    print(f"kubectl {version} get nodes -o wide: {latency * 1000:.0f} ms; apiserver ready in"
          f" {cluster.startup_seconds:.2f} s")  # fmt: skip


def _node(cluster: Cluster, name: str) -> dict:  # type: ignore[type-arg]
    return cluster.client.get(f"/api/v1/nodes/{name}")


@pytest.mark.parametrize("version", sorted(KUBECTLS))
def test_cordon_uncordon(cluster: Cluster, version: str) -> None:
    out = cluster.kubectl(version, "cordon", "w2")
    assert out.stdout.strip() == "node/w2 cordoned"
    assert _node(cluster, "w2")["spec"]["unschedulable"] is True
    rows = {
        line.split()[0]: line.split()
        for line in cluster.kubectl(version, "get", "nodes").stdout.splitlines()[1:]
    }
    assert rows["w2"][1] == "Ready,SchedulingDisabled"
    taints = _wait(
        lambda: [t["key"] for t in _node(cluster, "w2")["spec"].get("taints") or []],
        5,
        "unschedulable taint",
    )
    assert taints == ["node.kubernetes.io/unschedulable"]
    out = cluster.kubectl(version, "uncordon", "w2")
    assert out.stdout.strip() == "node/w2 uncordoned"
    assert "unschedulable" not in _node(cluster, "w2")["spec"]
    _wait(lambda: not _node(cluster, "w2")["spec"].get("taints"), 5, "taint removed")


def test_wait_for_ready_uses_watch(cluster: Cluster) -> None:
    out = cluster.kubectl("1.33", "wait", "--for=condition=Ready", "node/w1", "--timeout=10s")
    assert out.stdout.strip() == "node/w1 condition met"


def test_deployment_pods_get_scheduled(cluster: Cluster) -> None:
    cluster.kubectl("1.33", "create", "deployment", "web", "--image=nginx:1.25", "--replicas=3")
    out = cluster.kubectl("1.29", "rollout", "status", "deployment/web", "--timeout=20s")
    assert 'deployment "web" successfully rolled out' in out.stdout
    pods = cluster.pods("app=web")
    assert len(pods) == 3
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    # The control-plane taint keeps them off cp1.
    assert {p["spec"]["nodeName"] for p in pods} <= {"w1", "w2"}
    rs = cluster.client.items(
        "/apis/apps/v1/namespaces/default/replicasets", labelSelector="app=web"
    )
    assert len(rs) == 1
    hash_label = rs[0]["metadata"]["labels"]["pod-template-hash"]
    assert rs[0]["metadata"]["name"] == f"web-{hash_label}"
    assert all(
        p["metadata"]["ownerReferences"][0]["name"] == rs[0]["metadata"]["name"] for p in pods
    )
    wide = cluster.kubectl("1.29", "get", "pods", "-A", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
        "NOMINATED", "NODE", "READINESS", "GATES",
    ]  # fmt: skip
    web_rows = [line.split() for line in wide[1:] if " web-" in line]
    assert len(web_rows) == 3
    assert all(r[2:5] == ["1/1", "Running", "0"] and r[7] in ("w1", "w2") for r in web_rows)
    deploy = cluster.kubectl("1.33", "get", "deployment", "web").stdout.splitlines()
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploy[1].split()[:4] == ["web", "3/3", "3", "3"]


def test_get_all_yaml(cluster: Cluster) -> None:
    for version in KUBECTLS:
        out = cluster.kubectl(version, "get", "all", "-A", "-o", "yaml")
        doc = yaml.safe_load(out.stdout)
        kinds = {item["kind"] for item in doc["items"]}
        assert {"Service", "Pod", "Deployment", "ReplicaSet"} <= kinds, kinds


def test_unschedulable_pod_message(cluster: Cluster) -> None:
    cluster.kubectl("1.33", "cordon", "w1")
    try:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "picky"},
            "spec": {
                "nodeSelector": {"disk": "ssd"},
                "tolerations": [
                    {
                        "key": "node-role.kubernetes.io/control-plane",
                        "operator": "Exists",
                        "effect": "NoSchedule",
                    }
                ],
                "containers": [{"name": "c", "image": "busybox:1.36"}],
            },
        }
        cluster.client.create("/api/v1/namespaces/default/pods", pod)

        def message() -> str | None:
            got = cluster.client.get("/api/v1/namespaces/default/pods/picky")
            for cond in got["status"].get("conditions") or []:
                if cond["type"] == "PodScheduled" and cond["status"] == "False":
                    return str(cond["message"])
            return None

        # cp1's taint is tolerated, so it fails on the selector; w1 fails first on the cordon.
        assert _wait(message, 10, "Unschedulable condition") == (
            "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match Pod's"
            " node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not"
            " helpful for scheduling."
        )
        cond = next(
            c
            for c in cluster.client.get("/api/v1/namespaces/default/pods/picky")["status"][
                "conditions"
            ]
            if c["type"] == "PodScheduled"
        )
        assert cond["reason"] == "Unschedulable"
        cluster.client.patch("/api/v1/nodes/w2", {"metadata": {"labels": {"disk": "ssd"}}})
        node = _wait(
            lambda: cluster.client.get("/api/v1/namespaces/default/pods/picky")["spec"].get(
                "nodeName"
            ),
            10,
            "picky scheduled",
        )
        assert node == "w2"
    finally:
        cluster.kubectl("1.33", "uncordon", "w1")
        cluster.client.patch("/api/v1/nodes/w2", {"metadata": {"labels": {"disk": None}}})
        cluster.kubectl("1.33", "delete", "pod", "picky", "--wait=false", check=False)


def _apply(cluster: Cluster, obj: dict) -> None:  # type: ignore[type-arg]
    path = cluster.root / f"{obj['metadata']['name']}.json"
    path.write_text(json.dumps(obj))
    cluster.kubectl("1.33", "create", "-f", str(path))


def _drain_fixtures(cluster: Cluster) -> None:
    """On w1: a DaemonSet pod, a bare pod, an emptyDir pod (ReplicaSet-owned), web pods."""
    template = {
        "metadata": {"labels": {"app": "agent"}},
        "spec": {"containers": [{"name": "agent", "image": "agent:1"}]},
    }
    _apply(
        cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template},
        },
    )
    _apply(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bare", "namespace": "default"},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": "w1"},
                "containers": [{"name": "c", "image": "busybox:1.36"}],
            },
        },
    )
    _apply(
        cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "cache", "namespace": "default"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "cache"}},
                "template": {
                    "metadata": {"labels": {"app": "cache"}},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/hostname": "w1"},
                        "containers": [{"name": "c", "image": "redis:7"}],
                        "volumes": [{"name": "scratch", "emptyDir": {}}],
                    },
                },
            },
        },
    )

    def settled() -> bool:
        pods = cluster.pods()
        agents = [p for p in pods if p["metadata"]["name"].startswith("agent-")]
        on_w1 = {
            p["metadata"]["name"].split("-")[0] for p in pods if p["spec"].get("nodeName") == "w1"
        }
        running = all(
            p["status"]["phase"] == "Running" for p in pods if p["metadata"]["name"] != "picky"
        )
        # cp1's control-plane taint keeps the DaemonSet off it, as upstream.
        return len(agents) == 2 and {"agent", "bare", "cache"} <= on_w1 and running

    _wait(settled, 20, "drain fixtures running")


@pytest.mark.parametrize("version", sorted(KUBECTLS))
def test_drain_refuses_without_flags(cluster: Cluster, version: str) -> None:
    if not any(p["metadata"]["name"] == "bare" for p in cluster.pods()):
        _drain_fixtures(cluster)
    out = cluster.kubectl(version, "drain", "w1", "--timeout=10s", check=False)
    assert out.returncode != 0
    assert "node/w1 cordoned" in out.stdout
    err = out.stderr
    assert (
        "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): default/agent-"
        in err
    )
    assert "(use --force to override): default/bare" in err
    assert (
        "cannot delete Pods with local storage (use --delete-emptydir-data to override):"
        " default/cache-" in err
    )
    assert _node(cluster, "w1")["spec"]["unschedulable"] is True
    cluster.kubectl(version, "uncordon", "w1")


def test_drain_blocked_by_pdb_then_drains(cluster: Cluster) -> None:
    if not any(p["metadata"]["name"] == "bare" for p in cluster.pods()):
        _drain_fixtures(cluster)
    web_on_w1 = [p for p in cluster.pods("app=web") if p["spec"]["nodeName"] == "w1"]
    assert web_on_w1, "the web deployment should have a pod on w1"
    _apply(
        cluster,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    pdb = _wait(
        lambda: (
            (
                s := cluster.client.get(
                    "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web"
                )["status"]
            ).get("observedGeneration")
            and s
        ),
        10,
        "pdb status",
    )
    counts = ("currentHealthy", "desiredHealthy", "expectedPods", "disruptionsAllowed")
    assert tuple(pdb[k] for k in counts) == (
        3, 3, 3, 0,
    )  # fmt: skip
    flags = ("--ignore-daemonsets", "--force", "--delete-emptydir-data")
    started = time.monotonic()
    out = cluster.kubectl("1.33", "drain", "w1", *flags, "--timeout=8s", check=False)
    assert out.returncode != 0
    assert time.monotonic() - started >= 8
    assert (
        f'error when evicting pods/"{web_on_w1[0]["metadata"]["name"]}" -n "default"'
        " (will retry after 5s):"
        " Cannot evict pod as it would violate the pod's disruption budget."
    ) in out.stderr
    assert "global timeout reached: 8s" in out.stderr
    assert "ignoring DaemonSet-managed Pods: default/agent-" in out.stderr
    assert "deleting Pods that declare no controller: default/bare" in out.stderr
    # The raw answer of the eviction subresource.
    name = web_on_w1[0]["metadata"]["name"]
    with pytest.raises(ApiStatusError) as info:
        cluster.client.create(
            f"/api/v1/namespaces/default/pods/{name}/eviction",
            {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": "default"},
            },
        )
    assert info.value.code == 429
    assert info.value.status["reason"] == "TooManyRequests"
    assert info.value.status["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget web needs 3 healthy pods and has 3 currently",
        }
    ]
    cluster.kubectl("1.33", "delete", "pdb", "web")
    out = cluster.kubectl("1.33", "drain", "w1", *flags, "--timeout=30s")
    assert "node/w1 drained" in out.stdout
    assert f"pod/{name} evicted" in out.stdout

    def moved() -> bool:
        pods = cluster.pods("app=web")
        return len(pods) == 3 and all(
            p["spec"].get("nodeName") == "w2" and p["status"]["phase"] == "Running" for p in pods
        )

    _wait(moved, 15, "evicted web pods running on w2")
    on_w1 = [p["metadata"]["name"] for p in cluster.pods() if p["spec"].get("nodeName") == "w1"]
    assert [n for n in on_w1 if not n.startswith("agent-")] == []
    cluster.kubectl("1.33", "uncordon", "w1")


def test_api_semantics(cluster: Cluster) -> None:
    c = cluster.client
    with pytest.raises(ApiStatusError) as info:
        c.get("/api/v1/namespaces/default/pods/nope")
    assert info.value.code == 404
    assert info.value.status["message"] == 'pods "nope" not found'
    assert info.value.status["reason"] == "NotFound"
    cm = c.create(
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"generateName": "cfg-"}, "data": {"a": "1"}},
    )
    name, rv = cm["metadata"]["name"], cm["metadata"]["resourceVersion"]
    assert name.startswith("cfg-") and len(name) == 9 and cm["metadata"]["uid"]
    c.patch(f"/api/v1/namespaces/default/configmaps/{name}", {"data": {"b": "2"}}, "merge")
    with pytest.raises(ApiStatusError) as info:
        c.update(f"/api/v1/namespaces/default/configmaps/{name}", {**cm, "data": {"c": "3"}})
    assert info.value.code == 409
    assert info.value.status["message"] == (
        f'Operation cannot be fulfilled on configmaps "{name}": the object has been modified;'
        " please apply your changes to the latest version and try again"
    )
    with pytest.raises(ApiStatusError) as info:
        c.create("/api/v1/namespaces/default/configmaps", {"metadata": {"name": name}})
    assert (info.value.code, info.value.status["reason"]) == (409, "AlreadyExists")
    with pytest.raises(ApiStatusError) as info:
        c.create("/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "x"}})
    assert info.value.status["message"] == 'namespaces "nowhere" not found'
    got = c.patch(
        f"/api/v1/namespaces/default/configmaps/{name}",
        [{"op": "add", "path": "/data/z", "value": "9"}],
        "json",
    )
    assert got["data"] == {"a": "1", "b": "2", "z": "9"}
    assert int(got["metadata"]["resourceVersion"]) > int(rv)
    listing = c.get("/api/v1/namespaces/default/configmaps")
    assert (listing["kind"], listing["apiVersion"]) == ("ConfigMapList", "v1")
    assert int(listing["metadata"]["resourceVersion"]) >= int(got["metadata"]["resourceVersion"])
    pod = {
        "metadata": {"name": "bindme"},
        "spec": {"schedulerName": "nobody", "containers": [{"name": "c", "image": "busybox:1.36"}]},
    }
    created = c.create("/api/v1/namespaces/default/pods", pod)
    assert created["status"]["phase"] == "Pending"
    assert created["spec"]["schedulerName"] == "nobody"
    binding = {"metadata": {"name": "bindme"}, "target": {"kind": "Node", "name": "w2"}}
    c.create("/api/v1/namespaces/default/pods/bindme/binding", binding)
    assert c.get("/api/v1/namespaces/default/pods/bindme")["spec"]["nodeName"] == "w2"
    with pytest.raises(ApiStatusError) as info:
        c.create("/api/v1/namespaces/default/pods/bindme/binding", binding)
    assert info.value.status["message"] == (
        'Operation cannot be fulfilled on pods/binding "bindme": pod bindme is already assigned'
        ' to node "w2"'
    )
    c.delete("/api/v1/namespaces/default/pods/bindme", {"gracePeriodSeconds": 0})
    # Objects live in etcd under upstream's keys, so a snapshot carries them.
    from nodeops.lab.sim.apiserver.etcd import Etcd

    pki = cluster.root / "pki"
    store = Etcd(
        _etcd_endpoint(cluster),
        ca=str(pki / "etcd/ca.crt"),
        cert=str(pki / "apiserver-etcd-client.crt"),
        key=str(pki / "apiserver-etcd-client.key"),
    )
    kv = store.get("/registry/minions/w1")
    assert kv is not None and json.loads(kv.value)["metadata"]["name"] == "w1"
    assert store.get(f"/registry/configmaps/default/{name}") is not None
    c.delete(f"/api/v1/namespaces/default/configmaps/{name}")
    assert store.get(f"/registry/configmaps/default/{name}") is None


def test_health_endpoints_and_watch(cluster: Cluster) -> None:
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(cluster.root / "pki" / "ca.crt"))
    base = f"https://127.0.0.1:{cluster.port}"
    # Health and version are public (no client certificate), the rest is not.
    with urllib.request.urlopen(f"{base}/readyz?verbose", context=context) as resp:
        body = resp.read().decode()
    assert "[+]etcd ok" in body and body.endswith("readyz check passed\n")
    with urllib.request.urlopen(f"{base}/livez", context=context) as resp:
        assert resp.read() == b"ok"
    try:
        urllib.request.urlopen(f"{base}/api/v1/nodes", context=context)
        raise AssertionError("anonymous list allowed")
    except urllib.error.HTTPError as err:
        assert err.code == 401
    c = cluster.client
    rv = c.get("/api/v1/namespaces/default/configmaps")["metadata"]["resourceVersion"]
    events: list[tuple[str, str]] = []

    def watch() -> None:
        for event in c.watch(
            "/api/v1/namespaces/default/configmaps", resourceVersion=rv, timeoutSeconds="5"
        ):
            events.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "DELETED":
                return

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.3)
    c.create("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "watched"}})
    c.patch("/api/v1/namespaces/default/configmaps/watched", {"data": {"k": "v"}}, "merge")
    c.delete("/api/v1/namespaces/default/configmaps/watched")
    thread.join(10)
    assert events == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")]


def test_deleting_a_deployment_collects_its_replicasets_and_pods(cluster: Cluster) -> None:
    cluster.kubectl("1.33", "create", "deployment", "tmp", "--image=nginx:1.25", "--replicas=2")
    _wait(lambda: len(cluster.pods("app=tmp")) == 2, 15, "tmp pods")
    out = cluster.kubectl("1.33", "delete", "deployment", "tmp")
    assert out.stdout.strip() == 'deployment.apps "tmp" deleted'
    _wait(
        lambda: (
            not cluster.pods("app=tmp")
            and not cluster.client.items(
                "/apis/apps/v1/namespaces/default/replicasets", labelSelector="app=tmp"
            )
        ),
        15,
        "garbage collection",
    )


def _etcd_endpoint(cluster: Cluster) -> str:
    return (cluster.root / "etcd.endpoint").read_text()


def test_statefulset_ordered_pods_and_pdb_with_percentage(cluster: Cluster) -> None:
    _apply(
        cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]},
                },
            },
        },
    )
    _apply(
        cluster,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "db"}}},
        },
    )
    try:
        _wait(
            lambda: (
                sorted(
                    p["metadata"]["name"]
                    for p in cluster.pods("app=db")
                    if p["status"]["phase"] == "Running"
                )
                == ["db-0", "db-1"]
            ),
            15,
            "db-0 and db-1 running",
        )
        pod = cluster.client.get("/api/v1/namespaces/default/pods/db-1")
        assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("db-1", "db")
        assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-1"
        rows = cluster.kubectl("1.33", "get", "statefulset", "db").stdout.splitlines()
        assert rows[0].split() == ["NAME", "READY", "AGE"]
        _wait(
            lambda: (
                cluster.kubectl("1.33", "get", "sts", "db").stdout.splitlines()[1].split()[1]
                == "2/2"
            ),
            10,
            "2/2",
        )

        def budget() -> tuple[int, ...] | None:
            status = cluster.client.get(
                "/apis/policy/v1/namespaces/default/poddisruptionbudgets/db"
            )["status"]
            counts = ("currentHealthy", "desiredHealthy", "expectedPods", "disruptionsAllowed")
            got = tuple(int(status.get(k, 0)) for k in counts)
            return got if got == (2, 1, 2, 1) else None

        assert _wait(budget, 10, "pdb counts from the StatefulSet scale")
    finally:
        cluster.kubectl("1.33", "delete", "pdb", "db", check=False)
        cluster.kubectl("1.33", "delete", "statefulset", "db", check=False)
    _wait(lambda: not cluster.pods("app=db"), 15, "db pods collected")


def test_node_without_heartbeat_goes_unknown_and_tainted(cluster: Cluster) -> None:
    """The node lifecycle controller (grace period 6 s here) as for a dead kubelet."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ghost = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "ghost", "labels": {"kubernetes.io/hostname": "ghost"}},
    }
    cluster.client.create("/api/v1/nodes", ghost)
    try:
        ready = {
            "type": "Ready",
            "status": "True",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        cluster.client.patch("/api/v1/nodes/ghost/status", {"status": {"conditions": [ready]}})

        def unknown() -> dict | None:  # type: ignore[type-arg]
            node = _node(cluster, "ghost")
            taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
            if ("node.kubernetes.io/unreachable", "NoExecute") in taints:
                return node
            return None

        victim = {
            "metadata": {"name": "on-ghost"},
            "spec": {
                "nodeName": "ghost",
                "containers": [{"name": "c", "image": "busybox:1.36"}],
                "tolerations": [
                    {
                        "key": "node.kubernetes.io/unreachable",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 1,
                    }
                ],
            },
        }
        cluster.client.create("/api/v1/namespaces/default/pods", victim)
        node = _wait(unknown, 15, "ghost Unknown and tainted")
        cond = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert (cond["status"], cond["reason"]) == ("Unknown", "NodeStatusUnknown")
        assert cond["message"] == "Kubelet stopped posting node status."
        assert {t["key"] for t in node["spec"]["taints"]} == {"node.kubernetes.io/unreachable"}
        rows = cluster.kubectl("1.33", "get", "nodes").stdout.splitlines()
        assert next(r for r in rows if r.startswith("ghost")).split()[1] == "NotReady"
        # tolerationSeconds ran out: the taint manager deleted it (graceful: no kubelet ends it).
        evicted = _wait(
            lambda: cluster.client.get("/api/v1/namespaces/default/pods/on-ghost")["metadata"].get(
                "deletionTimestamp"
            ),
            10,
            "taint eviction",
        )
        assert evicted
        # The live nodes kept heartbeating.
        assert all(_node(cluster, n)["status"]["conditions"][0]["status"] == "True" for n in NODES)
    finally:
        cluster.kubectl("1.33", "delete", "node", "ghost")
        # Bound to a node that is gone: PodGC force-deletes it; do it now to stay fast.
        cluster.client.delete("/api/v1/namespaces/default/pods/on-ghost", {"gracePeriodSeconds": 0})


def test_etcd_snapshot_restore_restores_api_state(tmp_path: Path) -> None:
    """State lives in etcd: a snapshot restored into a fresh data dir brings it back."""
    pki = tmp_path / "pki"
    write_kubeadm_pki(
        pki, apiserver_names=["cp1"], apiserver_ips=["127.0.0.1"], etcd_names=["cp1"], etcd_ips=[]
    )
    client_port, peer_port, metrics_port = (_free_port() for _ in range(3))
    env = {**os.environ, **module_env()}
    procs: list[subprocess.Popen[bytes]] = []
    tls = [
        f"--endpoints=https://127.0.0.1:{client_port}",
        f"--cacert={pki / 'etcd/ca.crt'}",
        f"--cert={pki / 'etcd/healthcheck-client.crt'}",
        f"--key={pki / 'etcd/healthcheck-client.key'}",
    ]

    def start(data_dir: Path) -> Client:
        log = (tmp_path / f"{data_dir.name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                _etcd_argv(data_dir, pki, client_port, peer_port, metrics_port),
                stdout=log,
                stderr=log,
            )
        )
        api_port = _free_port()
        procs.append(
            subprocess.Popen(
                _apiserver_argv(pki, api_port, client_port), stdout=log, stderr=log, env=env
            )
        )
        log.close()
        write_kubeconfig(
            tmp_path / "admin.conf",
            ca_cert=pki / "ca.crt",
            ca_key=pki / "ca.key",
            server=f"https://127.0.0.1:{api_port}",
            user="kubernetes-admin",
            groups=[ADMIN_GROUP],
        )
        client = Client.from_kubeconfig(tmp_path / "admin.conf")
        _wait(lambda: client.get("/api/v1/namespaces/kube-node-lease"), 20, "apiserver")
        return client

    def stop_all() -> None:
        while procs:
            _stop(procs.pop())

    try:
        client = start(tmp_path / "etcd-a")
        client.create("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "before"}})
        snapshot = tmp_path / "backup" / "snap.db"
        snapshot.parent.mkdir(mode=0o700)
        subprocess.run(
            ["etcdctl", *tls, "snapshot", "save", str(snapshot)],
            check=True,
            capture_output=True,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        client.create("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "after"}})
        stop_all()
        subprocess.run(
            [
                "etcdctl", "snapshot", "restore", str(snapshot),
                f"--data-dir={tmp_path / 'etcd-b'}", "--name=cp1",
                f"--initial-cluster=cp1=https://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=https://127.0.0.1:{peer_port}",
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "ETCDCTL_API": "3"},
        )  # fmt: skip
        client = start(tmp_path / "etcd-b")
        assert (
            client.get("/api/v1/namespaces/default/configmaps/before")["metadata"]["name"]
            == "before"
        )
        with pytest.raises(ApiStatusError) as info:
            client.get("/api/v1/namespaces/default/configmaps/after")
        assert info.value.code == 404
    finally:
        stop_all()
