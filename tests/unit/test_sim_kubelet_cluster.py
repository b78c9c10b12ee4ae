"""Pure parts of the lab cluster bring-up: the file bundle written into nodes, node reports."""

from __future__ import annotations

import io
import tarfile

import yaml

from nodeops.lab import cluster, manifests


def test_file_bundle_keeps_modes_and_directories() -> None:
    data = cluster._tar(
        [
            cluster._dir("/var/lib/etcd", 0o700),
            cluster._File("/etc/kubernetes/admin.conf", b"x: 1\n", 0o600),
            cluster._File("/etc/kubernetes/pki/ca.crt", b"PEM", 0o644),
        ]
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["var/lib/etcd"].isdir() and members["var/lib/etcd"].mode == 0o700
        conf = members["etc/kubernetes/admin.conf"]
        assert conf.isfile() and conf.mode == 0o600 and (conf.uid, conf.gid) == (0, 0)
        extracted = tar.extractfile(conf)
        assert extracted is not None and extracted.read() == b"x: 1\n"


def test_node_report_from_an_api_node() -> None:
    node = {
        "metadata": {
            "name": "cp1",
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/os": "linux"},
        },
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [
                {"type": "InternalIP", "address": "10.213.0.11"},
                {"type": "Hostname", "address": "cp1"},
            ],
            "nodeInfo": {"kubeletVersion": "v1.29.3"},
        },
    }
    assert cluster._report(node) == cluster.NodeReport(
        name="cp1",
        ready=True,
        kubelet_version="v1.29.3",
        roles=("control-plane",),
        internal_ip="10.213.0.11",
    )
    node["status"]["conditions"][1]["status"] = "Unknown"
    assert cluster._report(node).ready is False


def test_sample_workloads_cover_what_a_drain_meets() -> None:
    objs = {(o["kind"], o["metadata"]["name"]): o for _, o in manifests.sample_workloads()}
    assert set(objs) == {
        ("Deployment", "web"),
        ("PodDisruptionBudget", "web"),
        ("DaemonSet", "node-agent"),
        ("Pod", "standalone"),
        ("Deployment", "cache"),
    }
    assert objs[("Deployment", "web")]["spec"]["replicas"] == 3
    assert objs[("PodDisruptionBudget", "web")]["spec"]["minAvailable"] == 2
    assert "ownerReferences" not in objs[("Pod", "standalone")]["metadata"]
    cache = objs[("Deployment", "cache")]["spec"]["template"]["spec"]
    assert cache["volumes"] == [{"name": "data", "emptyDir": {}}]


def test_kubeadm_configmap_payloads() -> None:
    conf = yaml.safe_load(manifests.dump(manifests.cluster_configuration("v1.29.3", "10.213.0.11")))
    assert conf["kind"] == "ClusterConfiguration"
    assert conf["kubernetesVersion"] == "v1.29.3"
    assert conf["etcd"] == {"local": {"dataDir": "/var/lib/etcd"}}
    info = manifests.cluster_info_kubeconfig("Q0E=", "https://10.213.0.11:6443")
    assert info["clusters"][0]["cluster"]["server"] == "https://10.213.0.11:6443"
    assert info["users"] is None


def test_kubelet_kubeconfig_points_at_the_client_certificate_file() -> None:
    embedded = yaml.safe_dump(
        {
            "clusters": [{"cluster": {"server": "https://10.0.0.11:6443"}, "name": "kubernetes"}],
            "users": [
                {
                    "name": "system:node:w1",
                    "user": {"client-certificate-data": "Q0VSVAo=", "client-key-data": "S0VZCg=="},
                }
            ],
        }
    )
    text, pem = cluster.kubelet_kubeconfig(embedded, "w1", joined=True)
    assert pem == b"CERT\nKEY\n"
    doc = yaml.safe_load(text)
    assert doc["current-context"] == "default-context"
    assert doc["users"][0]["user"]["client-key"] == cluster.KUBELET_CLIENT
    assert doc["clusters"][0]["cluster"]["server"] == "https://10.0.0.11:6443"
    text, _ = cluster.kubelet_kubeconfig(embedded, "cp1", joined=False)
    assert yaml.safe_load(text)["current-context"] == "system:node:cp1@kubernetes"


def test_addons_are_kubeadms() -> None:
    objs = {o["metadata"]["name"]: o for _, o in manifests.addons("v1.29.3")}
    proxy = objs["kube-proxy"]["spec"]["template"]["spec"]
    assert proxy["containers"][0]["image"] == "registry.k8s.io/kube-proxy:v1.29.3"
    assert proxy["tolerations"] == [{"operator": "Exists"}]
    assert objs["coredns"]["spec"]["replicas"] == 2
