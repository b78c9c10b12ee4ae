"""The simulated kubelet's sync loop, with a scripted API and a runtime that starts nothing."""

from __future__ import annotations

import datetime
import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from nodeops.lab.sim.kubelet import staticpods
from nodeops.lab.sim.kubelet.agent import Kubelet
from nodeops.lab.sim.kubelet.config import Settings
from nodeops.lab.sim.kubelet.nodestatus import NodeFacts
from nodeops.lab.sim.kubelet.runtime import Container, Runtime

NODE = "worker1"
MANIFEST = """\
apiVersion: v1
kind: Pod
metadata: {name: proxy, namespace: kube-system}
spec:
  containers: [{name: haproxy, image: "haproxy:2.8"}]
"""


class FakeRuntime(Runtime):
    """Records what the kubelet starts and stops; processes are pretend."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp / "state", tmp / "logs", tmp / "pods")
        self.events: list[tuple[str, str, str]] = []
        self.records: dict[tuple[str, str], Container] = {}
        self.alive: set[int] = set()
        self.stopped_with: list[float] = []
        self._pids = itertools.count(100)

    def list(self) -> list[Container]:
        return list(self.records.values())

    def running(self, c: Container) -> bool:
        return c.pid in self.alive

    def exit_code(self, c: Container) -> int | None:
        return self.code

    code = 1

    def start(self, pod: dict[str, Any], container: dict[str, Any], **kw: Any) -> Container:
        meta = pod["metadata"]
        c = Container(
            pod_uid=str(meta["uid"]),
            pod_key=f"{meta['namespace']}/{meta['name']}",
            name=str(container["name"]),
            image=str(container["image"]),
            container_id="c" * 64,
            pid=next(self._pids),
            start_ticks=1,
            started_at="2026-01-01T00:00:00Z",
            spec_hash=kw["spec_hash"],
            restart_count=kw.get("restart_count", 0),
            log_path="",
            source=kw.get("source", "api"),
            pod_ip=kw.get("pod_ip", ""),
        )
        self.records[(c.pod_uid, c.name)] = c
        self.alive.add(c.pid)
        self.events.append(("start", c.pod_key, c.pod_uid))
        return c

    def stop(self, c: Container, grace: float = 30.0) -> None:
        self.alive.discard(c.pid)
        self.records.pop((c.pod_uid, c.name), None)
        self.stopped_with.append(grace)
        self.events.append(("stop", c.pod_key, c.pod_uid))

    def forget(self, c: Container) -> None:
        self.records.pop((c.pod_uid, c.name), None)


class FakeClient:
    """Answers the kubelet's requests from a dict of objects; records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any, dict[str, str] | None]] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self._uids = itertools.count(1)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "",
        query: dict[str, str] | None = None,
    ) -> Any:
        self.requests.append((method, path, body, query))
        if method == "POST":
            obj = dict(body)
            obj["metadata"] = dict(obj["metadata"], uid=f"api-uid-{next(self._uids)}")
            self.objects[f"{path}/{obj['metadata']['name']}"] = obj
            return obj
        if method == "DELETE":
            self.objects.pop(path, None)
        return {}

    def get(self, path: str, **query: str) -> Any:
        return self.request("GET", path, query=query)

    def calls(self, method: str) -> list[tuple[str, Any, dict[str, str] | None]]:
        return [(p, b, q) for m, p, b, q in self.requests if m == method]


def _settings(static_dir: Path) -> Settings:
    return Settings(
        node_name=NODE,
        node_ip="10.213.0.12",
        static_pod_path=str(static_dir),
        kubeconfig="",
        bootstrap_kubeconfig="",
        address="0.0.0.0",
        cgroup_driver="systemd",
        runtime_endpoint="unix:///run/containerd/containerd.sock",
        pod_infra_image="registry.k8s.io/pause:3.9",
        max_pods=110,
        status_update_seconds=10,
        lease_seconds=40,
        sync_seconds=60,
        file_check_seconds=20,
    )


FACTS = NodeFacts(NODE, "10.213.0.12", "v1.29.3", "Ubuntu", "6.1", "m", "b", 2, 2048000, 110)


def _kubelet(tmp_path: Path, client: FakeClient | None = None) -> tuple[Kubelet, FakeRuntime]:
    static = tmp_path / "manifests"
    static.mkdir(exist_ok=True)
    rt = FakeRuntime(tmp_path)
    return Kubelet(_settings(static), FACTS, client, rt), rt  # type: ignore[arg-type]


def _settle(k: Kubelet, passes: int = 3) -> None:
    """Run sync passes, letting the kubelet's stop and delete threads finish in between."""
    for _ in range(passes):
        k.sync()
        for t in list(k.terminating.values()):
            t.join(5)


def _api_pod(uid: str, name: str = "web-1", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid, **meta},
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "web", "image": "nginx:1.25"}],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
        "status": {"phase": "Pending"},
    }


def test_static_pod_runs_without_an_api_and_restarts_when_changed(tmp_path: Path) -> None:
    k, rt = _kubelet(tmp_path)
    (tmp_path / "manifests" / "proxy.yaml").write_text(MANIFEST)
    _settle(k)
    [(kind, key, old_uid)] = rt.events
    assert (kind, key) == ("start", "kube-system/proxy-worker1")

    (tmp_path / "manifests" / "proxy.yaml").write_text(MANIFEST.replace("2.8", "2.9"))
    _settle(k)
    assert [e[0] for e in rt.events] == ["start", "stop", "start"]
    assert rt.events[1][2] == old_uid and rt.events[2][2] != old_uid  # old one stopped first

    (tmp_path / "manifests" / "proxy.yaml").unlink()
    _settle(k)
    assert rt.events[-1][0] == "stop" and rt.records == {}


def test_exited_container_is_restarted_and_counted(tmp_path: Path) -> None:
    k, rt = _kubelet(tmp_path)
    (tmp_path / "manifests" / "proxy.yaml").write_text(MANIFEST)
    _settle(k, 1)
    rt.alive.clear()  # the process died
    k.sync()  # noticed: backoff starts
    assert [e[0] for e in rt.events] == ["start"]
    for state in k.pod_state.values():
        for back in state.backoff.values():
            back.until = 0  # skip the wait
    k.sync()
    assert [e[0] for e in rt.events] == ["start", "start"]
    (state,) = k.pod_state.values()
    assert state.restarts == {"haproxy": 1}


def test_api_pod_containers_wait_for_the_first_pod_list(tmp_path: Path) -> None:
    client = FakeClient()
    k, rt = _kubelet(tmp_path, client)
    left = rt.start(_api_pod("uid-a"), {"name": "web", "image": "nginx"}, spec_hash="uid-a")
    _settle(k)
    assert rt.running(left), "killed before the kubelet knew which pods it has"
    k._replace_pods([])  # the list arrived: the pod is gone
    _settle(k)
    assert not rt.running(left)


def test_graceful_deletion_stops_then_deletes_with_grace_zero(tmp_path: Path) -> None:
    client = FakeClient()
    k, rt = _kubelet(tmp_path, client)
    k._replace_pods([_api_pod("uid-b")])
    _settle(k)
    assert (
        tmp_path / "pods" / "uid-b" / "volumes" / "kubernetes.io~empty-dir" / "scratch"
    ).is_dir()
    deleting = _api_pod(
        "uid-b", deletionTimestamp="2026-01-01T00:00:30Z", deletionGracePeriodSeconds=7
    )
    k._replace_pods([deleting])
    k.sync()
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=5)
    while not client.calls("DELETE") and datetime.datetime.now() < deadline:
        k.wake.wait(0.01)
    [(path, body, query)] = client.calls("DELETE")
    assert path == "/api/v1/namespaces/default/pods/web-1"
    assert body["gracePeriodSeconds"] == 0 and body["preconditions"] == {"uid": "uid-b"}
    assert query == {"gracePeriodSeconds": "0"}
    assert rt.stopped_with == [7.0]
    assert not (tmp_path / "pods" / "uid-b").exists()  # emptyDir data goes with the pod


def test_mirror_pods_created_replaced_and_orphans_deleted(tmp_path: Path) -> None:
    client = FakeClient()
    k, _ = _kubelet(tmp_path, client)
    k.registered.set()
    k.node_uid = "node-uid"
    (tmp_path / "manifests" / "proxy.yaml").write_text(MANIFEST)
    _settle(k, 1)
    [(path, mirror, _)] = client.calls("POST")
    assert path == "/api/v1/namespaces/kube-system/pods"
    assert mirror["metadata"]["name"] == "proxy-worker1"
    assert mirror["metadata"]["ownerReferences"][0]["uid"] == "node-uid"
    sp = next(iter(k.static.values()))
    assert mirror["metadata"]["annotations"][staticpods.CONFIG_MIRROR] == sp.hash

    # The status of the static pod goes to its mirror pod.
    patches = [p for p, _, _ in client.calls("PATCH") if p.endswith("/status")]
    assert patches == ["/api/v1/namespaces/kube-system/pods/proxy-worker1/status"]

    outdated = dict(mirror, metadata=dict(mirror["metadata"], uid="m1"))
    outdated["metadata"]["annotations"] = {staticpods.CONFIG_MIRROR: "old-hash"}
    orphan = dict(
        mirror,
        metadata={
            "name": "gone-worker1",
            "namespace": "kube-system",
            "uid": "m2",
            "annotations": {staticpods.CONFIG_MIRROR: "x"},
        },
    )
    client.requests.clear()
    k._replace_pods([outdated, orphan])
    k.sync()
    deleted = sorted(p for p, _, _ in client.calls("DELETE"))
    assert deleted == [
        "/api/v1/namespaces/kube-system/pods/gone-worker1",
        "/api/v1/namespaces/kube-system/pods/proxy-worker1",
    ]
    assert [b["metadata"]["name"] for _, b, _ in client.calls("POST")] == ["proxy-worker1"]


def test_status_of_a_running_api_pod(tmp_path: Path) -> None:
    client = FakeClient()
    k, _ = _kubelet(tmp_path, client)
    k.registered.set()
    k._replace_pods([_api_pod("uid-c")])
    _settle(k, 1)
    [(path, body, _)] = [c for c in client.calls("PATCH") if c[0].endswith("/status")]
    assert path == "/api/v1/namespaces/default/pods/web-1/status"
    status = body["status"]
    assert status["phase"] == "Running"
    assert status["hostIP"] == "10.213.0.12"
    assert status["podIP"].startswith("10.244.12.")
    (cs,) = status["containerStatuses"]
    assert cs["image"] == "docker.io/library/nginx:1.25"
    assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
    assert cs["state"] == {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    assert {c["type"] for c in status["conditions"]} >= {"Ready", "ContainersReady"}
    client.requests.clear()
    _settle(k, 1)
    assert client.calls("PATCH") == []  # nothing changed, nothing sent


@pytest.mark.parametrize("host_network", [True, False])
def test_pod_ip(tmp_path: Path, host_network: bool) -> None:
    k, _ = _kubelet(tmp_path)
    pod = _api_pod("uid-d")
    pod["spec"]["hostNetwork"] = host_network
    ip = k._pod_ip(pod)
    assert (ip == "10.213.0.12") is host_network
    k.pod_cidr = "192.168.3.0/24"
    assert k._pod_ip(pod) == ("10.213.0.12" if host_network else "192.168.3.2")


def test_container_records_round_trip(tmp_path: Path) -> None:
    rt = Runtime(tmp_path / "state", tmp_path / "logs", tmp_path / "pods")
    c = Container("u", "ns/p", "c", "img", "0" * 64, 1, 2, "t", "u", 0, "", "file", "10.0.0.1")
    rt._save(c)
    assert rt.list() == [c]
    rt.forget(replace(c))
    assert rt.list() == []


def test_not_ready_fault_switch_flips_the_ready_condition(tmp_path: Path) -> None:
    client = FakeClient()
    k, _ = _kubelet(tmp_path, client)
    k.fault_not_ready = tmp_path / "kubelet-not-ready"

    def ready() -> dict[str, str]:
        (path, body, _) = client.calls("PATCH")[-1]
        assert path == f"/api/v1/nodes/{NODE}/status"
        return next(c for c in body["status"]["conditions"] if c["type"] == "Ready")

    k._post_status()
    first = ready()
    assert (first["status"], first["reason"]) == ("True", "KubeletReady")
    k.fault_not_ready.touch()
    k._post_status()
    assert (ready()["status"], ready()["reason"]) == ("False", "KubeletNotReady")
    k.fault_not_ready.unlink()
    k._post_status()
    assert ready()["status"] == "True"
    pressure = next(
        c
        for c in client.calls("PATCH")[-1][1]["status"]["conditions"]
        if c["type"] == "MemoryPressure"
    )
    assert pressure["lastTransitionTime"] == first["lastTransitionTime"]  # it never changed


def test_ready_delay_knob_posts_not_ready_until_it_has_passed(tmp_path: Path) -> None:
    from nodeops.lab.sim.kubelet.agent import ready_delay_seconds

    knob = tmp_path / "kubelet-ready-delay"
    assert ready_delay_seconds(knob) == 0.0  # absent: no delay
    for text, seconds in (("2.5\n", 2.5), ("nan", 0.0), ("-3", 0.0), ("1e9", 300.0), ("x", 0.0)):
        knob.write_text(text)
        assert ready_delay_seconds(knob) == seconds, text
    client = FakeClient()
    k, _ = _kubelet(tmp_path, client)
    k.fault_not_ready = tmp_path / "kubelet-not-ready"
    k.ready_delay = 30.0
    k._post_status()
    body = client.calls("PATCH")[-1][1]
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert body["status"]["nodeInfo"]["kubeletVersion"] == "v1.29.3"  # the version shows at once
    k.started -= 31.0
    k._post_status()
    ready = next(
        c for c in client.calls("PATCH")[-1][1]["status"]["conditions"] if c["type"] == "Ready"
    )
    assert ready["status"] == "True"


def test_pod_status_of_a_crash_looping_container() -> None:
    from nodeops.lab.sim.kubelet import podstatus

    pod = _api_pod("uid-e")
    state = podstatus.PodState(ip="10.244.1.2", start_time="2026-01-01T00:00:00Z")
    state.restarts["web"] = 2
    state.backoff["web"] = podstatus.Backoff(
        exit_code=137, started_at="2026-01-01T00:00:01Z", finished_at="2026-01-01T00:00:05Z"
    )
    status = podstatus.pod_status(pod, state, {"web": None}, "10.213.0.12")
    assert status["phase"] == "Running"  # it ran before: Running while it restarts
    (cs,) = status["containerStatuses"]
    assert cs["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["lastTransitionTime"]) == ("False", "2026-01-01T00:00:00Z")
    running = podstatus.Running("f" * 64, "2026-01-01T00:00:09Z", True, True)
    again = podstatus.pod_status(pod, state, {"web": running}, "10.213.0.12")
    ready = next(c for c in again["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["lastTransitionTime"] != "2026-01-01T00:00:00Z"
    fresh = podstatus.pod_status(pod, podstatus.PodState(), {"web": None}, "10.213.0.12")
    assert fresh["phase"] == "Pending"
    assert fresh["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"


def test_manifest_problems_are_logged_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    k, rt = _kubelet(tmp_path)
    d = tmp_path / "manifests"
    (d / "a.yaml").write_text(MANIFEST)
    (d / "a.yaml.bak").write_text(MANIFEST.replace("2.8", "2.7"))
    (d / "broken.yaml").write_text("kind: Pod\nmetadata: [\n")
    _settle(k)
    err = capsys.readouterr().err
    assert err.count("Pod failed validation due to duplicate pod name, ignoring") == 1
    assert err.count('"Could not process manifest file"') == 1
    assert [e[0] for e in rt.events] == ["start"]  # only the first file's pod runs


@pytest.mark.parametrize(("policy", "code", "phase"), [("Never", 0, "Succeeded"),
                                                       ("Never", 3, "Failed"),
                                                       ("OnFailure", 0, "Succeeded")])  # fmt: skip
def test_run_to_completion_pods_finish(tmp_path: Path, policy: str, code: int, phase: str) -> None:
    client = FakeClient()
    k, rt = _kubelet(tmp_path, client)
    k.registered.set()
    pod = _api_pod("uid-f")
    pod["spec"]["restartPolicy"] = policy
    k._replace_pods([pod])
    _settle(k, 1)
    rt.alive.clear()  # the job's process ended
    rt.code = code
    _settle(k, 2)
    assert [e[0] for e in rt.events] == ["start"]  # not restarted
    status = [b for p, b, _ in client.calls("PATCH") if p.endswith("/status")][-1]["status"]
    assert status["phase"] == phase
    (cs,) = status["containerStatuses"]
    assert cs["state"]["terminated"]["exitCode"] == code
    assert cs["state"]["terminated"]["reason"] == ("Completed" if code == 0 else "Error")


def test_on_failure_pods_restart_after_an_error(tmp_path: Path) -> None:
    k, rt = _kubelet(tmp_path)
    pod = _api_pod("uid-g")
    pod["spec"]["restartPolicy"] = "OnFailure"
    k._replace_pods([pod])
    _settle(k, 1)
    rt.alive.clear()
    rt.code = 2
    k.sync()
    k.pod_state["uid-g"].backoff["web"].until = 0
    k.sync()
    assert [e[0] for e in rt.events] == ["start", "start"]


def test_status_patch_deletes_a_container_state_no_longer_reported() -> None:
    from nodeops.lab.sim.kube_patch import strategic_merge_patch
    from nodeops.lab.sim.kubelet.agent import _agrees, _status_patch

    seen = {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "c", "ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}
        ],
    }
    status = {
        "phase": "Running",
        "containerStatuses": [
            {"name": "c", "ready": True, "state": {"running": {"startedAt": "t"}}}
        ],
    }
    patch = _status_patch(seen, status)
    assert patch["containerStatuses"][0]["state"] == {
        "running": {"startedAt": "t"},
        "waiting": None,
    }
    merged = strategic_merge_patch({"status": seen}, {"status": patch})["status"]
    assert merged["containerStatuses"][0]["state"] == {"running": {"startedAt": "t"}}
    assert _agrees(merged, status) and not _agrees(seen, status)


def test_a_pod_marked_not_ready_by_a_controller_disagrees_with_the_kubelet() -> None:
    from nodeops.lab.sim.kubelet.agent import _agrees

    sent = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    marked = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
    assert not _agrees(marked, sent)
