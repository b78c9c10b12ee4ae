"""Rolling upgrade: `nodeops upgrade-cluster` vs a plain Ansible playbook with `serial`.

Each run gets a fresh lab (1 control plane + N Ubuntu workers at 1.29.3) with realistic
simulated durations switched on in every node: each package download waits (the lab's
`slow-download` fault) and a restarted kubelet posts Ready=False for a while (the lab's
kubelet-ready-delay knob). A thread polls `.spec.unschedulable` of every node through the
lab's admin client, so cordoned windows are measured as the API shows them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import common
from bench.common import RAW, BenchError, Run
from bench.labs import Lab, lab

FROM_MINOR = "1.29"
TO_MINOR = "1.30"
DOWNLOAD_SECONDS = 3.0  # per package (kubeadm, kubelet, kubectl: ~20-50 MB each)
READY_DELAY_SECONDS = 5.0  # a restarted kubelet's first runtime check and PLEG relist
POLL_SECONDS = 0.2
#: (tool, batch) of the runs at each lab size.
RUNS = (("nodeops", "25%"), ("ansible", "25%"), ("nodeops", "1"), ("ansible", "1"))
PLAYBOOK = Path(__file__).resolve().parent / "peers" / "upgrade.yml"
READY_KNOB = "/var/lib/nodeops-sim/kubelet-ready-delay"


class Poller:
    """Samples every node's `.spec.unschedulable` from the API until stopped."""

    def __init__(self, lab_name: str) -> None:
        from nodeops import lab as nodeops_lab
        from nodeops.lab import cluster

        state = nodeops_lab.status(lab_name)
        if state is None:
            raise BenchError(f"lab {lab_name} is not up")
        self.client = cluster.admin_client(state, timeout=5.0)
        self.samples: list[tuple[float, dict[str, bool]]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                items = self.client.get("/api/v1/nodes").get("items", [])
                seen = {
                    str(n["metadata"]["name"]): bool((n.get("spec") or {}).get("unschedulable"))
                    for n in items
                }
                self.samples.append((time.monotonic(), seen))
            except Exception:  # the API restarts during the control plane's upgrade
                self.errors += 1
            self._stop.wait(POLL_SECONDS)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def windows(self) -> dict[str, float]:
        """Seconds each node was seen cordoned (first sample cordoned to first after it not)."""
        total: dict[str, float] = {}
        since: dict[str, float] = {}
        for at, seen in self.samples:
            for node, cordoned in seen.items():
                if cordoned and node not in since:
                    since[node] = at
                elif not cordoned and node in since:
                    total[node] = total.get(node, 0.0) + at - since.pop(node)
        for node, start in since.items():  # still cordoned at the end: counted to the end
            total[node] = total.get(node, 0.0) + self.samples[-1][0] - start
        return total


@dataclass
class UpgradeResult:
    """One upgrade run: totals, per-worker windows and (for nodeops) its journal's steps."""

    tool: str
    workers: int
    batch: str
    run: Run
    windows: dict[str, float]
    load: tuple[float, float, float]
    steps: dict[str, dict[str, float]] = field(default_factory=dict)  # node -> step -> s
    chains: dict[str, float] = field(default_factory=dict)  # node -> first start..last end
    batches: list[list[str]] = field(default_factory=list)
    # node -> (first step start, last step end), epoch seconds, from the journal
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def critical_paths(self) -> list[float]:
        """Each batch's longest node chain (control plane first), from the journal; a batch
        staged while the one before it was cordoned counts from that batch's end."""
        if not self.spans:  # results recorded before spans were
            return [max(self.chains.get(n, 0.0) for n in batch) for batch in self.batches]
        paths = []
        previous_end = float("-inf")
        for batch in self.batches:
            spans = [self.spans[n] for n in batch if n in self.spans]
            if not spans:
                paths.append(0.0)
                continue
            start = max(min(s for s, _ in spans), previous_end)
            end = max(e for _, e in spans)
            paths.append(max(0.0, end - start))
            previous_end = max(previous_end, end)
        return paths


def _prepare(the_lab: Lab) -> None:
    """Switch the realistic durations on in every node."""
    from nodeops.lab import faults

    for node in the_lab.nodes:
        faults.inject(the_lab.name, node, "slow-download", DOWNLOAD_SECONDS)
    script = f"mkdir -p {os.path.dirname(READY_KNOB)} && echo {READY_DELAY_SECONDS} > {READY_KNOB}"
    argv = [
        common.tool("nodeops") or "nodeops",
        "run",
        "--all",
        "--shell",
        "-i",
        str(the_lab.inventory),
    ]
    done = common.measure([*argv, "--", script])
    if done.exit_code != 0:
        raise BenchError(f"cannot set the kubelet ready delay: {done.output[-1000:]}")


def _check_upgraded(the_lab: Lab, version: str) -> None:
    from nodeops import lab as nodeops_lab
    from nodeops.lab import cluster

    state = nodeops_lab.status(the_lab.name)
    assert state is not None
    items = cluster.admin_client(state).get("/api/v1/nodes")["items"]
    wrong = [
        n["metadata"]["name"]
        for n in items
        if n["status"]["nodeInfo"]["kubeletVersion"] != f"v{version}"
        or (n.get("spec") or {}).get("unschedulable")
    ]
    if wrong or len(items) != len(the_lab.nodes):
        raise BenchError(f"lab {the_lab.name}: not upgraded and schedulable: {wrong}")


def _journal_steps(
    home: Path,
) -> tuple[dict[str, dict[str, float]], dict[str, tuple[float, float]]]:
    journals = sorted((home / ".local/state/nodeops/journal").glob("*upgrade-cluster*.jsonl"))
    if not journals:
        raise BenchError(f"no journal under {home}")
    started: dict[tuple[str, str], float] = {}
    steps: dict[str, dict[str, float]] = {}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for line in journals[-1].read_text().splitlines():
        event = json.loads(line)
        node, step = event.get("node"), event.get("step")
        if not node or not step or event.get("event") not in ("step-started", "step-finished"):
            continue
        at = datetime.fromisoformat(str(event["time"])).timestamp()
        if event["event"] == "step-started":
            started[(node, step)] = at
            first.setdefault(node, at)
        elif (node, step) in started:
            steps.setdefault(node, {})[step] = at - started.pop((node, step))
            last[node] = at
    return steps, {n: (first[n], last[n]) for n in first if n in last}


# The runbook's batches: "1. control plane cp1 [...]", "2. worker batch 1 (in parallel): ...".
_BATCH = re.compile(r"^\d+\. (?:control plane|worker batch \d+[^:]*:) (.*)$", re.MULTILINE)


def run_nodeops(the_lab: Lab, batch: str, workdir: Path) -> UpgradeResult:
    """`nodeops upgrade-cluster --to <next minor>` with --max-unavailable batch."""
    home = workdir / f"home-{the_lab.name}"
    home.mkdir(parents=True, exist_ok=True)
    argv = [common.tool("nodeops") or "nodeops", "upgrade-cluster", "--to", TO_MINOR]
    argv += ["--max-unavailable", batch, "--force", "--delete-emptydir-data"]
    argv += ["-i", str(the_lab.inventory)]
    env = dict(os.environ, HOME=str(home))
    load = common.loadavg()
    log = RAW / f"upgrade-{len(the_lab.workers)}" / f"nodeops-{batch.replace('%', 'pct')}.log"
    with Poller(the_lab.name) as poller:
        run = common.measure(argv, env=env, log=log, timeout=3600)
    if run.exit_code != 0:
        raise BenchError(f"nodeops upgrade-cluster failed: {run.output[-2000:]}")
    steps, spans = _journal_steps(home)
    batches = [re.findall(r"([\w-]+) \[", m) for m in _BATCH.findall(run.output)]
    version = re.search(r"every node is at (\d+\.\d+\.\d+)", run.output)
    _check_upgraded(the_lab, version.group(1) if version else "?")
    return UpgradeResult(
        tool="nodeops",
        workers=len(the_lab.workers),
        batch=batch,
        run=run,
        windows=poller.windows(),
        load=load,
        steps=steps,
        chains={n: end - start for n, (start, end) in spans.items()},
        batches=batches,
        spans=spans,
    )


def _ansible_inventory(the_lab: Lab, path: Path) -> None:
    ssh_args = common.ssh_common_args(the_lab.known_hosts)

    def host(name: str) -> dict[str, str]:
        return {
            "ansible_host": the_lab.nodes[name],
            "ansible_user": the_lab.user,
            "ansible_ssh_private_key_file": the_lab.key,
            "ansible_ssh_common_args": ssh_args,
            "ansible_python_interpreter": "/usr/bin/python3",
        }

    cps = [n for n in the_lab.nodes if n not in the_lab.workers]
    inventory = {
        "control_plane": {"hosts": {n: host(n) for n in cps}},
        "workers": {"hosts": {n: host(n) for n in the_lab.workers}},
    }
    path.write_text(json.dumps(inventory, indent=1))


def run_ansible(the_lab: Lab, batch: str, workdir: Path, version: str) -> UpgradeResult:
    """The kubeadm docs' commands as a plain playbook, workers with `serial: batch`."""
    run_dir = Path(tempfile.mkdtemp(prefix="aup", dir=workdir))
    inventory = run_dir / "inventory.json"
    _ansible_inventory(the_lab, inventory)
    extra = {
        "from_minor": FROM_MINOR,
        "kube_minor": TO_MINOR,
        "kube_version": version,
        "pkg_version": f"{version}-1.1",
        "workers_serial": batch,
        "kubectl_node": next(n for n in the_lab.nodes if n not in the_lab.workers),
    }
    env = common.ansible_env(run_dir)
    argv = [common.tool("ansible-playbook") or "ansible-playbook", "-i", str(inventory)]
    argv += ["-e", json.dumps(extra), str(PLAYBOOK)]
    load = common.loadavg()
    log = RAW / f"upgrade-{len(the_lab.workers)}" / f"ansible-{batch.replace('%', 'pct')}.log"
    with Poller(the_lab.name) as poller:
        run = common.measure(argv, env=env, cwd=run_dir, log=log, timeout=3600)
    if run.exit_code != 0:
        raise BenchError(f"the Ansible upgrade failed: {run.output[-2000:]}")
    _check_upgraded(the_lab, version)
    shutil.rmtree(run_dir, ignore_errors=True)
    windows = poller.windows()
    return UpgradeResult(
        "Ansible (kubeadm docs, serial)", len(the_lab.workers), batch, run, windows, load
    )


def bench_upgrade(
    workers: int,
    workdir: Path,
    on_result: Callable[[UpgradeResult], None] = lambda _: None,
    runs: Sequence[tuple[str, str]] = RUNS,
    reps: int = 1,
) -> list[UpgradeResult]:
    """Each (tool, batch) of runs on a fresh lab of 1 + workers nodes, `reps` times, the
    tools taking turns in each repetition (so a change of load hits them alike)."""
    from nodeops.lab.sim.pkg import catalog

    version = catalog.latest_patch(TO_MINOR) or ""
    results: list[UpgradeResult] = []
    for who, batch in [run for _ in range(reps) for run in runs]:
        name = f"bup{workers}{who[0]}{'s' if batch == '1' else 'q'}"
        options = ("--worker-os", "ubuntu-24.04")
        with lab(name, workers + 1, workdir, bare=False, options=options) as the_lab:
            _prepare(the_lab)
            common.say(f"upgrade {workers} workers: {who}, batch {batch}")
            if who == "nodeops":
                result = run_nodeops(the_lab, batch, workdir)
            else:
                result = run_ansible(the_lab, batch, workdir, version)
            common.say(f"  {result.run.wall:.1f} s; cordoned {_fmt(result.windows)}")
            results.append(result)
            on_result(result)
    return results


def from_json(data: dict[str, Any]) -> UpgradeResult:
    """A run as describe() recorded it (its output is not kept)."""
    return UpgradeResult(
        tool=str(data["tool"]),
        workers=int(data["workers"]),
        batch=str(data["batch"]),
        run=Run(wall=float(data["wall"]), cpu=float(data["cpu"]), exit_code=0, output=""),
        windows={str(k): float(v) for k, v in data["windows"].items()},
        load=(data["load"][0], data["load"][1], data["load"][2]),
        steps=data["steps"],
        chains=data["chains"],
        batches=data["batches"],
        spans={str(k): (float(v[0]), float(v[1])) for k, v in data.get("spans", {}).items()},
    )


def _fmt(windows: dict[str, float]) -> str:
    return ", ".join(f"{n} {s:.1f}" for n, s in sorted(windows.items()))


def step_seconds(result: UpgradeResult, node: str, *steps: str) -> float:
    """The sum of a node's journaled step durations."""
    return sum(result.steps.get(node, {}).get(s, 0.0) for s in steps)


def describe(result: UpgradeResult) -> dict[str, Any]:
    """A JSON-able summary of a run, for the raw results."""
    return {
        "tool": result.tool,
        "workers": result.workers,
        "batch": result.batch,
        "wall": result.run.wall,
        "cpu": result.run.cpu,
        "windows": result.windows,
        "steps": result.steps,
        "chains": result.chains,
        "spans": result.spans,
        "batches": result.batches,
        "load": result.load,
    }
