"""The cluster lock on the first control plane: atomic create, stale takeover, refusal."""

from __future__ import annotations

import json
import os
import socket

import pytest

from nodeops.cmd import Cmd
from nodeops.node import Node
from nodeops.transport import FakeTransport
from nodeops.upgrade import lock


class LockFile:
    """A node holding (or not) /etc/kubernetes/tmp/nodeops.lock."""

    def __init__(self, content: str | None = None) -> None:
        self.content = content
        self.transport = FakeTransport(Node("cp1", "192.0.2.10"), rules=[("", self.answer)])
        self.stdin: str | None = None
        original = self.transport.run

        def run(command: Cmd, *, timeout: float | None = None, stdin: str | None = None):  # type: ignore[no-untyped-def]
            self.stdin = stdin
            return original(command, timeout=timeout, stdin=stdin)

        self.transport.run = run  # type: ignore[method-assign]

    def answer(self, command: Cmd) -> tuple[int, str, str]:
        text = command.render(as_root=True)
        if text.startswith("if [ -e"):
            return (3, "", "") if self.content is None else (0, self.content, "")
        if "set -C" in text:
            if self.content is not None:
                return 1, "", "sh: cannot create /etc/kubernetes/tmp/nodeops.lock: File exists"
            self.content = self.stdin
            return 0, "", ""
        if ".new && mv -f" in text:
            self.content = self.stdin
            return 0, "", ""
        if text.startswith("rm -f"):
            self.content = None
            return 0, "", ""
        raise AssertionError(text)


def other(run: str = "20260101T000000Z-upgrade-cluster-aaaaaa", host: str = "elsewhere") -> str:
    return json.dumps({"run": run, "pid": 1, "host": host, "time": "2026-01-01T00:00:00+00:00"})


def test_acquire_and_release_a_free_lock() -> None:
    node = LockFile()
    info = lock.acquire(node.transport, "RUN1")
    assert node.content is not None and json.loads(node.content)["run"] == "RUN1"
    assert info.pid == os.getpid()
    lock.release(node.transport, "RUN1")
    assert node.content is None


def test_another_live_run_refuses_with_who_and_how() -> None:
    node = LockFile(other())
    with pytest.raises(
        lock.LockHeld, match=r"run 20260101T000000Z-upgrade-cluster-aaaaaa .*elsewhere"
    ):
        lock.acquire(node.transport, "RUN2")
    with pytest.raises(lock.LockHeld, match=r"rm /etc/kubernetes/tmp/nodeops\.lock"):
        lock.check_free(node.transport, "RUN2")
    lock.release(node.transport, "RUN2")
    assert node.content == other()  # never removes another run's lock


def test_stale_lock_of_a_dead_local_process_is_taken_over() -> None:
    dead = json.dumps(
        {
            "run": "OLD",
            "pid": 2**22 + 12345,
            "host": socket.gethostname(),
            "time": "2026-01-01T00:00:00+00:00",
        }
    )
    node = LockFile(dead)
    lock.check_free(node.transport, "RUN3")
    lock.acquire(node.transport, "RUN3")
    assert node.content is not None and json.loads(node.content)["run"] == "RUN3"


def test_a_resumed_run_reuses_its_own_lock() -> None:
    node = LockFile(other(run="RUN4"))
    lock.acquire(node.transport, "RUN4")
    assert node.content is not None and json.loads(node.content)["run"] == "RUN4"


def test_unreadable_lock_refuses() -> None:
    node = LockFile("garbage")
    with pytest.raises(lock.LockHeld, match="unreadable lock"):
        lock.check_free(node.transport, "RUN5")
