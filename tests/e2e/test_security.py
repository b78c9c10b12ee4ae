"""Cases 1, 2 and 5 on a one-node lab whose sshd logs at DEBUG1, so its log shows every
connection, every authentication request and every command: an unknown or changed host key,
or a hostile inventory, ends the run before the node sees a credential or a command."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from nodeops import lab as nodeops_lab

pytestmark = pytest.mark.lab

# What sshd logs at DEBUG1 (VERBOSE and up) for a connection, an authentication request
# and a command.
CONNECTED = "Connection from "
AUTH = ("userauth-request", "Accepted", "Failed", "Postponed", "authentications that can")
COMMAND = "request exec"


@dataclass
class SecurityLab:
    """The lab, a private HOME, and the offset in cp1's sshd log where a test began."""

    state: nodeops_lab.LabState
    home: Path
    log: Path

    def mark(self) -> int:
        return self.log.stat().st_size

    def log_since(self, mark: int) -> str:
        with self.log.open("rb") as handle:
            handle.seek(mark)
            return handle.read().decode(errors="replace")

    def node_sh(self, script: str) -> subprocess.CompletedProcess[str]:
        argv = nodeops_lab.node_exec_argv(self.state.name, "cp1", ["sh", "-c", script])
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)

    def reload_sshd(self) -> None:
        """SIGHUP: sshd re-executes itself with the new config and host key (same PID)."""
        node = self.state.node("cp1")
        mark = self.mark()
        os.kill(node.sshd_pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "Server listening" not in self.log_since(mark):
            assert time.monotonic() < deadline, "sshd did not come back after SIGHUP"
            time.sleep(0.05)
        with socket.create_connection((node.address, 22), timeout=5) as probe:
            assert probe.recv(4).startswith(b"SSH-")

    def inventory(self, tmp_path: Path, **changes: object) -> Path:
        data = yaml.safe_load(Path(self.state.inventory_path).read_text())
        data.update(changes)
        path = tmp_path / "inventory.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def nodeops(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.home)}
        env.pop("NODEOPS_INVENTORY", None)
        return subprocess.run(
            [sys.executable, "-m", "nodeops", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def sec(
    lab_root: Path,
    fresh_lab_name: Callable[[], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SecurityLab]:
    name = fresh_lab_name()
    spec = nodeops_lab.default_spec(name, workers=0, worker_os=())
    inventory = tmp_path_factory.mktemp("secinv") / "lab.yaml"
    home = tmp_path_factory.mktemp("sechome")
    try:
        state = nodeops_lab.up(spec, inventory_path=inventory)
        running = SecurityLab(state, home, Path(state.state_dir) / "nodes" / "cp1" / "sshd.log")
        running.node_sh("echo 'LogLevel DEBUG1' >> /etc/ssh/sshd_config")
        running.reload_sshd()
        yield running
    finally:
        nodeops_lab.down(name)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"nodeops-{name}-" not in namespaces


def _canary_absent(sec: SecurityLab) -> bool:
    return sec.node_sh("test -e /root/pwned && echo yes || echo no").stdout.strip() == "no"


def test_case_01_the_log_shows_auth_and_commands_of_a_trusted_run(sec: SecurityLab) -> None:
    # The control for the refusals below: these lines do appear when a run gets through.
    mark = sec.mark()
    run = sec.nodeops("run", "--all", "-i", str(sec.state.inventory_path), "--", "true")
    assert run.returncode == 0, run.stderr
    seen = sec.log_since(mark)
    assert CONNECTED in seen and "userauth-request" in seen and COMMAND in seen


def test_case_01_unknown_host_key_is_refused_before_any_credential_or_command(
    sec: SecurityLab, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inventory = sec.inventory(tmp_path, known_hosts=str(empty))
    mark = sec.mark()
    run = sec.nodeops("run", "--all", "-i", str(inventory), "--", "touch", "/root/pwned")
    cp1 = sec.state.node("cp1")
    assert run.returncode == 1
    assert f"{cp1.address}: unknown host key (ssh-ed25519 key {cp1.host_key_fingerprint})" in (
        run.stderr
    )
    seen = sec.log_since(mark)
    assert CONNECTED in seen  # it reached sshd ...
    assert not [line for line in seen.splitlines() if any(a in line for a in AUTH)], seen
    assert COMMAND not in seen  # ... and went no further
    assert _canary_absent(sec)
    assert empty.read_text() == ""


def test_case_01_trust_on_first_use_records_0600_then_runs(
    sec: SecurityLab, tmp_path: Path
) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    inventory = sec.inventory(tmp_path, known_hosts=str(known))
    run = sec.nodeops(
        "run", "--all", "--accept-new-host-keys", "-i", str(inventory), "--", "hostname"
    )
    assert run.returncode == 0, run.stderr
    cp1 = sec.state.node("cp1")
    assert known.read_text() == f"{cp1.address} {cp1.host_key}\n"
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert stat.S_IMODE(known.parent.stat().st_mode) == 0o700
    assert [p.name for p in known.parent.iterdir()] == ["known_hosts"]
    again = sec.nodeops("run", "--all", "-i", str(inventory), "--", "hostname")
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("hostile", ["cp1;touch /root/pwned", "$(touch /root/pwned)"])
def test_case_05_a_hostile_inventory_never_connects(
    sec: SecurityLab, tmp_path: Path, hostile: str
) -> None:
    data = yaml.safe_load(Path(sec.state.inventory_path).read_text())
    data["nodes"][hostile] = {"address": sec.state.node("cp1").address}
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    mark = sec.mark()
    run = sec.nodeops("run", "--all", "-i", str(path), "--", "true")
    assert run.returncode == 2
    assert repr(hostile) in run.stderr
    assert CONNECTED not in sec.log_since(mark)
    assert _canary_absent(sec)


def test_case_02_changed_host_key_is_refused_before_any_credential(
    sec: SecurityLab, tmp_path: Path
) -> None:
    """The node is reinstalled (new host key); the lab's known_hosts still has the old one.
    Runs last here: it changes the node's key."""
    old = sec.state.node("cp1")
    key = "/etc/ssh/ssh_host_ed25519_key"
    sec.node_sh(f"rm -f {key} {key}.pub && ssh-keygen -q -t ed25519 -N '' -f {key}")
    new_fingerprint = sec.node_sh(f"ssh-keygen -lf {key}.pub").stdout.split()[1]
    assert new_fingerprint != old.host_key_fingerprint
    sec.reload_sshd()
    known = Path(sec.state.known_hosts_path)
    before = known.read_text()
    for extra in ([], ["--accept-new-host-keys"]):
        mark = sec.mark()
        run = sec.nodeops(
            "run", "--all", *extra, "-i", str(sec.state.inventory_path), "--", "touch",
            "/root/pwned",
        )  # fmt: skip
        assert run.returncode == 1
        assert "the host key has CHANGED" in run.stderr
        assert f"known_hosts has ssh-ed25519 {old.host_key_fingerprint}" in run.stderr
        assert f"the host offered ssh-ed25519 {new_fingerprint}" in run.stderr
        seen = sec.log_since(mark)
        assert CONNECTED in seen
        assert not [line for line in seen.splitlines() if any(a in line for a in AUTH)], seen
        assert COMMAND not in seen
    assert _canary_absent(sec)
    assert known.read_text() == before
