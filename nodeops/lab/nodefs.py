"""A node's own filesystem and its holder: the process whose namespaces are the node.

Per node, state_dir/nodes/<node>/ holds the overlay upper and work directories of /etc, /usr,
/var/lib, /var/cache and /opt, the node's /root and /var/log, and logs. The holder is PID 1 of
the node's PID namespace, inside its network namespace and its own mount and UTS namespaces;
it reaps orphans and exits on SIGTERM (taking every process of the node with it).
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

from nodeops.errors import LabError
from nodeops.lab import host, images
from nodeops.lab.overlay import make_dirs

#: Overlaid host directories and the name of their directory in the node's directory.
#: /var/cache and /opt too: each node stages its own packages (apt's archives, dnf's cache)
#: and installs its own CNI plugins, as separate machines do.
OVERLAYS = {"etc": "etc", "usr": "usr", "var/lib": "varlib", "var/cache": "varcache", "opt": "opt"}

# PID 1 of a node: reap every child (orphans land here), exit on SIGTERM, SIGINT or SIGHUP.
# Blocked signals are queued even for a namespace's init, so sigwaitinfo sees them.
_INIT = """\
import os, signal
sigs = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    if signal.sigwaitinfo(sigs).si_signo != signal.SIGCHLD:
        break
"""

# Run by `unshare` as PID 1 of the node: $1 node dir, $2 node name, $3 python, $4 init code,
# then the host paths the node shares (host.paths_shared_with_nodes()).
_SETUP = """\
set -eu
d=$1
node=$2
python=$3
init=$4
shift 4
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
# The node's directory may lie under a directory about to be overlaid (a lab root under
# /var/lib, say): reach it through a bind mount taken now, so that every upper directory
# and bind source below is the real one, never a path seen through an overlay.
mkdir /run/nodeops-node-dir
mount --bind "$d" /run/nodeops-node-dir
d=/run/nodeops-node-dir
# Paths the node must share with the host although they lie where the node has its own
# directories (/root, /tmp): the Python that runs the lab and this checkout. Pin them on
# the node's fresh /run before those directories are covered (the lab's own state may be
# under /tmp too), then put them back read-only at the same paths.
i=0
for p in "$@"; do
    i=$((i + 1)); mkdir -p "/run/nodeops-shared/$i"; mount --bind "$p" "/run/nodeops-shared/$i"
done
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$d/etc/upper,workdir=$d/etc/work" /etc
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$d/usr/upper,workdir=$d/usr/work" /usr
mount -t overlay overlay \
    -o "lowerdir=/var/lib,upperdir=$d/varlib/upper,workdir=$d/varlib/work" /var/lib
mount -t overlay overlay \
    -o "lowerdir=/var/cache,upperdir=$d/varcache/upper,workdir=$d/varcache/work" /var/cache
mount -t overlay overlay -o "lowerdir=/opt,upperdir=$d/opt/upper,workdir=$d/opt/work" /opt
mount --bind "$d/root" /root
mount --bind "$d/log" /var/log
mkdir -m 0755 /run/sshd
mkdir -m 1777 /run/lock
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
i=0
for p in "$@"; do
    i=$((i + 1)); mkdir -p "$p"; mount --bind "/run/nodeops-shared/$i" "$p"
    mount -o remount,bind,ro "$p"; umount "/run/nodeops-shared/$i"; rmdir "/run/nodeops-shared/$i"
done
[ ! -d /run/nodeops-shared ] || rmdir /run/nodeops-shared
umount /run/nodeops-node-dir
rmdir /run/nodeops-node-dir
echo "$node" > /proc/sys/kernel/hostname
echo ready
exec "$python" -I -S -c "$init" >/dev/null
"""


def uppers(node_dir: Path) -> dict[str, Path]:
    """The overlay upper directories of a node, by the host directory they cover."""
    return {top: node_dir / d / "upper" for top, d in OVERLAYS.items()}


def prepare(
    node_dir: Path,
    node: str,
    os_name: str,
    *,
    authorized_key: str,
    hosts: dict[str, str],
) -> None:
    """Create a node's directories and the files that make it itself (not its SSH host key)."""
    node_dir.mkdir(mode=0o700)
    for top in OVERLAYS:
        # An overlay needs its lower directory; a minimal host may lack /opt.
        (Path("/") / top).mkdir(mode=0o755, parents=True, exist_ok=True)
    for top, d in OVERLAYS.items():
        (node_dir / d).mkdir(mode=0o700)
        for sub in ("upper", "work"):
            path = node_dir / d / sub
            path.mkdir()
            path.chmod(os.stat(Path("/") / top).st_mode & 0o7777)
    root = node_dir / "root"
    root.mkdir(mode=0o700)
    (root / ".ssh").mkdir(mode=0o700)
    keys = root / ".ssh" / "authorized_keys"
    keys.write_text(authorized_key.strip() + "\n")
    keys.chmod(0o600)
    log = node_dir / "log"
    log.mkdir()
    log.chmod(0o755)

    up = uppers(node_dir)
    images.install(os_name, up)
    etc = up["etc"]
    _write(etc / "hostname", f"{node}\n")
    _write(etc / "machine-id", os.urandom(16).hex() + "\n", 0o444)
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{addr}\t{name}" for name, addr in hosts.items()]
    _write(etc / "hosts", "\n".join(lines) + "\n")
    make_dirs(etc, Path("/etc"), "ssh")


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text)
    path.chmod(mode)


def start_holder(
    netns: str, node: str, node_dir: Path, python: str, timeout: float = 10.0
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a node's holder in its network namespace; return unshare's Popen and the holder PID."""
    argv = ["ip", "netns", "exec", netns, "unshare", "--mount", "--uts", "--pid", "--fork"]
    argv += ["--kill-child", "--mount-proc", "--propagation", "private"]
    argv += ["/bin/sh", "-c", _SETUP, "nodeops-node", str(node_dir), node, python, _INIT]
    argv += host.paths_shared_with_nodes()
    log = node_dir / "holder.log"
    with log.open("ab") as err:
        proc = host.spawn(argv, stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    try:
        _wait_ready(proc.stdout.fileno(), timeout, node, log)
    finally:
        proc.stdout.close()
    # `ip netns exec` execs unshare, which forks the holder.
    return proc, host.only_child(proc.pid, f"node {node}: unshare")


def _wait_ready(fd: int, timeout: float, node: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    got = b""
    while b"\n" not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise LabError(f"node {node}: its namespaces not ready after {timeout:g} s")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:
                raise LabError(
                    f"node {node}: setting up its namespaces failed: {host.file_tail(log)}"
                )
            got += chunk
    if got.strip() != b"ready":
        raise LabError(f"node {node}: unexpected output from its setup: {got!r}")
