"""Binary probes: the version each kube binary reports about itself (`v1.30.2`)."""

from __future__ import annotations

import json
import re

from nodeops.cmd import Raw
from nodeops.facts.script import Probe, needs

KUBEADM_VERSION = Probe(
    "kubeadm_version",
    # `-o short` since kubeadm 1.8; the full form is the fallback for older ones.
    needs(
        "kubeadm", "kubeadm", "version", "-o", "short", Raw("2>/dev/null ||"), "kubeadm", "version"
    ),
)
KUBELET_VERSION = Probe("kubelet_version", needs("kubelet", "kubelet", "--version"))
KUBECTL_VERSION = Probe(
    "kubectl_version",
    # -o json everywhere kubectl has it; --short for old ones (removed in 1.28); then plain.
    needs(
        "kubectl",
        *("kubectl", "version", "--client", "-o", "json", Raw("2>/dev/null ||")),
        *("kubectl", "version", "--client", "--short", Raw("2>/dev/null ||")),
        *("kubectl", "version", "--client"),
    ),
)

_GIT_VERSION = r"v\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+~-]*)?"
_VERSION = re.compile(_GIT_VERSION)
_INFO_GIT_VERSION = re.compile(rf'GitVersion:"({_GIT_VERSION})"')
_KUBELET = re.compile(rf"Kubernetes ({_GIT_VERSION})")


def is_git_version(text: str) -> bool:
    """Whether text is a Kubernetes release version as binaries print it (`v1.30.2`)."""
    return _VERSION.fullmatch(text) is not None


def parse_kubeadm_version(text: str) -> str | None:
    """The version from `kubeadm version -o short` or the older `kubeadm version`."""
    info = _INFO_GIT_VERSION.search(text)
    if info:
        return info.group(1)
    for line in text.splitlines():
        if is_git_version(line.strip()):
            return line.strip()
    return None


def parse_kubelet_version(text: str) -> str | None:
    """The version from `kubelet --version` (`Kubernetes v1.30.2`)."""
    match = _KUBELET.search(text)
    return match.group(1) if match else None


def parse_kubectl_version(text: str) -> str | None:
    """The client version from `kubectl version --client` with `-o json`, `--short` or neither."""
    start = text.find("{")
    while start != -1:
        try:
            document, _ = json.JSONDecoder().raw_decode(text, start)
        except (ValueError, RecursionError):  # not JSON, or absurdly nested
            start = text.find("{", start + 1)
            continue
        if isinstance(document, dict):
            client = document.get("clientVersion")
            if isinstance(client, dict):
                version = client.get("gitVersion")
                if isinstance(version, str) and is_git_version(version):
                    return version
        break
    for line in text.splitlines():
        if line.startswith("Client Version:"):
            rest = line.partition(":")[2]
            info = _INFO_GIT_VERSION.search(rest)
            if info:
                return info.group(1)
            if is_git_version(rest.strip()):
                return rest.strip()
    return None
