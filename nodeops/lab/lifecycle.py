"""Bring a lab up, tear it down, report it, and reach its nodes (nsenter, ssh)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from nodeops.errors import LabError
from nodeops.lab import host, inventory, network, nodefs, sshd
from nodeops.lab.spec import (
    DEFAULT_LAB,
    LabSpec,
    NodeSpec,
    bridge_name,
    check_lab_name,
    netns_name,
    veth_name,
)
from nodeops.lab.state import (
    LabState,
    NodeState,
    load_state,
    locked,
    save_state,
    state_dir,
    write_file,
)

KEY_NAME = "id_ed25519"
KNOWN_HOSTS = "known_hosts"
SSHD_START_TIMEOUT = 10.0


def _down_hint(name: str) -> str:
    return "`invoke lab.down`" if name == DEFAULT_LAB else f"`invoke lab.down --name {name}`"


def up(spec: LabSpec, *, inventory_path: Path | None = None) -> LabState:
    """Bring a lab up (or reuse the identical running one) and write its inventory."""
    host.check_host()
    inv = (inventory_path or inventory.DEFAULT_PATH).absolute()
    with locked(create=True):
        current = load_state(spec.name)
        if current is not None:
            return _reuse(current, spec, inv)
        left = _leftovers(spec.name)
        if left:
            raise LabError(
                f"lab {spec.name} is not up, but parts of it are left ({', '.join(left)});"
                f" run {_down_hint(spec.name)} first"
            )
        network.check_free(spec)
        inventory.check_writable(inv, spec.name)
        try:
            return _build(spec, inv)
        except BaseException as e:
            undone = "and was undone"
            try:
                _teardown(spec.name, load_state(spec.name))
            except LabError as cleanup:
                undone = f"and undoing it failed too: {cleanup}"
                e.add_note(undone)
            if isinstance(e, Exception) and not isinstance(e, LabError):
                raise LabError(f"lab {spec.name}: up failed ({e!r}) {undone}") from e
            raise


def _reuse(current: LabState, spec: LabSpec, inv: Path) -> LabState:
    name = spec.name
    if current.spec != spec:
        raise LabError(
            f"lab {name} is already up with another spec ({_describe(current.spec)});"
            f" run {_down_hint(name)} first"
        )
    broken = problems(current)
    if broken:
        raise LabError(
            f"lab {name} is up but broken ({'; '.join(broken)}); run {_down_hint(name)} first"
        )
    if current.inventory_path != inv:
        inventory.check_writable(inv, name)
        moved = dataclasses.replace(current, inventory_path=inv)
        save_state(moved)
        inventory.write(moved)
        inventory.remove(current.inventory_path, name)
        return moved
    if not inventory.written_by(inv, name):
        inventory.write(current)
    return current


def _describe(spec: LabSpec) -> str:
    nodes = ", ".join(f"{n.name} {n.os}" for n in spec.nodes)
    return f"{spec.subnet}: {nodes}"


def _leftovers(name: str) -> list[str]:
    left = network.lab_netns(name) + network.lab_links(name)
    if state_dir(name).exists():
        left.append(str(state_dir(name)))
    return left


def _build(spec: LabSpec, inv: Path) -> LabState:
    name = spec.name
    sd = state_dir(name)
    sd.mkdir(mode=0o700)
    (sd / "nodes").mkdir(mode=0o700)
    python = host.python_for_nodes()
    assert python is not None  # check_host made sure
    key = sd / KEY_NAME
    with ThreadPoolExecutor(max_workers=min(32, len(spec.nodes) + 1)) as pool:
        client = pool.submit(sshd.generate_key, key, f"nodeops-lab-{name}")
        network.create(spec, pool)
        client_key = client.result()
        futures = [
            pool.submit(_start_node, spec, node, sd, client_key, python) for node in spec.nodes
        ]
        nodes = _results(futures)
    known_hosts = sd / KNOWN_HOSTS
    write_file(known_hosts, sshd.known_hosts({n.address: n.host_key for n in nodes}), 0o600)
    state = LabState(
        spec=spec,
        nodes=tuple(nodes),
        state_dir=sd,
        key_path=key,
        known_hosts_path=known_hosts,
        inventory_path=inv,
        bridge=bridge_name(name),
        bridge_address=spec.bridge_address,
    )
    save_state(state)
    inventory.write(state)
    return state


def _results(futures: list[Future[NodeState]]) -> list[NodeState]:
    """Every node's state, or the first failure (after all finished, so cleanup sees them all)."""
    errors = [e for f in futures if (e := f.exception()) is not None]
    if errors:
        first = errors[0]
        if len(errors) > 1:
            first.add_note(f"{len(errors) - 1} more node(s) failed too")
        raise first
    return [f.result() for f in futures]


def _start_node(spec: LabSpec, node: NodeSpec, sd: Path, client_key: str, python: str) -> NodeState:
    nd = sd / "nodes" / node.name
    address = spec.address(node.name)
    hosts = {n.name: spec.address(n.name) for n in spec.nodes}
    nodefs.prepare(nd, node.name, node.os, authorized_key=client_key, hosts=hosts)
    host_key = sshd.configure_node(nodefs.uppers(nd)["etc"], node.name, address)
    ns = netns_name(spec.name, node.name)
    _, holder = nodefs.start_holder(ns, node.name, nd, python)
    log = nd / "sshd.log"
    proc, sshd_pid = sshd.start(holder, log)
    holder_start, sshd_start = host.start_time(holder), host.start_time(sshd_pid)
    if holder_start is None or sshd_start is None:
        raise LabError(f"node {node.name}: its processes ended right away: {host.file_tail(log)}")
    sshd.wait_listening(node.name, address, proc, log, SSHD_START_TIMEOUT)
    return NodeState(
        name=node.name,
        os=node.os,
        roles=node.roles,
        address=address,
        netns=ns,
        veth=veth_name(spec.name, spec.index(node.name)),
        holder_pid=holder,
        holder_start=holder_start,
        sshd_pid=sshd_pid,
        sshd_start=sshd_start,
        host_key=sshd.public_key(host_key),
        host_key_fingerprint=sshd.fingerprint(host_key),
    )


def down(name: str = DEFAULT_LAB) -> None:
    """Tear a lab down: its processes, namespaces, links, state and inventory. Safe to repeat."""
    check_lab_name(name)
    host.check_privileges()
    with locked(create=False):
        _teardown(name, load_state(name))


def _teardown(name: str, state: LabState | None) -> None:
    namespaces = network.lab_netns(name)
    pids = {pid for ns in namespaces for pid in network.netns_pids(ns)}
    for n in state.nodes if state else ():
        for pid, start in ((n.holder_pid, n.holder_start), (n.sshd_pid, n.sshd_start)):
            if host.is_running(pid, start):
                pids.add(pid)
    # Processes inside a node's PID namespace go first, while their parents outside it (nsenter)
    # still run to reap them: the node's init cannot finish exiting before they are reaped.
    # Then the inits, which take whatever is left inside with them; then the parents outside.
    inits = {p for p in pids if host.is_namespace_init(p)}
    inner_namespaces = {host.pid_namespace(p) for p in inits} - {None}
    inner = {p for p in pids - inits if host.pid_namespace(p) in inner_namespaces}
    errors = []
    survivors = [s for group in (inner, inits, pids - inits - inner) for s in host.terminate(group)]
    if survivors:
        errors.append(f"processes {survivors} did not exit")
    try:
        network.destroy(name, namespaces)
    except LabError as e:
        errors.append(str(e))
    sd = state_dir(name)
    if sd.exists():
        try:
            shutil.rmtree(sd)
        except OSError as e:
            errors.append(f"could not remove {sd}: {e}")
    for path in {state.inventory_path if state else None, inventory.DEFAULT_PATH}:
        inventory.remove(path, name)
    if errors:
        raise LabError(f"lab {name}: teardown incomplete: {'; '.join(errors)}")


def status(name: str = DEFAULT_LAB) -> LabState | None:
    """The recorded state of a lab, None when it is not up (see problems() for its health)."""
    check_lab_name(name)
    return load_state(name)


def problems(state: LabState) -> list[str]:
    """What is wrong with a lab that is recorded as up: gone namespaces, processes, bridge."""
    found = []
    namespaces = set(network.lab_netns(state.name))
    if state.bridge not in network.lab_links(state.name):
        found.append(f"bridge {state.bridge} is gone")
    for n in state.nodes:
        if n.netns not in namespaces:
            found.append(f"node {n.name}: network namespace {n.netns} is gone")
        if not host.is_running(n.holder_pid, n.holder_start):
            found.append(f"node {n.name}: its holder process {n.holder_pid} is gone")
        if not host.is_running(n.sshd_pid, n.sshd_start):
            found.append(f"node {n.name}: sshd {n.sshd_pid} is gone")
    return found


def _running(name: str, node: str) -> tuple[LabState, NodeState]:
    state = status(name)
    if state is None:
        raise LabError(f"lab {name} is not up")
    n = state.node(node)
    if not host.is_running(n.holder_pid, n.holder_start):
        raise LabError(
            f"node {node} of lab {name} is not running (holder {n.holder_pid} is gone);"
            f" run {_down_hint(name)}, then lab.up"
        )
    return state, n


def node_exec_argv(name: str, node: str, argv: Sequence[str]) -> list[str]:
    """An argv that runs argv inside a node's namespaces (network, mount, UTS, PID)."""
    _, n = _running(name, node)
    return ["nsenter", "-t", str(n.holder_pid), "-n", "-m", "-u", "-p", "--", *argv]


def ssh_argv(name: str, node: str, command: Sequence[str] | None = None) -> list[str]:
    """An OpenSSH argv to a node as root with the lab's key and known_hosts (strict checking).

    As with `ssh HOST WORDS...`, the node's shell runs the command words joined by spaces:
    pass [shlex.join(argv)] to keep an argv's words apart. None opens a login shell.
    """
    state, n = _running(name, node)
    argv = [
        "ssh",
        "-i", str(state.key_path),
        "-o", f"UserKnownHostsFile={state.known_hosts_path}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "IdentitiesOnly=yes",
        "-F", "/dev/null",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=5",
        # OpenSSH's default post-quantum hybrid key exchange costs ~80 ms of CPU per connection
        "-o", "KexAlgorithms=curve25519-sha256",
        f"root@{n.address}",
    ]  # fmt: skip
    if command is not None:
        argv += ["--", *command]
    return argv
