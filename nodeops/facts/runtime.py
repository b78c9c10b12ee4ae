"""Container runtime probes: which CRI the kubelet talks to, and that runtime's version.

The kubelet's own settings decide: `--container-runtime-endpoint` in its flags files (the
kubelet unit passes `$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS`, so a later flag wins and
flags beat the config file), else `containerRuntimeEndpoint` in /var/lib/kubelet/config.yaml,
else the first well-known CRI socket that exists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import yaml

from nodeops.cmd import Cmd, Raw
from nodeops.facts.script import Probe, needs, show_files, split_files
from nodeops.platforms import parse_env_file

KUBEADM_FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
KUBELET_ENV_FILES = (KUBEADM_FLAGS_ENV, "/etc/default/kubelet", "/etc/sysconfig/kubelet")
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
ENDPOINT_FLAG = "--container-runtime-endpoint"

CONTAINERD = "containerd"
CRIO = "cri-o"
DOCKER = "docker"

# Most specific first: dockershim.sock exists only while the kubelet runs dockershim, and
# cri-dockerd comes with Docker, which also installs containerd; containerd is last.
CRI_SOCKETS = (
    "/var/run/dockershim.sock",
    "/var/run/cri-dockerd.sock",
    "/var/run/crio/crio.sock",
    "/run/containerd/containerd.sock",
)

KUBELET_FLAGS = Probe("kubelet_flags", show_files(*KUBELET_ENV_FILES))
KUBELET_CONFIG_FILE = Probe("kubelet_config", show_files(KUBELET_CONFIG))
SOCKETS = Probe(
    "cri_sockets",
    Cmd(
        (
            Raw("for s in"),
            *CRI_SOCKETS,
            Raw('; do if [ -S "$s" ]; then printf'),
            "%s\\n",
            Raw('"$s"; fi; done'),
        )
    ),
)
CONTAINERD_VERSION = Probe("containerd_version", needs("containerd", "containerd", "--version"))
CRIO_VERSION = Probe("crio_version", needs("crio", "crio", "--version"))
DOCKER_VERSION = Probe("docker_version", needs("docker", "docker", "--version"))


def kubelet_args(files: dict[str, str]) -> list[str]:
    """The kubelet's extra arguments from its environment files, in the order it gets them.

    `files` maps path -> content for the files that exist; like systemd, a later file's
    assignment of a variable replaces an earlier one.
    """
    env: dict[str, str] = {}
    for path in KUBELET_ENV_FILES:
        if path in files:
            env.update(parse_env_file(files[path]))
    # An unbraced $VAR in ExecStart= is split at whitespace.
    return env.get("KUBELET_KUBEADM_ARGS", "").split() + env.get("KUBELET_EXTRA_ARGS", "").split()


def endpoint_from_args(args: Sequence[str]) -> str | None:
    """The last `--container-runtime-endpoint` value (`=value` or separate-word form)."""
    endpoint = None
    for index, arg in enumerate(args):
        if arg.startswith(ENDPOINT_FLAG + "="):
            endpoint = arg.partition("=")[2]
        elif arg == ENDPOINT_FLAG and index + 1 < len(args):
            endpoint = args[index + 1]
    return endpoint or None


def parse_kubelet_flags(text: str) -> str | None:
    """The runtime endpoint from the kubelet_flags probe (its environment files)."""
    return endpoint_from_args(kubelet_args(split_files(text)))


def kubelet_config_endpoint(content: str) -> str | None:
    """`containerRuntimeEndpoint` of a KubeletConfiguration (YAML or JSON).

    Raises ValueError when the file is not a YAML mapping.
    """
    try:
        document = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    if document is None:
        return None
    if not isinstance(document, dict):
        raise ValueError("not a KubeletConfiguration (not a mapping)")
    endpoint = document.get("containerRuntimeEndpoint")
    if not isinstance(endpoint, str):
        return None
    return endpoint.strip() or None


def parse_kubelet_config(text: str) -> str | None:
    """The runtime endpoint from the kubelet_config probe; ValueError if the file is broken."""
    files = split_files(text)
    return kubelet_config_endpoint(files[KUBELET_CONFIG]) if KUBELET_CONFIG in files else None


def parse_sockets(text: str) -> tuple[str, ...]:
    """The well-known CRI sockets that exist, most specific first."""
    present = {line.strip() for line in text.splitlines()}
    return tuple(socket for socket in CRI_SOCKETS if socket in present)


def runtime_name(endpoint: str) -> str | None:
    """containerd, cri-o or docker from a CRI endpoint or socket path; None if unknown."""
    path = endpoint.lower()
    if "containerd" in path:
        return CONTAINERD
    if "crio" in path or "cri-o" in path:
        return CRIO
    if "docker" in path:
        return DOCKER
    return None


def parse_containerd_version(text: str) -> str | None:
    """`containerd --version` -> `1.7.2` (`containerd <module> v1.7.2 <commit>`)."""
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "containerd" and re.match(r"v?\d", words[2]):
            return words[2].removeprefix("v")
    return None


def parse_crio_version(text: str) -> str | None:
    """`crio --version` -> `1.29.1` (`crio version 1.29.1` or a `Version: 1.29.1` line)."""
    match = re.search(r"(?im)^\s*(?:crio version|version:)\s*v?(\d\S*)", text)
    return match.group(1) if match else None


def parse_docker_version(text: str) -> str | None:
    """`docker --version` -> `24.0.5` (`Docker version 24.0.5, build ced0996`)."""
    match = re.search(r"Docker version v?(\d[^\s,]*)", text)
    return match.group(1) if match else None


def describe_runtime(name: str, version: str | None) -> str:
    """`containerd 1.7.2`, or just the name when the version is unknown."""
    return f"{name} {version}" if version else name
