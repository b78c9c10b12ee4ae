"""A scripted node and control plane for the upgrade steps' unit tests (FakeTransport rules).

The fake keeps the state a real node would (packages, holds, the repo file, the Node
object) so steps that read back what they did see the truth, and every command sent is
recorded for the tests to assert on.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from nodeops.cmd import Cmd
from nodeops.errors import TransportError
from nodeops.journal import Journal, JournaledTransport
from nodeops.node import Node
from nodeops.result import Result
from nodeops.transport import FakeTransport
from nodeops.upgrade.nodesteps import NodeJob, UpgradeSettings
from nodeops.versions import Version
from tests.unit.test_facts import DEBIAN_NODE, ROCKY_NODE, canned, files

APT_REPO = (
    "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg]"
    " https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /\n"
)
DNF_REPO = """\
[kubernetes]
name=Kubernetes
baseurl=https://pkgs.k8s.io/core:/stable:/v1.29/rpm/
enabled=1
gpgcheck=1
gpgkey=https://pkgs.k8s.io/core:/stable:/v1.29/rpm/repodata/repomd.xml.key
exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni
"""
CORE = ("kubeadm", "kubelet", "kubectl")


UNPACKED_AUDIT = (
    "The following packages have been unpacked but not yet configured.\n"
    "They must be configured using dpkg --configure or the configure\n"
    "menu option in dselect for them to work:\n"
    " kubeadm              Command-line utility for administering a Kubernetes cluster\n"
)


def _upstream(package_version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in package_version.split("-")[0].split("."))


class RecordingTransport(FakeTransport):
    """FakeTransport that also keeps each command's stdin (file contents sent)."""

    def __init__(self, node: Node, world: FakeWorld) -> None:
        super().__init__(node, rules=[("", world.respond)])
        self.world = world

    def run(
        self, command: Cmd, *, timeout: float | None = None, stdin: str | None = None
    ) -> Result:
        self.world.stdin = stdin
        shown = command.display(as_root=True)
        if "@@nodeops-probe" in shown:
            shown = "<facts script>"
        self.world.log.append(f"{self.node.name}: {shown}")
        return super().run(command, timeout=timeout, stdin=stdin)


@dataclass
class FakeWorld:
    """One worker (apt or dnf) and the control plane that answers kubectl for it."""

    name: str = "worker1"
    pm: str = "apt"
    version: str = "1.29.3"
    served: dict[str, list[str]] = field(
        default_factory=lambda: {
            "1.29": ["1.29.0", "1.29.3", "1.29.15"],
            "1.30": ["1.30.0", "1.30.1", "1.30.2"],
        }
    )
    unschedulable: bool = False
    ready: bool = True
    cordon_works: bool = True
    drain_ok: bool = True
    install_fails: bool = False
    upgrade_node_failures: int = 0
    apiserver: str = "1.30.2"
    api_down_after_restart: int = 0  # kubectl reads that fail after the kubelet restart
    dpkg_audit: str = ""  # what `dpkg --audit` prints
    install_interrupted: bool = False  # the next install dies with dpkg half-way
    drop_connection_at: str = ""  # the first command starting so loses its SSH connection
    gone_after_drop: bool = False  # and the node does not answer again
    log: list[str] = field(default_factory=list)
    stdin: str | None = None

    def __post_init__(self) -> None:
        rev = "1.1" if self.pm == "apt" else "150500.1.1"
        self.rev = rev
        self.installed = {n: f"{self.version}-{rev}" for n in CORE}
        self.held = set(CORE)
        self.repo = APT_REPO if self.pm == "apt" else DNF_REPO
        self.kept: str | None = None
        self.refreshed_minor = "1.29"
        self.kubelet_running = self.version

    # --- what a node says --------------------------------------------------------------------
    @property
    def repo_path(self) -> str:
        if self.pm == "apt":
            return "/etc/apt/sources.list.d/kubernetes.list"
        return "/etc/yum.repos.d/kubernetes.repo"

    def facts_out(self) -> str:
        if self.pm == "apt":
            node = dict(DEBIAN_NODE)
            lines = "".join(
                f"{n}\t{self.installed[n]}\t{'hi' if n in self.held else 'ii'} \n" for n in CORE
            )
            node["packages_dpkg"] = (lines, 0)
            node["hostname"] = (self.name + "\n", 0)
        else:
            node = dict(ROCKY_NODE)
            node["packages_rpm"] = ("".join(f"{n}\t{self.installed[n]}\n" for n in CORE), 0)
            node["yum_excludes"] = (files((self.repo_path, self.repo)), 0)
        node["kube_files"] = (
            "absent /etc/kubernetes/manifests/kube-apiserver.yaml\n"
            "present /etc/kubernetes/kubelet.conf\n",
            0,
        )
        return canned(node)

    def node_json(self) -> str:
        spec = {"unschedulable": True} if self.unschedulable else {}
        return json.dumps(
            {
                "kind": "Node",
                "metadata": {"name": self.name},
                "spec": spec,
                "status": {
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True" if self.ready else "False",
                            "message": "kubelet is posting ready status",
                        }
                    ],
                    "nodeInfo": {"kubeletVersion": f"v{self.kubelet_running}"},
                },
            }
        )

    def listing(self) -> str:
        versions = self.served.get(self.refreshed_minor, [])
        if self.pm == "apt":
            return "".join(
                f"   kubeadm | {v}-1.1 | https://pkgs.k8s.io/core:/stable:/v{self.refreshed_minor}"
                "/deb  Packages\n"
                for v in reversed(versions)
            )
        rows = "".join(f"kubeadm.x86_64   {v}-150500.1.1   kubernetes\n" for v in versions)
        return "Available Packages\n" + rows

    # --- the responder -----------------------------------------------------------------------
    def respond(self, command: Cmd) -> tuple[int, str, str]:
        text = command.render(as_root=True)
        if self.drop_connection_at and text.startswith(self.drop_connection_at):
            self.drop_connection_at = ""
            raise TransportError(f"{self.name}: the SSH connection was lost during `{text}`")
        if text.startswith("dpkg --audit"):
            return 0, self.dpkg_audit, ""
        if text.startswith(
            "env DEBIAN_FRONTEND=noninteractive dpkg --force-confold --configure -a"
        ):
            self.dpkg_audit = ""
            return 0, "Setting up kubeadm (1.30.2-1.1) ...\n", ""
        if text.startswith("pgrep -f "):
            return 1, "", ""
        if text == "true":
            if self.gone_after_drop:
                raise TransportError(f"{self.name} (192.0.2.11:22): cannot connect: timed out")
            return 0, "", ""
        if "@@nodeops-probe" in text:
            return 0, self.facts_out(), ""
        if text.startswith(("dpkg-query -W", "rpm -q --qf")):
            return 0, "".join(f"{n}\t{self.installed[n]}\n" for n in CORE), ""
        if text.startswith("df -Pk"):
            return (
                0,
                "Filesystem 1024-blocks Used Available Capacity Mounted on\n"
                "/dev/vda 100000000 1000 90000000 1% /\n",
                "",
            )
        if text.startswith("cat -- "):
            return 0, self.repo, ""
        if text.startswith("mkdir -p -m 0700"):
            return 0, "", ""
        if text.startswith("cp -p -- "):
            src = text.split()[3]
            if src.endswith(".orig"):
                assert self.kept is not None
                self.repo = self.kept
            else:
                self.kept = self.repo
            return 0, "", ""
        if text.startswith("umask 022; cat >"):
            assert self.stdin is not None
            self.repo = self.stdin
            return 0, "", ""
        if ("update" in text and "apt-get" in text) or "makecache" in text:
            found = re.search(r"core:/stable:/v([0-9.]+)/", self.repo)
            assert found
            self.refreshed_minor = found.group(1)
            return 0, "", ""
        if "madison" in text or "--showduplicates" in text:
            return 0, self.listing(), ""
        if "--download-only" in text or "--downloadonly" in text:
            return 0, "", ""
        if " install -y " in text or " downgrade -y " in text:
            if self.install_interrupted:
                self.install_interrupted = False
                self.dpkg_audit = UNPACKED_AUDIT
                return 100, "", "E: Sub-process /usr/bin/dpkg received signal 9.\n"
            if self.install_fails:
                return 100, "", "E: Sub-process /usr/bin/dpkg returned an error code (1)\n"
            pinned = re.findall(r"(kube[a-z]+)[=-]([0-9][0-9.]*-[0-9.]+)", text)
            lower = [n for n, v in pinned if _upstream(v) < _upstream(self.installed[n])]
            # apt -y refuses a downgrade without --allow-downgrades; dnf's `downgrade` refuses
            # to raise a package.
            if lower and self.pm == "apt" and "--allow-downgrades" not in text:
                return (
                    100,
                    "",
                    "E: Packages were downgraded and -y was used without --allow-downgrades.\n",
                )
            if " downgrade -y " in text and len(lower) < len(pinned):
                return 1, "", "Error: No packages marked for downgrade.\n"
            for name, version in pinned:
                self.installed[name] = version
            if self.pm == "apt" and "--allow-change-held-packages" not in text:
                return 100, "", "E: Held packages were changed"
            return 0, "", ""
        if text.startswith("apt-mark hold"):
            self.held |= set(text.split()[2:])
            return 0, "", ""
        if text.startswith("kubeadm upgrade node"):
            if self.upgrade_node_failures:
                self.upgrade_node_failures -= 1
                return 1, "", "error: couldn't fetch the kubeadm-config ConfigMap\n"
            return 0, "[upgrade] The configuration for this node was successfully updated!\n", ""
        if text.startswith("systemctl daemon-reload && systemctl restart kubelet"):
            self.kubelet_running = self.installed["kubelet"].split("-")[0]
            self.api_down = self.api_down_after_restart
            return 0, "", ""
        if text.startswith("journalctl"):
            return 0, "kubelet[1]: E0000 failed to run Kubelet\n", ""
        if text.startswith("kubectl "):
            return self.kubectl(text)
        raise AssertionError(f"unexpected command: {text}")

    def kubectl(self, text: str) -> tuple[int, str, str]:
        if " get node -o json -- " in text:
            if getattr(self, "api_down", 0):
                self.api_down -= 1
                return 1, "", "The connection to the server 192.0.2.10:6443 was refused\n"
            return 0, self.node_json(), ""
        if " cordon -- " in text:
            if self.cordon_works:
                self.unschedulable = True
            return 0, f"node/{self.name} cordoned\n", ""
        if " uncordon -- " in text:
            self.unschedulable = False
            return 0, f"node/{self.name} uncordoned\n", ""
        if " drain " in text:
            if not self.drain_ok:
                return (
                    1,
                    "",
                    (
                        'error when evicting pods/"web-1" -n "default" (will retry after 5s):'
                        " Cannot evict pod as it would violate the pod's disruption budget.\n"
                        "error: global timeout reached: 600s\n"
                    ),
                )
            self.unschedulable = True
            return 0, f"node/{self.name} drained\n", ""
        raise AssertionError(f"unexpected kubectl: {text}")

    # --- a job over it -----------------------------------------------------------------------
    def job(self, tmp: Path, *, target: str | None = "1.30.2", earlier: bool = False) -> NodeJob:
        node = Node(self.name, "192.0.2.11", roles=frozenset({"worker"}))
        cp = Node("cp1", "192.0.2.10", roles=frozenset({"control-plane"}))
        journal = Journal.start(tmp, "upgrade", {"to": target})
        return NodeJob(
            node=node,
            transport=JournaledTransport(RecordingTransport(node, self), journal),
            kubectl=JournaledTransport(RecordingTransport(cp, self), journal),
            journal=journal,
            target=Version(1, 30, 2) if target == "1.30.2" else None,
            minor=(1, 30),
            action="node",
            run_dir="/etc/kubernetes/tmp/nodeops-RUN",
            settings=UpgradeSettings(ready_timeout=10, poll_seconds=1, api_retry_seconds=6),
            cordoned_earlier_by_run=earlier,
            sleep=lambda s: None,
            clock=itertools.count().__next__,  # type: ignore[arg-type]
        )
