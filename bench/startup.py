"""Start-up costs: `nodeops --help`, and `lab.up` for small and large labs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.common import RAW, BenchError, Series, measure, say, tool
from bench.labs import lab


@dataclass
class StartupResult:
    """`nodeops --help` runs and lab.up times (label -> seconds, or the reason it failed)."""

    help: Series
    lab_up: dict[str, str]


def bench_help(reps: int) -> Series:
    """`nodeops --help`, reps times after one warm-up run."""
    series = Series("nodeops --help", "start-up")
    argv = [tool("nodeops") or "nodeops", "--help"]
    measure(argv)
    for _ in range(reps):
        run = measure(argv)
        if run.exit_code != 0:
            raise BenchError(f"nodeops --help exited {run.exit_code}: {run.output[-500:]}")
        series.add(run)
    return series


def bench_lab_up(sizes: list[int], workdir: Path) -> dict[str, str]:
    """lab.up of a full cluster of each size (each lab torn down after)."""
    found: dict[str, str] = {}
    for nodes in sizes:
        label = f"lab.up, {nodes} nodes, kubeadm cluster"
        try:
            with lab(f"bsu{nodes}", nodes, workdir, bare=False) as the_lab:
                found[label] = f"{the_lab.up.wall:.1f}"
        except BenchError as error:
            # One line: it goes into a table cell.
            found[label] = "failed: " + " ".join(str(error).split())[-200:]
            (RAW / f"lab-up-{nodes}.err").write_text(str(error))
        say(f"{label}: {found[label]}")
    return found


def bench_startup(reps: int, lab_sizes: list[int], workdir: Path) -> StartupResult:
    """Both start-up measurements."""
    return StartupResult(help=bench_help(reps), lab_up=bench_lab_up(lab_sizes, workdir))
