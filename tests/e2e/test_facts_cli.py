"""The `nodeops` command over real SSH on the lab: facts, run, host key refusal, bad inventories."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nodeops import lab as nodeops_lab

pytestmark = pytest.mark.lab

EXPECTED = {
    "cp1": ("ubuntu", "debian", "apt"),
    "worker1": ("ubuntu", "debian", "apt"),
    "worker2": ("rocky", "rhel", "dnf"),
    "worker3": ("debian", "debian", "apt"),
}


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """A private HOME, so the user's ~/.ssh/known_hosts and config play no part."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def nodeops(*args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home)}
    env.pop("NODEOPS_INVENTORY", None)
    return subprocess.run(
        [sys.executable, "-m", "nodeops", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def inventory_copy(lab: nodeops_lab.LabState, tmp_path: Path, **changes: object) -> Path:
    """The lab's inventory with top-level changes, written beside the test."""
    data = yaml.safe_load(Path(lab.inventory_path).read_text())
    data.update(changes)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def sshd_log(lab: nodeops_lab.LabState, node: str) -> str:
    return (Path(lab.state_dir) / "nodes" / node / "sshd.log").read_text()


def test_facts_json_from_every_node(lab: nodeops_lab.LabState, home: Path) -> None:
    run = nodeops("facts", "--all", "--json", "-i", str(lab.inventory_path), home=home)
    assert run.returncode == 0, run.stderr
    facts = json.loads(run.stdout)
    assert set(facts) == set(EXPECTED)
    for node, (os_id, family, manager) in EXPECTED.items():
        got = facts[node]
        assert got["hostname"] == node
        assert got["platform"]["id"] == os_id
        assert got["platform"]["family"] == family
        assert got["platform"]["package_manager"] == manager
        assert got["role"] == "none"  # no kubeadm files yet on a bare lab node
        assert got["kernel"] == os.uname().release  # namespaces share the host's kernel
        assert got["os_error"] is None


def test_facts_table_and_selection(lab: nodeops_lab.LabState, home: Path) -> None:
    run = nodeops(
        "facts", "--group", "workers", "--limit", "worker[12]", "-i", str(lab.inventory_path),
        home=home,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split()[:3] == ["NODE", "ROLE", "OS"]
    assert [line.split()[0] for line in lines[1:]] == ["worker1", "worker2"]
    assert "Rocky Linux 9" in run.stdout


def test_unknown_node_lists_the_known_ones(lab: nodeops_lab.LabState, home: Path) -> None:
    run = nodeops("facts", "--node", "worker9", "-i", str(lab.inventory_path), home=home)
    assert run.returncode == 2
    assert "worker9" in run.stderr
    for known in EXPECTED:
        assert known in run.stderr


def test_unreachable_node_is_reported_and_others_still_answer(
    lab: nodeops_lab.LabState, tmp_path: Path, home: Path
) -> None:
    data = yaml.safe_load(Path(lab.inventory_path).read_text())
    # Loopback port 1: nothing listens, so the refusal is immediate and stays on this machine.
    data["nodes"]["ghost"] = {"address": "127.0.0.1", "port": 1, "roles": ["worker"]}
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    run = nodeops("facts", "--all", "--json", "-i", str(path), home=home)
    assert run.returncode == 1
    facts = json.loads(run.stdout)
    assert "cannot connect" in facts["ghost"]["error"]
    assert all(facts[node]["hostname"] == node for node in EXPECTED)
    assert re.search(r"^error: ghost \(127\.0\.0\.1:1\): cannot connect", run.stderr, re.M)


def test_run_groups_output_and_exit_codes(lab: nodeops_lab.LabState, home: Path) -> None:
    inventory = str(lab.inventory_path)
    ok = nodeops("run", "--all", "-i", inventory, "--", "cat", "/etc/hostname", home=home)
    assert ok.returncode == 0, ok.stderr
    for node in EXPECTED:
        assert f"== {node}: exit 0 ==\n{node}\n" in ok.stdout
    # Each word is one quoted argument: shell syntax in it stays data.
    quoted = nodeops("run", "--node", "cp1", "-i", inventory, "--", "echo", "$(id)", home=home)
    assert "== cp1: exit 0 ==\n$(id)\n" in quoted.stdout
    shell = nodeops(
        "run",
        "--node",
        "worker2",
        "--shell",
        "-i",
        inventory,
        "--",
        "rpm -q kubeadm; exit 3",
        home=home,
    )
    assert shell.returncode == 1
    assert "== worker2: exit 3 ==\npackage kubeadm is not installed\n" in shell.stdout


def test_case_01_unknown_host_key_is_refused_before_authentication(
    lab: nodeops_lab.LabState, tmp_path: Path, home: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inventory = inventory_copy(lab, tmp_path, known_hosts=str(empty))
    before = sshd_log(lab, "cp1").count("Accepted publickey")
    run = nodeops("facts", "--node", "cp1", "-i", str(inventory), home=home)
    assert run.returncode == 1
    cp1 = lab.node("cp1")
    assert f"{cp1.address}: unknown host key (ssh-ed25519 key {cp1.host_key_fingerprint})" in (
        run.stderr
    )
    assert sshd_log(lab, "cp1").count("Accepted publickey") == before
    assert empty.read_text() == ""


def test_case_01_accept_new_host_keys_records_them_0600(
    lab: nodeops_lab.LabState, tmp_path: Path, home: Path
) -> None:
    known = tmp_path / "known_hosts"
    inventory = inventory_copy(lab, tmp_path, known_hosts=str(known))
    run = nodeops(
        "facts", "--node", "worker2", "--accept-new-host-keys", "-i", str(inventory), home=home
    )
    assert run.returncode == 0, run.stderr
    worker2 = lab.node("worker2")
    assert known.read_text().split()[:2] == [worker2.address, "ssh-ed25519"]
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    again = nodeops("facts", "--node", "worker2", "-i", str(inventory), home=home)
    assert again.returncode == 0, again.stderr


def test_case_02_changed_host_key_is_refused_even_with_accept_new(
    lab: nodeops_lab.LabState, tmp_path: Path, home: Path
) -> None:
    # Claim worker1's address has cp1's key: exactly what a reinstalled node or an impostor shows.
    cp1, worker1 = lab.node("cp1"), lab.node("worker1")
    lying = tmp_path / "known_hosts"
    lying.write_text(f"{worker1.address} {cp1.host_key}\n")
    inventory = inventory_copy(lab, tmp_path, known_hosts=str(lying))
    before = sshd_log(lab, "worker1").count("Accepted publickey")
    run = nodeops(
        "facts", "--node", "worker1", "--accept-new-host-keys", "-i", str(inventory), home=home
    )
    assert run.returncode == 1
    assert "host key has CHANGED" in run.stderr
    assert worker1.host_key_fingerprint in run.stderr
    assert sshd_log(lab, "worker1").count("Accepted publickey") == before
    assert lying.read_text() == f"{worker1.address} {cp1.host_key}\n"


@pytest.mark.parametrize("hostile", ["w1;touch /tmp/nodeops-pwn", "$(id)", "-oProxyCommand=id"])
def test_case_05_hostile_node_names_are_rejected_before_connecting(
    lab: nodeops_lab.LabState, tmp_path: Path, home: Path, hostile: str
) -> None:
    canary = Path("/tmp/nodeops-pwn")
    canary.unlink(missing_ok=True)
    data = yaml.safe_load(Path(lab.inventory_path).read_text())
    data["nodes"][hostile] = {"address": lab.node("cp1").address}
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    before = sshd_log(lab, "cp1").count("Connection from") + sshd_log(lab, "cp1").count(
        "Accepted"
    )
    run = nodeops("facts", "--all", "-i", str(path), home=home)
    assert run.returncode == 2
    assert str(path) in run.stderr and repr(hostile) in run.stderr
    assert run.stdout == ""
    assert not canary.exists()
    after = sshd_log(lab, "cp1").count("Connection from") + sshd_log(lab, "cp1").count("Accepted")
    assert after == before


def test_cli_help_is_the_task_docstring(home: Path) -> None:
    run = nodeops("facts", "--help", home=home)
    assert run.returncode == 0
    assert "Gather facts from nodes over SSH" in run.stdout
    listing = nodeops("--list", home=home)
    for name in ("facts", "run", "lab.up", "lab.down", "lab.status", "lab.ssh"):
        assert name in listing.stdout


def test_installed_console_script_serves_the_same_tasks(home: Path) -> None:
    script = shutil.which("nodeops", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the nodeops console script is not installed beside this Python")
    listing = subprocess.run([script, "--list"], capture_output=True, text=True, check=True)
    assert "facts" in listing.stdout and "lab.up" in listing.stdout


def test_lab_tasks_from_up_to_down(
    fresh_lab_name: object, lab_root: Path, tmp_path: Path, home: Path
) -> None:
    name = fresh_lab_name()  # type: ignore[operator]
    inventory = tmp_path / "lab.yaml"
    try:
        up = nodeops(
            "lab.up", "--name", name, "--workers", "1", "--worker-os", "debian-12",
            "--inventory", str(inventory), home=home,
        )
        assert up.returncode == 0, up.stderr
        assert f"lab {name!r} is up" in up.stdout
        status = nodeops("lab.status", "--name", name, home=home)
        assert "worker1" in status.stdout and "debian-12" in status.stdout
        facts = nodeops("facts", "--all", "--json", "-i", str(inventory), home=home)
        assert facts.returncode == 0, facts.stderr
        assert json.loads(facts.stdout)["worker1"]["platform"]["id"] == "debian"
        ssh = nodeops("lab.ssh", "worker1", "--name", name, "--", "hostname", home=home)
        assert (ssh.returncode, ssh.stdout) == (0, "worker1\n")
    finally:
        down = nodeops("lab.down", "--name", name, home=home)
    assert down.returncode == 0, down.stderr
    assert not inventory.exists()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"nodeops-{name}-" not in namespaces
    gone = nodeops("lab.status", "--name", name, home=home)
    assert gone.returncode == 2 and "is not up" in gone.stderr


def test_ssh_config_user_identity_and_proxyjump_are_honoured(
    lab: nodeops_lab.LabState, tmp_path: Path, home: Path
) -> None:
    """An inventory with bare addresses; ~/.ssh/config supplies user, key, known_hosts and a
    bastion (cp1) for worker3, whose host key is checked like any other."""
    cp1, worker3 = lab.node("cp1"), lab.node("worker3")
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "config").write_text(
        f"Host {cp1.address} {worker3.address}\n"
        "  User root\n"
        f"  IdentityFile {lab.key_path}\n"
        f"  UserKnownHostsFile {lab.known_hosts_path}\n"
        f"Host {worker3.address}\n"
        f"  ProxyJump root@{cp1.address}\n"
    )
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "nodes": {
                    "cp1": {"address": cp1.address},
                    "worker3": {"address": worker3.address},
                }
            }
        )
    )
    run = nodeops("run", "--all", "-i", str(inventory), "--", "hostname", home=home)
    assert run.returncode == 0, run.stderr
    assert "== cp1: exit 0 ==\ncp1\n" in run.stdout
    assert "== worker3: exit 0 ==\nworker3\n" in run.stdout
    # worker3 saw the connection come from cp1 (the bastion), not from the lab bridge.
    assert f"Accepted publickey for root from {cp1.address}" in sshd_log(lab, "worker3")


def test_command_timeout_is_bounded_and_reported(lab: nodeops_lab.LabState, home: Path) -> None:
    run = nodeops(
        "run", "--node", "worker1", "--timeout", "1", "-i", str(lab.inventory_path), "--",
        "sleep", "30", home=home, timeout=20,
    )
    assert run.returncode == 1
    assert "== worker1: failed ==" in run.stdout
    assert "`sleep 30` did not finish within 1 s" in run.stderr


def test_lab_up_as_non_root_is_one_clear_error() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root")
    run = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
         sys.executable, "-m", "nodeops", "lab.up", "--name", "nonroot"],
        capture_output=True, text=True, timeout=60, cwd="/",
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1",
             "PYTHONPATH": str(Path(nodeops_lab.__file__).resolve().parents[2])},
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: the lab needs root (network namespaces, mounts, a bridge): run it as root"
    ]
