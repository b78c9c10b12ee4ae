"""The lab's network: a bridge in the root namespace, per node a namespace joined by a veth pair.

No forwarding and no NAT: nodes reach each other and the host's bridge address, nothing else.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Callable, Collection
from concurrent.futures import Executor

from nodeops.errors import LabError
from nodeops.lab import host
from nodeops.lab.spec import (
    LabSpec,
    bridge_name,
    derived_subnet,
    netns_name,
    netns_prefix,
    veth_name,
    veth_prefix,
)


def check_free(spec: LabSpec) -> None:
    """Raise LabError if another interface has the bridge address or an address in the subnet."""
    bridge = bridge_name(spec.name)
    network = spec.network
    for link in json.loads(host.run(["ip", "-j", "addr", "show"]) or "[]"):
        if link.get("ifname") == bridge:
            continue
        for a in link.get("addr_info", []):
            if a.get("family") != "inet":
                continue
            local = ipaddress.IPv4Address(a["local"])
            if local == ipaddress.IPv4Address(spec.bridge_address) or local in network:
                raise LabError(
                    f"lab {spec.name}: its subnet {network} is in use: {link.get('ifname')} has"
                    f" {local}/{a.get('prefixlen')}; choose another lab name or subnet"
                )


def fresh_name(prefix: str) -> str:
    """A new lab name (prefix + 6 hex digits) whose derived subnet no interface here uses."""
    used = {
        ipaddress.IPv4Address(a["local"])
        for link in json.loads(host.run(["ip", "-j", "addr", "show"]) or "[]")
        for a in link.get("addr_info", [])
        if a.get("family") == "inet"
    }
    while True:
        name = prefix + secrets.token_hex(3)
        if not any(a in ipaddress.IPv4Network(derived_subnet(name)) for a in used):
            return name


def create(spec: LabSpec, pool: Executor) -> None:
    """Create the bridge, the namespaces and the veth pairs, and address them."""
    lab = spec.name
    bridge = bridge_name(lab)
    lines = [
        f"link add {bridge} type bridge",
        f"addr add {spec.bridge_address}/{spec.network.prefixlen} dev {bridge}",
        f"link set {bridge} up",
    ]
    for i, node in enumerate(spec.nodes):
        ns, veth = netns_name(lab, node.name), veth_name(lab, i)
        lines += [
            f"netns add {ns}",
            f"link add {veth} type veth peer name eth0 netns {ns}",
            f"link set {veth} master {bridge} up",
        ]
    host.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n")

    def inside(node: str) -> Callable[[], str]:
        script = (
            f"addr add {spec.address(node)}/{spec.network.prefixlen} dev eth0\n"
            "link set eth0 up\nlink set lo up\n"
        )
        return lambda: host.run(["ip", "-n", netns_name(lab, node), "-batch", "-"], input=script)

    for f in [pool.submit(inside(n.name)) for n in spec.nodes]:
        f.result()


def lab_netns(lab: str) -> list[str]:
    """The lab's network namespaces that exist, found by their prefix."""
    out = host.run(["ip", "-j", "netns", "list"]).strip()
    names = [entry["name"] for entry in json.loads(out)] if out else []
    return sorted(n for n in names if n.startswith(netns_prefix(lab)))


def lab_links(lab: str) -> list[str]:
    """The lab's interfaces in the root namespace (bridge and veths), found by their names."""
    out = host.run(["ip", "-j", "link", "show"]).strip()
    names = [link["ifname"] for link in json.loads(out)] if out else []
    return sorted(n for n in names if n == bridge_name(lab) or n.startswith(veth_prefix(lab)))


def netns_pids(ns: str) -> list[int]:
    """The processes in a network namespace."""
    try:
        out = host.run(["ip", "netns", "pids", ns])
    except LabError:
        return []
    return [int(p) for p in out.split()]


def destroy(lab: str, namespaces: Collection[str]) -> None:
    """Delete the lab's veths, namespaces and bridge, whichever exist."""
    links = lab_links(lab)
    bridge = bridge_name(lab)
    lines = [f"link del {link}" for link in links if link != bridge]
    lines += [f"netns del {ns}" for ns in namespaces]
    lines += [f"link del {bridge}" for link in links if link == bridge]
    if not lines:
        return
    try:
        # -force: go on after an error (a veth that vanished with its namespace)
        host.run(["ip", "-force", "-batch", "-"], input="\n".join(lines) + "\n")
    except LabError as e:
        left = lab_links(lab) + [ns for ns in lab_netns(lab) if ns in set(namespaces)]
        if left:
            raise LabError(f"lab {lab}: could not delete {', '.join(left)}: {e}") from None
