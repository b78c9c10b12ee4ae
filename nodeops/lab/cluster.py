"""Turn the running lab nodes into a kubeadm cluster: files as kubeadm writes them, kubelets,
a control plane as static pods on the first control-plane node, and sample workloads."""

from __future__ import annotations

import base64
import functools
import importlib.util
import io
import os
import re
import shlex
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nodeops.errors import LabError
from nodeops.lab import host, manifests
from nodeops.lab.lifecycle import node_exec_argv
from nodeops.lab.sim import module_argv, module_env
from nodeops.lab.sim.kubelet.apiclient import STRATEGIC_MERGE, ApiError, Client, load_kubeconfig
from nodeops.lab.state import LabState, NodeState
from nodeops.node import CONTROL_PLANE

DEFAULT_VERSION = "1.29.3"
ADMIN_CONF = "admin.conf"  # the host-side copy, in the lab's state dir under cluster/
KUBELET_ARGS = (
    "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
    "--kubeconfig=/etc/kubernetes/kubelet.conf",
    "--config=/var/lib/kubelet/config.yaml",
)
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


@dataclass(frozen=True)
class NodeReport:
    """One node as the API shows it."""

    name: str
    ready: bool
    kubelet_version: str
    roles: tuple[str, ...]
    internal_ip: str


@dataclass(frozen=True)
class ClusterInfo:
    """A built cluster: where its API is, the host-side admin kubeconfig, how long it took."""

    server: str
    admin_kubeconfig: Path
    version: str
    nodes: tuple[NodeReport, ...]
    seconds: float


def control_planes(state: LabState) -> list[NodeState]:
    """The lab's control-plane nodes in lab order: the first runs `kubeadm init`, the others
    join it (`kubeadm join --control-plane`, stacked etcd)."""
    found = [n for n in state.nodes if CONTROL_PLANE in n.roles]
    if not found:
        raise LabError(f"lab {state.name} has no control-plane node")
    return found


def cluster_dir(state: LabState) -> Path:
    """Host-side files of a lab's cluster (the admin kubeconfig)."""
    return state.state_dir / "cluster"


# ---- files


@dataclass(frozen=True)
class _File:
    path: str  # absolute, inside the node
    data: bytes
    mode: int
    link: str = ""  # a symlink to this target instead of a file


def _dir(path: str, mode: int = 0o755) -> _File:
    return _File(path=path, data=b"", mode=0o040000 | mode)


def _tar(files: Iterable[_File]) -> bytes:
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in files:
            info = tarfile.TarInfo(f.path.lstrip("/"))
            info.mtime = int(now)
            info.uid = info.gid = 0
            if f.link:
                info.type = tarfile.SYMTYPE
                info.linkname = f.link
                info.mode = 0o777
                tar.addfile(info)
            elif f.mode & 0o040000:
                info.type = tarfile.DIRTYPE
                info.mode = f.mode & 0o7777
                tar.addfile(info)
            else:
                info.mode = f.mode
                info.size = len(f.data)
                tar.addfile(info, io.BytesIO(f.data))
    return buf.getvalue()


def install_files(state: LabState, node: str, files: Iterable[_File]) -> None:
    """Write files into a node through its own mount namespace (tar, extracted as root)."""
    argv = node_exec_argv(state.name, node, ["tar", "-x", "-p", "-C", "/", "-f", "-"])
    done = subprocess.run(argv, input=_tar(files), capture_output=True, timeout=30, check=False)
    if done.returncode != 0:
        raise LabError(f"node {node}: writing files failed: {host.tail(done.stderr.decode())}")


def _read(path: Path) -> bytes:
    return path.read_bytes()


KUBELET_PKI = "/var/lib/kubelet/pki"
KUBELET_CLIENT = f"{KUBELET_PKI}/kubelet-client-current.pem"


def kubelet_kubeconfig(embedded: str, node: str, *, joined: bool) -> tuple[str, bytes]:
    """kubelet.conf as kubeadm leaves it, and the PEM (certificate, then key) it points to.

    The client certificate lives in /var/lib/kubelet/pki/kubelet-client-current.pem (rotated by
    the kubelet). `kubeadm init` names the user system:node:NODE; after `kubeadm join` the
    kubelet's TLS bootstrap writes default-cluster/default-auth/default-context instead.
    """
    doc = yaml.safe_load(embedded)
    cluster = doc["clusters"][0]["cluster"]
    user = doc["users"][0]["user"]
    pem = base64.b64decode(user["client-certificate-data"]) + base64.b64decode(
        user["client-key-data"]
    )
    auth = {"client-certificate": KUBELET_CLIENT, "client-key": KUBELET_CLIENT}
    if joined:
        contexts = [
            {
                "context": {
                    "cluster": "default-cluster",
                    "namespace": "default",
                    "user": "default-auth",
                },
                "name": "default-context",
            }
        ]
        out = {
            "apiVersion": "v1",
            "clusters": [{"cluster": cluster, "name": "default-cluster"}],
            "contexts": contexts,
            "current-context": "default-context",
            "kind": "Config",
            "preferences": {},
            "users": [{"name": "default-auth", "user": auth}],
        }
    else:
        user_name = f"system:node:{node}"
        out = {
            "apiVersion": "v1",
            "clusters": [{"cluster": cluster, "name": "kubernetes"}],
            "contexts": [
                {
                    "context": {"cluster": "kubernetes", "user": user_name},
                    "name": f"{user_name}@kubernetes",
                }
            ],
            "current-context": f"{user_name}@kubernetes",
            "kind": "Config",
            "preferences": {},
            "users": [{"name": user_name, "user": auth}],
        }
    return yaml.safe_dump(out, default_flow_style=False, sort_keys=False), pem


def _pki_files(kube: Path) -> list[_File]:
    """/etc/kubernetes/pki/** from a work directory's kubernetes/ tree."""
    files = [_dir("/etc/kubernetes"), _dir("/etc/kubernetes/pki"), _dir("/etc/kubernetes/pki/etcd")]
    for path in sorted((kube / "pki").rglob("*")):
        if path.is_file():
            rel = path.relative_to(kube)
            files.append(
                _File(f"/etc/kubernetes/{rel}", _read(path), os.stat(path).st_mode & 0o777)
            )
    return files


#: kubeconfig file -> (user, groups, whether its server is the node's own API server).
#: kubeadm points controller-manager.conf and scheduler.conf at the local API endpoint and
#: admin.conf (and kubelet.conf) at the controlPlaneEndpoint; super-admin.conf is written by
#: `kubeadm init` only.
_CONFS = {
    "admin.conf": ("kubernetes-admin", ["kubeadm:cluster-admins"], False),
    "super-admin.conf": ("kubernetes-super-admin", ["system:masters"], False),
    "controller-manager.conf": ("system:kube-controller-manager", [], True),
    "scheduler.conf": ("system:kube-scheduler", [], True),
}


def _control_plane_files(
    state: LabState, version: str, work: Path
) -> tuple[dict[str, list[_File]], dict[str, list[_File]]]:
    """The files of each control-plane node (pki, kubeconfigs, static pods), and the per-node
    kubelet files of every node. The first control plane's CAs are shared with the others."""
    from nodeops.lab.sim import pki  # the apiserver simulation's PKI writer

    cps = control_planes(state)
    first = cps[0]
    endpoint = f"https://{first.address}:6443"  # the ClusterConfiguration's controlPlaneEndpoint
    kube = work / "kubernetes"
    pki.write_kubeadm_pki(
        kube / "pki",
        apiserver_names=[first.name],
        apiserver_ips=[first.address],
        etcd_names=[first.name],
        etcd_ips=[first.address],
    )
    ca_cert, ca_key = kube / "pki" / "ca.crt", kube / "pki" / "ca.key"

    def kubeconfig(node: str, name: str, user: str, groups: list[str], server: str) -> Path:
        path = work / f"{node}-{name}"
        pki.write_kubeconfig(
            path, ca_cert=ca_cert, ca_key=ca_key, server=server, user=user, groups=groups
        )
        return path

    cp_files: dict[str, list[_File]] = {}
    members: list[tuple[str, str]] = []
    for cp in cps:
        joined = cp.name != first.name
        cp_kube = work / f"kubernetes-{cp.name}" if joined else kube
        if joined:
            pki.copy_shared_pki(kube / "pki", cp_kube / "pki")
            pki.write_control_plane_certs(
                cp_kube / "pki",
                apiserver_names=[cp.name],
                apiserver_ips=[cp.address, first.address],
                etcd_names=[cp.name],
                etcd_ips=[cp.address],
            )
        files = _pki_files(cp_kube)
        local = f"https://{cp.address}:6443"
        for name, (user, groups, is_local) in _CONFS.items():
            if joined and name == "super-admin.conf":
                continue
            path = kubeconfig(cp.name, name, user, groups, local if is_local else endpoint)
            files.append(_File(f"/etc/kubernetes/{name}", _read(path), 0o600))
        files.append(_dir(manifests.MANIFESTS))
        texts = manifests.control_plane_manifests(
            cp.name, cp.address, f"v{version}", etcd_members=members if joined else ()
        )
        for name, text in texts.items():
            files.append(_File(f"{manifests.MANIFESTS}/{name}", text.encode(), 0o600))
        files.append(_dir("/var/lib/etcd", 0o700))
        cp_files[cp.name] = files
        members.append((cp.name, cp.address))

    kubelet_config = manifests.dump(manifests.kubelet_configuration()).encode()
    per_node: dict[str, list[_File]] = {}
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    for n in state.nodes:
        conf = kubeconfig(
            n.name, "kubelet.conf", f"system:node:{n.name}", ["system:nodes"], endpoint
        )
        text, pem = kubelet_kubeconfig(conf.read_text(), n.name, joined=n.name != first.name)
        pem_path = f"{KUBELET_PKI}/kubelet-client-{stamp}.pem"
        node_files = [
            _dir("/etc/kubernetes"),
            _dir("/etc/kubernetes/pki"),
            _dir(manifests.MANIFESTS),
            _File("/etc/kubernetes/kubelet.conf", text.encode(), 0o600),
            _dir("/var/lib/kubelet", 0o700),
            _dir(KUBELET_PKI, 0o755),
            _File(pem_path, pem, 0o600),
            _File(f"{KUBELET_PKI}/kubelet-client-current.pem", b"", 0o777, link=pem_path),
            _File("/var/lib/kubelet/config.yaml", kubelet_config, 0o644),
            _File(
                "/var/lib/kubelet/kubeadm-flags.env", manifests.kubeadm_flags_env().encode(), 0o644
            ),
        ]
        if n.name not in cp_files:
            node_files.append(_File("/etc/kubernetes/pki/ca.crt", _read(ca_cert), 0o644))
        per_node[n.name] = node_files
    return cp_files, per_node


# ---- joining control planes

_ETCDCTL = (
    "etcdctl",
    "--endpoints=https://127.0.0.1:2379",
    f"--cacert={manifests.PKI}/etcd/ca.crt",
    f"--cert={manifests.PKI}/etcd/healthcheck-client.crt",
    f"--key={manifests.PKI}/etcd/healthcheck-client.key",
    "--command-timeout=5s",
)
_MEMBER_ADDED = re.compile(r"Member ([0-9a-f]+) added to cluster")


def etcd_member_id(output: str) -> str:
    """The hex member ID in `etcdctl member add` output; LabError if it is not there."""
    found = _MEMBER_ADDED.search(output)
    if not found:
        raise LabError(f"etcdctl member add: unexpected output: {host.tail(output)}")
    return found.group(1)


def join_control_plane(
    state: LabState,
    first: NodeState,
    node: NodeState,
    start: Callable[[], None],
    deadline: float,
) -> None:
    """`kubeadm join --control-plane`'s etcd part, with EtcdLearnerMode (on by default since
    kubeadm 1.29): add the node's member as a learner through the first control plane's etcd,
    start the node (`start` writes its files and starts its kubelet, which runs the etcd static
    pod), then promote the learner once it has caught up with the leader."""
    added = _run_in(
        state,
        first.name,
        [
            *_ETCDCTL,
            "member",
            "add",
            node.name,
            "--learner",
            f"--peer-urls={manifests.peer_url(node.address)}",
        ],
    )
    member = etcd_member_id(added)
    start()
    while True:
        try:
            _run_in(state, first.name, [*_ETCDCTL, "member", "promote", member], timeout=15)
            return
        except (LabError, subprocess.TimeoutExpired) as e:
            # "can only promote a learner member which is in sync with leader" until it is.
            if time.monotonic() > deadline:
                raise LabError(f"etcd member {node.name} was never promoted: {e}") from None
            time.sleep(0.5)


# ---- kubelets


def _packages_available() -> bool:
    """Whether the simulated packages and systemctl exist to start kubelets the real way."""
    try:
        return (
            importlib.util.find_spec("nodeops.lab.sim.pkg.preinstall") is not None
            and importlib.util.find_spec("nodeops.lab.sim.systemctl") is not None
        )
    except ImportError:
        return False


def _run_in(state: LabState, node: str, argv: list[str], timeout: float = 60) -> str:
    done = subprocess.run(
        node_exec_argv(state.name, node, argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=host.NODE_ENV,
    )
    if done.returncode != 0:
        raise LabError(
            f"node {node}: `{shlex.join(argv)}` exited {done.returncode}:"
            f" {host.tail(done.stderr or done.stdout)}"
        )
    return done.stdout


def start_kubelet(state: LabState, node: str, version: str, *, packages: bool) -> None:
    """Start a node's kubelet: via its package and systemctl, or directly (logs in
    /var/log/kubelet.log) while those are not there. lab.down ends it with the node."""
    if packages:
        from nodeops.lab.sim.pkg import preinstall_argv

        _run_in(state, node, preinstall_argv(version))
        _run_in(state, node, ["systemctl", "start", "kubelet"])
        return
    flags = manifests.kubeadm_flags_env().split('"')[1].split()
    env = [f"{k}={v}" for k, v in module_env().items()] + [f"NODEOPS_KUBELET_VERSION=v{version}"]
    # module_argv names this process's Python, which a node may not see (a pyenv under /root):
    # nodes run the Python the lab gives them; the kubelet's children then use that one too.
    python = host.python_for_nodes() or module_argv("")[0]
    argv = ["env", *env, python, "-m", "nodeops.lab.sim.kubelet", *KUBELET_ARGS, *flags]
    script = 'exec "$@" >>/var/log/kubelet.log 2>&1'
    host.spawn(
        node_exec_argv(state.name, node, ["/bin/sh", "-c", script, "kubelet", *argv]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# ---- the API


def admin_client(state: LabState, timeout: float = 5.0) -> Client:
    """An API client with the cluster's admin kubeconfig, from this host."""
    path = cluster_dir(state) / ADMIN_CONF
    if not path.exists():
        raise LabError(f"lab {state.name} has no cluster (no {path}); build it first")
    return Client(load_kubeconfig(str(path)), timeout=timeout, agent="nodeops-lab/cluster")


def _wait(what: str, deadline: float, check: Callable[[], Any]) -> Any:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except ApiError as e:
            last = e
        time.sleep(0.1)
    raise LabError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


def _create(client: Client, path: str, obj: dict[str, Any]) -> None:
    try:
        client.request("POST", path, obj)
    except ApiError as e:
        if e.status != 409:
            raise


def _kubeadm_objects(
    client: Client, version: str, cp: NodeState, ca_pem: bytes, server: str
) -> None:
    for ns in ("kube-system", "kube-public", "kube-node-lease", "default"):
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        _create(client, "/api/v1/namespaces", namespace)

    def configmap(ns: str, name: str, data: dict[str, str]) -> None:
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns},
            "data": data,
        }
        _create(client, f"/api/v1/namespaces/{ns}/configmaps", obj)

    configmap(
        "kube-system",
        "kubeadm-config",
        {
            "ClusterConfiguration": manifests.dump(
                manifests.cluster_configuration(f"v{version}", cp.address)
            )
        },
    )
    configmap(
        "kube-system",
        "kubelet-config",
        {"kubelet": manifests.dump(manifests.kubelet_configuration())},
    )
    ca_b64 = base64.b64encode(ca_pem).decode()
    configmap(
        "kube-public",
        "cluster-info",
        {"kubeconfig": manifests.dump(manifests.cluster_info_kubeconfig(ca_b64, server))},
    )


def _mark_control_plane(client: Client, name: str) -> None:
    """kubeadm's mark-control-plane phase: the role label and the NoSchedule taint."""
    patch = {
        "metadata": {"labels": {CONTROL_PLANE_LABEL: "", EXCLUDE_LB_LABEL: ""}},
        "spec": {"taints": [{"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}]},
    }
    client.request("PATCH", f"/api/v1/nodes/{name}", patch, content_type=STRATEGIC_MERGE)


def _report(node: dict[str, Any]) -> NodeReport:
    meta, status = node.get("metadata") or {}, node.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    roles = tuple(
        sorted(
            k.split("/", 1)[1]
            for k in meta.get("labels") or {}
            if k.startswith("node-role.kubernetes.io/")
        )
    )
    ip = next(
        (a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), ""
    )
    return NodeReport(
        name=str(meta.get("name")),
        ready=ready,
        kubelet_version=str((status.get("nodeInfo") or {}).get("kubeletVersion") or ""),
        roles=roles,
        internal_ip=ip,
    )


def cluster_status(state: LabState) -> tuple[NodeReport, ...]:
    """Every node of the lab's cluster as the API reports it."""
    client = admin_client(state)
    try:
        nodes = client.get("/api/v1/nodes").get("items") or []
    except ApiError as e:
        raise LabError(f"lab {state.name}: the cluster's API does not answer: {e}") from None
    return tuple(_report(n) for n in nodes)


def build_cluster(
    state: LabState,
    *,
    version: str = DEFAULT_VERSION,
    timeout: float = 60.0,
    workloads: bool = True,
    addons: bool = True,
    packages: bool | None = None,
) -> ClusterInfo:
    """Make the lab a kubeadm cluster at version (e.g. "1.29.3") and wait until every node is
    Ready: kubeadm's files, kubelets, a static-pod control plane on the control-plane node, the
    kube-proxy and CoreDNS addons and the sample workloads (manifests.sample_workloads).
    `packages` None uses the simulated packages and systemctl when they exist."""
    version = version.lstrip("v")
    started = time.monotonic()
    deadline = started + timeout
    cp, *joining = control_planes(state)
    use_packages = _packages_available() if packages is None else packages
    out = cluster_dir(state)
    if (out / ADMIN_CONF).exists():
        raise LabError(f"lab {state.name} is already a cluster; run lab.down, then lab.up")
    out.mkdir(mode=0o700, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=state.state_dir) as tmp:
        work = Path(tmp)
        cp_files, per_node = _control_plane_files(state, version, work)
        admin = out / ADMIN_CONF
        admin.write_bytes((work / f"{cp.name}-admin.conf").read_bytes())
        admin.chmod(0o600)
        ca_pem = (work / "kubernetes" / "pki" / "ca.crt").read_bytes()

    def prepare(n: NodeState) -> None:
        install_files(state, n.name, cp_files.get(n.name, []) + per_node[n.name])
        start_kubelet(state, n.name, version, packages=use_packages)

    later = {n.name for n in joining}
    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        for f in [pool.submit(prepare, n) for n in state.nodes if n.name not in later]:
            f.result()

    client = admin_client(state, timeout=2.0)
    _wait("the API server", deadline, lambda: client.get("/version"))
    server = f"https://{cp.address}:6443"
    _kubeadm_objects(client, version, cp, ca_pem, server)
    _wait(f"node {cp.name} to register", deadline, lambda: client.get(f"/api/v1/nodes/{cp.name}"))
    _mark_control_plane(client, cp.name)
    for n in joining:
        join_control_plane(state, cp, n, functools.partial(prepare, n), deadline)
        path = f"/api/v1/nodes/{n.name}"
        _wait(f"node {n.name} to register", deadline, functools.partial(client.get, path))
        _mark_control_plane(client, n.name)
    if addons:
        for path, obj in manifests.addons(f"v{version}"):
            _create(client, path, obj)
    if workloads:
        for path, obj in manifests.sample_workloads():
            _create(client, path, obj)
    want = {n.name for n in state.nodes}

    def all_ready() -> tuple[NodeReport, ...] | None:
        reports = tuple(_report(n) for n in client.get("/api/v1/nodes").get("items") or [])
        ready = {r.name for r in reports if r.ready and r.kubelet_version == f"v{version}"}
        return reports if want <= ready else None

    nodes = _wait("every node to be Ready", deadline, all_ready)
    return ClusterInfo(
        server=server,
        admin_kubeconfig=out / ADMIN_CONF,
        version=f"v{version}",
        nodes=nodes,
        seconds=time.monotonic() - started,
    )
