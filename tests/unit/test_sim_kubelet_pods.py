"""Static pods of the simulated kubelet: manifest discovery, mirror pods, container processes."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from nodeops.lab import manifests
from nodeops.lab.sim.kubelet import images, staticpods

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
SEEN = datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC)

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: static-web
  labels: {role: myrole}
spec:
  containers:
  - name: web
    image: nginx:1.25
"""


def _write(d: Path, name: str, text: str) -> Path:
    p = d / name
    p.write_text(text)
    return p


def test_scan_reads_non_dot_files_and_skips_what_does_not_parse(tmp_path: Path) -> None:
    _write(tmp_path, "web.yaml", POD)
    _write(tmp_path, ".web.yaml.swp", POD.replace("static-web", "hidden"))
    _write(tmp_path, "broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: [\n")
    _write(tmp_path, "notapod.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    _write(tmp_path, "empty.yaml", "")
    (tmp_path / "subdir").mkdir()
    seen: dict[str, tuple[str, datetime.datetime]] = {}
    result = staticpods.scan(tmp_path, "Worker1", seen)
    assert [p.key for p in result.pods] == ["default/static-web-worker1"]
    skipped = dict(result.skipped)
    assert set(skipped) == {
        str(tmp_path / n) for n in ("broken.yaml", "notapod.yaml", "empty.yaml", "subdir")
    }
    assert "couldn't parse as pod" in skipped[str(tmp_path / "broken.yaml")]
    assert skipped[str(tmp_path / "broken.yaml")].endswith("please check config file")
    assert skipped[str(tmp_path / "subdir")] == "Not recursing into manifest path"


def test_static_pod_defaults_and_mirror_pod(tmp_path: Path) -> None:
    path = _write(tmp_path, "web.yaml", POD)
    sp = staticpods.read_static_pod(path, "worker1", SEEN)
    meta = sp.pod["metadata"]
    assert (sp.name, sp.namespace) == ("static-web-worker1", "default")
    assert meta["uid"] == sp.hash and len(sp.hash) == 32
    assert meta["annotations"] == {
        "kubernetes.io/config.hash": sp.hash,
        "kubernetes.io/config.seen": "2026-01-02T03:04:05.123456Z",
        "kubernetes.io/config.source": "file",
    }
    assert sp.pod["spec"]["nodeName"] == "worker1"
    assert {"operator": "Exists", "effect": "NoExecute"} in sp.pod["spec"]["tolerations"]

    mirror = staticpods.mirror_pod(sp, "node-uid-1")
    assert staticpods.is_mirror_pod(mirror)
    assert mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"] == sp.hash
    assert "uid" not in mirror["metadata"]  # the API server gives the mirror its own UID
    assert mirror["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "worker1", "uid": "node-uid-1",
         "controller": True}
    ]  # fmt: skip
    assert mirror["metadata"]["labels"] == {"role": "myrole"}
    assert not staticpods.is_mirror_pod(sp.pod)


def test_hash_follows_content_node_and_path(tmp_path: Path) -> None:
    a = staticpods.read_static_pod(_write(tmp_path, "a.yaml", POD), "n1", SEEN)
    same = staticpods.read_static_pod(tmp_path / "a.yaml", "n1", SEEN + datetime.timedelta(1))
    other_node = staticpods.read_static_pod(tmp_path / "a.yaml", "n2", SEEN)
    changed = staticpods.read_static_pod(
        _write(tmp_path, "a.yaml", POD.replace("1.25", "1.26")), "n1", SEEN
    )
    assert a.hash == same.hash
    assert len({a.hash, other_node.hash, changed.hash}) == 3


def test_seen_time_is_kept_until_the_file_changes(tmp_path: Path) -> None:
    _write(tmp_path, "web.yaml", POD)
    seen: dict[str, tuple[str, datetime.datetime]] = {}
    first = staticpods.scan(tmp_path, "n", seen).pods[0]
    again = staticpods.scan(tmp_path, "n", seen).pods[0]
    ann = staticpods.CONFIG_SEEN
    assert again.pod["metadata"]["annotations"][ann] == first.pod["metadata"]["annotations"][ann]
    (tmp_path / "web.yaml").unlink()
    assert staticpods.scan(tmp_path, "n", seen).pods == ()
    assert seen == {}


def test_namespace_from_manifest_and_rfc3339nano() -> None:
    assert staticpods.static_pod_name("etcd", "CP1") == "etcd-cp1"
    t = datetime.datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=datetime.UTC)
    assert staticpods.rfc3339nano(t) == "2026-01-02T03:04:05.12Z"
    assert staticpods.rfc3339nano(t.replace(microsecond=0)) == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(
    ("image", "repository", "name", "tag"),
    [
        ("registry.k8s.io/kube-apiserver:v1.29.3", "registry.k8s.io/kube-apiserver",
         "kube-apiserver", "v1.29.3"),
        ("localhost:5000/etcd", "localhost:5000/etcd", "etcd", "latest"),
        ("nginx", "nginx", "nginx", "latest"),
        ("registry.k8s.io/etcd:3.5.10-0@sha256:abc", "registry.k8s.io/etcd", "etcd", "3.5.10-0"),
    ],
)  # fmt: skip
def test_parse_image(image: str, repository: str, name: str, tag: str) -> None:
    ref = images.parse_image(image)
    assert (ref.repository, ref.name, ref.tag) == (repository, name, tag)


def test_control_plane_images_run_their_simulations() -> None:
    address = "10.0.0.11"
    api = manifests.apiserver_manifest(address, "v1.29.3")["spec"]["containers"][0]
    proc = images.process_for("kube-system/kube-apiserver-cp1", api)
    assert proc.argv[1:4] == ("-S", "-m", "nodeops.lab.sim.apiserver")
    assert proc.argv[4] == f"--advertise-address={address}"  # the command minus its first word
    assert proc.argv[-1] == "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key"
    assert proc.env[images.VERSION_ENV] == "v1.29.3"
    assert "PYTHONPATH" in proc.env

    for manifest, module in (
        (manifests.controller_manager_manifest("v1.30.1"), "nodeops.lab.sim.controller_manager"),
        (manifests.scheduler_manifest("v1.30.1"), "nodeops.lab.sim.scheduler"),
    ):
        proc = images.process_for("ns/p", manifest["spec"]["containers"][0])
        assert proc.argv[3] == module
        assert proc.env[images.VERSION_ENV] == "v1.30.1"

    etcd = manifests.etcd_manifest("cp1", address)["spec"]["containers"][0]
    proc = images.process_for("kube-system/etcd-cp1", etcd)
    assert proc.argv[0] == "/usr/bin/etcd"
    assert "--name=cp1" in proc.argv and "etcd" not in proc.argv
    assert not proc.placeholder


def test_other_images_run_a_placeholder() -> None:
    c = {
        "name": "web",
        "image": "nginx:1.25",
        "command": ["nginx"],
        "args": ["-g", "daemon off;"],
        "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {}}}],
    }
    proc = images.process_for("default/web-1", c)
    assert proc.argv[1:4] == ("-S", "-m", images.PLACEHOLDER_MODULE)
    assert proc.argv[4:] == ("default/web-1/web", "nginx:1.25", "nginx", "-g", "daemon off;")
    assert proc.env["A"] == "1" and "B" not in proc.env
    assert proc.placeholder
    assert images.COMPLETES_ENV not in proc.env
    assert images.process_for("default/job-1", c, completes=True).env[images.COMPLETES_ENV] == "1"


def test_host_path_binds_only_where_paths_differ() -> None:
    pod = manifests.etcd_manifest("cp1", "10.0.0.11")
    container = pod["spec"]["containers"][0]
    assert images.host_path_binds(pod, container) == []
    assert images.wrap_binds(("etcd",), []) == ("etcd",)
    # An etcd restore points the etcd-data volume at a new directory; the container path stays.
    for v in pod["spec"]["volumes"]:
        if v["name"] == "etcd-data":
            v["hostPath"]["path"] = "/var/lib/etcd-restored"
    binds = images.host_path_binds(pod, container)
    assert binds == [("/var/lib/etcd-restored", "/var/lib/etcd")]
    argv = images.wrap_binds(("/usr/bin/etcd", "--data-dir=/var/lib/etcd"), binds)
    assert argv[:5] == ("unshare", "--mount", "--propagation", "private", "--")
    assert argv[-4:] == ("/var/lib/etcd-restored", "/var/lib/etcd", "/usr/bin/etcd",
                         "--data-dir=/var/lib/etcd")  # fmt: skip


def test_image_ids_are_stable_digests() -> None:
    a = images.image_id("registry.k8s.io/pause:3.9")
    assert a == images.image_id("registry.k8s.io/pause:3.9")
    assert a.startswith("registry.k8s.io/pause@sha256:") and len(a.split(":")[-1]) == 64
    assert images.image_id("registry.k8s.io/x/y@sha256:00") == "registry.k8s.io/x/y@sha256:00"
    assert images.image_id("nginx:1.25").startswith("docker.io/library/nginx@sha256:")


@pytest.mark.parametrize(
    ("image", "normalized"),
    [
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("localhost/x:1", "localhost/x:1"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ],
)
def test_normalized_image_names(image: str, normalized: str) -> None:
    assert images.normalize_image(image) == normalized


@pytest.mark.parametrize(
    "component", ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
)
def test_manifests_match_kubeadm_1_29(component: str) -> None:
    path = FIXTURES / "manifests" / f"v1.29.0-{component}.yaml"
    if not path.exists():
        pytest.skip(f"fixture {path} not present")
    text = path.read_text()
    real = yaml.safe_load(text.replace("172.30.1.2", "10.0.0.11").replace("controlplane", "cp1"))
    ours = {
        "etcd": manifests.etcd_manifest("cp1", "10.0.0.11"),
        "kube-apiserver": manifests.apiserver_manifest("10.0.0.11", "v1.29.0"),
        "kube-controller-manager": manifests.controller_manager_manifest("v1.29.0"),
        "kube-scheduler": manifests.scheduler_manifest("v1.29.0"),
    }[component]
    # That cluster had its CPU requests lowered; kubeadm's defaults are 250m/200m/100m.
    for pod in (real, ours):
        pod["spec"]["containers"][0]["resources"]["requests"].pop("cpu")
    assert ours == real
    assert yaml.safe_load(manifests.dump(ours)) == ours


def test_kubeadm_flags_env_and_kubelet_config() -> None:
    assert manifests.kubeadm_flags_env() == (
        'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint='
        "unix:///var/run/containerd/containerd.sock --pod-infra-container-image="
        'registry.k8s.io/pause:3.9"\n'
    )
    config = manifests.kubelet_configuration()
    assert config["staticPodPath"] == "/etc/kubernetes/manifests"
    assert config["kind"] == "KubeletConfiguration"


def test_scan_parses_only_changed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "web.yaml", POD)
    _write(tmp_path, "bad.yaml", "kind: Pod\nmetadata: [\n")
    reads: list[str] = []
    real = staticpods.read_static_pod

    def counting(path: Path, node: str, seen: datetime.datetime) -> staticpods.StaticPod:
        reads.append(path.name)
        return real(path, node, seen)

    monkeypatch.setattr(staticpods, "read_static_pod", counting)
    seen: dict[str, tuple[str, datetime.datetime]] = {}
    cache: staticpods.ParseCache = {}
    first = staticpods.scan(tmp_path, "n", seen, cache)
    again = staticpods.scan(tmp_path, "n", seen, cache)
    assert sorted(reads) == ["bad.yaml", "web.yaml"]
    assert again.pods == first.pods and again.skipped == first.skipped
    _write(tmp_path, "web.yaml", POD.replace("1.25", "1.26.1"))
    changed = staticpods.scan(tmp_path, "n", seen, cache)
    assert reads[-1] == "web.yaml" and changed.pods[0].hash != first.pods[0].hash
    (tmp_path / "bad.yaml").unlink()
    staticpods.scan(tmp_path, "n", seen, cache)
    assert set(cache) == {str(tmp_path / "web.yaml")}


def test_duplicate_static_pod_names_first_file_wins(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", POD)
    _write(tmp_path, "b.yaml", POD.replace("1.25", "1.26"))  # same name, e.g. an editor backup
    result = staticpods.scan(tmp_path, "n", {})
    assert [p.path for p in result.pods] == [str(tmp_path / "a.yaml")]
    assert [p.path for p in result.duplicates] == [str(tmp_path / "b.yaml")]
    assert result.skipped == ()
