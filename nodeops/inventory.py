"""Inventory: nodeops YAML and Ansible (Kubespray) INI or YAML inventories, read into Nodes.

The format is told from the content, not the file name. Everything is checked while the
file is read, so a bad inventory fails before any connection is made. YAML is only ever
read with a SafeLoader subclass.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import stat
import string
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from nodeops.cmd import Secret
from nodeops.errors import InventoryError
from nodeops.node import CONTROL_PLANE, ETCD, WORKER, Node, check_node_name

ALL = "all"
UNGROUPED = "ungrouped"

# Groups every inventory has, derived from roles: group name -> role.
ROLE_GROUPS: Mapping[str, str] = {
    CONTROL_PLANE: CONTROL_PLANE,
    "control-planes": CONTROL_PLANE,
    WORKER: WORKER,
    "workers": WORKER,
    ETCD: ETCD,
}

# Ansible (Kubespray, kubeadm-playbook ...) group names that give their hosts a role. A host
# gets the roles of every group it is in, directly or through child groups. nodeops' own
# group names are included so an Ansible group of that name agrees with the implicit one.
ANSIBLE_ROLE_GROUPS: Mapping[str, str] = {
    "kube_control_plane": CONTROL_PLANE,
    "kube-master": CONTROL_PLANE,
    "kube_master": CONTROL_PLANE,
    "masters": CONTROL_PLANE,
    "control_plane": CONTROL_PLANE,
    "kube_node": WORKER,
    "kube-node": WORKER,
    "nodes": WORKER,
    "workers": WORKER,
    "etcd": ETCD,
    **ROLE_GROUPS,
}

# Ansible connection variables; when several are set, the last one of a tuple wins (as in
# Ansible's ssh connection plugin, where the ansible_ssh_* spelling takes precedence).
_ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
_PORT_VARS = ("ansible_port", "ansible_ssh_port")
_USER_VARS = ("ansible_user", "ansible_ssh_user")
_KEY_VARS = ("ansible_private_key_file", "ansible_ssh_private_key_file")
_BECOME_VARS = ("ansible_become",)

# A variable whose name contains one of these holds a secret ("password" contains "pass").
_SECRET_WORDS = ("pass", "token", "secret")

# `lab` names the local lab that wrote the file (informational).
_NODEOPS_TOP_KEYS = frozenset({"nodes", "defaults", "known_hosts", "ssh_config", "lab"})
_NODEOPS_DEFAULT_KEYS = frozenset({"user", "port", "key", "become", "vars"})
_NODEOPS_NODE_KEYS = frozenset({"address", "roles", "groups", *_NODEOPS_DEFAULT_KEYS})
_ANSIBLE_GROUP_KEYS = frozenset({"hosts", "children", "vars"})
_RESERVED_GROUPS = frozenset({ALL, *ROLE_GROUPS})

MAX_INVENTORY_BYTES = 16 * 1024 * 1024
MAX_RANGE_HOSTS = 10_000
_LISTED = 30  # names shown in an error before "... (N more)"

# Ansible INI: `[group]`, `[group:children]`, `[group:vars]`, optionally followed by a comment.
_INI_SECTION = re.compile(r"\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?")
_INI_GROUP_NAME = re.compile(r"([^:\]\s]+)\s*(?:#.*)?")
# A host pattern with a port: `host:2222`, `node[1:3]:2222` (ranges may contain ':').
_HOST_PORT = re.compile(r"((?:[^:\[\]]|\[[^\[\]]*\])+):([0-9]+)")
_HOST_RANGE = re.compile(r"([^\[\]]*)\[([^\[\]]*)\](.*)")
# nodeops group names: no spaces, nothing that reads as a glob or a YAML/INI structure.
_NODEOPS_GROUP = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# The first content line of a YAML mapping (or a document marker, a flow mapping, a list).
_YAML_FIRST_LINE = re.compile(r"---|%|\{|-(\s|$)|[^=\[;#\s][^=\[;#]*?:(\s|$)")


@dataclass(frozen=True)
class Inventory:
    """The nodes of one inventory file, in file order, and how to reach them."""

    source: Path
    nodes: tuple[Node, ...]
    known_hosts: tuple[Path, ...] = ()
    use_ssh_config: bool = True
    # Group names the file declares, including those without nodes (Ansible inventories).
    declared_groups: tuple[str, ...] = ()
    _index: dict[str, Node] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, Node] = {}
        for node in self.nodes:
            if node.name in index:
                raise InventoryError(f"{self.source}: duplicate node name {node.name!r}")
            index[node.name] = node
        object.__setattr__(self, "_index", index)

    def node(self, name: str) -> Node:
        """The node of that name; an unknown name is an error listing the known ones."""
        found = self._index.get(name)
        if found is None:
            raise InventoryError(
                f"unknown node {name!r}; known nodes: {_listing(n.name for n in self.nodes)}"
            )
        return found

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Every group name -> its node names in inventory order, implicit groups first."""
        members: dict[str, list[str]] = {ALL: [n.name for n in self.nodes]}
        for group, role in ROLE_GROUPS.items():
            members[group] = [n.name for n in self.nodes if role in n.roles]
        for group in self.declared_groups:
            members.setdefault(group, [])
        for node in self.nodes:
            for group in sorted(node.groups):
                names = members.setdefault(group, [])
                if node.name not in names:
                    names.append(node.name)
        return {group: tuple(names) for group, names in members.items()}

    def select(
        self,
        *,
        names: Sequence[str] = (),
        groups: Sequence[str] = (),
        limits: Sequence[str] = (),
        all: bool = False,
    ) -> tuple[Node, ...]:
        """Nodes picked by name, group, --limit globs or all, in inventory order.

        Names and groups add up; limits (globs on node or group names) narrow that, or
        select on their own when nothing else is given.
        """
        names, groups, limits = _words(names), _words(groups), _words(limits)
        if not (names or groups or limits or all):
            raise InventoryError(
                "no nodes selected: pass --node, --group, --limit or --all"
                f" (inventory {self.source})"
            )
        if not self.nodes:
            raise InventoryError(f"{self.source}: the inventory has no nodes")
        chosen: set[str] = set()
        for name in names:
            chosen.add(self.node(name).name)
        group_members = self.groups()
        for group in groups:
            if group not in group_members:
                raise InventoryError(
                    f"unknown group {group!r}; known groups: {_listing(group_members)}"
                )
            chosen.update(group_members[group])
        if all:
            chosen.update(self._index)
        if limits:
            matched: set[str] = set()
            for pattern in limits:
                hits = {n.name for n in self.nodes if fnmatchcase(n.name, pattern)}
                for group, members in group_members.items():
                    if fnmatchcase(group, pattern):
                        hits.update(members)
                if not hits:
                    raise InventoryError(
                        f"--limit {pattern!r} matches no node and no group with nodes;"
                        f" known nodes: {_listing(n.name for n in self.nodes)}"
                    )
                matched |= hits
            chosen = chosen & matched if (names or groups or all) else matched
        if not chosen:
            asked = [
                *(f"--node {n}" for n in names),
                *(f"--group {g}" for g in groups),
                *(["--all"] if all else []),
                *(f"--limit {p}" for p in limits),
            ]
            raise InventoryError(f"no node selected: {' '.join(asked)} leaves no node")
        return tuple(n for n in self.nodes if n.name in chosen)


def load_inventory(path: str | Path) -> Inventory:
    """Read an inventory file (nodeops YAML, Ansible INI or Ansible YAML) into Nodes."""
    source = Path(os.path.expanduser(path))
    text = _read(source)
    try:
        first = _first_content_line(text)
        if first is None:
            raise InventoryError("the file is empty")
        if _YAML_FIRST_LINE.match(first):
            return _load_yaml(source, text)
        return _ansible_inventory(source, _parse_ini(text))
    except InventoryError as error:
        raise InventoryError(f"{source}: {error}") from None
    except RecursionError:
        raise InventoryError(f"{source}: nested too deeply") from None


# --- reading --------------------------------------------------------------------------------


def _read(source: Path) -> str:
    try:
        mode = source.stat().st_mode
        if stat.S_ISDIR(mode):
            raise InventoryError(f"inventory {source} is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise InventoryError(f"inventory {source} is not a regular file")
        with source.open("rb") as handle:
            data = handle.read(MAX_INVENTORY_BYTES + 1)
    except FileNotFoundError:
        raise InventoryError(f"inventory file not found: {source}") from None
    except PermissionError:
        raise InventoryError(f"cannot read inventory {source}: permission denied") from None
    except OSError as error:
        raise InventoryError(f"cannot read inventory {source}: {error.strerror or error}") from None
    if len(data) > MAX_INVENTORY_BYTES:
        raise InventoryError(f"inventory {source} is larger than {MAX_INVENTORY_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InventoryError(
            f"cannot read inventory {source}: not UTF-8 text (byte {error.start})"
        ) from None


def _first_content_line(text: str) -> str | None:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped
    return None


class _StrictSafeLoader(yaml.SafeLoader):
    """The YAML SafeLoader, refusing a mapping that has the same key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden key by key
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable: the SafeLoader reports it
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first at line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str) -> Any:
    loader = _StrictSafeLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = (
            "invalid YAML"
            if isinstance(error, yaml.constructor.ConstructorError)
            else ("YAML syntax error")
        )
        # Only the problem, not the snippet of the file PyYAML would add (it may hold secrets).
        problem = ", ".join(p for p in (error.context, error.problem) if p)
        raise InventoryError(f"{what}{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise InventoryError(f"YAML error: {error}") from None
    finally:
        loader.dispose()


def _load_yaml(source: Path, text: str) -> Inventory:
    data = _parse_yaml(text)
    if data is None:
        raise InventoryError("the file is empty")
    if not isinstance(data, Mapping):
        raise InventoryError(
            "expected a YAML mapping at the top level (`nodes:` for nodeops, `all:` for"
            f" Ansible), found {_kind(data)}"
        )
    if _is_nodeops(data):
        return _load_nodeops(source, data)
    return _ansible_inventory(source, _parse_ansible_yaml(data))


def _is_nodeops(data: Mapping[Any, Any]) -> bool:
    """Whether a YAML mapping is a nodeops inventory rather than an Ansible one."""
    if "nodes" not in data:
        return False
    nodes = data["nodes"]
    if (
        isinstance(nodes, Mapping)
        and nodes
        and set(nodes) <= _ANSIBLE_GROUP_KEYS
        and any(isinstance(body, Mapping) and body for body in nodes.values())
    ):
        # An Ansible group called "nodes" (with hosts, children or vars in it); bare
        # `hosts:`/`children:`/`vars:` keys are nodeops nodes of those names.
        return False
    return not (nodes is None and not set(data) <= _NODEOPS_TOP_KEYS)


# --- nodeops YAML ----------------------------------------------------------------------------


def _load_nodeops(source: Path, data: Mapping[Any, Any]) -> Inventory:
    _check_keys(data, _NODEOPS_TOP_KEYS, "the top level")
    base = source.parent
    known_hosts = tuple(
        _resolve_path(p, base) for p in _strings(data.get("known_hosts"), "known_hosts")
    )
    use_ssh_config = data.get("ssh_config", True)
    if not isinstance(use_ssh_config, bool):
        raise InventoryError(f"ssh_config must be true or false, not {use_ssh_config!r}")

    defaults = _mapping(data.get("defaults"), "defaults")
    _check_keys(defaults, _NODEOPS_DEFAULT_KEYS, "defaults")
    nodes = [
        _nodeops_node(name, spec, defaults, base)
        for name, spec in _mapping(data["nodes"], "nodes").items()
    ]
    return Inventory(
        source=source,
        nodes=tuple(nodes),
        known_hosts=known_hosts,
        use_ssh_config=use_ssh_config,
    )


def _nodeops_node(name: Any, spec: Any, defaults: Mapping[str, Any], base: Path) -> Node:
    check_node_name(name)
    where = f"node {name!r}"
    spec = _mapping(spec, where)
    _check_keys(spec, _NODEOPS_NODE_KEYS, where)
    merged = {**defaults, **spec}
    groups = _strings(spec.get("groups"), f"{where}: groups")
    for group in groups:
        if group in _RESERVED_GROUPS:
            raise InventoryError(
                f"{where}: group {group!r} is implicit (every node is in 'all'; role groups"
                " come from roles:), do not list it under groups"
            )
        if not _NODEOPS_GROUP.fullmatch(group):
            raise InventoryError(f"{where}: {group!r} is not a valid group name")
    key = merged.get("key")
    if key is not None and not isinstance(key, str):
        raise InventoryError(f"{where}: key must be a path, not {key!r}")
    become = merged.get("become", False)
    if not isinstance(become, bool):
        raise InventoryError(f"{where}: become must be true or false, not {become!r}")
    variables = {
        **_variables(defaults.get("vars"), "defaults: vars"),
        **_variables(spec.get("vars"), f"{where}: vars"),
    }
    return _make_node(
        name,
        address=spec.get("address", name),
        user=merged.get("user"),
        port=merged.get("port"),
        key_file=None if key is None else str(_resolve_path(key, base)),
        roles=frozenset(_strings(spec.get("roles"), f"{where}: roles")),
        groups=frozenset(groups),
        become=become,
        variables=variables,
    )


# --- Ansible (INI and YAML) --------------------------------------------------------------------


@dataclass
class _Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    parents: list[str] = field(default_factory=list)


@dataclass
class _Host:
    name: str
    where: str  # where the host first appears, for error messages
    groups: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    set_at: dict[str, str] = field(default_factory=dict)


class _AnsibleData:
    """Hosts, groups and variables as Ansible holds them, before they become Nodes."""

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {ALL: _Group(ALL), UNGROUPED: _Group(UNGROUPED)}
        self.hosts: dict[str, _Host] = {}

    def add_group(self, name: str) -> None:
        if name not in self.groups:
            self.groups[name] = _Group(name)

    def add_child(self, parent: str, child: str) -> None:
        if child == ALL:
            raise InventoryError(f"group 'all' cannot be a child of {parent!r}")
        self.add_group(parent)
        self.add_group(child)
        if parent not in self.groups[child].parents:
            self.groups[child].parents.append(parent)

    def set_group_var(self, group: str, name: Any, value: Any) -> None:
        if not isinstance(name, str) or not name:
            raise InventoryError(f"group {group!r}: variable name {name!r} is not a string")
        self.groups[group].vars[name] = value

    def add_host(self, name: str, group: str, variables: Mapping[Any, Any], where: str) -> None:
        try:
            check_node_name(name)
        except InventoryError as error:
            raise InventoryError(f"{where}: {error}") from None
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = _Host(name, where)
        if group not in host.groups:
            host.groups.append(group)
        for key, value in variables.items():
            if not isinstance(key, str) or not key:
                raise InventoryError(
                    f"{where}: host {name!r}: variable name {key!r} is not a string"
                )
            if key in host.vars and host.vars[key] != value:
                # Ansible would let the later one win; two values for one host is a mistake.
                raise InventoryError(
                    f"{where}: duplicate definition of host {name!r} with a different {key}"
                    f" (first set {_at(host.set_at[key])})"
                )
            host.vars[key] = value
            host.set_at.setdefault(key, where)

    def depths(self) -> dict[str, int]:
        """Each group's distance from 'all' along its longest parent chain; refuses cycles."""
        depth: dict[str, int] = {ALL: 0}

        def visit(name: str, path: tuple[str, ...]) -> int:
            if name in depth:
                return depth[name]
            if name in path:
                loop = " -> ".join((*path[path.index(name) :], name))
                raise InventoryError(f"group {name!r} is its own ancestor: {loop}")
            parents = self.groups[name].parents or [ALL]
            depth[name] = 1 + max(visit(parent, (*path, name)) for parent in parents)
            return depth[name]

        for name in self.groups:
            visit(name, ())
        return depth


def _ansible_inventory(source: Path, data: _AnsibleData) -> Inventory:
    depth = data.depths()
    nodes: list[Node] = []
    used: set[str] = set()
    for host in data.hosts.values():
        direct = [g for g in host.groups if g != ALL]
        if any(g != UNGROUPED for g in direct):
            direct = [g for g in direct if g != UNGROUPED]
        if not direct:
            direct = [UNGROUPED]
        ancestors = _ancestors(data, direct)
        used |= ancestors
        variables: dict[str, Any] = {}
        # Ansible's precedence: 'all', then parents before children (siblings by name), then
        # the host's own variables.
        for group in sorted(ancestors | {ALL}, key=lambda g: (depth[g], g)):
            variables.update(data.groups[group].vars)
        variables.update(host.vars)
        nodes.append(_ansible_node(source, host, ancestors, variables))
    declared = tuple(g for g in data.groups if g != ALL and (g != UNGROUPED or g in used))
    return Inventory(source=source, nodes=tuple(nodes), declared_groups=declared)


def _ancestors(data: _AnsibleData, groups: Iterable[str]) -> set[str]:
    found: set[str] = set()
    todo = list(groups)
    while todo:
        group = todo.pop()
        if group not in found and group != ALL:
            found.add(group)
            todo.extend(data.groups[group].parents)
    return found


def _ansible_node(source: Path, host: _Host, groups: set[str], variables: dict[str, Any]) -> Node:
    where = f"node {host.name!r} ({host.where})"
    address = _connection_var(variables, _ADDRESS_VARS, where, str)
    user = _connection_var(variables, _USER_VARS, where, str)
    port = _connection_var(variables, _PORT_VARS, where, (int, str))
    key = _connection_var(variables, _KEY_VARS, where, str)
    become = _connection_var(variables, _BECOME_VARS, where, (bool, int, str))
    return _make_node(
        host.name,
        address=host.name if address is None else address,
        user=user,
        port=port,
        key_file=None if key is None else str(_resolve_path(key, source.parent)),
        roles=frozenset(ANSIBLE_ROLE_GROUPS[g] for g in groups if g in ANSIBLE_ROLE_GROUPS),
        groups=frozenset(groups),
        become=False if become is None else _ansible_boolean(become, f"{where}: ansible_become"),
        variables=variables,
        where=where,
    )


def _connection_var(
    variables: Mapping[str, Any],
    names: tuple[str, ...],
    where: str,
    types: type | tuple[type, ...],
) -> Any:
    value, name = None, None
    for candidate in names:
        if variables.get(candidate) is not None:
            value, name = variables[candidate], candidate
    if value is None:
        return None
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        raise InventoryError(
            f"{where}: {name} is a Jinja2 template ({value!r}); nodeops does not evaluate"
            " templates, give the value itself"
        )
    if not isinstance(value, types):
        raise InventoryError(f"{where}: {name} must be a {_type_names(types)}, not {value!r}")
    return value


_TRUE_WORDS = frozenset({"y", "yes", "on", "1", "true", "t"})
_FALSE_WORDS = frozenset({"n", "no", "off", "0", "false", "f", ""})


def _ansible_boolean(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise InventoryError(f"{what} must be a boolean (true/false, yes/no), not {value!r}")


def _expand_hostpattern(pattern: str) -> tuple[list[str], int | None]:
    """`node[01:03]:2222` -> ([node01, node02, node03], 2222), as Ansible reads host patterns."""
    port = None
    match = _HOST_PORT.fullmatch(pattern)
    if match:
        pattern, port = match.group(1), int(match.group(2))
    return _expand_ranges(pattern, pattern), port


def _expand_ranges(pattern: str, original: str) -> list[str]:
    if "[" not in pattern and "]" not in pattern:
        return [pattern]
    match = _HOST_RANGE.fullmatch(pattern)
    if not match:
        raise InventoryError(f"invalid host range in {original!r}")
    head, spec, tail = match.groups()
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise InventoryError(
            f"host range [{spec}] in {original!r} must be begin:end or begin:end:step"
        )
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise InventoryError(f"host range [{spec}] in {original!r} has no end")
    if not (step_text.isascii() and step_text.isdigit() and int(step_text) > 0):
        raise InventoryError(f"host range [{spec}] in {original!r}: step must be a positive number")
    step = int(step_text)
    items: list[str]
    if (
        len(begin) == 1
        and len(end) == 1
        and begin in string.ascii_letters
        and end in string.ascii_letters
    ):
        first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
        if first > last:
            raise InventoryError(f"host range [{spec}] in {original!r} ends before it begins")
        items = list(string.ascii_letters[first : last + 1 : step])
    elif begin.isascii() and begin.isdigit() and end.isascii() and end.isdigit():
        if int(begin) > int(end):
            raise InventoryError(f"host range [{spec}] in {original!r} ends before it begins")
        numbers = range(int(begin), int(end) + 1, step)
        if len(numbers) > MAX_RANGE_HOSTS:
            raise InventoryError(
                f"host range [{spec}] in {original!r} has more than {MAX_RANGE_HOSTS} hosts"
            )
        if begin.startswith("0") and len(begin) > 1:
            if len(begin) != len(end):
                raise InventoryError(
                    f"host range [{spec}] in {original!r}: a zero-padded begin and its end"
                    " must have the same length"
                )
            items = [str(n).zfill(len(begin)) for n in numbers]
        else:
            items = [str(n) for n in numbers]
    else:
        raise InventoryError(
            f"host range [{spec}] in {original!r} must be numbers ([1:3], [01:10:2])"
            " or letters ([a:c])"
        )
    hosts: list[str] = []
    for item in items:
        hosts.extend(_expand_ranges(f"{head}{item}{tail}", original))
        if len(hosts) > MAX_RANGE_HOSTS:
            raise InventoryError(
                f"host pattern {original!r} expands to more than {MAX_RANGE_HOSTS} hosts"
            )
    return hosts


@dataclass
class _Pending:
    """A group named before it is declared (Ansible allows that until the end of the file)."""

    line: int
    state: str
    parents: list[str] = field(default_factory=list)


def _parse_ini(text: str) -> _AnsibleData:
    """Read an Ansible INI inventory the way Ansible's ini plugin does."""
    data = _AnsibleData()
    pending: dict[str, _Pending] = {}
    group, state = UNGROUPED, "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = f"line {number}"
        section = _INI_SECTION.fullmatch(line)
        if section:
            group, state = section.group(1), section.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise InventoryError(
                    f"{where}: section [{group}:{state}] has unknown type {state!r}"
                    " (hosts, children or vars)"
                )
            if group not in data.groups:
                # [g] or [g:children] declares a group; [g:vars] needs it declared somewhere.
                if state == "vars" and group not in pending:
                    pending[group] = _Pending(number, state)
                data.add_group(group)
            if group in pending and state != "vars":
                if pending[group].state == "children":
                    _add_pending_children(data, group, pending)
                else:
                    del pending[group]
            continue
        if line.startswith("[") and line.endswith("]"):
            raise InventoryError(
                f"{where}: invalid section {line!r} (no spaces; [group], [group:children]"
                " or [group:vars])"
            )
        if state == "hosts":
            _ini_host_line(data, group, line, where)
        elif state == "vars":
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise InventoryError(f"{where}: expected name=value in [{group}:vars]")
            data.set_group_var(group, name.strip(), _ini_value(value.strip()))
        else:
            child_match = _INI_GROUP_NAME.fullmatch(line)
            if not child_match:
                raise InventoryError(f"{where}: expected a group name in [{group}:children]")
            child = child_match.group(1)
            if child in data.groups:
                data.add_child(group, child)
            elif child in pending:
                pending[child].parents.append(group)
            else:
                pending[child] = _Pending(number, state, [group])
    for name, declaration in pending.items():
        if declaration.state == "vars":
            raise InventoryError(
                f"line {declaration.line}: section [{name}:vars] is for group {name!r},"
                " which is never declared"
            )
        raise InventoryError(
            f"line {declaration.line}: section [{declaration.parents[-1]}:children] names"
            f" group {name!r}, which is never declared"
        )
    return data


def _add_pending_children(data: _AnsibleData, group: str, pending: dict[str, _Pending]) -> None:
    for parent in pending[group].parents:
        data.add_child(parent, group)
        if parent in pending and pending[parent].state == "children":
            _add_pending_children(data, parent, pending)
    del pending[group]


def _ini_host_line(data: _AnsibleData, group: str, line: str, where: str) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as error:
        raise InventoryError(f"{where}: cannot read host line: {error}") from None
    if not tokens:
        return
    hosts, port = _expand_hostpattern(tokens[0])
    for host in hosts:  # names first: a bad name is the problem to report
        try:
            check_node_name(host)
        except InventoryError as error:
            raise InventoryError(f"{where}: {error}") from None
    variables: dict[str, Any] = {} if port is None else {"ansible_port": port}
    previous = None
    for token in tokens[1:]:
        name, sep, value = token.partition("=")
        if not sep or not name:
            if previous is not None and _is_secret_name(previous):
                raise InventoryError(
                    f"{where}: expected name=value after {previous}= (quote values that"
                    " contain spaces)"
                )
            raise InventoryError(f"{where}: expected name=value after the host name, got {token!r}")
        variables[name] = _ini_value(value)
        previous = name
    for host in hosts:
        data.add_host(host, group, variables, where)


def _ini_value(text: str) -> Any:
    """An INI value as Ansible reads it: a Python literal when it is one, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    """literal_eval's result with the types Ansible keeps (no tuples, sets, bytes, complex)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {_plain(k) if not isinstance(k, str) else k: _plain(v) for k, v in value.items()}
    if value is Ellipsis:
        return "..."
    return str(value)


def _parse_ansible_yaml(top: Mapping[Any, Any]) -> _AnsibleData:
    """Read an Ansible YAML inventory: groups with hosts, children and vars."""
    data = _AnsibleData()
    for name, body in top.items():
        _yaml_group(data, name, body)
    return data


def _yaml_group(data: _AnsibleData, name: Any, body: Any) -> str:
    if not isinstance(name, str) or not _INI_GROUP_NAME.fullmatch(name) or "#" in name:
        raise InventoryError(f"{name!r} is not a valid group name")
    data.add_group(name)
    if body is None:
        return name
    where = f"group {name!r}"
    if not isinstance(body, Mapping):
        raise InventoryError(
            f"{where}: expected a mapping of hosts, children and vars, found {_kind(body)}"
        )
    _check_keys(body, _ANSIBLE_GROUP_KEYS, where)
    for section, content in body.items():
        if isinstance(content, str) and section != "vars":
            content = {content: None}
        if content is None:
            continue
        if not isinstance(content, Mapping):
            raise InventoryError(f"{where}: {section} must be a mapping, found {_kind(content)}")
        if section == "vars":
            for var, value in content.items():
                data.set_group_var(name, var, value)
        elif section == "children":
            for child, child_body in content.items():
                data.add_child(name, _yaml_group(data, child, child_body))
        else:
            for pattern, host_vars in content.items():
                if isinstance(pattern, bool) or not isinstance(pattern, str | int):
                    raise InventoryError(f"{where}: host name {pattern!r} is not a string")
                if host_vars is None:
                    host_vars = {}
                if not isinstance(host_vars, Mapping):
                    raise InventoryError(
                        f"{where}: host {pattern!r}: expected a mapping of variables, found"
                        f" {_kind(host_vars)}"
                    )
                hosts, port = _expand_hostpattern(str(pattern))
                variables = dict(host_vars) if port is None else {"ansible_port": port, **host_vars}
                for host in hosts:
                    data.add_host(host, name, variables, f"in group {name!r}")
    return name


# --- shared helpers ----------------------------------------------------------------------------


def _make_node(
    name: str,
    *,
    address: Any,
    user: Any,
    port: Any,
    key_file: str | None,
    roles: frozenset[str],
    groups: frozenset[str],
    become: bool,
    variables: Mapping[str, Any],
    where: str | None = None,
) -> Node:
    try:
        return Node(
            name=name,
            address=address,
            user=user,
            port=port,
            key_file=key_file,
            roles=roles,
            groups=groups,
            become=become,
            vars=_protect(variables),
        )
    except InventoryError as error:
        # Node's own messages may already say which node; say it once.
        message = str(error).removeprefix(f"node {name}: ")
        raise InventoryError(f"{where or f'node {name!r}'}: {message}") from None


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _protect(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Variables with every secret-looking value wrapped in Secret, so it never prints."""
    protected: dict[str, Any] = {}
    for name, value in variables.items():
        if _is_secret_name(name) and not isinstance(value, Secret | bool) and value is not None:
            value = Secret(value if isinstance(value, str) else str(value))
        protected[name] = value
    return protected


def _check_keys(data: Mapping[Any, Any], known: frozenset[str], where: str) -> None:
    unknown = [key for key in data if key not in known]
    if unknown:
        raise InventoryError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''}"
            f" {', '.join(repr(k) for k in unknown)} (known: {', '.join(sorted(known))})"
        )


def _mapping(value: Any, where: str) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InventoryError(f"{where}: expected a mapping, found {_kind(value)}")
    return dict(value)


def _strings(value: Any, where: str) -> list[str]:
    """A string or a list of strings, as a list."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        raise InventoryError(f"{where}: expected a string or a list of strings, not {value!r}")
    return list(items)


def _variables(value: Any, where: str) -> dict[str, Any]:
    variables = _mapping(value, where)
    for name in variables:
        if not isinstance(name, str) or not name:
            raise InventoryError(f"{where}: variable name {name!r} is not a string")
    return variables


def _resolve_path(value: str, base: Path) -> Path:
    """A path from the inventory: `~` expanded, relative ones taken from the file's directory."""
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = base.absolute() / path
    return Path(os.path.normpath(path))


def _at(where: str) -> str:
    """'line 3' -> 'at line 3'; 'in group ...' stays."""
    return f"at {where}" if where.startswith("line ") else where


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"{type(value).__name__} {value!r}"[:60]


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {bool: "boolean", int: "number", str: "string"}
    if isinstance(types, type):
        types = (types,)
    return " or ".join(names.get(t, t.__name__) for t in types)


def _listing(names: Iterable[str]) -> str:
    items = list(names)
    if not items:
        return "(none)"
    shown = ", ".join(items[:_LISTED])
    return shown if len(items) <= _LISTED else f"{shown}, ... ({len(items) - _LISTED} more)"


def _words(values: Sequence[str]) -> tuple[str, ...]:
    """A sequence of names; a lone string is one name, not its characters."""
    if isinstance(values, str):
        return (values,) if values else ()
    return tuple(values)
