"""Vagrant: read `vagrant ssh-config` output and write the nodeops inventory of a Vagrant lab.

Pure: text in, records and YAML text out. `nodeops/tasks/vagrant.py` runs `vagrant` and
writes the file. Everything read from ssh-config is checked the way the inventory loader
checks it (node names, addresses, users, ports), so a hostile or broken ssh-config fails
here, with its line number, instead of reaching an inventory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType

import yaml

from nodeops.errors import InventoryError
from nodeops.node import (
    CONTROL_PLANE,
    ETCD,
    WORKER,
    check_address,
    check_node_name,
    check_port,
    check_user,
)

#: The first line of every inventory this module writes (the task refuses to replace others).
HEADER = "# Written by `invoke vagrant.inventory` from `vagrant ssh-config`; run it to refresh."

#: The known_hosts file the inventory names, relative to the inventory file.
KNOWN_HOSTS = "vagrant.known_hosts"

#: The Vagrantfile's defaults: NODEOPS_NET_PREFIX and the last octet of each machine.
#: tests/unit/test_vagrant.py checks that these agree with the Vagrantfile.
DEFAULT_NET_PREFIX = "192.168.56"
MACHINE_HOSTS: Mapping[str, int] = MappingProxyType({"cp1": 10, "worker1": 11, "worker2": 12})

#: The SSH port inside each VM: what a private network address is reached on.
GUEST_SSH_PORT = 22

_CONTROL_PLANE_NAME = re.compile(r"(cp|control)")
_PREFIX = re.compile(r"(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){2}")
_PLAIN = re.compile(r"[A-Za-z0-9_./+-]+")
# `Keyword value`, `Keyword=value` or `Keyword = value`, as ssh_config(5) allows.
_LINE = re.compile(r"([A-Za-z][A-Za-z0-9]*)(?:\s*=\s*|\s+)(.*)")


@dataclass(frozen=True)
class SshHost:
    """One `Host` block of `vagrant ssh-config` output: how Vagrant reaches one machine."""

    name: str
    hostname: str
    port: int
    user: str | None = None
    identity_files: tuple[str, ...] = ()
    # Every other keyword, lowercased, with its first value (StrictHostKeyChecking, ...).
    options: Mapping[str, str] = field(default_factory=dict)
    line: int = 0  # where the block starts, for messages

    @property
    def checks_host_keys(self) -> bool:
        """Whether this block leaves host key checking on (Vagrant's never does)."""
        strict = self.options.get("stricthostkeychecking", "ask").lower()
        known = self.options.get("userknownhostsfile", "")
        return strict not in ("no", "off") and known != "/dev/null"

    @property
    def proxy(self) -> str | None:
        """The ProxyCommand or ProxyJump Vagrant reaches the machine through, if any."""
        return self.options.get("proxycommand") or self.options.get("proxyjump")


@dataclass(frozen=True)
class VagrantNode:
    """A node of the generated inventory, with why its address was chosen."""

    name: str
    address: str
    port: int
    user: str | None
    key: str | None
    roles: tuple[str, ...]
    private: bool  # True: private network address from the Vagrantfile; False: ssh-config's


@dataclass
class _Block:
    """A `Host` block while it is read."""

    name: str
    line: int
    values: dict[str, tuple[str, str]] = field(default_factory=dict)  # keyword: (value, where)
    identity_files: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)


def parse_ssh_config(text: str) -> tuple[SshHost, ...]:
    """Read `vagrant ssh-config` output (one `Host` block per machine) into SshHosts."""
    blocks: list[_Block] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"ssh-config line {number}"
        if not line.isprintable():
            raise InventoryError(f"{where}: control characters in {line[:60]!r}")
        match = _LINE.fullmatch(line)
        if not match:
            raise InventoryError(f"{where}: expected `Keyword value`, got {line[:60]!r}")
        keyword, value = match.group(1).lower(), match.group(2).strip()
        if keyword == "match":
            raise InventoryError(f"{where}: `Match` blocks are not Vagrant output")
        if keyword == "host":
            blocks.append(_Block(_host_name(value, where), number))
            continue
        if not blocks:
            raise InventoryError(
                f"{where}: {match.group(1)} before any `Host` line; is this `vagrant ssh-config`"
                " output?"
            )
        block, value = blocks[-1], _unquote(value, where)
        if keyword == "identityfile":
            block.identity_files.append(value)
        elif keyword in ("hostname", "port", "user"):
            if keyword in block.values:
                raise InventoryError(f"{where}: {match.group(1)} given twice for one Host")
            block.values[keyword] = (value, where)
        else:
            block.options.setdefault(keyword, value)  # as in ssh: the first value counts
    if not blocks:
        raise InventoryError("no `Host` block in the ssh-config output (are the VMs up?)")
    seen: dict[str, int] = {}
    for block in blocks:
        if block.name in seen:
            raise InventoryError(
                f"ssh-config line {block.line}: Host {block.name} again (first at line"
                f" {seen[block.name]})"
            )
        seen[block.name] = block.line
    return tuple(_host(block) for block in blocks)


def _host_name(value: str, where: str) -> str:
    words = value.split()
    if len(words) != 1:
        raise InventoryError(
            f"{where}: `Host {value[:60]}` names {len(words)} patterns; Vagrant writes one machine"
            " name"
        )
    try:
        return check_node_name(words[0])
    except InventoryError as error:
        raise InventoryError(f"{where}: Host {words[0][:60]!r}: {error}") from None


def _unquote(value: str, where: str) -> str:
    """A value without the double quotes Vagrant puts around paths with spaces."""
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            raise InventoryError(f"{where}: unbalanced quotes in {value[:60]!r}")
        # Vagrant does not escape quotes inside (hashicorp/vagrant#6428): keep them.
        value = value[1:-1]
    if not value:
        raise InventoryError(f"{where}: empty value")
    return value


def _host(block: _Block) -> SshHost:
    checked: dict[str, str | int] = {}
    for keyword, check in (("hostname", check_address), ("port", check_port), ("user", check_user)):
        if keyword in block.values:
            value, where = block.values[keyword]
            try:
                checked[keyword] = check(value)
            except InventoryError as error:
                raise InventoryError(f"{where}: Host {block.name}: {error}") from None
    if "hostname" not in checked:
        raise InventoryError(f"ssh-config line {block.line}: Host {block.name} has no HostName")
    user = checked.get("user")
    return SshHost(
        name=block.name,
        hostname=str(checked["hostname"]),
        port=int(checked.get("port", GUEST_SSH_PORT)),
        user=None if user is None else str(user),
        identity_files=tuple(block.identity_files),
        options=MappingProxyType(dict(block.options)),
        line=block.line,
    )


def roles_for(name: str) -> tuple[str, ...]:
    """Roles from a machine name: cp*/control* run the control plane and etcd, others work."""
    if _CONTROL_PLANE_NAME.match(name):
        return (CONTROL_PLANE, ETCD)
    return (WORKER,)


def private_addresses(
    prefix: str = DEFAULT_NET_PREFIX, machines: Mapping[str, int] = MACHINE_HOSTS
) -> dict[str, str]:
    """The private network address of each Vagrantfile machine, for a network prefix."""
    if not _PREFIX.fullmatch(prefix) or max(int(o) for o in prefix.split(".")) > 255:
        raise InventoryError(
            f"network prefix {prefix!r} must be three octets, like {DEFAULT_NET_PREFIX}"
        )
    return {name: f"{prefix}.{host}" for name, host in machines.items()}


def to_nodes(
    hosts: Sequence[SshHost],
    *,
    private: Mapping[str, str],
    key_exists: Callable[[str], bool] = lambda path: True,
) -> tuple[VagrantNode, ...]:
    """The inventory nodes: the private address (port 22) where known, else ssh-config's."""
    nodes = []
    for host in hosts:
        address = private.get(host.name)
        if address is not None:
            check_address(address)
        keys = host.identity_files
        # ssh tries every IdentityFile in turn; nodeops takes one: the first that exists.
        key = next((k for k in keys if key_exists(k)), keys[0] if keys else None)
        nodes.append(
            VagrantNode(
                name=host.name,
                address=address or host.hostname,
                port=GUEST_SSH_PORT if address else host.port,
                user=host.user,
                key=key,
                roles=roles_for(host.name),
                private=address is not None,
            )
        )
    return tuple(nodes)


def key_path(key: str, *, inventory_dir: str, project_dir: str) -> str:
    """A key path as the inventory writes it: relative to the inventory when in the project.

    Keys under the project (.vagrant/machines/NAME/PROVIDER/private_key) are written
    relative to the inventory, so the file works from any checkout; others stay absolute.
    """
    path = PurePosixPath(key)
    project = PurePosixPath(os.path.normpath(project_dir))
    if path.is_absolute() and os.path.normpath(key).startswith(f"{project}/"):
        return os.path.relpath(os.path.normpath(key), os.path.normpath(inventory_dir))
    return key


def render_inventory(
    nodes: Sequence[VagrantNode],
    *,
    inventory_dir: str,
    project_dir: str,
    known_hosts: str = KNOWN_HOSTS,
) -> str:
    """The nodeops inventory YAML for a Vagrant lab, with its choices explained in comments."""
    if not nodes:
        raise InventoryError("no nodes to write")
    any_private = any(n.private for n in nodes)
    any_forwarded = not all(n.private for n in nodes)
    lines = [
        HEADER,
        "#",
        "# Addresses:",
    ]
    if any_private:
        lines += [
            "#   private: the private network address the Vagrantfile gives the machine, on the",
            "#   VM's own sshd (port 22), rather than the 127.0.0.1:PORT that `vagrant ssh-config`",
            "#   reports: it is the address the cluster uses (kubelet --node-ip, the API server),",
            "#   it stays the same across `vagrant reload` (forwarded ports move when one is",
            "#   taken), and one address per node keeps each node's known_hosts entry apart.",
        ]
    if any_forwarded:
        lines += [
            "#   ssh-config: no private address is known for the machine, so it is reached where",
            "#   `vagrant ssh-config` says (with VirtualBox a 127.0.0.1 port Vagrant forwards,",
            "#   which may change after `vagrant reload`: run `invoke vagrant.inventory` again).",
        ]
    lines += [
        "#",
        "# Host keys: `vagrant ssh-config` turns checking off (UserKnownHostsFile /dev/null,",
        "# StrictHostKeyChecking no). nodeops never does: it checks every key against the",
        f"# known_hosts file named below ({known_hosts}, next to this file) and refuses unknown",
        "# and changed keys. Right after `vagrant up`, run ONE command with",
        "# --accept-new-host-keys, e.g.",
        "#   nodeops facts --all --inventory inventories/vagrant.yaml --accept-new-host-keys",
        "# It trusts each node's key on first use and records it there (mode 0600); later",
        "# commands check against it. After `vagrant destroy` the new VMs have new keys: delete",
        f"# {known_hosts} and accept again, once.",
        f"known_hosts: {_scalar(known_hosts)}",
        "# Everything needed to connect is in this file; ~/.ssh/config is not read.",
        "ssh_config: false",
        "nodes:",
    ]
    for node in nodes:
        lines.append(f"  {node.name}:")
        how = "private network (Vagrantfile)" if node.private else "from vagrant ssh-config"
        lines.append(f"    address: {node.address}  # {how}")
        lines.append(f"    port: {node.port}")
        if node.user is not None:
            lines.append(f"    user: {node.user}")
        if node.key is not None:
            key = key_path(node.key, inventory_dir=inventory_dir, project_dir=project_dir)
            lines.append(f"    key: {_scalar(key)}")
        lines.append(f"    roles: [{', '.join(node.roles)}]")
        lines.append("    groups: [vagrant]")
    return "\n".join(lines) + "\n"


def _scalar(value: str) -> str:
    """A YAML scalar for a path: plain when that is safe, else a double-quoted (JSON) string."""
    if not value.isprintable():
        raise InventoryError(f"path {value[:60]!r} contains control characters")
    if _PLAIN.fullmatch(value) and value[0] != "-" and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)
