"""`python -m nodeops.lab.sim.scheduler`: binds pending pods to nodes (kube-scheduler's flags)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import yaml

from nodeops.lab.sim.healthz import serve_component_healthz, stop_event
from nodeops.lab.sim.kube_client import ApiStatusError, ChangeGate, Client
from nodeops.lab.sim.kube_flags import parse_flags
from nodeops.lab.sim.kube_objects import condition, meta
from nodeops.lab.sim.kube_sched import choose_node, failure_message
from nodeops.lab.sim.leaderelection import (
    ElectionConfig,
    LeaderElector,
    config_from_file,
    config_from_flags,
)

Obj = dict[str, Any]


def _log(message: str) -> None:
    stamp = time.strftime("%m%d %H:%M:%S", time.gmtime())
    print(f"I{stamp}.000000 {threading.get_native_id():>7} scheduler] {message}", file=sys.stderr)


def schedule_once(client: Client, scheduler_name: str | frozenset[str]) -> int:
    """One pass over pending pods (of one scheduler name or of a set of profiles' names);
    returns how many were bound."""
    names = frozenset({scheduler_name}) if isinstance(scheduler_name, str) else scheduler_name
    pods = client.items("/api/v1/pods")
    nodes = client.items("/api/v1/nodes")
    bound = 0
    for pod in pods:
        spec = pod.get("spec") or {}
        if spec.get("nodeName") or meta(pod).get("deletionTimestamp"):
            continue
        if spec.get("schedulerName", "default-scheduler") not in names:
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


def _read_component_config(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    if not isinstance(doc, dict) or doc.get("kind") != "KubeSchedulerConfiguration":
        raise ValueError(f"{path}: not a KubeSchedulerConfiguration")
    return doc


def read_config(path: str) -> tuple[str | None, frozenset[str]]:
    """A KubeSchedulerConfiguration's clientConnection.kubeconfig and its profiles' names
    (a profile without schedulerName is default-scheduler, as upstream defaults it)."""
    doc = _read_component_config(path)
    kubeconfig = (doc.get("clientConnection") or {}).get("kubeconfig") or None
    profiles = doc.get("profiles") or [{}]
    names = frozenset(str(p.get("schedulerName") or "default-scheduler") for p in profiles)
    return kubeconfig, names


def read_election(path: str) -> ElectionConfig:
    """A KubeSchedulerConfiguration's leaderElection (leaderElect defaults to true)."""
    return config_from_file(_read_component_config(path).get("leaderElection"), "kube-scheduler")


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT."""
    flags = parse_flags(sys.argv[1:] if argv is None else argv)
    scheduler_name: str | frozenset[str] = flags.get("scheduler-name", "default-scheduler")
    kubeconfig = flags.get("kubeconfig") or flags.get("authentication-kubeconfig")
    election = config_from_flags(flags, "kube-scheduler")
    if flags.get("config"):
        # Upstream: with --config, the deprecated --kubeconfig and --scheduler-name flags are
        # ignored; the client, the profiles' scheduler names and leader election come from
        # the file.
        try:
            kubeconfig, scheduler_name = read_config(flags["config"])
            election = read_election(flags["config"])
        except (OSError, ValueError, yaml.YAMLError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if not kubeconfig:
        print("error: --kubeconfig is required", file=sys.stderr)
        return 1
    interval = float(flags.get("sim-interval", "0.3"))
    stop = stop_event()
    if not serve_component_healthz(flags, 10259, "kube-scheduler"):
        return 1
    client = Client.from_kubeconfig(kubeconfig)
    gate = ChangeGate(client, max_idle=5.0)
    shown = scheduler_name if isinstance(scheduler_name, str) else ",".join(sorted(scheduler_name))
    # Only the holder of the kube-system/kube-scheduler Lease binds pods, as upstream.
    elector = LeaderElector(client, election, log=_log)
    _log(f"scheduler {shown} started")
    while not stop.is_set():
        try:
            if elector.leading() and gate.changed():
                schedule_once(client, scheduler_name)
        except (OSError, ApiStatusError, ValueError) as exc:
            _log(f"schedule pass failed: {exc}")
        stop.wait(interval)
    elector.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
