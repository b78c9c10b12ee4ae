"""Fan-out of read-only facts: nodeops vs Ansible vs pyinfra vs Fabric's ThreadingGroup.

Every tool reads the same things: the probes of `nodeops facts` (nodeops/facts/), which
nodeops sends as one script per node and the peers send as one command per probe.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    RAW,
    BenchError,
    Run,
    Series,
    ansible_env,
    loadavg,
    measure,
    say,
    ssh_common_args,
    tool,
)
from bench.labs import Lab, lab

PEERS_DIR = Path(__file__).resolve().parent / "peers"
ANSIBLE_DEFAULT = "Ansible, defaults (forks 5)"
ANSIBLE_TUNED = "Ansible, pipelining + ControlPersist, forks 32"
ANSIBLE_GATHER = "Ansible, gather_facts: true only (forks 5)"
NODEOPS = "nodeops facts --all"
PYINFRA = "pyinfra (defaults)"
FABRIC = "Fabric ThreadingGroup, one command at a time"
TOOLS = (NODEOPS, FABRIC, PYINFRA, ANSIBLE_TUNED, ANSIBLE_DEFAULT, ANSIBLE_GATHER)


def probe_commands() -> list[tuple[str, str]]:
    """(name, shell command) of each read `nodeops facts` makes, as root runs it."""
    from nodeops.facts.nodefacts import PROBES

    return [(p.name, p.script.render(as_root=True)) for p in PROBES]


@dataclass(frozen=True)
class Workspace:
    """Generated inputs of one lab's runs, in a private temp directory."""

    root: Path
    lab: Lab
    commands: Path
    fabric_hosts: Path
    ansible_inventory: Path
    playbook: Path
    gather_playbook: Path
    pyinfra_inventory: Path


def workspace(lab: Lab, root: Path) -> Workspace:
    """Write the peers' inventories, playbooks and command lists for a lab."""
    commands = probe_commands()
    ws = Workspace(
        root=root,
        lab=lab,
        commands=root / "commands.json",
        fabric_hosts=root / "fabric-hosts.json",
        ansible_inventory=root / "ansible-inventory.json",
        playbook=root / "facts.yml",
        gather_playbook=root / "gather.yml",
        pyinfra_inventory=root / "pyinfra_inventory.py",
    )
    ws.commands.write_text(json.dumps(commands))
    ws.fabric_hosts.write_text(
        json.dumps(
            {
                "user": lab.user,
                "key": lab.key,
                "known_hosts": lab.known_hosts,
                "hosts": list(lab.nodes.values()),
            }
        )
    )
    hostvars = {
        name: {
            "ansible_host": address,
            "ansible_user": lab.user,
            "ansible_ssh_private_key_file": lab.key,
            "ansible_ssh_common_args": ssh_common_args(lab.known_hosts),
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        for name, address in lab.nodes.items()
    }
    # JSON is YAML: Ansible reads both inventory and playbooks from it.
    ws.ansible_inventory.write_text(json.dumps({"lab": {"hosts": hostvars}}, indent=1))
    tasks = [
        {
            "name": f"read {name}",
            "ansible.builtin.shell": command,
            "changed_when": False,
            "failed_when": False,
        }
        for name, command in commands
    ]
    ws.playbook.write_text(
        json.dumps([{"hosts": "lab", "gather_facts": False, "tasks": tasks}], indent=1)
    )
    ws.gather_playbook.write_text(
        json.dumps([{"hosts": "lab", "gather_facts": True, "tasks": []}], indent=1)
    )
    pyhosts = [
        (
            name,
            {
                "ssh_hostname": address,
                "ssh_user": lab.user,
                "ssh_key": lab.key,
                "ssh_known_hosts_file": lab.known_hosts,
                "ssh_strict_host_key_checking": "yes",
                "ssh_allow_agent": False,
                "ssh_look_for_keys": False,
            },
        )
        for name, address in lab.nodes.items()
    ]
    ws.pyinfra_inventory.write_text(f"lab = {pyhosts!r}\n")
    copy = RAW / f"fanout-{len(lab.nodes)}"
    copy.mkdir(parents=True, exist_ok=True)
    for path in (ws.commands, ws.ansible_inventory, ws.playbook, ws.pyinfra_inventory):
        # .txt: a copy is not code for mypy or ruff to check
        shutil.copy(path, copy / f"{path.name}.txt")
    return ws


def _ansible_env(run_dir: Path, tuned: bool) -> dict[str, str]:
    if not tuned:
        return ansible_env(run_dir)
    return ansible_env(
        run_dir,
        pipelining="True",
        ssh_args="-C -o ControlMaster=auto -o ControlPersist=60s",
        forks="32",
    )


def _close_masters(run_dir: Path) -> None:
    """Stop the ControlPersist masters a run left, so the next run starts cold."""
    for socket in (run_dir / "cp").glob("*"):
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "x"],
            capture_output=True,
            check=False,
            timeout=30,
        )


_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+).*unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def _check_ansible(run: Run, nodes: int, tasks: int) -> None:
    recap = _RECAP.findall(run.output)
    good = [r for r in recap if r[2] == "0" and r[3] == "0" and int(r[1]) >= tasks]
    if run.exit_code != 0 or len(good) != nodes:
        raise BenchError(f"Ansible: {len(good)}/{nodes} hosts answered: {run.output[-1500:]}")


def run_ansible(ws: Workspace, rep: int, *, tuned: bool, gather: bool) -> Run:
    """One ansible-playbook run over the lab."""
    run_dir = Path(tempfile.mkdtemp(prefix="ans", dir=ws.root))
    (run_dir / "cp").mkdir()
    playbook = ws.gather_playbook if gather else ws.playbook
    argv = [tool("ansible-playbook") or "ansible-playbook", "-i", str(ws.ansible_inventory)]
    kind = "gather" if gather else ("tuned" if tuned else "default")
    log = RAW / f"fanout-{len(ws.lab.nodes)}" / f"ansible-{kind}-{rep}.log"
    try:
        run = measure([*argv, str(playbook)], env=_ansible_env(run_dir, tuned), log=log)
    finally:
        _close_masters(run_dir)
    _check_ansible(run, len(ws.lab.nodes), 1 if gather else len(probe_commands()))
    return run


def run_nodeops(ws: Workspace, rep: int) -> Run:
    """One `nodeops facts --all --json` over the lab."""
    argv = [tool("nodeops") or "nodeops", "facts", "--all", "--json", "-i", str(ws.lab.inventory)]
    log = RAW / f"fanout-{len(ws.lab.nodes)}" / f"nodeops-{rep}.log"
    run = measure(argv, log=log)
    start = run.output.find("{")
    answered = json.loads(run.output[start:]) if start >= 0 else {}
    good = [n for n, v in answered.items() if "error" not in v]
    if run.exit_code != 0 or len(good) != len(ws.lab.nodes):
        raise BenchError(f"nodeops: {len(good)}/{len(ws.lab.nodes)}: {run.output[-1500:]}")
    return run


def run_pyinfra(ws: Workspace, rep: int) -> Run:
    """One pyinfra run of the same reads."""
    env = dict(os.environ, NODEOPS_BENCH_COMMANDS=str(ws.commands), PYINFRA_PROGRESS="off")
    argv = [tool("pyinfra") or "pyinfra", "-y", str(ws.pyinfra_inventory)]
    argv.append(str(PEERS_DIR / "pyinfra_reads.py"))
    log = RAW / f"fanout-{len(ws.lab.nodes)}" / f"pyinfra-{rep}.log"
    run = measure(argv, env=env, cwd=ws.root, log=log)
    # Its summary counts each host's operations, successful or not (a probe may exit 127).
    total = re.search(r"Grand total\s+(\d+)", run.output)
    expected = len(ws.lab.nodes) * len(probe_commands())
    if run.exit_code != 0 or total is None or int(total.group(1)) != expected:
        raise BenchError(f"pyinfra: not {expected} reads: {run.output[-1500:]}")
    return run


def run_fabric(ws: Workspace, rep: int) -> Run:
    """One naive Fabric ThreadingGroup run: each command on all nodes, then the next."""
    argv = [sys.executable, str(PEERS_DIR / "fabric_naive.py")]
    argv += [str(ws.fabric_hosts), str(ws.commands)]
    log = RAW / f"fanout-{len(ws.lab.nodes)}" / f"fabric-{rep}.log"
    run = measure(argv, log=log)
    if run.exit_code != 0:
        raise BenchError(f"Fabric: {run.output[-1500:]}")
    return run


RUNNERS: dict[str, Callable[[Workspace, int], Run]] = {
    NODEOPS: run_nodeops,
    FABRIC: run_fabric,
    PYINFRA: run_pyinfra,
    ANSIBLE_TUNED: lambda ws, rep: run_ansible(ws, rep, tuned=True, gather=False),
    ANSIBLE_DEFAULT: lambda ws, rep: run_ansible(ws, rep, tuned=False, gather=False),
    ANSIBLE_GATHER: lambda ws, rep: run_ansible(ws, rep, tuned=False, gather=True),
}


@dataclass
class SizeResult:
    """Every tool's series at one lab size, and the load seen while they ran."""

    nodes: int
    series: dict[str, Series]
    load: list[tuple[float, float, float]]
    lab_up: float


def bench_size(
    nodes: int, reps: int, workdir: Path, tools: Sequence[str], slow_reps: int
) -> SizeResult:
    """Run every tool `reps` times (interleaved, so load hits all alike) on one lab."""
    series = {t: Series(t, f"N={nodes}") for t in tools}
    loads: list[tuple[float, float, float]] = []
    with lab(f"bfan{nodes}", nodes, workdir, bare=True) as the_lab:
        ws = workspace(the_lab, Path(tempfile.mkdtemp(prefix=f"f{nodes}", dir=workdir)))
        # An untimed first pass warms the nodes' sshd and page caches for everyone.
        for name in [t for t in tools if t in (NODEOPS, FABRIC)]:
            say(f"  N={nodes} warm-up: {name}")
            RUNNERS[name](ws, 0)
        for rep in range(1, reps + 1):
            for name in tools:
                # The slowest peers get fewer repetitions at large N (said in the table).
                if name in (ANSIBLE_DEFAULT, ANSIBLE_TUNED, ANSIBLE_GATHER) and rep > slow_reps:
                    continue
                loads.append(loadavg())
                run = RUNNERS[name](ws, rep)
                series[name].add(run)
                say(f"  N={nodes} rep {rep}: {name}: {run.wall:.2f} s wall, {run.cpu:.2f} s CPU")
        up = the_lab.up.wall
    return SizeResult(nodes=nodes, series=series, load=loads, lab_up=up)
