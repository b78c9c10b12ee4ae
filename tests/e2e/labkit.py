"""What end-to-end tests share: a lab made a cluster, commands over SSH, the nodeops CLI, waits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from nodeops import lab as nodeops_lab
from nodeops.lab import cluster

# kubectl as an operator runs it on the control plane; a private HOME keeps its discovery
# cache out of the node's /root between tests.
KUBECTL = "HOME=/tmp/kubectl-home kubectl --kubeconfig /etc/kubernetes/admin.conf"
# Everything a dry run or a refused run must leave alone, as one digest per node.
FINGERPRINT = r"""
for d in /etc/apt/sources.list.d /etc/yum.repos.d /etc/kubernetes /var/lib/kubelet/config.yaml; do
  [ -e "$d" ] && find "$d" -type f -print0 | sort -z | xargs -0 -r sha256sum
done
dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\n' 2>/dev/null | sort
rpm -qa 2>/dev/null | sort
apt-mark showhold 2>/dev/null
true
"""
# etcd snapshots refuse shared temp directories such as /tmp: upgrade runs keep theirs here.
E2E_BACKUPS = Path("/var/lib/nodeops-e2e")


class ClusterLab:
    """A running lab made a kubeadm cluster: its state, its inventory, a private HOME."""

    def __init__(self, state: nodeops_lab.LabState, inventory: Path, home: Path) -> None:
        self.state = state
        self.name = state.name
        self.inventory = inventory
        self.home = home

    def sh(
        self,
        node: str,
        script: str,
        *,
        check: bool = True,
        timeout: float = 60,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell script on a node over real SSH."""
        done = subprocess.run(
            nodeops_lab.ssh_argv(self.name, node, [script]),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{node}: {script!r} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def kubectl_json(self, args: str, node: str = "cp1") -> Any:
        """`kubectl ARGS -o json` on a control-plane node (its own admin.conf), decoded."""
        return json.loads(self.sh(node, f"{KUBECTL} {args} -o json").stdout)

    def nodeops(
        self, *args: str, timeout: float = 180, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The real nodeops CLI against this lab's inventory (the lab.* tasks take none), with
        the private HOME."""
        inventory = [] if args[0].startswith("lab.") else ["-i", str(self.inventory)]
        full_env = {**os.environ, "HOME": str(self.home), **(env or {})}
        full_env.pop("NODEOPS_INVENTORY", None)  # the caller's inventory is never the lab's
        return subprocess.run(
            [sys.executable, "-m", "nodeops", *args, *inventory],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=full_env,
        )

    def fingerprints(self) -> dict[str, str]:
        """FINGERPRINT of every node of the lab."""
        return {n.name: self.sh(n.name, FINGERPRINT).stdout for n in self.state.nodes}

    def nodes(self) -> dict[str, Any]:
        """The cluster's Node objects by name."""
        return {n["metadata"]["name"]: n for n in self.kubectl_json("get nodes")["items"]}


class UpgradeLab(ClusterLab):
    """A cluster its module's tests upgrade in file order: the etcd backup directory of the
    runs, and notes one test leaves for a later one."""

    def __init__(
        self, state: nodeops_lab.LabState, inventory: Path, home: Path, backups: Path
    ) -> None:
        super().__init__(state, inventory, home)
        self.backups = backups
        self.notes: dict[str, Any] = {}

    def run(
        self, *args: str, timeout: float = 600, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The nodeops CLI with the lab's etcd backup directory."""
        extra = {"INVOKE_NODEOPS_ETCD_BACKUP_DIR": str(self.backups), **(env or {})}
        return self.nodeops(*args, timeout=timeout, env=extra)


def wait(what: str, check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Poll check until it returns something true; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
    return result


@contextmanager
def running_cluster(
    name: str,
    workdir: Path,
    *,
    workers: int = 2,
    worker_os: tuple[str, ...] | None = None,
    control_planes: int = 1,
    control_plane_os: tuple[str, ...] | None = None,
    **build: Any,
) -> Iterator[ClusterLab]:
    """Bring a lab up and make it a cluster; ALWAYS take it down again."""
    spec_args: dict[str, Any] = {"workers": workers, "control_planes": control_planes}
    if worker_os:
        spec_args["worker_os"] = worker_os
    if control_plane_os:
        spec_args["control_plane_os"] = control_plane_os
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    inventory = workdir / "lab.yaml"
    try:
        state = nodeops_lab.up(
            nodeops_lab.default_spec(name, **spec_args), inventory_path=inventory
        )
        cluster.build_cluster(state, **build)
        yield ClusterLab(state, inventory, home)
    finally:
        nodeops_lab.down(name)


@contextmanager
def upgrade_lab(name: str, workdir: Path, **cluster_args: Any) -> Iterator[UpgradeLab]:
    """running_cluster with an etcd backup directory for the runs; ALWAYS remove both."""
    backups = E2E_BACKUPS / name
    try:
        with running_cluster(name, workdir, **cluster_args) as built:
            yield UpgradeLab(built.state, built.inventory, built.home, backups)
    finally:
        shutil.rmtree(backups, ignore_errors=True)
        with suppress(OSError):
            backups.parent.rmdir()  # when no other module's lab still uses it
