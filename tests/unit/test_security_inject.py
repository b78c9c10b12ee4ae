"""Case 5, host and node injection: hostile node names, addresses, users and ports are
refused by inventory validation before any connection is made; no canary file appears; the
words of `nodeops run -- …` reach the node as quoted arguments."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke import Config, Context

from nodeops.errors import InventoryError
from nodeops.fanout import Sessions
from nodeops.inventory import load_inventory
from nodeops.node import Node
from nodeops.tasks import nodes as nodes_task
from nodeops.transport import FakeTransport, SSHOptions
from tests.e2e.test_facts_cli import nodeops as cli
from tests.unit.test_security_hostkeys import LoopbackServer

ROOT = Path(__file__).resolve().parents[2]


def hostile_strings(canary: Path) -> list[str]:
    """Shell and option injections that would create `canary` if they ever ran."""
    touch = f"touch {canary}"
    return [
        f"w1;{touch}",
        f"$({touch})",
        f"`{touch}`",
        f"-oProxyCommand={touch}",
        f"w1\n{touch}",
        f"w1 && {touch}",
        f"w1|{touch}",
        f"w1' ; {touch} ; '",
        "-oProxyJump=evil",
        "--help",
    ]


CANARY = Path("/tmp/nodeops-case05-canary")  # the injections name one fixed path
HOSTILE = hostile_strings(CANARY)


@pytest.fixture(autouse=True)
def _no_canary() -> Iterator[None]:
    CANARY.unlink(missing_ok=True)
    yield
    assert not CANARY.exists(), "an injection ran"


def _nodeops_yaml(tmp_path: Path, nodes: dict[str, Any]) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump({"nodes": nodes}))
    return path


@pytest.mark.parametrize("hostile", HOSTILE)
def test_case_05_hostile_node_names_are_refused(tmp_path: Path, hostile: str) -> None:
    path = _nodeops_yaml(tmp_path, {"cp1": {"address": "10.0.0.1"}, hostile: {"address": "w1"}})
    with pytest.raises(InventoryError, match="not a valid Kubernetes node name") as refused:
        load_inventory(path)
    assert str(path) in str(refused.value)
    assert repr(hostile) in str(refused.value)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_case_05_hostile_addresses_are_refused(tmp_path: Path, hostile: str) -> None:
    path = _nodeops_yaml(tmp_path, {"w1": {"address": hostile}})
    with pytest.raises(InventoryError, match="is not an IP address or a host name"):
        load_inventory(path)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_case_05_hostile_ansible_hosts_are_refused(tmp_path: Path, hostile: str) -> None:
    # Ansible YAML: as the host's name, and as its ansible_host.
    for hosts in ({hostile: None}, {"w1": {"ansible_host": hostile}}):
        path = tmp_path / "hosts.yaml"
        path.write_text(yaml.safe_dump({"all": {"children": {"kube_node": {"hosts": hosts}}}}))
        with pytest.raises(InventoryError):
            load_inventory(path)
    # Ansible INI: ansible_host quoted, so the whole hostile value is the address.
    ini = tmp_path / "hosts.ini"
    ini.write_text(f"[kube_node]\nw1 ansible_host={shlex.quote(hostile)}\n")
    with pytest.raises(InventoryError):
        load_inventory(ini)


@pytest.mark.parametrize(
    ("field", "hostile"),
    [
        ("user", "-oProxyCommand=id"),
        ("user", "root;id"),
        ("user", "$(id)"),
        ("user", "root\nid"),
        ("port", "22;id"),
        ("port", "-1"),
        ("port", "22 -oProxyCommand=id"),
    ],
)
def test_case_05_hostile_users_and_ports_are_refused(
    tmp_path: Path, field: str, hostile: str
) -> None:
    path = _nodeops_yaml(tmp_path, {"w1": {"address": "10.0.0.5", field: hostile}})
    with pytest.raises(InventoryError):
        load_inventory(path)


@pytest.mark.parametrize("value", ["10.0.0.5", "fd00::5", "node-1.example.org", "W1.Example."])
def test_case_05_plain_addresses_are_accepted(value: str) -> None:
    assert Node(name="w1", address=value).address == value


@pytest.mark.parametrize(
    ("where", "hostile"),
    [
        ("name", f"w1;touch {CANARY}"),
        ("address", f"-oProxyCommand=touch {CANARY}"),
        ("name", f"$(touch {CANARY})"),
    ],
)
def test_case_05_the_cli_refuses_before_connecting_to_any_node(
    tmp_path: Path, where: str, hostile: str
) -> None:
    listener = LoopbackServer()
    try:
        good = {"address": "127.0.0.1", "port": listener.port, "user": "root"}
        bad = {**good, "address": hostile} if where == "address" else good
        nodes = {"cp1": good, (hostile if where == "name" else "w1"): bad}
        path = _nodeops_yaml(tmp_path, nodes)
        run = cli("run", "--all", "-i", str(path), "--", "true", home=tmp_path)
        assert run.returncode == 2, run.stderr
        assert run.stderr.startswith(f"error: {path}: ")
        assert repr(hostile) in run.stderr
        assert run.stdout == ""
        assert listener.connections == 0
        # The control: without the hostile node, the CLI does reach the listener.
        _nodeops_yaml(tmp_path, {"cp1": good})
        reached = cli("run", "--all", "-i", str(path), "--", "true", home=tmp_path)
        assert reached.returncode == 1
        assert listener.connections >= 1
    finally:
        listener.close()


ECHO_ARGV = [sys.executable, "-c", "import json,sys; print(json.dumps(sys.argv[1:]))"]


def test_case_05_run_words_reach_the_node_quoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = [*ECHO_ARGV, *HOSTILE, "--", "*", "$HOME", "a'b\"c"]
    sent: list[FakeTransport] = []

    def factory(node: Node, options: SSHOptions) -> FakeTransport:
        sent.append(FakeTransport(node, rules=[("", (0, "", ""))]))
        return sent[-1]

    monkeypatch.setattr(nodes_task, "Sessions", lambda o: Sessions(o, factory=factory))
    monkeypatch.setattr(sys, "argv", ["nodeops", "run", "--node", "w1", "--", *words])
    path = _nodeops_yaml(tmp_path, {"w1": {"address": "10.0.0.5"}})
    nodes_task.run(Context(config=Config()), node=["w1"], inventory=str(path))
    (command,) = sent[0].sent
    line = command.render(as_root=True)
    assert line == shlex.join(words)
    out = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == words[len(ECHO_ARGV) :]
