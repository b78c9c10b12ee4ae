"""Inventories: nodeops YAML, Ansible INI and Ansible YAML, read into Nodes or refused early."""

from __future__ import annotations

import os
import shlex
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nodeops.cmd import Secret
from nodeops.errors import InventoryError
from nodeops.inventory import Inventory, load_inventory
from nodeops.node import Node

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "inventories"


def fixture(name: str) -> Path:
    """A file of ../shared/fixtures/inventories; skips the test when the directory is absent."""
    if not FIXTURES.is_dir():
        pytest.skip(f"../shared/fixtures absent: {FIXTURES}")
    path = FIXTURES / name
    assert path.is_file(), f"fixture {name} is missing from {FIXTURES}"
    return path


def fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if p.is_file()) if FIXTURES.is_dir() else []


def write(tmp_path: Path, text: str, name: str = "inventory") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load(tmp_path: Path, text: str, name: str = "inventory") -> Inventory:
    return load_inventory(write(tmp_path, text, name))


def refused(tmp_path: Path, text: str, name: str = "inventory") -> str:
    """The message of the InventoryError loading this text raises; it must name the file."""
    path = write(tmp_path, text, name)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert str(path) in message
    return message


def names(nodes: tuple[Node, ...]) -> list[str]:
    return [n.name for n in nodes]


def is_dns1123_subdomain(name: str) -> bool:
    """The Kubernetes node name rule, written out independently of nodeops' regex."""
    if not 0 < len(name) <= 253:
        return False
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-")
    for label in name.split("."):
        if not label or set(label) - allowed or label[0] == "-" or label[-1] == "-":
            return False
    return True


HOSTILE_NAMES = ["w1;touch /tmp/x", "$(id)", "-oProxyCommand=x", "Node_1", "a..b", "node1.", ""]


# --- the real-world files in ../shared/fixtures ------------------------------------------------


@pytest.mark.parametrize(
    "name",
    fixture_names()
    or [pytest.param("", marks=pytest.mark.skip(reason="../shared/fixtures absent"))],
)
def test_every_fixture_loads(name: str) -> None:
    inventory = load_inventory(fixture(name))
    assert inventory.source == fixture(name)
    assert len(set(names(inventory.nodes))) == len(inventory.nodes)
    assert inventory.groups()["all"] == tuple(names(inventory.nodes))


def test_kubeadm_playbook_fixture_expands_ranges_and_maps_masters_and_nodes() -> None:
    inventory = load_inventory(fixture("kubeadm-playbook.hosts.example.ini"))
    masters = [f"master{i}.corp.example.com" for i in (1, 2, 3)]
    workers = ["node1.corp.example.com", "node2.corp.example.com"]
    assert names(inventory.nodes) == masters + workers
    for node in inventory.nodes:
        assert node.address == node.name
        assert (node.user, node.port, node.key_file, node.become) == (None, None, None, False)
    by_name = {n.name: n for n in inventory.nodes}
    # primary-master and secondary-masters are children of `masters`, which means control plane.
    assert by_name[masters[0]].groups == {"primary-master", "masters"}
    assert by_name[masters[1]].groups == {"secondary-masters", "masters"}
    assert all(by_name[m].roles == {"control-plane"} for m in masters)
    # `nodes` means worker; `node` is a parent group of `nodes` with no meaning of its own.
    assert all(by_name[w].roles == {"worker"} for w in workers)
    assert by_name[workers[0]].groups == {"nodes", "node"}
    groups = inventory.groups()
    assert groups["control-planes"] == tuple(masters)
    assert groups["workers"] == tuple(workers)
    assert groups["etcd"] == ()
    assert groups["secondary-masters"] == tuple(masters[1:])
    assert groups["node"] == tuple(workers)
    assert names(inventory.select(limits=["master[23]*"])) == masters[1:]


def test_kubespray_local_hosts_fixture_is_one_node_with_every_role() -> None:
    inventory = load_inventory(fixture("kubespray-local-hosts.ini"))
    (node,) = inventory.nodes
    assert node.name == node.address == "node1"
    assert node.roles == {"control-plane", "etcd", "worker"}
    assert node.groups == {"kube_control_plane", "etcd", "kube_node"}
    assert node.vars["ansible_connection"] == "local"
    # A template in a variable nodeops does not use is kept as text, not evaluated.
    assert node.vars["local_release_dir"] == "{{ansible_env.HOME}}/releases"
    assert (node.user, node.port) == (None, None)


@pytest.mark.parametrize(
    ("name", "declared"),
    [
        # Every host line of these samples is commented out: they declare groups only.
        ("kubespray-sample-hosts.2019-02.yaml", ()),
        (
            "kubespray-sample-inventory.2019-04-legacy-kube-master.ini",
            ("kube-master", "etcd", "kube-node", "k8s-cluster"),
        ),
        (
            "kubespray-sample-inventory.2021-04.ini",
            ("kube_control_plane", "etcd", "kube_node", "calico_rr", "k8s_cluster"),
        ),
        ("kubespray-sample-inventory.2024-09.ini", ("kube_control_plane", "etcd", "kube_node")),
        ("kubespray-sample-inventory.current.ini", ("kube_control_plane", "etcd", "kube_node")),
    ],
)
def test_kubespray_sample_fixtures_declare_groups_without_hosts(
    name: str, declared: tuple[str, ...]
) -> None:
    inventory = load_inventory(fixture(name))
    assert inventory.nodes == ()
    assert inventory.declared_groups == declared
    assert set(declared) <= set(inventory.groups())
    with pytest.raises(InventoryError, match="has no nodes"):
        inventory.select(all=True)


# --- nodeops YAML -----------------------------------------------------------------------------

NODEOPS = """
    # the local lab
    known_hosts: known_hosts
    ssh_config: false
    defaults: {user: root, port: 22, key: keys/id_ed25519, become: false, vars: {zone: lab}}
    nodes:
      cp1:
        address: 10.213.0.11
        roles: [control-plane, etcd]
        groups: [lab]
        vars: {kube_token: abc.def, note: first}
      worker1: {address: 10.213.0.12, roles: [worker], user: ubuntu, port: "2222", become: true}
      worker2:
        roles: worker
        key: ~/.ssh/other
"""


def test_nodeops_yaml_reads_every_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    inventory = load(tmp_path, NODEOPS, "lab.yaml")
    assert inventory.source == tmp_path / "lab.yaml"
    assert inventory.known_hosts == (tmp_path / "known_hosts",)
    assert inventory.use_ssh_config is False
    cp1, worker1, worker2 = inventory.nodes
    assert (cp1.name, cp1.address, cp1.user, cp1.port) == ("cp1", "10.213.0.11", "root", 22)
    assert cp1.roles == {"control-plane", "etcd"} and cp1.groups == {"lab"}
    assert cp1.key_file == str(tmp_path / "keys" / "id_ed25519")
    assert cp1.become is False and cp1.is_control_plane
    assert cp1.vars["zone"] == "lab" and cp1.vars["note"] == "first"
    assert isinstance(cp1.vars["kube_token"], Secret) and cp1.vars["kube_token"].value == "abc.def"
    assert "abc.def" not in repr(cp1)
    assert (worker1.user, worker1.port, worker1.become) == ("ubuntu", 2222, True)
    assert worker2.address == "worker2"  # the address defaults to the name
    assert worker2.roles == {"worker"}
    assert worker2.key_file == str(tmp_path / "home" / ".ssh" / "other")
    groups = inventory.groups()
    assert groups["all"] == ("cp1", "worker1", "worker2")
    assert groups["workers"] == groups["worker"] == ("worker1", "worker2")
    assert groups["control-planes"] == ("cp1",) and groups["etcd"] == ("cp1",)
    assert groups["lab"] == ("cp1",)


def test_nodeops_yaml_defaults_and_lists(tmp_path: Path) -> None:
    inventory = load(
        tmp_path,
        """
        known_hosts: [a/known_hosts, /etc/ssh/extra_known_hosts]
        nodes:
          n1:
          n2: {}
        """,
    )
    assert inventory.known_hosts == (
        tmp_path / "a" / "known_hosts",
        Path("/etc/ssh/extra_known_hosts"),
    )
    assert inventory.use_ssh_config is True
    for node in inventory.nodes:
        assert node.address == node.name
        assert (node.user, node.port, node.key_file, node.roles) == (None, None, None, frozenset())


def test_format_is_told_by_content_not_extension(tmp_path: Path) -> None:
    assert names(load(tmp_path, "nodes:\n  cp1:\n", "looks-like.ini").nodes) == ["cp1"]
    ini = "[kube_node]\nw1 ansible_host=10.0.0.5\n"
    assert load(tmp_path, ini, "looks-like.yaml").nodes[0].address == "10.0.0.5"
    assert load(tmp_path, ini, "hosts").nodes[0].roles == {"worker"}
    ansible_yaml = "all:\n  children:\n    kube_node:\n      hosts:\n        w1:\n"
    assert load(tmp_path, ansible_yaml, "inventory.ini").nodes[0].roles == {"worker"}
    # An Ansible YAML group that happens to be called `nodes` is still Ansible.
    assert load(tmp_path, "nodes:\n  hosts:\n    w2:\n", "x.yml").nodes[0].roles == {"worker"}


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    inventory = load(
        tmp_path,
        """
        nodes:
          w1: &worker {roles: [worker], user: ubuntu, address: 10.0.0.1}
          w2: {<<: *worker, address: 10.0.0.2}
        """,
    )
    assert [(n.address, n.user) for n in inventory.nodes] == [
        ("10.0.0.1", "ubuntu"),
        ("10.0.0.2", "ubuntu"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nodes:\n  cp1: {adress: 10.0.0.1}\n", "unknown key 'adress'"),
        ("nodes:\n  cp1: {address: 10.0.0.1, role: [worker], prot: 22}\n", "'role', 'prot'"),
        ("nodes: {}\ndefault: {user: root}\n", "unknown key 'default'"),
        ("defaults: {usr: root}\nnodes: {}\n", "defaults: unknown key 'usr'"),
        ("nodes:\n  cp1: {roles: [master]}\n", "unknown role"),
        ("nodes:\n  cp1: {groups: [workers]}\n", "group 'workers' is implicit"),
        ("nodes:\n  cp1: {groups: ['a b']}\n", "not a valid group name"),
        ("nodes:\n  cp1: {become: 'yes'}\n", "become must be true or false"),
        ("ssh_config: no-thanks\nnodes: {}\n", "ssh_config must be true or false"),
        ("nodes:\n  cp1: 10.0.0.1\n", "expected a mapping"),
        ("nodes: [cp1, cp2]\n", "expected a mapping"),
        ("known_hosts: {a: b}\nnodes: {}\n", "known_hosts"),
        ("nodes:\n  cp1: {vars: [a]}\n", "vars: expected a mapping"),
    ],
)
def test_nodeops_yaml_mistakes_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in refused(tmp_path, text)


# --- Ansible INI ------------------------------------------------------------------------------

INI = """
    ; a Kubespray-style inventory
    loner ansible_host=192.0.2.99

    [all]
    node1 ansible_host=95.54.0.12 ip=10.3.0.1 access_ip=10.3.0.1 etcd_member_name=etcd1
    node2 ansible_ssh_host=95.54.0.13 ansible_ssh_port=2201 ansible_ssh_user=centos
    node3 ansible_host=95.54.0.14 ansible_ssh_host=95.54.0.15  # the ssh_ spelling wins
    node4 motd="hello world" quoted='a "b" c' number=7 flag=True items="[1, 2]"

    [kube_control_plane]
    node1
    node2

    [etcd:children]
    kube_control_plane

    [kube_node]
    node3
    node4 ansible_port=2222 ansible_user=ubuntu ansible_become=yes
    node5 ansible_connection=local

    [k8s_cluster:children]
    kube_control_plane
    kube_node

    [k8s_cluster:vars]
    level=cluster
    ansible_ssh_private_key_file=keys/cluster

    [kube_node:vars]
    level=node

    [all:vars]
    level=all
    ansible_user=root
    ansible_become_password=s3cr3t pass
"""


def test_ini_hosts_groups_roles_and_connection_vars(tmp_path: Path) -> None:
    inventory = load(tmp_path, INI, "hosts.ini")
    nodes = {n.name: n for n in inventory.nodes}
    assert list(nodes) == ["loner", "node1", "node2", "node3", "node4", "node5"]
    assert nodes["loner"].groups == {"ungrouped"} and nodes["loner"].roles == frozenset()
    assert nodes["loner"].address == "192.0.2.99"
    # ip and access_ip are variables only: the address is ansible_host.
    assert nodes["node1"].address == "95.54.0.12"
    assert (
        nodes["node1"].vars["ip"] == "10.3.0.1" and nodes["node1"].vars["access_ip"] == "10.3.0.1"
    )
    assert nodes["node1"].roles == {"control-plane", "etcd"}
    assert nodes["node1"].groups == {"kube_control_plane", "etcd", "k8s_cluster"}
    # legacy spellings
    assert (nodes["node2"].address, nodes["node2"].port, nodes["node2"].user) == (
        "95.54.0.13",
        2201,
        "centos",
    )
    assert nodes["node3"].address == "95.54.0.15"
    assert nodes["node3"].roles == {"worker"}
    node4 = nodes["node4"]
    assert (node4.port, node4.user, node4.become, node4.address) == (2222, "ubuntu", True, "node4")
    assert node4.vars["motd"] == "hello world"
    assert node4.vars["quoted"] == 'a "b" c'
    assert node4.vars["number"] == 7 and node4.vars["flag"] is True
    assert node4.vars["items"] == [1, 2]
    # ansible_connection=local: reached at its name (or ansible_host).
    assert (
        nodes["node5"].address == "node5" and nodes["node5"].vars["ansible_connection"] == "local"
    )
    # group vars: the child group wins over the parent, which wins over all; host vars win.
    assert nodes["loner"].vars["level"] == "all"
    assert nodes["node1"].vars["level"] == "cluster"
    assert nodes["node3"].vars["level"] == "node"
    assert nodes["node1"].user == "root" and nodes["node1"].key_file == str(
        tmp_path / "keys" / "cluster"
    )
    assert nodes["loner"].key_file is None
    password = nodes["node1"].vars["ansible_become_password"]
    assert isinstance(password, Secret) and password.value == "s3cr3t pass"
    assert "s3cr3t" not in repr(nodes["node1"]) and "s3cr3t" not in str(dict(nodes["node1"].vars))
    groups = inventory.groups()
    assert groups["k8s_cluster"] == ("node1", "node2", "node3", "node4", "node5")
    assert groups["etcd"] == ("node1", "node2")
    assert groups["kube_node"] == groups["workers"] == ("node3", "node4", "node5")
    assert groups["ungrouped"] == ("loner",)


def test_ini_host_only_in_k8s_cluster_gets_no_role(tmp_path: Path) -> None:
    inventory = load(
        tmp_path,
        """
        [k8s-cluster:children]
        kube-master
        kube-node
        [k8s-cluster]
        bastion
        [kube-master]
        m1
        [kube-node]
        n1
        """,
    )
    roles = {n.name: n.roles for n in inventory.nodes}
    assert roles == {"bastion": frozenset(), "m1": {"control-plane"}, "n1": {"worker"}}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("node[01:03]", ["node01", "node02", "node03"]),
        ("node[1:3]", ["node1", "node2", "node3"]),
        ("node[:2]", ["node0", "node1", "node2"]),
        ("node-[a:c]", ["node-a", "node-b", "node-c"]),
        ("n[1:10:3]", ["n1", "n4", "n7", "n10"]),
        ("w[01:09:4].lab", ["w01.lab", "w05.lab", "w09.lab"]),
        ("r[1:2]-[a:b]", ["r1-a", "r1-b", "r2-a", "r2-b"]),
    ],
)
def test_ini_host_ranges(tmp_path: Path, line: str, expected: list[str]) -> None:
    assert names(load(tmp_path, f"[g]\n{line}\n").nodes) == expected


def test_ini_host_port_suffix(tmp_path: Path) -> None:
    inventory = load(tmp_path, "[g]\nweb[1:2]:2222 ansible_user=admin\ndb:2200\n")
    assert [(n.name, n.port, n.user) for n in inventory.nodes] == [
        ("web1", 2222, "admin"),
        ("web2", 2222, "admin"),
        ("db", 2200, None),
    ]


def test_ini_children_may_be_declared_before_the_group(tmp_path: Path) -> None:
    inventory = load(
        tmp_path,
        """
        [masters:children]
        primary
        [primary]
        m1
        [primary:vars]
        role_note=primary
        """,
    )
    (node,) = inventory.nodes
    assert node.roles == {"control-plane"} and node.groups == {"masters", "primary"}
    assert node.vars["role_note"] == "primary"


def test_ini_sibling_groups_of_the_same_depth_apply_by_name(tmp_path: Path) -> None:
    inventory = load(tmp_path, "[b]\nh1\n[a]\nh1\n[a:vars]\nx=a\n[b:vars]\nx=b\n")
    assert inventory.nodes[0].vars["x"] == "b"


def test_ini_comments_and_quoting(tmp_path: Path) -> None:
    inventory = load(
        tmp_path,
        """
        # comment
        ; comment too
        [g]   # trailing comment on a section
        h1 note='a # not a comment' other=x # a comment
        h2 ansible_ssh_pass="p a s s"
        """,
    )
    h1, h2 = inventory.nodes
    assert dict(h1.vars) == {"note": "a # not a comment", "other": "x"}
    assert isinstance(h2.vars["ansible_ssh_pass"], Secret)
    assert h2.vars["ansible_ssh_pass"].value == "p a s s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[g]\nh1 ansible_port=abc\n", "port must be a number"),
        ("[g]\nh1 ansible_port=70000\n", "port must be a number"),
        ("[g:children]\nmissing\n", "names group 'missing', which is never declared"),
        ("[g:vars]\nx=1\n", "[g:vars] is for group 'g', which is never declared"),
        ("[bad group]\nh1\n", "invalid section"),
        ("[g:hostz]\nh1\n", "unknown type 'hostz'"),
        ("[g]\nh1 user admin\n", "expected name=value"),
        ("[g]\nh1 note='unclosed\n", "line 2: cannot read host line"),
        ("[g]\nh[3:1]\n", "ends before it begins"),
        ("[g]\nh[a:3]\n", "must be numbers"),
        ("[g]\nh[01:3]\n", "same length"),
        ("[g]\nh[1:3:0]\n", "step must be a positive number"),
        ("[g]\nh[1:99999]\n", "more than"),
        ("[a:children]\nb\n[b:children]\na\n", "its own ancestor"),
        ("[g]\nh1 ansible_host='{{ ip }}'\n", "Jinja2 template"),
        ("[g]\nh1 ansible_become=maybe\n", "ansible_become must be a boolean"),
        ("[g]\nh1 ansible_host=10.0.0.1\n[k]\nh1 ansible_host=10.0.0.2\n", "duplicate definition"),
        ("[g]\nh1 ansible_user=1000\n", "ansible_user must be a string"),
    ],
)
def test_ini_mistakes_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in refused(tmp_path, text, "hosts.ini")


def test_ini_error_does_not_echo_the_rest_of_an_unquoted_password(tmp_path: Path) -> None:
    message = refused(tmp_path, "[g]\nh1 ansible_become_password=correct horse\n")
    assert "horse" not in message and "quote values" in message


def test_ini_same_host_repeated_without_conflict_is_one_node(tmp_path: Path) -> None:
    inventory = load(tmp_path, "[a]\nh1 ansible_host=10.0.0.1\n[b]\nh1 ansible_host=10.0.0.1\nh1\n")
    (node,) = inventory.nodes
    assert node.groups == {"a", "b"} and node.address == "10.0.0.1"


# --- Ansible YAML -----------------------------------------------------------------------------

ANSIBLE_YAML = """
    all:
      hosts:
        node1: {ansible_host: 95.54.0.12, ip: 10.3.0.1, ansible_ssh_private_key_file: /keys/id-rsa}
        node2:
          ansible_host: 95.54.0.13
          ansible_port: 2202
          ansible_become: true
          ansible_ssh_pass: hunter2
        "w[1:2]:2222":
      vars:
        ansible_user: centos
        level: all
      children:
        kube_control_plane:
          hosts:
            node1:
          vars: {level: cp}
        kube_node:
          hosts:
            node2:
            w[1:2]:
          children:
            gpu:
              hosts: w2
        etcd:
          hosts:
            node1:
        k8s_cluster:
          children:
            kube_control_plane:
            kube_node:
          vars: {level: cluster}
        calico_rr:
          hosts:
"""


def test_ansible_yaml_hosts_children_and_vars(tmp_path: Path) -> None:
    inventory = load(tmp_path, ANSIBLE_YAML, "hosts.yaml")
    nodes = {n.name: n for n in inventory.nodes}
    assert list(nodes) == ["node1", "node2", "w1", "w2"]
    node1, node2 = nodes["node1"], nodes["node2"]
    assert (node1.address, node1.user, node1.port, node1.key_file) == (
        "95.54.0.12",
        "centos",
        None,
        "/keys/id-rsa",
    )
    assert node1.roles == {"control-plane", "etcd"}
    assert node1.groups == {"kube_control_plane", "etcd", "k8s_cluster"}
    assert node1.vars["level"] == "cp" and node1.vars["ip"] == "10.3.0.1"
    assert (node2.address, node2.port, node2.become) == ("95.54.0.13", 2202, True)
    assert node2.roles == {"worker"} and node2.vars["level"] == "cluster"
    assert isinstance(node2.vars["ansible_ssh_pass"], Secret) and "hunter2" not in repr(node2)
    assert [(nodes[w].address, nodes[w].port) for w in ("w1", "w2")] == [("w1", 2222), ("w2", 2222)]
    assert nodes["w2"].groups == {"kube_node", "gpu", "k8s_cluster"}
    assert "calico_rr" in inventory.declared_groups and inventory.groups()["calico_rr"] == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all:\n  host:\n    n1:\n", "unknown key 'host'"),
        ("all:\n  hosts:\n    n1: 10.0.0.1\n", "expected a mapping of variables"),
        ("all:\n  hosts: [n1, n2]\n", "hosts must be a mapping"),
        ("all: [n1]\n", "expected a mapping of hosts"),
        ("all:\n  hosts:\n    n1: {ansible_port: ssh}\n", "port must be a number"),
        (
            "all:\n  hosts:\n    n1: {ansible_host: 1.1.1.1}\n  children:\n    g:\n"
            "      hosts:\n        n1: {ansible_host: 2.2.2.2}\n",
            "duplicate definition",
        ),
        ("a:\n  children:\n    b:\n      children:\n        a:\n", "its own ancestor"),
        ("g:\n  children:\n    all:\n", "'all' cannot be a child"),
    ],
)
def test_ansible_yaml_mistakes_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in refused(tmp_path, text, "hosts.yaml")


# --- errors common to every format --------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="not found") as caught:
        load_inventory(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(caught.value)


def test_directory_is_not_an_inventory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="is a directory"):
        load_inventory(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "nodes: {}\n")
    path.chmod(0)
    with pytest.raises(InventoryError, match="permission denied"):
        load_inventory(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_bytes(b"[g]\nh\xff1\n")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load_inventory(path)


@pytest.mark.parametrize("text", ["", "\n# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    assert "empty" in refused(tmp_path, text)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    message = refused(tmp_path, "nodes:\n  cp1:\n    address: 10.0.0.1\n   roles: [worker\n")
    assert "YAML syntax error at line 4" in message


@pytest.mark.parametrize("text", ["- cp1\n- cp2\n", "--- just a string\n"])
def test_yaml_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    assert "expected a YAML mapping" in refused(tmp_path, text, "x.yaml")


def test_duplicate_node_names_in_yaml(tmp_path: Path) -> None:
    message = refused(
        tmp_path, "nodes:\n  cp1: {address: 10.0.0.1}\n  w1:\n  cp1: {address: 10.0.0.2}\n"
    )
    assert "duplicate key 'cp1' (first at line 2)" in message and "line 4" in message


def test_duplicate_keys_anywhere_in_yaml(tmp_path: Path) -> None:
    message = refused(tmp_path, "nodes:\n  cp1:\n    address: 10.0.0.1\n    address: 10.0.0.2\n")
    assert "duplicate key 'address'" in message
    assert "duplicate key 'n1'" in refused(tmp_path, "all:\n  hosts:\n    n1:\n    n1:\n")


def test_duplicate_nodes_in_an_inventory_built_by_hand(tmp_path: Path) -> None:
    node = Node("cp1", "10.0.0.1")
    with pytest.raises(InventoryError, match="duplicate node name 'cp1'"):
        Inventory(tmp_path / "x", (node, node), (), True)


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"nodes: !!python/object/apply:os.system ['touch {marker}']\n"
    assert "invalid YAML" in refused(tmp_path, text)
    assert not marker.exists()


def test_port_that_is_not_a_number(tmp_path: Path) -> None:
    assert "port must be a number" in refused(tmp_path, "nodes:\n  cp1: {port: ssh}\n")
    assert "port must be a number" in refused(tmp_path, "defaults: {port: 22.5}\nnodes: {cp1: }\n")


@pytest.mark.parametrize("bad", HOSTILE_NAMES)
def test_invalid_node_names_in_nodeops_yaml(tmp_path: Path, bad: str) -> None:
    text = yaml.safe_dump({"nodes": {bad: {"address": "10.0.0.1"}}})
    message = refused(tmp_path, text)
    assert repr(bad) in message and "node name" in message


@pytest.mark.parametrize(
    ("line", "bad"),
    [
        ("w1;touch /tmp/x", "w1;touch"),
        ("$(id)", "$(id)"),
        ("-oProxyCommand=x", "-oProxyCommand=x"),
        ("Node_1 ansible_host=10.0.0.1", "Node_1"),
        ("node[1:2]_x", "node1_x"),
    ],
)
def test_invalid_node_names_in_ini(tmp_path: Path, line: str, bad: str) -> None:
    message = refused(tmp_path, f"[kube_node]\n{line}\n", "hosts.ini")
    assert repr(bad) in message and "line 2" in message


def test_invalid_node_name_in_ansible_yaml(tmp_path: Path) -> None:
    message = refused(tmp_path, "all:\n  hosts:\n    '$(id)':\n", "hosts.yaml")
    assert "'$(id)'" in message


@pytest.mark.parametrize(
    "address", ["10.0.0.1; rm -rf /", "-oProxyCommand=x", "a b", "$(id)", "host_name.example"]
)
def test_invalid_address(tmp_path: Path, address: str) -> None:
    message = refused(tmp_path, yaml.safe_dump({"nodes": {"cp1": {"address": address}}}))
    assert "node 'cp1'" in message and "not an IP address or a host name" in message
    ini = f"[g]\ncp1 ansible_host={shlex.quote(address)}\n"
    assert "not an IP address or a host name" in refused(tmp_path, ini, "h.ini")


# --- property: only DNS-1123 subdomains become nodes ------------------------------------------

name_text = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="abcXYZ019-._$;( é٣", max_size=20),
    st.from_regex(
        r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?){0,3}",
        fullmatch=True,
    ),
)


@settings(max_examples=300, deadline=None)
@given(name_text)
def test_node_accepts_only_dns1123_names(name: str) -> None:
    try:
        node = Node(name, "10.0.0.1")
    except InventoryError:
        assert not is_dns1123_subdomain(name)
    else:
        assert is_dns1123_subdomain(name) and node.name == name


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name_text)
def test_inventory_yaml_accepts_only_dns1123_names(tmp_path: Path, name: str) -> None:
    text = yaml.safe_dump({"nodes": {name: None}})
    assume(yaml.safe_load(text) == {"nodes": {name: None}})
    path = tmp_path / "prop.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        inventory = load_inventory(path)
    except InventoryError as error:
        assert not is_dns1123_subdomain(name)
        assert repr(name) in str(error)
    else:
        assert is_dns1123_subdomain(name) and names(inventory.nodes) == [name]


@pytest.mark.parametrize("name", ["hosts", "children", "vars"])
def test_a_node_named_like_an_ansible_group_key_is_a_node(tmp_path: Path, name: str) -> None:
    # Found by the property below: `nodes: {children: null}` loaded as an empty Ansible group.
    path = tmp_path / "inv.yaml"
    path.write_text(f"nodes:\n  {name}:\n", encoding="utf-8")
    assert names(load_inventory(path).nodes) == [name]
    path.write_text("nodes:\n  hosts:\n    w1:\n      ansible_host: 10.0.0.5\n")
    assert names(load_inventory(path).nodes) == ["w1"]  # a real Ansible group called nodes


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(alphabet="abcXYZ019-._$()!*@%é٣İ", min_size=1, max_size=20))
def test_inventory_ini_accepts_only_dns1123_names(tmp_path: Path, name: str) -> None:
    path = tmp_path / "prop.ini"
    path.write_text(f"[kube_node]\n{name} ansible_port=22\n", encoding="utf-8")
    try:
        inventory = load_inventory(path)
    except InventoryError as error:
        assert not is_dns1123_subdomain(name)
        assert repr(name) in str(error)
    else:
        assert is_dns1123_subdomain(name) and names(inventory.nodes) == [name]


# --- selection --------------------------------------------------------------------------------

CLUSTER = """
    nodes:
      cp1: {roles: [control-plane, etcd]}
      cp2: {roles: [control-plane, etcd]}
      w1: {roles: [worker], groups: [zone-a]}
      w2: {roles: [worker], groups: [zone-b]}
      w3: {roles: [worker], groups: [zone-a, gpu]}
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Inventory:
    return load(tmp_path, CLUSTER, "cluster.yaml")


def test_select_by_name_in_inventory_order_without_duplicates(cluster: Inventory) -> None:
    assert names(cluster.select(names=["w2", "cp1", "w2"])) == ["cp1", "w2"]
    assert names(cluster.select(names="cp2")) == ["cp2"]  # one name, not its letters


def test_select_by_group(cluster: Inventory) -> None:
    assert names(cluster.select(groups=["workers"])) == ["w1", "w2", "w3"]
    assert names(cluster.select(groups=["control-plane"])) == ["cp1", "cp2"]
    assert names(cluster.select(groups=["etcd", "zone-a"])) == ["cp1", "cp2", "w1", "w3"]
    assert names(cluster.select(groups=["all"])) == ["cp1", "cp2", "w1", "w2", "w3"]
    assert names(cluster.select(names=["w2"], groups=["gpu"])) == ["w2", "w3"]


def test_select_with_limits(cluster: Inventory) -> None:
    assert names(cluster.select(limits=["w*"])) == ["w1", "w2", "w3"]
    assert names(cluster.select(limits=["cp?", "w3"])) == ["cp1", "cp2", "w3"]
    assert names(cluster.select(limits=["zone-*"])) == ["w1", "w2", "w3"]  # group names too
    assert names(cluster.select(groups=["workers"], limits=["*1"])) == ["w1"]
    assert names(cluster.select(groups=["zone-a"], limits=["gpu"])) == ["w3"]
    assert names(cluster.select(all=True, limits=["control-planes"])) == ["cp1", "cp2"]


def test_select_all(cluster: Inventory) -> None:
    assert cluster.select(all=True) == cluster.nodes


def test_unknown_node_lists_the_known_ones(cluster: Inventory) -> None:
    with pytest.raises(InventoryError) as caught:
        cluster.select(names=["x"])
    assert str(caught.value) == "unknown node 'x'; known nodes: cp1, cp2, w1, w2, w3"
    with pytest.raises(InventoryError, match="unknown node 'x'; known nodes: cp1, cp2"):
        cluster.node("x")
    assert cluster.node("w2").groups == {"zone-b"}


def test_unknown_group_lists_the_known_ones(cluster: Inventory) -> None:
    with pytest.raises(
        InventoryError, match="unknown group 'zone-c'; known groups: all, control-plane"
    ):
        cluster.select(groups=["zone-c"])


def test_nothing_selected(cluster: Inventory) -> None:
    with pytest.raises(InventoryError) as caught:
        cluster.select()
    assert all(opt in str(caught.value) for opt in ("--node", "--group", "--limit", "--all"))


def test_glob_matching_nothing(cluster: Inventory) -> None:
    with pytest.raises(InventoryError, match="'db\\*' matches no node"):
        cluster.select(limits=["db*"])


def test_limit_that_leaves_nothing(cluster: Inventory) -> None:
    with pytest.raises(InventoryError, match="no node selected"):
        cluster.select(groups=["control-planes"], limits=["w*"])
