"""Upgrading the lab cluster with the real CLI over SSH: refusals, dry run, a full upgrade.

One lab for the module: cp1 (Ubuntu 22.04), worker1 (Ubuntu 24.04), worker2 (Debian 12),
worker3 (Rocky 9), kube 1.29.3. The tests run in file order: refusals and the dry run first
(nothing may change), then a full upgrade to 1.31 (two hops, 1.30 first), a second run that
plans nothing, then faults: a drain blocked by a budget (to 1.32) and a failed kubeadm apply
(to 1.33), each finished by --resume.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nodeops import lab as nodeops_lab
from nodeops.lab import cluster

pytestmark = pytest.mark.lab

NODES = ("cp1", "worker1", "worker2", "worker3")
KUBECTL = "HOME=/tmp/kubectl-home kubectl --kubeconfig /etc/kubernetes/admin.conf"
# Everything a dry run must leave alone, as one digest per node.
FINGERPRINT = r"""
for d in /etc/apt/sources.list.d /etc/yum.repos.d /etc/kubernetes /var/lib/kubelet/config.yaml; do
  [ -e "$d" ] && find "$d" -type f -print0 | sort -z | xargs -0 -r sha256sum
done
dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\n' 2>/dev/null | sort
rpm -qa 2>/dev/null | sort
apt-mark showhold 2>/dev/null
true
"""


@dataclass
class Lab:
    """The module's lab cluster, its inventory and a private HOME for the CLI."""

    state: nodeops_lab.LabState
    inventory: Path
    home: Path
    backups: Path

    def sh(self, node: str, script: str, *, check: bool = True) -> str:
        done = subprocess.run(
            nodeops_lab.ssh_argv(self.state.name, node, [script]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{node}: {script!r} exited {done.returncode}: {done.stderr}")
        return done.stdout

    def nodeops(
        self, *args: str, timeout: float = 600, env_extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **(env_extra or {}),
            **os.environ,
            "HOME": str(self.home),
            # etcd snapshots refuse shared temp directories such as /tmp.
            "INVOKE_NODEOPS_ETCD_BACKUP_DIR": str(self.backups),
        }
        env.pop("NODEOPS_INVENTORY", None)
        return subprocess.run(
            [sys.executable, "-m", "nodeops", *args]
            + ([] if args[0].startswith("lab.") else ["-i", str(self.inventory)]),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )

    def fingerprints(self) -> dict[str, str]:
        return {node: self.sh(node, FINGERPRINT) for node in NODES}

    def nodes(self) -> dict[str, Any]:
        items = json.loads(self.sh("cp1", f"{KUBECTL} get nodes -o json"))["items"]
        return {n["metadata"]["name"]: n for n in items}


@pytest.fixture(scope="module")
def lab(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    name = fresh_lab_name()
    spec = nodeops_lab.default_spec(
        name, workers=3, worker_os=("ubuntu-24.04", "debian-12", "rocky-9")
    )
    inventory = tmp_path_factory.mktemp("upgrade-inventory") / "lab.yaml"
    home = tmp_path_factory.mktemp("upgrade-home")
    backups = Path("/var/lib/nodeops-e2e") / name
    try:
        state = nodeops_lab.up(spec, inventory_path=inventory)
        cluster.build_cluster(state, version="1.29.3", timeout=60)
        yield Lab(state, inventory, home, backups)
    finally:
        nodeops_lab.down(name)
        shutil.rmtree(backups, ignore_errors=True)
        with contextlib.suppress(OSError):
            backups.parent.rmdir()


DRAIN = ("--force", "--delete-emptydir-data")  # the lab runs a bare pod and an emptyDir pod


def test_worker_is_refused_while_the_control_plane_is_behind(lab: Lab) -> None:
    before = lab.fingerprints()
    run = lab.nodeops("upgrade", "--node", "worker1", "--to", "1.30.2", *DRAIN)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "worker1: the control plane is not ahead of it" in run.stderr
    assert "kube-apiserver on cp1 is at 1.29.3" in run.stderr
    assert lab.fingerprints() == before


def test_bad_targets_are_refused_before_any_change(lab: Lab) -> None:
    before = lab.fingerprints()
    skip = lab.nodeops("upgrade", "--node", "cp1", "--to", "1.31", *DRAIN)
    assert skip.returncode == 2, skip.stdout + skip.stderr
    assert "one minor at a time" in skip.stderr
    for target, message in (
        ("1.28.9", "downgrades are refused"),
        ("1.29.99", "1.29.99 is not there"),
        ("1.30.2;touch /tmp/pwn", "1.30.2;touch /tmp/pwn"),
    ):
        run = lab.nodeops("upgrade-cluster", "--to", target, *DRAIN)
        assert run.returncode == 2, (target, run.stdout, run.stderr)
        assert message in run.stderr, (target, run.stderr)
    run = lab.nodeops("upgrade-cluster", "--to", "1.30")
    assert run.returncode == 2
    assert "kubectl drain would refuse without --" in run.stderr
    assert "--force" in run.stderr and "--delete-emptydir-data" in run.stderr
    assert lab.fingerprints() == before


def test_dry_run_prints_the_runbook_and_leaves_every_node_byte_identical(lab: Lab) -> None:
    before = lab.fingerprints()
    run = lab.nodeops("upgrade-cluster", "--to", "1.30", "--dry-run", *DRAIN)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "Upgrade from 1.29.3 to the latest patch the v1.30 repository serves" in out
    assert "1. control plane cp1 [control-plane, now v1.29.3, kubeadm upgrade apply]" in out
    assert out.index("cp1") < out.index("worker1") < out.index("worker3")
    assert "Drain node" in out
    hops = lab.nodeops("upgrade-cluster", "--to", "1.31", "--dry-run", "--format", "json", *DRAIN)
    assert hops.returncode == 0, hops.stderr
    book = json.loads(hops.stdout)
    assert book["minor"] == "1.30" and book["later_hops"] == ["1.31 (its latest patch)"]
    assert lab.fingerprints() == before
    assert not any(n["spec"].get("unschedulable") for n in lab.nodes().values())


def test_target_not_served_stops_before_any_cordon(lab: Lab) -> None:
    repo = "cat /etc/apt/sources.list.d/kubernetes.list; dpkg-query -W kubeadm kubelet kubectl"
    before = lab.sh("cp1", repo)
    run = lab.nodeops("upgrade", "--node", "cp1", "--to", "1.30.99", *DRAIN)
    assert run.returncode == 1, run.stdout + run.stderr
    assert re.search(
        r"the v1\.30 repository serves 1\.30\.0 … 1\.30\.\d+; 1\.30\.99 is not there", run.stderr
    ), run.stderr
    assert "Switch package repository" in run.stderr
    assert "resume with: nodeops upgrade --to 1.30.99" in run.stderr
    assert lab.sh("cp1", repo) == before
    assert not lab.nodes()["cp1"]["spec"].get("unschedulable")
    assert "nodeops.lock" not in lab.sh("cp1", "ls /etc/kubernetes/tmp")


def test_full_upgrade_through_two_minors(lab: Lab) -> None:
    cordon = lab.nodeops("cordon", "--node", "worker3")  # an operator's cordon, before the run
    assert cordon.returncode == 0, cordon.stderr
    started = time.monotonic()
    run = lab.nodeops("upgrade-cluster", "--to", "1.31", "--max-unavailable", "2", *DRAIN)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr
    windows = re.findall(r"^(\w+): at (1\.3[01])\.\d+ .*cordoned ([0-9.]+) s\)$", run.stdout, re.M)
    print(f"\nupgrade-cluster 1.29.3 -> 1.30 -> 1.31: {seconds:.1f} s wall; cordoned: {windows}")
    # worker3 was cordoned already: no window of nodeops' own
    assert sorted((n, m) for n, m, _ in windows) == sorted(
        (n, m) for n in ("cp1", "worker1", "worker2") for m in ("1.30", "1.31")
    )
    assert "(hop 1 of 2)" in run.stdout
    assert run.stdout.index("Upgrade from 1.29.3") < run.stdout.index("Upgrade from 1.30.")
    target = re.search(r"every node is at (1\.31\.\d+)", run.stdout)
    assert target, run.stdout
    version = target.group(1)
    nodes = lab.nodes()
    for name, node in nodes.items():
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", name
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{version}", name
    assert nodes["worker3"]["spec"].get("unschedulable") is True
    assert not any(nodes[n]["spec"].get("unschedulable") for n in ("cp1", "worker1", "worker2"))
    for name in ("cp1", "worker1", "worker2"):
        assert lab.sh(name, "apt-mark showhold").split() == ["kubeadm", "kubectl", "kubelet"]
        assert f"{version}-" in lab.sh(name, "dpkg-query -W kubelet")
    assert "exclude=kubelet kubeadm kubectl" in lab.sh(
        "worker3", "cat /etc/yum.repos.d/kubernetes.repo"
    )
    assert f"kubelet-{version}-" in lab.sh("worker3", "rpm -q kubelet")
    images = lab.sh(
        "cp1",
        f"{KUBECTL} get pods -n kube-system -o jsonpath="
        "'{range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}'",
    )
    assert f"kube-apiserver:v{version}" in images
    snapshots = [p for p in lab.backups.rglob("*") if p.is_file() and p.suffix != ".json"]
    assert snapshots, f"no etcd snapshot in {lab.backups}"
    assert all(p.stat().st_mode & 0o077 == 0 for p in snapshots)
    journal = lab.home / ".local/state/nodeops/journal"
    events = [json.loads(line) for p in journal.glob("*upgrade-cluster*") for line in p.open()]
    assert any(e.get("step") == "etcd-snapshot" and e.get("status") == "changed" for e in events)
    facts = lab.nodeops("facts", "--all", "--json")
    held = {n: set(f["held"]) for n, f in json.loads(facts.stdout).items()}
    assert all({"kubeadm", "kubelet", "kubectl"} <= h for h in held.values()), held


def test_a_second_run_changes_nothing(lab: Lab) -> None:
    before = lab.fingerprints()
    run = lab.nodeops("upgrade-cluster", "--to", "1.31", *DRAIN)
    assert run.returncode == 0, run.stderr
    assert "Nothing to do" in run.stdout
    assert lab.fingerprints() == before
    assert lab.nodes()["worker3"]["spec"].get("unschedulable") is True


def test_blocked_drain_gives_the_node_back_and_resume_finishes(lab: Lab) -> None:
    """Case 19 and resume: a PDB blocks the drain; the run stops with the node uncordoned
    and nothing installed on it; after the budget is relaxed, --resume finishes the run."""
    fault = lab.nodeops(
        "lab.fault", "--name", lab.state.name, "--node", "cp1", "--kind", "pdb-blocking"
    )
    assert fault.returncode == 0, fault.stderr
    quick = {"INVOKE_NODEOPS_DRAIN_TIMEOUT": "10"}
    try:
        run = lab.nodeops("upgrade-cluster", "--to", "1.32", *DRAIN, env_extra=quick)
    finally:
        cleared = lab.nodeops("lab.fault", "--name", lab.state.name, "--clear", "--kind", "all")
        assert cleared.returncode == 0, cleared.stderr
    assert run.returncode == 1, run.stdout + run.stderr
    failed = re.search(
        r"^error: (\w+): step \"Drain node\" failed: .*uncordoned again", run.stderr, re.M
    )
    assert failed, run.stderr
    node = failed.group(1)
    assert "no package was changed" in run.stderr
    assert "disruption budget" in run.stderr
    assert "node state now: Ready, schedulable" in run.stderr
    assert not lab.nodes()[node]["spec"].get("unschedulable")
    assert "1.31." in lab.sh(node, "kubelet --version")
    resume = re.search(r"resume with: (nodeops upgrade-cluster .* --resume \S+)", run.stderr)
    assert resume, run.stderr
    words = resume.group(1).split()[1:]
    assert "-i" in words
    # Case 16 on the way: the next `kubeadm upgrade node` on worker2 fails once.
    fault = lab.nodeops(
        "lab.fault", "--name", lab.state.name, "--node", "worker2", "--kind", "kubeadm-fail"
    )
    assert fault.returncode == 0, fault.stderr
    again = lab.nodeops(*words[: words.index("-i")], *words[words.index("-i") + 2 :])
    assert again.returncode == 0, again.stdout + again.stderr
    run_id = words[-1]
    events = [json.loads(line) for line in journal_file(lab, run_id).open()]
    attempts = [
        e
        for e in events
        if e.get("event") == "command"
        and e.get("node") == "worker2"
        and "kubeadm upgrade node" in e.get("command", "")
    ]
    assert [e["exit_code"] for e in attempts] == [1, 0], attempts
    nodes = lab.nodes()
    for name, obj in nodes.items():
        assert obj["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.32."), name
    assert nodes["worker3"]["spec"].get("unschedulable") is True
    assert not any(nodes[n]["spec"].get("unschedulable") for n in ("cp1", "worker1", "worker2"))


def journal_file(lab: Lab, run_id: str) -> Path:
    return lab.home / ".local/state/nodeops/journal" / f"{run_id}.jsonl"


def test_kubeadm_apply_rolled_back_stops_the_run_and_resume_uncordons(lab: Lab) -> None:
    """Case 17: kubeadm upgrade apply fails and rolls back on cp1. The run stops with cp1
    cordoned and its kubelet untouched; the resumed run (the journal says nodeops cordoned
    cp1) finishes and uncordons it."""
    fault = lab.nodeops(
        "lab.fault", "--name", lab.state.name, "--node", "cp1", "--kind", "kubeadm-fail"
    )
    assert fault.returncode == 0, fault.stderr
    run = lab.nodeops("upgrade-cluster", "--to", "1.33", *DRAIN)
    assert run.returncode == 1, run.stdout + run.stderr
    assert 'cp1: step "Run kubeadm upgrade" failed' in run.stderr
    assert "the node stays cordoned" in run.stderr
    assert "node state now: Ready, cordoned" in run.stderr
    assert "not started: the line was stopped" in run.stderr
    assert lab.nodes()["cp1"]["spec"].get("unschedulable") is True
    assert "1.32." in lab.sh("cp1", "dpkg-query -W kubelet")
    assert lab.sh("cp1", "apt-mark showhold").split() == ["kubeadm", "kubectl", "kubelet"]
    assert "v1.32." in lab.sh("cp1", "grep image: /etc/kubernetes/manifests/kube-apiserver.yaml")
    resume = re.search(r"resume with: nodeops (upgrade-cluster .* --resume (\S+))", run.stderr)
    assert resume, run.stderr
    words = resume.group(1).split()
    again = lab.nodeops(*words[: words.index("-i")], *words[words.index("-i") + 2 :])
    assert again.returncode == 0, again.stdout + again.stderr
    nodes = lab.nodes()
    for name, obj in nodes.items():
        assert obj["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.33."), name
    assert not nodes["cp1"]["spec"].get("unschedulable")
    assert nodes["worker3"]["spec"].get("unschedulable") is True
