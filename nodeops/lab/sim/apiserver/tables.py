"""Server-side tables (meta.k8s.io/v1 Table) with upstream's columns for `kubectl get`.

Columns and cell rules follow pkg/printers/internalversion/printers.go; priority-1 columns
are always sent and kubectl shows them only with `-o wide`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nodeops.lab.sim.apiserver.resources import Resource
from nodeops.lab.sim.kube_objects import age, meta
from nodeops.lab.sim.kube_selectors import format_selector

Obj = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority

_NAME: Column = ("Name", "string", 0)
_AGE: Column = ("Age", "string", 0)


def _node_roles(node: Obj) -> str:
    roles = set()
    for key, value in (meta(node).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.partition("/")[2]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, kind: str) -> str:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == kind:
            return str(addr.get("address", ""))
    return "<none>"


def _node_row(node: Obj) -> list[Any]:
    status = node.get("status") or {}
    states = []
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            states.append("Ready" if cond.get("status") == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    return [
        meta(node).get("name"),
        ",".join(states),
        _node_roles(node),
        age(meta(node).get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _pod_row(pod: Obj) -> list[Any]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or ""
    restarts = 0
    ready = 0
    running = False
    containers = spec.get("containers") or []
    for cs in reversed(status.get("containerStatuses") or []):
        restarts += int(cs.get("restartCount", 0))
        state = cs.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
        elif terminated:
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif cs.get("ready") and state.get("running") is not None:
            running = True
            ready += 1
    if reason == "Completed" and running:
        ready_cond = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        reason = "Running" if ready_cond else "NotReady"
    if meta(pod).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        meta(pod).get("name"),
        f"{ready}/{len(containers)}",
        reason,
        str(restarts),
        age(meta(pod).get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"0/{len(gates)}" if gates else "<none>",
    ]


def _containers(obj: Obj) -> tuple[str, str]:
    pod_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod_spec.get("containers") or []
    return (
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    )


def _deployment_row(obj: Obj) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(obj)
    return [
        meta(obj).get("name"),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        age(meta(obj).get("creationTimestamp")),
        names,
        images,
        format_selector(spec.get("selector")),
    ]


def _replicaset_row(obj: Obj) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(obj)
    return [
        meta(obj).get("name"),
        spec.get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        age(meta(obj).get("creationTimestamp")),
        names,
        images,
        format_selector(spec.get("selector")),
    ]


def _daemonset_row(obj: Obj) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(obj)
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return [
        meta(obj).get("name"),
        status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0),
        status.get("numberAvailable", 0),
        ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or "<none>",
        age(meta(obj).get("creationTimestamp")),
        names,
        images,
        format_selector(spec.get("selector")),
    ]


def _statefulset_row(obj: Obj) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(obj)
    return [
        meta(obj).get("name"),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        age(meta(obj).get("creationTimestamp")),
        names,
        images,
    ]


def _pdb_row(obj: Obj) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    min_available = spec.get("minAvailable")
    max_unavailable = spec.get("maxUnavailable")
    return [
        meta(obj).get("name"),
        "N/A" if min_available is None else str(min_available),
        "N/A" if max_unavailable is None else str(max_unavailable),
        status.get("disruptionsAllowed", 0),
        age(meta(obj).get("creationTimestamp")),
    ]


def _namespace_row(obj: Obj) -> list[Any]:
    return [
        meta(obj).get("name"),
        (obj.get("status") or {}).get("phase", ""),
        age(meta(obj).get("creationTimestamp")),
    ]


def _ports(spec: Obj) -> str:
    parts = []
    for port in spec.get("ports") or []:
        text = f"{port.get('port')}"
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        parts.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _service_row(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    external = ",".join(spec.get("externalIPs") or []) or "<none>"
    if spec.get("type") == "ExternalName":
        external = spec.get("externalName", "<none>")
    selector = spec.get("selector") or {}
    return [
        meta(obj).get("name"),
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        external,
        _ports(spec),
        age(meta(obj).get("creationTimestamp")),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _lease_row(obj: Obj) -> list[Any]:
    return [
        meta(obj).get("name"),
        (obj.get("spec") or {}).get("holderIdentity") or "",
        age(meta(obj).get("creationTimestamp")),
    ]


def _configmap_row(obj: Obj) -> list[Any]:
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    return [meta(obj).get("name"), count, age(meta(obj).get("creationTimestamp"))]


_TABLES: dict[str, tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    "nodes": (
        [
            _NAME,
            ("Status", "string", 0),
            ("Roles", "string", 0),
            _AGE,
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        _node_row,
    ),
    "pods": (
        [
            _NAME,
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            _AGE,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        _pod_row,
    ),
    "deployments": (
        [
            _NAME,
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            _AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _deployment_row,
    ),
    "replicasets": (
        [
            _NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            _AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _replicaset_row,
    ),
    "daemonsets": (
        [
            _NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            _AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _daemonset_row,
    ),
    "statefulsets": (
        [
            _NAME,
            ("Ready", "string", 0),
            _AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        _statefulset_row,
    ),
    "poddisruptionbudgets": (
        [
            _NAME,
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            _AGE,
        ],
        _pdb_row,
    ),
    "namespaces": ([_NAME, ("Status", "string", 0), _AGE], _namespace_row),
    "services": (
        [
            _NAME,
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            _AGE,
            ("Selector", "string", 1),
        ],
        _service_row,
    ),
    "leases": ([_NAME, ("Holder", "string", 0), _AGE], _lease_row),
    "configmaps": ([_NAME, ("Data", "integer", 0), _AGE], _configmap_row),
}


def _default_row(obj: Obj) -> list[Any]:
    return [meta(obj).get("name"), meta(obj).get("creationTimestamp")]


_DEFAULT: tuple[list[Column], Callable[[Obj], list[Any]]] = (
    [_NAME, ("Created At", "date", 0)],
    _default_row,
)


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta(obj),
    }


def table(
    res: Resource, objects: list[Obj], *, resource_version: str, include: str = "Metadata"
) -> Obj:
    """A meta.k8s.io/v1 Table of `objects`."""
    columns, row = _TABLES.get(res.plural, _DEFAULT)
    definitions = []
    for name, kind, priority in columns:
        definition: Obj = {
            "name": name,
            "type": kind,
            "format": "name" if name == "Name" else "",
            "description": "",
            "priority": priority,
        }
        definitions.append(definition)
    rows = []
    for obj in objects:
        entry: Obj = {"cells": row(obj)}
        partial = _row_object(obj, include)
        if partial is not None:
            entry["object"] = partial
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }


def wants_table(accept: str) -> bool:
    """Whether the Accept header asks for a Table first-class (kubectl get)."""
    for part in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in part.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
    return False


TABLE_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
