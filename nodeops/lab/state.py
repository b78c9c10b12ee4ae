"""What a running lab is made of, persisted as JSON in its state directory; where that lives."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeops.errors import LabError
from nodeops.lab.spec import LabSpec, NodeSpec, check_lab_name

ROOT_ENV = "NODEOPS_LAB_ROOT"
DEFAULT_ROOT = Path("/var/tmp/nodeops-lab")  # noqa: S108 -- root-only, 0700, outlives /tmp cleaning
STATE_FILE = "state.json"
_FORMAT = 1
# Overlay mount options are comma and colon separated: keep lab paths plain.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+@=-]+")


@dataclass(frozen=True)
class NodeState:
    """A running node: address, namespaces, processes and host key."""

    name: str
    os: str
    roles: tuple[str, ...]
    address: str
    netns: str
    veth: str
    holder_pid: int
    holder_start: int  # start time in clock ticks since boot, to tell a reused PID apart
    sshd_pid: int
    sshd_start: int
    host_key: str  # "ssh-ed25519 AAAA..."
    host_key_fingerprint: str  # "SHA256:..."


@dataclass(frozen=True)
class LabState:
    """A running lab: its spec, its nodes, and the files a client needs to reach them."""

    spec: LabSpec
    nodes: tuple[NodeState, ...]
    state_dir: Path
    key_path: Path
    known_hosts_path: Path
    inventory_path: Path | None
    bridge: str
    bridge_address: str

    @property
    def name(self) -> str:
        """The lab's name."""
        return self.spec.name

    def node(self, name: str) -> NodeState:
        """The state of one node, or LabError naming the nodes there are."""
        for n in self.nodes:
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes)
        raise LabError(f"lab {self.name} has no node {name!r} (nodes: {known})")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "format": _FORMAT,
            "spec": {
                "name": self.spec.name,
                "subnet": self.spec.subnet,
                "nodes": [
                    {"name": n.name, "os": n.os, "roles": list(n.roles)} for n in self.spec.nodes
                ],
            },
            "nodes": [vars(n) | {"roles": list(n.roles)} for n in self.nodes],
            "state_dir": str(self.state_dir),
            "key_path": str(self.key_path),
            "known_hosts_path": str(self.known_hosts_path),
            "inventory_path": None if self.inventory_path is None else str(self.inventory_path),
            "bridge": self.bridge,
            "bridge_address": self.bridge_address,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        """The inverse of to_json."""
        if data.get("format") != _FORMAT:
            raise ValueError(f"unknown state format {data.get('format')!r}")
        s = data["spec"]
        spec = LabSpec(
            name=s["name"],
            subnet=s["subnet"],
            nodes=tuple(NodeSpec(n["name"], n["os"], tuple(n["roles"])) for n in s["nodes"]),
        )
        inventory = data["inventory_path"]
        return cls(
            spec=spec,
            nodes=tuple(NodeState(**(n | {"roles": tuple(n["roles"])})) for n in data["nodes"]),
            state_dir=Path(data["state_dir"]),
            key_path=Path(data["key_path"]),
            known_hosts_path=Path(data["known_hosts_path"]),
            inventory_path=None if inventory is None else Path(inventory),
            bridge=data["bridge"],
            bridge_address=data["bridge_address"],
        )


def state_root() -> Path:
    """Where labs keep their state: $NODEOPS_LAB_ROOT, else /var/tmp/nodeops-lab."""
    root = Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT).absolute()
    if not _PLAIN_PATH.fullmatch(str(root)):
        raise LabError(
            f"lab state root {str(root)!r} must be a plain path (letters, digits and _./+@=-),"
            f" set {ROOT_ENV} to another one"
        )
    return root


def state_dir(name: str) -> Path:
    """The state directory of a lab: <root>/<name>."""
    return state_root() / check_lab_name(name)


def load_state(name: str) -> LabState | None:
    """The recorded state of a lab, or None when it has none (or an unreadable one)."""
    path = state_dir(name) / STATE_FILE
    try:
        return LabState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, LabError):
        return None


def save_state(state: LabState) -> None:
    """Write state.json atomically (0600)."""
    path = state.state_dir / STATE_FILE
    write_file(path, json.dumps(state.to_json(), indent=2) + "\n", 0o600)


def write_file(path: Path, text: str, mode: int) -> None:
    """Write text to path atomically: a temp file in the same directory, then a rename."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def locked(*, create: bool) -> Iterator[None]:
    """Hold the lab root's lock: one up or down at a time per root. Without create, and no
    root yet, there is nothing to lock."""
    root = state_root()
    if create:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        if create:
            raise
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
