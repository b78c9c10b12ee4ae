"""Upgrading the lab cluster with the real CLI over SSH: refusals, dry run, a full upgrade.

One lab for the module: cp1 (Ubuntu 22.04), worker1 (Ubuntu 24.04), worker2 (Debian 12),
worker3 (Rocky 9), kube 1.29.3. The tests run in file order: refusals and the dry runs first
(nothing may change), worker1 one minor down (--allow-downgrade) and back, then a full upgrade
to 1.31 (two hops, 1.30 first), a second run that plans nothing, then faults: a drain blocked
by a budget (to 1.32) and a failed kubeadm apply (to 1.33), each finished by --resume.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.labkit import KUBECTL, UpgradeLab, upgrade_lab

pytestmark = pytest.mark.lab

NODES = ("cp1", "worker1", "worker2", "worker3")


@pytest.fixture(scope="module")
def lab(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UpgradeLab]:
    with upgrade_lab(
        fresh_lab_name(),
        tmp_path_factory.mktemp("upgrade"),
        workers=3,
        worker_os=("ubuntu-24.04", "debian-12", "rocky-9"),
        version="1.29.3",
        timeout=60,
    ) as built:
        yield built


DRAIN = ("--force", "--delete-emptydir-data")  # the lab runs a bare pod and an emptyDir pod


def test_worker_is_refused_while_the_control_plane_is_behind(lab: UpgradeLab) -> None:
    before = lab.fingerprints()
    run = lab.run("upgrade", "--node", "worker1", "--to", "1.30.2", *DRAIN)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "worker1: the control plane is not ahead of it" in run.stderr
    assert "kube-apiserver on cp1 is at 1.29.3" in run.stderr
    assert lab.fingerprints() == before


def test_bad_targets_are_refused_before_any_change(lab: UpgradeLab) -> None:
    before = lab.fingerprints()
    skip = lab.run("upgrade", "--node", "cp1", "--to", "1.31", *DRAIN)
    assert skip.returncode == 2, skip.stdout + skip.stderr
    assert "one minor at a time" in skip.stderr
    for target, message in (
        ("1.28.9", "downgrades are refused"),
        ("1.29.99", "1.29.99 is not there"),
        ("1.30.2;touch /tmp/pwn", "1.30.2;touch /tmp/pwn"),
    ):
        run = lab.run("upgrade-cluster", "--to", target, *DRAIN)
        assert run.returncode == 2, (target, run.stdout, run.stderr)
        assert message in run.stderr, (target, run.stderr)
    run = lab.run("upgrade-cluster", "--to", "1.30")
    assert run.returncode == 2
    assert "kubectl drain would refuse without --" in run.stderr
    assert "--force" in run.stderr and "--delete-emptydir-data" in run.stderr
    assert lab.fingerprints() == before


REPO_LIST = "/etc/apt/sources.list.d/kubernetes.list"


def _kubelet_version(lab: UpgradeLab, node: str) -> str:
    return str(lab.nodes()[node]["status"]["nodeInfo"]["kubeletVersion"])


def _wait_kubelet(lab: UpgradeLab, node: str, prefix: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not _kubelet_version(lab, node).startswith(prefix):
        if time.monotonic() > deadline:
            raise AssertionError(f"{node}: kubelet not at {prefix}: {_kubelet_version(lab, node)}")
        time.sleep(0.5)


def test_case_23_skew_is_refused_before_any_change(lab: UpgradeLab) -> None:
    """Case 23 one minor lower (the lab starts at 1.29, the case's cluster is at 1.30):
    1.31.0 for a node is refused (one minor at a time), 1.28.9 as a downgrade, a kubelet one minor
    ahead of the control plane (worker1 at 1.30) blocks every hop; exit 2, no journal, no
    node changed."""
    before = lab.fingerprints()
    journals = lab.home / ".local/state/nodeops/journal"
    earlier = sorted(journals.glob("*")) if journals.is_dir() else []
    # A node moves one minor at a time (upgrade-cluster instead plans a hop per minor).
    for task, target, message in (
        ("upgrade", "1.31.0", "one minor at a time: the control plane is at 1.29.3; upgrade"),
        ("upgrade-cluster", "1.28.9", "older than the control plane (1.29.3): downgrades are"),
    ):
        where = ["--node", "cp1"] if task == "upgrade" else []
        run = lab.run(task, *where, "--to", target, *DRAIN)
        assert run.returncode == 2, (target, run.stdout, run.stderr)
        assert "refused before any change" in run.stderr and message in run.stderr, run.stderr
    # worker1's kubelet one minor ahead, as a hand upgrade would leave it.
    lab.sh(
        "worker1",
        f"cp -p {REPO_LIST} /root/kubernetes.list.orig && sed -i 's#/v1.29/#/v1.30/#' {REPO_LIST}"
        " && apt-get update -q >/dev/null && apt-get install -y -q --allow-change-held-packages"
        " kubelet=$(apt-cache madison kubelet | awk 'NR==1{print $3}') >/dev/null"
        " && systemctl restart kubelet",
    )
    try:
        _wait_kubelet(lab, "worker1", "v1.30.")
        ahead = _kubelet_version(lab, "worker1").lstrip("v")
        run = lab.run("upgrade-cluster", "--to", "1.30", *DRAIN)
        assert run.returncode == 2, run.stdout + run.stderr
        assert (
            f"kubelet on worker1 is at {ahead}, newer than every kube-apiserver (newest 1.29.3"
            " on cp1); the skew policy never allows that"
        ) in run.stderr, run.stderr
        assert not any(n["spec"].get("unschedulable") for n in lab.nodes().values())
    finally:
        lab.sh(
            "worker1",
            f"cp -p /root/kubernetes.list.orig {REPO_LIST} && rm /root/kubernetes.list.orig"
            " && apt-get update -q >/dev/null && apt-get install -y -q --allow-downgrades"
            " --allow-change-held-packages kubelet=1.29.3-1.1 >/dev/null"
            " && systemctl restart kubelet",
        )
        _wait_kubelet(lab, "worker1", "v1.29.3")
    assert lab.fingerprints() == before
    assert (sorted(journals.glob("*")) if journals.is_dir() else []) == earlier


def test_case_23_a_downgrade_is_planned_with_allow_downgrade(lab: UpgradeLab) -> None:
    """Case 23: 1.28.9 is refused *unless --allow-downgrade*: with it, a dry run plans it,
    workers first, and changes nothing; two minors down stays refused even with the flag."""
    before = lab.fingerprints()
    run = lab.run("upgrade-cluster", "--to", "1.28.9", "--allow-downgrade", "--dry-run", *DRAIN)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert out.startswith("DOWNGRADE from 1.29.3 to 1.28.9 (--allow-downgrade)\n"), out
    assert "order: worker batches first, then the control planes one by one" in out
    assert out.index("worker1 [worker") < out.index("control plane cp1 [control-plane")
    assert "cp1 [control-plane, now v1.29.3, kubeadm upgrade apply]" in out
    plan = lab.run("plan", "--to", "1.28.9", "--allow-downgrade", "--format", "json", *DRAIN)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["downgrade"] is True
    far = lab.run("upgrade-cluster", "--to", "1.27.9", "--allow-downgrade", *DRAIN)
    assert far.returncode == 2, far.stdout + far.stderr
    assert "a downgrade goes back at most one minor, from 1.29.3 to 1.28" in far.stderr
    assert lab.fingerprints() == before
    assert not any(n["spec"].get("unschedulable") for n in lab.nodes().values())


def test_case_23_a_worker_goes_one_minor_down_and_back(lab: UpgradeLab) -> None:
    """A minor downgrade starts with the workers: worker1 goes to 1.28.15 (apt, which refuses
    a downgrade without --allow-downgrades) and is upgraded back to 1.29.3; holds stay on.
    (dnf's `dnf downgrade` has its exact commands in tests/unit/test_upgrade_downgrade.py.)"""
    worker = "worker1"
    run = lab.run("upgrade", "--node", worker, "--to", "1.28.15", *DRAIN)
    assert run.returncode == 2 and "downgrades are refused" in run.stderr, run.stderr
    started = time.monotonic()
    down = lab.run("upgrade", "--node", worker, "--to", "1.28.15", "--allow-downgrade", *DRAIN)
    seconds = time.monotonic() - started
    assert down.returncode == 0, down.stdout + down.stderr
    assert down.stdout.startswith("DOWNGRADE from 1.29.3 to 1.28.15"), down.stdout
    assert _kubelet_version(lab, worker) == "v1.28.15"
    assert "1.28.15-" in lab.sh(worker, "dpkg-query -W kubelet").stdout
    assert lab.sh(worker, "apt-mark showhold").stdout.split() == ["kubeadm", "kubectl", "kubelet"]
    run_id = re.search(r"^run (\S+);", down.stdout, re.M)
    assert run_id, down.stdout
    started_event = json.loads(journal_file(lab, run_id.group(1)).open().readline())
    assert started_event["downgrade"] == {"from": "1.29.3", "order": "workers first"}
    commands = journal_commands(lab, run_id.group(1))
    assert [c for c in commands if re.search("apt-get install -y .*--allow-downgrades", c)]
    back = lab.run("upgrade", "--node", worker, "--to", "1.29.3", *DRAIN)
    assert back.returncode == 0, back.stdout + back.stderr
    assert _kubelet_version(lab, worker) == "v1.29.3"
    assert not lab.nodes()[worker]["spec"].get("unschedulable")
    print(f"\n{worker} 1.29.3 -> 1.28.15: {seconds:.1f} s wall")


def test_dry_run_prints_the_runbook_and_leaves_every_node_byte_identical(lab: UpgradeLab) -> None:
    before = lab.fingerprints()
    run = lab.run("upgrade-cluster", "--to", "1.30", "--dry-run", *DRAIN)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "Upgrade from 1.29.3 to the latest patch the v1.30 repository serves" in out
    assert "1. control plane cp1 [control-plane, now v1.29.3, kubeadm upgrade apply]" in out
    assert out.index("cp1") < out.index("worker1") < out.index("worker3")
    assert "Drain node" in out
    hops = lab.run("upgrade-cluster", "--to", "1.31", "--dry-run", "--format", "json", *DRAIN)
    assert hops.returncode == 0, hops.stderr
    book = json.loads(hops.stdout)
    assert book["minor"] == "1.30" and book["later_hops"] == ["1.31 (its latest patch)"]
    assert lab.fingerprints() == before
    assert not any(n["spec"].get("unschedulable") for n in lab.nodes().values())


def test_case_12_target_not_in_the_repo_stops_before_any_cordon(lab: UpgradeLab) -> None:
    """Case 12: the node's repo is v1.29 and the v1.30 one does not serve the target: the run
    says what the repository serves, before any cordon or drain; the repo file, packages and
    holds are as before; exit 1 with a resume line; the journal shows no change."""
    repo = (
        "cat /etc/apt/sources.list.d/kubernetes.list; dpkg-query -W kubeadm kubelet kubectl;"
        " apt-mark showhold"
    )
    before = lab.sh("cp1", repo).stdout
    run = lab.run("upgrade", "--node", "cp1", "--to", "1.30.99", *DRAIN)
    assert run.returncode == 1, run.stdout + run.stderr
    assert re.search(
        r"the v1\.30 repository serves 1\.30\.0 … 1\.30\.\d+; 1\.30\.99 is not there", run.stderr
    ), run.stderr
    assert "Switch package repository" in run.stderr
    assert "resume with: nodeops upgrade --to 1.30.99" in run.stderr
    assert lab.sh("cp1", repo).stdout == before
    assert not lab.nodes()["cp1"]["spec"].get("unschedulable")
    assert "nodeops.lock" not in lab.sh("cp1", "ls /etc/kubernetes/tmp").stdout
    run_id = re.search(r"--resume (\S+)", run.stderr)
    assert run_id, run.stderr
    commands = journal_commands(lab, run_id.group(1))
    changes = r"kubectl .*\b(cordon|drain)\b|(apt-get|dnf|yum) install -y (?!--download)|mark"
    assert not [c for c in commands if re.search(changes, c)], commands


def test_case_20_full_upgrade_through_two_minors_keeps_an_operator_cordon(lab: UpgradeLab) -> None:
    """Case 20 (and the plain path): worker3, cordoned by an operator before the run, is
    upgraded but still cordoned afterwards; nodeops never cordons or uncordons it."""
    journals = lab.home / ".local/state/nodeops/journal"
    earlier = set(journals.glob("*")) if journals.is_dir() else set()
    cordon = lab.run("cordon", "--node", "worker3")  # an operator's cordon, before the run
    assert cordon.returncode == 0, cordon.stderr
    started = time.monotonic()
    run = lab.run("upgrade-cluster", "--to", "1.31", "--max-unavailable", "2", *DRAIN)
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
        assert lab.sh(name, "apt-mark showhold").stdout.split() == ["kubeadm", "kubectl", "kubelet"]
        assert f"{version}-" in lab.sh(name, "dpkg-query -W kubelet").stdout
    assert (
        "exclude=kubelet kubeadm kubectl"
        in lab.sh("worker3", "cat /etc/yum.repos.d/kubernetes.repo").stdout
    )
    assert f"kubelet-{version}-" in lab.sh("worker3", "rpm -q kubelet").stdout
    images = lab.sh(
        "cp1",
        f"{KUBECTL} get pods -n kube-system -o jsonpath="
        "'{range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}'",
    ).stdout
    assert f"kube-apiserver:v{version}" in images
    snapshots = [p for p in lab.backups.rglob("*") if p.is_file() and p.suffix != ".json"]
    assert snapshots, f"no etcd snapshot in {lab.backups}"
    assert all(p.stat().st_mode & 0o077 == 0 for p in snapshots)
    journal = lab.home / ".local/state/nodeops/journal"
    events = [json.loads(line) for p in journal.glob("*upgrade-cluster*") for line in p.open()]
    assert any(e.get("step") == "etcd-snapshot" and e.get("status") == "changed" for e in events)
    facts = lab.run("facts", "--all", "--json")
    held = {n: set(f["held"]) for n, f in json.loads(facts.stdout).items()}
    assert all({"kubeadm", "kubelet", "kubectl"} <= h for h in held.values()), held
    events = [
        json.loads(line)
        for p in set(journal.glob("*upgrade-cluster*")) - earlier
        for line in p.open()
    ]
    worker3 = [e for e in events if e.get("event") == "node-state" and e.get("node") == "worker3"]
    assert worker3 and all(e.get("cordoned_by_nodeops") is False for e in worker3), worker3
    assert not [e for e in worker3 if e.get("was_schedulable") is True], worker3
    touched = [
        e["command"]
        for e in events
        if re.search(r"\b(cordon|uncordon) -- worker3\b", e.get("command", ""))
    ]
    assert not touched, touched


def test_a_second_run_changes_nothing(lab: UpgradeLab) -> None:
    before = lab.fingerprints()
    run = lab.run("upgrade-cluster", "--to", "1.31", *DRAIN)
    assert run.returncode == 0, run.stderr
    assert "Nothing to do" in run.stdout
    assert lab.fingerprints() == before
    assert lab.nodes()["worker3"]["spec"].get("unschedulable") is True


PACKAGES = (
    "dpkg-query -W kubeadm kubelet kubectl 2>/dev/null; rpm -q kubeadm kubelet kubectl"
    " 2>/dev/null; apt-mark showhold 2>/dev/null; grep -h ^exclude /etc/yum.repos.d/* 2>/dev/null;"
    " true"
)


def test_case_19_blocked_drain_gives_the_node_back_unchanged(lab: UpgradeLab) -> None:
    """Case 19: a PDB blocks the drain: kubectl drain with a finite --timeout retries the
    eviction, then nodeops uncordons the node (it cordoned it) and stops the run, exit 1;
    no --disable-eviction; the node's packages and holds are as before."""
    packages = {node: lab.sh(node, PACKAGES).stdout for node in NODES}
    fault = lab.run(
        "lab.fault", "--name", lab.state.name, "--node", "cp1", "--kind", "pdb-blocking"
    )
    assert fault.returncode == 0, fault.stderr
    quick = {"INVOKE_NODEOPS_DRAIN_TIMEOUT": "10"}
    try:
        run = lab.run("upgrade-cluster", "--to", "1.32", *DRAIN, env=quick)
    finally:
        cleared = lab.run("lab.fault", "--name", lab.state.name, "--clear", "--kind", "all")
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
    assert "1.31." in lab.sh(node, "kubelet --version").stdout
    assert lab.sh(node, PACKAGES).stdout == packages[node]
    resume = re.search(r"resume with: (nodeops upgrade-cluster .* --resume (\S+))", run.stderr)
    assert resume, run.stderr
    events = [json.loads(line) for line in journal_file(lab, resume.group(2)).open()]
    drains = [
        e
        for e in events
        if e.get("event") == "command" and re.search(rf"\bdrain\b.* -- {node}$", e["command"])
    ]
    assert len(drains) == 1, drains
    assert "--timeout=10s" in drains[0]["command"], drains
    assert not [e for e in events if "--disable-eviction" in e.get("command", "")]
    output = drains[0]["stdout"] + drains[0]["stderr"]
    retries = output.count("will retry after")
    print(f"\ncase 19: kubectl retried the eviction {retries} time(s) within --timeout=10s")
    assert retries >= 1, output
    steps = [e.get("step") for e in events if e.get("node") == node and e.get("event") == "command"]
    assert not [s for s in steps if str(s).startswith("install")], steps  # nothing installed
    words = resume.group(1).split()[1:]
    assert "-i" in words
    lab.notes["resume-19"] = words


def test_case_16_kubeadm_upgrade_node_fails_once_and_is_retried(lab: UpgradeLab) -> None:
    """Case 16 (finishing case 19's run with --resume): worker2's `kubeadm upgrade node`
    fails once; nodeops retries it once and goes on; the journal keeps the output of both
    attempts; every node ends at 1.32, worker3 still cordoned by its operator."""
    words = lab.notes["resume-19"]
    fault = lab.run(
        "lab.fault", "--name", lab.state.name, "--node", "worker2", "--kind", "kubeadm-fail"
    )
    assert fault.returncode == 0, fault.stderr
    again = lab.run(*words[: words.index("-i")], *words[words.index("-i") + 2 :])
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
    first, second = (a["stdout"] + a["stderr"] for a in attempts)
    assert first.strip() and second.strip(), attempts
    assert first != second
    print(f"\ncase 16: first attempt's output ends: {first.strip().splitlines()[-1]!r}")
    nodes = lab.nodes()
    for name, obj in nodes.items():
        assert obj["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.32."), name
    assert nodes["worker3"]["spec"].get("unschedulable") is True
    assert not any(nodes[n]["spec"].get("unschedulable") for n in ("cp1", "worker1", "worker2"))


def journal_file(lab: UpgradeLab, run_id: str) -> Path:
    return lab.home / ".local/state/nodeops/journal" / f"{run_id}.jsonl"


def journal_commands(lab: UpgradeLab, run_id: str) -> list[str]:
    """Every command one run journaled (as displayed, secrets masked)."""
    events = [json.loads(line) for line in journal_file(lab, run_id).open()]
    return [e["command"] for e in events if e.get("event") in ("command", "command-error")]


def test_case_17_kubeadm_apply_rolled_back_stops_the_run_and_resume_uncordons(
    lab: UpgradeLab,
) -> None:
    """Case 17: kubeadm upgrade apply fails and rolls back on cp1. The whole run stops (exit
    1) with cp1 cordoned, its kubelet untouched and kubeadm's backup paths reported and kept
    in /etc/kubernetes/tmp; the resumed run (the journal says nodeops cordoned cp1) finishes
    and uncordons it."""
    fault = lab.run(
        "lab.fault", "--name", lab.state.name, "--node", "cp1", "--kind", "kubeadm-fail"
    )
    assert fault.returncode == 0, fault.stderr
    run = lab.run("upgrade-cluster", "--to", "1.33", *DRAIN)
    assert run.returncode == 1, run.stdout + run.stderr
    assert 'cp1: step "Run kubeadm upgrade" failed' in run.stderr
    assert "the node stays cordoned" in run.stderr
    assert "node state now: Ready, cordoned" in run.stderr
    assert "not started: the line was stopped" in run.stderr
    assert lab.nodes()["cp1"]["spec"].get("unschedulable") is True
    assert "1.32." in lab.sh("cp1", "dpkg-query -W kubelet").stdout
    assert lab.sh("cp1", "apt-mark showhold").stdout.split() == ["kubeadm", "kubectl", "kubelet"]
    assert (
        "v1.32."
        in lab.sh("cp1", "grep image: /etc/kubernetes/manifests/kube-apiserver.yaml").stdout
    )
    reported = re.search(r"kubeadm's backups \(kept\): ([^;]+);", run.stderr)
    assert reported, run.stderr
    backups = reported.group(1).split()
    assert backups and all(b.startswith("/etc/kubernetes/tmp/kubeadm-backup-") for b in backups)
    assert any("kubeadm-backup-manifests-" in b for b in backups), backups
    listed = lab.sh("cp1", "ls -d /etc/kubernetes/tmp/kubeadm-backup-*").stdout.split()
    assert set(backups) <= set(listed), (backups, listed)
    assert not [
        n
        for n in NODES[1:]
        if lab.sh(
            n, "dpkg-query -W kubelet 2>/dev/null; rpm -q kubelet 2>/dev/null; true"
        ).stdout.count("1.33.")
    ]
    resume = re.search(r"resume with: nodeops (upgrade-cluster .* --resume (\S+))", run.stderr)
    assert resume, run.stderr
    words = resume.group(1).split()
    again = lab.run(*words[: words.index("-i")], *words[words.index("-i") + 2 :])
    assert again.returncode == 0, again.stdout + again.stderr
    nodes = lab.nodes()
    for name, obj in nodes.items():
        assert obj["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.33."), name
    assert not nodes["cp1"]["spec"].get("unschedulable")
    assert nodes["worker3"]["spec"].get("unschedulable") is True
    # kubeadm's backups are the operator's: nodeops never removes them.
    assert set(backups) <= set(
        lab.sh("cp1", "ls -d /etc/kubernetes/tmp/kubeadm-backup-*").stdout.split()
    )


def test_case_11_holds_stay_on_every_path(lab: UpgradeLab) -> None:
    """Case 11, over every run of this module (the plain upgrades and the failed ones of
    cases 19 and 17): kubeadm, kubelet and kubectl are held on every node now; no run ever
    lifted a hold without putting it back on that node; installs went through the hold
    (`--allow-change-held-packages` on apt, `--disableexcludes` on dnf)."""
    facts = lab.run("facts", "--all", "--json")
    assert facts.returncode == 0, facts.stderr
    held = {n: set(f["held"]) for n, f in json.loads(facts.stdout).items()}
    assert all({"kubeadm", "kubelet", "kubectl"} <= h for h in held.values()), held
    for node in ("cp1", "worker1", "worker2"):
        assert lab.sh(node, "apt-mark showhold").stdout.split() == ["kubeadm", "kubectl", "kubelet"]
    assert (
        "exclude=kubelet kubeadm kubectl"
        in lab.sh("worker3", "cat /etc/yum.repos.d/kubernetes.repo").stdout
    )
    journals = sorted((lab.home / ".local/state/nodeops/journal").glob("*upgrade*"))
    installs = 0
    for path in journals:
        events = [json.loads(line) for line in path.open()]
        lifted: set[str] = set()
        for e in events:
            command, node = e.get("command", ""), str(e.get("node"))
            if e.get("event") != "command":
                continue
            if re.search(r"apt-mark unhold|versionlock delete", command):
                lifted.add(node)
            elif re.search(r"apt-mark hold|versionlock add", command) and e["exit_code"] == 0:
                lifted.discard(node)
            if re.search(r"(apt-get|dnf|yum) install -y (?!--download)", command):
                installs += 1
                assert "--allow-change-held-packages" in command or "--disableexcludes=" in command
        assert not lifted, (path.name, lifted)
    assert installs >= 8, installs  # the upgrades of this module did install packages
