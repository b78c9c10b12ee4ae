"""Controller passes against an in-memory API (no etcd, no HTTP)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from nodeops.lab.sim.controller_manager import Controllers
from nodeops.lab.sim.kube_client import ApiStatusError, Client
from nodeops.lab.sim.kube_objects import rfc3339
from nodeops.lab.sim.kube_patch import merge_patch, strategic_merge_patch

Obj = dict[str, Any]


class FakeApi:
    """Objects by REST path, with just the verbs the controllers use."""

    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}
        self.counter = itertools.count(1)

    def _collection(self, path: str) -> list[Obj]:
        parts = path.strip("/").split("/")
        plural = parts[-1]
        namespace = parts[parts.index("namespaces") + 1] if "namespaces" in parts else None
        found = []
        for key, obj in sorted(self.objects.items()):
            kparts = key.strip("/").split("/")
            if kparts[-2] != plural:
                continue
            if namespace and obj["metadata"].get("namespace") != namespace:
                continue
            found.append(copy.deepcopy(obj))
        return found

    def items(self, path: str, **params: str) -> list[Obj]:
        found = self._collection(path)
        if "fieldSelector" in params:
            node = params["fieldSelector"].split("=")[1]
            found = [o for o in found if (o.get("spec") or {}).get("nodeName") == node]
        return found

    def create(self, path: str, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{next(self.counter)}"
        parts = path.strip("/").split("/")
        if "namespaces" in parts:
            meta["namespace"] = parts[parts.index("namespaces") + 1]
        meta["uid"] = f"uid-{meta['name']}"
        meta.setdefault("creationTimestamp", rfc3339())
        key = f"{path}/{meta['name']}"
        if key in self.objects:
            raise ApiStatusError(409, {"reason": "AlreadyExists"})
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def _key(self, path: str) -> str:
        return path.removesuffix("/status")

    def update(self, path: str, obj: Obj) -> Obj:
        key = self._key(path)
        if key not in self.objects:
            raise ApiStatusError(404, {})
        self.objects[key] = copy.deepcopy(obj)
        return obj

    def patch(self, path: str, patch: Any, kind: str = "strategic") -> Obj:
        key = self._key(path)
        if key not in self.objects:
            raise ApiStatusError(404, {})
        fn = merge_patch if kind == "merge" else strategic_merge_patch
        self.objects[key] = fn(self.objects[key], patch)
        return copy.deepcopy(self.objects[key])

    def delete(self, path: str, options: Obj | None = None) -> Obj:
        if path not in self.objects:
            raise ApiStatusError(404, {})
        return self.objects.pop(path)

    def get(self, path: str, **params: str) -> Obj:
        return {"items": self.items(path), "metadata": {"resourceVersion": "1"}}


def _controllers() -> tuple[Controllers, FakeApi]:
    api = FakeApi()
    fake: Client = api  # type: ignore[assignment]
    return Controllers(fake, grace=40), api


def _node(api: FakeApi, name: str, **spec: Any) -> None:
    api.create(
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": spec,
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
    )


def _template(app: str) -> Obj:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


def test_deployment_makes_replicaset_and_pods() -> None:
    ctl, api = _controllers()
    api.create(
        "/apis/apps/v1/namespaces/default/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "generation": 1},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": _template("web"),
            },
        },
    )
    ctl.sync()
    ctl.sync()
    rs = api.items("/apis/apps/v1/namespaces/default/replicasets")
    assert len(rs) == 1
    hash_label = rs[0]["metadata"]["labels"]["pod-template-hash"]
    assert rs[0]["metadata"]["name"] == f"web-{hash_label}"
    assert rs[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    pods = api.items("/api/v1/namespaces/default/pods")
    assert len(pods) == 3
    assert all(
        p["metadata"]["ownerReferences"][0]["name"] == rs[0]["metadata"]["name"] for p in pods
    )
    # Scale down: ReplicaSet follows the Deployment, extra pods go.
    api.patch(
        "/apis/apps/v1/namespaces/default/deployments/web", {"spec": {"replicas": 1}}, "merge"
    )
    ctl.sync()
    ctl.sync()
    assert len(api.items("/api/v1/namespaces/default/pods")) == 1
    # Deleting the Deployment lets the garbage collector take the ReplicaSet, then its pods.
    api.delete("/apis/apps/v1/namespaces/default/deployments/web")
    ctl.sync()
    ctl.sync()
    assert api.items("/apis/apps/v1/namespaces/default/replicasets") == []
    assert api.items("/api/v1/namespaces/default/pods") == []


def test_daemonset_pins_one_pod_per_eligible_node() -> None:
    ctl, api = _controllers()
    _node(api, "a")
    _node(api, "b", unschedulable=True)
    _node(
        api, "cp", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    )
    api.create(
        "/apis/apps/v1/namespaces/kube-system/daemonsets",
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "proxy", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "proxy"}}, "template": _template("proxy")},
        },
    )
    ctl.sync()
    pods = api.items("/api/v1/namespaces/kube-system/pods")
    targets = sorted(
        p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ][0]["matchFields"][0]["values"][0]
        for p in pods
    )
    # A cordoned node still gets its daemon pod; the control-plane taint keeps it off cp.
    assert targets == ["a", "b"]
    keys = {t["key"] for t in pods[0]["spec"]["tolerations"]}
    assert "node.kubernetes.io/unschedulable" in keys and "node.kubernetes.io/unreachable" in keys
    ctl.sync()
    status = api.items("/apis/apps/v1/namespaces/kube-system/daemonsets")[0]["status"]
    assert (status["desiredNumberScheduled"], status["currentNumberScheduled"]) == (2, 2)


def test_cordon_adds_the_unschedulable_taint() -> None:
    ctl, api = _controllers()
    _node(api, "a", unschedulable=True)
    ctl.sync()
    taints = api.objects["/api/v1/nodes/a"]["spec"]["taints"]
    assert taints == [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    api.patch("/api/v1/nodes/a", {"spec": {"unschedulable": None}}, "merge")
    ctl.sync()
    assert not api.objects["/api/v1/nodes/a"]["spec"].get("taints")


def test_silent_node_goes_unknown_and_gets_unreachable_taints() -> None:
    ctl, api = _controllers()
    _node(api, "a")
    api.objects["/api/v1/nodes/a"]["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    api.objects["/api/v1/nodes/a"]["status"]["conditions"][0]["lastHeartbeatTime"] = (
        "2024-01-01T00:00:00Z"
    )
    ctl.sync()
    node = api.objects["/api/v1/nodes/a"]
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
    assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    }
