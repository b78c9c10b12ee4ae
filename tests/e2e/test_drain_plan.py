"""`nodeops drain-plan` on the lab, each prediction checked by a real `kubectl drain` over SSH.

One lab (cp1 with its control-plane taint, worker1, worker2), built without the addons or the
sample workloads so every pod on a worker is one a scenario made, plus a DaemonSet that stays
throughout (its pods must always be ignored). Each scenario creates its workloads, asks the
real CLI for a plan (`python -m nodeops drain-plan ... --json`), runs the real drain on cp1,
checks what happened, then uncordons and resets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodeops import lab as nodeops_lab
from nodeops.drainplan import (
    DAEMONSET_FATAL,
    LOCAL_STORAGE_FATAL,
    UNMANAGED_FATAL,
    UNMANAGED_FATAL_LEGACY,
)
from nodeops.lab import cluster, manifests

pytestmark = pytest.mark.lab

KUBECTL = "HOME=/tmp/kubectl-home kubectl --kubeconfig /etc/kubernetes/admin.conf"
RETRY_LINE = (
    'error when evicting pods/"{pod}" -n "default" (will retry after 5s): '
    "Cannot evict pod as it would violate the pod's disruption budget."
)
WORKERS = ("worker1", "worker2")
PAUSE = "registry.k8s.io/pause:3.9"
#: drain-plan wall times (seconds), printed at the end
LATENCIES: list[float] = []


class Lab:
    """The module's lab: SSH to its nodes and the real nodeops CLI against its inventory."""

    def __init__(self, state: nodeops_lab.LabState, home: Path) -> None:
        self.state = state
        self.home = home

    def sh(
        self, script: str, *, node: str = "cp1", stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            nodeops_lab.ssh_argv(self.state.name, node, [script]),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{node}: {script!r} exited {done.returncode}: {done.stderr}")
        return done

    def kubectl(self, args: str, *, stdin: str | None = None, check: bool = True) -> str:
        return self.sh(f"{KUBECTL} {args}", stdin=stdin, check=check).stdout

    def get(self, args: str) -> Any:
        return json.loads(self.kubectl(f"{args} -o json"))

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl("apply -f -", stdin=yaml.safe_dump_all(objects))

    def plan(self, *args: str) -> tuple[int, dict[str, Any]]:
        """`nodeops drain-plan ARGS --json`: its exit code and its JSON."""
        env = {**os.environ, "HOME": str(self.home)}
        env.pop("NODEOPS_INVENTORY", None)
        inventory = ("-i", str(self.state.inventory_path))
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "nodeops", "drain-plan", *args, "--json", *inventory],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        LATENCIES.append(time.monotonic() - started)
        assert done.stdout, done.stderr
        return done.returncode, json.loads(done.stdout)

    def drain(
        self, nodes: str, flags: str, timeout: str = "60s"
    ) -> subprocess.CompletedProcess[str]:
        """A real `kubectl drain` on cp1."""
        return self.sh(f"{KUBECTL} drain {nodes} {flags} --timeout={timeout}", check=False)

    def pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("get pods -n default")["items"]
        return items

    def app_pods(self, app: str) -> list[dict[str, Any]]:
        return [p for p in self.pods() if p["metadata"].get("labels", {}).get("app") == app]

    def reset(self) -> None:
        """Uncordon, drop the scenarios' taints, labels and objects; keep the DaemonSet.

        One SSH round trip: kubectl calls cost ~0.4 s each here.
        """
        workers = " ".join(WORKERS)
        self.sh(
            f"{KUBECTL} uncordon {workers} >/dev/null"
            f" && {{ {KUBECTL} taint nodes {workers} dedicated- >/dev/null 2>&1; true; }}"
            f" && {KUBECTL} label nodes {workers} disk- pool- >/dev/null"
            f" && {KUBECTL} delete deployments,poddisruptionbudgets --all -n default >/dev/null"
            f" && {KUBECTL} delete pods -n default -l app!=node-agent --grace-period=0 >/dev/null"
        )
        _wait("only the DaemonSet's pods left", lambda: _only_agents(self.pods()))


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


def _only_agents(pods: list[dict[str, Any]]) -> bool:
    agents = [p for p in pods if p["metadata"]["labels"].get("app") == "node-agent"]
    return len(agents) == len(pods) == 3 and all(_ready(p) for p in agents)


def _wait(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _daemonset() -> dict[str, Any]:
    labels = {"app": "node-agent"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "node-agent", "namespace": "default", "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "agent", "image": PAUSE}],
                    "tolerations": [{"operator": "Exists"}],
                },
            },
        },
    }


def _deployment(name: str, replicas: int = 1, **pod_spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    container: dict[str, Any] = {"name": name, "image": PAUSE}
    if "requests" in pod_spec:
        container["resources"] = {"requests": pod_spec.pop("requests")}
    if "mounts" in pod_spec:
        container["volumeMounts"] = pod_spec.pop("mounts")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], **pod_spec},
            },
        },
    }


def _pdb(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}}, **spec},
    }


def _prefer(node: str) -> dict[str, Any]:
    term = {
        "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]
    }
    return {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": term}]
        }
    }


def _running(lab: Lab, app: str, count: int) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        pods = [p for p in lab.app_pods(app) if not p["metadata"].get("deletionTimestamp")]
        return pods if len(pods) == count and all(_ready(p) for p in pods) else None

    try:
        found: list[dict[str, Any]] = _wait(f"{count} Ready {app} pod(s)", check, timeout=60)
    except AssertionError as error:
        seen = [
            (
                p["metadata"]["name"],
                p["spec"].get("nodeName"),
                p.get("status", {}).get("phase"),
                [c.get("message") for c in p.get("status", {}).get("conditions", [])],
            )
            for p in lab.app_pods(app)
        ]
        raise AssertionError(f"{error}; {app} pods: {seen}") from None
    return found


def _budget_settled(lab: Lab, name: str, allowed: int) -> None:
    def check() -> bool:
        pdb = lab.get(f"get pdb {name} -n default")
        status = pdb.get("status") or {}
        observed = status.get("observedGeneration", 0) >= pdb["metadata"].get("generation", 1)
        return bool(observed and status.get("disruptionsAllowed") == allowed)

    _wait(f"PodDisruptionBudget {name} to allow {allowed}", check)


def _pending_replacement(lab: Lab, app: str) -> str:
    """The scheduler's message on the app's Pending replacement."""

    def check() -> str | None:
        for pod in lab.app_pods(app):
            if pod["status"].get("phase") == "Pending":
                for cond in pod["status"].get("conditions") or ():
                    if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                        return str(cond.get("message", ""))
        return None

    message: str = _wait(f"a Pending {app} replacement", check)
    return message


def _fates(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in plan["pods"]}


def _agents_ignored(plan: dict[str, Any]) -> None:
    agents = [p for p in plan["pods"] if p["name"].startswith("node-agent-")]
    assert len(agents) == len(plan["nodes"])
    assert all(p["kind"] == "ignored" for p in agents), agents


def _no_controller(pod: str, stderr: str) -> bool:
    """kubectl's refusal of a bare pod, in either wording (kubectl 1.29 says the old one)."""
    return any(f"{m}: default/{pod}" in stderr for m in (UNMANAGED_FATAL, UNMANAGED_FATAL_LEGACY))


def _node_of(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["nodeName"])


@pytest.fixture(scope="module")
def lab(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """cp1 + worker1 + worker2 made a cluster with only a DaemonSet on it. Always torn down."""
    name = fresh_lab_name()
    spec = nodeops_lab.default_spec(name, workers=2)
    inventory = tmp_path_factory.mktemp("drain-plan-inventory") / "lab.yaml"
    home = tmp_path_factory.mktemp("drain-plan-home")
    try:
        state = nodeops_lab.up(spec, inventory_path=inventory)
        cluster.build_cluster(state, timeout=60, workloads=False, addons=False)
        built = Lab(state, home)
        built.apply(_daemonset())
        _wait("the DaemonSet's pods", lambda: _only_agents(built.pods()))
        yield built
    finally:
        nodeops_lab.down(name)


@pytest.fixture()
def clean(lab: Lab) -> Iterator[Lab]:
    """The lab, reset after the scenario whatever happened."""
    try:
        yield lab
    finally:
        lab.reset()


# --- scenarios -------------------------------------------------------------------------------


def test_sample_web_drain_waits_for_a_replacement_and_succeeds(clean: Lab) -> None:
    lab = clean
    web = manifests.sample_workloads()  # web (3 replicas) and its PDB minAvailable 2
    lab.apply(web[0][1], web[1][1])
    pods = _running(lab, "web", 3)
    _budget_settled(lab, "web", 1)
    by_node: dict[str, list[str]] = {}
    for pod in pods:
        by_node.setdefault(_node_of(pod), []).append(pod["metadata"]["name"])
    node = max(by_node, key=lambda n: len(by_node[n]))
    assert len(by_node[node]) == 2, by_node  # 3 replicas over 2 workers

    code, plan = lab.plan("--node", node)
    assert code == 0, plan
    assert (plan["verdict"], plan["clean"], plan["waitsForReplacements"]) == ("safe", True, 1)
    _agents_ignored(plan)
    web_fates = [p for p in plan["pods"] if p["pdb"] == "web"]
    assert [p["kind"] for p in web_fates] == ["evicted", "evicted"]
    assert [p["waitsForReplacement"] for p in web_fates] == [False, True]
    assert web_fates[1]["reason"].startswith(
        "evicted after a replacement is Ready: PodDisruptionBudget web allows 1 disruption at a "
        "time"
    )
    other = next(n for n in WORKERS if n != node)
    assert {p["target"] for p in web_fates} == {other}
    assert plan["pdbs"] == [
        {
            "namespace": "default",
            "name": "web",
            "disruptionsAllowed": 1,
            "currentHealthy": 3,
            "desiredHealthy": 2,
            "expectedPods": 3,
            "disruptions": 2,
            "refused": 0,
            "waited": 1,
        }
    ]

    started = time.monotonic()
    done = lab.drain(node, "--ignore-daemonsets")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert f"node/{node} drained" in done.stdout
    # kubectl evicts both at once: whichever comes second gets a 429 and is retried...
    retried = [p["name"] for p in web_fates if RETRY_LINE.format(pod=p["name"]) in done.stderr]
    assert len(retried) == 1, done.stderr
    assert took >= 4.5  # ...after kubectl's 5 s back-off
    print(f"real drain of {node} with one wait: {took:.1f} s")
    after = _running(lab, "web", 3)
    assert {_node_of(p) for p in after} == {other}


def test_two_workers_together_break_the_budget(clean: Lab) -> None:
    lab = clean
    web = manifests.sample_workloads()
    lab.apply(web[0][1], web[1][1])
    _running(lab, "web", 3)
    _budget_settled(lab, "web", 1)
    for node in WORKERS:  # each alone is fine
        code, plan = lab.plan("--node", node)
        assert (code, plan["verdict"]) == (0, "safe"), plan

    code, plan = lab.plan("--node", "worker1", "--node", "worker2")
    assert code == 1
    assert plan["clean"] is False
    assert plan["verdict"] == "blocked"
    assert plan["verdicts"] == ["blocked", "would leave pods Pending"]
    _agents_ignored(plan)
    kinds = sorted(p["kind"] for p in plan["pods"] if p["pdb"] == "web")
    assert kinds == ["blocked", "blocked", "pending"]
    blocked = [p for p in plan["pods"] if p["kind"] == "blocked"]
    assert all(
        "no replacement of the pods evicted before it can become Ready" in p["reason"]
        and "its replacement would stay Pending" in p["reason"]
        for p in blocked
    ), blocked
    # the only node left is cp1, tainted for the control plane
    pending = next(p for p in plan["pods"] if p["kind"] == "pending")
    assert (
        "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
        in (pending["reason"])
    )

    done = lab.drain("worker1 worker2", "--ignore-daemonsets", timeout="3s")
    assert done.returncode != 0
    assert any(RETRY_LINE.format(pod=p["name"]) in done.stderr for p in blocked), done.stderr
    assert "global timeout reached: 3s" in done.stderr
    message = _pending_replacement(lab, "web")
    assert message.startswith(pending["reason"].split("Pending: ", 1)[1].split(";")[0])


def test_budget_allowing_no_disruption_blocks(clean: Lab) -> None:
    lab = clean
    lab.apply(_deployment("frozen", 2), _pdb("frozen", maxUnavailable=0))
    pods = _running(lab, "frozen", 2)
    _budget_settled(lab, "frozen", 0)
    node = _node_of(pods[0])
    victims = [p["metadata"]["name"] for p in pods if _node_of(p) == node]

    code, plan = lab.plan("--node", node)
    assert code == 1
    assert (plan["verdict"], plan["clean"]) == ("blocked", False)
    fates = _fates(plan)
    for name in victims:
        assert fates[name]["kind"] == "blocked"
        assert fates[name]["reason"].startswith(
            "Cannot evict pod as it would violate the pod's disruption budget. "
            "PodDisruptionBudget frozen allows 0 disruptions even with all 2 expected pods "
            "healthy (needs 2)"
        )
    assert plan["pdbs"][0]["refused"] == len(victims)

    started = time.monotonic()
    done = lab.drain(node, "--ignore-daemonsets", timeout="10s")
    took = time.monotonic() - started
    assert done.returncode != 0
    for name in victims:
        assert RETRY_LINE.format(pod=name) in done.stderr
    assert 9 < took < 30
    assert {p["metadata"]["name"] for p in _running(lab, "frozen", 2)} == {
        p["metadata"]["name"] for p in pods
    }


def test_taint_affinity_and_resources_leave_replacements_pending(clean: Lab) -> None:
    """One drain of worker1 (tainted dedicated=a; worker2 tainted dedicated=b), three pods whose
    replacements have nowhere to go, each for its own reason: one tolerates only worker1's
    taint; one has required nodeAffinity to a label only worker1 has; one requests more cpu
    than worker2 has left beside its filler. The last two tolerate both taints."""
    lab = clean
    lab.sh(
        f"{KUBECTL} taint nodes worker1 dedicated=a:NoSchedule"
        f" && {KUBECTL} taint nodes worker2 dedicated=b:NoSchedule"
        f" && {KUBECTL} label nodes worker1 disk=ssd"
    )
    only_a = [{"key": "dedicated", "operator": "Equal", "value": "a", "effect": "NoSchedule"}]
    both = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    term = {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}
    required = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    cpu = lab.get("get node worker2")["status"]["allocatable"]["cpu"]
    share = f"{int(cpu) * 600}m"  # 60% of a worker: two never fit on one node
    on_worker2 = {"kubernetes.io/hostname": "worker2"}
    lab.apply(
        _deployment("tainted", tolerations=only_a),
        _deployment("ssd", affinity={"nodeAffinity": required}, tolerations=both),
        _deployment("filler", requests={"cpu": share}, nodeSelector=on_worker2, tolerations=both),
        _deployment("big", requests={"cpu": share}, affinity=_prefer("worker1"), tolerations=both),
    )
    _running(lab, "filler", 1)
    pods = {app: _running(lab, app, 1)[0] for app in ("tainted", "ssd", "big")}
    assert {_node_of(p) for p in pods.values()} == {"worker1"}

    code, plan = lab.plan("--node", "worker1")
    assert code == 1
    assert plan["verdict"] == "would leave pods Pending"
    _agents_ignored(plan)
    fates = _fates(plan)
    cp1 = "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
    worker1 = "1 node(s) were unschedulable."
    predicted = {
        "tainted": f"1 node(s) had untolerated taint {{dedicated: b}}, {cp1}, {worker1}",
        "ssd": f"1 node(s) didn't match Pod's node affinity/selector, {cp1}, {worker1}",
        "big": f"1 Insufficient cpu, {cp1}, {worker1}",
    }
    predicted = {app: f"0/3 nodes are available: {why}" for app, why in predicted.items()}
    for app, pod in pods.items():
        fate = fates[pod["metadata"]["name"]]
        assert fate["kind"] == "pending"
        assert fate["reason"] == f"replacement would stay Pending: {predicted[app]}"

    done = lab.drain("worker1", "--ignore-daemonsets")
    assert done.returncode == 0, done.stderr
    assert "node/worker1 drained" in done.stdout
    for app, message in predicted.items():
        # the scheduler's own words on the Pending replacement, before its preemption summary
        assert _pending_replacement(lab, app).startswith(message)


def test_unmanaged_emptydir_and_daemonset_pods_need_kubectls_flags(clean: Lab) -> None:
    lab = clean
    loner = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "loner", "namespace": "default", "labels": {"app": "loner"}},
        "spec": {
            "containers": [{"name": "loner", "image": PAUSE}],
            "nodeSelector": {"kubernetes.io/hostname": "worker1"},
        },
    }
    scratch = _deployment(
        "scratch",
        affinity=_prefer("worker1"),
        volumes=[{"name": "data", "emptyDir": {}}],
        mounts=[{"name": "data", "mountPath": "/data"}],
    )
    lab.apply(loner, scratch)
    _running(lab, "loner", 1)
    (cache,) = _running(lab, "scratch", 1)
    assert _node_of(cache) == "worker1"
    cache_name = cache["metadata"]["name"]
    agent = next(
        p["metadata"]["name"] for p in lab.app_pods("node-agent") if _node_of(p) == "worker1"
    )

    # no flags at all: kubectl refuses to start, naming each pod and flag
    code, plan = lab.plan("--node", "worker1", "--no-ignore-daemonsets")
    assert code == 1
    assert plan["verdict"] == "needs force"
    assert set(plan["flagsNeeded"]) == {"--ignore-daemonsets", "--delete-emptydir-data", "--force"}
    fates = _fates(plan)
    assert fates[agent]["reason"] == DAEMONSET_FATAL
    assert fates[cache_name]["reason"] == LOCAL_STORAGE_FATAL
    assert fates["loner"]["reason"] == UNMANAGED_FATAL
    done = lab.drain("worker1", "")
    assert done.returncode != 0
    assert f"{DAEMONSET_FATAL}: default/{agent}" in done.stderr
    assert f"{LOCAL_STORAGE_FATAL}: default/{cache_name}" in done.stderr
    assert _no_controller("loner", done.stderr)
    lab.kubectl("uncordon worker1")

    # with --ignore-daemonsets only, the two others still refuse
    code, plan = lab.plan("--node", "worker1")
    assert code == 1
    assert set(plan["flagsNeeded"]) == {"--delete-emptydir-data", "--force"}
    assert _fates(plan)[agent]["kind"] == "ignored"
    done = lab.drain("worker1", "--ignore-daemonsets")
    assert done.returncode != 0
    assert _no_controller("loner", done.stderr)
    lab.kubectl("uncordon worker1")

    # every flag: the bare pod is gone for good, the emptyDir data is lost
    code, plan = lab.plan("--node", "worker1", "--force", "--delete-emptydir-data")
    assert code == 1
    assert (plan["verdict"], plan["flagsNeeded"]) == ("would lose data", [])
    fates = _fates(plan)
    assert fates["loner"]["kind"] == "lost"
    assert fates[cache_name]["kind"] == "lost"
    assert fates[cache_name]["dataLoss"] == ["data"]
    assert fates[cache_name]["target"] == "worker2"
    done = lab.drain("worker1", "--ignore-daemonsets --force --delete-emptydir-data")
    assert done.returncode == 0, done.stderr
    (moved,) = _running(lab, "scratch", 1)
    assert _node_of(moved) == "worker2"
    assert lab.app_pods("loner") == []


def test_drain_plan_is_quick() -> None:
    assert LATENCIES
    print(
        f"drain-plan: {len(LATENCIES)} runs, median {sorted(LATENCIES)[len(LATENCIES) // 2]:.2f} s,"
        f" max {max(LATENCIES):.2f} s"
    )
    assert max(LATENCIES) < 10
