"""Simulated cluster components of the local lab. They run inside lab nodes.

Nodes share the host's Python, but not necessarily an environment where nodeops is
importable (the node's /usr/bin/python3 may lack it), so every simulated program is started
through `module_command`: the Python that runs the lab, with this checkout on PYTHONPATH.
"""

from __future__ import annotations

import os
import shlex
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

# The directory that holds the `nodeops` package.
SOURCE_ROOT = Path(__file__).resolve().parents[3]


def module_argv(module: str, args: Sequence[str] = ()) -> list[str]:
    """argv that runs `python -m module args` with nodeops importable (use with env PYTHONPATH).

    -S: no `site` at start-up (its .pth files, the editable install's finder), which would
    cost every simulated `rpm -q` or `kubelet --version` more than the real tool takes;
    module_env() puts this checkout and the site-packages on PYTHONPATH instead."""
    return [sys.executable, "-S", "-m", module, *args]


def module_env() -> dict[str, str]:
    """Environment entries a simulated program needs to import nodeops (and PyYAML, ...)."""
    inherited = os.environ.get("PYTHONPATH")
    if sys.flags.no_site and inherited:
        # A simulated program started with -S: without `site`, sysconfig names the base
        # Python's site-packages, not the virtualenv's; pass on what this one was given.
        return {"PYTHONPATH": inherited}
    found = sysconfig.get_paths()
    paths = [str(SOURCE_ROOT), found["purelib"], found["platlib"]]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def wrapper_script(module: str, *, env: dict[str, str] | None = None, comment: str = "") -> str:
    """A /bin/sh script that runs a simulated program, passing its arguments through.

    Installed as e.g. /usr/bin/kubelet on a lab node, so that operators and systemd units
    call it by its real path and name.
    """
    assigns = " ".join(
        shlex.quote(f"{key}={value}") for key, value in {**module_env(), **(env or {})}.items()
    )
    lines = ["#!/bin/sh"]
    if comment:
        lines.append(f"# {comment}")
    lines.append(f'exec env {assigns} {shlex.join(module_argv(module))} "$@"')
    return "\n".join(lines) + "\n"
