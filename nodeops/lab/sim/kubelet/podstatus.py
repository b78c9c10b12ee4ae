"""A pod's status as the kubelet reports it (pkg/kubelet/kubelet_pods.go generateAPIPodStatus)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from nodeops.lab.sim.kubelet.images import image_id, normalize_image

# Restart backoff of exited containers. Upstream starts at 10 s and caps at 5 min; the lab uses
# shorter steps so a control plane whose components start out of order settles in seconds.
BACKOFF_START, BACKOFF_MAX = 1.0, 10.0


def now_time() -> str:
    """metav1.Time now."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Backoff:
    """A container's last exit and when it may start again."""

    until: float = 0.0
    step: float = BACKOFF_START
    exit_code: int = 0
    finished_at: str = ""
    started_at: str = ""


@dataclass
class PodState:
    """What the kubelet remembers about one pod between sync passes."""

    ip: str = ""
    start_time: str = ""
    sent_status: dict[str, Any] = field(default_factory=dict)
    backoff: dict[str, Backoff] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    conditions: dict[str, tuple[str, str]] = field(default_factory=dict)  # type -> status, since
    terminated: set[str] = field(default_factory=set)  # containers that finished for good


@dataclass(frozen=True)
class Running:
    """A container whose process runs, with what its probes say."""

    container_id: str
    started_at: str
    started: bool
    ready: bool


def container_status(
    container: dict[str, Any],
    running: Running | None,
    restarts: int,
    back: Backoff | None,
    *,
    finished: bool = False,
) -> dict[str, Any]:
    """One entry of status.containerStatuses."""
    image = str(container.get("image") or "")
    entry: dict[str, Any] = {
        "name": str(container["name"]),
        "image": normalize_image(image),
        "imageID": image_id(image),
        "restartCount": restarts,
        "lastState": {},
    }
    terminated = None
    if back is not None and back.finished_at:
        terminated = {
            "exitCode": back.exit_code,
            "reason": "Completed" if back.exit_code == 0 else "Error",
            "startedAt": back.started_at,
            "finishedAt": back.finished_at,
        }
        entry["lastState"] = {"terminated": terminated}
    if finished and terminated is not None:
        # Done for good (restartPolicy Never/OnFailure): its last run is its state.
        entry.update(lastState={}, ready=False, started=False, state={"terminated": terminated})
    elif running is not None:
        entry.update(
            containerID=f"containerd://{running.container_id}",
            ready=running.ready,
            started=running.started,
            state={"running": {"startedAt": running.started_at}},
        )
    else:
        crashed = back is not None and bool(back.finished_at)
        reason = "CrashLoopBackOff" if crashed else "ContainerCreating"
        entry.update(ready=False, started=False, state={"waiting": {"reason": reason}})
    return entry


def pod_status(
    pod: dict[str, Any], state: PodState, running: dict[str, Running | None], node_ip: str
) -> dict[str, Any]:
    """The status the kubelet PATCHes for a pod; `running` maps container name to its process.

    Condition transition times are kept in `state`: the first dates from the pod's start.
    """
    statuses = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        name = str(c["name"])
        back = state.backoff.get(name)
        statuses.append(
            container_status(
                c,
                running.get(name),
                state.restarts.get(name, 0),
                back,
                finished=name in state.terminated,
            )
        )
    ready = "True" if all(e["ready"] for e in statuses) else "False"
    wanted = {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": ready,
        "ContainersReady": ready,
        "PodScheduled": "True",
    }
    conditions = []
    for kind, value in wanted.items():
        previous = state.conditions.get(kind)
        if previous is None or previous[0] != value:
            # A static pod replaced by a new manifest reports before its containers start:
            # its start time is not known yet, and the API wants a valid RFC 3339 time.
            first = state.start_time or now_time()
            state.conditions[kind] = (value, now_time() if previous else first)
        conditions.append(
            {
                "type": kind,
                "status": value,
                "lastProbeTime": None,
                "lastTransitionTime": state.conditions[kind][1],
            }
        )
    # getPhase: Pending until every container has run once; then Running, also while
    # restarting (restartPolicy Always).
    ever_ran = all(
        "running" in e["state"] or "terminated" in e["state"] or e["restartCount"] > 0
        for e in statuses
    )
    phase = "Running" if ever_ran else "Pending"
    if statuses and all("terminated" in e["state"] for e in statuses):
        codes = [e["state"]["terminated"]["exitCode"] for e in statuses]
        phase = "Succeeded" if not any(codes) else "Failed"
    return {
        "phase": phase,
        "conditions": conditions,
        "hostIP": node_ip,
        "hostIPs": [{"ip": node_ip}],
        "podIP": state.ip,
        "podIPs": [{"ip": state.ip}],
        "startTime": state.start_time,
        "containerStatuses": statuses,
    }
