"""Labs for the benchmarks: started through the nodeops CLI (timed) and always torn down."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.common import BenchError, Run, measure, say, tool

ATTEMPTS = 3


@dataclass(frozen=True)
class Lab:
    """A running lab as its inventory describes it."""

    name: str
    inventory: Path
    known_hosts: str
    key: str
    user: str
    nodes: dict[str, str]  # name -> address
    roles: dict[str, list[str]]
    up: Run

    @property
    def workers(self) -> list[str]:
        """The worker nodes, in inventory order."""
        return [n for n, roles in self.roles.items() if "control-plane" not in roles]


def _nodeops() -> str:
    path = tool("nodeops")
    if path is None:
        raise BenchError("the nodeops command is not installed here (pip install -e .)")
    return path


def read_inventory(name: str, path: Path, up: Run) -> Lab:
    """The lab's facts from the inventory lab.up wrote."""
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    defaults = data.get("defaults", {})
    nodes = {n: str(v["address"]) for n, v in data["nodes"].items()}
    roles = {n: list(v.get("roles", [])) for n, v in data["nodes"].items()}
    return Lab(
        name=name,
        inventory=path,
        known_hosts=str(data["known_hosts"]),
        key=str(defaults["key"]),
        user=str(defaults.get("user", "root")),
        nodes=nodes,
        roles=roles,
        up=up,
    )


def down(name: str) -> None:
    """Tear a lab down (idempotent)."""
    subprocess.run([_nodeops(), "lab.down", "--name", name], check=False, timeout=600)


@contextmanager
def lab(
    name: str, nodes: int, workdir: Path, *, bare: bool, options: tuple[str, ...] = ()
) -> Iterator[Lab]:
    """A lab of `nodes` nodes (cp1 + workers), up for the block, then torn down."""
    inventory = workdir / f"{name}.yaml"
    argv = [_nodeops(), "lab.up", "--name", name, "--workers", str(nodes - 1)]
    argv += ["--inventory", str(inventory), *options]
    if bare:
        argv.append("--bare")
    down(name)  # a lab left over by an interrupted run would make lab.up a no-op
    say(f"lab {name}: up with {nodes} node(s){' (bare)' if bare else ''}")
    try:
        for attempt in range(1, ATTEMPTS + 1):
            run = measure(argv, timeout=3600, log=workdir / f"{name}-up.log")
            if run.exit_code == 0:
                break
            # On a machine loaded by others, a node can miss lab.up's Ready deadline.
            say(f"lab {name}: lab.up failed (attempt {attempt}): {run.output[-300:]}")
            down(name)
        else:
            raise BenchError(f"lab.up {name} failed: {run.output[-2000:]}")
        say(f"lab {name}: up in {run.wall:.1f} s")
        yield read_inventory(name, inventory, run)
    finally:
        down(name)
