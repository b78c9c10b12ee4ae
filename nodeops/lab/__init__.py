"""The local lab: a simulated kubeadm cluster on this machine, one namespace set per node."""

from nodeops.lab.lifecycle import down, node_exec_argv, problems, ssh_argv, status, up
from nodeops.lab.spec import OPERATING_SYSTEMS, LabSpec, NodeSpec, default_spec
from nodeops.lab.state import LabState, NodeState, state_dir

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
