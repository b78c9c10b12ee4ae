"""OpenSSH in the lab: keys, each node's sshd_config and sshd, the lab's known_hosts."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import subprocess
import time
from pathlib import Path

from nodeops.errors import LabError
from nodeops.lab import host
from nodeops.lab.overlay import whiteout

HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"  # in the node's view


def generate_key(path: Path, comment: str) -> str:
    """Generate an ed25519 key pair at path (0600) and path.pub; return the public key line."""
    host.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    path.chmod(0o600)
    return path.with_name(path.name + ".pub").read_text().strip()


def public_key(line: str) -> str:
    """The key type and key of a public key line, without its comment."""
    return " ".join(line.split()[:2])


def fingerprint(line: str) -> str:
    """The SHA256 fingerprint of a public key line, as ssh-keygen -l prints it."""
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def sshd_config(node: str, address: str) -> str:
    """A node's sshd_config: root by key only, no PAM or DNS, roomy limits for fan-out tests."""
    return f"""\
# Written by nodeops lab for node {node}.
Port 22
ListenAddress {address}
HostKey {HOST_KEY}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile /root/.ssh/authorized_keys
UsePAM no
UseDNS no
MaxStartups 200:30:400
MaxSessions 50
PidFile none
PrintMotd no
Subsystem sftp internal-sftp
"""


def configure_node(etc_upper: Path, node: str, address: str) -> str:
    """Give a node its own host key and sshd_config, hiding the host's; return the public key."""
    ssh = etc_upper / "ssh"
    key = ssh / Path(HOST_KEY).name
    for other in Path("/etc/ssh").glob("ssh_host_*"):
        if not other.name.startswith(key.name):
            whiteout(ssh / other.name)
    line = generate_key(key, f"root@{node}")
    config = ssh / "sshd_config"
    config.write_text(sshd_config(node, address))
    config.chmod(0o644)
    return line


def known_hosts(entries: dict[str, str]) -> str:
    """known_hosts text: one line per address with its host key."""
    return "".join(f"{addr} {public_key(key)}\n" for addr, key in entries.items())


def start(holder_pid: int, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start sshd in a node's namespaces (via its holder); return nsenter's Popen, sshd's PID."""
    argv = ["nsenter", "-t", str(holder_pid), "-n", "-m", "-u", "-p", "--"]
    argv += ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"]
    with log.open("ab") as out:
        proc = host.spawn(argv, stdout=out, stderr=subprocess.STDOUT)
    return proc, host.only_child(proc.pid, f"sshd for holder {holder_pid}")


def wait_listening(
    node: str, address: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 10.0
) -> None:
    """Wait until sshd at address:22 sends its banner; LabError naming the node and the log tail."""
    deadline = time.monotonic() + timeout
    while True:
        with (
            contextlib.suppress(OSError),
            socket.create_connection((address, 22), timeout=1.0) as s,
        ):
            s.settimeout(max(0.1, deadline - time.monotonic()))
            if s.recv(64).startswith(b"SSH-"):
                return
        if proc.poll() is not None:
            raise LabError(
                f"node {node}: sshd exited ({proc.returncode}) before listening on {address}:22;"
                f" {log.name} ends with: {host.file_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise LabError(
                f"node {node}: sshd did not accept connections on {address}:22 within"
                f" {timeout:g} s; {log.name} ends with: {host.file_tail(log)}"
            )
        time.sleep(0.005)
