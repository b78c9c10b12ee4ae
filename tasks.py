"""Invoke entry point: `invoke --list`. The tasks live in nodeops/tasks so that the installed
`nodeops` command serves exactly the same tree."""

from typing import Any

from invoke.exceptions import Exit
from invoke.tasks import task

from bench.tasks import bench
from nodeops.tasks import ns

# `invoke bench` only: the installed `nodeops` command loads nodeops.tasks, not this file.
ns.add_task(bench)

__all__ = ["ns"]


@task(
    help={
        "runs": "How many runs (default 3).",
        "seed": "Seed of the first run; run i uses seed+i (default: a random one, printed).",
        "jobs": "Runs at once, each on its own lab (default 1).",
        "keep": "Keep every run's directory (output, journal), not only failed ones.",
    }
)
def soak(c: Any, runs: int = 3, seed: str | None = None, jobs: int = 1, keep: bool = False) -> None:
    """Dev tool, as root: upgrade a fresh small lab one minor per run with one random fault
    (a lab fault switch, or SIGKILL of nodeops), clear it, resume, check the invariants.

    One line per run, then a summary; exits 1 when any invariant broke. Replay run i with
    `invoke soak --runs 1 --seed SEED_OF_RUN_I`."""
    from nodeops.lab import soakrun

    first = int(seed) if seed is not None else None
    if not soakrun.main(runs=runs, seed=first, jobs=jobs, keep=keep):
        raise Exit(code=1)


ns.add_task(soak)
