"""Node: one machine of the cluster as the inventory describes it, validated on creation."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from nodeops.errors import InventoryError

CONTROL_PLANE = "control-plane"
WORKER = "worker"
ETCD = "etcd"
ROLES = frozenset({CONTROL_PLANE, WORKER, ETCD})

# A Kubernetes node name is a DNS-1123 subdomain: lowercase alphanumerics, '-' and '.',
# starting and ending with an alphanumeric, at most 253 characters.
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# A host name to connect to (RFC 1123 labels; case does not matter to DNS).
_HOSTNAME = re.compile(
    r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?"
)
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?", re.IGNORECASE)


def check_node_name(name: object) -> str:
    """Return name if it is a valid Kubernetes node name, else raise InventoryError."""
    if not isinstance(name, str) or not name:
        raise InventoryError(f"node name must be a non-empty string, not {name!r}")
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        raise InventoryError(
            f"{name!r} is not a valid Kubernetes node name (lowercase letters, digits, '-' and '.',"
            " starting and ending with a letter or digit)"
        )
    return name


def check_address(address: object) -> str:
    """Return address if it is an IP address or a host name, else raise InventoryError."""
    if not isinstance(address, str) or not address:
        raise InventoryError(f"address must be a non-empty string, not {address!r}")
    try:
        ipaddress.ip_address(address)
        return address
    except ValueError:
        pass
    if len(address) > 253 or not _HOSTNAME.fullmatch(address):
        raise InventoryError(f"{address!r} is not an IP address or a host name")
    return address


def check_port(port: object) -> int:
    """Return port as an int if it is a TCP port number, else raise InventoryError."""
    if isinstance(port, bool):
        raise InventoryError(f"port must be a number, not {port!r}")
    if isinstance(port, str) and port.isascii() and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise InventoryError(f"port must be a number from 1 to 65535, not {port!r}")
    return port


def check_user(user: object) -> str:
    """Return user if it is a plausible login name, else raise InventoryError."""
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise InventoryError(f"{user!r} is not a valid user name")
    return user


@dataclass(frozen=True)
class Node:
    """A node to reach over SSH: where, as whom, and what it is in the cluster.

    `user`, `port` and `key_file` left as None defer to ssh_config and SSH's defaults.
    """

    name: str
    address: str
    user: str | None = None
    port: int | None = None
    key_file: str | None = None
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    become: bool = False
    vars: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        check_node_name(self.name)
        check_address(self.address)
        if self.user is not None:
            check_user(self.user)
        if self.port is not None:
            object.__setattr__(self, "port", check_port(self.port))
        unknown = set(self.roles) - ROLES
        if unknown:
            raise InventoryError(
                f"node {self.name}: unknown role(s) {sorted(unknown)}; known: {sorted(ROLES)}"
            )
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "groups", frozenset(self.groups))
        object.__setattr__(self, "vars", MappingProxyType(dict(self.vars)))

    @property
    def is_control_plane(self) -> bool:
        """Whether the inventory says this node runs the control plane."""
        return CONTROL_PLANE in self.roles

    def __str__(self) -> str:
        return self.name
