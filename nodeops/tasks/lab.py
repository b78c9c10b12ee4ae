"""The local lab: a kubeadm-like cluster of network namespaces on this machine."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from invoke.tasks import task

from nodeops import report
from nodeops.errors import LabError
from nodeops.tasks.common import remainder, reported

DEFAULT_NAME = "lab"


def _lab() -> Any:
    # Imported on use: the lab module is only needed by these tasks.
    import nodeops.lab as lab_module

    return lab_module


@task(
    iterable=["worker_os"],
    help={
        "workers": "How many worker nodes (default 2).",
        "control_planes": "How many control-plane nodes (default 1): cp2.. join cp1 with "
        "stacked etcd (cp1 ubuntu-22.04, then debian-12 and ubuntu-22.04 in turn).",
        "worker_os": "OS of the workers, cycled (repeatable): ubuntu-22.04, ubuntu-24.04, "
        "debian-12, rocky-9. Default: ubuntu-24.04 then rocky-9.",
        "name": "Lab name, so several labs can run side by side (default: lab).",
        "inventory": "Where to write the lab's inventory (default: inventories/lab.yaml).",
        "kubernetes": "The cluster's Kubernetes version (default 1.29.3); kubectl 1.27-1.33 "
        "ship with this machine, so minors 1.27 to 1.33 work.",
        "bare": "Only the nodes (OS, SSH): no packages, no kubeadm cluster.",
    },
)
@reported
def up(
    c: Any,
    workers: int = 2,
    worker_os: list[str] | None = None,
    control_planes: int = 1,
    name: str = DEFAULT_NAME,
    inventory: str | None = None,
    kubernetes: str = "",
    bare: bool = False,
) -> None:
    """Start the local lab (as root): cp1 (and cp2.. with --control-planes) plus workers, each
    a network namespace with its own address, OS files and OpenSSH server, made a kubeadm
    cluster (kube packages installed and held, static-pod control plane with real etcd,
    kubelets, every node Ready, sample workloads). Idempotent; writes the lab's inventory."""
    from nodeops.lab import cluster

    lab = _lab()
    kwargs: dict[str, Any] = {"name": name, "workers": workers, "control_planes": control_planes}
    if worker_os:
        kwargs["worker_os"] = tuple(worker_os)
    spec = lab.default_spec(**kwargs)
    started = time.monotonic()
    state = lab.up(spec, inventory_path=Path(inventory) if inventory else None)
    built = (cluster.cluster_dir(state) / cluster.ADMIN_CONF).exists()
    if kubernetes and built:
        raise LabError(
            f"lab {name!r} already runs a cluster; run lab.down first to start another version"
        )
    if not bare and not built:
        cluster.build_cluster(state, version=kubernetes or cluster.DEFAULT_VERSION)
    seconds = time.monotonic() - started
    _print_state(state)
    print(f"lab {name!r} is up in {seconds:.1f} s; inventory: {state.inventory_path}")


@task(help={"name": "Lab name (default: lab)."})
@reported
def down(c: Any, name: str = DEFAULT_NAME) -> None:
    """Stop the local lab and remove every namespace, process, mount and file it made."""
    _lab().down(name)
    print(f"lab {name!r} is down")


@task(help={"name": "Lab name (default: lab)."})
@reported
def status(c: Any, name: str = DEFAULT_NAME) -> None:
    """Show the local lab's nodes, addresses and processes."""
    from nodeops.lab import cluster

    state = _lab().status(name)
    if state is None:
        raise LabError(f"lab {name!r} is not up; start it with `invoke lab.up`")
    _print_state(state)
    if (cluster.cluster_dir(state) / cluster.ADMIN_CONF).exists():
        rows = [
            [n.name, "Ready" if n.ready else "NotReady", n.kubelet_version, ",".join(n.roles)]
            for n in cluster.cluster_status(state)
        ]
        report.print_table("Cluster", ("NODE", "STATUS", "VERSION", "ROLES"), rows)


@task(help={"name": "Lab name (default: lab)."})
@reported
def ssh(c: Any, node: str, name: str = DEFAULT_NAME) -> None:
    """Open a shell on a lab node, or run the command after `--` there (as `vagrant ssh`)."""
    argv = _lab().ssh_argv(name, node, remainder() or None)
    os.execvp(argv[0], argv)  # noqa: S606 - replace this process with ssh, as `vagrant ssh`


@task(
    positional=["kind"],
    help={
        "kind": "dpkg-lock, kubelet-not-ready, sshd-down, kubeadm-fail, apiserver-down,"
        " pdb-blocking, slow-download, ssh-cut-kubeadm, ssh-cut-restart,"
        " kubelet-not-ready-on-restart or dpkg-interrupt; with --clear also `all`.",
        "node": "The node to break (or to clear; --clear without it clears every node).",
        "seconds": "dpkg-lock: hold the lock this long (default: until cleared);"
        " slow-download: seconds per download (default 5).",
        "clear": "Switch faults off instead.",
        "name": "Lab name (default: lab).",
    },
)
@reported
def fault(
    c: Any,
    kind: str | None = None,  # None, so that Invoke fills it from the command line
    node: str = "",
    seconds: str = "",
    clear: bool = False,
    name: str = DEFAULT_NAME,
) -> None:
    """Switch a fault on a lab node: `lab.fault --node NODE KIND [--seconds N]`, or off:
    `lab.fault --clear all|KIND [--node NODE]` (Invoke wants the word: `all` clears every
    fault). Kinds: dpkg-lock, kubelet-not-ready, sshd-down, kubeadm-fail, apiserver-down,
    pdb-blocking, slow-download (see nodeops/lab/faults.py)."""
    from nodeops.lab import faults

    if clear:
        done = faults.clear(name, node or None, kind or "all")
        print(faults.describe(done) if done else "no fault was on")
        return
    if not kind or not node:
        raise LabError(f"usage: lab.fault --node NODE KIND; kinds: {', '.join(faults.KINDS)}")
    try:
        secs = float(seconds) if seconds else None
    except ValueError:
        raise LabError(f"--seconds wants a number, not {seconds!r}") from None
    print(faults.describe([faults.inject(name, node, kind, secs)]))


def _print_state(state: Any) -> None:
    rows = [
        [node.name, node.os, ",".join(node.roles) or "-", node.address, str(node.sshd_pid)]
        for node in state.nodes
    ]
    report.print_table(f"Lab {state.name}", ("NODE", "OS", "ROLES", "ADDRESS", "SSHD PID"), rows)
