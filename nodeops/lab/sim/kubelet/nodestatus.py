"""The Node object a kubelet registers and the status it posts (kubelet_node_status.go)."""

from __future__ import annotations

import os
import platform
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTAINER_RUNTIME_VERSION = "containerd://1.7.13"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


@dataclass(frozen=True)
class NodeFacts:
    """What the kubelet knows about its machine."""

    name: str
    address: str
    kubelet_version: str
    os_image: str
    kernel_version: str
    machine_id: str
    boot_id: str
    cpus: int
    memory_kib: int
    max_pods: int


def go_arch() -> str:
    """GOARCH of this machine."""
    m = platform.machine()
    return _ARCH.get(m, m)


def machine_facts() -> tuple[int, int]:
    """(CPUs, memory KiB) of this machine."""
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            for row in f:
                if row.startswith("MemTotal:"):
                    mem = int(row.split()[1])
                    break
    except OSError:
        pass
    return os.cpu_count() or 1, mem


def labels(name: str) -> dict[str, str]:
    """The well-known labels a kubelet sets on its Node (with the beta ones it still sets)."""
    arch = go_arch()
    return {
        "beta.kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }


def new_node(
    facts: NodeFacts, extra_labels: dict[str, str], taints: list[dict[str, str]]
) -> dict[str, Any]:
    """The Node the kubelet creates at registration (initialNode)."""
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": facts.name,
            "labels": {**labels(facts.name), **extra_labels},
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {},
        "status": status(facts, ready=True, now="1970-01-01T00:00:00Z", transitions={}),
    }
    if taints:
        node["spec"]["taints"] = taints
    return node


def _condition(
    kind: str, value: str, reason: str, message: str, now: str, since: dict[str, str]
) -> dict[str, str]:
    return {
        "type": kind,
        "status": value,
        "lastHeartbeatTime": now,
        "lastTransitionTime": since.get(kind, now),
        "reason": reason,
        "message": message,
    }


def status(
    facts: NodeFacts, *, ready: bool, now: str, transitions: dict[str, str]
) -> dict[str, Any]:
    """Node status with the kubelet's condition reasons and messages; `transitions` maps a
    condition type to when it last changed (kept across heartbeats)."""
    capacity = {
        "cpu": str(facts.cpus),
        "ephemeral-storage": "61255492Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{facts.memory_kib}Ki",
        "pods": str(facts.max_pods),
    }
    allocatable = dict(capacity, **{"ephemeral-storage": "56453061334"})
    if facts.memory_kib > 102400:
        allocatable["memory"] = f"{facts.memory_kib - 102400}Ki"
    if ready:
        ready_cond = _condition(
            "Ready", "True", "KubeletReady", "kubelet is posting ready status", now, transitions
        )
    else:
        ready_cond = _condition(
            "Ready",
            "False",
            "KubeletNotReady",
            "container runtime status check may not have completed yet",
            now,
            transitions,
        )
    conditions = [
        _condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                   "kubelet has sufficient memory available", now, transitions),
        _condition("DiskPressure", "False", "KubeletHasNoDiskPressure",
                   "kubelet has no disk pressure", now, transitions),
        _condition("PIDPressure", "False", "KubeletHasSufficientPID",
                   "kubelet has sufficient PID available", now, transitions),
        ready_cond,
    ]  # fmt: skip
    return {
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": facts.address},
            {"type": "Hostname", "address": facts.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.machine_id,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version,
            "osImage": facts.os_image,
            "containerRuntimeVersion": CONTAINER_RUNTIME_VERSION,
            "kubeletVersion": facts.kubelet_version,
            "kubeProxyVersion": facts.kubelet_version,
            "operatingSystem": "linux",
            "architecture": go_arch(),
        },
    }


def lease(name: str, holder_seconds: int, now_micro: str) -> dict[str, Any]:
    """The node's Lease in kube-node-lease (renewTime in MicroTime format)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": holder_seconds,
            "renewTime": now_micro,
        },
    }


def boot_id() -> str:
    """The kernel's boot id."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return str(uuid.uuid4())


def machine_id() -> str:
    """/etc/machine-id."""
    try:
        return Path("/etc/machine-id").read_text().strip()
    except OSError:
        return uuid.uuid4().hex
