"""Simulated package tools of lab nodes: apt-get/apt/apt-mark/apt-cache, dnf/yum, rpm.

`preinstall_argv(version)` is what the cluster bring-up runs inside a node to install the
kube packages the way the kubeadm install docs do.
"""

from __future__ import annotations

from nodeops.lab.sim import module_argv, module_env


def preinstall_argv(version: str) -> list[str]:
    """argv to run INSIDE a node that installs and holds the kube packages at version.

    It needs the environment of `module_env()` (PYTHONPATH to this checkout); the argv
    carries it itself through `env`, so the caller can exec it as is.
    """
    env = [f"{k}={v}" for k, v in module_env().items()]
    argv = module_argv("nodeops.lab.sim.pkg.preinstall", [version.lstrip("v")])
    return ["env", *env, *argv]


__all__ = ["preinstall_argv"]
