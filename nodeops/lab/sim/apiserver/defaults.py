"""Create-time defaults and validation that clients can observe (what upstream's defaulters,
admission plugins and strategies do to a new object)."""

from __future__ import annotations

import random
import re
from typing import Any

from nodeops.lab.sim.apiserver import errors
from nodeops.lab.sim.apiserver.resources import Resource
from nodeops.lab.sim.kube_objects import new_uid, rfc3339

Obj = dict[str, Any]

# utilrand.String's alphabet: no vowels (no words) and no confusable characters.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex"
    " used for validation is"
    " '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def random_suffix(length: int = 5) -> str:
    """utilrand.String(n), used for generateName."""
    return "".join(random.choice(_ALPHABET) for _ in range(length))  # noqa: S311


def _container_defaults(container: Obj) -> None:
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("resources", {})
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def pod_spec_defaults(spec: Obj) -> None:
    """Defaults of a PodSpec (also applied to templates)."""
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        _container_defaults(container)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for volume in spec.get("volumes") or []:
        if "emptyDir" in volume and volume["emptyDir"] is None:
            volume["emptyDir"] = {}


def _qos_class(spec: Obj) -> str:
    requests_any = False
    guaranteed = True
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        if requests or limits:
            requests_any = True
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


_DEFAULT_TOLERATIONS = (
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
)


def _pod_defaults(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    pod_spec_defaults(spec)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    # The DefaultTolerationSeconds admission plugin adds these unless the pod has its own.
    tolerations = spec.setdefault("tolerations", [])
    for default in _DEFAULT_TOLERATIONS:
        if not any(
            t.get("key") == default["key"] and t.get("effect") in (None, "", "NoExecute")
            for t in tolerations
        ):
            tolerations.append(dict(default))
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", _qos_class(spec))


def _template_defaults(obj: Obj) -> None:
    template = obj.setdefault("spec", {}).setdefault("template", {})
    pod_spec_defaults(template.setdefault("spec", {}))
    template.setdefault("metadata", {}).setdefault("creationTimestamp", None)


def _service_defaults(svc: Obj) -> None:
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if "clusterIP" not in spec:
        spec["clusterIP"] = (
            f"10.{96 + random.randrange(16)}.{random.randrange(256)}.{random.randrange(2, 255)}"  # noqa: S311
        )
    if spec["clusterIP"] != "None":
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    svc.setdefault("status", {"loadBalancer": {}})


def _strategy(spec: Obj, field: str, max_unavailable: Any, max_surge: Any) -> None:
    strategy = spec.get(field) or {}
    spec[field] = strategy
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", max_unavailable)
        rolling.setdefault("maxSurge", max_surge)


def apply_create_defaults(res: Resource, obj: Obj) -> None:
    """Defaults of a new object of `res` (spec and status fields upstream fills in)."""
    if res.plural == "pods":
        _pod_defaults(obj)
    elif res.plural == "deployments":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        _strategy(spec, "strategy", "25%", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        _template_defaults(obj)
        obj.setdefault("status", {})
    elif res.plural in ("replicasets", "statefulsets"):
        obj.setdefault("spec", {}).setdefault("replicas", 1)
        _template_defaults(obj)
        obj.setdefault("status", {"replicas": 0})
    elif res.plural == "daemonsets":
        spec = obj.setdefault("spec", {})
        _strategy(spec, "updateStrategy", 1, 0)
        spec.setdefault("revisionHistoryLimit", 10)
        _template_defaults(obj)
        obj.setdefault(
            "status",
            {
                "currentNumberScheduled": 0,
                "desiredNumberScheduled": 0,
                "numberMisscheduled": 0,
                "numberReady": 0,
            },
        )
    elif res.plural == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")
    elif res.plural == "services":
        _service_defaults(obj)
    elif res.plural == "poddisruptionbudgets":
        obj.setdefault(
            "status",
            {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0},
        )
    elif res.plural == "nodes":
        obj.setdefault("spec", {})
        obj.setdefault("status", {"daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}})


def prepare_create(res: Resource, obj: Obj, namespace: str | None) -> Obj:
    """Fill metadata for a create (name from generateName, uid, timestamps) and validate it."""
    metadata = obj.setdefault("metadata", {})
    if not metadata.get("name") and metadata.get("generateName"):
        metadata["name"] = metadata["generateName"] + random_suffix()
    name = str(metadata.get("name") or "")
    if res.namespaced:
        body_ns = metadata.get("namespace")
        if body_ns and namespace and body_ns != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the"
                " request"
            )
        metadata["namespace"] = namespace or body_ns or "default"
    else:
        metadata.pop("namespace", None)
    if not name:
        raise errors.invalid(
            res,
            "",
            [
                (
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )
            ],
        )
    if not _DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
        raise errors.invalid(
            res,
            name,
            [("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {_SUBDOMAIN_MSG}')],
        )
    obj["apiVersion"] = res.group_version
    obj["kind"] = res.kind
    metadata["uid"] = new_uid()
    metadata["creationTimestamp"] = rfc3339()
    metadata.pop("resourceVersion", None)
    metadata.pop("deletionTimestamp", None)
    if res.generation:
        metadata["generation"] = 1
    apply_create_defaults(res, obj)
    return obj
