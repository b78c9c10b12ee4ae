"""Fault files the simulated tools read, and the SSH session cut they can perform.

The lab's fault switches (nodeops.lab.faults) only drop files into a node (most into its
private /run/nodeops/faults); the simulated tools act on them at the moment a real fault would
strike. This module names every fault file, for both sides; it stays stdlib-only and small
because each simulated tool imports it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

RUN_FAULTS = Path("/run/nodeops/faults")  # per node (a private tmpfs)
# Its content names the moment: "kubeadm-upgrade" or "kubelet-restart".
SSH_CUT = RUN_FAULTS / "ssh-cut"
NOT_READY = RUN_FAULTS / "kubelet-not-ready"
NOT_READY_ON_RESTART = RUN_FAULTS / "kubelet-not-ready-on-restart"
# The next `kubeadm upgrade apply|node` fails after swapping its first manifest.
KUBEADM_FAIL = RUN_FAULTS / "kubeadm-fail"
# The PID of the process the dpkg-lock fault starts to hold the dpkg locks.
DPKG_LOCK_PID = RUN_FAULTS / "dpkg-lock.pid"
# The package tools' switches live in the node's /var/lib (they read them under their root).
SIM_FAULTS = Path("/var/lib/nodeops-sim/faults")
# Its content: seconds each package download waits.
SLOW_DOWNLOAD = SIM_FAULTS / "slow-download"
# The next apt install is killed while dpkg unpacks its first package.
DPKG_INTERRUPT = SIM_FAULTS / "dpkg-interrupt"


def take(path: Path) -> str | None:
    """The fault file's content when it is set, removing it (a fault strikes once)."""
    try:
        text = path.read_text().strip()
        path.unlink()
    except OSError:
        return None
    return text


def _parent_and_name(pid: int) -> tuple[int, str]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, IndexError):
        return 0, ""
    return int(fields[1]), name


def session_processes(pid: int) -> list[int]:
    """The sshd processes serving the SSH session this process runs under (not the listener)."""
    chain: list[tuple[int, str]] = []
    while pid > 1:
        parent, name = _parent_and_name(pid)
        chain.append((pid, name))
        pid = parent
    found = []
    for i, (p, name) in enumerate(chain[:-1]):
        parent_name = chain[i + 1][1]
        # The listener's parent is not sshd; a session's processes are sshd's children.
        if name.startswith("sshd") and parent_name.startswith("sshd"):
            found.append(p)
    return found


def cut_ssh_session_if(moment: str) -> bool:
    """When the ssh-cut fault names this moment: kill the SSH session this command runs in, as
    a reset connection does, and carry on with output going nowhere (a command started
    without a terminal keeps running when its session dies). Whether it cut."""
    wanted = take(SSH_CUT) if SSH_CUT.exists() else None
    if wanted is None:
        return False
    if wanted != moment:
        # Not this moment: put it back for the command it is meant for.
        with contextlib.suppress(OSError):
            SSH_CUT.write_text(wanted + "\n")
        return False
    for pid in session_processes(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(null, fd)
    os.close(null)
    return True
