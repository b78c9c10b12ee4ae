"""The REST semantics on top of storage: update rules, graceful deletion, binding, eviction."""

from __future__ import annotations

import copy
import datetime
from typing import Any

from nodeops.lab.sim.apiserver import errors
from nodeops.lab.sim.apiserver.defaults import prepare_create
from nodeops.lab.sim.apiserver.resources import RESOURCES, Resource, require
from nodeops.lab.sim.apiserver.storage import Store
from nodeops.lab.sim.kube_objects import condition, pod_ready, rfc3339, set_condition
from nodeops.lab.sim.kube_selectors import SelectorError, selector_from_object

Obj = dict[str, Any]

PODS = require("", "v1", "pods")
PDBS = require("policy", "v1", "poddisruptionbudgets")
NAMESPACES = require("", "v1", "namespaces")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
_IMMUTABLE_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def merge_update(res: Resource, old: Obj, new: Obj, *, subresource: str = "") -> Obj:
    """What an update stores: the new object with upstream's strategy rules applied."""
    result = copy.deepcopy(new)
    result["apiVersion"] = res.group_version
    result["kind"] = res.kind
    old_meta = old.get("metadata") or {}
    if subresource == "status":
        # Status updates change only status (ResetObjectMetaForStatus and spec reset).
        result = {**copy.deepcopy(old), "status": copy.deepcopy(new.get("status") or {})}
        return result
    meta = result.setdefault("metadata", {})
    for key in _IMMUTABLE_META:
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    meta["name"] = old_meta.get("name")
    if res.namespaced:
        meta["namespace"] = old_meta.get("namespace")
    if res.has_status:
        # The main resource ignores status changes when a status subresource exists.
        if "status" in old:
            result["status"] = copy.deepcopy(old["status"])
        else:
            result.pop("status", None)
    if res.generation:
        generation = int(old_meta.get("generation", 1))
        if _spec_part(result) != _spec_part(old) and subresource == "":
            generation += 1
        meta["generation"] = generation
    return result


def finished(obj: Obj) -> bool:
    """Whether an object marked for deletion may now go (no finalizers left)."""
    meta = obj.get("metadata") or {}
    if not meta.get("deletionTimestamp") or meta.get("finalizers"):
        return False
    # A pod being deleted gracefully waits for the kubelet's final delete.
    return (obj.get("kind") != "Pod") or int(meta.get("deletionGracePeriodSeconds", 0)) == 0


class Registry:
    """Operations of the REST API that need more than storage."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, res: Resource, namespace: str | None, obj: Obj, *, dry_run: bool) -> Obj:
        """Create with defaults, checking that the namespace exists."""
        if res.namespaced:
            ns = namespace or (obj.get("metadata") or {}).get("namespace") or "default"
            ns_obj = self.store.get(NAMESPACES, None, ns)
            if (ns_obj.get("metadata") or {}).get("deletionTimestamp"):
                raise errors.ApiError(
                    403,
                    "Forbidden",
                    f'{res.qualified} "{(obj.get("metadata") or {}).get("name", "")}" is'
                    f" forbidden: unable to create new content in namespace {ns} because it is"
                    " being terminated",
                    {"name": (obj.get("metadata") or {}).get("name", ""), "kind": res.plural},
                )
            namespace = ns
        prepare_create(res, obj, namespace)
        return self.store.create(res, obj, dry_run=dry_run)

    def delete(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        options: Obj,
        *,
        dry_run: bool,
    ) -> tuple[Obj, bool]:
        """Delete (gracefully for bound pods, via finalizers when set); (object, gone now)."""
        if res is NAMESPACES and name in PROTECTED_NAMESPACES:
            raise errors.ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        preconditions = options.get("preconditions") or {}
        propagation = options.get("propagationPolicy")
        if options.get("orphanDependents") is True:
            propagation = "Orphan"
        grace = options.get("gracePeriodSeconds")
        gone = False

        def mutate(obj: Obj) -> Obj | None:
            nonlocal gone
            meta = obj["metadata"]
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise errors.conflict(
                    res,
                    name,
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in"
                    f" object meta: {meta.get('uid')}",
                )
            want_rv = preconditions.get("resourceVersion")
            if want_rv and want_rv != meta.get("resourceVersion"):
                raise errors.conflict(
                    res,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {want_rv},"
                    f" ResourceVersion in object meta: {meta.get('resourceVersion')}",
                )
            new = copy.deepcopy(obj)
            new_meta = new["metadata"]
            finalizers = list(new_meta.get("finalizers") or [])
            if propagation == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            if propagation == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if finalizers:
                new_meta["finalizers"] = finalizers
            if res is PODS:
                seconds = self._pod_grace(obj, grace)
                if seconds > 0:
                    deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
                        seconds=seconds
                    )
                    old_grace = new_meta.get("deletionGracePeriodSeconds")
                    if old_grace is None or seconds < int(old_grace):
                        new_meta["deletionTimestamp"] = rfc3339(deadline)
                        new_meta["deletionGracePeriodSeconds"] = seconds
                    return new
                new_meta.setdefault("deletionTimestamp", rfc3339())
                new_meta["deletionGracePeriodSeconds"] = 0
            if finalizers:
                new_meta.setdefault("deletionTimestamp", rfc3339())
                new_meta.setdefault("deletionGracePeriodSeconds", 0)
                return new
            gone = True
            return None

        result = self.store.update(res, namespace, name, mutate, dry_run=dry_run)
        if gone and res is NAMESPACES and not dry_run:
            self._delete_namespace_content(name)
        return result, gone

    @staticmethod
    def _pod_grace(pod: Obj, requested: Any) -> int:
        # CheckGracefulDeleteStrategy for pods: unbound or terminal pods go at once.
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(int(requested), 0)
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def _delete_namespace_content(self, namespace: str) -> None:
        for res in RESOURCES:
            if not res.namespaced:
                continue
            objects, _ = self.store.list(res, namespace)
            for obj in objects:
                try:
                    self.store.update(res, namespace, obj["metadata"]["name"], lambda _o: None)
                except errors.ApiError:
                    continue

    def bind(self, namespace: str, name: str, binding: Obj) -> None:
        """pods/binding: assign a node once (409 when already assigned)."""
        target = (binding.get("target") or {}).get("name")
        if not target:
            raise errors.invalid(
                PODS, name, [("FieldValueRequired", "target.name", "Required value")]
            )

        def mutate(pod: Obj) -> Obj:
            spec = pod.setdefault("spec", {})
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                raise errors.conflict(
                    PODS, name, "pod is being deleted, cannot be assigned to a host"
                )
            if spec.get("nodeName"):
                raise errors.ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is'
                    f' already assigned to node "{spec["nodeName"]}"',
                    {"name": name, "kind": "pods/binding"},
                )
            spec["nodeName"] = target
            set_condition(pod, {"type": "PodScheduled", "status": "True", "lastProbeTime": None})
            return pod

        self.store.update(PODS, namespace, name, mutate)

    def evict(self, namespace: str, name: str, eviction: Obj, *, dry_run: bool) -> Obj:
        """pods/eviction: delete the pod unless its disruption budget forbids it."""
        if (eviction.get("metadata") or {}).get("name") != name:
            raise errors.bad_request("name in URL does not match name in Eviction object")
        options = dict(eviction.get("deleteOptions") or {})
        pod = self.store.get(PODS, namespace, name)
        status = pod.get("status") or {}
        terminal = status.get("phase") in ("Succeeded", "Failed", "Pending")
        if terminal or (pod.get("metadata") or {}).get("deletionTimestamp"):
            self.delete(PODS, namespace, name, options, dry_run=dry_run)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        pdbs = self._budgets(pod)
        if len(pdbs) > 1:
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "This pod has more than one PodDisruptionBudget, which the eviction"
                " subresource does not support.",
                "code": 500,
            }
        if pdbs:
            pdb = pdbs[0]
            pdb_status = pdb.get("status") or {}
            healthy_enough = (
                int(pdb_status.get("currentHealthy", 0)) >= int(pdb_status.get("desiredHealthy", 0))
                and int(pdb_status.get("desiredHealthy", 0)) > 0
            )
            if not (not pod_ready(pod) and healthy_enough):
                self._decrement(pdb, name, dry_run=dry_run)
        self.delete(PODS, namespace, name, options, dry_run=dry_run)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    def _budgets(self, pod: Obj) -> list[Obj]:
        namespace = pod["metadata"]["namespace"]
        found = []
        labels = pod["metadata"].get("labels") or {}
        for pdb in self.store.list(PDBS, namespace)[0]:
            try:
                selector = selector_from_object((pdb.get("spec") or {}).get("selector"))
            except SelectorError:
                continue
            if not selector.empty() and selector.matches(labels):
                found.append(pdb)
        return found

    def _decrement(self, pdb: Obj, pod_name: str, *, dry_run: bool) -> None:
        name = pdb["metadata"]["name"]

        def mutate(current: Obj) -> Obj:
            status = current.setdefault("status", {})
            generation = int(current["metadata"].get("generation", 1))
            if int(status.get("observedGeneration", 0)) < generation:
                raise errors.too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    10,
                    [
                        {
                            "reason": "DisruptionBudget",
                            "message": f"The disruption budget {name} is still being processed"
                            " by the server.",
                        }
                    ],
                )
            allowed = int(status.get("disruptionsAllowed", 0))
            if allowed < 0:
                raise errors.ApiError(
                    403,
                    "Forbidden",
                    f'poddisruptionbudgets.policy "{name}" is forbidden: pdb disruptions allowed'
                    " is negative",
                    {"name": name, "group": "policy", "kind": "poddisruptionbudgets"},
                )
            if allowed == 0:
                raise errors.too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    0,
                    [
                        {
                            "reason": "DisruptionBudget",
                            "message": f"The disruption budget {name} needs"
                            f" {status.get('desiredHealthy', 0)} healthy pods and has"
                            f" {status.get('currentHealthy', 0)} currently",
                        }
                    ],
                )
            status["disruptionsAllowed"] = allowed - 1
            if allowed - 1 == 0:
                cond = condition(current, "DisruptionAllowed") or {}
                set_condition(
                    current,
                    {
                        **cond,
                        "type": "DisruptionAllowed",
                        "status": "False",
                        "reason": "InsufficientPods",
                        "message": "",
                        "observedGeneration": generation,
                    },
                )
            status.setdefault("disruptedPods", {})[pod_name] = rfc3339()
            return current

        self.store.update(PDBS, pdb["metadata"]["namespace"], name, mutate, dry_run=dry_run)
