"""What every benchmark shares: the tools, measured runs, statistics and machine facts."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
RAW = RESULTS / "raw"  # logs and generated playbooks; ignored by git

#: Executables the peers bring, and the distribution that brings each.
PEER_TOOLS = {"ansible-playbook": "ansible-core", "pyinfra": "pyinfra"}
PEER_MODULES = {"matplotlib": "matplotlib", "fabric": "fabric"}


class BenchError(Exception):
    """A benchmark cannot run or its peer gave a wrong answer."""


def tool(name: str) -> str | None:
    """A command's path: beside this Python first (the venv the bench runs in), then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def missing_requirements() -> list[str]:
    """Distributions of the `bench` extra that this Python cannot use."""
    missing = [dist for name, dist in PEER_TOOLS.items() if tool(name) is None]
    for module, dist in PEER_MODULES.items():
        try:
            __import__(module)
        except ImportError:
            missing.append(dist)
    if tool("nodeops") is None:
        missing.append("nodeops")
    return missing


@dataclass(frozen=True)
class Run:
    """One measured run of a command: wall seconds, CPU seconds of the controlling side."""

    wall: float
    cpu: float
    exit_code: int
    output: str


def measure(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 1800,
    log: Path | None = None,
) -> Run:
    """Run argv to its end; CPU is user+system of it and every child it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(argv)}\n# exit {done.returncode}, {wall:.2f} s\n{done.stdout}")
    return Run(wall=wall, cpu=cpu, exit_code=done.returncode, output=done.stdout)


@dataclass
class Series:
    """Repeated measurements of one tool in one setting."""

    tool: str
    setting: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, run: Run) -> None:
        """Record one run."""
        self.walls.append(run.wall)
        self.cpus.append(run.cpu)

    @property
    def wall(self) -> float:
        """Median wall seconds."""
        return statistics.median(self.walls) if self.walls else float("nan")

    @property
    def cpu(self) -> float:
        """Median CPU seconds."""
        return statistics.median(self.cpus) if self.cpus else float("nan")


def spread(values: Sequence[float]) -> str:
    """`median (min-max)` of seconds, for a table cell."""
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.2f}"
    return f"{med:.2f} ({min(values):.2f}-{max(values):.2f})"


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    return os.getloadavg()


def _version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return "-"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].strip() if text else "-"


def _dist_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def machine_facts() -> dict[str, str]:
    """The machine and tool versions a result was measured with."""
    ssh = _version(["ssh", "-V"])
    facts = {
        "CPUs": str(os.cpu_count()),
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "OpenSSH (client)": ssh,
    }
    for dist in ("nodeops", "fabric", "paramiko", "ansible-core", "pyinfra", "invoke"):
        facts[dist] = _dist_version(dist)
    return facts


def facts_table(extra: Mapping[str, str] | None = None) -> str:
    """The machine facts as a two-column Markdown table."""
    rows = {**machine_facts(), **(extra or {})}
    lines = ["| machine | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in rows.items()]
    return "\n".join(lines) + "\n"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def ansible_env(run_dir: Path, **settings: str) -> dict[str, str]:
    """Ansible's environment for one run: every file it writes in run_dir, defaults otherwise.

    Host keys stay checked (the inventory points ssh at the lab's known_hosts).
    """
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_HOME": str(run_dir / "home"),
            "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp"),
            # On the node: /var/lib is each lab node's own.
            "ANSIBLE_REMOTE_TMP": "/var/lib/nodeops-bench/ansible-tmp",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(run_dir / "cp"),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_CONFIG": str(run_dir / "ansible.cfg"),  # never written: the defaults
        }
    )
    env.update({f"ANSIBLE_{name.upper()}": value for name, value in settings.items()})
    return env


def ssh_common_args(known_hosts: str) -> str:
    """OpenSSH options for the peers: the lab's known_hosts only, unknown keys refused."""
    return (
        f"-o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null"
        " -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes"
    )


def say(text: str) -> None:
    """Progress on stderr, flushed (runs are long)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
