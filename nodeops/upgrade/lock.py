"""The cluster lock: one nodeops run at a time changes a cluster.

A small JSON file on the first control plane, /etc/kubernetes/tmp/nodeops.lock, made with
the shell's noclobber (`set -C`: O_EXCL), holding the run id, pid, host and start time. A
lock left by a dead run on this same machine (its pid is gone) is stale and taken over; a
lock of the same run (a resume) is reused; any other lock refuses the run, saying whose it
is and how to remove it once the operator has checked that run is gone.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nodeops.cmd import Raw, cmd
from nodeops.errors import NodeopsError
from nodeops.transport import Transport

LOCK_DIR = "/etc/kubernetes/tmp"
LOCK_PATH = f"{LOCK_DIR}/nodeops.lock"


class LockHeld(NodeopsError):
    """Another nodeops run holds the cluster lock."""


@dataclass(frozen=True)
class LockInfo:
    """Who holds the lock."""

    run: str
    pid: int
    host: str
    time: str

    def to_json(self) -> str:
        """The lock file's content."""
        return json.dumps(
            {"run": self.run, "pid": self.pid, "host": self.host, "time": self.time},
            sort_keys=True,
        )


def mine(run_id: str) -> LockInfo:
    """The lock this process would write for a run."""
    return LockInfo(
        run=run_id,
        pid=os.getpid(),
        host=socket.gethostname(),
        time=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def parse_lock(text: str) -> LockInfo | None:
    """The lock file's content, or None when it is not a nodeops lock (unreadable, torn)."""
    try:
        data: Any = json.loads(text)
        return LockInfo(str(data["run"]), int(data["pid"]), str(data["host"]), str(data["time"]))
    except (ValueError, KeyError, TypeError):
        return None


def read_lock_cmd() -> Any:
    """Read the lock file (read-only); exit 3 with no output when there is none."""
    return cmd(Raw(f"if [ -e {LOCK_PATH} ]; then cat {LOCK_PATH}; else exit 3; fi"), sudo=True)


def read_lock(transport: Transport) -> LockInfo | str | None:
    """The current lock: LockInfo, None when there is none, or its raw text when unreadable."""
    result = transport.run(read_lock_cmd())
    if result.exit_code == 3:
        return None
    if not result.ok:
        raise NodeopsError(f"cannot read the cluster lock: {result.describe_failure()}")
    info = parse_lock(result.stdout)
    return info if info is not None else result.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(info: LockInfo) -> bool:
    """A lock of a run on this machine whose process is gone."""
    return info.host == socket.gethostname() and not _pid_alive(info.pid)


def describe(info: LockInfo | str, where: str) -> str:
    """Whose lock this is and how to remove it."""
    if isinstance(info, str):
        who = f"an unreadable lock ({info.strip()[:80]!r})"
    else:
        who = f"run {info.run} (pid {info.pid} on {info.host}, since {info.time})"
    return (
        f"another nodeops run holds the cluster lock {LOCK_PATH} on {where}: {who}. If that"
        f" run is surely gone, remove the file on {where} (`rm {LOCK_PATH}`) and start again"
    )


def check_free(transport: Transport, run_id: str | None = None) -> None:
    """Read-only: raise LockHeld unless the lock is free, stale, or this run's own."""
    held = read_lock(transport)
    if held is None:
        return
    if isinstance(held, LockInfo) and (held.run == run_id or is_stale(held)):
        return
    raise LockHeld(describe(held, transport.node.name))


def acquire(transport: Transport, run_id: str) -> LockInfo:
    """Take the lock for a run (atomically); take over a stale one or this run's own."""
    info = mine(run_id)
    create = cmd(
        Raw(f"mkdir -p -m 0700 {LOCK_DIR} && (set -C; umask 077; cat > {LOCK_PATH})"), sudo=True
    )
    if transport.run(create, stdin=info.to_json() + "\n").ok:
        return info
    held = read_lock(transport)
    if held is None or (isinstance(held, LockInfo) and (held.run == run_id or is_stale(held))):
        replace = cmd(
            Raw(f"umask 077; cat > {LOCK_PATH}.new && mv -f -- {LOCK_PATH}.new {LOCK_PATH}"),
            sudo=True,
        )
        transport.run(replace, stdin=info.to_json() + "\n").check()
        again = read_lock(transport)
        if isinstance(again, LockInfo) and again.run == run_id:
            return info
        held = again if again is not None else held
    raise LockHeld(describe(held or "?", transport.node.name))


def release(transport: Transport, run_id: str) -> None:
    """Remove the lock when it is this run's (never another run's)."""
    held = read_lock(transport)
    if isinstance(held, LockInfo) and held.run == run_id:
        transport.run(cmd("rm", "-f", "--", LOCK_PATH, sudo=True)).check()
