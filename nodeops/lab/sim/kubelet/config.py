"""The kubelet's settings: its KubeletConfiguration file merged with its flags."""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nodeops.lab.sim.kubelet.flags import KubeletFlags

CONFIG_KIND = "KubeletConfiguration"
CONFIG_API_VERSIONS = ("kubelet.config.k8s.io/v1beta1", "kubelet.config.k8s.io/v1")
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(h|ms|m|s))")


class ConfigError(ValueError):
    """A configuration the kubelet refuses to start with; str() is the kubelet's wording."""


@dataclass(frozen=True)
class Settings:
    """What the kubelet runs with, after flags override the config file as upstream does."""

    node_name: str
    node_ip: str
    static_pod_path: str
    kubeconfig: str
    bootstrap_kubeconfig: str
    address: str
    cgroup_driver: str
    runtime_endpoint: str
    pod_infra_image: str
    max_pods: int
    status_update_seconds: float
    lease_seconds: int
    sync_seconds: float
    file_check_seconds: float
    healthz_address: str = "127.0.0.1"
    healthz_port: int = 10248


def parse_duration(text: str | int | float | None, default: float) -> float:
    """Seconds of a Go duration ("10s", "1m30s", "0s" means default, as the kubelet defaults it)."""
    if text is None or text == "":
        return default
    if isinstance(text, int | float):
        return float(text) or default
    total, pos = 0.0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            raise ConfigError(f'time: invalid duration "{text}"')
        pos = m.end()
        n = float(m.group(1))
        total += n * {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}[m.group(2)]
    if pos != len(text):
        raise ConfigError(f'time: invalid duration "{text}"')
    return total or default


def load_config_file(path: str) -> dict[str, Any]:
    """Read a KubeletConfiguration (YAML or JSON); ConfigError in the kubelet's words."""

    def fail(why: str) -> ConfigError:
        return ConfigError(
            f"failed to load kubelet config file, path: {path}, error: failed to load Kubelet"
            f" config file {path}, error {why}"
        )

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise fail(
            f'failed to read kubelet config file "{path}", error: open {path}:'
            f" {(e.strerror or str(e)).lower()}"
        ) from None
    try:
        doc = yaml.safe_load(data.decode("utf-8", errors="replace"))
    except yaml.YAMLError as e:
        raise fail(f"failed to decode: yaml: {e}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise fail("failed to decode: couldn't get version/kind; json parse error")
    kind, version = doc.get("kind"), doc.get("apiVersion")
    if not kind:
        raise fail(f"failed to decode: Object 'Kind' is missing in '{json.dumps(doc)}'")
    if kind != CONFIG_KIND or version not in CONFIG_API_VERSIONS:
        raise fail(
            f'failed to decode: no kind "{kind}" is registered for version "{version}" in scheme'
            ' "pkg/kubelet/apis/config/scheme/scheme.go:33"'
        )
    return doc


def node_name(flags: KubeletFlags) -> str:
    """--hostname-override, else the host name, lowercased (nodeutil.GetHostname)."""
    name = flags.get("hostname-override") or socket.gethostname()
    name = name.strip().lower()
    if not name:
        raise ConfigError("empty hostname is invalid")
    return name


def default_node_ip(name: str) -> str:
    """The address the host name resolves to (/etc/hosts), else the first non-loopback one."""
    try:
        addr = socket.gethostbyname(name)
        if not addr.startswith("127."):
            return addr
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 9))  # no packet is sent: UDP connect picks a source
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def settings(flags: KubeletFlags, config: dict[str, Any]) -> Settings:
    """Merge flags over the config file (command line flags win, as in kubelet 1.29)."""
    name = node_name(flags)
    node_ip = flags.get("node-ip").split(",")[0].strip() or default_node_ip(name)
    static_path = flags.get("pod-manifest-path") or str(config.get("staticPodPath") or "")
    runtime = flags.get("container-runtime-endpoint") or str(
        config.get("containerRuntimeEndpoint") or "unix:///run/containerd/containerd.sock"
    )
    try:
        max_pods = int(flags.get("max-pods") or config.get("maxPods") or 110)
    except ValueError as e:
        raise ConfigError(f"invalid maxPods: {e}") from None
    lease = int(config.get("nodeLeaseDurationSeconds") or 40)
    return Settings(
        node_name=name,
        node_ip=node_ip,
        static_pod_path=static_path,
        kubeconfig=flags.get("kubeconfig"),
        bootstrap_kubeconfig=flags.get("bootstrap-kubeconfig"),
        address=flags.get("address") or str(config.get("address") or "0.0.0.0"),  # noqa: S104
        cgroup_driver=flags.get("cgroup-driver") or str(config.get("cgroupDriver") or "cgroupfs"),
        runtime_endpoint=runtime,
        pod_infra_image=flags.get("pod-infra-container-image") or "registry.k8s.io/pause:3.9",
        max_pods=max_pods,
        status_update_seconds=parse_duration(
            flags.get("node-status-update-frequency") or config.get("nodeStatusUpdateFrequency"),
            10.0,
        ),
        lease_seconds=lease,
        sync_seconds=parse_duration(config.get("syncFrequency"), 60.0),
        file_check_seconds=parse_duration(
            flags.get("file-check-frequency") or config.get("fileCheckFrequency"), 20.0
        ),
        healthz_address=flags.get("healthz-bind-address")
        or str(config.get("healthzBindAddress") or "127.0.0.1"),
        healthz_port=_int_setting(flags.get("healthz-port") or config.get("healthzPort"), 10248),
    )


def _int_setting(value: object, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(f"invalid port {value!r}") from None


def os_image(root: str = "/") -> str:
    """PRETTY_NAME of /etc/os-release (else /usr/lib/os-release), as the kubelet reports."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        try:
            text = Path(root, rel).read_text()
        except OSError:
            continue
        for row in text.splitlines():
            if row.startswith("PRETTY_NAME="):
                return row.split("=", 1)[1].strip().strip('"').strip("'")
    return "Linux"


def kernel_version() -> str:
    """`uname -r`."""
    return os.uname().release
