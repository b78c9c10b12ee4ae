"""kubeadm's certificate layout for the lab: CAs, serving and client certificates, kubeconfigs.

Subjects, SANs and usages follow kubeadm (cmd/kubeadm/app/phases/certs/certlist.go) so that
tools reading them see what a real cluster has. Leaf keys are ECDSA P-256 (kubeadm's
`--encryption-algorithm=ECDSA-P256`; fast to make); sa.key is RSA 2048 as kubeadm writes it.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# kubeadm backdates NotBefore so that slightly skewed clocks accept new certificates.
_BACKDATE = datetime.timedelta(minutes=5)
_CA_VALIDITY = datetime.timedelta(days=3650)
_LEAF_VALIDITY = datetime.timedelta(days=365)
_SERVICE_IP = "10.96.0.1"
_APISERVER_DNS = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
ADMIN_USER = "kubernetes-admin"
# Since kubeadm 1.29 admin.conf is bound to this group rather than system:masters.
ADMIN_GROUP = "kubeadm:cluster-admins"

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Authority:
    """A CA certificate with its key."""

    cert: x509.Certificate
    key: _PrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _sans(names: Sequence[str], ips: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        entries.append(x509.DNSName(name))
    for ip in dict.fromkeys(ips):
        entries.append(x509.IPAddress(ipaddress.ip_address(ip)))
    return x509.SubjectAlternativeName(entries)


def new_authority(common_name: str, *, dns_names: Sequence[str] = ()) -> Authority:
    """A self-signed CA as kubeadm makes it (kubeadm lists the CN as a DNS SAN)."""
    key = _new_key()
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_sans(dns_names or (common_name,), ()), critical=False)
    )
    return Authority(cert=builder.sign(key, hashes.SHA256()), key=key)


def issue(
    ca: Authority,
    common_name: str,
    *,
    organizations: Sequence[str] = (),
    server: bool = False,
    client: bool = False,
    dns_names: Sequence[str] = (),
    ips: Sequence[str] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate signed by `ca` with kubeadm's key usages."""
    key = _new_key()
    now = _now()
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _LEAF_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    if dns_names or ips:
        builder = builder.add_extension(_sans(dns_names, ips), critical=False)
    return builder.sign(ca.key, hashes.SHA256()), key


def cert_pem(cert: x509.Certificate) -> bytes:
    """PEM encoding of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: _PrivateKey) -> bytes:
    """PEM encoding of a private key in the traditional form kubeadm writes (EC/RSA PRIVATE KEY)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    # Written beside the target and renamed, so a reader never sees half a key.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _write_pair(base: Path, cert: x509.Certificate, key: _PrivateKey) -> None:
    _write(base.with_name(base.name + ".crt"), cert_pem(cert), 0o644)
    _write(base.with_name(base.name + ".key"), key_pem(key), 0o600)


def load_authority(cert_path: Path, key_path: Path) -> Authority:
    """Read a CA written by `write_kubeadm_pki`."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{key_path}: unsupported key type {type(key).__name__}")
    return Authority(cert=cert, key=key)


#: The files `kubeadm init --upload-certs` shares with joining control planes (copycerts.go):
#: the CAs and the service-account key pair; every other certificate is made per node.
SHARED_FILES = (
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
)


class NodeNames(TypedDict):
    """The names and addresses one control-plane node's certificates carry."""

    apiserver_names: Sequence[str]
    apiserver_ips: Sequence[str]
    etcd_names: Sequence[str]
    etcd_ips: Sequence[str]


def write_kubeadm_pki(pki_dir: Path, **names: Unpack[NodeNames]) -> None:
    """Write kubeadm's /etc/kubernetes/pki layout into `pki_dir` (keys 0600): new CAs and
    service-account keys, then the node's certificates (write_control_plane_certs)."""
    for common_name, base in (
        ("kubernetes", "ca"),
        ("front-proxy-ca", "front-proxy-ca"),
        ("etcd-ca", "etcd/ca"),
    ):
        authority = new_authority(common_name)
        _write_pair(pki_dir / base, authority.cert, authority.key)
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(pki_dir / "sa.key", key_pem(sa), 0o600)
    sa_pub = sa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write(pki_dir / "sa.pub", sa_pub, 0o644)
    write_control_plane_certs(pki_dir, **names)


def copy_shared_pki(source: Path, dest: Path) -> None:
    """Copy the shared CAs and service-account keys (SHARED_FILES) of one control plane's
    pki directory into another's, as `kubeadm join --control-plane` downloads them."""
    for name in SHARED_FILES:
        data = (source / name).read_bytes()
        _write(dest / name, data, 0o600 if name.endswith(".key") else 0o644)


def write_control_plane_certs(pki_dir: Path, **names: Unpack[NodeNames]) -> None:
    """Issue one control-plane node's certificates from the CAs already in `pki_dir`.

    `apiserver_names`/`apiserver_ips` are added to kubeadm's fixed apiserver SANs (the
    kubernetes.default.* names and the first service IP). The first of `etcd_names` is the
    etcd member name (the CN of etcd's server and peer certificates); localhost, 127.0.0.1
    and ::1 are always in etcd's SANs, as kubeadm puts them there.
    """
    ca = load_authority(pki_dir / "ca.crt", pki_dir / "ca.key")
    cert, key = issue(
        ca,
        "kube-apiserver",
        server=True,
        dns_names=[*names["apiserver_names"], *_APISERVER_DNS],
        ips=[_SERVICE_IP, *names["apiserver_ips"]],
    )
    _write_pair(pki_dir / "apiserver", cert, key)
    cert, key = issue(ca, "kube-apiserver-kubelet-client", organizations=[ADMIN_GROUP], client=True)
    _write_pair(pki_dir / "apiserver-kubelet-client", cert, key)

    front = load_authority(pki_dir / "front-proxy-ca.crt", pki_dir / "front-proxy-ca.key")
    cert, key = issue(front, "front-proxy-client", client=True)
    _write_pair(pki_dir / "front-proxy-client", cert, key)

    etcd_ca = load_authority(pki_dir / "etcd" / "ca.crt", pki_dir / "etcd" / "ca.key")
    etcd_names = names["etcd_names"]
    member = etcd_names[0] if etcd_names else "localhost"
    etcd_dns = ["localhost", *etcd_names]
    etcd_ip_list = ["127.0.0.1", "::1", *names["etcd_ips"]]
    for kind in ("server", "peer"):
        cert, key = issue(
            etcd_ca, member, server=True, client=True, dns_names=etcd_dns, ips=etcd_ip_list
        )
        _write_pair(pki_dir / "etcd" / kind, cert, key)
    cert, key = issue(etcd_ca, "kube-etcd-healthcheck-client", client=True)
    _write_pair(pki_dir / "etcd" / "healthcheck-client", cert, key)
    cert, key = issue(etcd_ca, "kube-apiserver-etcd-client", client=True)
    _write_pair(pki_dir / "apiserver-etcd-client", cert, key)


def kubeconfig_text(
    *,
    ca_cert: Path,
    ca_key: Path,
    server: str,
    user: str,
    groups: Sequence[str],
    cluster_name: str = "kubernetes",
) -> str:
    """A kubeconfig with an embedded client certificate, shaped like kubeadm's admin.conf."""
    ca = load_authority(ca_cert, ca_key)
    cert, key = issue(ca, user, organizations=groups, client=True)
    context = f"{user}@{cluster_name}"

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    doc = {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {
                    "certificate-authority-data": b64(cert_pem(ca.cert)),
                    "server": server,
                },
                "name": cluster_name,
            }
        ],
        "contexts": [{"context": {"cluster": cluster_name, "user": user}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(cert_pem(cert)),
                    "client-key-data": b64(key_pem(key)),
                },
            }
        ],
    }
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)


def write_kubeconfig(
    path: Path,
    *,
    ca_cert: Path,
    ca_key: Path,
    server: str,
    user: str,
    groups: Sequence[str],
    cluster_name: str = "kubernetes",
) -> None:
    """Write a kubeconfig (mode 0600) for `user` in `groups`, context `<user>@<cluster>`."""
    text = kubeconfig_text(
        ca_cert=ca_cert,
        ca_key=ca_key,
        server=server,
        user=user,
        groups=groups,
        cluster_name=cluster_name,
    )
    _write(path, text.encode(), 0o600)
