"""Just enough protobuf to read the DeleteOptions that kubectl sends as a protobuf body.

A kubernetes protobuf body is the magic `k8s\\0` and a runtime.Unknown whose field 2 holds
the encoded object; DeleteOptions fields: 1 gracePeriodSeconds, 2 preconditions (1 uid,
2 resourceVersion), 3 orphanDependents, 4 propagationPolicy, 5 dryRun.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

MAGIC = b"k8s\x00"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs of one message; varints as int, length-delimited as bytes."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            yield number, data[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def delete_options(body: bytes) -> dict[str, Any]:
    """DeleteOptions from a protobuf body (empty dict when it is not one)."""
    if not body.startswith(MAGIC):
        return {}
    raw = b""
    for number, value in fields(body[len(MAGIC) :]):
        if number == 2 and isinstance(value, bytes):
            raw = value
    return _message("DeleteOptions", raw)


# Field tables of the k8s.io/api generated.proto messages that kubectl's typed clients send
# (create deployment/namespace/pdb, drain's evictions). Kinds: s string, i int, b bool,
# t Time, ios IntOrString, q Quantity, ms map<string,string>, mq map<string,Quantity>,
# [x repeated x, other names are messages.
_SCHEMA: dict[str, dict[int, tuple[str, str]]] = {
    "TypeMeta": {1: ("apiVersion", "s"), 2: ("kind", "s")},
    "ObjectMeta": {
        1: ("name", "s"), 2: ("generateName", "s"), 3: ("namespace", "s"), 5: ("uid", "s"),
        6: ("resourceVersion", "s"), 7: ("generation", "i"), 8: ("creationTimestamp", "t"),
        9: ("deletionTimestamp", "t"), 10: ("deletionGracePeriodSeconds", "i"),
        11: ("labels", "ms"), 12: ("annotations", "ms"),
        13: ("ownerReferences", "[OwnerReference"), 14: ("finalizers", "[s"),
    },
    "OwnerReference": {
        1: ("kind", "s"), 3: ("name", "s"), 4: ("uid", "s"), 5: ("apiVersion", "s"),
        6: ("controller", "b"), 7: ("blockOwnerDeletion", "b"),
    },
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "i"), 2: ("preconditions", "Preconditions"),
        3: ("orphanDependents", "b"), 4: ("propagationPolicy", "s"), 5: ("dryRun", "[s"),
    },
    "Preconditions": {1: ("uid", "s"), 2: ("resourceVersion", "s")},
    "Eviction": {1: ("metadata", "ObjectMeta"), 2: ("deleteOptions", "DeleteOptions")},
    "Deployment": {1: ("metadata", "ObjectMeta"), 2: ("spec", "DeploymentSpec")},
    "DeploymentSpec": {
        1: ("replicas", "i"), 2: ("selector", "LabelSelector"), 3: ("template", "PodTemplateSpec"),
        4: ("strategy", "DeploymentStrategy"), 5: ("minReadySeconds", "i"),
        6: ("revisionHistoryLimit", "i"), 7: ("paused", "b"), 9: ("progressDeadlineSeconds", "i"),
    },
    "DeploymentStrategy": {1: ("type", "s"), 2: ("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: ("maxUnavailable", "ios"), 2: ("maxSurge", "ios")},
    "LabelSelector": {
        1: ("matchLabels", "ms"), 2: ("matchExpressions", "[LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {1: ("key", "s"), 2: ("operator", "s"), 3: ("values", "[s")},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {
        2: ("containers", "[Container"), 3: ("restartPolicy", "s"),
        4: ("terminationGracePeriodSeconds", "i"), 6: ("dnsPolicy", "s"),
        7: ("nodeSelector", "ms"), 8: ("serviceAccountName", "s"), 10: ("nodeName", "s"),
        11: ("hostNetwork", "b"), 19: ("schedulerName", "s"), 20: ("initContainers", "[Container"),
        22: ("tolerations", "[Toleration"), 24: ("priorityClassName", "s"), 25: ("priority", "i"),
    },
    "Container": {
        1: ("name", "s"), 2: ("image", "s"), 3: ("command", "[s"), 4: ("args", "[s"),
        5: ("workingDir", "s"), 6: ("ports", "[ContainerPort"), 7: ("env", "[EnvVar"),
        8: ("resources", "ResourceRequirements"), 14: ("imagePullPolicy", "s"),
    },
    "ContainerPort": {
        1: ("name", "s"), 2: ("hostPort", "i"), 3: ("containerPort", "i"), 4: ("protocol", "s"),
    },
    "EnvVar": {1: ("name", "s"), 2: ("value", "s")},
    "ResourceRequirements": {1: ("limits", "mq"), 2: ("requests", "mq")},
    "Toleration": {
        1: ("key", "s"), 2: ("operator", "s"), 3: ("value", "s"), 4: ("effect", "s"),
        5: ("tolerationSeconds", "i"),
    },
    "PodDisruptionBudget": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodDisruptionBudgetSpec")},
    "PodDisruptionBudgetSpec": {
        1: ("minAvailable", "ios"), 2: ("selector", "LabelSelector"),
        3: ("maxUnavailable", "ios"), 4: ("unhealthyPodEvictionPolicy", "s"),
    },
    "Namespace": {1: ("metadata", "ObjectMeta")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "ms")},
}  # fmt: skip

# Pointer fields whose zero value means something (JSON would carry it).
_KEEP_ZERO = frozenset(
    {"replicas", "gracePeriodSeconds", "terminationGracePeriodSeconds", "revisionHistoryLimit",
     "tolerationSeconds", "priority", "minAvailable", "maxUnavailable",
     "deletionGracePeriodSeconds"}
)  # fmt: skip


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "s":
        return value.decode() if isinstance(value, bytes) else ""
    if kind == "i":
        number = int(value) if isinstance(value, int) else 0
        return number - (1 << 64) if number >= 1 << 63 else number
    if kind == "b":
        return bool(value)
    raw = value if isinstance(value, bytes) else b""
    if kind == "t":
        parts = dict(fields(raw))
        seconds = parts.get(1)
        if not isinstance(seconds, int):
            return None
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "ios":
        parts = dict(fields(raw))
        if parts.get(1) == 1:
            text = parts.get(3, b"")
            return text.decode() if isinstance(text, bytes) else ""
        int_val = parts.get(2, 0)
        return int_val if isinstance(int_val, int) else 0
    if kind == "q":
        text = dict(fields(raw)).get(1, b"")
        return text.decode() if isinstance(text, bytes) else ""
    return _message(kind, raw)


def _message(name: str, data: bytes) -> dict[str, Any]:
    schema = _SCHEMA.get(name, {})
    out: dict[str, Any] = {}
    for number, value in fields(data):
        if number not in schema:
            continue
        key, kind = schema[number]
        if kind in ("ms", "mq") and isinstance(value, bytes):
            entry = dict(fields(value))
            k, v = entry.get(1, b""), entry.get(2, b"")
            item = _scalar("s" if kind == "ms" else "q", v)
            out.setdefault(key, {})[k.decode() if isinstance(k, bytes) else ""] = item
        elif kind.startswith("["):
            out.setdefault(key, []).append(_scalar(kind[1:], value))
        else:
            item = _scalar(kind, value)
            if item is None or (item in ("", 0, False) and key not in _KEEP_ZERO):
                continue
            out[key] = item
    return out


def decode_object(body: bytes) -> dict[str, Any]:
    """A JSON-shaped object from a kubernetes protobuf body; ValueError for unknown kinds."""
    if not body.startswith(MAGIC):
        raise ValueError("not a kubernetes protobuf body")
    type_meta: dict[str, Any] = {}
    raw = b""
    for number, value in fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            type_meta = _message("TypeMeta", value)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    kind = str(type_meta.get("kind", ""))
    if kind not in _SCHEMA or "metadata" not in {k for k, _ in _SCHEMA[kind].values()}:
        raise ValueError(f"protobuf decoding of {kind or 'unknown kinds'} is not supported")
    return {**type_meta, **_message(kind, raw)}
