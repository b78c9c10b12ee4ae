"""kubeadm-shaped PKI: openssl verifies the chains; subjects, SANs, usages, modes as kubeadm."""

from __future__ import annotations

import base64
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nodeops.lab.sim.pki import ADMIN_GROUP, write_kubeadm_pki, write_kubeconfig


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    write_kubeadm_pki(
        root,
        apiserver_names=["cp1"],
        apiserver_ips=["172.30.1.2"],
        etcd_names=["cp1"],
        etcd_ips=["172.30.1.2"],
    )
    return root


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _verify(ca: Path, cert: Path, purpose: str) -> None:
    out = subprocess.run(
        ["openssl", "verify", "-purpose", purpose, "-CAfile", str(ca), str(cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith(": OK")


LAYOUT = [
    "ca.crt", "ca.key", "apiserver.crt", "apiserver.key",
    "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
    "apiserver-etcd-client.crt", "apiserver-etcd-client.key",
    "front-proxy-ca.crt", "front-proxy-ca.key", "front-proxy-client.crt",
    "front-proxy-client.key", "sa.key", "sa.pub", "etcd/ca.crt", "etcd/ca.key",
    "etcd/server.crt", "etcd/server.key", "etcd/peer.crt", "etcd/peer.key",
    "etcd/healthcheck-client.crt", "etcd/healthcheck-client.key",
]  # fmt: skip


def test_layout_and_modes(pki: Path) -> None:
    found = sorted(str(p.relative_to(pki)) for p in pki.rglob("*") if p.is_file())
    assert found == sorted(LAYOUT)
    for name in LAYOUT:
        mode = stat.S_IMODE((pki / name).stat().st_mode)
        assert mode == (0o600 if name.endswith(".key") else 0o644), name


@pytest.mark.parametrize(
    ("ca", "cert", "purpose"),
    [
        ("ca.crt", "apiserver.crt", "sslserver"),
        ("ca.crt", "apiserver-kubelet-client.crt", "sslclient"),
        ("front-proxy-ca.crt", "front-proxy-client.crt", "sslclient"),
        ("etcd/ca.crt", "etcd/server.crt", "sslserver"),
        ("etcd/ca.crt", "etcd/server.crt", "sslclient"),
        ("etcd/ca.crt", "etcd/peer.crt", "sslserver"),
        ("etcd/ca.crt", "etcd/healthcheck-client.crt", "sslclient"),
        ("etcd/ca.crt", "apiserver-etcd-client.crt", "sslclient"),
    ],
)
def test_chains_verify(pki: Path, ca: str, cert: str, purpose: str) -> None:
    _verify(pki / ca, pki / cert, purpose)


def test_wrong_ca_does_not_verify(pki: Path) -> None:
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki / "ca.crt"), str(pki / "etcd/server.crt")],
        capture_output=True,
        check=False,
    )
    assert out.returncode != 0


def test_apiserver_sans(pki: Path) -> None:
    cert = _cert(pki / "apiserver.crt")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kube-apiserver"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "cp1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [
        "10.96.0.1",
        "172.30.1.2",
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_etcd_sans_and_names(pki: Path) -> None:
    for kind in ("server", "peer"):
        cert = _cert(pki / f"etcd/{kind}.crt")
        assert cert.subject.rfc4514_string() == "CN=cp1"
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == ["localhost", "cp1"]
        assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [
            "127.0.0.1",
            "::1",
            "172.30.1.2",
        ]
    client = _cert(pki / "apiserver-etcd-client.crt")
    assert client.subject.rfc4514_string() == "CN=kube-apiserver-etcd-client"
    assert _cert(pki / "etcd/ca.crt").subject.rfc4514_string() == "CN=etcd-ca"
    assert _cert(pki / "front-proxy-ca.crt").subject.rfc4514_string() == "CN=front-proxy-ca"


def test_ca_is_ca(pki: Path) -> None:
    bc = _cert(pki / "ca.crt").extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca
    leaf = _cert(pki / "apiserver.crt").extensions.get_extension_for_class(x509.BasicConstraints)
    assert not leaf.value.ca


def test_kubeconfig(pki: Path, tmp_path: Path) -> None:
    path = tmp_path / "admin.conf"
    write_kubeconfig(
        path,
        ca_cert=pki / "ca.crt",
        ca_key=pki / "ca.key",
        server="https://172.30.1.2:6443",
        user="kubernetes-admin",
        groups=[ADMIN_GROUP],
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "kubernetes-admin@kubernetes"
    assert doc["clusters"][0]["cluster"]["server"] == "https://172.30.1.2:6443"
    ca_data = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca_data == (pki / "ca.crt").read_bytes()
    user = doc["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    assert cert.subject.rfc4514_string() == "CN=kubernetes-admin,O=kubeadm:cluster-admins"
    assert b"PRIVATE KEY" in base64.b64decode(user["client-key-data"])
    leaf = tmp_path / "leaf.crt"
    leaf.write_bytes(base64.b64decode(user["client-certificate-data"]))
    _verify(pki / "ca.crt", leaf, "sslclient")
