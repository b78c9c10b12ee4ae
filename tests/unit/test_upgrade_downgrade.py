"""Case 23's opt-in: --allow-downgrade plans one minor down at most, workers first, with the
package managers' downgrade commands; without it, and two minors down, it is refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from invoke.exceptions import Exit

from nodeops import packages
from nodeops.cmd import Cmd
from nodeops.journal import Journal, read
from nodeops.node import Node
from nodeops.platforms import APT, DNF, YUM
from nodeops.runbook import Refused
from nodeops.tasks import upgrade as tasks
from nodeops.transport import FakeTransport
from nodeops.upgrade import execute as execute_mod
from nodeops.upgrade import lock
from nodeops.upgrade.execute import NodeOutcome, execute, run_node
from nodeops.upgrade.nodesteps import NodeJob, UpgradeSettings
from nodeops.versions import Version, parse_package_version
from tests.unit.test_runbook import cluster, plan
from tests.unit.test_sim_kubeadm_upgrade import check
from tests.unit.test_upgrade_fakes import FakeWorld
from tests.unit.test_upgrade_nodesteps import APT as APT_GET
from tests.unit.test_upgrade_tasks import READ_ONLY_PREFIXES, context, sent  # noqa: F401

AT_130 = {"w1": "1.30.2", "w2": "1.30.2", "w3": "1.30.2"}


def at_130(**kwargs: Any):  # type: ignore[no-untyped-def]
    return cluster(cp="1.30.2", workers=dict(AT_130), **kwargs)


# --- the runbook -------------------------------------------------------------------------------


def test_a_downgrade_is_refused_without_the_flag_and_says_how() -> None:
    with pytest.raises(Refused) as refused:
        plan("1.29.15", world=at_130())
    assert refused.value.reasons == [
        "1.29.15 is older than the control plane (1.30.2): downgrades are refused"
        " (--allow-downgrade allows one minor down at most)"
    ]


def test_two_minors_down_is_refused_even_with_the_flag() -> None:
    with pytest.raises(Refused, match=r"a downgrade goes back at most one minor, from 1\.30\.2 to"):
        plan("1.28.9", world=at_130(), allow_downgrade=True)


def test_a_downgrade_needs_an_exact_version() -> None:
    with pytest.raises(Refused, match="a downgrade goes to an exact version"):
        plan("1.29", world=at_130(), allow_downgrade=True)


def test_a_minor_downgrade_puts_the_workers_first_and_says_so() -> None:
    book = plan("1.29.15", world=at_130(), allow_downgrade=True, max_unavailable="2")
    assert book.downgrade and book.workers_first
    assert [n.name for n in book.nodes] == ["w1", "w2", "w3", "cp1"]
    assert [(n.name, n.action) for n in book.control_planes] == [("cp1", "apply")]
    text = book.render()
    assert text.startswith("DOWNGRADE from 1.30.2 to 1.29.15 (--allow-downgrade)\n")
    assert "order: worker batches first, then the control planes one by one" in text
    assert "1. worker batch 1 (in parallel): w1" in text
    assert "3. control plane cp1 [control-plane, now v1.30.2, kubeadm upgrade apply]" in text
    assert "kubeadm never downgrades etcd" in text
    data = json.loads(book.render("json"))
    assert data["downgrade"] is True and data["order"] == "workers first"
    assert book.render("markdown").startswith("# DOWNGRADE from 1.30.2 to 1.29.15")


def test_a_patch_downgrade_keeps_the_usual_order() -> None:
    world = cluster(cp="1.29.15", workers={"w1": "1.29.15", "w2": "1.29.15"})
    book = plan("1.29.3", world=world, allow_downgrade=True)
    assert book.downgrade and not book.workers_first
    assert [n.name for n in book.nodes] == ["cp1", "w1", "w2"]
    assert "order: control planes one by one, then the worker batches" in book.render()


def test_the_control_plane_alone_waits_for_the_workers_to_go_down_first() -> None:
    state, nodes, facts = at_130()
    with pytest.raises(Refused) as refused:
        plan("1.29.15", world=(state, nodes[:1], facts), allow_downgrade=True)
    assert any(
        "kubelet on w1 is at 1.30.2, newer than the target 1.29.15" in r
        for r in refused.value.reasons
    )
    # A worker alone may go first; with the workers down, the control plane may follow.
    worker = plan("1.29.15", world=(state, nodes[1:2], facts), allow_downgrade=True)
    assert [n.name for n in worker.nodes] == ["w1"] and worker.workers_first
    done = cluster(cp="1.30.2", workers={"w1": "1.29.15", "w2": "1.29.15", "w3": "1.29.15"})
    cp = plan("1.29.15", world=(done[0], done[1][:1], done[2]), allow_downgrade=True)
    assert [(n.name, n.action) for n in cp.nodes] == [("cp1", "apply")]


def test_a_worker_older_than_the_downgrade_target_is_left_alone() -> None:
    book = plan(
        "1.29.15",
        world=cluster(cp="1.30.2", workers={"w1": "1.30.2", "w2": "1.28.4"}),
        allow_downgrade=True,
    )
    assert [n.name for n in book.nodes] == ["w1", "cp1"]
    assert [(n.name, n.skip) for n in book.skipped] == [
        ("w2", "its kubelet (1.28.4) is older than 1.29.15: a downgrade never raises a node")
    ]


def test_kubeadm_at_the_target_downgrades_one_minor_without_force() -> None:
    """Why the first control plane runs a plain `kubeadm upgrade apply vX -y`: with kubeadm
    already at the lower target, policy.go (and the lab's copy of it) raises nothing, so no
    --force; two minors down is mandatory, which --force could not lift anyway."""
    one = check("v1.29.15", "v1.30.2", "v1.29.15", ("v1.29.15", "v1.30.2"))
    assert not one.mandatory and not one.skippable
    two = check("v1.28.9", "v1.30.2", "v1.28.9")
    assert any("kubeadm can downgrade only 1 minor version" in e for e in two.mandatory)


# --- package commands ----------------------------------------------------------------------------

DEB = parse_package_version("1.29.15-1.1")
RPM = parse_package_version("1.29.15-150500.1.1")


def test_apt_gets_allow_downgrades_only_in_a_downgrade() -> None:
    down = packages.install(APT, {"kubeadm": DEB}, downgrade=True).display(as_root=True)
    assert down == (
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y --allow-change-held-packages"
        " --allow-downgrades -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=120"
        " kubeadm=1.29.15-1.1"
    )
    fetch = packages.download_only(APT, {"kubeadm": DEB}, downgrade=True).display(as_root=True)
    assert "--download-only --allow-change-held-packages --allow-downgrades" in fetch
    for command in (
        packages.install(APT, {"kubeadm": DEB}),
        packages.download_only(APT, {"kubeadm": DEB}),
    ):
        assert "--allow-downgrades" not in command.display(as_root=True)


@pytest.mark.parametrize("pm", [DNF, YUM])
def test_dnf_and_yum_run_downgrade(pm: str) -> None:
    assert packages.install(pm, {"kubeadm": RPM}, downgrade=True).display(as_root=True) == (
        f"{pm} downgrade -y kubeadm-1.29.15-150500.1.1 --disableexcludes=kubernetes"
    )
    assert packages.download_only(pm, {"kubeadm": RPM}, downgrade=True).display(as_root=True) == (
        f"{pm} downgrade -y --downloadonly --disableexcludes=kubernetes kubeadm-1.29.15-150500.1.1"
    )
    assert packages.install(pm, {"kubeadm": RPM}).display(as_root=True).startswith(f"{pm} install ")


# --- a node's steps in a downgrade hop ----------------------------------------------------------


def down_world(pm: str) -> FakeWorld:
    world = FakeWorld(pm=pm, version="1.30.2")
    world.repo = world.repo.replace("v1.29", "v1.30")
    world.refreshed_minor = "1.30"
    return world


def down_job(world: FakeWorld, tmp: Path, *, downgrade: bool = True) -> NodeJob:
    job = world.job(tmp)
    return dataclasses.replace(job, target=Version(1, 29, 15), minor=(1, 29), downgrade=downgrade)


def test_apt_worker_downgrade_exact_package_commands(tmp_path: Path) -> None:
    world = down_world("apt")
    outcome = run_node(down_job(world, tmp_path))
    assert outcome.ok, outcome.error
    package_cmds = [c for c in world.log if "apt-get install" in c or "apt-mark" in c]
    assert package_cmds == [
        f"{APT_GET} install -y --download-only --allow-change-held-packages --allow-downgrades"
        " -o DPkg::Lock::Timeout=120 kubeadm=1.29.15-1.1 kubectl=1.29.15-1.1"
        " kubelet=1.29.15-1.1",
        f"{APT_GET} install -y --allow-change-held-packages --allow-downgrades"
        " -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=120 kubeadm=1.29.15-1.1",
        "worker1: apt-mark hold kubeadm",
        f"{APT_GET} install -y --allow-change-held-packages --allow-downgrades"
        " -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=120"
        " kubectl=1.29.15-1.1 kubelet=1.29.15-1.1",
        "worker1: apt-mark hold kubectl kubelet",
    ]
    assert world.installed == {n: "1.29.15-1.1" for n in ("kubeadm", "kubelet", "kubectl")}
    assert world.held == {"kubeadm", "kubelet", "kubectl"}
    assert "v1.29/deb/" in world.repo and world.kubelet_running == "1.29.15"
    assert world.log.index("worker1: kubeadm upgrade node") < world.log.index(package_cmds[3])
    assert not world.unschedulable


def test_dnf_worker_downgrade_runs_dnf_downgrade(tmp_path: Path) -> None:
    world = down_world("dnf")
    outcome = run_node(down_job(world, tmp_path))
    assert outcome.ok, outcome.error
    assert [c for c in world.log if "dnf downgrade" in c or "dnf install" in c] == [
        "worker1: dnf downgrade -y --downloadonly --disableexcludes=kubernetes"
        " kubeadm-1.29.15-150500.1.1 kubectl-1.29.15-150500.1.1 kubelet-1.29.15-150500.1.1",
        "worker1: dnf downgrade -y kubeadm-1.29.15-150500.1.1 --disableexcludes=kubernetes",
        "worker1: dnf downgrade -y kubectl-1.29.15-150500.1.1 kubelet-1.29.15-150500.1.1"
        " --disableexcludes=kubernetes",
    ]
    assert set(world.installed.values()) == {"1.29.15-150500.1.1"}
    assert "exclude=kubelet kubeadm kubectl" in world.repo and "v1.29/rpm/" in world.repo


def test_the_never_downgrade_guard_holds_outside_a_downgrade_hop(tmp_path: Path) -> None:
    world = down_world("apt")
    outcome = run_node(down_job(world, tmp_path, downgrade=False))
    assert not outcome.ok and "nodeops never downgrades a package" in (outcome.error or "")
    assert outcome.failed_step == "Download packages before cordoning"
    assert not any(" cordon " in c or "apt-get install" in c for c in world.log)


@pytest.mark.parametrize(
    ("package", "have"), [("kubeadm", "1.31.0-1.1"), ("kubectl", "1.28.4-1.1")]
)
def test_a_downgrade_hop_lowers_packages_by_one_minor_only(
    tmp_path: Path, package: str, have: str
) -> None:
    world = down_world("apt")
    world.installed[package] = have
    outcome = run_node(down_job(world, tmp_path))
    assert not outcome.ok, world.log
    assert f"{package} {have} cannot go to 1.29.15-1.1 in a downgrade" in (outcome.error or "")
    assert outcome.failed_step == "Download packages before cordoning"
    assert not any(" cordon " in c for c in world.log)


# --- the run: etcd snapshot first, then workers, then control planes --------------------------


class _Sessions:
    def to(self, node: Node) -> FakeTransport:
        return FakeTransport(node, rules=[("", lambda command: (0, "", ""))])


def test_a_minor_downgrade_runs_snapshot_workers_then_control_planes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    order: list[str] = []
    jobs: list[NodeJob] = []
    failing = {""}

    def fake_run_until(self: execute_mod.NodeRun, stop: int) -> NodeOutcome:
        if stop > execute_mod.STAGING_STEPS:  # staging ahead of a batch is not the node's turn
            order.append(f"{self.job.node.name} {self.job.action}")
            jobs.append(self.job)
            self.outcome.ok = self.job.node.name not in failing
        self.outcome.target = self.job.target
        return self.outcome

    def fake_backup(sessions: Any, node: Node, *args: Any) -> str:
        order.append(f"etcd {node.name}")
        return "saved"

    monkeypatch.setattr(execute_mod.NodeRun, "run_until", fake_run_until)
    monkeypatch.setattr(execute_mod, "backup_etcd", fake_backup)
    monkeypatch.setattr(lock, "acquire", lambda t, run_id: None)
    monkeypatch.setattr(lock, "release", lambda t, run_id: None)
    _, inventory, _ = at_130()
    book = plan("1.29.15", world=at_130(), allow_downgrade=True)  # batches of one: in order
    journal = Journal.start(tmp_path, "upgrade-cluster", {"to": "1.29.15"})

    def run() -> list[NodeOutcome]:
        return execute(
            book,
            sessions=_Sessions(),  # type: ignore[arg-type]
            inventory_nodes={n.name: n for n in inventory},
            kubectl_node=inventory[0],
            journal=journal,
            settings=UpgradeSettings(),
            cordoned_earlier=set(),
        )

    outcomes = run()
    assert order == ["etcd cp1", "w1 node", "w2 node", "w3 node", "cp1 apply"]
    assert all(o.ok for o in outcomes) and all(j.downgrade for j in jobs)
    assert {j.target for j in jobs} == {Version(1, 29, 15)} and {j.minor for j in jobs} == {(1, 29)}
    # A failed worker stops the line before any control plane moves.
    order.clear()
    failing.add("w2")
    # w3 was staged while w2 was cordoned: reported as staged only, not as upgraded or failed.
    outcomes = run()
    assert [(o.node, o.ok, o.staged_only) for o in outcomes] == [
        ("w1", True, False),
        ("w2", False, False),
        ("w3", False, True),
    ]
    assert order == ["etcd cp1", "w1 node", "w2 node"]


# --- the tasks ---------------------------------------------------------------------------------


def test_cli_dry_run_of_a_downgrade_is_read_only(
    sent: list[Cmd],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    c, inventory = context(tmp_path)
    with pytest.raises(Exit) as refused:
        tasks.upgrade_cluster(c, to="1.28.9", dry_run=True, inventory=inventory)
    assert refused.value.code == 2 and "downgrades are refused" in str(refused.value.message)
    with pytest.raises(Exit) as too_far:
        tasks.upgrade_cluster(
            c, to="1.27.9", dry_run=True, allow_downgrade=True, inventory=inventory
        )
    assert too_far.value.code == 2 and "at most one minor" in str(too_far.value.message)
    capsys.readouterr()
    tasks.upgrade_cluster(c, to="1.28.9", dry_run=True, allow_downgrade=True, inventory=inventory)
    out = capsys.readouterr().out
    assert out.startswith("DOWNGRADE from 1.29.3 to 1.28.9 (--allow-downgrade)\n")
    assert out.index("worker1") < out.index("control plane cp1")
    tasks.plan(c, to="1.28.9", format="json", allow_downgrade=True, inventory=inventory)
    assert json.loads(capsys.readouterr().out)["downgrade"] is True
    for command in sent:
        assert command.render(as_root=True).startswith(READ_ONLY_PREFIXES)
    assert not (tmp_path / "j").exists()


def test_the_journal_records_a_downgrade(
    monkeypatch: pytest.MonkeyPatch,
    sent: list[Cmd],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    failed = NodeOutcome("worker1", ok=False, failed_step="Drain node", error="blocked")
    monkeypatch.setattr(execute_mod, "execute", lambda book, **kw: [failed])
    c, inventory = context(tmp_path)
    with pytest.raises(Exit):
        tasks.upgrade_cluster(c, to="1.28.9", allow_downgrade=True, inventory=inventory)
    (path,) = (tmp_path / "j").glob("*.jsonl")
    started = read(path)[0]
    assert started["event"] == "run-started"
    assert started["downgrade"] == {"from": "1.29.3", "order": "workers first"}
    assert started["nodes"] == ["worker1", "worker2", "cp1"]
    resume = [line for line in capsys.readouterr().err.splitlines() if "resume with:" in line]
    assert resume and all("--allow-downgrade" in line for line in resume)
