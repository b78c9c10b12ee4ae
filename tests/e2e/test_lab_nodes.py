"""The lab's nodes over real SSH: their own OS, host name, files and tools; up and down."""

from __future__ import annotations

import hashlib
import os
import secrets
import shlex
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from nodeops import lab as nodeops_lab
from nodeops.errors import LabError
from nodeops.lab import host, network, sshd
from nodeops.lab.spec import bridge_name, derived_subnet, netns_prefix, veth_prefix

pytestmark = pytest.mark.lab

Ssh = Callable[..., subprocess.CompletedProcess[str]]  # the `ssh` fixture

EXPECTED_OS = {
    "cp1": ("ubuntu", "22.04"),
    "worker1": ("ubuntu", "24.04"),
    "worker2": ("rocky", "9.3"),
    "worker3": ("debian", "12"),
}


def os_release(text: str) -> dict[str, str]:
    fields = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v.strip('"') for k, v in fields}


def test_each_node_shows_its_own_os(lab: nodeops_lab.LabState, ssh: Ssh) -> None:
    script = "cat /etc/os-release; echo ---; cat /usr/lib/os-release; echo ---; hostname"
    with ThreadPoolExecutor(len(lab.nodes)) as pool:
        runs = pool.map(lambda n: ssh(n, "sh", "-c", script), EXPECTED_OS)
        done = dict(zip(EXPECTED_OS, runs, strict=True))
    for node, (os_id, version) in EXPECTED_OS.items():
        assert done[node].returncode == 0, done[node].stderr
        etc, usr, hostname = done[node].stdout.split("---\n")
        assert etc == usr
        fields = os_release(etc)
        assert (fields["ID"], fields["VERSION_ID"]) == (os_id, version), node
        assert hostname.strip() == node


def test_rocky_node_has_rpm_tools_and_no_apt(ssh: Ssh) -> None:
    probe = (
        "for t in apt-get apt apt-cache apt-mark dpkg dpkg-query dnf yum rpm; do"
        ' if command -v $t >/dev/null; then echo "$t yes"; else echo "$t no"; fi; done;'
        " ls /usr/lib/apt /var/lib/dpkg /etc/debian_version 2>/dev/null; cat /etc/redhat-release"
    )
    out = ssh("worker2", "sh", "-c", probe).stdout.splitlines()
    has = dict(line.split() for line in out[:9])
    assert has == {
        "apt-get": "no", "apt": "no", "apt-cache": "no", "apt-mark": "no", "dpkg": "no",
        "dpkg-query": "no", "dnf": "yes", "yum": "yes", "rpm": "yes",
    }  # fmt: skip
    assert out[9:] == ["Rocky Linux release 9.3 (Blue Onyx)"]
    # also by absolute path, which skips PATH: the host's tools are hidden, not just shadowed
    assert ssh("worker2", "/usr/bin/apt-get", "--version").returncode == 127


def test_ubuntu_node_has_apt_tools_and_no_dnf(ssh: Ssh) -> None:
    done = ssh("worker1", "sh", "-c", "command -v dpkg-query && dpkg-query --version | head -1")
    assert done.returncode == 0 and "/usr/bin/dpkg-query" in done.stdout
    assert ssh("worker1", "sh", "-c", "command -v dnf || command -v rpm").returncode != 0
    lsb = ssh("worker1", "cat", "/etc/lsb-release", "/etc/debian_version").stdout
    assert "DISTRIB_RELEASE=24.04" in lsb and "trixie/sid" in lsb


def test_rhel_tool_stubs_speak_like_the_real_ones(ssh: Ssh) -> None:
    q = ssh("worker2", "rpm", "-q", "kubeadm", "kubelet")
    assert (q.returncode, q.stdout) == (
        2,  # real rpm exits with the number of packages it did not find
        "package kubeadm is not installed\npackage kubelet is not installed\n",
    )
    assert ssh("worker2", "rpm", "--version").stdout == "RPM version 4.16.1.3\n"
    assert ssh("worker2", "dnf", "--version").stdout.splitlines()[0] == "4.14.0"
    # no kubernetes.repo yet: nothing offers kubeadm
    other = ssh("worker2", "yum", "install", "-y", "kubeadm")
    assert other.returncode == 1
    assert other.stderr.splitlines() == [
        "No match for argument: kubeadm",
        "Error: Unable to find a match: kubeadm",
    ]


def test_etc_root_var_and_opt_are_private_to_each_node(lab: nodeops_lab.LabState, ssh: Ssh) -> None:
    # /var/cache and /opt too: one node's staged packages or CNI plugins are not another's.
    name = f"nodeops-lab-test-{secrets.token_hex(4)}"
    paths = [
        f"/etc/{name}",
        f"/root/{name}",
        f"/var/log/{name}",
        f"/var/lib/{name}",
        f"/var/cache/{name}",
        f"/opt/{name}",
    ]
    assert ssh("cp1", "touch", *paths).returncode == 0
    try:
        listed = ssh("cp1", "ls", *paths)
        assert listed.returncode == 0, listed.stderr
        absent = ssh("worker1", "sh", "-c", f"ls {shlex.join(paths)}")
        assert absent.returncode != 0 and absent.stdout == ""
        for path in paths:
            assert not os.path.lexists(path)
    finally:
        ssh("cp1", "rm", "-f", *paths)


def test_host_keys_are_checked(lab: nodeops_lab.LabState, tmp_path: Path) -> None:
    lines = lab.known_hosts_path.read_text().splitlines()
    assert lines == [f"{n.address} {n.host_key}" for n in lab.nodes]
    assert oct(lab.known_hosts_path.stat().st_mode & 0o777) == "0o600"
    assert oct(lab.key_path.stat().st_mode & 0o777) == "0o600"
    assert all(n.host_key_fingerprint == sshd.fingerprint(n.host_key) for n in lab.nodes)
    # an empty known_hosts: strict checking refuses the node
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    argv = [
        a.replace(str(lab.known_hosts_path), str(empty))
        for a in nodeops_lab.ssh_argv(lab.name, "cp1", ["true"])
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 255
    assert "Host key verification failed" in done.stderr


def test_host_key_fingerprint_matches_ssh_keygen(lab: nodeops_lab.LabState) -> None:
    node = lab.nodes[0]
    out = subprocess.run(
        ["ssh-keygen", "-l", "-f", "-"], input=node.host_key, capture_output=True, text=True
    ).stdout
    assert out.split()[1] == node.host_key_fingerprint


def test_password_login_is_refused(lab: nodeops_lab.LabState) -> None:
    argv = [
        "ssh", "-F", "/dev/null",
        "-o", f"UserKnownHostsFile={lab.known_hosts_path}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "PubkeyAuthentication=no",
        f"root@{lab.node('cp1').address}", "true",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 255
    assert "Permission denied (publickey)" in done.stderr


def test_inventory_lists_the_nodes(lab: nodeops_lab.LabState) -> None:
    assert lab.inventory_path is not None
    text = lab.inventory_path.read_text()
    assert text.startswith(f'# Written by `invoke lab.up` for the local lab "{lab.name}";')
    data = yaml.safe_load(text)
    assert data["lab"] == lab.name
    assert data["known_hosts"] == str(lab.known_hosts_path)
    assert data["ssh_config"] is False
    assert data["defaults"] == {"user": "root", "port": 22, "key": str(lab.key_path)}
    assert data["nodes"]["cp1"] == {
        "address": lab.node("cp1").address,
        "roles": ["control-plane", "etcd"],
        "groups": ["lab"],
    }
    assert list(data["nodes"]) == [n.name for n in lab.nodes]
    assert data["nodes"]["worker2"]["roles"] == ["worker"]


def test_addresses_and_names(lab: nodeops_lab.LabState) -> None:
    net = lab.spec.subnet.rsplit(".", 1)[0]
    assert lab.spec.subnet == derived_subnet(lab.name) != "10.213.0.0/24"
    assert derived_subnet("lab") == "10.213.0.0/24"
    assert lab.bridge_address == f"{net}.1"
    assert [n.address for n in lab.nodes] == [f"{net}.{11 + i}" for i in range(len(lab.nodes))]
    assert all(len(link) <= 15 for link in network.lab_links(lab.name))
    assert network.lab_netns(lab.name) == sorted(f"nodeops-{lab.name}-{n}" for n in EXPECTED_OS)


def test_node_exec_runs_inside_the_node(lab: nodeops_lab.LabState) -> None:
    script = "hostname; readlink /proc/1/exe; ip -4 -br addr show eth0"
    argv = nodeops_lab.node_exec_argv(lab.name, "worker3", ["sh", "-c", script])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "worker3"
    # The node's init is the lab's own Python, which nodes share with the host.
    assert out[1] == os.path.realpath(sys.executable)
    assert f"{lab.node('worker3').address}/24" in out[2]
    assert (
        "debian"
        in subprocess.run(
            nodeops_lab.node_exec_argv(lab.name, "worker3", ["cat", "/etc/os-release"]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def test_nodes_reach_each_other_but_not_beyond(lab: nodeops_lab.LabState) -> None:
    code = (
        "import socket,sys\n"
        "s=socket.create_connection((sys.argv[1],22),timeout=2); print(s.recv(8).decode())"
    )
    argv = ["python3", "-c", code, lab.node("cp1").address]
    out = subprocess.run(
        nodeops_lab.node_exec_argv(lab.name, "worker1", argv), capture_output=True, text=True
    )
    assert out.stdout.startswith("SSH-2.0"), out.stderr
    routes = subprocess.run(
        nodeops_lab.node_exec_argv(lab.name, "worker1", ["ip", "route"]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "default" not in routes


def test_up_again_reuses_the_running_lab(lab: nodeops_lab.LabState) -> None:
    again = nodeops_lab.up(lab.spec, inventory_path=lab.inventory_path)
    assert again == lab
    assert nodeops_lab.status(lab.name) == lab
    assert nodeops_lab.problems(lab) == []


def test_up_with_another_spec_is_refused(lab: nodeops_lab.LabState) -> None:
    other = nodeops_lab.default_spec(lab.name, workers=1)
    with pytest.raises(LabError, match=r"already up with another spec.*lab\.down"):
        nodeops_lab.up(other, inventory_path=lab.inventory_path)
    assert nodeops_lab.problems(lab) == []


def test_ssh_argv_shape(lab: nodeops_lab.LabState) -> None:
    argv = nodeops_lab.ssh_argv(lab.name, "cp1", ["echo", "$HOSTNAME", "|", "tr", "a-z", "A-Z"])
    assert argv[0] == "ssh"
    assert argv[argv.index("-i") + 1] == str(lab.key_path)
    assert "StrictHostKeyChecking=yes" in argv
    assert argv[-8:-6] == [f"root@{lab.node('cp1').address}", "--"]
    # words go to the node's shell as with `ssh HOST WORDS...`
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.stdout == "CP1\n"
    assert nodeops_lab.ssh_argv(lab.name, "cp1", None)[-1] == f"root@{lab.node('cp1').address}"
    with pytest.raises(LabError, match="no node 'nope'"):
        nodeops_lab.ssh_argv(lab.name, "nope", None)


# Labs of their own: up and down


def _host_fingerprint() -> dict[str, str]:
    """What the lab must never change on the host."""
    seen = {"hostname": socket.gethostname()}
    for path in [
        *sorted(Path("/etc/ssh").rglob("*")),
        Path("/etc/hostname"),
        Path("/etc/hosts"),
        Path("/etc/os-release"),
        Path("/usr/lib/os-release"),
        Path("/usr/bin/apt-get"),
        Path("/usr/bin/dnf"),
        Path("/usr/bin/rpm"),
    ]:
        try:
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            seen[str(path)] = f"{st.st_mode:o} {st.st_mtime_ns} {digest}"
        except OSError:
            seen[str(path)] = "absent"
    return seen


@pytest.fixture
def own_lab(
    lab_root: Path, tmp_path: Path, fresh_lab_name: Callable[[], str]
) -> Iterator[tuple[nodeops_lab.LabSpec, Path]]:
    """A small lab's spec and inventory path, torn down after the test whatever happened."""
    name = fresh_lab_name()
    spec = nodeops_lab.default_spec(name, workers=1, worker_os=("rocky-9",))
    try:
        yield spec, tmp_path / "inventory.yaml"
    finally:
        nodeops_lab.down(name)


def _assert_gone(name: str, pids: list[int], inventory: Path) -> None:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert netns_prefix(name) not in out
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert bridge_name(name) not in links and veth_prefix(name) not in links
    assert [p for p in pids if host.start_time(p) is not None] == []
    assert not nodeops_lab.state_dir(name).exists()
    assert not inventory.exists()
    assert nodeops_lab.status(name) is None


def test_down_removes_everything(own_lab: tuple[nodeops_lab.LabSpec, Path]) -> None:
    spec, inventory = own_lab
    before = _host_fingerprint()
    state = nodeops_lab.up(spec, inventory_path=inventory)
    first = [n.holder_pid for n in state.nodes]
    again = nodeops_lab.up(spec, inventory_path=inventory)
    assert [n.holder_pid for n in again.nodes] == first  # idempotent: the same processes
    pids = [p for n in state.nodes for p in network.netns_pids(n.netns)]
    assert len(pids) >= 4 * len(state.nodes)  # unshare, init, nsenter, sshd per node
    assert inventory.exists() and state.state_dir.exists()

    nodeops_lab.down(spec.name)

    _assert_gone(spec.name, pids, inventory)
    assert _host_fingerprint() == before
    nodeops_lab.down(spec.name)  # safe to repeat


def test_failed_up_cleans_up_after_itself(
    own_lab: tuple[nodeops_lab.LabSpec, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, inventory = own_lab
    config = sshd.sshd_config
    monkeypatch.setattr(
        sshd,
        "sshd_config",
        lambda node, address: config(node, address) + ("NoSuchOption yes\n" * (node == "worker1")),
    )
    with pytest.raises(LabError, match=r"node worker1: sshd exited .*NoSuchOption"):
        nodeops_lab.up(spec, inventory_path=inventory)
    _assert_gone(spec.name, [], inventory)


def test_down_without_state_finds_the_lab_by_its_names(
    own_lab: tuple[nodeops_lab.LabSpec, Path],
) -> None:
    spec, inventory = own_lab
    state = nodeops_lab.up(spec, inventory_path=inventory)
    pids = [p for n in state.nodes for p in network.netns_pids(n.netns)]
    (state.state_dir / "state.json").unlink()
    with pytest.raises(LabError, match="parts of it are left"):
        nodeops_lab.up(spec, inventory_path=inventory)
    nodeops_lab.down(spec.name)
    assert [p for p in pids if host.start_time(p) is not None] == []
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert netns_prefix(spec.name) not in out
    assert not state.state_dir.exists()
