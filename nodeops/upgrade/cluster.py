"""What the cluster says about its nodes and control plane, read with kubectl (pure parsers)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nodeops import kube
from nodeops.cmd import Cmd
from nodeops.errors import NodeopsError
from nodeops.node import check_node_name
from nodeops.versions import ClusterVersions, Version, VersionError, parse_version

CONTROL_PLANE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def get_nodes() -> Cmd:
    """`kubectl get nodes -o json` (read-only)."""
    return kube.kubectl("get", "nodes", "-o", "json")


def get_node(name: str) -> Cmd:
    """`kubectl get node NAME -o json` (read-only)."""
    return kube.kubectl("get", "node", "-o", "json", "--", check_node_name(name))


def get_system_pods() -> Cmd:
    """`kubectl get pods -n kube-system -o json` (read-only): the static control-plane pods."""
    return kube.kubectl("get", "pods", "-n", "kube-system", "-o", "json")


@dataclass(frozen=True)
class NodeStatus:
    """One Node object as the upgrade needs it."""

    name: str
    ready: bool
    unschedulable: bool
    kubelet_version: Version | None
    ready_message: str = ""

    def describe(self) -> str:
        """`Ready, schedulable, kubelet v1.30.2`."""
        state = "Ready" if self.ready else f"NotReady ({self.ready_message or 'no message'})"
        sched = "cordoned" if self.unschedulable else "schedulable"
        version = self.kubelet_version.v if self.kubelet_version else "unknown"
        return f"{state}, {sched}, kubelet {version}"


def _load(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise NodeopsError(f"kubectl did not return JSON for {what}: {error}") from None


def parse_node(obj: Any) -> NodeStatus:
    """NodeStatus from one Node object."""
    if not isinstance(obj, dict):
        raise NodeopsError("kubectl returned something other than a Node object")
    meta, spec, status = (obj.get(k) or {} for k in ("metadata", "spec", "status"))
    ready, message = False, ""
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            ready = condition.get("status") == "True"
            message = str(condition.get("message") or "")
    raw = (status.get("nodeInfo") or {}).get("kubeletVersion")
    try:
        version = parse_version(str(raw)) if raw else None
    except VersionError:
        version = None
    return NodeStatus(
        name=str(meta.get("name", "")),
        ready=ready,
        unschedulable=spec.get("unschedulable") is True,
        kubelet_version=version,
        ready_message=message,
    )


def parse_node_json(text: str) -> NodeStatus:
    """NodeStatus from `kubectl get node NAME -o json`."""
    return parse_node(_load(text, "a node"))


def parse_nodes_json(text: str) -> dict[str, NodeStatus]:
    """Every node of `kubectl get nodes -o json`, by name."""
    document = _load(text, "nodes")
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise NodeopsError("kubectl returned a node list without `items`")
    nodes = [parse_node(item) for item in items]
    return {n.name: n for n in nodes}


@dataclass(frozen=True)
class StaticPod:
    """A control-plane static (mirror) pod: its component, node, image tag and phase."""

    component: str
    node: str
    version: Version | None
    running: bool


def parse_static_pods(text: str) -> list[StaticPod]:
    """The kube-apiserver, controller-manager and scheduler pods of `get pods -n kube-system`."""
    document = _load(text, "kube-system pods")
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise NodeopsError("kubectl returned a pod list without `items`")
    return static_pods_of(items)


def static_pods_of(items: list[Any]) -> list[StaticPod]:
    """The control-plane static pods among Pod objects (kube-system only)."""
    found: list[StaticPod] = []
    for pod in items:
        if not isinstance(pod, dict):
            continue
        meta = pod.get("metadata") or {}
        if meta.get("namespace", "kube-system") != "kube-system":
            continue
        labels = meta.get("labels") or {}
        component = labels.get("component")
        if component not in CONTROL_PLANE_COMPONENTS:
            continue
        spec = pod.get("spec") or {}
        containers = spec.get("containers") or [{}]
        image = str(containers[0].get("image", ""))
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        try:
            version = parse_version(tag) if tag else None
        except VersionError:
            version = None
        phase = (pod.get("status") or {}).get("phase")
        found.append(
            StaticPod(str(component), str(spec.get("nodeName", "")), version, phase == "Running")
        )
    return found


@dataclass(frozen=True)
class ClusterState:
    """Nodes and control-plane pods as kubectl reports them."""

    nodes: dict[str, NodeStatus]
    static_pods: list[StaticPod] = field(default_factory=list)

    def component_versions(self, component: str) -> dict[str, Version]:
        """node -> version of one control-plane component."""
        return {
            p.node: p.version
            for p in self.static_pods
            if p.component == component and p.version is not None
        }

    @property
    def apiservers(self) -> dict[str, Version]:
        """node -> kube-apiserver version."""
        return self.component_versions("kube-apiserver")

    def versions(self) -> ClusterVersions:
        """The versions the skew policy checks."""
        return ClusterVersions(
            apiservers=self.apiservers,
            controller_managers=self.component_versions("kube-controller-manager"),
            schedulers=self.component_versions("kube-scheduler"),
            kubelets={
                n.name: n.kubelet_version
                for n in self.nodes.values()
                if n.kubelet_version is not None
            },
        )

    def control_plane_at(self, node: str, target: Version) -> bool:
        """Whether every control-plane static pod of the node runs the target and is Running."""
        pods = [p for p in self.static_pods if p.node == node]
        components = {p.component for p in pods}
        return set(CONTROL_PLANE_COMPONENTS) <= components and all(
            p.version == target and p.running for p in pods
        )
