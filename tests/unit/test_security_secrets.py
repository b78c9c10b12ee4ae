"""Case 7, secrets: a sudo password, an etcd key's contents or a kubeconfig token never shows
in output, journal, log or exception text, and never reaches a node's argv or environment
unless it was passed on purpose as a Secret argument (which nodeops itself never does)."""

from __future__ import annotations

import ast
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke import Config, Context
from invoke.exceptions import Exit

from nodeops.cmd import REDACTED, Secret, cmd, sequence
from nodeops.errors import CommandFailed, NodeopsError, TransportError
from nodeops.fanout import Sessions
from nodeops.inventory import load_inventory
from nodeops.journal import Journal, JournaledTransport, read
from nodeops.node import Node
from nodeops.steps import StepFailed
from nodeops.tasks import nodes as nodes_task
from nodeops.transport import FakeTransport, SSHOptions
from tests.unit.test_security_fuzz import BENIGN, BUILDERS
from tests.unit.test_security_hostkeys import RecordingServer, make_keys, ssh_transport

ROOT = Path(__file__).resolve().parents[2]

SUDO_PASSWORD = "sudo-pw-7f3a9c"
ETCD_KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIETCDKEYCONTENTS7\n-----END EC PRIVATE KEY-----"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.kubeconfig-token-7"
SECRETS = (SUDO_PASSWORD, ETCD_KEY, TOKEN)


def leaks(text: str) -> list[str]:
    """The secrets (or a recognisable part of one) that occur in text."""
    parts = {
        s: [s, *(line for line in s.splitlines() if "PRIVATE KEY" not in line)] for s in SECRETS
    }
    return [s for s, pieces in parts.items() if any(p and p in text for p in pieces)]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture()
def server(keys: dict[str, Any]) -> Iterator[RecordingServer]:
    running = RecordingServer(keys["host"], keys["client"])
    yield running
    running.close()


def _known(server: RecordingServer, keys: dict[str, Any], tmp_path: Path) -> Path:
    known = tmp_path / "known_hosts"
    key = keys["host"]
    known.write_text(f"[127.0.0.1]:{server.port} {key.get_name()} {key.get_base64()}\n")
    return known


def test_case_07_a_secret_argument_is_masked_in_every_rendering() -> None:
    command = cmd("etcdctl", "--password", Secret(SUDO_PASSWORD), "--key-data", Secret(ETCD_KEY),
                  sudo=True)  # fmt: skip
    on_the_wire = command.render(as_root=False)
    assert SUDO_PASSWORD in on_the_wire  # the one place it belongs
    for shown in (command.display(), command.display(as_root=True), str(command), repr(command),
                  command.render(reveal=False), json.dumps(command.argv, default=str)):  # fmt: skip
        assert leaks(shown) == [], shown
        assert REDACTED in shown


@pytest.mark.parametrize(
    "build",
    [
        lambda: cmd("kubectl", "get", "nodes", env={"TOKEN": Secret(TOKEN)}),  # type: ignore[dict-item]
        lambda: sequence([cmd("true", env={"PW": Secret(SUDO_PASSWORD)})]),  # type: ignore[dict-item]
    ],
)
def test_case_07_secrets_are_refused_in_env(build: Any) -> None:
    """`env NAME=VALUE` puts the value in the node's argv and environment: never a secret."""
    with pytest.raises(TypeError, match="environment"):
        build()


def test_case_07_a_failed_command_over_ssh_leaks_no_secret(
    server: RecordingServer,
    keys: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The node echoes the whole command line, secret included, on stdout and stderr and
    exits 1; with every logger at DEBUG, nothing outside the wire carries the secret."""
    server.reply = lambda line: (f"out: {line}\n", f"error: bad password in {line}\n", 1)
    journal = Journal.start(tmp_path / "journal", "secrets", {"node": "w1"})
    transport = JournaledTransport(ssh_transport(server, keys, _known(server, keys, tmp_path)),
                                   journal, "step")  # fmt: skip
    command = cmd("etcdctl", "--password", Secret(SUDO_PASSWORD), Secret(TOKEN), sudo=True)
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        try:
            result = transport.run(command)
            with pytest.raises(CommandFailed) as failed:
                result.check()
            step = StepFailed(result.describe_failure(), output=result.stdout + result.stderr)
            texts += [result.stdout, result.stderr, result.command, str(failed.value), str(step),
                      step.output, repr(result)]  # fmt: skip
        finally:
            transport.close()
    assert SUDO_PASSWORD in server.execs[0] and TOKEN in server.execs[0]  # it did go out
    assert result.exit_code == 1 and REDACTED in result.stderr
    texts += [journal.path.read_text(), caplog.text]
    texts += [json.dumps(event) for event in read(journal.path)]
    for text in texts:
        assert leaks(text) == [], text


def test_case_07_a_command_that_times_out_leaks_no_secret(
    server: RecordingServer, keys: dict[str, Any], tmp_path: Path
) -> None:
    server.reply = lambda line: None  # never ends
    journal = Journal.start(tmp_path / "journal", "secrets", {})
    inner = ssh_transport(server, keys, _known(server, keys, tmp_path))
    transport = JournaledTransport(inner, journal, "step")
    try:
        with pytest.raises(TransportError) as failed:
            transport.run(cmd("sh", "-c", Secret(f"echo {TOKEN}"), sudo=True), timeout=0.5)
    finally:
        transport.close()
    assert "did not finish within 0.5 s" in str(failed.value)
    assert leaks(str(failed.value)) == []
    (error,) = [e for e in read(journal.path) if e["event"] == "command-error"]
    assert leaks(json.dumps(error)) == []
    assert REDACTED in error["command"]


def test_case_07_fake_transport_scrubs_like_the_real_one() -> None:
    node = Node(name="w1", address="10.0.0.5")
    fake = FakeTransport(node, rules=[("", lambda c: (1, c.render(), c.render()))])
    result = fake.run(cmd("login", Secret(SUDO_PASSWORD)))
    with pytest.raises(NodeopsError) as failed:
        result.check()
    assert leaks(result.stdout + result.stderr + str(failed.value)) == []


INVENTORY_SECRETS = {
    "ansible_become_password": SUDO_PASSWORD,
    "ansible_password": SUDO_PASSWORD,
    "kube_token": TOKEN,
    "etcd_client_key_secret": ETCD_KEY,
}


@pytest.fixture()
def secret_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.yaml"
    hosts = {"w1": {"ansible_host": "10.0.0.5", **INVENTORY_SECRETS}}
    path.write_text(yaml.safe_dump({"all": {"children": {"kube_node": {"hosts": hosts}}}}))
    return path


def test_case_07_inventory_secrets_are_wrapped_and_never_printed(secret_inventory: Path) -> None:
    inventory = load_inventory(secret_inventory)
    (node,) = inventory.nodes
    for name in INVENTORY_SECRETS:
        assert isinstance(node.vars[name], Secret), name
    assert leaks(repr(inventory) + repr(node) + str(dict(node.vars))) == []


def test_case_07_run_sends_no_inventory_secret_and_prints_none(
    secret_inventory: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """nodeops never sends a sudo password (always `sudo -n`): the inventory's become
    password stays on this machine, out of the argv, the environment and the output."""
    sent: list[FakeTransport] = []

    def factory(node: Node, options: SSHOptions) -> FakeTransport:
        sent.append(FakeTransport(node, rules=[("", (1, "", "sudo: a password is required\n"))]))
        return sent[-1]

    monkeypatch.setattr(nodes_task, "Sessions", lambda o: Sessions(o, factory=factory))
    monkeypatch.setattr(sys, "argv", ["nodeops", "run", "--all", "--sudo", "--", "id"])
    with pytest.raises(Exit):  # the node failed: exit 1
        nodes_task.run(
            Context(config=Config()), all=True, sudo=True, inventory=str(secret_inventory)
        )
    (command,) = sent[0].sent
    wire = command.render(as_root=False)
    assert wire == "sudo -n -- sh -c id"
    assert command.env == ()
    out = capsys.readouterr()
    assert leaks(wire + out.out + out.err) == []


def test_case_07_every_builder_uses_sudo_without_a_password() -> None:
    """`sudo -n`: fail at once rather than prompt; never `-S` with a password on stdin."""
    checked = 0
    for name, build in BUILDERS.items():
        for value in BENIGN:
            try:
                command = build(value)
            except (NodeopsError, ValueError):
                continue
            if command is not None and command.sudo:
                assert command.render(as_root=False).startswith("sudo -n -- sh -c "), name
                checked += 1
            break
    assert checked > 30


def test_case_07_nodeops_never_builds_a_secret_itself() -> None:
    """Only the inventory wraps values in Secret; no module takes one out of node.vars to put
    it in a command, so no secret reaches a node's argv."""
    makers, readers = [], []
    for path in sorted(ROOT.glob("nodeops/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Secret":
                makers.append(path.relative_to(ROOT).as_posix())
            if isinstance(node, ast.Attribute) and node.attr == "vars":
                readers.append(path.relative_to(ROOT).as_posix())
    assert set(makers) == {"nodeops/inventory.py"}
    assert set(readers) <= {"nodeops/inventory.py", "nodeops/node.py"}
