"""The simulated package tools and systemctl on a lab of its own, over real SSH.

cp1 runs Ubuntu 22.04 (apt), worker1 Rocky Linux 9 (dnf/yum). The kube packages are installed
with `preinstall_argv`, read back with nodeops' own facts probes, then upgraded by hand the
way the kubeadm upgrade docs say, including the usual mistakes and their upstream errors.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nodeops import lab as nodeops_lab
from nodeops.facts import facts_command, parse_facts
from nodeops.lab.sim.pkg import preinstall_argv

pytestmark = pytest.mark.lab

Run = Callable[..., subprocess.CompletedProcess[str]]
HELD_ERROR = "E: Held packages were changed and -y was used without --allow-change-held-packages."
LOCK_LINES = (
    r"E: Could not get lock /var/lib/dpkg/lock-frontend\. It is held by process (\d+) \((\S+)\)\n"
    r"N: Be aware that removing the lock file is not a solution and may break your system\.\n"
    r"E: Unable to acquire the dpkg frontend lock \(/var/lib/dpkg/lock-frontend\),"
    r" is another process using it\?\n"
)


@pytest.fixture(scope="module")
def toolchain_lab(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[nodeops_lab.LabState]:
    """cp1 ubuntu-22.04 and worker1 rocky-9, torn down whatever happens."""
    name = fresh_lab_name()
    spec = nodeops_lab.default_spec(name, workers=1, worker_os=("rocky-9",))
    inventory = tmp_path_factory.mktemp("toolchain") / "lab.yaml"
    try:
        yield nodeops_lab.up(spec, inventory_path=inventory)
    finally:
        nodeops_lab.down(name)


@pytest.fixture(scope="module")
def sh(toolchain_lab: nodeops_lab.LabState) -> Run:
    """Run a shell command line on a node over SSH."""

    def run(node: str, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            nodeops_lab.ssh_argv(toolchain_lab.name, node, [script]),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="module")
def installed(sh: Run) -> None:
    """Both nodes with the 1.29.3 packages, installed as the kubeadm install docs do."""
    argv = shlex.join(preinstall_argv("1.29.3"))
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda n: sh(n, argv), ["cp1", "worker1"]))
    for d in done:
        assert d.returncode == 0, d.stdout[-2000:] + d.stderr


def test_preinstall_shows_in_nodeops_facts(sh: Run, installed: None) -> None:
    script = facts_command().render()
    ubuntu = parse_facts("cp1", sh("cp1", script).stdout)
    assert dict(ubuntu.packages) == {
        "kubeadm": "1.29.3-1.1", "kubelet": "1.29.3-1.1", "kubectl": "1.29.3-1.1",
        "cri-tools": "1.29.0-1.1", "kubernetes-cni": "1.3.0-1.1",
    }  # fmt: skip
    assert ubuntu.held == ("kubeadm", "kubelet", "kubectl")
    assert ubuntu.binaries["kubeadm"] == "v1.29.3"
    kubectl = ubuntu.binaries["kubectl"]
    assert kubectl is not None and kubectl.startswith("v1.29.")  # the machine's real 1.29 build
    rocky = parse_facts("worker1", sh("worker1", script).stdout)
    assert rocky.packages["kubeadm"] == "1.29.3-150500.1.1"
    assert rocky.packages["cri-tools"] == "1.29.0-150500.1.1"
    # exclude= in kubernetes.repo is how the docs hold packages on RHEL
    assert rocky.held == ("kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni")
    assert rocky.binaries["kubeadm"] == "v1.29.3"
    for node in ("cp1", "worker1"):
        wrapper = sh(node, "cat /usr/bin/kubelet; systemctl is-enabled kubelet").stdout
        assert "nodeops.lab.sim.kubelet" in wrapper and "NODEOPS_KUBELET_VERSION=v1.29.3" in wrapper
        assert wrapper.endswith("enabled\n")
        unit = sh(node, "systemctl cat kubelet").stdout
        assert "# /usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf\n" in unit


def test_apt_upgrade_steps_of_the_docs_and_their_mistakes(sh: Run, installed: None) -> None:
    switch = "sed -i 's#/v1.29/#/v1.30/#' /etc/apt/sources.list.d/kubernetes.list"
    assert sh("cp1", switch).returncode == 0
    # forgot apt-get update: the v1.30 lists are not there yet
    stale = sh("cp1", "apt-get install -y kubeadm='1.30.2-*'")
    assert (stale.returncode, stale.stderr) == (
        100, "E: Version '1.30.2-*' for 'kubeadm' was not found\n",
    )  # fmt: skip
    update = sh("cp1", "apt-get update")
    assert update.returncode == 0
    assert update.stdout.splitlines()[-1] == "Reading package lists... Done"
    madison = sh("cp1", "apt-cache madison kubeadm").stdout.splitlines()
    assert (
        madison[0]
        == "   kubeadm | 1.30.14-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages"
    )
    # forgot to unhold
    held = sh("cp1", "apt-get install -y kubeadm='1.30.2-*'")
    assert held.returncode == 100 and held.stderr == HELD_ERROR + "\n"
    # a version the v1.30 repository does not serve
    missing = sh("cp1", "apt-mark unhold kubeadm && apt-get install -y kubeadm=1.31.0-1.1")
    assert missing.stdout.startswith("Canceled hold on kubeadm.\n")
    assert (missing.returncode, missing.stderr) == (
        100, "E: Version '1.31.0-1.1' for 'kubeadm' was not found\n",
    )  # fmt: skip
    done = sh("cp1", "apt-get install -y kubeadm='1.30.2-*' && apt-mark hold kubeadm")
    assert done.returncode == 0, done.stderr
    assert "Unpacking kubeadm (1.30.2-1.1) over (1.29.3-1.1) ..." in done.stdout
    assert done.stdout.endswith("kubeadm set on hold.\n")
    assert sh("cp1", "kubeadm version -o short").stdout == "v1.30.2\n"
    # kubelet and kubectl the same way, overriding the hold instead of lifting it
    both = sh(
        "cp1",
        "apt-get install -y --allow-change-held-packages kubelet='1.30.2-*' kubectl='1.30.2-*'",
    )
    assert both.returncode == 0 and "The following held packages will be changed:" in both.stdout
    facts = parse_facts("cp1", sh("cp1", facts_command().render()).stdout)
    assert {n: facts.packages[n] for n in ("kubeadm", "kubelet", "kubectl")} == dict.fromkeys(
        ("kubeadm", "kubelet", "kubectl"), "1.30.2-1.1"
    )
    assert facts.packages["cri-tools"] == "1.30.1-1.1"
    assert facts.held == ("kubeadm", "kubelet", "kubectl")
    assert "NODEOPS_KUBELET_VERSION=v1.30.2" in sh("cp1", "cat /usr/bin/kubelet").stdout


def test_yum_upgrade_steps_of_the_docs_and_their_mistakes(sh: Run, installed: None) -> None:
    switch = "sed -i 's#/v1.29/#/v1.30/#g' /etc/yum.repos.d/kubernetes.repo"
    assert sh("worker1", switch).returncode == 0
    # forgot --disableexcludes
    excluded = sh("worker1", "yum install -y 'kubeadm-1.30.2-*'")
    assert (excluded.returncode, excluded.stderr) == (
        1,
        "All matches were filtered out by exclude filtering for argument: kubeadm-1.30.2-*\n"
        "Error: Unable to find a match: kubeadm-1.30.2-*\n",
    )
    wrong = sh("worker1", "yum install -y kubeadm-1.31.0 --disableexcludes=kubernetes")
    assert (wrong.returncode, wrong.stderr) == (
        1,
        "No match for argument: kubeadm-1.31.0\nError: Unable to find a match: kubeadm-1.31.0\n",
    )
    done = sh("worker1", "yum install -y 'kubeadm-1.30.2-*' --disableexcludes=kubernetes")
    assert done.returncode == 0, done.stderr
    assert "Upgrading:\n cri-tools" in done.stdout and done.stdout.endswith("Complete!\n")
    listing = sh("worker1", "yum list --showduplicates kubeadm --disableexcludes=kubernetes")
    lines = listing.stdout.splitlines()
    assert lines[1:3] == ["Installed Packages", lines[2]]
    assert lines[2].split() == ["kubeadm.x86_64", "1.30.2-150500.1.1", "@kubernetes"]
    assert lines[3] == "Available Packages" and len(lines) == 4 + 15
    assert sh("worker1", "kubeadm version -o short").stdout == "v1.30.2\n"
    q = sh("worker1", "rpm -q kubeadm kubelet")
    assert q.stdout == "kubeadm-1.30.2-150500.1.1.x86_64\nkubelet-1.29.3-150500.1.1.x86_64\n"


def test_the_dpkg_lock_held_by_another_process(
    toolchain_lab: nodeops_lab.LabState, sh: Run, installed: None
) -> None:
    # apt and dpkg lock with fcntl (F_SETLK), so that is what holds the lock here; note that
    # a `flock` command's lock is a different kind of lock that would not stop them
    holder_code = (
        "import fcntl, os, time; fd = os.open('/var/lib/dpkg/lock-frontend', os.O_RDWR);"
        " fcntl.lockf(fd, fcntl.LOCK_EX); print(os.getpid(), flush=True); time.sleep(15)"
    )
    holder = subprocess.Popen(
        nodeops_lab.ssh_argv(
            toolchain_lab.name, "cp1", [shlex.join(["python3", "-c", holder_code])]
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    pid = ""
    try:
        assert holder.stdout is not None
        pid = holder.stdout.readline().strip()
        blocked = sh("cp1", "apt-get install -y --allow-change-held-packages kubectl='1.30.3-*'")
        assert blocked.returncode == 100
        m = re.fullmatch(LOCK_LINES, blocked.stderr)
        assert m is not None, blocked.stderr
        assert m.group(1) == pid and m.group(2).startswith("python3")
    finally:
        if pid.isdigit():
            sh("cp1", f"kill {pid}")
        holder.wait(timeout=10)


def test_a_slow_apt_get_holds_the_lock_against_another(sh: Run, installed: None) -> None:
    fault = "/var/lib/nodeops-sim/faults/slow-download"
    assert sh("cp1", f"mkdir -p {fault.rsplit('/', 1)[0]} && echo 1 > {fault}").returncode == 0
    slow = "apt-get install -y --allow-change-held-packages kubectl='1.30.4-*'"
    fast = "apt-get install -y --allow-change-held-packages kubelet='1.30.4-*'"
    script = f"{slow} >/tmp/slow.log 2>&1 & sleep 0.6; {fast}; echo rc=$?; wait; cat /tmp/slow.log"
    try:
        started = time.monotonic()
        done = sh("cp1", script)
        assert "rc=100" in done.stdout, done.stdout + done.stderr
        m = re.search(LOCK_LINES, done.stderr)
        assert m is not None and m.group(2) == "apt-get", done.stderr
        assert "Setting up kubectl (1.30.4-1.1) ..." in done.stdout
        assert time.monotonic() - started >= 1
    finally:
        sh("cp1", f"rm -f {fault} /tmp/slow.log")


def test_systemctl_runs_a_unit_and_warns_about_changed_files(sh: Run) -> None:
    unit = (
        "[Unit]\nDescription=nodeops toolchain test\n[Service]\n"
        "Environment=WORD=hello\nExecStart=/bin/sh -c 'echo $0; exec sleep 300' $WORD\n"
    )
    path = "/etc/systemd/system/nodeops-demo.service"
    setup = f"mkdir -p {path}.d && printf %s {shlex.quote(unit)} > {path}"
    assert sh("worker1", setup).returncode == 0
    try:
        assert sh("worker1", "systemctl start nodeops-demo").returncode == 0
        status = sh("worker1", "systemctl status nodeops-demo")
        assert status.returncode == 0
        assert "     Active: active (running) since " in status.stdout
        pid = re.search(r"Main PID: (\d+) \(sh\)", status.stdout)
        assert pid is not None
        assert sh("worker1", f"kill -0 {pid.group(1)}").returncode == 0
        drop = f"printf '[Service]\\nEnvironment=WORD=bye\\n' > {path}.d/override.conf"
        assert sh("worker1", drop).returncode == 0
        restart = sh("worker1", "systemctl restart nodeops-demo")
        assert restart.stderr == (
            "Warning: The unit file, source configuration file or drop-ins of nodeops-demo.service"
            " changed on disk. Run 'systemctl daemon-reload' to reload units.\n"
        )
        again = sh(
            "worker1",
            "systemctl daemon-reload && systemctl restart nodeops-demo && sleep 0.3"
            " && journalctl -u nodeops-demo --no-pager -n 2",
        )
        assert again.stderr == ""
        assert again.stdout.splitlines()[-1].endswith("]: bye")
        assert sh("worker1", f"kill -0 {pid.group(1)}").returncode != 0  # the old one was stopped
    finally:
        stop = sh("worker1", "systemctl stop nodeops-demo; systemctl is-active nodeops-demo")
    assert (stop.returncode, stop.stdout) == (3, "inactive\n")
    unknown = sh("worker1", "systemctl start nodeops-nope")
    assert (unknown.returncode, unknown.stderr) == (
        5, "Failed to start nodeops-nope.service: Unit nodeops-nope.service not found.\n",
    )  # fmt: skip
