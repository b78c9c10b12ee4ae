"""System probes: host name, kernel, os-release, dnf/yum presence, and the node's kubeadm role."""

from __future__ import annotations

from nodeops.cmd import Cmd, Raw, cmd
from nodeops.facts.script import Probe

APISERVER_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
KUBELET_KUBECONFIG = "/etc/kubernetes/kubelet.conf"

CONTROL_PLANE = "control-plane"
WORKER = "worker"
NO_ROLE = "none"

HOSTNAME = Probe("hostname", cmd("uname", "-n"))
KERNEL = Probe("kernel", cmd("uname", "-r"))
OS_RELEASE = Probe(
    "os_release", cmd("cat", "/etc/os-release", Raw("2>/dev/null ||"), "cat", "/usr/lib/os-release")
)
# apt-get too: a node with both families' package managers is refused (which one owns kubelet?).
PACKAGE_TOOLS = ("dnf", "yum", "apt-get")
TOOLS = Probe(
    "tools",
    Cmd(
        (
            Raw("for t in"),
            *PACKAGE_TOOLS,
            Raw('; do p=$(command -v "$t") && printf'),
            "%s\\t%s\\n",
            Raw('"$t" "$p"; done; exit 0'),
        )
    ),
)
KUBE_FILES = Probe(
    "kube_files",
    Cmd(
        (
            Raw("for f in"),
            APISERVER_MANIFEST,
            KUBELET_KUBECONFIG,
            Raw('; do if [ -e "$f" ]; then printf'),
            "present %s\\n",
            Raw('"$f"; else printf'),
            "absent %s\\n",
            Raw('"$f"; fi; done'),
        )
    ),
)


def parse_line(text: str) -> str | None:
    """The first non-blank line of a probe's output, stripped; None if there is none."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return None


def parse_tools(text: str) -> dict[str, str]:
    """Tool name -> path from the tools probe (`name<TAB>path` lines)."""
    tools: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, path = line.partition("\t")
        if sep and name in PACKAGE_TOOLS and path.strip():
            tools[name] = path.strip()
    return tools


def has_dnf(tools: dict[str, str]) -> bool | None:
    """True if dnf is installed, False if only yum is, None if neither (no evidence)."""
    if "dnf" in tools:
        return True
    if "yum" in tools:
        return False
    return None


def parse_kube_files(text: str) -> dict[str, bool]:
    """Path -> whether it exists, from the kube_files probe (`present|absent PATH` lines)."""
    files: dict[str, bool] = {}
    for line in text.splitlines():
        word, _, path = line.partition(" ")
        if word in {"present", "absent"} and path in {APISERVER_MANIFEST, KUBELET_KUBECONFIG}:
            files[path] = word == "present"
    return files


def role_from(files: dict[str, bool]) -> str | None:
    """The node's kubeadm role from which kubeadm files exist; None if the probe said nothing."""
    if files.get(APISERVER_MANIFEST):
        return CONTROL_PLANE
    if files.get(KUBELET_KUBECONFIG):
        return WORKER
    if APISERVER_MANIFEST in files and KUBELET_KUBECONFIG in files:
        return NO_ROLE
    return None
