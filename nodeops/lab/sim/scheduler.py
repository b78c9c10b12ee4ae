"""`python -m nodeops.lab.sim.scheduler`: binds pending pods to nodes (kube-scheduler's flags)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from nodeops.lab.sim.kube_client import ApiStatusError, ChangeGate, Client
from nodeops.lab.sim.kube_flags import parse_flags
from nodeops.lab.sim.kube_objects import condition, meta
from nodeops.lab.sim.kube_sched import choose_node, failure_message

Obj = dict[str, Any]


def _log(message: str) -> None:
    stamp = time.strftime("%m%d %H:%M:%S", time.gmtime())
    print(f"I{stamp}.000000 {threading.get_native_id():>7} scheduler] {message}", file=sys.stderr)


def schedule_once(client: Client, scheduler_name: str) -> int:
    """One pass over pending pods; returns how many were bound."""
    pods = client.items("/api/v1/pods")
    nodes = client.items("/api/v1/nodes")
    bound = 0
    for pod in pods:
        spec = pod.get("spec") or {}
        if spec.get("nodeName") or meta(pod).get("deletionTimestamp"):
            continue
        if spec.get("schedulerName", "default-scheduler") != scheduler_name:
            continue
        if (pod.get("status") or {}).get("phase") not in (None, "Pending"):
            continue
        name, namespace = meta(pod)["name"], meta(pod)["namespace"]
        target, verdicts = choose_node(pod, nodes, pods)
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        try:
            if target is not None:
                client.create(
                    f"{path}/binding",
                    {
                        "apiVersion": "v1",
                        "kind": "Binding",
                        "metadata": {"name": name, "namespace": namespace},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": target},
                    },
                )
                spec["nodeName"] = target  # later pods in this pass see it
                bound += 1
                continue
            message = failure_message(verdicts)
            old = condition(pod, "PodScheduled") or {}
            if old.get("status") == "False" and old.get("message") == message:
                continue
            client.patch(
                f"{path}/status",
                {
                    "status": {
                        "conditions": [
                            {
                                "type": "PodScheduled",
                                "status": "False",
                                "reason": "Unschedulable",
                                "message": message,
                                "lastProbeTime": None,
                                "lastTransitionTime": time.strftime(
                                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime()
                                ),
                            }
                        ]
                    }
                },
            )
        except ApiStatusError as err:
            if err.code not in (404, 409):
                raise
    return bound


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT."""
    flags = parse_flags(sys.argv[1:] if argv is None else argv)
    kubeconfig = flags.get("kubeconfig") or flags.get("authentication-kubeconfig")
    if not kubeconfig:
        print("error: --kubeconfig is required", file=sys.stderr)
        return 1
    interval = float(flags.get("sim-interval", "0.3"))
    scheduler_name = flags.get("scheduler-name", "default-scheduler")
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    client = Client.from_kubeconfig(kubeconfig)
    gate = ChangeGate(client, max_idle=5.0)
    _log(f"scheduler {scheduler_name} started")
    while not stop.is_set():
        try:
            if gate.changed():
                schedule_once(client, scheduler_name)
        except (OSError, ApiStatusError, ValueError) as exc:
            _log(f"schedule pass failed: {exc}")
        stop.wait(interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
