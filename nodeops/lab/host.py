"""The machine a lab runs on: its preconditions, commands run on it, and its processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

from nodeops.errors import LabError

SSHD = "/usr/sbin/sshd"
_TOOLS = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "ssh-keygen": "openssh-client",
    "ssh": "openssh-client",
}


def check_host() -> None:
    """Raise LabError unless this machine can run a lab; install openssh-server when missing."""
    check_privileges()
    if not os.access(SSHD, os.X_OK):
        _install_openssh_server()
    missing = [f"{tool} ({pkg})" for tool, pkg in _TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise LabError(f"the lab needs these commands, not found: {', '.join(missing)}")
    if not _has_overlayfs():
        raise LabError("the lab needs overlayfs; this kernel has none (modprobe overlay failed)")
    if python_for_nodes() is None:
        raise LabError("the lab cannot find the Python it runs with (sys.executable)")


def check_privileges() -> None:
    """Raise LabError unless this is Linux and we are root."""
    if not sys.platform.startswith("linux"):
        raise LabError(f"the lab needs Linux namespaces; this is {sys.platform}")
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts, a bridge): run it as root")
    if shutil.which("ip") is None:
        raise LabError("the lab needs the `ip` command (iproute2)")


# Where every node has its own directory instead of the host's.
NODE_PRIVATE_DIRS = ("/root", "/tmp", "/run", "/var/log")  # noqa: S108


def _private_in_nodes(path: str) -> bool:
    return any(path == top or path.startswith(top + "/") for top in NODE_PRIVATE_DIRS)


def paths_shared_with_nodes() -> list[str]:
    """Host directories that nodes must see although they lie in a node-private directory.

    Simulated programs run inside nodes with this very Python and this checkout, which may
    live under /root (pyenv, a virtualenv) or /tmp (a CI clone).
    """
    source_root = str(Path(__file__).resolve().parents[2])
    executable = Path(os.path.realpath(sys.executable))
    candidates = {
        sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
        str(executable.parent.parent), source_root,
    }
    wanted = sorted(p for p in candidates if _private_in_nodes(p) and os.path.isdir(p))
    # A path inside another one already shared comes along with it.
    return [p for p in wanted if not any(p.startswith(q + "/") for q in wanted if q != p)]


def python_for_nodes() -> str | None:
    """The Python simulated programs run with inside nodes: this one (see paths_shared...)."""
    exe = sys.executable
    return exe if exe and os.access(exe, os.X_OK) else None


def _debian_family() -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    fields = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    ids = (fields.get("ID", "") + " " + fields.get("ID_LIKE", "")).replace('"', "").split()
    return bool({"debian", "ubuntu"} & set(ids))


def _install_openssh_server() -> None:
    if not (_debian_family() and shutil.which("apt-get")):
        raise LabError(f"the lab needs OpenSSH's server ({SSHD}); install openssh-server")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "openssh-server"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not os.access(SSHD, os.X_OK):
        raise LabError(
            f"the lab needs {SSHD}; `apt-get install -y openssh-server` failed: {tail(done.stderr)}"
        )


def _has_overlayfs() -> bool:
    def listed() -> bool:
        try:
            return any(
                line.split()[-1] == "overlay"
                for line in Path("/proc/filesystems").read_text().splitlines()
                if line.strip()
            )
        except OSError:
            return False

    if listed():
        return True
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
    return listed()


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = 30,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a command on the host; its stdout, or LabError with its stderr."""
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=None if env is None else dict(env),
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"`{' '.join(argv)}` failed: {e}") from None
    if done.returncode != 0:
        raise LabError(
            f"`{' '.join(argv)}` exited {done.returncode}: {tail(done.stderr or done.stdout)}"
        )
    return done.stdout


def tail(text: str, lines: int = 8) -> str:
    """The last lines of text, on one line when short, for error messages."""
    rows = [r for r in text.strip().splitlines() if r.strip()][-lines:]
    return " | ".join(rows) if rows else "(nothing)"


def file_tail(path: Path, lines: int = 8) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError as e:
        return f"({path} unreadable: {e.strerror})"


# Processes


def start_time(pid: int) -> int | None:
    """A live process's start time (clock ticks since boot), None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_running(pid: int, start: int) -> bool:
    """Whether the process that started at `start` still runs as pid."""
    return start_time(pid) == start


def pid_namespace(pid: int) -> str | None:
    """The PID namespace of a process ("pid:[4026531836]"), None when it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def is_namespace_init(pid: int) -> bool:
    """Whether a process is PID 1 of a PID namespace below ours."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            ids = line.split()[1:]
            return len(ids) > 1 and ids[-1] == "1"
    return False


def children(pid: int) -> list[int]:
    """The child processes of pid."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        pass
    except OSError:
        return []
    found = []  # kernels without CONFIG_PROC_CHILDREN
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def only_child(pid: int, what: str, timeout: float = 5.0) -> int:
    """Wait for pid's single child process (it forks right away) and return its PID."""
    deadline = time.monotonic() + timeout
    while True:
        kids = children(pid)
        if kids:
            return kids[0]
        if start_time(pid) is None:
            raise LabError(f"{what}: the process exited before starting its child")
        if time.monotonic() > deadline:
            raise LabError(f"{what}: no child process after {timeout:g} s")
        time.sleep(0.002)


def terminate(pids: Iterable[int], grace: float = 2.0, timeout: float = 5.0) -> list[int]:
    """SIGTERM the processes, SIGKILL those left after `grace` s; return those still alive."""
    alive = {p: s for p in set(pids) if (s := start_time(p)) is not None}

    def signal_all(sig: signal.Signals) -> None:
        for pid, start in list(alive.items()):
            if is_running(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

    def wait(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while alive and time.monotonic() < deadline:
            reap_children()
            for pid, start in list(alive.items()):
                if not is_running(pid, start):
                    del alive[pid]
            if alive:
                time.sleep(0.005)

    signal_all(signal.SIGTERM)
    wait(grace)
    if alive:
        signal_all(signal.SIGKILL)
        wait(timeout)
    reap_children()
    return sorted(alive)


#: The environment of node processes: nothing of the caller's leaks into nodes.
NODE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}

# Long-lived processes this Python started (node holders, sshds): kept so they are not reported
# as "still running" when garbage collected, and reaped when they end.
_spawned: list[subprocess.Popen[bytes]] = []
_spawned_lock = threading.Lock()


def spawn(
    argv: Sequence[str], *, stdout: int | IO[bytes], stderr: int | IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start a process that outlives this call (own session, cwd /, NODE_ENV, no stdin)."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        cwd="/",
        env=NODE_ENV,
        start_new_session=True,
        close_fds=True,
    )
    with _spawned_lock:
        _spawned.append(proc)
    return proc


def reap_children() -> None:
    """Collect spawned processes that have ended."""
    with _spawned_lock:
        _spawned[:] = [p for p in _spawned if p.poll() is None]
