"""A lab with several control planes: spec, joined etcd members, per-node files, leader election."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from nodeops.errors import LabError
from nodeops.lab import cluster, manifests
from nodeops.lab import inventory as lab_inventory
from nodeops.lab.sim import pki
from nodeops.lab.sim.kube_client import ApiStatusError
from nodeops.lab.sim.kube_flags import parse_flags
from nodeops.lab.sim.leaderelection import (
    ElectionConfig,
    LeaderElector,
    config_from_file,
    config_from_flags,
)
from nodeops.lab.spec import default_spec
from nodeops.lab.state import LabState, NodeState
from nodeops.node import CONTROL_PLANE, ETCD, WORKER

# ---- spec


def test_default_spec_has_one_control_plane_unless_asked() -> None:
    spec = default_spec("x", workers=1)
    assert [(n.name, n.os, n.roles) for n in spec.nodes] == [
        ("cp1", "ubuntu-22.04", (CONTROL_PLANE, ETCD)),
        ("worker1", "ubuntu-24.04", (WORKER,)),
    ]


def test_second_control_plane_is_debian_and_comes_before_the_workers() -> None:
    spec = default_spec("x", workers=1, worker_os=("rocky-9",), control_planes=2)
    assert [(n.name, n.os, n.roles) for n in spec.nodes] == [
        ("cp1", "ubuntu-22.04", (CONTROL_PLANE, ETCD)),
        ("cp2", "debian-12", (CONTROL_PLANE, ETCD)),
        ("worker1", "rocky-9", (WORKER,)),
    ]
    custom = default_spec("x", workers=0, control_planes=3, control_plane_os=("rocky-9",))
    assert [n.os for n in custom.nodes] == ["rocky-9"] * 3


@pytest.mark.parametrize("count", [0, -1])
def test_a_lab_needs_a_control_plane(count: int) -> None:
    with pytest.raises(LabError, match="control_planes must be 1 or more"):
        default_spec("x", control_planes=count)
    with pytest.raises(LabError, match="control_plane_os is empty"):
        default_spec("x", control_plane_os=())


# ---- manifests


def _command(doc: dict[str, Any]) -> list[str]:
    return [str(w) for w in doc["spec"]["containers"][0]["command"]]


def test_first_member_starts_a_new_cluster() -> None:
    command = _command(manifests.etcd_manifest("cp1", "10.0.0.11"))
    assert "--initial-cluster=cp1=https://10.0.0.11:2380" in command
    assert not any(w.startswith("--initial-cluster-state") for w in command)


def test_joining_member_lists_the_existing_ones_then_itself() -> None:
    command = _command(manifests.etcd_manifest("cp2", "10.0.0.12", members=[("cp1", "10.0.0.11")]))
    flags = parse_flags(command[1:])
    assert flags["initial-cluster"] == "cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380"
    assert flags["initial-cluster-state"] == "existing"
    assert flags["name"] == "cp2"
    assert flags["initial-advertise-peer-urls"] == "https://10.0.0.12:2380"
    assert flags["listen-client-urls"] == "https://127.0.0.1:2379,https://10.0.0.12:2379"
    # kubeadm writes the flags sorted by name (--initial-cluster before -state).
    names = [w.split("=", 1)[0] for w in command[1:]]
    assert names == sorted(names)


def test_second_control_plane_manifests() -> None:
    texts = manifests.control_plane_manifests(
        "cp2", "10.0.0.12", "v1.29.3", etcd_members=[("cp1", "10.0.0.11")]
    )
    assert sorted(texts) == [
        "etcd.yaml",
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    ]
    api = parse_flags(_command(yaml.safe_load(texts["kube-apiserver.yaml"]))[1:])
    assert api["advertise-address"] == "10.0.0.12"
    assert api["etcd-servers"] == "https://127.0.0.1:2379"  # its own stacked member
    for name in ("kube-controller-manager.yaml", "kube-scheduler.yaml"):
        doc = yaml.safe_load(texts[name])
        assert parse_flags(_command(doc)[1:])["leader-elect"] == "true"
        assert doc["spec"]["containers"][0]["image"].endswith(":v1.29.3")
    etcd = parse_flags(_command(yaml.safe_load(texts["etcd.yaml"]))[1:])
    assert etcd["initial-cluster-state"] == "existing"


def test_member_id_is_read_from_etcdctl_member_add() -> None:
    out = (
        "Member 5cbe4f9d1f4cd3d6 added to cluster 2d8e5e2b2c1b9a3f\n\n"
        'ETCD_NAME="cp2"\nETCD_INITIAL_CLUSTER_STATE="existing"\n'
    )
    assert cluster.etcd_member_id(out) == "5cbe4f9d1f4cd3d6"
    with pytest.raises(LabError, match="unexpected output"):
        cluster.etcd_member_id("Error: etcdserver: unhealthy cluster")


# ---- files of each node


#: What a running node records beyond its spec; none of it matters to the files.
_RUNNING = NodeState(
    name="",
    os="",
    roles=(),
    address="",
    netns="",
    veth="",
    holder_pid=1,
    holder_start=1,
    sshd_pid=1,
    sshd_start=1,
    host_key="ssh-ed25519 AAAA",
    host_key_fingerprint="SHA256:x",
)


def _state(tmp_path: Path) -> LabState:
    spec = default_spec("mcp", workers=1, control_planes=2)
    nodes = tuple(
        dataclasses.replace(
            _RUNNING, name=n.name, os=n.os, roles=n.roles, address=spec.address(n.name)
        )
        for n in spec.nodes
    )
    return LabState(
        spec=spec,
        nodes=nodes,
        state_dir=tmp_path,
        key_path=tmp_path / "id",
        known_hosts_path=tmp_path / "known_hosts",
        inventory_path=None,
        bridge="br",
        bridge_address=spec.bridge_address,
    )


def _by_path(files: list[Any]) -> dict[str, bytes]:
    return {f.path: f.data for f in files if not f.link and not f.mode & 0o040000}


def _server(conf: bytes) -> str:
    return str(yaml.safe_load(conf)["clusters"][0]["cluster"]["server"])


def test_each_control_plane_gets_its_own_certificates_from_the_shared_cas(tmp_path: Path) -> None:
    state = _state(tmp_path)
    cp1, cp2, worker = (n.address for n in state.nodes)
    cp_files, per_node = cluster._control_plane_files(state, "1.29.3", tmp_path / "work")
    assert sorted(cp_files) == ["cp1", "cp2"]
    one, two = _by_path(cp_files["cp1"]), _by_path(cp_files["cp2"])
    for shared in pki.SHARED_FILES:
        assert one[f"/etc/kubernetes/pki/{shared}"] == two[f"/etc/kubernetes/pki/{shared}"]
    for own in ("apiserver.crt", "apiserver.key", "etcd/peer.crt", "etcd/server.crt"):
        assert one[f"/etc/kubernetes/pki/{own}"] != two[f"/etc/kubernetes/pki/{own}"]
    ca = x509.load_pem_x509_certificate(two["/etc/kubernetes/pki/ca.crt"])
    api = x509.load_pem_x509_certificate(two["/etc/kubernetes/pki/apiserver.crt"])
    assert api.issuer == ca.subject
    ips = {
        str(ip)
        for ip in api.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.IPAddress)
    }
    assert {cp2, cp1} <= ips  # its own address and the controlPlaneEndpoint's
    peer = x509.load_pem_x509_certificate(two["/etc/kubernetes/pki/etcd/peer.crt"])
    assert peer.subject.rfc4514_string() == "CN=cp2"

    # admin.conf goes to the controlPlaneEndpoint (cp1), controller-manager and scheduler
    # to their own API server; super-admin.conf exists only where `kubeadm init` ran.
    assert _server(two["/etc/kubernetes/admin.conf"]) == f"https://{cp1}:6443"
    assert _server(two["/etc/kubernetes/controller-manager.conf"]) == f"https://{cp2}:6443"
    assert _server(two["/etc/kubernetes/scheduler.conf"]) == f"https://{cp2}:6443"
    assert "/etc/kubernetes/super-admin.conf" in one
    assert "/etc/kubernetes/super-admin.conf" not in two
    etcd = yaml.safe_load(two["/etc/kubernetes/manifests/etcd.yaml"])
    assert f"--initial-cluster=cp1=https://{cp1}:2380,cp2=https://{cp2}:2380" in _command(etcd)

    # The joined control plane's kubelet bootstrapped like any joined node; a worker gets
    # only the CA.
    kubelet = yaml.safe_load(_by_path(per_node["cp2"])["/etc/kubernetes/kubelet.conf"])
    assert kubelet["current-context"] == "default-context"
    assert kubelet["clusters"][0]["cluster"]["server"] == f"https://{cp1}:6443"
    worker_files = _by_path(per_node["worker1"])
    assert "/etc/kubernetes/pki/ca.crt" in worker_files
    assert "/etc/kubernetes/pki/ca.crt" not in _by_path(per_node["cp2"])
    assert worker  # the worker has an address of its own


def test_inventory_lists_both_control_planes(tmp_path: Path) -> None:
    text = lab_inventory.render(_state(tmp_path))
    nodes = yaml.safe_load(text)["nodes"]
    assert list(nodes) == ["cp1", "cp2", "worker1"]
    assert nodes["cp2"]["roles"] == ["control-plane", "etcd"]


# ---- leader election


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime.datetime:
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            seconds=self.now
        )


class Leases:
    """An API server's lease collection: create conflicts, PUT checks resourceVersion."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.writes = 0

    def _stored(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.writes += 1
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.version)}}
        return obj

    def get(self, path: str, **params: str) -> dict[str, Any]:
        if path not in self.objects:
            raise ApiStatusError(404, {"reason": "NotFound"})
        return self.objects[path]

    def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        full = f"{path}/{obj['metadata']['name']}"
        if full in self.objects:
            raise ApiStatusError(409, {"reason": "AlreadyExists"})
        self.objects[full] = self._stored(obj)
        return self.objects[full]

    def update(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        current = self.objects[path]
        if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiStatusError(409, {"reason": "Conflict"})
        self.objects[path] = self._stored(obj)
        return self.objects[path]


LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager"
CONFIG = ElectionConfig(name="kube-controller-manager")


def _pair() -> tuple[Leases, Clock, LeaderElector, LeaderElector]:
    api, clock = Leases(), Clock()
    one = LeaderElector(api, CONFIG, identity="cp1_a", clock=clock, wall=clock.wall)
    two = LeaderElector(api, CONFIG, identity="cp2_b", clock=clock, wall=clock.wall)
    return api, clock, one, two


def test_only_one_of_two_candidates_leads() -> None:
    api, clock, one, two = _pair()
    assert one.leading() is True
    assert two.leading() is False
    spec = api.objects[LEASE]["spec"]
    assert spec["holderIdentity"] == "cp1_a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    for _ in range(20):  # 40 s of renewals every retry period
        clock.now += 2
        assert one.leading() is True
        assert two.leading() is False
    assert api.objects[LEASE]["spec"]["holderIdentity"] == "cp1_a"


def test_a_candidate_does_not_retry_before_the_retry_period() -> None:
    api, clock, one, _ = _pair()
    one.leading()
    writes = api.writes
    clock.now += 1
    assert one.leading() is True
    assert api.writes == writes
    clock.now += 1
    one.leading()
    assert api.writes == writes + 1


def test_a_silent_holder_loses_the_lease_after_its_duration() -> None:
    api, clock, one, two = _pair()
    one.leading()
    two.leading()
    clock.now += 14  # cp1 stopped renewing: its record has not changed for 14 s
    assert two.leading() is False
    clock.now += 2
    assert two.leading() is True
    spec = api.objects[LEASE]["spec"]
    assert spec["holderIdentity"] == "cp2_b"
    assert spec["leaseTransitions"] == 1
    # The old holder, back, sees someone else renewing and has lost leadership.
    assert one.leading() is False


def test_released_lease_is_taken_at_the_next_retry() -> None:
    api, clock, one, two = _pair()
    one.leading()
    two.leading()
    one.release()
    spec = api.objects[LEASE]["spec"]
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1
    clock.now += 2
    assert two.leading() is True
    assert api.objects[LEASE]["spec"]["holderIdentity"] == "cp2_b"


def test_a_holder_that_cannot_renew_stops_leading_after_the_renew_deadline() -> None:
    api, clock, one, _ = _pair()
    assert one.leading() is True

    def down(path: str, **params: str) -> dict[str, Any]:
        raise ConnectionRefusedError("connection refused")

    api.get = down  # type: ignore[method-assign]
    clock.now += 8
    assert one.leading() is True  # still within the renew deadline
    clock.now += 2.5
    assert one.leading() is False


def test_conflicting_writes_do_not_make_two_leaders() -> None:
    api, clock, one, two = _pair()
    one.leading()
    clock.now += 20  # both see an expired lease and try to take it with the same version
    stale = dict(api.objects[LEASE])
    original_get = api.get
    api.get = lambda path, **params: stale  # type: ignore[method-assign]
    results = [one.leading(), two.leading()]
    api.get = original_get  # type: ignore[method-assign]
    assert results.count(True) == 1


def test_disabled_election_always_leads_without_a_lease() -> None:
    api = Leases()
    elector = LeaderElector(api, ElectionConfig(enabled=False, name="x"))
    assert elector.leading() is True
    assert api.objects == {}


def test_election_settings_from_flags_and_files() -> None:
    flags = parse_flags(
        [
            "--leader-elect=true",
            "--leader-elect-lease-duration=30s",
            "--leader-elect-retry-period=500ms",
        ]
    )
    cfg = config_from_flags(flags, "kube-controller-manager")
    assert (cfg.enabled, cfg.name, cfg.namespace) == (
        True,
        "kube-controller-manager",
        "kube-system",
    )
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (30.0, 10.0, 0.5)
    assert config_from_flags({"leader-elect": "false"}, "kube-scheduler").enabled is False
    assert config_from_file({"leaderElect": False}, "kube-scheduler").enabled is False
    assert config_from_file(None, "kube-scheduler") == ElectionConfig(name="kube-scheduler")


def test_scheduler_reads_leader_election_from_its_configuration(tmp_path: Path) -> None:
    from nodeops.lab.sim.scheduler import read_election

    path = tmp_path / "s.yaml"
    path.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
        "leaderElection:\n  leaderElect: true\n  resourceName: my-scheduler\n"
    )
    cfg = read_election(str(path))
    assert (cfg.enabled, cfg.name) == (True, "my-scheduler")
