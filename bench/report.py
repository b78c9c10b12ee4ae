"""Results as Markdown tables and PNG plots under bench/results/."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.common import RESULTS, facts_table, markdown_table, spread

__all__ = [
    "RESULTS",
    "fanout_markdown",
    "fanout_plot",
    "startup_markdown",
    "upgrade_markdown",
    "upgrade_plot",
    "write",
]
from bench.fanout import (
    ANSIBLE_DEFAULT,
    ANSIBLE_GATHER,
    ANSIBLE_TUNED,
    FABRIC,
    NODEOPS,
    PYINFRA,
    SizeResult,
)
from bench.startup import StartupResult
from bench.upgrade import DOWNLOAD_SECONDS, READY_DELAY_SECONDS, UpgradeResult, step_seconds


def _load_text(loads: Sequence[tuple[float, float, float]]) -> str:
    if not loads:
        return "-"
    ones = [one for one, _, _ in loads]
    return f"{min(ones):.1f}-{max(ones):.1f} (1-minute load average, {len(ones)} samples)"


def _header(title: str, loads: Sequence[tuple[float, float, float]]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    extra = {"tables written": when, "load during the runs": _load_text(loads)}
    return f"# {title}\n\n{facts_table(extra)}\n"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not math.isnan(a) and not math.isnan(b) else "-"


def fanout_markdown(results: Sequence[SizeResult], notes: Sequence[str] = ()) -> str:
    """The fan-out tables: per lab size, each tool's wall and CPU seconds and ratios."""
    loads = [load for r in results for load in r.load]
    text = _header("Fan-out of read-only facts", loads)
    text += (
        "Every tool reads the same facts (the probes of `nodeops facts`, nodeops/facts/) from "
        "every node of a bare lab (cp1 + workers; Ubuntu 24.04 and Rocky 9 alternating). "
        "nodeops sends them as one script per node; the peers send one command per probe. "
        "Wall and CPU seconds of the controlling side (the tool's process and every child it "
        "waited for; ssh ControlPersist masters detach and are not counted). "
        "Median (min-max) of the timed repetitions, after one untimed warm-up pass; "
        "ratios = tool's median / nodeops' median. The machine (2 cores) was shared with "
        "other work while these ran, often far beyond its 2 cores (load column above): wall "
        "times swing between repetitions; CPU seconds are the steadier figure.\n\n"
    )
    for result in results:
        ours = result.series.get(NODEOPS)
        base = ours.wall if ours else float("nan")
        cpu_base = ours.cpu if ours else float("nan")
        rows = []
        for name, series in result.series.items():
            rows.append(
                [
                    name,
                    str(len(series.walls)),
                    spread(series.walls),
                    spread(series.cpus),
                    _ratio(series.wall, base),
                    _ratio(series.cpu, cpu_base),
                ]
            )
        text += f"## N = {result.nodes} nodes (lab.up {result.lab_up:.1f} s, bare)\n\n"
        headers = ["tool", "runs", "wall s", "CPU s", "wall / nodeops", "CPU / nodeops"]
        text += markdown_table(headers, rows)
        text += "\n"
    target = next((r for r in results if r.nodes == 50), None)
    if target is not None:
        text += "## Targets at N = 50\n\n" + markdown_table(
            ["target", "wall ratio (medians)", "met", "same ratio of CPU seconds"], _targets(target)
        )
    for note in notes:
        text += f"\n{note}\n"
    return text


def _targets(result: SizeResult) -> list[list[str]]:
    s = result.series
    rows: list[list[str]] = []
    if NODEOPS not in s:
        return rows
    ours = s[NODEOPS].wall
    # (peer, what is promised, whether the ratio is nodeops/peer, the bound)
    checks = [
        (FABRIC, "nodeops wall <= 1.0x Fabric naive", True, 1.0),
        (ANSIBLE_DEFAULT, "Ansible defaults wall >= 15x nodeops", False, 15.0),
        (PYINFRA, "pyinfra wall >= 1.5x nodeops", False, 1.5),
    ]
    cpu = s[NODEOPS].cpu
    for name, label, ours_over_peer, bound in checks:
        if name in s and s[name].walls:
            v = ours / s[name].wall if ours_over_peer else s[name].wall / ours
            c = cpu / s[name].cpu if ours_over_peer else s[name].cpu / cpu
            ok = v <= bound if ours_over_peer else v >= bound
            rows.append([label, f"{v:.2f}x", "yes" if ok else "**no**", f"{c:.2f}x"])
    return rows


def fanout_plot(results: Sequence[SizeResult], path: Path) -> None:
    """Wall and CPU seconds against lab size, one line per tool (log scale)."""
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    names = [NODEOPS, FABRIC, PYINFRA, ANSIBLE_TUNED, ANSIBLE_DEFAULT, ANSIBLE_GATHER]
    for ax, what in zip(axes, ("wall", "cpu"), strict=True):
        for name in names:
            points = [
                (r.nodes, getattr(r.series[name], what))
                for r in results
                if name in r.series and r.series[name].walls
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=name)
        ax.set_xlabel("nodes")
        ax.set_ylabel(f"{'wall' if what == 'wall' else 'CPU'} seconds (median)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"Facts from N nodes: {'wall time' if what == 'wall' else 'controller CPU'}")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _groups(results: Sequence[UpgradeResult]) -> dict[tuple[int, str, str], list[UpgradeResult]]:
    """The repetitions of each (workers, tool, batch), in the order first met."""
    groups: dict[tuple[int, str, str], list[UpgradeResult]] = {}
    for r in results:
        groups.setdefault((r.workers, r.tool, r.batch), []).append(r)
    return groups


def _median_or_nan(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def upgrade_markdown(results: Sequence[UpgradeResult], notes: Sequence[str] = ()) -> str:
    """The rolling-upgrade tables: totals, cordoned windows, and nodeops against its targets."""
    text = _header("Rolling upgrade, one minor", [r.load for r in results])
    groups = _groups(results)
    reps = sorted({len(g) for g in groups.values()})
    text += (
        f"Each run on a fresh lab: cp1 (Ubuntu 22.04) + N Ubuntu 24.04 workers at 1.29.3, "
        f"upgraded to the latest 1.30 patch. Simulated durations: each package download "
        f"waits {DOWNLOAD_SECONDS:g} s (lab fault `slow-download`), a restarted kubelet posts "
        f"Ready=False for {READY_DELAY_SECONDS:g} s (lab knob kubelet-ready-delay). Cordoned "
        "windows as the API shows them: `.spec.unschedulable` of every node polled every "
        "0.2 s from the host with the lab's admin credentials. Runs per row: "
        f"{'/'.join(map(str, reps))}, the tools taking turns in each repetition; median "
        "(min-max); windows are the median and the largest over every worker of every run; "
        "ratios = median total / nodeops' median total at the same size and batch.\n\n"
    )
    rows = []
    for (workers, tool, batch), runs in groups.items():
        windows = [w for r in runs for n, w in r.windows.items() if n != "cp1"]
        ours = groups.get((workers, "nodeops", batch), [])
        total = statistics.median(r.run.wall for r in runs)
        base = _median_or_nan([r.run.wall for r in ours])
        rows.append(
            [
                str(workers),
                tool,
                batch,
                str(len(runs)),
                spread([r.run.wall for r in runs]),
                _ratio(total, base),
                spread([r.run.cpu for r in runs]),
                f"{statistics.median(windows):.1f}" if windows else "-",
                f"{max(windows):.1f}" if windows else "-",
                spread([r.windows.get("cp1", 0.0) for r in runs]),
            ]
        )
    text += "## Totals\n\n" + markdown_table(
        [
            "workers",
            "tool",
            "batch",
            "runs",
            "total wall s",
            "wall / nodeops",
            "CPU s",
            "worker cordoned s (median)",
            "(max)",
            "cp1 cordoned s",
        ],
        rows,
    )
    for (workers, _, batch), runs in groups.items():
        runs = [r for r in runs if r.steps]
        if not runs:
            continue
        text += f"\n## nodeops, {workers} workers, batch {batch}: each worker\n\n"
        text += (
            "Medians over the runs; met = in how many runs the worker's window was within "
            "drain + kubelet restart + Ready + 2 s of that run.\n\n"
        )
        wrows = []
        met = total_checks = 0
        names = sorted({n for r in runs for n in r.windows if n != "cp1"}, key=_node_order)
        for node in names:
            cols: dict[str, list[float]] = {}
            hits = 0
            for r in (r for r in runs if node in r.windows):
                drain = step_seconds(r, node, "drain")
                restart = step_seconds(r, node, "restart-kubelet")
                ready = step_seconds(r, node, "wait-ready")
                inside = step_seconds(
                    r, node, "install-kubeadm", "kubeadm-upgrade", "install-kubelet"
                )
                target = drain + restart + ready + 2.0
                values = (r.windows[node], drain, restart, ready, inside, target)
                for key, value in zip("wdrRit", values, strict=True):
                    cols.setdefault(key, []).append(value)
                hits += r.windows[node] <= target
            seen = len(cols.get("w", []))
            met += hits
            total_checks += seen
            wrows.append(
                [node]
                + [f"{statistics.median(cols[k]):.1f}" for k in "wdrRit"]
                + [f"{hits}/{seen}" if hits == seen else f"**{hits}/{seen}**"]
            )
        text += markdown_table(
            [
                "worker",
                "cordoned (API) s",
                "drain s",
                "kubelet restart s",
                "Ready wait s",
                "kubeadm + installs s",
                "target: drain+restart+Ready+2",
                "met",
            ],
            wrows,
        )
        ratios = [r.run.wall / sum(r.critical_paths) for r in runs if sum(r.critical_paths)]
        within = sum(ratio <= 1.1 for ratio in ratios)
        text += (
            f"\nWindow target met in {met} of {total_checks} worker runs. Total against the "
            "sum of the per-batch critical paths (each batch's longest node chain, first step "
            "start to last step end, from the journal; a batch staged while the one before it "
            "was cordoned counts from that one's end), target <= 1.1x: "
            + ", ".join(f"{ratio:.2f}x" for ratio in ratios)
            + f" — met in {within} of {len(ratios)} runs.\n"
            if ratios
            else ""
        )
    for note in notes:
        text += f"\n{note}\n"
    return text


def _node_order(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 0, name)


def upgrade_plot(results: Sequence[UpgradeResult], path: Path) -> None:
    """Cordoned window of each worker, per tool and batch size (largest lab)."""
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    if not results:
        return
    biggest = max(r.workers for r in results)
    chosen = {k: g for k, g in _groups(results).items() if k[0] == biggest}
    fig, ax = plt.subplots(figsize=(12, 5))
    workers = sorted(
        {n for g in chosen.values() for r in g for n in r.windows if n != "cp1"},
        key=_node_order,
    )
    width = 0.8 / max(len(chosen), 1)
    for i, ((_, tool, batch), runs) in enumerate(chosen.items()):
        xs = [j + i * width for j in range(len(workers))]
        total = statistics.median(r.run.wall for r in runs)
        label = f"{tool}, batch {batch} (median total {total:.0f} s, {len(runs)} runs)"
        heights = [_median_or_nan([r.windows[n] for r in runs if n in r.windows]) for n in workers]
        ax.bar(xs, heights, width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(workers))], workers, rotation=45)
    ax.set_ylabel("cordoned seconds (API view)")
    ax.set_title(f"Rolling upgrade of {biggest} workers: how long each was out of service")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def startup_markdown(result: StartupResult, bare_lab_up: dict[int, float]) -> str:
    """`nodeops --help` and lab.up times."""
    text = _header("Start-up", [])
    rows: list[list[str]] = [
        [
            "`nodeops --help` (target <= 0.4 s)",
            str(len(result.help.walls)),
            spread(result.help.walls),
            spread(result.help.cpus),
        ]
    ]
    for label, seconds in result.lab_up.items():
        rows.append([label, "1", seconds, "-"])
    for nodes, up in sorted(bare_lab_up.items()):
        rows.append([f"lab.up, {nodes} nodes, bare (fan-out labs)", "1", f"{up:.1f}", "-"])
    return text + markdown_table(["what", "runs", "wall s", "CPU s"], rows)


def write(name: str, text: str) -> Path:
    """Write one results file."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text)
    return path
