"""Install the kube packages in a node the way the kubeadm install docs do (run inside it).

`python -m nodeops.lab.sim.pkg.preinstall 1.29.3`: on Debian-family nodes, write the
pkgs.k8s.io apt source for 1.29 (signed-by its keyring), `apt-get update`, install kubelet,
kubeadm and kubectl at 1.29.3 (cri-tools and kubernetes-cni come as dependencies) and
`apt-mark hold` them; on RHEL-family nodes write /etc/yum.repos.d/kubernetes.repo with its
`exclude=` line and `yum install ... --disableexcludes=kubernetes`. Then
`systemctl enable kubelet`. Each step is echoed with `+ ` like `sh -x`.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from nodeops.lab.sim import systemctl
from nodeops.lab.sim.pkg import apt, catalog, dnf, state

APT_LIST = "etc/apt/sources.list.d/kubernetes.list"
APT_KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
YUM_REPO = "etc/yum.repos.d/kubernetes.repo"
# Stands in for the dearmored Release.key; nothing in the lab verifies signatures.
KEYRING_PLACEHOLDER = b"nodeops lab: placeholder for the pkgs.k8s.io Release.key keyring\n"


def apt_source_line(minor: str) -> str:
    """The kubernetes.list line of the kubeadm install docs for a minor."""
    return f"deb [signed-by={APT_KEYRING}] https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /\n"


def yum_repo_text(minor: str) -> str:
    """The kubernetes.repo of the kubeadm install docs for a minor."""
    base = f"https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/"
    return (
        "[kubernetes]\n"
        "name=Kubernetes\n"
        f"baseurl={base}\n"
        "enabled=1\n"
        "gpgcheck=1\n"
        f"gpgkey={base}repodata/repomd.xml.key\n"
        "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"
    )


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def preinstall(version: str, root: Path, out: TextIO, err: TextIO) -> int:
    """Do the install steps for version ("1.29.3"); return the first failing step's code."""
    version = version.lstrip("v")
    minor = catalog.minor_of(version)
    if version not in catalog.patches(minor):
        print(f"preinstall: {version} is not in the pkgs.k8s.io catalog", file=err)
        return 2
    names = catalog.KUBE

    def step(argv: list[str], code: int) -> int:
        print(f"+ {shlex.join(argv)}", file=out, flush=True)
        return code

    if state.family(root) == "debian":
        (root / "etc/apt/keyrings").mkdir(parents=True, exist_ok=True, mode=0o755)
        _write(root / APT_KEYRING.lstrip("/"), KEYRING_PLACEHOLDER)
        _write(root / APT_LIST, apt_source_line(minor).encode())
        print(f"+ echo '{apt_source_line(minor).strip()}' > /{APT_LIST}", file=out)
        steps = [
            ["apt-get", "update"],
            ["apt-get", "install", "-y", *(f"{n}={version}-*" for n in names)],
            ["apt-mark", "hold", *names],
        ]
        for argv in steps:
            step(argv, 0)
            code = apt.run(argv[0], argv[1:], root, out, err)
            if code:
                return code
    else:
        _write(root / YUM_REPO, yum_repo_text(minor).encode())
        print(f"+ cat > /{YUM_REPO}", file=out)
        argv = ["yum", "install", "-y", *(f"{n}-{version}" for n in names)]
        argv.append("--disableexcludes=kubernetes")
        step(argv, 0)
        code = dnf.run("yum", argv[1:], root, out, err)
        if code:
            return code
    step(["systemctl", "enable", "kubelet"], 0)
    return systemctl.systemctl(["enable", "kubelet"], root, out, err)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: one argument, the Kubernetes version."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m nodeops.lab.sim.pkg.preinstall VERSION", file=sys.stderr)
        return 2
    return preinstall(args[0], state.sim_root(), sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
