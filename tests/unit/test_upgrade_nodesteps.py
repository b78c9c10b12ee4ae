"""A node's upgrade steps over a scripted node: exact commands, order, failures, cleanup."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from nodeops.journal import cordoned_by_run, read
from nodeops.upgrade.execute import run_node
from tests.unit.test_upgrade_fakes import FakeWorld

KUBECTL = "cp1: kubectl --kubeconfig=/etc/kubernetes/admin.conf"
GET = f"{KUBECTL} get node -o json -- worker1"
DPKG = "worker1: dpkg-query -W -f '${Package}\\t${Version}\\n' kubeadm kubelet kubectl"
RPM = "worker1: rpm -q --qf '%{NAME}\\t%{VERSION}-%{RELEASE}\\n' kubeadm kubelet kubectl"
RUN = "/etc/kubernetes/tmp/nodeops-RUN"
APT = "worker1: env DEBIAN_FRONTEND=noninteractive apt-get"

APT_WORKER = [
    "worker1: <facts script>",
    GET,
    DPKG,
    "worker1: dpkg --audit",
    "worker1: df -Pk /var",
    "worker1: cat -- /etc/apt/sources.list.d/kubernetes.list",
    f"worker1: mkdir -p -m 0700 -- {RUN}",
    f"worker1: cp -p -- /etc/apt/sources.list.d/kubernetes.list {RUN}/kubernetes.list.orig",
    f"worker1: umask 022; cat > {RUN}/kubernetes.list.new && chmod 0644 {RUN}/kubernetes.list.new"
    f" && mv -T -- {RUN}/kubernetes.list.new /etc/apt/sources.list.d/kubernetes.list",
    f"{APT} -o DPkg::Lock::Timeout=120 update",
    "worker1: env LC_ALL=C apt-cache madison kubeadm",
    DPKG,
    f"{APT} install -y --download-only --allow-change-held-packages -o DPkg::Lock::Timeout=120"
    " kubeadm=1.30.2-1.1 kubectl=1.30.2-1.1 kubelet=1.30.2-1.1",
    GET,
    GET,
    f"{KUBECTL} cordon -- worker1",
    GET,
    f"{KUBECTL} drain --timeout=600s --ignore-daemonsets -- worker1",
    GET,
    DPKG,
    f"{APT} install -y --allow-change-held-packages -o Dpkg::Options::=--force-confold"
    " -o DPkg::Lock::Timeout=120 kubeadm=1.30.2-1.1",
    "worker1: apt-mark hold kubeadm",
    DPKG,
    "worker1: pgrep -f '[k]ubeadm upgrade'",
    DPKG,
    "worker1: kubeadm upgrade node",
    DPKG,
    f"{APT} install -y --allow-change-held-packages -o Dpkg::Options::=--force-confold"
    " -o DPkg::Lock::Timeout=120 kubectl=1.30.2-1.1 kubelet=1.30.2-1.1",
    "worker1: apt-mark hold kubectl kubelet",
    DPKG,
    GET,
    "worker1: systemctl daemon-reload && systemctl restart kubelet",
    GET,
    GET,
    f"{KUBECTL} uncordon -- worker1",
    GET,
    "worker1: <facts script>",
    DPKG,
    GET,
]


def test_apt_worker_exact_commands_and_order(tmp_path: Path) -> None:
    world = FakeWorld(pm="apt")
    outcome = run_node(world.job(tmp_path))
    assert outcome.ok, outcome.error
    assert world.log == APT_WORKER
    assert world.installed == {n: "1.30.2-1.1" for n in ("kubeadm", "kubelet", "kubectl")}
    assert world.held == {"kubeadm", "kubelet", "kubectl"}
    assert "v1.30/deb/" in world.repo and not world.unschedulable
    assert outcome.cordoned_seconds is not None


def test_dnf_worker_exact_commands_and_order(tmp_path: Path) -> None:
    world = FakeWorld(pm="dnf")
    outcome = run_node(world.job(tmp_path))
    assert outcome.ok, outcome.error
    sent = world.log
    package_cmds = [c for c in sent if " dnf " in f" {c.split(': ', 1)[1]}"]
    assert package_cmds == [
        "worker1: dnf -y makecache --refresh",
        "worker1: env LC_ALL=C dnf -q list --showduplicates kubeadm --disableexcludes=kubernetes",
        "worker1: dnf install -y --downloadonly --disableexcludes=kubernetes"
        " kubeadm-1.30.2-150500.1.1 kubectl-1.30.2-150500.1.1 kubelet-1.30.2-150500.1.1",
        "worker1: dnf install -y kubeadm-1.30.2-150500.1.1 --disableexcludes=kubernetes",
        "worker1: dnf install -y kubectl-1.30.2-150500.1.1 kubelet-1.30.2-150500.1.1"
        " --disableexcludes=kubernetes",
    ]
    # The dnf steps mirror the apt ones: the same kubectl and kubeadm sequence around them.
    assert [c for c in sent if c.startswith("cp1:")] == [
        c for c in APT_WORKER if c.startswith("cp1:")
    ]
    assert not any("apt-mark" in c for c in sent)  # dnf holds by the repo's exclude= line
    assert "exclude=kubelet kubeadm kubectl" in world.repo and "v1.30/rpm/" in world.repo
    assert sent.index("worker1: kubeadm upgrade node") < sent.index(
        "worker1: dnf install -y kubectl-1.30.2-150500.1.1 kubelet-1.30.2-150500.1.1"
        " --disableexcludes=kubernetes"
    )


def test_packages_are_staged_before_the_cordon(tmp_path: Path) -> None:
    world = FakeWorld()
    run_node(world.job(tmp_path))
    log = world.log
    cordon = log.index(f"{KUBECTL} cordon -- worker1")
    assert max(i for i, c in enumerate(log) if "--download-only" in c) < cordon
    assert max(i for i, c in enumerate(log) if "madison" in c) < cordon
    assert min(i for i, c in enumerate(log) if "--force-confold" in c) > cordon


def test_a_node_gone_not_ready_after_staging_is_not_cordoned(tmp_path: Path) -> None:
    # Staged (checked Ready) while the batch before it was cordoned, NotReady by its turn.
    from nodeops.upgrade.execute import NodeRun

    world = FakeWorld()
    run = NodeRun(world.job(tmp_path)).stage()
    assert run.outcome.ok and run.done == 3
    world.ready = False
    outcome = run.finish()
    assert not outcome.ok and outcome.failed_step == "Record whether the node is schedulable"
    assert "not Ready" in (outcome.error or "") and "nothing was cordoned" in (outcome.error or "")
    assert not any(" cordon " in c for c in world.log) and not world.unschedulable


def test_node_already_at_target_is_skipped_without_cordon(tmp_path: Path) -> None:
    world = FakeWorld(version="1.30.2")
    world.repo = world.repo.replace("v1.29", "v1.30")
    outcome = run_node(world.job(tmp_path))
    assert outcome.ok
    assert not any(" cordon " in c or " drain " in c or "install" in c for c in world.log)
    statuses = {r.step: r.status.value for r in outcome.reports}
    assert statuses["cordon"] == "skipped" and statuses["drain"] == "skipped"
    assert statuses["verify"] == "unchanged"


def test_operator_cordoned_node_stays_cordoned(tmp_path: Path) -> None:
    world = FakeWorld(unschedulable=True)
    outcome = run_node(world.job(tmp_path))
    assert outcome.ok, outcome.error
    assert world.unschedulable
    assert not any(" uncordon " in c or " cordon " in c for c in world.log)
    events = read(next(tmp_path.glob("*.jsonl")))
    assert cordoned_by_run(events) == set()


def test_cordon_whose_read_back_is_schedulable_fails(tmp_path: Path) -> None:
    world = FakeWorld(cordon_works=False)
    outcome = run_node(world.job(tmp_path))
    assert not outcome.ok and outcome.failed_step == "Cordon node"
    assert "still schedulable" in (outcome.error or "")
    assert not any(" drain " in c or "--force-confold" in c for c in world.log)
    assert world.installed["kubeadm"] == "1.29.3-1.1"


def test_failed_drain_uncordons_only_what_nodeops_cordoned_and_changes_no_package(
    tmp_path: Path,
) -> None:
    world = FakeWorld(drain_ok=False)
    outcome = run_node(world.job(tmp_path))
    assert not outcome.ok and outcome.failed_step == "Drain node"
    assert "uncordoned again" in (outcome.error or "")
    assert "disruption budget" in outcome.output
    assert not world.unschedulable
    assert world.installed["kubeadm"] == "1.29.3-1.1"
    assert not any("--force-confold" in c for c in world.log)
    events = read(next(tmp_path.glob("*.jsonl")))
    assert cordoned_by_run(events) == set()


def test_failed_drain_of_operator_cordoned_node_leaves_it_cordoned(tmp_path: Path) -> None:
    world = FakeWorld(drain_ok=False, unschedulable=True)
    outcome = run_node(world.job(tmp_path))
    assert not outcome.ok and "left cordoned" in (outcome.error or "")
    assert world.unschedulable
    assert not any(" uncordon " in c for c in world.log)


def test_cleanup_re_holds_after_a_failing_install(tmp_path: Path) -> None:
    world = FakeWorld(install_fails=True)
    world.held.discard("kubeadm")  # as if the failed dpkg run lost the hold
    outcome = run_node(world.job(tmp_path))
    assert not outcome.ok and outcome.failed_step == "Install kubeadm"
    failed_at = max(i for i, c in enumerate(world.log) if "--force-confold" in c)
    assert world.log[failed_at + 1] == "worker1: dpkg --audit"  # clean: a plain failure
    assert world.log[failed_at + 2] == "worker1: apt-mark hold kubeadm kubectl kubelet"
    assert world.held == {"kubeadm", "kubelet", "kubectl"}
    assert world.unschedulable  # stays cordoned: the node is half-way
    assert "cordoned" in outcome.state


def test_target_not_served_restores_the_repo_before_any_cordon(tmp_path: Path) -> None:
    world = FakeWorld()
    before = world.repo
    job = world.job(tmp_path)
    job.target = type(job.target)(1, 30, 9) if job.target else None
    outcome = run_node(job)
    assert not outcome.ok and outcome.failed_step == "Switch package repository"
    assert "the v1.30 repository serves 1.30.0 … 1.30.2; 1.30.9 is not there" in (
        outcome.error or ""
    )
    assert world.repo == before
    restore = (
        f"worker1: cp -p -- {RUN}/kubernetes.list.orig /etc/apt/sources.list.d/kubernetes.list"
    )
    assert world.log[world.log.index(restore) + 1] == f"{APT} -o DPkg::Lock::Timeout=120 update"
    assert not any(" cordon " in c or " drain " in c or "install" in c for c in world.log)


def test_bare_minor_reads_the_latest_patch_after_the_switch(tmp_path: Path) -> None:
    world = FakeWorld()
    outcome = run_node(world.job(tmp_path, target=None))
    assert outcome.ok, outcome.error
    assert str(outcome.target) == "1.30.2"


def test_kubeadm_upgrade_node_is_retried_once_and_both_outputs_kept(tmp_path: Path) -> None:
    world = FakeWorld(upgrade_node_failures=1)
    outcome = run_node(world.job(tmp_path))
    assert outcome.ok, outcome.error
    assert world.log.count("worker1: kubeadm upgrade node") == 2
    world2 = FakeWorld(upgrade_node_failures=2)
    job = world2.job(tmp_path / "two")
    outcome2 = run_node(job)
    assert not outcome2.ok and outcome2.failed_step == "Run kubeadm upgrade"
    assert outcome2.output.count("couldn't fetch the kubeadm-config ConfigMap") == 2
    assert "attempt 1" in outcome2.output and "attempt 2" in outcome2.output
    assert world2.unschedulable


def test_kubelet_never_ready_fails_bounded_and_stays_cordoned(tmp_path: Path) -> None:
    world = FakeWorld()
    original = world.respond

    def never_ready(command):  # type: ignore[no-untyped-def]
        code, out, err = original(command)
        world.ready = "restart kubelet" not in command.render(as_root=True) and world.ready
        return code, out, err

    world.respond = never_ready  # type: ignore[method-assign]
    outcome = run_node(world.job(tmp_path))
    assert (
        not outcome.ok
        and outcome.failed_step == "Wait until the node is Ready at the target version"
    )
    assert "stays cordoned" in (outcome.error or "") and "failed to run Kubelet" in outcome.output
    assert world.unschedulable


def test_every_command_is_journaled_with_its_step(tmp_path: Path) -> None:
    world = FakeWorld()
    run_node(world.job(tmp_path))
    events = read(next(tmp_path.glob("*.jsonl")))
    commands = [e for e in events if e["event"] == "command"]
    assert len(commands) == len(world.log)
    assert {e["step"] for e in commands} >= {"cordon", "drain", "install-kubeadm", "verify"}
    finished = {e["step"]: e["status"] for e in events if e["event"] == "step-finished"}
    assert finished["cordon"] == "changed" and finished["check-node"] == "unchanged"
    assert json.dumps(events)  # plain JSON


def test_resume_uncordons_a_node_this_run_cordoned(tmp_path: Path) -> None:
    world = FakeWorld(version="1.30.2", unschedulable=True)
    world.repo = world.repo.replace("v1.29", "v1.30")
    outcome = run_node(world.job(tmp_path, earlier=True))
    assert outcome.ok, outcome.error
    assert not world.unschedulable
    assert f"{KUBECTL} uncordon -- worker1" in world.log


def test_api_unavailable_for_a_while_is_waited_out(tmp_path: Path) -> None:
    world = FakeWorld(api_down_after_restart=3)
    outcome = run_node(world.job(tmp_path))
    assert outcome.ok, outcome.error
    assert not world.unschedulable


def test_api_unavailable_too_long_fails_and_stays_cordoned(tmp_path: Path) -> None:
    world = FakeWorld(api_down_after_restart=1_000)
    outcome = run_node(world.job(tmp_path))
    assert not outcome.ok
    assert outcome.failed_step == "Wait until the node is Ready at the target version"
    assert "the API did not answer" in (outcome.error or "")
    assert world.unschedulable and world.installed["kubelet"] == "1.30.2-1.1"


def test_partial_upgrade_resumes_at_the_kubelet_and_never_downgrades(tmp_path: Path) -> None:
    """Case 13: kubeadm already at 1.30.2, kubelet at 1.29.3 (an interrupted run)."""
    world = FakeWorld()
    world.installed["kubeadm"] = "1.30.2-1.1"
    world.repo = world.repo.replace("v1.29", "v1.30")
    outcome = run_node(world.job(tmp_path))
    assert outcome.ok, outcome.error
    statuses = {r.step: r.status.value for r in outcome.reports}
    assert statuses["switch-repo"] == "changed"  # only the metadata refresh
    assert statuses["install-kubeadm"] == "unchanged"
    assert statuses["kubeadm-upgrade"] == "changed"
    assert statuses["install-kubelet"] == "changed"
    assert not any("kubeadm=" in c and "--force-confold" in c for c in world.log)
    assert not any("cp -p" in c for c in world.log)  # the repo file was already right
    # A second run changes nothing and never cordons.
    again = FakeWorld(version="1.30.2")
    again.repo = again.repo.replace("v1.29", "v1.30")
    second = run_node(again.job(tmp_path / "again"))
    assert second.ok
    assert {r.status.value for r in second.reports} <= {"skipped", "unchanged"}


def test_newer_kubeadm_than_the_target_is_refused(tmp_path: Path) -> None:
    world = FakeWorld()
    world.installed["kubeadm"] = "1.30.5-1.1"
    outcome = run_node(world.job(tmp_path))
    assert not outcome.ok and "never downgrades" in (outcome.error or "")
    assert outcome.failed_step == "Download packages before cordoning"
    assert not any(" cordon " in c for c in world.log)


def test_dnf_node_without_exclude_is_refused_in_preflight(tmp_path: Path) -> None:
    world = FakeWorld(pm="dnf")
    world.repo = "\n".join(line for line in world.repo.splitlines() if "exclude" not in line)
    outcome = run_node(world.job(tmp_path))
    assert not outcome.ok and outcome.failed_step == "Check node"
    assert "not held: kubeadm, kubelet, kubectl" in (outcome.error or "")
    # facts, the Node, installed versions, df, and the Node again for the report: read-only
    assert world.log == ["worker1: <facts script>", GET, RPM, "worker1: df -Pk /var", GET]


def test_not_ready_node_is_refused_in_preflight(tmp_path: Path) -> None:
    world = FakeWorld(ready=False)
    outcome = run_node(world.job(tmp_path))
    assert not outcome.ok and "the node is not Ready" in (outcome.error or "")
    assert not any(" cordon " in c or "apt-get" in c for c in world.log)


def test_case_14_interrupted_dpkg_stops_cordoned_with_the_remediation(tmp_path: Path) -> None:
    world = FakeWorld(install_interrupted=True)
    outcome = run_node(world.job(tmp_path))
    assert not outcome.ok and outcome.failed_step == "Install kubeadm"
    assert "dpkg was interrupted" in (outcome.error or "")
    assert "sudo dpkg --configure -a" in (outcome.error or "")
    assert "--repair-dpkg" in (outcome.error or "")
    assert "stays cordoned" in (outcome.error or "") and world.unschedulable
    assert not any("--configure -a" in c for c in world.log)  # only when asked
    assert world.held == {"kubeadm", "kubelet", "kubectl"}


def test_interrupted_dpkg_is_refused_in_preflight_unless_repair_is_asked(tmp_path: Path) -> None:
    from tests.unit.test_upgrade_fakes import UNPACKED_AUDIT

    world = FakeWorld(dpkg_audit=UNPACKED_AUDIT)
    outcome = run_node(world.job(tmp_path))
    assert not outcome.ok and outcome.failed_step == "Check node"
    assert "dpkg was interrupted and left packages unfinished (kubeadm)" in (outcome.error or "")
    assert not world.unschedulable and not any(" cordon " in c for c in world.log)

    world = FakeWorld(dpkg_audit=UNPACKED_AUDIT)
    job = world.job(tmp_path)
    job.settings = dataclasses.replace(job.settings, repair_dpkg=True)
    outcome = run_node(job)
    assert outcome.ok, outcome.error
    repair = world.log.index(
        "worker1: env DEBIAN_FRONTEND=noninteractive dpkg --force-confold --configure -a"
    )
    assert world.log.index("worker1: df -Pk /var") < repair
    assert repair < world.log.index(f"{KUBECTL} cordon -- worker1")


def test_a_lost_connection_is_reconnected_and_the_step_runs_again(tmp_path: Path) -> None:
    world = FakeWorld(drop_connection_at="kubeadm upgrade node")
    outcome = run_node(world.job(tmp_path))
    assert outcome.ok, outcome.error
    events = [json.loads(line) for line in (tmp_path).glob("*.jsonl").__next__().open()]
    kinds = [e["event"] for e in events if e["event"] in ("connection-lost", "reconnected")]
    assert kinds == ["connection-lost", "reconnected"]
    # The step started over from its checks: a still-running kubeadm is waited for first.
    last_pgrep = max(i for i, c in enumerate(world.log) if c.startswith("worker1: pgrep"))
    assert world.log[last_pgrep + 2] == "worker1: kubeadm upgrade node"
    assert world.log.count("worker1: kubeadm upgrade node") == 2
    assert not world.unschedulable


def test_a_node_that_does_not_come_back_fails_the_step_and_stays_cordoned(tmp_path: Path) -> None:
    world = FakeWorld(drop_connection_at="systemctl daemon-reload", gone_after_drop=True)
    job = world.job(tmp_path)
    job.settings = dataclasses.replace(job.settings, reconnect_seconds=3)
    outcome = run_node(job)
    assert not outcome.ok and outcome.failed_step == "Restart kubelet"
    assert "did not answer again within 3 s" in (outcome.error or "")
    assert world.unschedulable and not any(" uncordon " in c for c in world.log)
