"""The files each kube package puts on a node, as the pkgs.k8s.io packages lay them out.

From kubernetes/release cmd/krel/templates/latest/*/*.spec (one spec builds both the deb,
via debbuild, and the rpm): kubelet owns /usr/bin/kubelet, the unit in %{_unitdir}
(/usr/lib/systemd/system, mode 0600) and /etc/default/kubelet (deb) or
/etc/sysconfig/kubelet (rpm); kubeadm owns /usr/bin/kubeadm and the drop-in
%{_unitdir}/kubelet.service.d/10-kubeadm.conf. The binaries are simulated programs.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from nodeops.lab.sim import wrapper_script
from nodeops.lab.sim.pkg.catalog import Release, minor_of

UNIT_DIR = "/usr/lib/systemd/system"

# kubernetes/release cmd/krel/templates/latest/kubelet/kubelet.service
KUBELET_SERVICE = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

# kubernetes/release cmd/krel/templates/latest/kubeadm/10-kubeadm.conf
KUBEADM_DROPIN = """\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/sysconfig/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""  # noqa: E501

# kubernetes/release cmd/krel/templates/latest/kubelet/kubelet.env
KUBELET_ENV = "KUBELET_EXTRA_ARGS=\n"

GCLOUD_KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"
# The machine's kubectl dispatcher, still there in nodes after /usr/bin/kubectl is replaced.
HOST_KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl"


def node_wrapper(module: str, env: dict[str, str], comment: str) -> str:
    """wrapper_script: nodes see this Python and checkout (host.paths_shared_with_nodes)."""
    return wrapper_script(module, env=env, comment=comment)


def _kubectl(release: Release) -> str:
    minor = minor_of(release.upstream).split(".")[1]
    real = GCLOUD_KUBECTL.format(minor=minor)
    return (
        "#!/bin/sh\n"
        f"# nodeops lab: kubectl v{release.upstream} (package {release.name})\n"
        f'if [ -x {real} ]; then exec {real} "$@"; fi\n'
        f'exec {HOST_KUBECTL} "$@"\n'
    )


def contents(release: Release, family: str) -> dict[str, tuple[str, int]]:
    """Path -> (text, mode) of what a package installs."""
    v = f"v{release.upstream}"
    if release.name == "kubelet":
        env_file = "/etc/default/kubelet" if family == "debian" else "/etc/sysconfig/kubelet"
        return {
            "/usr/bin/kubelet": (
                node_wrapper(
                    "nodeops.lab.sim.kubelet",
                    {"NODEOPS_KUBELET_VERSION": v},
                    f"kubelet {v} (simulated)",
                ),
                0o755,
            ),
            f"{UNIT_DIR}/kubelet.service": (KUBELET_SERVICE, 0o600),
            env_file: (KUBELET_ENV, 0o644),
        }
    if release.name == "kubeadm":
        return {
            "/usr/bin/kubeadm": (
                node_wrapper(
                    "nodeops.lab.sim.kubeadm",
                    {"NODEOPS_KUBEADM_VERSION": v},
                    f"kubeadm {v} (simulated)",
                ),
                0o755,
            ),
            f"{UNIT_DIR}/kubelet.service.d/10-kubeadm.conf": (KUBEADM_DROPIN, 0o644),
        }
    if release.name == "kubectl":
        return {"/usr/bin/kubectl": (_kubectl(release), 0o755)}
    if release.name == "cri-tools":
        script = "#!/bin/sh\n# nodeops lab: crictl (simulated)\n"
        script += f"echo 'crictl version v{release.upstream}'\n"
        return {"/usr/bin/crictl": (script, 0o755)}
    if release.name == "kubernetes-cni":
        return {"/opt/cni/bin/.nodeops-sim-kubernetes-cni": (f"{release.upstream}\n", 0o644)}
    return {}


def install(root: Path, release: Release, family: str) -> list[str]:
    """Write a package's files under root; return their absolute node paths."""
    written = []
    for path, (text, mode) in contents(release, family).items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        # conffiles the user may have edited are kept, as dpkg and rpm %config(noreplace) do
        if path.startswith("/etc/") and target.exists():
            written.append(path)
            continue
        # Per process: /opt is not private to a node, so nodes may write the same file at once.
        tmp = target.with_name(f".{target.name}.nodeops-new.{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(mode)
        os.replace(tmp, target)
        written.append(path)
    return written


def remove_path(root: Path, path: str) -> None:
    """Remove one installed file (and its directory if that leaves it empty)."""
    target = root / path.lstrip("/")
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    with contextlib.suppress(OSError):
        target.parent.rmdir()
