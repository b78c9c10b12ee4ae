"""`invoke bench`: run the benchmarks and write bench/results/."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench import report
from bench.common import RAW, BenchError, missing_requirements, say

PARTS = ("startup", "fanout", "upgrade")
WORKDIR = Path("/var/lib/nodeops-bench")  # not /tmp: nodeops refuses etcd backups there


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
    bare_ups: dict[int, float] = {}
    if "fanout" in parts:
        results = []
        for n in sizes:
            result = fanout.bench_size(n, reps, workdir, list(fanout.TOOLS), slow_reps.get(n, reps))
            results.append(result)
            bare_ups[n] = result.lab_up
            # Written after each size, so a long run leaves its finished part behind.
            written.append(report.write("fanout.md", report.fanout_markdown(results)))
            report.fanout_plot(results, report.RESULTS / "fanout.png")
            (RAW / "fanout.json").write_text(
                json.dumps(
                    [
                        {
                            "nodes": r.nodes,
                            "lab_up": r.lab_up,
                            "load": r.load,
                            "series": {k: asdict(v) for k, v in r.series.items()},
                        }
                        for r in results
                    ],
                    indent=1,
                )
            )
        written.append(report.RESULTS / "fanout.png")
    if "upgrade" in parts:
        done: list[upgrade.UpgradeResult] = []
        for n in workers:
            done += upgrade.bench_upgrade(n, workdir)
            written.append(report.write("upgrade.md", report.upgrade_markdown(done)))
            report.upgrade_plot(done, report.RESULTS / "upgrade.png")
            (RAW / "upgrade.json").write_text(
                json.dumps([upgrade.describe(r) for r in done], indent=1)
            )
        written.append(report.RESULTS / "upgrade.png")
    if "startup" in parts:
        started = startup.bench_startup(reps=10, lab_sizes=[3, 50], workdir=workdir)
        written.append(report.write("startup.md", report.startup_markdown(started, bare_ups)))
    say("written: " + ", ".join(str(p) for p in dict.fromkeys(written)))
    return list(dict.fromkeys(written))
