"""Fixtures for end-to-end tests on a local lab: skipped unless root on Linux with iproute2."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nodeops import lab as nodeops_lab
from nodeops.lab import network

Ssh = Callable[..., subprocess.CompletedProcess[str]]


def _unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the lab needs Linux namespaces"
    if os.geteuid() != 0:
        return "the lab needs root"
    if shutil.which("ip") is None:
        return "the lab needs iproute2 (`ip`)"
    return None


@pytest.fixture(autouse=True)
def _lab_host() -> None:
    """Skip every test here where a lab cannot run."""
    reason = _unavailable()
    if reason:
        pytest.skip(reason)


def _fresh_lab_name() -> str:
    return network.fresh_name("t")


@pytest.fixture(scope="session")
def fresh_lab_name() -> Callable[[], str]:
    """Make up a lab name whose derived subnet no interface on this machine uses."""
    return _fresh_lab_name


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private lab state root for this test session ($NODEOPS_LAB_ROOT)."""
    if _unavailable():
        pytest.skip(_unavailable() or "")
    root = tmp_path_factory.mktemp("labroot")
    old = os.environ.get("NODEOPS_LAB_ROOT")
    os.environ["NODEOPS_LAB_ROOT"] = str(root)
    yield root
    if old is None:
        del os.environ["NODEOPS_LAB_ROOT"]
    else:
        os.environ["NODEOPS_LAB_ROOT"] = old


@pytest.fixture(scope="session")
def lab(lab_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[nodeops_lab.LabState]:
    """A running lab shared by the session: cp1 ubuntu-22.04, worker1 ubuntu-24.04,
    worker2 rocky-9, worker3 debian-12. Always torn down."""
    name = _fresh_lab_name()
    spec = nodeops_lab.default_spec(
        name, workers=3, worker_os=("ubuntu-24.04", "rocky-9", "debian-12")
    )
    inventory = tmp_path_factory.mktemp("inventory") / "lab.yaml"
    try:
        yield nodeops_lab.up(spec, inventory_path=inventory)
    finally:
        nodeops_lab.down(name)


@pytest.fixture(scope="session")
def ssh(lab: nodeops_lab.LabState) -> Ssh:
    """Run an argv on a node of the session's lab with the real OpenSSH client."""

    def run(node: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            nodeops_lab.ssh_argv(lab.name, node, [shlex.join(argv)]),
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    return run
