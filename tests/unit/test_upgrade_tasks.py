"""The upgrade tasks over FakeTransport: a dry run sends only read-only commands; refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

from nodeops.cmd import Cmd
from nodeops.node import Node
from nodeops.settings import DEFAULTS
from nodeops.tasks import upgrade as tasks
from nodeops.transport import FakeTransport, SSHOptions
from tests.unit.test_facts import DEBIAN_NODE, canned

NODES = ("cp1", "worker1", "worker2")


def node_obj(name: str, version: str = "v1.29.3", unschedulable: bool = False) -> dict[str, Any]:
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": {}},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": version},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        },
    }


def static_pod(component: str) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {
            "name": f"{component}-cp1",
            "namespace": "kube-system",
            "labels": {"component": component},
            "annotations": {"kubernetes.io/config.mirror": "0123abcd"},
            "ownerReferences": [{"kind": "Node", "name": "cp1", "controller": True}],
        },
        "spec": {
            "nodeName": "cp1",
            "containers": [{"name": component, "image": f"registry.k8s.io/{component}:v1.29.3"}],
        },
        "status": {"phase": "Running"},
    }


NODE_LIST = {"kind": "List", "apiVersion": "v1", "items": [node_obj(n) for n in NODES]}
POD_LIST = {
    "kind": "List",
    "apiVersion": "v1",
    "items": [
        static_pod(c) for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ],
}
FACTS = dict(DEBIAN_NODE)
FACTS["packages_dpkg"] = (
    "".join(f"{n}\t1.29.3-1.1\thi \n" for n in ("kubeadm", "kubelet", "kubectl")),
    0,
)
MADISON = "".join(
    f"   kubeadm | 1.29.{p}-1.1 | https://pkgs.k8s.io/core:/stable:/v1.29/deb  Packages\n"
    for p in (15, 3, 0)
)

READ_ONLY_PREFIXES = (
    "kubectl --kubeconfig=/etc/kubernetes/admin.conf get ",
    "env LC_ALL=C apt-cache madison ",
    "if [ -e /etc/kubernetes/tmp/nodeops.lock ]; then cat",
    "LC_ALL=C; export LC_ALL;",  # the facts script: read-only probes
)


def answer(command: Cmd) -> tuple[int, str, str]:
    text = command.render(as_root=True)
    if "@@nodeops-probe" in text:
        return 0, canned(FACTS), ""
    if " get nodes -o json" in text:
        return 0, json.dumps(NODE_LIST), ""
    if " get pods -n kube-system -o json" in text:
        return 0, json.dumps(POD_LIST), ""
    if " get nodes,pods,poddisruptionbudgets,daemonsets" in text:
        everything = {**NODE_LIST, "items": NODE_LIST["items"] + POD_LIST["items"]}
        return 0, json.dumps(everything), ""
    if "apt-cache madison kubeadm" in text:
        return 0, MADISON, ""
    if "nodeops.lock" in text:
        return 3, "", ""
    return 99, "", f"not scripted: {text}"


@pytest.fixture()
def sent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Cmd]:
    commands: list[Cmd] = []

    def factory(node: Node, options: SSHOptions) -> FakeTransport:
        fake = FakeTransport(node, rules=[("", answer)])
        fake.sent = commands
        return fake

    monkeypatch.setattr(tasks, "TRANSPORT_FACTORY", factory)
    return commands


def context(tmp_path: Path) -> tuple[Context, str]:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "nodes:\n"
        "  cp1: {address: 192.0.2.10, roles: [control-plane, etcd]}\n"
        "  worker1: {address: 192.0.2.11, roles: [worker]}\n"
        "  worker2: {address: 192.0.2.12, roles: [worker]}\n"
    )
    config = Config(overrides={"nodeops": {**DEFAULTS, "journal_dir": str(tmp_path / "j")}})
    return Context(config=config), str(inventory)


def test_dry_run_sends_only_read_only_commands(
    sent: list[Cmd], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c, inventory = context(tmp_path)
    tasks.upgrade_cluster(c, to="1.30", dry_run=True, inventory=inventory)
    out = capsys.readouterr().out
    assert "Upgrade from 1.29.3 to the latest patch the v1.30 repository serves" in out
    assert "1. control plane cp1" in out
    assert sent, "nothing was sent"
    for command in sent:
        text = command.render(as_root=True)
        assert text.startswith(READ_ONLY_PREFIXES), text
    assert not (tmp_path / "j").exists()  # a dry run writes no journal


def test_plan_prints_json(
    sent: list[Cmd], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c, inventory = context(tmp_path)
    tasks.plan(c, to="1.30.2", format="json", inventory=inventory)
    data = json.loads(capsys.readouterr().out)
    assert data["target"] == "1.30.2"
    assert [b[0]["node"] for b in data["worker_batches"]] == ["worker1", "worker2"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"to": "1.28.9"}, "downgrades are refused"),
        ({"to": "1.30.2; reboot"}, "1.30.2; reboot"),
        ({"to": "1.29.99"}, "1.29.99 is not there"),
    ],
)
def test_bad_inputs_are_refused_before_any_change(
    sent: list[Cmd], tmp_path: Path, kwargs: dict[str, str], message: str
) -> None:
    c, inventory = context(tmp_path)
    with pytest.raises(Exit) as raised:
        tasks.upgrade_cluster(c, inventory=inventory, **kwargs)
    assert raised.value.code == 2
    assert message in str(raised.value.message)
    for command in sent:
        assert command.render(as_root=True).startswith(READ_ONLY_PREFIXES)


def test_worker_refused_while_control_plane_behind(sent: list[Cmd], tmp_path: Path) -> None:
    c, inventory = context(tmp_path)
    with pytest.raises(Exit) as raised:
        tasks.upgrade(c, node="worker1", to="1.30.2", inventory=inventory)
    assert "worker1: the control plane is not ahead of it" in str(raised.value.message)
    assert all(cmd.render(as_root=True).startswith(READ_ONLY_PREFIXES) for cmd in sent)


def test_unknown_node_is_refused(sent: list[Cmd], tmp_path: Path) -> None:
    c, inventory = context(tmp_path)
    with pytest.raises(Exit) as raised:
        tasks.upgrade(c, node="nosuch", to="1.30.2", inventory=inventory)
    assert raised.value.code == 2
    assert "nosuch" in str(raised.value.message)
    assert sent == []


def test_format_and_resume_checks(sent: list[Cmd], tmp_path: Path) -> None:
    c, inventory = context(tmp_path)
    with pytest.raises(Exit, match="--format"):
        tasks.plan(c, to="1.30", format="yaml", inventory=inventory)
    with pytest.raises(Exit, match="cannot read the journal"):
        tasks.upgrade_cluster(c, to="1.30", resume="20260101T000000Z-x-abc", inventory=inventory)


def test_invoke_yaml_documents_every_upgrade_setting() -> None:
    text = (Path(__file__).resolve().parents[2] / "invoke.yaml").read_text()
    for key in (
        "drain_timeout",
        "max_unavailable",
        "journal_dir",
        "dpkg_lock_timeout",
        "ready_timeout",
    ):
        before = text.split(f"  {key}:")[0].rstrip().splitlines()[-1]
        assert before.strip().startswith("#"), f"{key} has no comment in invoke.yaml"


def test_cluster_dry_run_shows_the_hops_and_a_single_node_may_not_skip(
    sent: list[Cmd], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c, inventory = context(tmp_path)
    tasks.upgrade_cluster(c, to="1.31", dry_run=True, inventory=inventory)
    out = capsys.readouterr().out
    assert "(hop 1 of 2)" in out and "then hop 2: to 1.31 (its latest patch)" in out
    assert all(cmd.render(as_root=True).startswith(READ_ONLY_PREFIXES) for cmd in sent)
    with pytest.raises(Exit) as raised:
        tasks.upgrade(c, node="cp1", to="1.31", inventory=inventory)
    assert raised.value.code == 2 and "one minor at a time" in str(raised.value.message)
