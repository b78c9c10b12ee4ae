"""The `bench` task of the repository's tasks.py (not part of the installed nodeops command)."""

from __future__ import annotations

from typing import Any

from invoke.exceptions import Exit
from invoke.tasks import task


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise Exit(f"error: {option} takes numbers separated by commas, not {text!r}", 2) from None


@task(
    help={
        "parts": "Which benchmarks, comma-separated: startup, fanout, upgrade (default: all); "
        "report only writes the tables and plots again from bench/results/raw.",
        "sizes": "Lab sizes of the fan-out (default 10,50,100).",
        "reps": "Timed repetitions of each fan-out tool (default 3).",
        "slow_reps": "Repetitions of the slow Ansible runs per size (default 10:2,50:1,100:1).",
        "workers": "Worker counts of the rolling-upgrade labs (default 4,12).",
        "upgrade_reps": "Repetitions of each rolling-upgrade run (default 3).",
        "upgrade_add": "Keep the rolling-upgrade runs recorded before for the same settings "
        "and add these as more repetitions (default: replace them).",
        "ansible_default_max": "Largest lab Ansible with default settings (forks 5) is timed "
        "on (default 50: at 100 nodes one run takes tens of minutes on 2 cores).",
        "ansible_tuned_max": "Largest lab tuned Ansible is timed on (default 100).",
    }
)
def bench(
    c: Any,
    parts: str = "startup,fanout,upgrade",
    sizes: str = "10,50,100",
    reps: int = 3,
    slow_reps: str = "10:2,50:1,100:1",
    workers: str = "4,12",
    upgrade_reps: int = 3,
    upgrade_add: bool = False,
    ansible_default_max: int = 50,
    ansible_tuned_max: int = 100,
) -> None:
    """Benchmark nodeops against Ansible, pyinfra and Fabric on the local lab (as root).

    Needs the bench extra (`pip install -e '.[bench]'`); installs nothing itself. Writes
    Markdown tables and PNG plots to bench/results/ (logs to bench/results/raw/).
    """
    from bench import run
    from bench.common import BenchError

    pairs = [p.split(":") for p in slow_reps.split(",") if p.strip()]
    try:
        slow = {int(n): int(r) for n, r in pairs}
    except ValueError:
        raise Exit(f"error: --slow-reps takes SIZE:REPS pairs, not {slow_reps!r}", 2) from None
    try:
        run.run(
            [p.strip() for p in parts.split(",") if p.strip()],
            _ints(sizes, "--sizes"),
            int(reps),
            _ints(workers, "--workers"),
            slow,
            int(ansible_default_max),
            int(ansible_tuned_max),
            int(upgrade_reps),
            bool(upgrade_add),
        )
    except BenchError as error:
        raise Exit(f"error: {error}", 2) from None
