"""pyinfra deploy: the same read-only commands as `nodeops facts`, one operation each.

The commands come from the JSON list named by $NODEOPS_BENCH_COMMANDS (bench/fanout.py
writes it from nodeops' probes). A probe that exits non-zero (a tool not installed) is not
a failure, as in nodeops.
"""

from __future__ import annotations

import json
import os

from pyinfra.operations import server  # type: ignore[import-not-found,unused-ignore]

with open(os.environ["NODEOPS_BENCH_COMMANDS"], encoding="utf-8") as f:
    COMMANDS: list[list[str]] = json.load(f)

for name, command in COMMANDS:
    server.shell(name=f"read {name}", commands=[command], _ignore_errors=True)
