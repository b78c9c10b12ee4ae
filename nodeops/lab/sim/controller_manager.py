"""`python -m nodeops.lab.sim.controller_manager`: the controllers nodeops meets during drains.

Deployment, ReplicaSet, DaemonSet, PodDisruptionBudget, garbage collector and node lifecycle,
each a level-triggered pass over the whole state every `--sim-interval` seconds (default 0.3).
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from nodeops.lab.sim.healthz import serve_component_healthz, stop_event
from nodeops.lab.sim.kube_client import ApiStatusError, ChangeGate, Client
from nodeops.lab.sim.kube_controllers import (
    daemon_should_run,
    node_affinity_for,
    pdb_status,
    pod_from_template,
    scaled_value,
    template_hash,
    with_daemon_tolerations,
)
from nodeops.lab.sim.kube_flags import parse_flags
from nodeops.lab.sim.kube_objects import (
    condition,
    controller_ref,
    meta,
    node_ready_status,
    now,
    owner_reference,
    parse_time,
    pod_active,
    pod_ready,
    rfc3339,
)
from nodeops.lab.sim.kube_sched import tolerates
from nodeops.lab.sim.kube_selectors import SelectorError, selector_from_object
from nodeops.lab.sim.leaderelection import LeaderElector, config_from_flags

Obj = dict[str, Any]
_OWNER_KINDS = {
    "Deployment": "/apis/apps/v1/deployments",
    "ReplicaSet": "/apis/apps/v1/replicasets",
    "DaemonSet": "/apis/apps/v1/daemonsets",
    "StatefulSet": "/apis/apps/v1/statefulsets",
    "Node": "/api/v1/nodes",
}
_NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def _log(message: str) -> None:
    stamp = time.strftime("%m%d %H:%M:%S", time.gmtime())
    print(f"I{stamp}.000000 {threading.get_native_id():>7} controller] {message}", file=sys.stderr)


def _path(obj: Obj, plural: str) -> str:
    api = obj.get("apiVersion", "v1")
    base = f"/apis/{api}" if "/" in api else f"/api/{api}"
    ns = meta(obj).get("namespace")
    if ns:
        base += f"/namespaces/{ns}"
    return f"{base}/{plural}/{meta(obj)['name']}"


def _owned(objects: list[Obj], owner: Obj) -> list[Obj]:
    uid = meta(owner).get("uid")
    return [o for o in objects if (controller_ref(o) or {}).get("uid") == uid]


class Controllers:
    """All controllers sharing one snapshot of the cluster per pass."""

    def __init__(self, client: Client, *, grace: float) -> None:
        self.client = client
        self.grace = grace
        self.orphans: dict[str, float] = {}

    def _ignore_gone(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ApiStatusError as err:
            if err.code in (404, 409):
                return None
            raise

    def sync(self) -> None:
        """One pass of every controller."""
        c = self.client
        nodes = [{"apiVersion": "v1", "kind": "Node", **n} for n in c.items("/api/v1/nodes")]
        self.node_lifecycle(nodes)
        pods = [{"apiVersion": "v1", "kind": "Pod", **p} for p in c.items("/api/v1/pods")]
        deployments = [
            {"apiVersion": "apps/v1", "kind": "Deployment", **d}
            for d in c.items("/apis/apps/v1/deployments")
        ]
        replicasets = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", **r}
            for r in c.items("/apis/apps/v1/replicasets")
        ]
        daemonsets = [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", **d}
            for d in c.items("/apis/apps/v1/daemonsets")
        ]
        for deployment in deployments:
            self._ignore_gone(self.deployment, deployment, replicasets)
        for rs in replicasets:
            self._ignore_gone(self.replicaset, rs, pods)
        for ds in daemonsets:
            self._ignore_gone(self.daemonset, ds, nodes, pods)
        statefulsets = [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", **x}
            for x in c.items("/apis/apps/v1/statefulsets")
        ]
        for sts in statefulsets:
            self._ignore_gone(self.statefulset, sts, pods)
        pdbs = [
            {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", **p}
            for p in c.items("/apis/policy/v1/poddisruptionbudgets")
        ]
        for pdb in pdbs:
            self._ignore_gone(self.pdb, pdb, pods, replicasets, deployments + statefulsets)
        self.garbage_collect(
            pods + replicasets, nodes + deployments + replicasets + daemonsets + statefulsets
        )
        self.taint_eviction(nodes, pods)
        self.pod_gc(nodes, pods)

    # --- NoExecute taints and orphaned pods --------------------------------------------------

    def taint_eviction(self, nodes: list[Obj], pods: list[Obj]) -> None:
        """Delete pods that do not tolerate a node's NoExecute taints (or only for a while)."""
        by_name = {meta(n)["name"]: n for n in nodes}
        current = now()
        for pod in pods:
            node = by_name.get((pod.get("spec") or {}).get("nodeName", ""))
            if node is None or meta(pod).get("deletionTimestamp"):
                continue
            tolerations = (pod.get("spec") or {}).get("tolerations") or []
            for taint in (node.get("spec") or {}).get("taints") or []:
                if taint.get("effect") != "NoExecute":
                    continue
                matching = [t for t in tolerations if tolerates(t, taint)]
                if matching:
                    seconds = [t.get("tolerationSeconds") for t in matching]
                    if any(s is None for s in seconds):
                        continue
                    added = parse_time(taint.get("timeAdded")) or current
                    if (current - added).total_seconds() < min(
                        int(s) for s in seconds if s is not None
                    ):
                        continue
                _log(
                    f"taint eviction: {meta(pod)['namespace']}/{meta(pod)['name']} ({taint['key']})"
                )
                self._ignore_gone(self.client.delete, _path(pod, "pods"))
                break

    def pod_gc(self, nodes: list[Obj], pods: list[Obj]) -> None:
        """Force-delete pods bound to nodes that stayed gone for 10 s (PodGC's orphan rule)."""
        names = {meta(n)["name"] for n in nodes}
        seen_now = set()
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or node in names:
                continue
            key = f"{meta(pod)['namespace']}/{meta(pod)['name']}"
            seen_now.add(key)
            first = self.orphans.setdefault(key, time.monotonic())
            if time.monotonic() - first > 10:
                self._ignore_gone(self.client.delete, _path(pod, "pods"), {"gracePeriodSeconds": 0})
        self.orphans = {k: v for k, v in self.orphans.items() if k in seen_now}

    # --- node lifecycle ---------------------------------------------------------------------

    def node_lifecycle(self, nodes: list[Obj]) -> None:
        """Ready goes Unknown without heartbeats; taints follow conditions and cordons."""
        leases = {
            meta(lease)["name"]: parse_time((lease.get("spec") or {}).get("renewTime"))
            for lease in self.client.items(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
            )
        }
        current = now()
        for node in nodes:
            name = meta(node)["name"]
            ready = condition(node, "Ready") or {}
            beats = [
                parse_time(ready.get("lastHeartbeatTime")),
                leases.get(name),
                parse_time(meta(node).get("creationTimestamp")),
            ]
            last = max((b for b in beats if b is not None), default=current)
            status = node.setdefault("status", {})
            if (current - last).total_seconds() > self.grace and ready.get("status") != "Unknown":
                conditions = []
                for kind in _NODE_CONDITIONS:
                    old = condition(node, kind) or {"type": kind}
                    conditions.append(
                        {
                            **old,
                            "status": "Unknown",
                            "reason": "NodeStatusUnknown",
                            "message": "Kubelet stopped posting node status.",
                            "lastTransitionTime": rfc3339(current),
                            "lastHeartbeatTime": old.get("lastHeartbeatTime"),
                        }
                    )
                status["conditions"] = conditions
                self._ignore_gone(
                    self.client.patch,
                    f"/api/v1/nodes/{name}/status",
                    {"status": {"conditions": conditions}},
                )
                _log(f"node {name}: Ready Unknown (no heartbeat for {self.grace:.0f}s)")
            self._taints(node)
            if node_ready_status(node) != "True":
                self._mark_pods_not_ready(name)

    def _taints(self, node: Obj) -> None:
        spec = node.get("spec") or {}
        taints = [dict(t) for t in spec.get("taints") or []]
        managed = {
            "node.kubernetes.io/unreachable",
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unschedulable",
        }
        wanted: list[Obj] = []
        ready = node_ready_status(node)
        if ready == "Unknown" and condition(node, "Ready") is not None:
            wanted += [
                {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
            ]
        elif ready == "False":
            wanted += [
                {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
            ]
        if spec.get("unschedulable"):
            wanted.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
        kept = [t for t in taints if t.get("key") not in managed]
        existing = {(t.get("key"), t.get("effect")): t for t in taints if t.get("key") in managed}
        new = list(kept)
        for taint in wanted:
            old = existing.get((taint["key"], taint["effect"]))
            if old is not None:
                new.append(old)
            else:
                entry = dict(taint)
                if taint["effect"] == "NoExecute":
                    entry["timeAdded"] = rfc3339()
                new.append(entry)
        if [(t.get("key"), t.get("effect")) for t in new] != [
            (t.get("key"), t.get("effect")) for t in taints
        ]:
            # The whole list is replaced, so the patch carries the resourceVersion it was
            # computed from: a taint someone changed meanwhile (kubectl taint) gives a 409
            # and the next pass starts again from the node as it is, as upstream's
            # controllers do, instead of putting the old taints back.
            self._ignore_gone(
                self.client.patch,
                f"/api/v1/nodes/{meta(node)['name']}",
                {
                    "metadata": {"resourceVersion": meta(node).get("resourceVersion")},
                    "spec": {"taints": new or None},
                },
                "merge",
            )
            spec["taints"] = new

    def _mark_pods_not_ready(self, node_name: str) -> None:
        for pod in self.client.items("/api/v1/pods", fieldSelector=f"spec.nodeName={node_name}"):
            if not pod_ready(pod):
                continue
            self._ignore_gone(
                self.client.patch,
                f"/api/v1/namespaces/{meta(pod)['namespace']}/pods/{meta(pod)['name']}/status",
                {
                    "status": {
                        "conditions": [
                            {"type": "Ready", "status": "False", "lastTransitionTime": rfc3339()}
                        ]
                    }
                },
            )

    # --- workloads --------------------------------------------------------------------------

    def deployment(self, deployment: Obj, replicasets: list[Obj]) -> None:
        """Keep one ReplicaSet per template; scale old ones down once the new one is ready."""
        if meta(deployment).get("deletionTimestamp"):
            return
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        pod_hash = template_hash(template)
        owned = _owned(replicasets, deployment)
        new_rs = next(
            (
                rs
                for rs in owned
                if (meta(rs).get("labels") or {}).get("pod-template-hash") == pod_hash
            ),
            None,
        )
        desired = int(spec.get("replicas", 1))
        name = meta(deployment)["name"]
        ns = meta(deployment)["namespace"]
        if new_rs is None:
            revisions = [
                int((meta(rs).get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
                for rs in owned
            ]
            labels = {
                **((template.get("metadata") or {}).get("labels") or {}),
                "pod-template-hash": pod_hash,
            }
            selector = dict(spec.get("selector") or {})
            selector["matchLabels"] = {
                **(selector.get("matchLabels") or {}),
                "pod-template-hash": pod_hash,
            }
            rs_template = {
                "metadata": {**(template.get("metadata") or {}), "labels": labels},
                "spec": template.get("spec") or {},
            }
            new_rs = self.client.create(
                f"/apis/apps/v1/namespaces/{ns}/replicasets",
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": f"{name}-{pod_hash}",
                        "namespace": ns,
                        "labels": labels,
                        "annotations": {
                            "deployment.kubernetes.io/desired-replicas": str(desired),
                            "deployment.kubernetes.io/max-replicas": str(desired + 1),
                            "deployment.kubernetes.io/revision": str(max(revisions, default=0) + 1),
                        },
                        "ownerReferences": [owner_reference(deployment)],
                    },
                    "spec": {"replicas": desired, "selector": selector, "template": rs_template},
                },
            )
            new_rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", **new_rs}
            owned.append(new_rs)
        elif (new_rs.get("spec") or {}).get("replicas") != desired:
            self.client.patch(
                _path(new_rs, "replicasets"), {"spec": {"replicas": desired}}, "merge"
            )
            new_rs["spec"]["replicas"] = desired
        new_status = new_rs.get("status") or {}
        new_ready = int(new_status.get("readyReplicas", 0)) >= desired
        old = [rs for rs in owned if rs is not new_rs]
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        for rs in old:
            if (rs.get("spec") or {}).get("replicas", 0) and (new_ready or strategy == "Recreate"):
                self.client.patch(_path(rs, "replicasets"), {"spec": {"replicas": 0}}, "merge")
        totals = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0}
        for rs in owned:
            status = rs.get("status") or {}
            for key in totals:
                totals[key] += int(status.get(key, 0))
        updated = int(new_status.get("replicas", 0))
        available = totals["availableReplicas"]
        min_available = desired - _max_unavailable(spec, desired)
        now_text = rfc3339()
        conditions = [
            {
                "type": "Available",
                "status": "True" if available >= min_available else "False",
                "reason": "MinimumReplicasAvailable"
                if available >= min_available
                else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if available >= min_available
                else "Deployment does not have minimum availability.",
                "lastUpdateTime": now_text,
                "lastTransitionTime": now_text,
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable" if new_ready else "ReplicaSetUpdated",
                "message": f'ReplicaSet "{meta(new_rs)["name"]}" '
                + ("has successfully progressed." if new_ready else "is progressing."),
                "lastUpdateTime": now_text,
                "lastTransitionTime": now_text,
            },
        ]
        status = {
            "observedGeneration": meta(deployment).get("generation", 1),
            "replicas": totals["replicas"],
            "updatedReplicas": updated,
            "readyReplicas": totals["readyReplicas"],
            "availableReplicas": available,
            "unavailableReplicas": max(0, desired - available),
        }
        old_status = deployment.get("status") or {}
        old_conditions = {c.get("type"): c for c in old_status.get("conditions") or []}
        for cond in conditions:
            prev = old_conditions.get(cond["type"])
            if (
                prev
                and prev.get("status") == cond["status"]
                and prev.get("reason") == cond["reason"]
            ):
                cond["lastTransitionTime"] = prev.get("lastTransitionTime", now_text)
                cond["lastUpdateTime"] = prev.get("lastUpdateTime", now_text)
        status["conditions"] = conditions
        status = {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}
        if status != old_status:
            self.client.update(
                _path(deployment, "deployments") + "/status", {**deployment, "status": status}
            )

    def replicaset(self, rs: Obj, pods: list[Obj]) -> None:
        """Create or delete pods to match spec.replicas; report counts."""
        if meta(rs).get("deletionTimestamp"):
            return
        spec = rs.get("spec") or {}
        owned = _owned(pods, rs)
        active = [p for p in owned if pod_active(p)]
        desired = int(spec.get("replicas", 1))
        ns = meta(rs)["namespace"]
        if len(active) < desired:
            for _ in range(desired - len(active)):
                pod = pod_from_template(
                    spec.get("template") or {}, owner_reference(rs), f"{meta(rs)['name']}-", {}
                )
                created = self.client.create(f"/api/v1/namespaces/{ns}/pods", pod)
                active.append(created)
        elif len(active) > desired:
            # Unscheduled, then not ready, then newest go first (controller.ActivePods order).
            def rank(pod: Obj) -> tuple[int, int, str]:
                return (
                    1 if (pod.get("spec") or {}).get("nodeName") else 0,
                    1 if pod_ready(pod) else 0,
                    "".join(chr(255 - ord(ch)) for ch in meta(pod).get("creationTimestamp", "")),
                )

            for pod in sorted(active, key=rank)[: len(active) - desired]:
                self._ignore_gone(self.client.delete, _path(pod, "pods"))
                active.remove(pod)
        ready = sum(1 for p in active if pod_ready(p))
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(active),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": meta(rs).get("generation", 1),
        }
        status = {
            k: v for k, v in status.items() if v != 0 or k in ("replicas", "observedGeneration")
        }
        if status != (rs.get("status") or {}):
            self.client.update(_path(rs, "replicasets") + "/status", {**rs, "status": status})

    def statefulset(self, sts: Obj, pods: list[Obj]) -> None:
        """Pods NAME-0..N-1; OrderedReady: the next ordinal only once the lower ones are Ready."""
        if meta(sts).get("deletionTimestamp"):
            return
        spec = sts.get("spec") or {}
        name, ns = meta(sts)["name"], meta(sts)["namespace"]
        template = spec.get("template") or {}
        revision = f"{name}-{template_hash(template)}"
        desired = int(spec.get("replicas", 1))
        owned = {meta(p)["name"]: p for p in _owned(pods, sts) if pod_active(p)}
        parallel = spec.get("podManagementPolicy") == "Parallel"
        for ordinal in range(desired):
            pod_name = f"{name}-{ordinal}"
            if pod_name in owned:
                continue
            lower = [owned.get(f"{name}-{i}") for i in range(ordinal)]
            if not parallel and not all(p is not None and pod_ready(p) for p in lower):
                break
            pod = pod_from_template(
                template,
                owner_reference(sts),
                "",
                {
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": str(ordinal),
                },
            )
            pod["metadata"].pop("generateName", None)
            pod["metadata"]["name"] = pod_name
            pod["spec"]["hostname"] = pod_name
            if spec.get("serviceName"):
                pod["spec"]["subdomain"] = spec["serviceName"]
            created = self._ignore_gone(self.client.create, f"/api/v1/namespaces/{ns}/pods", pod)
            if created is not None:
                owned[pod_name] = created
            if not parallel:
                break
        for pod_name, pod in sorted(owned.items(), key=lambda kv: -_ordinal(kv[0])):
            if _ordinal(pod_name) >= desired:
                self._ignore_gone(self.client.delete, _path(pod, "pods"))
                del owned[pod_name]
                if not parallel:
                    break
        ready = sum(1 for p in owned.values() if pod_ready(p))
        current = sum(
            1
            for p in owned.values()
            if (meta(p).get("labels") or {}).get("controller-revision-hash") == revision
        )
        status = {
            "observedGeneration": meta(sts).get("generation", 1),
            "replicas": len(owned),
            "readyReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": current,
            "availableReplicas": ready,
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        status = {
            k: v for k, v in status.items() if v != 0 or k in ("replicas", "availableReplicas")
        }
        if status != (sts.get("status") or {}):
            self.client.update(_path(sts, "statefulsets") + "/status", {**sts, "status": status})

    def daemonset(self, ds: Obj, nodes: list[Obj], pods: list[Obj]) -> None:
        """One pod per eligible node, pinned there by node affinity (the scheduler binds it)."""
        if meta(ds).get("deletionTimestamp"):
            return
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        revision = template_hash(template)
        owned = [p for p in _owned(pods, ds) if pod_active(p)]
        ns = meta(ds)["namespace"]
        by_node: dict[str, list[Obj]] = {}
        for pod in owned:
            target = _daemon_target(pod)
            by_node.setdefault(target, []).append(pod)
        desired = current = ready = updated = misscheduled = 0
        for node in nodes:
            name = meta(node)["name"]
            mine = by_node.pop(name, [])
            if daemon_should_run(ds, node):
                desired += 1
                if not mine:
                    pod_spec = node_affinity_for(
                        name, with_daemon_tolerations(template.get("spec") or {})
                    )
                    pod = pod_from_template(
                        {**template, "spec": pod_spec},
                        owner_reference(ds),
                        f"{meta(ds)['name']}-",
                        {
                            "controller-revision-hash": revision,
                            "pod-template-generation": str(meta(ds).get("generation", 1)),
                        },
                    )
                    self.client.create(f"/api/v1/namespaces/{ns}/pods", pod)
                    continue
                current += 1
                ready += sum(1 for p in mine[:1] if pod_ready(p))
                if (meta(mine[0]).get("labels") or {}).get("controller-revision-hash") == revision:
                    updated += 1
                elif all(pod_ready(p) for group in by_node.values() for p in group):
                    self._ignore_gone(self.client.delete, _path(mine[0], "pods"))
                for extra in mine[1:]:
                    self._ignore_gone(self.client.delete, _path(extra, "pods"))
            elif mine:
                misscheduled += 1
                for pod in mine:
                    self._ignore_gone(self.client.delete, _path(pod, "pods"))
        for stray in by_node.values():
            for pod in stray:
                if _daemon_target(pod):
                    self._ignore_gone(self.client.delete, _path(pod, "pods"))
        status = {
            "currentNumberScheduled": current,
            "desiredNumberScheduled": desired,
            "numberMisscheduled": misscheduled,
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": max(0, desired - ready),
            "updatedNumberScheduled": updated,
            "observedGeneration": meta(ds).get("generation", 1),
        }
        status = {
            k: v
            for k, v in status.items()
            if v != 0
            or k
            in (
                "currentNumberScheduled",
                "desiredNumberScheduled",
                "numberMisscheduled",
                "numberReady",
            )
        }
        if status != (ds.get("status") or {}):
            self.client.update(_path(ds, "daemonsets") + "/status", {**ds, "status": status})

    def pdb(
        self, pdb: Obj, pods: list[Obj], replicasets: list[Obj], deployments: list[Obj]
    ) -> None:
        """currentHealthy, desiredHealthy, disruptionsAllowed from the pods the PDB selects."""
        ns = meta(pdb)["namespace"]
        try:
            selector = selector_from_object((pdb.get("spec") or {}).get("selector"))
        except SelectorError:
            return
        selected = [
            p
            for p in pods
            if meta(p).get("namespace") == ns
            and not selector.empty()
            and selector.matches(meta(p).get("labels"))
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        expected = _controller_scale(selected, replicasets, deployments)
        old = dict(pdb.get("status") or {})
        stamps = {
            name: (parse_time(ts) or now()).timestamp()
            for name, ts in (old.get("disruptedPods") or {}).items()
        }
        live = {meta(p)["name"] for p in selected if not meta(p).get("deletionTimestamp")}
        current_time = time.time()
        stamps = {n: t for n, t in stamps.items() if n in live and current_time - t < 120}
        counts = pdb_status(pdb, selected, expected, current_time, stamps)
        allowed = counts["disruptionsAllowed"]
        cond_old = condition(pdb, "DisruptionAllowed") or {}
        status_text = "True" if allowed > 0 else "False"
        cond = {
            "type": "DisruptionAllowed",
            "status": status_text,
            "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
            "message": "",
            "observedGeneration": meta(pdb).get("generation", 1),
            "lastTransitionTime": cond_old.get("lastTransitionTime", rfc3339())
            if cond_old.get("status") == status_text
            else rfc3339(),
        }
        status: Obj = {
            **counts,
            "observedGeneration": meta(pdb).get("generation", 1),
            "conditions": [cond],
        }
        kept = {n: ts for n, ts in (old.get("disruptedPods") or {}).items() if n in stamps}
        if kept:
            status["disruptedPods"] = kept
        if status != old:
            self.client.update(
                _path(pdb, "poddisruptionbudgets") + "/status", {**pdb, "status": status}
            )

    # --- garbage collector ------------------------------------------------------------------

    def garbage_collect(self, dependents: list[Obj], owners: list[Obj]) -> None:
        """Delete dependents whose owners are all gone; honour orphan/foreground finalizers."""
        alive = {meta(o).get("uid") for o in owners}
        for obj in dependents:
            refs = meta(obj).get("ownerReferences") or []
            known = [r for r in refs if r.get("kind") in _OWNER_KINDS]
            if known and len(known) == len(refs) and not any(r.get("uid") in alive for r in refs):
                plural = "pods" if obj.get("kind") == "Pod" else "replicasets"
                self._ignore_gone(
                    self.client.delete, _path(obj, plural), {"propagationPolicy": "Background"}
                )
        for owner in owners:
            finalizers = meta(owner).get("finalizers") or []
            if not meta(owner).get("deletionTimestamp") or not finalizers:
                continue
            uid = meta(owner).get("uid")
            children = [
                o
                for o in dependents
                if any(r.get("uid") == uid for r in meta(o).get("ownerReferences") or [])
            ]
            plural = {
                "Deployment": "deployments",
                "ReplicaSet": "replicasets",
                "DaemonSet": "daemonsets",
            }.get(str(owner.get("kind")), "")
            if not plural:
                continue
            if "orphan" in finalizers:
                for child in children:
                    refs = [
                        r for r in meta(child).get("ownerReferences") or [] if r.get("uid") != uid
                    ]
                    child_plural = "pods" if child.get("kind") == "Pod" else "replicasets"
                    self._ignore_gone(
                        self.client.patch,
                        _path(child, child_plural),
                        {"metadata": {"ownerReferences": refs or None}},
                        "merge",
                    )
                rest = [f for f in finalizers if f != "orphan"]
            elif "foregroundDeletion" in finalizers:
                for child in children:
                    child_plural = "pods" if child.get("kind") == "Pod" else "replicasets"
                    self._ignore_gone(
                        self.client.delete,
                        _path(child, child_plural),
                        {"propagationPolicy": "Foreground"},
                    )
                if children:
                    continue
                rest = [f for f in finalizers if f != "foregroundDeletion"]
            else:
                continue
            self._ignore_gone(
                self.client.patch,
                _path(owner, plural),
                {"metadata": {"finalizers": rest or None}},
                "merge",
            )


def _ordinal(pod_name: str) -> int:
    tail = pod_name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _daemon_target(pod: Obj) -> str:
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    terms = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    for term in terms:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return str(field["values"][0])
    return ""


def _max_unavailable(spec: Obj, desired: int) -> int:
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    return scaled_value(rolling.get("maxUnavailable", "25%"), desired, round_up=False)


def _controller_scale(pods: list[Obj], replicasets: list[Obj], deployments: list[Obj]) -> int:
    """Summed spec.replicas of the controllers of `pods` (ReplicaSets via Deployments, and the
    scalable controllers in `deployments`, which also holds StatefulSets)."""
    seen: dict[str, int] = {}
    rs_by_uid = {meta(r).get("uid"): r for r in replicasets}
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None:
            continue
        rs = rs_by_uid.get(ref.get("uid"))
        if ref.get("kind") == "ReplicaSet" and rs is not None:
            owner = controller_ref(rs)
            deployment = next(
                (d for d in deployments if owner and meta(d).get("uid") == owner.get("uid")), None
            )
            target = deployment or rs
            seen[str(meta(target).get("uid"))] = int((target.get("spec") or {}).get("replicas", 0))
        elif scaled := next((d for d in deployments if meta(d).get("uid") == ref.get("uid")), None):
            seen[str(ref.get("uid"))] = int((scaled.get("spec") or {}).get("replicas", 0))
        else:
            seen.setdefault(str(ref.get("uid")), 1)
            seen[str(ref.get("uid"))] = max(
                seen[str(ref.get("uid"))],
                sum(1 for p in pods if (controller_ref(p) or {}).get("uid") == ref.get("uid")),
            )
    return sum(seen.values())


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT."""
    flags = parse_flags(sys.argv[1:] if argv is None else argv)
    kubeconfig = flags.get("kubeconfig")
    if not kubeconfig:
        print("error: --kubeconfig is required", file=sys.stderr)
        return 1
    grace = _seconds(flags.get("node-monitor-grace-period", "40s"))
    interval = float(flags.get("sim-interval", "0.3"))
    stop = stop_event()
    if not serve_component_healthz(flags, 10257, "kube-controller-manager"):
        return 1
    client = Client.from_kubeconfig(kubeconfig)
    controllers = Controllers(client, grace=grace)
    # Node lifecycle is time-driven: a full pass at least every second even when idle.
    gate = ChangeGate(client, max_idle=1.0)
    # With several control planes only the holder of the kube-system/kube-controller-manager
    # Lease runs the controllers, as upstream.
    elector = LeaderElector(client, config_from_flags(flags, "kube-controller-manager"), log=_log)
    _log(f"attempting to acquire leader lease as {elector.identity}")
    led = False
    while not stop.is_set():
        try:
            leading = elector.leading()
            if leading and not led:
                _log(
                    "controllers started: deployment, replicaset, daemonset, disruption,"
                    " garbagecollector, nodelifecycle"
                )
            led = leading
            if leading and gate.changed():
                controllers.sync()
        except (OSError, ApiStatusError, ValueError, KeyError) as exc:
            _log(f"sync failed: {exc}")
        stop.wait(interval)
    elector.release()
    return 0


def _seconds(text: str) -> float:
    """A Go duration like 40s, 1m30s or 500ms in seconds."""
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)(ms|s|m|h)", text):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total or float(text)


if __name__ == "__main__":
    sys.exit(main())
