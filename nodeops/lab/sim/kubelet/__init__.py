"""The lab's simulated kubelet: registers its Node, runs static and scheduled pods as processes.

Run as `python -m nodeops.lab.sim.kubelet [kubelet flags]` inside a lab node (installed as
/usr/bin/kubelet by the simulated kubelet package). Its version comes from
$NODEOPS_KUBELET_VERSION.
"""

VERSION_ENV = "NODEOPS_KUBELET_VERSION"
DEFAULT_VERSION = "v1.29.3"
