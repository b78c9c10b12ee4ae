"""What a lab is: its nodes with their OS and roles, and the names and addresses derived from it."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from nodeops.errors import InventoryError, LabError
from nodeops.node import CONTROL_PLANE, ETCD, ROLES, WORKER, check_node_name

#: Operating systems a lab node can pretend to run (see images.py).
OPERATING_SYSTEMS = ("ubuntu-22.04", "ubuntu-24.04", "debian-12", "rocky-9")

DEFAULT_LAB = "lab"
DEFAULT_SUBNET = "10.213.0.0/24"
#: Nodes get host numbers 11, 12, ... of the subnet; the bridge gets the first host.
FIRST_NODE_HOST = 11

# Lab names are short and have no '-', so `nodeops-<lab>-` never prefixes another lab's names.
_LAB_NAME = re.compile(r"[a-z][a-z0-9]{0,19}")


def check_lab_name(name: object) -> str:
    """Return name if it can name a lab, else raise LabError."""
    if not isinstance(name, str) or not _LAB_NAME.fullmatch(name):
        raise LabError(
            f"{name!r} is not a valid lab name (a lowercase letter, then up to 19 lowercase"
            " letters or digits)"
        )
    return name


@dataclass(frozen=True)
class NodeSpec:
    """One lab node: its name (also its host name), the OS it pretends to run, its roles."""

    name: str
    os: str
    roles: tuple[str, ...] = (WORKER,)

    def __post_init__(self) -> None:
        try:
            check_node_name(self.name)
        except InventoryError as e:
            raise LabError(f"lab node: {e}") from None
        if len(self.name) > 63:
            raise LabError(f"lab node name {self.name!r} is longer than a host name (63)")
        if self.os not in OPERATING_SYSTEMS:
            raise LabError(
                f"node {self.name}: unknown lab OS {self.os!r};"
                f" known: {', '.join(OPERATING_SYSTEMS)}"
            )
        roles = tuple(self.roles)
        unknown = sorted(set(roles) - ROLES)
        if unknown:
            raise LabError(f"node {self.name}: unknown role(s) {unknown}; known: {sorted(ROLES)}")
        object.__setattr__(self, "roles", roles)


@dataclass(frozen=True, kw_only=True)
class LabSpec:
    """A lab: its name, its nodes, and its private IPv4 subnet ("" derives one from the name)."""

    name: str = DEFAULT_LAB
    nodes: tuple[NodeSpec, ...]
    subnet: str = ""

    def __post_init__(self) -> None:
        check_lab_name(self.name)
        nodes = tuple(self.nodes)
        if not nodes:
            raise LabError(f"lab {self.name}: no nodes")
        names = [n.name for n in nodes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise LabError(f"lab {self.name}: duplicate node name(s) {duplicates}")
        object.__setattr__(self, "nodes", nodes)
        subnet = self.subnet or derived_subnet(self.name)
        try:
            network = ipaddress.IPv4Network(subnet)
        except ValueError as e:
            raise LabError(f"lab {self.name}: {subnet!r} is not an IPv4 subnet: {e}") from None
        if not network.is_private or network.is_loopback or network.is_link_local:
            raise LabError(
                f"lab {self.name}: subnet {network} is not a private range (RFC 1918 and the like)"
            )
        if network.num_addresses - 2 < FIRST_NODE_HOST - 1 + len(nodes):
            raise LabError(f"lab {self.name}: subnet {network} is too small for {len(nodes)} nodes")
        object.__setattr__(self, "subnet", str(network))

    @property
    def network(self) -> ipaddress.IPv4Network:
        """The lab's subnet."""
        return ipaddress.IPv4Network(self.subnet)

    @property
    def bridge_address(self) -> str:
        """The host's address on the lab bridge: the subnet's first host."""
        return str(self.network.network_address + 1)

    def address(self, node: str) -> str:
        """The address of a node of this lab."""
        return str(self.network.network_address + FIRST_NODE_HOST + self.index(node))

    def index(self, node: str) -> int:
        """The position of a node in this lab, from 0."""
        for i, n in enumerate(self.nodes):
            if n.name == node:
                return i
        raise LabError(f"lab {self.name} has no node {node!r}")

    def node(self, node: str) -> NodeSpec:
        """The spec of a node of this lab."""
        return self.nodes[self.index(node)]


def derived_subnet(lab: str) -> str:
    """A lab's subnet: 10.213.0.0/24 for "lab", else 10.213.X.0/24, X (1..250) from its name."""
    if lab == DEFAULT_LAB:
        return DEFAULT_SUBNET
    x = 1 + int.from_bytes(hashlib.sha256(f"nodeops-lab:{lab}".encode()).digest()[:4], "big") % 250
    return f"10.213.{x}.0/24"


def default_spec(
    name: str = DEFAULT_LAB,
    workers: int = 2,
    worker_os: Sequence[str] = ("ubuntu-24.04", "rocky-9"),
    control_planes: int = 1,
    control_plane_os: Sequence[str] = ("ubuntu-22.04", "debian-12"),
) -> LabSpec:
    """cp1.. (control-plane and etcd, cycling through control_plane_os: cp1 ubuntu-22.04,
    cp2 debian-12 by default), then worker1.. cycling through worker_os."""
    if control_planes < 1:
        raise LabError(f"control_planes must be 1 or more, not {control_planes}")
    if not control_plane_os:
        raise LabError("control_plane_os is empty")
    if workers < 0:
        raise LabError(f"workers must be 0 or more, not {workers}")
    if workers and not worker_os:
        raise LabError("worker_os is empty")
    nodes = [
        NodeSpec(f"cp{i + 1}", control_plane_os[i % len(control_plane_os)], (CONTROL_PLANE, ETCD))
        for i in range(control_planes)
    ]
    nodes += [NodeSpec(f"worker{i + 1}", worker_os[i % len(worker_os)]) for i in range(workers)]
    return LabSpec(name=name, nodes=tuple(nodes))


# Names of the lab's kernel objects. Interface names are at most 15 characters.


def _short_hash(lab: str) -> str:
    return hashlib.sha256(lab.encode()).hexdigest()[:6]


def netns_prefix(lab: str) -> str:
    """The prefix of every network namespace of a lab."""
    return f"nodeops-{lab}-"


def netns_name(lab: str, node: str) -> str:
    """The network namespace of a node: nodeops-<lab>-<node>."""
    return netns_prefix(lab) + node


def bridge_name(lab: str) -> str:
    """The lab's bridge in the root namespace: nolab-<hash of the lab name> (12 characters)."""
    return f"nolab-{_short_hash(lab)}"


def veth_prefix(lab: str) -> str:
    """The prefix of the root-side ends of a lab's veth pairs."""
    return f"nol-{_short_hash(lab)}-"


def veth_name(lab: str, index: int) -> str:
    """The root-side veth of the node at index (from 0): nol-<hash>-<index+1>, <= 14 chars."""
    return f"{veth_prefix(lab)}{index + 1}"
