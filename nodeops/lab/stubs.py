"""The simulated tools every lab node gets in its /usr overlay, at their real paths.

Debian-family nodes: apt-get, apt, apt-mark, apt-cache (nodeops.lab.sim.pkg.apt); dpkg and
dpkg-query stay the host's real ones, reading the node's own /var/lib/dpkg/status, into
which the simulated apt writes the kube packages. RHEL-family nodes: dnf, yum
(nodeops.lab.sim.pkg.dnf) and rpm (nodeops.lab.sim.pkg.rpm). Every node: systemctl and
journalctl (nodeops.lab.sim.systemctl). The host's own kube binaries are hidden so that a
node has only what its packages install.
"""

from __future__ import annotations

from pathlib import Path

from nodeops.lab.sim.pkg.catalog import PACKAGES
from nodeops.lab.sim.pkg.files import node_wrapper

_APT = "nodeops.lab.sim.pkg.apt"
_DNF = "nodeops.lab.sim.pkg.dnf"
_RPM = "nodeops.lab.sim.pkg.rpm"
_SYSTEMCTL = "nodeops.lab.sim.systemctl"

#: Simulated tools by path relative to /usr: (module, tool name).
DEBIAN_TOOLS = {
    "bin/apt-get": (_APT, "apt-get"),
    "bin/apt": (_APT, "apt"),
    "bin/apt-mark": (_APT, "apt-mark"),
    "bin/apt-cache": (_APT, "apt-cache"),
}
RHEL_TOOLS = {
    "bin/dnf": (_DNF, "dnf"),
    "bin/yum": (_DNF, "yum"),
    "bin/rpm": (_RPM, "rpm"),
}
COMMON_TOOLS = {
    "bin/systemctl": (_SYSTEMCTL, "systemctl"),
    "bin/journalctl": (_SYSTEMCTL, "journalctl"),
}
#: What the RHEL tools shadow when the host has them, relative to /usr (the apt family hides these).
RHEL_TOOL_NAMES = ("bin/rpm", "bin/dnf", "bin/yum", "bin/rpmquery", "bin/dnf-3", "bin/yum-builddep")
#: Host programs hidden on every node: only the node's packages provide them.
KUBE_BINARIES = ("usr/bin/kubeadm", "usr/bin/kubelet", "usr/bin/kubectl", "usr/bin/crictl")


def _install(usr_upper: Path, tools: dict[str, tuple[str, str]]) -> None:
    for rel, (module, tool) in tools.items():
        path = usr_upper / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            node_wrapper(module, {"NODEOPS_SIM_TOOL": tool}, f"nodeops lab: simulated {tool}")
        )
        path.chmod(0o755)


def install_tools(family: str, usr_upper: Path) -> None:
    """Write the simulated tools of a family ("debian" or "rhel") into a /usr upper dir."""
    _install(usr_upper, DEBIAN_TOOLS if family == "debian" else RHEL_TOOLS)
    _install(usr_upper, COMMON_TOOLS)


def install_rhel_tools(usr_upper: Path) -> None:
    """Write the RHEL-family tools (and the common ones) into a /usr upper directory."""
    install_tools("rhel", usr_upper)


def without_kube_packages(dpkg_status: str) -> str:
    """dpkg's status file minus the kube packages (the host may have Google's kubectl)."""
    kept = [
        stanza
        for stanza in dpkg_status.split("\n\n")
        if stanza.strip()
        and stanza.strip().split("\n", 1)[0].removeprefix("Package: ").strip() not in PACKAGES
    ]
    return "\n\n".join(s.strip("\n") for s in kept) + "\n\n" if kept else ""
