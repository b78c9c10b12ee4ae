"""`nodeops --help` stays fast: loading the task tree imports no heavy library."""

from __future__ import annotations

import subprocess
import sys

# Each costs tens of milliseconds of start-up; task bodies import them when they run.
HEAVY = ("fabric", "paramiko", "rich", "jinja2", "cryptography")
PROBE = (
    "import sys, nodeops.cli\n"
    "heavy = {heavy!r}\n"
    "print('HEAVY=' + ','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
)


def loaded_after(statement: str) -> list[str]:
    """The heavy modules a fresh interpreter holds after running a statement."""
    code = statement + "\n" + PROBE.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    line = done.stdout.rsplit("HEAVY=", 1)[1].strip()  # the probe's line, after any output
    return [m for m in line.split(",") if m]


def test_loading_the_task_tree_imports_no_heavy_library() -> None:
    assert loaded_after("import nodeops.tasks") == []


def test_the_probe_sees_a_heavy_import() -> None:
    # The probe can fail: a task body's import is seen once the body's module is loaded.
    assert "paramiko" in loaded_after("import nodeops.fanout")


def test_listing_and_help_import_no_heavy_library() -> None:
    for argv in (["nodeops", "--list"], ["nodeops", "--help"], ["nodeops", "--help", "facts"]):
        run = f"from nodeops.cli import program\nprogram.run({argv!r}, exit=False)"
        assert loaded_after(run) == [], argv
