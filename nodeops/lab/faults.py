"""Fault switches of the lab: make one node (or the cluster) misbehave the way real ones do.

Each kind shows the symptom an operator meets upstream and is undone by `clear`:

- `dpkg-lock`: a process in the node holds /var/lib/dpkg/lock-frontend (and lock) with fcntl,
  as apt does, named `unattended-upgr` like the usual culprit; for --seconds or until cleared.
  apt-get then says `Could not get lock /var/lib/dpkg/lock-frontend. It is held by process N
  (unattended-upgr)`. Debian-family nodes only.
- `kubelet-not-ready`: the simulated kubelet posts Ready=False (its fault file in /run).
- `sshd-down`: the node's listening sshd is stopped (sessions already open stay, as with
  `systemctl stop ssh`); clear starts it again with the same host key and records its PID.
- `kubeadm-fail`: the next `kubeadm upgrade apply|node` on the node fails after swapping the
  first manifest, rolls back and exits 1 (the fault file is used up by that run).
- `apiserver-down`: kube-apiserver.yaml is moved out of the node's manifest directory into the
  lab's state directory, so the kubelet stops the apiserver and connections are refused;
  clear moves it back (the kubelet starts it again).
- `pdb-blocking`: the PodDisruptionBudget over the sample `web` Deployment gets minAvailable
  equal to its replicas (the sample PDB `web` is tightened: a second PDB over the same pods
  would fail evictions with "more than one PodDisruptionBudget" instead; without one,
  `nodeops-fault-web` is created), so each eviction is refused with 429 and kubectl drain
  retries `Cannot evict pod as it would violate the pod's disruption budget.`; clear
  restores the old spec (or deletes the created PDB).
- `slow-download`: the simulated apt/dnf take --seconds (default 5) per package download.
- `ssh-cut-kubeadm`, `ssh-cut-restart`: the SSH session running the next `kubeadm upgrade
  node` (or `systemctl restart kubelet`) on the node is killed as the command starts, as a
  reset connection would; the command itself carries on to its end without a listener.
- `kubelet-not-ready-on-restart`: the next kubelet restart brings up a kubelet that posts
  Ready=False for good (as after a broken flag or a missing runtime), until cleared.
- `dpkg-interrupt`: the next apt install on the node is killed while dpkg unpacks its first
  package: the package stays unpacked, dpkg's journal pending, `dpkg --audit` lists it and apt
  refuses with "dpkg was interrupted" until `dpkg --configure -a` runs. Debian-family only;
  clearing removes an unused switch, it does not repair dpkg (that is the operator's step).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeops.errors import LabError
from nodeops.lab import host, sshd
from nodeops.lab.lifecycle import node_exec_argv, status
from nodeops.lab.sim import faultfiles
from nodeops.lab.state import LabState, NodeState, locked, save_state
from nodeops.node import CONTROL_PLANE

KINDS = (
    "dpkg-lock",
    "kubelet-not-ready",
    "sshd-down",
    "kubeadm-fail",
    "apiserver-down",
    "pdb-blocking",
    "slow-download",
    "ssh-cut-kubeadm",
    "ssh-cut-restart",
    "kubelet-not-ready-on-restart",
    "dpkg-interrupt",
)
SSH_CUT_MOMENTS = {"ssh-cut-kubeadm": "kubeadm-upgrade", "ssh-cut-restart": "kubelet-restart"}
APISERVER_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
PDB_NAME = "nodeops-fault-web"
PDB_PATH = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"
DEFAULT_SLOW_SECONDS = 5.0

# Holds the dpkg locks the way apt does (fcntl F_SETLK write locks), names itself like
# unattended-upgrades, records its PID (as the node sees it) and sleeps.
_HOLDER = r"""
import ctypes, fcntl, os, sys, time
seconds, pid_file = float(sys.argv[1]), sys.argv[2]
with open("/proc/self/comm", "w") as comm:
    comm.write("unattended-upgr")
fds = []
for path in ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fds.append(fd)
tmp = pid_file + ".tmp"
with open(tmp, "w") as f:
    f.write(f"{os.getpid()}\n")
os.replace(tmp, pid_file)
try:
    if seconds > 0:
        time.sleep(seconds)
    else:
        while True:
            time.sleep(3600)
finally:
    try:
        os.unlink(pid_file)
    except OSError:
        pass
"""


@dataclass(frozen=True)
class Fault:
    """One switched-on fault."""

    node: str
    kind: str
    detail: str


def _state(name: str) -> LabState:
    state = status(name)
    if state is None:
        raise LabError(f"lab {name!r} is not up; start it with `invoke lab.up`")
    return state


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _set_file(state: LabState, node: str, path: Path, what: str, content: str = "") -> str:
    """Drop a fault file into the node (empty unless content is given); the fault's detail."""
    write = f"echo {shlex.quote(content)} >" if content else "touch"
    _in_node(state, node, f"mkdir -p {_q(path.parent)} && {write} {_q(path)}")
    return f"{path}: {what}"


def _in_node(state: LabState, node: str, script: str, timeout: float = 30) -> str:
    done = subprocess.run(
        node_exec_argv(state.name, node, ["/bin/sh", "-c", script]),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=host.NODE_ENV,
    )
    if done.returncode != 0:
        raise LabError(
            f"node {node}: `{script}` exited {done.returncode}:"
            f" {host.tail(done.stderr or done.stdout)}"
        )
    return done.stdout


def _faults_dir(state: LabState) -> Path:
    path = state.state_dir / "faults"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _control_plane(state: LabState) -> NodeState:
    for n in state.nodes:
        if CONTROL_PLANE in n.roles:
            return n
    raise LabError(f"lab {state.name} has no control-plane node")


# ---- dpkg-lock


def _dpkg_lock(state: LabState, node: NodeState, seconds: float | None) -> str:
    if "/dpkg" not in _in_node(state, node.name, "ls -d /var/lib/dpkg 2>/dev/null || true"):
        raise LabError(
            f"node {node.name} ({node.os}) has no dpkg: dpkg-lock needs a Debian-family node"
        )
    _clear_dpkg_lock(state, node)
    python = host.python_for_nodes()
    if python is None:
        raise LabError("no Python the nodes can run was found")
    pid_file = faultfiles.DPKG_LOCK_PID
    argv = [python, "-c", _HOLDER, str(seconds or 0), str(pid_file)]
    script = f"mkdir -p {_q(pid_file.parent)} && exec {shlex.join(argv)}"
    host.spawn(
        node_exec_argv(state.name, node.name, ["/bin/sh", "-c", script]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = _in_node(state, node.name, f"cat {_q(pid_file)} 2>/dev/null || true").strip()
        if pid.isdigit():
            how_long = f"for {seconds:g} s" if seconds else "until cleared"
            return f"process {pid} (unattended-upgr) holds the dpkg lock {how_long}"
        time.sleep(0.05)
    raise LabError(f"node {node.name}: the dpkg lock holder did not start")


def _clear_dpkg_lock(state: LabState, node: NodeState) -> bool:
    pid_file = _q(faultfiles.DPKG_LOCK_PID)
    script = (
        f"pid=$(cat {pid_file} 2>/dev/null) || exit 0; "
        f'rm -f {pid_file}; kill "$pid" 2>/dev/null || exit 0; '
        'for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done; '
        "echo cleared"
    )
    return "cleared" in _in_node(state, node.name, script)


# ---- sshd-down


def _sshd_down(state: LabState, node: NodeState) -> str:
    if not host.is_running(node.sshd_pid, node.sshd_start):
        return f"sshd of {node.name} is already down"
    left = host.terminate([node.sshd_pid])
    if left:
        raise LabError(f"node {node.name}: sshd {node.sshd_pid} did not stop")
    return f"sshd {node.sshd_pid} stopped; {node.address}:22 refuses connections"


def _clear_sshd(state: LabState, node: NodeState) -> bool:
    if host.is_running(node.sshd_pid, node.sshd_start):
        return False
    log = state.state_dir / "nodes" / node.name / "sshd.log"
    proc, pid = sshd.start(node.holder_pid, log)
    started = host.start_time(pid)
    if started is None:
        raise LabError(f"node {node.name}: sshd ended right away: {host.file_tail(log)}")
    sshd.wait_listening(node.name, node.address, proc, log)
    with locked(create=False):
        current = status(state.name) or state
        nodes = tuple(
            dataclasses.replace(n, sshd_pid=pid, sshd_start=started) if n.name == node.name else n
            for n in current.nodes
        )
        save_state(dataclasses.replace(current, nodes=nodes))
    return True


# ---- apiserver-down


def _saved_manifest(state: LabState, node: NodeState) -> Path:
    return _faults_dir(state) / f"{node.name}.kube-apiserver.yaml"


def _wait_api(state: LabState, node: NodeState, *, up: bool, timeout: float = 20.0) -> None:
    """Wait until node:6443 accepts connections (up) or refuses them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((node.address, 6443), timeout=1.0):
                answering = True
        except OSError:
            answering = False
        if answering == up:
            return
        time.sleep(0.1)
    what = "answer again" if up else "stop"
    raise LabError(f"node {node.name}: the apiserver did not {what} within {timeout:g} s")


def _apiserver_down(state: LabState, node: NodeState) -> str:
    saved = _saved_manifest(state, node)
    if saved.exists():
        return "the apiserver is already down"
    text = _in_node(state, node.name, f"cat {APISERVER_MANIFEST}")
    saved.write_text(text)
    saved.chmod(0o600)
    _in_node(state, node.name, f"rm -f {APISERVER_MANIFEST}")
    _wait_api(state, node, up=False)
    address = node.address
    return (
        f"moved {APISERVER_MANIFEST} to {saved}; the kubelet stops the apiserver and"
        f" {address}:6443 refuses connections"
    )


def _clear_apiserver(state: LabState, node: NodeState) -> bool:
    saved = _saved_manifest(state, node)
    if not saved.exists():
        return False
    argv = node_exec_argv(
        state.name,
        node.name,
        [
            "/bin/sh",
            "-c",
            f"umask 077; cat > /etc/kubernetes/.kube-apiserver.yaml.nodeops"
            f" && mv -f /etc/kubernetes/.kube-apiserver.yaml.nodeops {APISERVER_MANIFEST}",
        ],
    )
    done = subprocess.run(
        argv, input=saved.read_bytes(), capture_output=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise LabError(f"node {node.name}: restoring {APISERVER_MANIFEST} failed: {done.stderr!r}")
    saved.unlink()
    _wait_api(state, node, up=True)
    return True


# ---- pdb-blocking


def _pdbs_over_web(client: Any) -> list[dict[str, Any]]:
    items = client.get(PDB_PATH).get("items") or []
    return [
        p
        for p in items
        if ((p.get("spec") or {}).get("selector") or {}).get("matchLabels") == {"app": "web"}
    ]


def _pdb_blocking(state: LabState, node: NodeState) -> str:
    """Make the PDB over app=web allow no disruption: the sample one (`web`) is tightened
    (a second PDB over the same pods would make evictions fail with another error), or
    `nodeops-fault-web` is created when there is none."""
    from nodeops.lab.cluster import admin_client
    from nodeops.lab.sim.kubelet.apiclient import ApiError

    client = admin_client(state)
    record = _faults_dir(state) / "pdb-blocking.json"
    if record.exists():
        return "the PodDisruptionBudget over app=web already allows no disruption"
    try:
        web = client.get("/apis/apps/v1/namespaces/default/deployments/web")
        existing = _pdbs_over_web(client)
    except ApiError as e:
        raise LabError(f"pdb-blocking needs the sample Deployment default/web: {e}") from None
    replicas = int((web.get("spec") or {}).get("replicas") or 1)
    try:
        if existing:
            pdb = existing[0]
            name = str(pdb["metadata"]["name"])
            saved = {"node": node.name, "name": name, "spec": pdb["spec"], "created": False}
            spec = {"minAvailable": replicas, "selector": pdb["spec"]["selector"]}
            client.request("PUT", f"{PDB_PATH}/{name}", {**pdb, "spec": spec})
        else:
            name = PDB_NAME
            saved = {"node": node.name, "name": name, "spec": None, "created": True}
            pdb = {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"minAvailable": replicas, "selector": {"matchLabels": {"app": "web"}}},
            }
            client.request("POST", PDB_PATH, pdb)
    except ApiError as e:
        raise LabError(f"making PodDisruptionBudget {name} blocking failed: {e}") from None
    record.write_text(json.dumps(saved))
    return f"PodDisruptionBudget default/{name}: minAvailable {replicas} of {replicas} app=web pods"


def _clear_pdb(state: LabState, node: str | None) -> str:
    """Undo pdb-blocking (when `node` is None or the one it was switched on for)."""
    from nodeops.lab.cluster import admin_client
    from nodeops.lab.sim.kubelet.apiclient import ApiError

    record = _faults_dir(state) / "pdb-blocking.json"
    if not record.exists():
        return ""
    saved = json.loads(record.read_text())
    if node is not None and node != saved["node"]:
        return ""
    client = admin_client(state)
    path = f"{PDB_PATH}/{saved['name']}"
    try:
        if saved["created"]:
            client.request("DELETE", path)
        else:
            current = client.get(path)
            client.request("PUT", path, {**current, "spec": saved["spec"]})
    except ApiError as e:
        if e.status != 404:
            raise LabError(f"restoring PodDisruptionBudget {saved['name']} failed: {e}") from None
    record.unlink()
    return str(saved["node"])


# ---- the switch


def inject(name: str, node: str, kind: str, seconds: float | None = None) -> Fault:
    """Switch a fault on; what it did."""
    if kind not in KINDS:
        raise LabError(f"unknown fault {kind!r}; kinds: {', '.join(KINDS)}")
    if seconds is not None and seconds <= 0:
        raise LabError("--seconds must be positive")
    state = _state(name)
    n = state.node(node)
    if kind == "dpkg-lock":
        detail = _dpkg_lock(state, n, seconds)
    elif kind == "kubelet-not-ready":
        detail = _set_file(state, node, faultfiles.NOT_READY, "the kubelet posts Ready=False")
    elif kind == "sshd-down":
        detail = _sshd_down(state, n)
    elif kind == "kubeadm-fail":
        what = "the next `kubeadm upgrade apply|node` fails and rolls back"
        detail = _set_file(state, node, faultfiles.KUBEADM_FAIL, what)
    elif kind == "apiserver-down":
        if CONTROL_PLANE not in n.roles:
            raise LabError(f"node {node} is not a control-plane node: it runs no apiserver")
        detail = _apiserver_down(state, n)
    elif kind == "pdb-blocking":
        detail = _pdb_blocking(state, n)
    elif kind in SSH_CUT_MOMENTS:
        moment = SSH_CUT_MOMENTS[kind]
        what = "`kubeadm upgrade node`" if moment == "kubeadm-upgrade" else "kubelet restart"
        what = f"the SSH session of the next {what} is cut as it starts"
        detail = _set_file(state, node, faultfiles.SSH_CUT, what, content=moment)
    elif kind == "kubelet-not-ready-on-restart":
        what = "the next kubelet restart posts Ready=False"
        detail = _set_file(state, node, faultfiles.NOT_READY_ON_RESTART, what)
    elif kind == "dpkg-interrupt":
        if "/dpkg" not in _in_node(state, node, "ls -d /var/lib/dpkg 2>/dev/null || true"):
            raise LabError(
                f"node {node} ({n.os}) has no dpkg: dpkg-interrupt needs a Debian-family node"
            )
        what = "the next apt install is killed while dpkg unpacks"
        detail = _set_file(state, node, faultfiles.DPKG_INTERRUPT, what)
    else:
        secs = seconds or DEFAULT_SLOW_SECONDS
        what = f"{secs:g} s per package download"
        detail = _set_file(state, node, faultfiles.SLOW_DOWNLOAD, what, content=f"{secs:g}")
    return Fault(node=node, kind=kind, detail=detail)


def clear(name: str, node: str | None = None, kind: str = "all") -> list[Fault]:
    """Switch faults off (one kind or `all`), on one node or on every node; those that were on."""
    if kind != "all" and kind not in KINDS:
        raise LabError(f"unknown fault {kind!r}; kinds: {', '.join(KINDS)} (or all)")
    state = _state(name)
    nodes = [state.node(node)] if node else list(state.nodes)

    def wanted(k: str) -> bool:
        return kind in ("all", k)

    cleared: list[Fault] = []
    for n in nodes:
        # sshd first: the other clears do not need it, but an operator's next step does.
        if wanted("sshd-down") and _clear_sshd(state, n):
            cleared.append(Fault(n.name, "sshd-down", "sshd started again"))
        if wanted("apiserver-down") and _clear_apiserver(state, n):
            cleared.append(Fault(n.name, "apiserver-down", f"{APISERVER_MANIFEST} restored"))
        if wanted("dpkg-lock") and _clear_dpkg_lock(state, n):
            cleared.append(Fault(n.name, "dpkg-lock", "the lock holder ended"))
        files = {
            k: p
            for k, p in (
                ("kubelet-not-ready", faultfiles.NOT_READY),
                ("kubeadm-fail", faultfiles.KUBEADM_FAIL),
                ("slow-download", faultfiles.SLOW_DOWNLOAD),
                ("ssh-cut-kubeadm", faultfiles.SSH_CUT),
                ("ssh-cut-restart", faultfiles.SSH_CUT),
                ("kubelet-not-ready-on-restart", faultfiles.NOT_READY_ON_RESTART),
                ("dpkg-interrupt", faultfiles.DPKG_INTERRUPT),
            )
            if wanted(k)
        }
        if files:
            script = "; ".join(
                (
                    f"grep -qx {SSH_CUT_MOMENTS[k]} {_q(p)} 2>/dev/null"
                    if k in SSH_CUT_MOMENTS
                    else f"[ -e {_q(p)} ]"
                )
                + f" && rm -f {_q(p)} && echo {k}"
                for k, p in files.items()
            )
            for k in _in_node(state, n.name, script + "; true").split():
                cleared.append(Fault(n.name, k, f"{files[k]} removed"))
    owner = _clear_pdb(state, node) if wanted("pdb-blocking") else ""
    if owner:
        cleared.append(
            Fault(owner, "pdb-blocking", "the PodDisruptionBudget over app=web restored")
        )
    return cleared


def describe(faults: list[Fault]) -> str:
    """One line per fault."""
    return "\n".join(f"{f.node}: {f.kind}: {f.detail}" for f in faults)


def to_json(faults: list[Fault]) -> str:
    """Faults as JSON."""
    return json.dumps([dataclasses.asdict(f) for f in faults])
