"""Upgrades under the lab's faults, over real SSH: each fault stops the line in a known state
(or is ridden out), and `--resume` finishes once the fault is cleared.

One lab for the module: cp1 (Ubuntu 22.04), worker1 (Ubuntu 24.04), worker2 (Debian 12), kube
1.29.3, the sample `web` Deployment (3 replicas, PDB minAvailable 2). The tests run in file
order, one minor per test: refusals first (nothing changes), then 1.30, 1.31, 1.32, 1.33.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from nodeops.lab import faults
from tests.e2e.labkit import KUBECTL, UpgradeLab, upgrade_lab, wait

pytestmark = pytest.mark.lab

DRAIN = ("--force", "--delete-emptydir-data")  # the lab runs a bare pod and an emptyDir pod
HOLDS = ["kubeadm", "kubectl", "kubelet"]


class FaultLab(UpgradeLab):
    """The module's cluster, with the drain flags its pods need and journal helpers."""

    def run(
        self, *args: str, timeout: float = 600, env: dict[str, str] | None = None
    ) -> CompletedProcess[str]:
        """The nodeops CLI with the drain flags the lab's pods need."""
        # a stuck drain fails the test, not CI
        extra = {"INVOKE_NODEOPS_DRAIN_TIMEOUT": "180", **(env or {})}
        return super().run(*args, *DRAIN, timeout=timeout, env=extra)

    def cordoned(self) -> set[str]:
        return {n for n, obj in self.nodes().items() if obj["spec"].get("unschedulable")}

    def journal(self, run_id: str) -> list[dict[str, Any]]:
        path = self.home / ".local/state/nodeops/journal" / f"{run_id}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def at(self, minor: str) -> None:
        """Every node Ready at the minor, schedulable, packages held."""
        for name, obj in self.nodes().items():
            ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
            assert ready["status"] == "True", name
            assert obj["status"]["nodeInfo"]["kubeletVersion"].startswith(f"v{minor}."), name
            assert not obj["spec"].get("unschedulable"), name
            assert self.sh(name, "apt-mark showhold").stdout.split() == HOLDS, name


def run_id_of(stdout: str) -> str:
    found = re.search(r"^run (\S+); journal ", stdout, re.M)
    assert found, stdout
    return found.group(1)


def resume_words(stderr: str) -> list[str]:
    """The printed resume command, without `nodeops` and its -i (the lab adds its own)."""
    found = re.search(r"resume with: nodeops (.*)$", stderr, re.M)
    assert found, stderr
    words = found.group(1).split()
    if "-i" in words:
        at = words.index("-i")
        del words[at : at + 2]
    return [w for w in words if w not in DRAIN]


@pytest.fixture(scope="module")
def lab(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultLab]:
    name = fresh_lab_name()
    with upgrade_lab(
        name,
        tmp_path_factory.mktemp("faults"),
        workers=2,
        worker_os=("ubuntu-24.04", "debian-12"),
        version="1.29.3",
        timeout=60,
    ) as base:
        try:
            yield FaultLab(base.state, base.inventory, base.home, base.backups)
        finally:
            with contextlib.suppress(Exception):
                faults.clear(name)


def ready_status(lab: FaultLab, node: str) -> str:
    obj = lab.nodes()[node]
    return next(c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_case_09_preflight_refusals_change_nothing(lab: FaultLab) -> None:
    """Another node NotReady, or the API down: refused before any cordon or package change."""
    before = lab.fingerprints()
    faults.inject(lab.name, "worker2", "kubelet-not-ready")
    try:
        wait("worker2 NotReady", lambda: ready_status(lab, "worker2") == "False", timeout=60)
        run = lab.run("upgrade-cluster", "--to", "1.30")
    finally:
        faults.clear(lab.name, "worker2", "kubelet-not-ready")
    assert run.returncode != 0, run.stdout
    assert "worker2" in run.stderr and "NotReady" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    wait("worker2 Ready", lambda: ready_status(lab, "worker2") == "True", timeout=60)

    faults.inject(lab.name, "cp1", "apiserver-down")
    try:
        down = lab.run("upgrade", "--node", "worker1", "--to", "1.30")
    finally:
        faults.clear(lab.name, "cp1", "apiserver-down")
    assert down.returncode != 0
    assert down.stderr.startswith("error: ") and "Traceback" not in down.stderr, down.stderr
    assert "refused" in down.stderr or "6443" in down.stderr, down.stderr
    wait("the API", lambda: lab.sh("cp1", READYZ, check=False).returncode == 0, timeout=60)
    assert lab.cordoned() == set()
    assert lab.fingerprints() == before


READYZ = f"{KUBECTL} get --raw /readyz"


def test_case_10_and_15_lock_waited_out_and_cut_sessions_reconnected(lab: FaultLab) -> None:
    """Hop to 1.30 with --max-unavailable 2: the budget over `web` splits the worker batch
    (Drain plan); cp1's dpkg lock is held for a while (waited out); worker2's `kubeadm
    upgrade node` and worker1's kubelet restart lose their SSH sessions (reconnected, the
    step run again from its checks). The run ends with every node at 1.30."""

    # Drain plan: neither worker alone is blocked (a budget waits for replacements); both
    # together would take the three `web` pods below minAvailable 2: blocked.
    def verdict(*nodes: str) -> str:
        words = [w for n in nodes for w in ("--node", n)]
        done = lab.nodeops("drain-plan", *words, *DRAIN)
        found = re.search(r"^verdict: (.*)$", done.stdout, re.M)
        assert found, done.stdout + done.stderr
        return found.group(1)

    assert "blocked" not in verdict("worker1") and "blocked" not in verdict("worker2")
    assert "blocked" in verdict("worker1", "worker2")
    plan = lab.run("upgrade-cluster", "--to", "1.30", "--max-unavailable", "2", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    batches = re.findall(r"^\d+\. worker batch \d+ \(in parallel\): (.*)$", plan.stdout, re.M)
    assert len(batches) == 2 and all(b.count("kubeadm upgrade node") == 1 for b in batches), (
        plan.stdout
    )
    faults.inject(lab.name, "cp1", "dpkg-lock")
    faults.inject(lab.name, "worker2", "ssh-cut-kubeadm")
    faults.inject(lab.name, "worker1", "ssh-cut-restart")
    released: list[float] = []

    def release_the_lock_once_apt_waits() -> None:
        # Held until cp1's package staging has started (so apt meets it), then let go.
        journals = lab.home / ".local/state/nodeops/journal"
        before = set(journals.glob("*.jsonl")) if journals.is_dir() else set()

        def staging() -> bool:
            return any(
                '"step-started"' in line and '"cp1"' in line and '"download-packages"' in line
                for p in (set(journals.glob("*.jsonl")) - before)
                for line in p.read_text().splitlines()
            )

        try:
            wait("cp1's package staging", staging, timeout=400, interval=0.2)
            time.sleep(6)
        finally:
            faults.clear(lab.name, "cp1", "dpkg-lock")
            released.append(time.monotonic())

    releaser = threading.Thread(target=release_the_lock_once_apt_waits)
    releaser.start()
    try:
        run = lab.run("upgrade-cluster", "--to", "1.30", "--max-unavailable", "2")
    finally:
        releaser.join()
    assert released
    assert run.returncode == 0, run.stdout + run.stderr
    events = lab.journal(run_id_of(run.stdout))
    waited = [
        e
        for e in events
        if e.get("event") == "command"
        and e["node"] == "cp1"
        and "Waiting for cache lock" in e["stdout"]
    ]
    assert waited and waited[0]["exit_code"] == 0
    assert "unattended-upgr" in waited[0]["stdout"]
    lost = {(e["node"], e["step"]) for e in events if e.get("event") == "connection-lost"}
    assert lost == {("worker2", "kubeadm-upgrade"), ("worker1", "restart-kubelet")}, lost
    again = {(e["node"], e["step"]) for e in events if e.get("event") == "reconnected"}
    assert again == lost
    # The cut `kubeadm upgrade node` carried on by itself; the step ran it again afterwards.
    upgrades = [
        e for e in events if e.get("event") in ("command", "command-error")
        and e["node"] == "worker2" and "kubeadm upgrade node" in e["command"]
    ]  # fmt: skip
    assert [e["event"] for e in upgrades] == ["command-error", "command"], upgrades
    assert "connection was lost" in upgrades[0]["error"] and upgrades[1]["exit_code"] == 0
    # Batches of one: the workers' cordoned windows never overlap.
    cordons = [
        (e["node"], e["time"]) for e in events
        if e.get("event") == "step-finished" and e.get("step") in ("cordon", "uncordon")
    ]  # fmt: skip
    assert [n for n, _ in cordons if n != "cp1"] in (
        ["worker1", "worker1", "worker2", "worker2"],
        ["worker2", "worker2", "worker1", "worker1"],
    )
    # ...but the second batch was checked and staged while the first was cordoned.
    first = next(n for n, _ in cordons if n != "cp1")
    second = "worker2" if first == "worker1" else "worker1"
    staged = {
        e["step"]: e["time"] for e in events
        if e.get("node") == second and e.get("event") == "step-finished"
        and e.get("step") in ("check-node", "download-packages")
    }  # fmt: skip
    back = [t for n, t in cordons if n == first][1]
    assert "check-node" in staged and staged["check-node"] < back, (staged, back)
    assert re.search(r"^NODE +RESULT +STATE +CORDONED", run.stdout, re.M), run.stdout
    assert len(re.findall(r"^(cp1|worker1|worker2) +ok +at 1\.30\.", run.stdout, re.M)) == 3
    lab.at("1.30")


def test_case_10_13_lock_held_forever_is_a_bounded_error_and_partial_upgrade_resumes(
    lab: FaultLab,
) -> None:
    """Hop to 1.31. worker2 already has kubeadm 1.31 (kubelet 1.30) and a dead run left its
    lock on cp1 (case 13: taken over, kubeadm not installed again, never downgraded).
    worker1's dpkg lock is held for good: its package staging fails after the bounded wait,
    naming the lock, before any cordon (case 10). Cleared, --resume finishes."""
    lab.sh(
        "worker2",
        "sed -i 's/v1.30/v1.31/' /etc/apt/sources.list.d/kubernetes.list && apt-get update -qq"
        " && apt-get install -y -qq --allow-change-held-packages 'kubeadm=1.31.*' >/dev/null",
    )
    stale = json.dumps(
        {
            "run": "20260101T000000Z-upgrade-cluster-dead00",
            "pid": 2**22 + 7,  # above pid_max: that run is gone
            "host": socket.gethostname(),
            "time": "2026-01-01T00:00:00+00:00",
        }
    )
    lab.sh(
        "cp1", "mkdir -p /etc/kubernetes/tmp && cat > /etc/kubernetes/tmp/nodeops.lock", stdin=stale
    )
    faults.inject(lab.name, "worker1", "dpkg-lock")
    try:
        run = lab.run(
            "upgrade-cluster", "--to", "1.31", env={"INVOKE_NODEOPS_DPKG_LOCK_TIMEOUT": "3"}
        )
        assert run.returncode == 1, run.stdout + run.stderr
        assert 'worker1: step "Download packages before cordoning" failed' in run.stderr
        assert "Could not get lock /var/lib/dpkg/lock-frontend" in run.stderr
        assert "unattended-upgr" in run.stderr
        assert "node state now: Ready, schedulable" in run.stderr
        assert "worker1" not in lab.cordoned()
        assert "1.30." in lab.sh("worker1", "dpkg-query -W kubeadm kubelet").stdout
        assert "1.31." not in lab.sh("worker1", "dpkg-query -W kubeadm kubelet").stdout
    finally:
        faults.clear(lab.name, "worker1", "dpkg-lock")
    again = lab.run(*resume_words(run.stderr))
    assert again.returncode == 0, again.stdout + again.stderr
    events = lab.journal(run_id_of(run.stdout))
    installs = [
        e for e in events if e.get("node") == "worker2" and e.get("step") == "install-kubeadm"
        and e.get("event") == "step-finished"
    ]  # fmt: skip
    assert installs and all(e["status"] in ("unchanged", "skipped") for e in installs), installs
    assert not any(
        e.get("event") == "command" and e["node"] == "worker2" and "kubeadm=" in e["command"]
        and "--download-only" not in e["command"] for e in events
    )  # fmt: skip
    lab.at("1.31")
    second = lab.run("upgrade-cluster", "--to", "1.31")
    assert second.returncode == 0 and "Nothing to do" in second.stdout, second.stdout


def test_case_14_interrupted_dpkg_stops_cordoned_and_resumes_only_when_repair_is_asked(
    lab: FaultLab,
) -> None:
    """Hop to 1.32: worker2's apt is killed while dpkg unpacks kubeadm."""
    faults.inject(lab.name, "worker2", "dpkg-interrupt")
    run = lab.run("upgrade-cluster", "--to", "1.32")
    assert run.returncode == 1, run.stdout + run.stderr
    assert 'worker2: step "Install kubeadm" failed' in run.stderr
    assert "dpkg was interrupted" in run.stderr and "--repair-dpkg" in run.stderr
    assert "sudo dpkg --configure -a" in run.stderr
    assert re.search(
        r"or, letting nodeops finish dpkg first: nodeops .* --repair-dpkg$", run.stderr, re.M
    )
    assert "worker2" in lab.cordoned()
    assert "unpacked but not yet configured" in lab.sh("worker2", "dpkg --audit").stdout
    assert lab.sh("worker2", "apt-mark showhold").stdout.split() == HOLDS
    words = resume_words(run.stderr)
    refused = lab.run(*words)
    assert refused.returncode == 1
    assert 'worker2: step "Check node" failed' in refused.stderr
    assert "dpkg was interrupted" in refused.stderr and "worker2" in lab.cordoned()
    repaired = lab.run(*words, "--repair-dpkg")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert lab.sh("worker2", "dpkg --audit").stdout == ""
    lab.at("1.32")


def test_case_18_and_22_kubelet_never_ready_then_the_api_away_for_a_while(lab: FaultLab) -> None:
    """Hop to 1.33: worker1's restarted kubelet never gets Ready (bounded wait, stays
    cordoned, the kubelet journal's tail shown); once cleared, the resumed run rides out
    the apiserver being away for 20 s in the middle of worker2's steps."""
    plan = lab.run("upgrade-cluster", "--to", "1.33", "--dry-run")
    order = re.findall(r"^\d+\. worker batch \d+ \(in parallel\): (\w+) \[", plan.stdout, re.M)
    assert sorted(order) == ["worker1", "worker2"], plan.stdout
    first, second = order
    faults.inject(lab.name, first, "kubelet-not-ready-on-restart")
    run = lab.run("upgrade-cluster", "--to", "1.33", env={"INVOKE_NODEOPS_READY_TIMEOUT": "15"})
    assert run.returncode == 1, run.stdout + run.stderr
    failed = f'{first}: step "Wait until the node is Ready at the target version" failed'
    assert failed in run.stderr
    assert "not Ready at 1.33." in run.stderr and "the node stays cordoned" in run.stderr
    assert "last output:" in run.stderr
    assert re.search(r"node state now: NotReady \(.*\), cordoned", run.stderr), run.stderr
    assert "1 node(s) not started: the line was stopped" in run.stderr
    assert lab.cordoned() == {first}
    faults.clear(lab.name, first)
    wait(f"{first} Ready", lambda: ready_status(lab, first) == "True", timeout=60)

    run_id = run_id_of(run.stdout)
    journal = lab.home / ".local/state/nodeops/journal" / f"{run_id}.jsonl"
    seen_before = len(journal.read_text().splitlines())
    outage: list[str] = []

    def break_the_api_during_the_second_worker() -> None:
        def started() -> bool:
            return any(
                '"step-started"' in line and f'"{second}"' in line and '"install-kubelet"' in line
                for line in journal.read_text().splitlines()[seen_before:]
            )

        with contextlib.suppress(AssertionError):
            wait(f"{second}'s kubelet install", started, timeout=400, interval=0.2)
            faults.inject(lab.name, "cp1", "apiserver-down")
            outage.append(time.strftime("%H:%M:%S"))
            time.sleep(20)
            faults.clear(lab.name, "cp1", "apiserver-down")
            outage.append(time.strftime("%H:%M:%S"))

    breaker = threading.Thread(target=break_the_api_during_the_second_worker)
    breaker.start()
    try:
        again = lab.run(*resume_words(run.stderr))
    finally:
        breaker.join()
    assert len(outage) == 2, "the apiserver was never taken away"
    assert again.returncode == 0, again.stdout + again.stderr
    events = lab.journal(run_id)
    refused = [
        e for e in events if e.get("event") == "command" and e["node"] == "cp1"
        and e.get("exit_code") != 0 and "get node" in e["command"]
    ]  # fmt: skip
    assert refused, "no kubectl read failed while the apiserver was away"
    lab.at("1.33")
