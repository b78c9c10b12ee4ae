"""`invoke bench`: run the benchmarks and write bench/results/."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import report
from bench.common import RAW, BenchError, Series, missing_requirements, say
from bench.fanout import SizeResult
from bench.upgrade import UpgradeResult, from_json

PARTS = ("startup", "fanout", "upgrade", "report")
WORKDIR = Path("/var/lib/nodeops-bench")  # not /tmp: nodeops refuses etcd backups there


FANOUT_JSON = RAW / "fanout.json"


def _size_json(result: SizeResult) -> dict[str, Any]:
    return {
        "nodes": result.nodes,
        "lab_up": result.lab_up,
        "load": result.load,
        "series": {k: asdict(v) for k, v in result.series.items()},
    }


def _earlier_fanout() -> list[SizeResult]:
    """The fan-out sizes an earlier run recorded in bench/results/raw/fanout.json."""
    try:
        data = json.loads(FANOUT_JSON.read_text())
    except (OSError, ValueError):
        return []
    return [
        SizeResult(
            nodes=int(d["nodes"]),
            series={k: Series(**v) for k, v in d["series"].items()},
            load=[(a, b, c) for a, b, c in d["load"]],
            lab_up=float(d["lab_up"]),
        )
        for d in data
    ]


UPGRADE_JSON = RAW / "upgrade.json"


def _key(result: UpgradeResult) -> tuple[int, str, str]:
    return (result.workers, "nodeops" if result.tool == "nodeops" else "ansible", result.batch)


def _earlier_upgrades() -> list[UpgradeResult]:
    """The upgrade runs an earlier run recorded in bench/results/raw/upgrade.json."""
    try:
        data = json.loads(UPGRADE_JSON.read_text())
    except (OSError, ValueError):
        return []
    return [from_json(d) for d in data]


def check_requirements() -> None:
    """Refuse to start, saying what to install, when a peer or the lab cannot run."""
    missing = missing_requirements()
    if missing:
        raise BenchError(
            f"missing: {', '.join(missing)}; install the bench extra: pip install -e '.[bench]'"
        )
    if os.geteuid() != 0:
        raise BenchError("the benchmarks run on the local lab, which needs root")


def run(
    parts: list[str],
    sizes: list[int],
    reps: int,
    workers: list[int],
    slow_reps: dict[int, int],
    ansible_default_max: int = 1000,
    ansible_tuned_max: int = 1000,
    upgrade_reps: int = 1,
    upgrade_add: bool = False,
) -> list[Path]:
    """Run the chosen parts; returns the results files written."""
    from bench import fanout, startup, upgrade

    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise BenchError(f"unknown part(s) {unknown}; parts: {', '.join(PARTS)}")
    check_requirements()
    RAW.mkdir(parents=True, exist_ok=True)
    WORKDIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run", dir=WORKDIR))
    written: list[Path] = []
    # Sizes measured by an earlier `invoke bench` stay in the tables until measured again.
    earlier = {r.nodes: r for r in _earlier_fanout() if r.nodes not in sizes}
    bare_ups = {n: r.lab_up for n, r in earlier.items()}
    if "report" in parts:  # the tables and plots again from bench/results/raw, no runs
        every = sorted(_earlier_fanout(), key=lambda r: r.nodes)
        if every:
            written.append(report.write("fanout.md", report.fanout_markdown(every)))
            report.fanout_plot(every, report.RESULTS / "fanout.png")
        runs = _earlier_upgrades()
        if runs:
            written.append(report.write("upgrade.md", report.upgrade_markdown(runs)))
            report.upgrade_plot(runs, report.RESULTS / "upgrade.png")
    if "fanout" in parts:
        results = list(earlier.values())
        for n in sizes:
            limits = {fanout.ANSIBLE_DEFAULT: ansible_default_max}
            limits[fanout.ANSIBLE_TUNED] = ansible_tuned_max
            tools = [t for t in fanout.TOOLS if n <= limits.get(t, n)]
            result = fanout.bench_size(n, reps, workdir, tools, slow_reps.get(n, reps))
            results = sorted([*results, result], key=lambda r: r.nodes)
            bare_ups[n] = result.lab_up
            # Written after each size, so a long run leaves its finished part behind.
            written.append(report.write("fanout.md", report.fanout_markdown(results)))
            report.fanout_plot(results, report.RESULTS / "fanout.png")
            FANOUT_JSON.write_text(json.dumps([_size_json(r) for r in results], indent=1))
        written.append(report.RESULTS / "fanout.png")
    if "upgrade" in parts:
        keys = {(n, who, batch) for n in workers for who, batch in upgrade.RUNS}
        # Earlier runs of the settings measured now are replaced, or kept as more repetitions.
        done = [r for r in _earlier_upgrades() if upgrade_add or _key(r) not in keys]

        def record(result: upgrade.UpgradeResult) -> None:
            # Written after each run, so a long run leaves its finished part behind.
            done.append(result)
            done.sort(key=lambda r: (r.workers, r.tool, r.batch))
            report.write("upgrade.md", report.upgrade_markdown(done))
            report.upgrade_plot(done, report.RESULTS / "upgrade.png")
            UPGRADE_JSON.write_text(json.dumps([upgrade.describe(r) for r in done], indent=1))

        for n in workers:
            upgrade.bench_upgrade(n, workdir, record, reps=upgrade_reps)
        written.append(report.RESULTS / "upgrade.md")
        written.append(report.RESULTS / "upgrade.png")
    if "startup" in parts:
        started = startup.bench_startup(reps=10, lab_sizes=[3, 50], workdir=workdir)
        written.append(report.write("startup.md", report.startup_markdown(started, bare_ups)))
    say("written: " + ", ".join(str(p) for p in dict.fromkeys(written)))
    return list(dict.fromkeys(written))
