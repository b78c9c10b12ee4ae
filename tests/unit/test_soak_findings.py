"""What the soak found (../notes/soak-findings.md), replayed over FakeTransport.

F1 (soak seed 1006): nodeops is killed after the last node's kubelet reached the target but
before its uncordon. The resume found every node at the target, printed "Nothing to do" and
returned: the node nodeops cordoned stayed cordoned and the killed run's lock stayed. Fixed in
8206792 (a node at the target that the run cordoned is planned again, to give it back).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nodeops.cmd import Cmd
from nodeops.node import Node
from nodeops.tasks import upgrade as tasks
from nodeops.transport import FakeTransport, SSHOptions
from tests.unit import test_upgrade_tasks as base

RUN = "20261127T080852Z-upgrade-cluster-93ead3"


@pytest.fixture()
def cluster(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Every node at 1.29.3, worker1 cordoned by the killed run, its lock on cp1."""
    state: dict[str, object] = {"unschedulable": True, "lock": True, "sent": []}

    def answer(command: Cmd) -> tuple[int, str, str]:
        text = command.render(as_root=True)
        if "uncordon" in text and "worker1" in text:
            state["unschedulable"] = False
            return 0, "node/worker1 uncordoned\n", ""
        if "nodeops.lock" in text and text.lstrip().startswith("if [ -e"):
            if not state["lock"]:
                return 3, "", ""
            held = {"run": RUN, "pid": 999999, "host": "elsewhere", "time": "2026-11-27"}
            return 0, json.dumps(held), ""
        if "rm -f -- /etc/kubernetes/tmp/nodeops.lock" in text:
            state["lock"] = False
            return 0, "", ""
        if "set -C" in text and "nodeops.lock" in text:  # create: refused, the lock exists
            return (1, "", "File exists") if state["lock"] else (0, "", "")
        if "nodeops.lock.new" in text:  # the stale lock of this very run, taken over
            state["lock"] = True
            return 0, "", ""
        if "dpkg-query -W -f" in text:
            return 0, "".join(f"{n}\t1.29.3-1.1\n" for n in ("kubeadm", "kubelet", "kubectl")), ""
        if "df -Pk" in text:
            return (
                0,
                "Filesystem 1024-blocks Used Available Capacity Mounted\n/ 1 1 9999999 1% /\n",
                "",
            )
        if "dpkg --audit" in text:
            return 0, "", ""
        cordoned = bool(state["unschedulable"])
        items = [base.node_obj(n, unschedulable=n == "worker1" and cordoned) for n in base.NODES]
        if " get node -o json -- worker1" in text:
            return 0, json.dumps(items[1]), ""
        if " get nodes -o json" in text:
            return 0, json.dumps({"kind": "List", "apiVersion": "v1", "items": items}), ""
        if " get nodes,pods,poddisruptionbudgets,daemonsets" in text:
            pods: list[Any] = list(base.POD_LIST["items"])
            return 0, json.dumps({"kind": "List", "apiVersion": "v1", "items": items + pods}), ""
        return base.answer(command)

    def factory(node: Node, options: SSHOptions) -> FakeTransport:
        fake = FakeTransport(node, rules=[("", answer)])
        fake.sent = state["sent"]  # type: ignore[assignment]
        return fake

    monkeypatch.setattr(tasks, "TRANSPORT_FACTORY", factory)
    return state


def test_resume_with_nothing_left_but_the_uncordon_gives_the_node_back(
    cluster: dict[str, object], tmp_path: Path
) -> None:
    c, inventory = base.context(tmp_path)
    journal = tmp_path / "j" / f"{RUN}.jsonl"
    journal.parent.mkdir(mode=0o700)
    events = [
        {"event": "run-started", "run": RUN, "task": "upgrade-cluster", "to": "1.29.3"},
        {"event": "node-state", "node": "worker1", "cordoned_by_nodeops": False},
        {"event": "node-state", "node": "worker1", "cordoned_by_nodeops": True},
        {"event": "step-started", "node": "worker1", "step": "wait-ready"},
    ]
    journal.write_text("".join(json.dumps(e) + "\n" for e in events))
    tasks.upgrade_cluster(c, to="1.29.3", resume=RUN, inventory=inventory, force=True)
    assert cluster["unschedulable"] is False, "worker1, cordoned by the run, stays cordoned"
    assert cluster["lock"] is False, "the killed run's lock stays on cp1"
