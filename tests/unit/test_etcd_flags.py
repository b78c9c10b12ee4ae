"""etcd manifest -> EtcdMember -> etcdctl connection, on real kubeadm manifests of several eras."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeops.etcd import (
    EtcdManifestError,
    check_restore_inputs,
    choose_endpoint,
    etcdctl_connection,
    parse_command_flags,
    parse_etcd_manifest,
    parse_etcd_version,
    parse_tool_version,
    tools_for,
)

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "manifests"
PKI = "/etc/kubernetes/pki/etcd"


def fixture_text(name: str) -> str:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"fixture {path} is absent (shared fixtures not checked out)")
    return path.read_text()


# Each era: (file, name, endpoint, cacert, cert, key, data dir host, initial cluster, version,
# ETCDCTL_API=3 env, offline tool, bump available)
ERAS = [
    (
        "v1.8.1-etcd.yaml",
        None,
        "http://127.0.0.1:2379",
        None,
        None,
        None,
        "/var/lib/etcd",
        (),
        (3, 0, 17),
        True,
        "etcdctl",
        False,
    ),
    (
        "v1.16.2-etcd.yaml",
        "master1",
        "https://127.0.0.1:2379",
        f"{PKI}/ca.crt",
        f"{PKI}/healthcheck-client.crt",
        f"{PKI}/healthcheck-client.key",
        "/var/lib/etcd",
        (("master1", "https://192.168.28.10:2380"),),
        (3, 3, 15),
        True,
        "etcdctl",
        False,
    ),
    (
        "v1.22.17-etcd.yaml",
        "ip-10-0-0-75.ap-south-1.compute.internal",
        "https://127.0.0.1:2379",
        f"{PKI}/ca.crt",
        f"{PKI}/healthcheck-client.crt",
        f"{PKI}/healthcheck-client.key",
        "/var/lib/etcd",
        (("ip-10-0-0-75.ap-south-1.compute.internal", "https://10.0.0.75:2380"),),
        (3, 5, 6),
        False,
        "etcdutl",
        False,
    ),
    (
        "v1.29.0-etcd.yaml",
        "controlplane",
        "https://127.0.0.1:2379",
        f"{PKI}/ca.crt",
        f"{PKI}/healthcheck-client.crt",
        f"{PKI}/healthcheck-client.key",
        "/var/lib/etcd",
        (("controlplane", "https://172.30.1.2:2380"),),
        (3, 5, 10),
        False,
        "etcdutl",
        True,
    ),
]


@pytest.mark.parametrize(
    (
        "fixture",
        "name",
        "endpoint",
        "cacert",
        "cert",
        "key",
        "data_host",
        "cluster",
        "version",
        "api_env",
        "offline",
        "bump",
    ),
    ERAS,
    ids=[era[0] for era in ERAS],
)
def test_fixture_member_and_connection(
    fixture: str,
    name: str | None,
    endpoint: str,
    cacert: str | None,
    cert: str | None,
    key: str | None,
    data_host: str,
    cluster: tuple[tuple[str, str], ...],
    version: tuple[int, int, int],
    api_env: bool,
    offline: str,
    bump: bool,
) -> None:
    member = parse_etcd_manifest(fixture_text(fixture))
    assert member.name == name
    assert member.data_dir == "/var/lib/etcd"
    assert member.data_dir_host == data_host
    assert member.initial_cluster == cluster
    assert member.version == version
    assert not member.joined  # none of the shared fixtures is a joined HA member
    args = etcdctl_connection(member)
    assert (args.endpoint, args.cacert, args.cert, args.key) == (endpoint, cacert, cert, key)
    assert args.api_v3_env is api_env
    assert args.env == ({"ETCDCTL_API": "3"} if api_env else {})
    tools = tools_for(member.version)
    assert (tools.offline, tools.bump_revision) == (offline, bump)


def test_fixture_server_pair_when_healthcheck_is_not_wanted() -> None:
    member = parse_etcd_manifest(fixture_text("v1.29.0-etcd.yaml"))
    args = etcdctl_connection(member, healthcheck=False)
    assert (args.cert, args.key, args.pair) == (f"{PKI}/server.crt", f"{PKI}/server.key", "server")
    assert member.initial_advertise_peer_urls == ("https://172.30.1.2:2380",)
    assert member.listen_client_urls == ("https://127.0.0.1:2379", "https://172.30.1.2:2379")
    assert member.data_volume == "etcd-data"
    assert member.client_cert_auth


def test_fixture_v1_8_volume_is_named_etcd_and_restore_is_refused_without_name() -> None:
    member = parse_etcd_manifest(fixture_text("v1.8.1-etcd.yaml"))
    assert member.data_volume == "etcd"
    assert etcdctl_connection(member).pair == "none"
    problems = check_restore_inputs(member)
    assert any("no --name" in p for p in problems)


def test_fixture_single_members_pass_restore_checks() -> None:
    for name in ("v1.16.2-etcd.yaml", "v1.22.17-etcd.yaml", "v1.29.0-etcd.yaml"):
        assert check_restore_inputs(parse_etcd_manifest(fixture_text(name))) == []


# A control plane that joined with `kubeadm join --control-plane` (kubeadm 1.2x shape).
JOINED_HA = """\
apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.0.12:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://10.0.0.12:2380
    - --initial-cluster=cp2=https://10.0.0.12:2380,cp1=https://10.0.0.11:2380
    - --initial-cluster-state=existing
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.12:2379
    - --listen-peer-urls=https://10.0.0.12:2380
    - --name=cp2
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:3.5.9-0
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  volumes:
  - hostPath: {path: /etc/kubernetes/pki/etcd, type: DirectoryOrCreate}
    name: etcd-certs
  - hostPath: {path: /var/lib/etcd, type: DirectoryOrCreate}
    name: etcd-data
"""


def test_joined_ha_member() -> None:
    member = parse_etcd_manifest(JOINED_HA)
    assert member.joined
    assert member.name == "cp2"
    assert member.cluster_names == ("cp2", "cp1")
    args = etcdctl_connection(member)
    assert args.endpoint == "https://127.0.0.1:2379"
    assert args.cert == f"{PKI}/healthcheck-client.crt"
    # A single member of a multi-member cluster is only restored as part of the whole cluster.
    problems = check_restore_inputs(member)
    assert len(problems) == 1 and "2 members" in problems[0]
    assert check_restore_inputs(member, whole_cluster=True) == []
    three = [
        ("cp1", "https://10.0.0.11:2380"),
        ("cp2", "https://10.0.0.12:2380"),
        ("cp3", "https://10.0.0.13:2380"),
    ]
    assert check_restore_inputs(member, initial_cluster=three, whole_cluster=True) == []


def test_name_missing_from_initial_cluster_is_refused() -> None:
    text = JOINED_HA.replace("--name=cp2", "--name=cp9")
    problems = check_restore_inputs(parse_etcd_manifest(text), whole_cluster=True)
    assert any("'cp9' is not in --initial-cluster" in p for p in problems)


def test_peer_url_mismatch_is_refused() -> None:
    text = JOINED_HA.replace(
        "--initial-advertise-peer-urls=https://10.0.0.12:2380",
        "--initial-advertise-peer-urls=https://10.9.9.9:2380",
    )
    problems = check_restore_inputs(parse_etcd_manifest(text), whole_cluster=True)
    assert any("--initial-advertise-peer-urls is" in p for p in problems)


# kubeadm v1.10-v1.15: the liveness probe runs etcdctl with the healthcheck-client pair, and a
# custom certificates dir (ClusterConfiguration certificatesDir) mounted from elsewhere.
V1_10_EXEC_PROBE = """\
apiVersion: v1
kind: Pod
metadata: {name: etcd, namespace: kube-system}
spec:
  hostNetwork: true
  containers:
  - name: etcd
    image: k8s.gcr.io/etcd-amd64:3.1.12
    command:
    - etcd
    - --listen-client-urls=https://127.0.0.1:2379
    - --advertise-client-urls=https://127.0.0.1:2379
    - --data-dir=/var/lib/etcd
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --client-cert-auth=true
    - --name=m1
    - --initial-advertise-peer-urls=https://127.0.0.1:2380
    - --initial-cluster=m1=https://127.0.0.1:2380
    livenessProbe:
      exec:
        command:
        - /bin/sh
        - -ec
        - ETCDCTL_API=3 etcdctl --endpoints=https://[127.0.0.1]:2379
          --cacert=/etc/kubernetes/pki/etcd/ca.crt
          --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt
          --key=/etc/kubernetes/pki/etcd/healthcheck-client.key get foo
    volumeMounts:
    - {mountPath: /var/lib/etcd, name: etcd-data}
    - {mountPath: /etc/kubernetes/pki/etcd, name: etcd-certs}
  volumes:
  - {name: etcd-data, hostPath: {path: /data/etcd, type: DirectoryOrCreate}}
  - {name: etcd-certs, hostPath: {path: /srv/pki/etcd, type: DirectoryOrCreate}}
"""


def test_exec_probe_era_names_the_healthcheck_pair_and_paths_map_to_the_host() -> None:
    member = parse_etcd_manifest(V1_10_EXEC_PROBE)
    assert member.data_dir_host == "/data/etcd"
    args = etcdctl_connection(member)
    assert args.api_v3_env  # etcd 3.1: etcdctl defaults to v2
    assert args.cacert == "/srv/pki/etcd/ca.crt"
    assert args.cert == "/srv/pki/etcd/healthcheck-client.crt"
    assert args.key == "/srv/pki/etcd/healthcheck-client.key"
    server = etcdctl_connection(member, healthcheck=False)
    assert (server.cert, server.key) == ("/srv/pki/etcd/server.crt", "/srv/pki/etcd/server.key")


# Hand-written: `--flag value` pairs, args instead of command, a data dir below the mount,
# a subPath, a wildcard listener, a foreign PKI layout (no healthcheck pair).
OLD_STYLE = """\
apiVersion: v1
kind: Pod
metadata: {name: etcd-m0}
spec:
  containers:
  - name: etcd-server
    image: quay.io/coreos/etcd:v3.2.24
    command: [/usr/local/bin/etcd]
    args:
    - --name
    - m0
    - --data-dir
    - /var/lib/etcd/data
    - --listen-client-urls
    - https://0.0.0.0:4001
    - --advertise-client-urls=https://m0.example:4001
    - --cert-file=/certs/etcd.pem
    - --key-file=/certs/etcd-key.pem
    - --trusted-ca-file=/ca/ca.pem
    - --initial-advertise-peer-urls
    - https://m0.example:2380
    - --initial-cluster
    - m0=https://m0.example:2380
    - --client-cert-auth
    volumeMounts:
    - {mountPath: /var/lib/etcd, name: data, subPath: cluster-a}
    - {mountPath: /certs, name: certs}
    - {mountPath: /ca, name: configmap-ca}
  volumes:
  - {name: data, hostPath: {path: /mnt/disk1}}
  - {name: certs, hostPath: {path: /etc/etcd/tls}}
  - {name: configmap-ca, configMap: {name: ca}}
"""


def test_old_style_flags_subpath_wildcard_and_foreign_layout() -> None:
    member = parse_etcd_manifest(OLD_STYLE)
    assert member.name == "m0"
    assert member.client_cert_auth
    assert member.data_dir == "/var/lib/etcd/data"
    assert member.data_dir_host == "/mnt/disk1/cluster-a/data"
    assert member.initial_cluster == (("m0", "https://m0.example:2380"),)
    args = etcdctl_connection(member)
    assert args.endpoint == "https://127.0.0.1:4001"
    assert args.pair == "server"
    assert (args.cert, args.key) == ("/etc/etcd/tls/etcd.pem", "/etc/etcd/tls/etcd-key.pem")
    # The CA comes from a configMap volume: no host path, so the container path is kept.
    assert args.cacert == "/ca/ca.pem"


def test_parse_command_flags_forms() -> None:
    flags = parse_command_flags(
        ["etcd", "--a=1", "--b", "2", "--c", "--d=x=y", "-e=3", "--a=4", "stray", "--f"]
    )
    assert flags == {"a": "4", "b": "2", "c": "true", "d": "x=y", "e": "3", "f": "true"}


@pytest.mark.parametrize(
    ("listen", "advertise", "expected"),
    [
        (["https://10.0.0.1:2379", "https://127.0.0.1:2379"], [], "https://127.0.0.1:2379"),
        (["http://127.0.0.1:2379", "https://[::1]:2379"], [], "https://[::1]:2379"),
        (["http://localhost:2379"], [], "http://localhost:2379"),
        (["https://[::]:2379"], [], "https://127.0.0.1:2379"),
        (["https://10.0.0.1:2379"], ["https://127.0.0.1:22379"], "https://127.0.0.1:22379"),
        (["https://10.0.0.1:2379"], [], "https://10.0.0.1:2379"),
        ([], [], "http://127.0.0.1:2379"),
    ],
)
def test_choose_endpoint(listen: list[str], advertise: list[str], expected: str) -> None:
    assert choose_endpoint(listen, advertise) == expected


def test_versions() -> None:
    assert parse_etcd_version("3.5.10-0") == (3, 5, 10)
    assert parse_etcd_version("v3.4.3") == (3, 4, 3)
    assert parse_etcd_version("latest") is None
    assert parse_tool_version("etcdctl version: 3.4.23\nAPI version: 3.4\n") == (3, 4, 23)
    assert parse_tool_version("etcdutl version: 3.5.10\nAPI version: 3.5\n") == (3, 5, 10)
    assert tools_for((3, 4, 23)).offline == "etcdctl"
    assert not tools_for((3, 4, 23)).bump_revision
    assert tools_for((3, 5, 9)).offline == "etcdutl"
    assert not tools_for((3, 5, 9)).bump_revision
    assert tools_for((3, 6, 0)).bump_revision
    assert tools_for(None).offline == "etcdctl"


@pytest.mark.parametrize(
    "text",
    ["", "- a\n- b\n", "kind: Deployment\n", "kind: Pod\nspec: {containers: []}\n", "a: [\n"],
)
def test_bad_manifests(text: str) -> None:
    with pytest.raises(EtcdManifestError):
        parse_etcd_manifest(text)
