"""The resource types the simulated apiserver serves, with their discovery facts."""

from __future__ import annotations

from dataclasses import dataclass

_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Subresource:
    """A subresource (status, eviction, binding) with the kind it answers with."""

    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = "v1"


@dataclass(frozen=True)
class Resource:
    """One REST resource: where it lives in the API and in etcd."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    # Upstream's etcd key prefix (e.g. nodes live under /registry/minions).
    etcd_name: str = ""
    # Whether spec changes bump metadata.generation.
    generation: bool = False

    @property
    def group_version(self) -> str:
        """apiVersion of the objects: `v1` or `group/version`."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`plural` or `plural.group`, as error messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        """Whether a status subresource exists (main updates then keep the old status)."""
        return any(s.name == "status" for s in self.subresources)

    def etcd_prefix(self, namespace: str | None = None) -> str:
        """The etcd key prefix of this resource, optionally narrowed to one namespace."""
        base = f"/registry/{self.etcd_name or self.plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def etcd_key(self, namespace: str | None, name: str) -> str:
        """The etcd key of one object."""
        return f"{self.etcd_prefix(namespace)}{name}"


def _status(kind: str, group: str = "", version: str = "v1") -> Subresource:
    return Subresource("status", kind, ("get", "patch", "update"), group, version)


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",),
             subresources=(_status("Namespace"),)),
    Resource("", "v1", "nodes", "node", "Node", False, ("no",),
             subresources=(_status("Node"),), etcd_name="minions"),
    Resource("", "v1", "pods", "pod", "Pod", True, ("po",), ("all",),
             subresources=(
                 _status("Pod"),
                 Subresource("binding", "Binding", ("create",)),
                 Subresource("eviction", "Eviction", ("create",), "policy", "v1"),
             )),
    Resource("", "v1", "services", "service", "Service", True, ("svc",), ("all",),
             subresources=(_status("Service"),), etcd_name="services/specs"),
    Resource("", "v1", "endpoints", "endpoints", "Endpoints", True, ("ep",),
             etcd_name="services/endpoints"),
    Resource("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "secret", "Secret", True),
    Resource("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ("sa",)),
    Resource("", "v1", "events", "event", "Event", True, ("ev",)),
    Resource("apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",),
             ("all",), subresources=(_status("Deployment", "apps"),), generation=True),
    Resource("apps", "v1", "replicasets", "replicaset", "ReplicaSet", True, ("rs",), ("all",),
             subresources=(_status("ReplicaSet", "apps"),), generation=True),
    Resource("apps", "v1", "daemonsets", "daemonset", "DaemonSet", True, ("ds",), ("all",),
             subresources=(_status("DaemonSet", "apps"),), generation=True),
    Resource("apps", "v1", "statefulsets", "statefulset", "StatefulSet", True, ("sts",),
             ("all",), subresources=(_status("StatefulSet", "apps"),), generation=True),
    Resource("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision",
             True),
    Resource("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget",
             "PodDisruptionBudget", True, ("pdb",),
             subresources=(_status("PodDisruptionBudget", "policy"),), generation=True),
    Resource("coordination.k8s.io", "v1", "leases", "lease", "Lease", True),
)  # fmt: skip

VERBS = _VERBS

# Groups in the order /apis lists them.
GROUPS: tuple[tuple[str, str], ...] = (
    ("apps", "v1"),
    ("policy", "v1"),
    ("coordination.k8s.io", "v1"),
)


def find(group: str, version: str, plural: str) -> Resource | None:
    """The resource served at group/version/plural."""
    for res in RESOURCES:
        if (res.group, res.version, res.plural) == (group, version, plural):
            return res
    return None


def by_kind(kind: str) -> Resource | None:
    """The resource whose objects have `kind`."""
    for res in RESOURCES:
        if res.kind == kind:
            return res
    return None


def in_group(group: str, version: str) -> list[Resource]:
    """The resources of one group version."""
    return [r for r in RESOURCES if (r.group, r.version) == (group, version)]


def require(group: str, version: str, plural: str) -> Resource:
    """The resource at group/version/plural; KeyError when it is not served."""
    res = find(group, version, plural)
    if res is None:
        raise KeyError(f"{plural}.{group}/{version}")
    return res
