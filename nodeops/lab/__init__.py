"""The local lab: a simulated kubeadm cluster on this machine, one namespace set per node.

Its names are loaded on first use: the simulated tools that run inside lab nodes
(nodeops.lab.sim, started for every `kubelet --version` a probe asks) import this package
and need none of the host-side lab code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodeops.lab.lifecycle import down, node_exec_argv, problems, ssh_argv, status, up
    from nodeops.lab.spec import OPERATING_SYSTEMS, LabSpec, NodeSpec, default_spec
    from nodeops.lab.state import LabState, NodeState, state_dir

_WHERE = {
    "down": "lifecycle",
    "node_exec_argv": "lifecycle",
    "problems": "lifecycle",
    "ssh_argv": "lifecycle",
    "status": "lifecycle",
    "up": "lifecycle",
    "OPERATING_SYSTEMS": "spec",
    "LabSpec": "spec",
    "NodeSpec": "spec",
    "default_spec": "spec",
    "LabState": "state",
    "NodeState": "state",
    "state_dir": "state",
}

__all__ = [
    "OPERATING_SYSTEMS",
    "LabSpec",
    "LabState",
    "NodeSpec",
    "NodeState",
    "default_spec",
    "down",
    "node_exec_argv",
    "problems",
    "ssh_argv",
    "state_dir",
    "status",
    "up",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
