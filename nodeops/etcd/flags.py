"""The etcd static pod manifest: its flags, the member it describes, and how etcdctl reaches it.

Pure: text in, records out. Paths in the manifest are container paths; every path nodeops
uses on the node is mapped to the host through the pod's volumeMounts and hostPath volumes.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from nodeops.errors import NodeopsError

Version = tuple[int, int, int]

#: kubeadm's client certificate for the etcd liveness probe (v1.10+), in the etcd PKI dir.
HEALTHCHECK_CERT = "healthcheck-client.crt"
HEALTHCHECK_KEY = "healthcheck-client.key"


class EtcdManifestError(NodeopsError):
    """An etcd static pod manifest nodeops cannot read a member from."""


def parse_command_flags(argv: Sequence[str]) -> dict[str, str]:
    """`--flag=value`, `--flag value`, `-flag=value` and bare boolean `--flag` into a dict.

    The first item is skipped when it is the program (`etcd`, `/usr/local/bin/etcd`). A bare
    flag followed by another flag (or nothing) means "true". The last occurrence wins, as
    in etcd's own flag parsing.
    """
    items = list(argv)
    if items and not items[0].startswith("-"):
        items = items[1:]
    flags: dict[str, str] = {}
    index = 0
    while index < len(items):
        item = items[index].strip()
        index += 1
        if not item.startswith("-"):
            continue  # a stray positional word: etcd takes none
        name, eq, value = item.lstrip("-").partition("=")
        if not name:
            continue
        if not eq:
            following = items[index].strip() if index < len(items) else None
            if following is not None and not following.startswith("-"):
                value = following
                index += 1
            else:
                value = "true"
        flags[name] = value
    return flags


def parse_etcd_version(text: str) -> Version | None:
    """An etcd version from an image tag or tool output: `3.5.10-0`, `v3.4.3`, `etcd:3.0.17`."""
    match = re.search(r"(?<![\d.])v?(\d+)\.(\d+)\.(\d+)", text)
    if not match:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return (major, minor, patch)


def parse_tool_version(text: str) -> Version | None:
    """The version from `etcdctl version` / `etcdutl version` output (its first line)."""
    for line in text.splitlines():
        if re.match(r"\s*(etcdctl|etcdutl) version:", line):
            return parse_etcd_version(line.split(":", 1)[1])
    return None


def split_urls(value: str | None) -> tuple[str, ...]:
    """A comma-separated URL flag value as a tuple, blanks dropped."""
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_initial_cluster(value: str | None) -> tuple[tuple[str, str], ...]:
    """`a=https://x:2380,b=https://y:2380` as ((name, url), ...); a name may repeat (many URLs)."""
    pairs: list[tuple[str, str]] = []
    for part in split_urls(value):
        name, eq, url = part.partition("=")
        if not eq or not name.strip() or not url.strip():
            raise EtcdManifestError(f"--initial-cluster entry {part!r} is not NAME=URL")
        pairs.append((name.strip(), url.strip()))
    return tuple(pairs)


@dataclass(frozen=True)
class EtcdMember:
    """One etcd member as its static pod describes it; `*_host` paths are on the node itself."""

    name: str | None
    data_dir: str
    data_dir_host: str | None
    data_volume: str | None
    wal_dir: str | None
    wal_dir_host: str | None
    listen_client_urls: tuple[str, ...]
    advertise_client_urls: tuple[str, ...]
    listen_peer_urls: tuple[str, ...]
    initial_advertise_peer_urls: tuple[str, ...]
    initial_cluster: tuple[tuple[str, str], ...]
    initial_cluster_state: str | None
    initial_cluster_token: str | None
    trusted_ca_file: str | None
    cert_file: str | None
    key_file: str | None
    peer_trusted_ca_file: str | None
    peer_cert_file: str | None
    peer_key_file: str | None
    client_cert_auth: bool
    image: str | None
    version: Version | None
    flags: Mapping[str, str] = field(repr=False)
    mounts: tuple[tuple[str, str], ...] = field(repr=False, default=())
    probe_text: str = field(repr=False, default="")

    @property
    def cluster_names(self) -> tuple[str, ...]:
        """Member names in `--initial-cluster`, in order, without repeats."""
        return tuple(dict.fromkeys(name for name, _ in self.initial_cluster))

    @property
    def joined(self) -> bool:
        """Whether this member joined an existing cluster (`--initial-cluster-state=existing`)."""
        return (self.initial_cluster_state or "new") == "existing"

    def host_path(self, container_path: str | None) -> str | None:
        """A container path on the node, through the pod's hostPath mounts; None if unmapped."""
        if container_path is None:
            return None
        return map_to_host(container_path, self.mounts)


def map_to_host(container_path: str, mounts: Sequence[tuple[str, str]]) -> str | None:
    """Map a container path through (mountPath, hostPath) pairs; the longest mount wins."""
    path = posixpath.normpath(container_path)
    best: tuple[str, str] | None = None
    for mount_path, host in mounts:
        mount = posixpath.normpath(mount_path)
        inside = path == mount or path.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) > len(best[0])):
            best = (mount, host)
    if best is None:
        return None
    mount, host = best
    rest = posixpath.relpath(path, mount)
    return posixpath.normpath(host if rest == "." else posixpath.join(host, rest))


def _etcd_container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        raise EtcdManifestError("the manifest has no pod spec")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise EtcdManifestError("the manifest has no containers")
    candidates = [c for c in containers if isinstance(c, Mapping)]
    for container in candidates:
        argv = [str(x) for x in (container.get("command") or [])]
        if container.get("name") == "etcd" or (argv and posixpath.basename(argv[0]) == "etcd"):
            return container
    raise EtcdManifestError("no etcd container in the manifest")


def _host_mounts(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[tuple[str, str]]:
    volumes: dict[str, str] = {}
    for volume in pod.get("spec", {}).get("volumes") or []:
        if isinstance(volume, Mapping) and isinstance(volume.get("hostPath"), Mapping):
            host = volume["hostPath"].get("path")
            if isinstance(host, str) and isinstance(volume.get("name"), str):
                volumes[volume["name"]] = host
    mounts: list[tuple[str, str]] = []
    for mount in container.get("volumeMounts") or []:
        if not isinstance(mount, Mapping):
            continue
        host = volumes.get(str(mount.get("name")))
        mount_path = mount.get("mountPath")
        if host is None or not isinstance(mount_path, str):
            continue
        sub = mount.get("subPath")
        if isinstance(sub, str) and sub:
            host = posixpath.join(host, sub)
        mounts.append((mount_path, host))
    return mounts


def _volume_for(path: str, pod: Mapping[str, Any], container: Mapping[str, Any]) -> str | None:
    best: tuple[int, str] | None = None
    for mount in container.get("volumeMounts") or []:
        if not isinstance(mount, Mapping) or not isinstance(mount.get("mountPath"), str):
            continue
        mount_path = posixpath.normpath(mount["mountPath"])
        inside = path == mount_path or path.startswith(mount_path.rstrip("/") + "/")
        if inside and (best is None or len(mount_path) > best[0]):
            best = (len(mount_path), str(mount.get("name")))
    return best[1] if best else None


def parse_etcd_manifest(text: str) -> EtcdMember:
    """Read the etcd member from a static pod manifest (yaml.safe_load; one document)."""
    try:
        pod = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise EtcdManifestError(f"the etcd manifest is not valid YAML: {error}") from None
    if not isinstance(pod, Mapping) or pod.get("kind", "Pod") != "Pod":
        raise EtcdManifestError("the etcd manifest is not a Pod")
    container = _etcd_container(pod)
    argv = [str(x) for x in (container.get("command") or [])]
    argv += [str(x) for x in (container.get("args") or [])]
    flags = parse_command_flags(argv)
    mounts = _host_mounts(pod, container)
    data_dir = posixpath.normpath(flags.get("data-dir") or "/var/lib/etcd")
    wal_dir = flags.get("wal-dir") or None
    image = container.get("image")
    image_text = str(image) if image is not None else None

    def host(path: str | None) -> str | None:
        return None if path is None else map_to_host(path, mounts)

    probe = container.get("livenessProbe")
    probe_exec = probe.get("exec") if isinstance(probe, Mapping) else None
    probe_argv = probe_exec.get("command") if isinstance(probe_exec, Mapping) else None
    return EtcdMember(
        name=flags.get("name"),
        data_dir=data_dir,
        data_dir_host=host(data_dir),
        data_volume=_volume_for(data_dir, pod, container),
        wal_dir=wal_dir,
        wal_dir_host=host(wal_dir),
        listen_client_urls=split_urls(flags.get("listen-client-urls")),
        advertise_client_urls=split_urls(flags.get("advertise-client-urls")),
        listen_peer_urls=split_urls(flags.get("listen-peer-urls")),
        initial_advertise_peer_urls=split_urls(flags.get("initial-advertise-peer-urls")),
        initial_cluster=parse_initial_cluster(flags.get("initial-cluster")),
        initial_cluster_state=flags.get("initial-cluster-state"),
        initial_cluster_token=flags.get("initial-cluster-token"),
        trusted_ca_file=flags.get("trusted-ca-file"),
        cert_file=flags.get("cert-file"),
        key_file=flags.get("key-file"),
        peer_trusted_ca_file=flags.get("peer-trusted-ca-file"),
        peer_cert_file=flags.get("peer-cert-file"),
        peer_key_file=flags.get("peer-key-file"),
        client_cert_auth=flags.get("client-cert-auth", "false").lower() == "true",
        image=image_text,
        version=parse_etcd_version(image_text.rsplit(":", 1)[-1]) if image_text else None,
        flags=dict(flags),
        mounts=tuple(mounts),
        probe_text=" ".join(str(x) for x in probe_argv) if isinstance(probe_argv, list) else "",
    )


@dataclass(frozen=True)
class EtcdctlArgs:
    """How etcdctl on the node reaches one member: one endpoint, host paths of the TLS files."""

    endpoint: str
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    #: `ETCDCTL_API=3`: etcdctl before 3.4 speaks the v2 API unless told.
    api_v3_env: bool = False
    binary: str = "etcdctl"
    #: Which client pair this is: "healthcheck-client", "server" or "none".
    pair: str = "none"
    dial_timeout: str = "5s"

    def global_flags(self) -> tuple[str, ...]:
        """`--endpoints=… --cacert=… --cert=… --key=…`, each one argv item."""
        out = [f"--endpoints={self.endpoint}", f"--dial-timeout={self.dial_timeout}"]
        for flag, value in (("cacert", self.cacert), ("cert", self.cert), ("key", self.key)):
            if value:
                out.append(f"--{flag}={value}")
        return tuple(out)

    @property
    def env(self) -> dict[str, str]:
        """Environment for the etcdctl process."""
        return {"ETCDCTL_API": "3"} if self.api_v3_env else {}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def choose_endpoint(listen: Sequence[str], advertise: Sequence[str] = ()) -> str:
    """A loopback client URL: https://127.0.0.1:2379 when listed, else the best loopback one.

    Order: an exact https://127.0.0.1:2379; any https loopback; any loopback; a wildcard
    listener (0.0.0.0, [::]) reached through 127.0.0.1 on its port; an advertised loopback
    URL; finally the first listen URL (the node's own address, still local to the node).
    """
    parsed = [(url, urlsplit(url)) for url in listen]
    if "https://127.0.0.1:2379" in listen:
        return "https://127.0.0.1:2379"
    loop = [(u, p) for u, p in parsed if p.hostname is not None and _is_loopback(p.hostname)]
    for url, part in loop:
        if part.scheme == "https":
            return url
    if loop:
        return loop[0][0]
    for _url, part in parsed:
        if part.hostname is not None and _is_wildcard(part.hostname):
            port = part.port or 2379
            return f"{part.scheme}://127.0.0.1:{port}"
    for url in advertise:
        hostname = urlsplit(url).hostname
        if hostname is not None and _is_loopback(hostname):
            return url
    if listen:
        return listen[0]
    if advertise:
        return advertise[0]
    return "http://127.0.0.1:2379"  # etcd's own default listen-client-urls


def healthcheck_pair(member: EtcdMember) -> tuple[str, str] | None:
    """kubeadm's healthcheck-client pair (host paths) when this manifest's era has one.

    How we know: the v1.10-v1.15 manifests name it in their exec liveness probe; later
    kubeadm still generates it (`kubeadm init phase certs etcd-healthcheck-client`) next to
    the etcd CA, so a kubeadm layout — trusted-ca-file and cert-file both in `<pki>/etcd/` —
    has it at `<pki>/etcd/healthcheck-client.{crt,key}`. Manifests without TLS (v1.8/1.9) or
    with a foreign layout get None. Files can still be missing: `client_pair_check()`.
    """
    probe = re.search(
        r"--cert=(\S*healthcheck-client\.crt)\s.*?--key=(\S*healthcheck-client\.key)",
        member.probe_text,
    )
    if probe:
        cert, key = probe.group(1), probe.group(2)
        return (member.host_path(cert) or cert, member.host_path(key) or key)
    if not member.trusted_ca_file or not member.cert_file:
        return None
    ca_dir = posixpath.dirname(posixpath.normpath(member.trusted_ca_file))
    cert_dir = posixpath.dirname(posixpath.normpath(member.cert_file))
    if ca_dir != cert_dir or not ca_dir.endswith("/pki/etcd"):
        return None
    cert = posixpath.join(ca_dir, HEALTHCHECK_CERT)
    key = posixpath.join(ca_dir, HEALTHCHECK_KEY)
    return (member.host_path(cert) or cert, member.host_path(key) or key)


def etcdctl_connection(member: EtcdMember, *, healthcheck: bool = True) -> EtcdctlArgs:
    """etcdctl's endpoint, CA and client pair for this member (host paths).

    The healthcheck-client pair when the era has one and `healthcheck` is True, else the
    server pair (kubeadm's etcd server certificate is also valid for client auth). A plain
    HTTP member (kubeadm v1.8) gets no TLS flags. ETCDCTL_API=3 for etcd before 3.4 (and
    when the version is unknown): those etcdctl builds default to the v2 API.
    """
    endpoint = choose_endpoint(member.listen_client_urls, member.advertise_client_urls)
    api_env = member.version is None or member.version < (3, 4, 0)
    if urlsplit(endpoint).scheme != "https":
        return EtcdctlArgs(endpoint=endpoint, api_v3_env=api_env)
    cacert = member.host_path(member.trusted_ca_file) or member.trusted_ca_file
    pair = healthcheck_pair(member) if healthcheck else None
    if pair is not None:
        return EtcdctlArgs(endpoint, cacert, pair[0], pair[1], api_env, pair="healthcheck-client")
    cert = member.host_path(member.cert_file) or member.cert_file
    key = member.host_path(member.key_file) or member.key_file
    return EtcdctlArgs(endpoint, cacert, cert, key, api_env, pair="server")
