"""The kubelet's loops: static pods from files, pods from the API, node status and lease."""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import threading
import time
from pathlib import Path
from typing import Any

from nodeops.lab.sim import faultfiles
from nodeops.lab.sim.kubelet import healthz, klog, nodestatus, podstatus, probes, staticpods
from nodeops.lab.sim.kubelet.apiclient import STRATEGIC_MERGE, ApiError, Client
from nodeops.lab.sim.kubelet.config import Settings
from nodeops.lab.sim.kubelet.podstatus import BACKOFF_MAX, Backoff, PodState, now_time
from nodeops.lab.sim.kubelet.runtime import Container, Runtime

#: A file that makes the kubelet post Ready=False (a lab fault switch; /run is per node).
FAULT_NOT_READY = faultfiles.NOT_READY
#: Seconds a started kubelet posts Ready=False before Ready=True (a lab knob for benchmarks:
#: upstream's first runtime status check and PLEG relist take a few seconds after a restart).
#: Absent or unreadable: 0. Per node, since /var/lib is each node's own.
READY_DELAY_FILE = Path("/var/lib/nodeops-sim/kubelet-ready-delay")
READY_DELAY_MAX = 300.0
#: How often the sync loop looks at files and processes (upstream: inotify plus fileCheckFrequency).
SYNC_PERIOD = 0.5
DEFAULT_GRACE = 30.0


def now_micro() -> str:
    """metav1.MicroTime now."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ready_delay_seconds(path: Path = READY_DELAY_FILE) -> float:
    """The start-up delay before Ready=True from the knob file: 0 when absent or not a number."""
    try:
        seconds = float(path.read_text().strip())
    except (OSError, ValueError):
        return 0.0
    return min(max(seconds, 0.0), READY_DELAY_MAX) if seconds == seconds else 0.0


class Kubelet:
    """One node's kubelet."""

    def __init__(
        self,
        settings: Settings,
        facts: nodestatus.NodeFacts,
        client: Client | None,
        runtime: Runtime,
        *,
        node_labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
    ) -> None:
        self.s = settings
        self.facts = facts
        self.client = client
        self.runtime = runtime
        self.node_labels = node_labels or {}
        self.taints = taints or []
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.registered = threading.Event()
        # Set once the first pod list arrived: until then, containers of API pods found from an
        # earlier kubelet run are kept (upstream waits for all config sources to be ready).
        self.api_synced = threading.Event()
        self.node_uid = ""
        self.api_pods: dict[str, dict[str, Any]] = {}  # uid -> pod (not mirror pods)
        self.mirrors: dict[str, dict[str, Any]] = {}  # namespace/name -> mirror pod
        self.static: dict[str, staticpods.StaticPod] = {}  # uid (hash) -> static pod
        self.seen_files: dict[str, tuple[str, datetime.datetime]] = {}
        self.parse_cache: staticpods.ParseCache = {}
        self.skipped_logged: dict[str, str] = {}
        self.pod_state: dict[str, PodState] = {}
        self.terminating: dict[str, threading.Thread] = {}  # pod key -> stopping thread
        self.deleting: set[str] = set()
        self.transitions: dict[str, str] = {}
        self.condition_status: dict[str, str] = {}
        self.prober = probes.Prober(self.wake.set)
        self.pod_cidr = ""
        self.fault_not_ready = FAULT_NOT_READY
        self.path_missing_logged = False
        self.started = time.monotonic()
        self.ready_delay = ready_delay_seconds()

    # ---- entry

    def run(self) -> None:
        """Run until stop_event is set (SIGTERM); containers keep running, as with containerd."""
        klog.info("kubelet.go:405", "Kubelet version", kubeletVersion=self.facts.kubelet_version)
        if self.s.static_pod_path:
            klog.info("kubelet.go:393", "Adding static pod path", path=self.s.static_pod_path)
        healthz.serve(self.s.healthz_address, self.s.healthz_port)
        threading.Thread(target=self.prober.run, args=(self.stop_event,), daemon=True).start()
        if self.client is not None:
            for target in (self._node_loop, self._pod_watch_loop):
                threading.Thread(target=target, daemon=True).start()
        else:
            klog.info("server.go:659", "Standalone mode, no API client")
        while not self.stop_event.is_set():
            try:
                self.sync()
            except Exception as e:  # a bad pass must not kill the node agent
                klog.error("kubelet.go:2466", "Sync loop pass failed", err=repr(e))
            self.wake.wait(SYNC_PERIOD)
            self.wake.clear()

    # ---- node registration, status, lease

    def _node_loop(self) -> None:
        assert self.client is not None
        step = 0.1
        while not self.stop_event.is_set() and not self.registered.is_set():
            klog.info(
                "kubelet_node_status.go:73", "Attempting to register node", node=self.s.node_name
            )
            try:
                self._register()
                klog.info(
                    "kubelet_node_status.go:76",
                    "Successfully registered node",
                    node=self.s.node_name,
                )
                self.registered.set()
                self.wake.set()
            except ApiError as e:
                klog.error(
                    "kubelet_node_status.go:95",
                    "Unable to register node with API server",
                    err=e,
                    node=self.s.node_name,
                )
                self.stop_event.wait(step)
                step = min(step * 2, 7.0)
        last_lease = 0.0
        last_status = 0.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            # The fault switch takes effect at once, not at the next status update.
            flipped = self.condition_status.get("Ready") != ("True" if self._ready() else "False")
            if flipped or now - last_status >= self.s.status_update_seconds:
                try:
                    self._post_status()
                    last_status = now
                except ApiError as e:
                    klog.error(
                        "kubelet_node_status.go:535",
                        "Error updating node status, will retry",
                        err=e,
                    )
            if now - last_lease >= self.s.lease_seconds * 0.25:
                try:
                    self._renew_lease()
                    last_lease = now
                except ApiError as e:
                    klog.error(
                        "controller.go:146",
                        "Failed to ensure lease exists, will retry",
                        err=e,
                        interval="200ms",
                    )
            self.stop_event.wait(0.5)

    def _register(self) -> None:
        assert self.client is not None
        node = nodestatus.new_node(self.facts, self.node_labels, self.taints)
        try:
            created = self.client.request("POST", "/api/v1/nodes", node)
        except ApiError as e:
            if e.status != 409:
                raise
            created = self.client.get(f"/api/v1/nodes/{self.s.node_name}")
        self.node_uid = str((created.get("metadata") or {}).get("uid") or "")
        self._post_status()

    def _ready(self) -> bool:
        """Ready unless the fault switch is on or the start-up delay has not passed."""
        if self.fault_not_ready.exists():
            return False
        return time.monotonic() - self.started >= self.ready_delay

    def _post_status(self) -> None:
        assert self.client is not None
        now = now_time()
        ready = self._ready()
        wanted = {"MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
        wanted["Ready"] = "True" if ready else "False"
        for kind, value in wanted.items():
            if self.condition_status.get(kind) != value:
                self.condition_status[kind] = value
                self.transitions[kind] = now
        body = {
            "status": nodestatus.status(
                self.facts, ready=ready, now=now, transitions=self.transitions
            )
        }
        node = self.client.request(
            "PATCH", f"/api/v1/nodes/{self.s.node_name}/status", body, content_type=STRATEGIC_MERGE
        )
        # The node IPAM controller (--allocate-node-cidrs) gives the node its pod range.
        cidr = ((node or {}).get("spec") or {}).get("podCIDR") if isinstance(node, dict) else None
        if cidr:
            self.pod_cidr = str(cidr)

    def _renew_lease(self) -> None:
        assert self.client is not None
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.s.node_name}"
        want = nodestatus.lease(self.s.node_name, self.s.lease_seconds, now_micro())
        try:
            current = self.client.get(path)
        except ApiError as e:
            if e.status != 404:
                raise
            if self.node_uid:
                want["metadata"]["ownerReferences"] = [
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "name": self.s.node_name,
                        "uid": self.node_uid,
                    }
                ]
            self.client.request(
                "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", want
            )
            return
        current["spec"] = {**(current.get("spec") or {}), **want["spec"]}
        self.client.request("PUT", path, current)

    # ---- pods from the API

    def _pod_watch_loop(self) -> None:
        assert self.client is not None
        self.registered.wait()
        selector = f"spec.nodeName={self.s.node_name}"
        while not self.stop_event.is_set():
            try:
                listing = self.client.get("/api/v1/pods", fieldSelector=selector)
                self._replace_pods(listing.get("items") or [])
                rv = str((listing.get("metadata") or {}).get("resourceVersion") or "")
                # Short watches: a relist every 30 s heals a watch that stalled silently
                # (the API server losing etcd); upstream's reflector uses 5-10 min.
                query = {
                    "fieldSelector": selector,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": "30",
                }
                if rv:
                    query["resourceVersion"] = rv
                for event in self.client.watch("/api/v1/pods", query, timeout=60):
                    if self.stop_event.is_set():
                        return
                    self._pod_event(event)
            except ApiError as e:
                klog.error("reflector.go:147", "Failed to watch *v1.Pod", err=e)
            # Relisting after a second doubles as polling where watches do not work.
            self.stop_event.wait(1.0)

    def _mine(self, pod: dict[str, Any]) -> bool:
        return (pod.get("spec") or {}).get("nodeName") == self.s.node_name

    def _replace_pods(self, items: list[dict[str, Any]]) -> None:
        pods: dict[str, dict[str, Any]] = {}
        mirrors: dict[str, dict[str, Any]] = {}
        for pod in items:
            if not self._mine(pod):
                continue
            meta = pod["metadata"]
            if staticpods.is_mirror_pod(pod):
                mirrors[f"{meta['namespace']}/{meta['name']}"] = pod
            else:
                pods[str(meta["uid"])] = pod
        with self.lock:
            added = [p for u, p in pods.items() if u not in self.api_pods]
            self.api_pods = pods
            self.mirrors = mirrors
        self.api_synced.set()
        if added:
            klog.info(
                "kubelet.go:2339", "SyncLoop ADD", source="api", pods=[_key(p) for p in added]
            )
        self.wake.set()

    def _pod_event(self, event: dict[str, Any]) -> None:
        kind, pod = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            raise ApiError(
                int(pod.get("code") or 0),
                str(pod.get("reason") or ""),
                str(pod.get("message") or "watch error"),
            )
        if kind not in ("ADDED", "MODIFIED", "DELETED") or not self._mine(pod):
            return
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        with self.lock:
            if staticpods.is_mirror_pod(pod):
                if kind == "DELETED":
                    self.mirrors.pop(key, None)
                else:
                    self.mirrors[key] = pod
            elif kind == "DELETED":
                if self.api_pods.pop(str(meta["uid"]), None) is not None:
                    klog.info("kubelet.go:2361", "SyncLoop REMOVE", source="api", pods=[key])
            else:
                if str(meta["uid"]) not in self.api_pods:
                    klog.info("kubelet.go:2339", "SyncLoop ADD", source="api", pods=[key])
                self.api_pods[str(meta["uid"])] = pod
        self.wake.set()

    # ---- the sync pass

    def sync(self) -> None:
        """One pass: read static pods, start/stop/restart containers, report to the API."""
        self._scan_static()
        with self.lock:
            api_pods = dict(self.api_pods)
            mirrors = dict(self.mirrors)
        wanted: dict[str, dict[str, Any]] = {}
        for uid, sp in self.static.items():
            wanted[uid] = sp.pod
        deleting: list[dict[str, Any]] = []
        for uid, pod in api_pods.items():
            phase = (pod.get("status") or {}).get("phase")
            if pod["metadata"].get("deletionTimestamp"):
                deleting.append(pod)
            elif phase not in ("Succeeded", "Failed"):
                wanted[uid] = pod
        containers = self.runtime.list()
        # Containers of pods no longer wanted (removed, changed static pods, deleted pods) go
        # first, so a changed static pod never runs twice (etcd's ports, its data dir).
        api_known = self.client is None or self.api_synced.is_set()
        for c in containers:
            if c.pod_uid not in wanted and (c.source == "file" or api_known):
                grace = self._grace_for(c, api_pods)
                self._stop_async(c, grace)
        for pod in deleting:
            self._finish_deletion(
                pod, [c for c in containers if c.pod_uid == pod["metadata"]["uid"]]
            )
        running = {(c.pod_uid, c.name): c for c in containers}
        for uid, pod in wanted.items():
            key = _key(pod)
            if key in self.terminating and self.terminating[key].is_alive():
                continue
            self._sync_pod(uid, pod, running)
        for uid in list(self.pod_state):
            if uid not in wanted:
                del self.pod_state[uid]
        self.prober.forget({k for k in running if k[0] in wanted})
        if self.client is not None and self.registered.is_set():
            self._sync_mirrors(mirrors)
            self._report(wanted, running)

    def _grace_for(self, c: Container, api_pods: dict[str, dict[str, Any]]) -> float:
        pod = api_pods.get(c.pod_uid)
        if pod is not None:
            meta = pod["metadata"]
            if meta.get("deletionGracePeriodSeconds") is not None:
                return float(meta["deletionGracePeriodSeconds"])
            return float(
                (pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE)
            )
        return DEFAULT_GRACE

    def _stop_async(self, c: Container, grace: float) -> threading.Thread:
        key = c.pod_key
        current = self.terminating.get(key)
        if current is not None and current.is_alive():
            return current

        def stop() -> None:
            for other in self.runtime.list():
                if other.pod_uid == c.pod_uid:
                    klog.info(
                        "kuberuntime_container.go:745", "Killing container with a grace period",
                        pod=key, podUID=c.pod_uid, containerName=other.name,
                        containerID=f"containerd://{other.container_id}", gracePeriod=int(grace),
                    )  # fmt: skip
                    self.runtime.stop(other, grace)
            namespace, _, name = key.partition("/")
            self.runtime.remove_pod(c.pod_uid, namespace, name)
            self.wake.set()

        t = threading.Thread(target=stop, daemon=True)
        self.terminating[key] = t
        t.start()
        return t

    def _scan_static(self) -> None:
        if not self.s.static_pod_path:
            return
        directory = Path(self.s.static_pod_path)
        if not directory.is_dir():
            if not self.path_missing_logged:
                klog.error(
                    "file_linux.go:61",
                    "Unable to read config path",
                    err="path does not exist, ignoring",
                    path=str(directory),
                )
                self.path_missing_logged = True
            self.static = {}
            return
        self.path_missing_logged = False
        result = staticpods.scan(directory, self.s.node_name, self.seen_files, self.parse_cache)
        # Each problem is logged once, not on every pass (upstream re-reads on file events).
        logged, self.skipped_logged = self.skipped_logged, dict(result.skipped)
        for path, why in result.skipped:
            if logged.get(path) != why:
                klog.error("file.go:187", "Could not process manifest file", err=why, path=path)
        for dup in result.duplicates:
            if logged.get(dup.path) != dup.hash:
                klog.info(
                    "config.go:398", "Pod failed validation due to duplicate pod name, ignoring",
                    pod=dup.key, source="file",
                )  # fmt: skip
            self.skipped_logged[dup.path] = dup.hash
        new = {sp.hash: sp for sp in result.pods}
        added = [sp.key for u, sp in new.items() if u not in self.static]
        removed = [sp.key for u, sp in self.static.items() if u not in new]
        if removed:
            klog.info("kubelet.go:2361", "SyncLoop REMOVE", source="file", pods=removed)
        if added:
            klog.info("kubelet.go:2339", "SyncLoop ADD", source="file", pods=added)
        self.static = new

    def _sync_pod(
        self, uid: str, pod: dict[str, Any], running: dict[tuple[str, str], Container]
    ) -> None:
        fresh = uid not in self.pod_state
        state = self.pod_state.setdefault(uid, PodState())
        static = uid in self.static
        for (c_uid, c_name), found in running.items():
            # Containers from an earlier kubelet run keep their address, start and restarts.
            if fresh and c_uid == uid:
                state.ip = state.ip or found.pod_ip
                state.start_time = min(state.start_time or found.started_at, found.started_at)
                state.restarts.setdefault(c_name, found.restart_count)
        if not state.start_time:
            state.start_time = now_time()
            self.runtime.prepare_pod(pod)
        if not state.ip:
            state.ip = self._pod_ip(pod)
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        for container in (pod.get("spec") or {}).get("containers") or []:
            name = str(container["name"])
            if name in state.terminated:
                continue
            c = running.get((uid, name))
            if c is not None and self.runtime.running(c):
                self.prober.watch((uid, name), container, state.ip, time.monotonic())
                continue
            back = state.backoff.setdefault(name, Backoff())
            if c is not None:
                # It exited: count a restart, wait out the backoff, as the kubelet does.
                code = self.runtime.exit_code(c)
                back.exit_code = 0 if code is None else code
                back.finished_at = now_time()
                back.started_at = c.started_at
                self.runtime.forget(c)
                running.pop((uid, name), None)
                if policy == "Never" or (policy == "OnFailure" and back.exit_code == 0):
                    state.terminated.add(name)
                    continue
                state.restarts[name] = state.restarts.get(name, 0) + 1
                back.until = time.monotonic() + back.step
                meta = pod["metadata"]
                klog.error(
                    "pod_workers.go:1298",
                    "Error syncing pod, skipping",
                    err=f'failed to "StartContainer" for "{name}" with CrashLoopBackOff:'
                    f' "back-off {back.step:g}s restarting failed container={name}'
                    f' pod={meta["name"]}_{meta["namespace"]}({uid})"',
                    pod=_key(pod),
                    podUID=uid,
                )
                back.step = min(back.step * 2, BACKOFF_MAX)
            if time.monotonic() < back.until:
                continue
            try:
                started = self.runtime.start(
                    pod,
                    container,
                    spec_hash=uid,
                    restart_count=state.restarts.get(name, 0),
                    source="file" if static else "api",
                    pod_ip=state.ip,
                )
            except OSError as e:
                klog.error(
                    "kuberuntime_manager.go:1256",
                    "Error syncing pod, skipping",
                    err=e,
                    pod=_key(pod),
                    podUID=uid,
                )
                continue
            running[(uid, name)] = started
            self.prober.reset((uid, name))
            self.prober.watch((uid, name), container, state.ip, time.monotonic())
            klog.info(
                "kubelet.go:1980",
                "Started container",
                pod=_key(pod),
                containerName=name,
                image=started.image,
            )

    def _pod_ip(self, pod: dict[str, Any]) -> str:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return self.s.node_ip
        # No CNI here: addresses come from the node's podCIDR (the bridge plugin keeps .1 for
        # its gateway), else from a /24 derived from the node's address.
        used = {st.ip for st in self.pod_state.values()}
        try:
            network = ipaddress.IPv4Network(self.pod_cidr)
        except ValueError:
            last = int(ipaddress.IPv4Address(self.s.node_ip)) & 0xFF
            network = ipaddress.IPv4Network(f"10.244.{last}.0/24")
        hosts = itertools.islice(network.hosts(), 1, 4096)
        for host in hosts:
            if str(host) not in used:
                return str(host)
        return str(network.broadcast_address - 1)

    def _finish_deletion(self, pod: dict[str, Any], containers: list[Container]) -> None:
        uid = str(pod["metadata"]["uid"])
        key = _key(pod)
        if uid in self.deleting:
            return
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        stopper = None
        if containers:
            stopper = self._stop_async(containers[0], grace)
        client = self.client
        if client is None:
            return
        self.deleting.add(uid)

        def finish() -> None:
            if stopper is not None:
                stopper.join()
            self.runtime.remove_pod(uid, pod["metadata"]["namespace"], pod["metadata"]["name"])
            path = (
                f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}"
            )
            body = {
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": uid},
            }
            try:
                client.request("DELETE", path, body, query={"gracePeriodSeconds": "0"})
                klog.info(
                    "status_manager.go:877", "Pod fully terminated and removed from etcd", pod=key
                )
            except ApiError as e:
                if e.status != 404:
                    klog.error(
                        "status_manager.go:870", "Failed to delete status for pod", err=e, pod=key
                    )
            finally:
                self.deleting.discard(uid)
                with self.lock:
                    self.api_pods.pop(uid, None)

        threading.Thread(target=finish, daemon=True).start()

    # ---- mirror pods and status

    def _sync_mirrors(self, mirrors: dict[str, dict[str, Any]]) -> None:
        assert self.client is not None
        by_key = {sp.key: sp for sp in self.static.values()}
        for key, mirror in list(mirrors.items()):
            sp = by_key.get(key)
            meta = mirror["metadata"]
            outdated = sp is None or meta["annotations"].get(staticpods.CONFIG_MIRROR) != sp.hash
            if outdated or meta.get("deletionTimestamp"):
                if sp is None:
                    klog.info("kubelet.go:1883", "Deleting orphaned mirror pod", pod=key)
                else:
                    klog.info(
                        "kubelet.go:1887", "Deleting mirror pod because it is outdated", pod=key
                    )
                self._delete_mirror(mirror)
                mirrors.pop(key)
                with self.lock:
                    self.mirrors.pop(key, None)
        if not self.node_uid:
            return
        for key, sp in by_key.items():
            if key in mirrors:
                continue
            klog.info("kubelet.go:1908", "Creating a mirror pod for static pod", pod=key)
            try:
                created = self.client.request(
                    "POST",
                    f"/api/v1/namespaces/{sp.namespace}/pods",
                    staticpods.mirror_pod(sp, self.node_uid),
                )
            except ApiError as e:
                if e.status != 409:
                    klog.error(
                        "kubelet.go:1912", "Failed creating a mirror pod for", err=e, pod=key
                    )
                    continue
                # One exists that this kubelet has not seen: look at it (its hash may be old).
                try:
                    created = self.client.get(f"/api/v1/namespaces/{sp.namespace}/pods/{sp.name}")
                except ApiError:
                    continue
            with self.lock:
                self.mirrors[key] = created

    def _delete_mirror(self, mirror: dict[str, Any]) -> None:
        assert self.client is not None
        meta = mirror["metadata"]
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta.get("uid")},
        }
        try:
            self.client.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                body,
                query={"gracePeriodSeconds": "0"},
            )
        except ApiError as e:
            if e.status != 404:
                klog.error(
                    "mirror_client.go:130",
                    "Failed deleting a mirror pod",
                    err=e,
                    pod=f"{meta['namespace']}/{meta['name']}",
                )

    def _report(
        self, wanted: dict[str, dict[str, Any]], running: dict[tuple[str, str], Container]
    ) -> None:
        assert self.client is not None
        with self.lock:
            mirrors = dict(self.mirrors)
        for uid, pod in wanted.items():
            target = pod
            if uid in self.static:
                target = mirrors.get(_key(pod)) or {}
                if not target:
                    continue
            status = self._status(uid, pod, running)
            state = self.pod_state.setdefault(uid, PodState())
            target_uid = str(target["metadata"].get("uid") or "")
            seen = target.get("status") or {}
            # Like the status manager's needsReconcile: what was sent is sent again when the
            # API's copy differs (a controller marked the pod NotReady, say).
            if state.sent_status == {"uid": target_uid, **status} and _agrees(seen, status):
                continue
            meta = target["metadata"]
            try:
                self.client.request(
                    "PATCH",
                    f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                    {"metadata": {"uid": target_uid}, "status": _status_patch(seen, status)},
                    content_type=STRATEGIC_MERGE,
                )
                state.sent_status = {"uid": target_uid, **status}
                with self.lock:
                    # The watch brings the stored copy soon; until then this is what it says.
                    target["status"] = {**seen, **status}
            except ApiError as e:
                # Unreachable API: the node loop says so already; not once per pod and pass.
                if e.status not in (0, 404):
                    klog.error(
                        "status_manager.go:850",
                        "Failed to update status for pod",
                        err=e,
                        pod=_key(pod),
                    )

    def _status(
        self, uid: str, pod: dict[str, Any], running: dict[tuple[str, str], Container]
    ) -> dict[str, Any]:
        state = self.pod_state.setdefault(uid, PodState())
        views: dict[str, podstatus.Running | None] = {}
        for container in (pod.get("spec") or {}).get("containers") or []:
            name = str(container["name"])
            c = running.get((uid, name))
            if c is not None and self.runtime.running(c):
                started, ready = self.prober.result((uid, name))
                views[name] = podstatus.Running(c.container_id, c.started_at, started, ready)
        return podstatus.pod_status(pod, state, views, self.s.node_ip)


def _summary(status: dict[str, Any]) -> tuple[Any, ...]:
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    containers = {
        c.get("name"): (c.get("ready"), sorted((c.get("state") or {}).keys()))
        for c in status.get("containerStatuses") or []
    }
    return (status.get("phase"), conditions, containers)


def _agrees(seen: dict[str, Any], sent: dict[str, Any]) -> bool:
    """Whether the API's pod status says what the kubelet last reported (phase, conditions,
    each container's readiness and state)."""
    return _summary(seen) == _summary(sent)


def _status_patch(seen: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The status as a strategic merge patch over the API's copy: a container state the
    kubelet no longer reports (`waiting` once `running`) is deleted with null, as the
    two-way merge patch upstream's status manager sends does."""
    old = {c.get("name"): c for c in seen.get("containerStatuses") or []}
    containers = []
    for new in status.get("containerStatuses") or []:
        entry = dict(new)
        before = old.get(new.get("name")) or {}
        for field_name in ("state", "lastState"):
            stale = set((before.get(field_name) or {}).keys()) - set(
                (new.get(field_name) or {}).keys()
            )
            if stale:
                entry[field_name] = {**(new.get(field_name) or {}), **dict.fromkeys(stale)}
        containers.append(entry)
    if not containers:
        return status
    return {**status, "containerStatuses": containers}


def _key(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"
