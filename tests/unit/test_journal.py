"""The journal: durable, append-only, secret-free, readable after a crash, and resumable."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nodeops.cmd import Secret, cmd
from nodeops.errors import TransportError
from nodeops.journal import (
    Journal,
    JournaledTransport,
    JournalError,
    cordoned_by_run,
    finished_steps,
    last_unfinished,
    read,
)
from nodeops.node import Node
from nodeops.transport import FakeTransport

NODE = Node(name="worker1", address="10.0.0.2")


def test_start_creates_a_private_file_and_records_the_start(tmp_path: Path) -> None:
    journal = Journal.start(tmp_path / "j", "upgrade", {"to": "1.30.2", "nodes": ["worker1"]})
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.path.parent.stat().st_mode) == 0o700
    (event,) = read(journal.path)
    assert event["event"] == "run-started"
    assert event["task"] == "upgrade" and event["to"] == "1.30.2"
    assert event["run"] == journal.run_id


def test_every_command_is_journaled_with_secrets_masked(tmp_path: Path) -> None:
    journal = Journal.start(tmp_path, "etcd-backup", {})
    fake = FakeTransport(
        NODE, rules=[("etcdctl", (0, "saved with hunter2\n", "")), ("false", (1, "", "no\n"))]
    )
    transport = JournaledTransport(fake, journal, step="Save snapshot")
    transport.run(cmd("etcdctl", "--password", Secret("hunter2")))
    transport.for_step("Check").run(cmd("false"))
    text = journal.path.read_text()
    assert "hunter2" not in text
    commands = [e for e in read(journal.path) if e["event"] == "command"]
    assert [(c["step"], c["exit_code"]) for c in commands] == [("Save snapshot", 0), ("Check", 1)]
    assert commands[0]["command"] == "etcdctl --password ***"
    assert commands[0]["stdout"] == "saved with ***\n"
    assert commands[1]["stderr"] == "no\n"


def test_a_command_that_could_not_run_is_journaled_then_raised(tmp_path: Path) -> None:
    journal = Journal.start(tmp_path, "upgrade", {})

    def cut(_: object) -> tuple[int, str, str]:
        raise TransportError("worker1: the SSH connection failed during `kubeadm upgrade node`")

    transport = JournaledTransport(FakeTransport(NODE, rules=[("kubeadm", cut)]), journal, "Up")
    with pytest.raises(TransportError):
        transport.run(cmd("kubeadm", "upgrade", "node"))
    last = read(journal.path)[-1]
    assert last["event"] == "command-error" and "SSH connection failed" in last["error"]


def test_a_torn_last_line_is_dropped_but_a_torn_middle_line_is_an_error(tmp_path: Path) -> None:
    journal = Journal.start(tmp_path, "upgrade", {})
    journal.record("step-started", node="worker1", step="Drain node")
    with journal.path.open("a") as out:
        out.write('{"event": "step-fini')
    assert [e["event"] for e in read(journal.path)] == ["run-started", "step-started"]
    with journal.path.open("a") as out:
        out.write("\n" + json.dumps({"event": "x"}) + "\n")
    with pytest.raises(JournalError, match=":3: not a journal line"):
        read(journal.path)


def test_lines_survive_sigkill_of_the_writer(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from pathlib import Path
        from nodeops.journal import Journal
        j = Journal.start(Path({str(tmp_path)!r}), "upgrade", {{}})
        for i in range(50):
            j.record("step-finished", node="n" + str(i), step="s", status="done")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert run.returncode == -signal.SIGKILL
    (path,) = tmp_path.glob("*.jsonl")
    assert len(finished_steps(read(path))) == 50


def test_resume_knows_which_nodes_nodeops_cordoned(tmp_path: Path) -> None:
    journal = Journal.start(tmp_path, "upgrade", {})
    journal.record("node-state", node="worker1", cordoned_by_nodeops=True)
    journal.record("node-state", node="worker2", cordoned_by_nodeops=False)  # operator's cordon
    journal.record("node-state", node="worker3", cordoned_by_nodeops=True)
    journal.record("node-state", node="worker3", cordoned_by_nodeops=False)  # uncordoned again
    assert cordoned_by_run(read(journal.path)) == {"worker1"}
    assert last_unfinished(tmp_path, "upgrade") == journal.path
    journal.record("run-finished", status="succeeded")
    assert last_unfinished(tmp_path, "upgrade") is None
    assert last_unfinished(tmp_path, "etcd-backup") is None
    other = Journal.start(tmp_path, "upgrade-cluster", {})
    assert last_unfinished(tmp_path, "upgrade") is None  # not the upgrade-cluster run
    assert last_unfinished(tmp_path, "upgrade-cluster") == other.path


def test_journals_are_never_overwritten(tmp_path: Path) -> None:
    first = Journal.start(tmp_path, "upgrade", {})
    second = Journal.start(tmp_path, "upgrade", {})
    assert first.path != second.path
    assert len(list(tmp_path.glob("*.jsonl"))) == 2


def test_unwritable_directory_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(JournalError, match="cannot create a journal"):
        Journal.start(blocker / "j", "upgrade", {})
    assert os.path.exists(blocker)
