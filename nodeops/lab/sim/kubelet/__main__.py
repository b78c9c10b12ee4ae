"""`python -m nodeops.lab.sim.kubelet [flags]`: the simulated kubelet's command line."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

from nodeops.lab.sim.kubelet import DEFAULT_VERSION, VERSION_ENV, klog
from nodeops.lab.sim.kubelet.agent import Kubelet
from nodeops.lab.sim.kubelet.apiclient import Client, load_kubeconfig
from nodeops.lab.sim.kubelet.config import (
    ConfigError,
    kernel_version,
    load_config_file,
    os_image,
    settings,
)
from nodeops.lab.sim.kubelet.flags import FlagError, KubeletFlags, UnknownCommand, parse_flags
from nodeops.lab.sim.kubelet.nodestatus import NodeFacts, boot_id, machine_facts, machine_id
from nodeops.lab.sim.kubelet.runtime import Runtime

USAGE = """\
The kubelet is the primary "node agent" that runs on each node. (nodeops lab simulation)

Usage:
  kubelet [flags]
"""


class CommandFailed(Exception):
    """An error the kubelet reports as `"command failed" err="..."` before exiting 1."""


def _fail(err: str) -> int:
    # cmd/kubelet/app: errors after flag parsing are logged by component-base's run.go.
    klog.error("run.go:74", "command failed", err=err)
    return 1


def parse_labels(text: str) -> dict[str, str]:
    """--node-labels `k=v,k2=v2`."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = item.partition("=")
        out[key] = value
    return out


def parse_taints(text: str) -> list[dict[str, str]]:
    """--register-with-taints `key=value:Effect,key2:Effect`."""
    taints = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        kv, _, effect = item.rpartition(":")
        key, _, value = kv.partition("=")
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        taints.append(taint)
    return taints


def build(flags: KubeletFlags, version: str) -> Kubelet:
    """A Kubelet from the command line; CommandFailed with the kubelet's wording."""
    config: dict[str, object] = {}
    if flags.get("config"):
        try:
            config = load_config_file(flags.get("config"))
        except ConfigError as e:
            raise CommandFailed(str(e)) from None
    try:
        s = settings(flags, config)
    except ConfigError as e:
        raise CommandFailed(f"failed to run Kubelet: {e}") from None
    client = None
    if s.kubeconfig:
        path = s.kubeconfig
        if not Path(path).exists():
            boot = s.bootstrap_kubeconfig
            if not boot:
                raise CommandFailed(
                    f"failed to run Kubelet: invalid kubeconfig: stat {path}:"
                    " no such file or directory"
                )
            if not Path(boot).exists():
                raise CommandFailed(
                    f"failed to run Kubelet: unable to load bootstrap kubeconfig: stat {boot}:"
                    " no such file or directory"
                )
            raise CommandFailed(
                "failed to run Kubelet: TLS bootstrapping is not simulated in the lab"
            )
        try:
            client = Client(
                load_kubeconfig(path), agent=f"kubelet/{version} (linux/amd64) kubernetes/nodeops"
            )
        except (OSError, ValueError, KeyError) as e:
            raise CommandFailed(
                "failed to run Kubelet: invalid kubeconfig:"
                f' error loading config file "{path}": {e}'
            ) from None
    cpus, mem = machine_facts()
    facts = NodeFacts(
        name=s.node_name,
        address=s.node_ip,
        kubelet_version=version,
        os_image=os_image(),
        kernel_version=kernel_version(),
        machine_id=machine_id(),
        boot_id=boot_id(),
        cpus=cpus,
        memory_kib=mem,
        max_pods=s.max_pods,
    )
    return Kubelet(
        s,
        facts,
        client,
        Runtime(),
        node_labels=parse_labels(flags.get("node-labels")),
        taints=parse_taints(flags.get("register-with-taints")),
    )


def set_process_name(name: str, argv: list[str] | None = None) -> None:
    """Make `ps -C`, `pgrep -x` and top show `name` as the real binary would (PR_SET_NAME),
    and `ps -eo args` show `/usr/bin/NAME FLAGS…` rather than `python -m …`: nodeops finds
    the kubelet's flags in the process table, as an operator would."""
    if argv is not None:
        import setproctitle

        setproctitle.setproctitle(" ".join([f"/usr/bin/{name}", *argv]))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)  # 15: PR_SET_NAME
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    """Run the kubelet; returns its exit code."""
    version = os.environ.get(VERSION_ENV) or DEFAULT_VERSION
    try:
        flags = parse_flags(argv)
    except UnknownCommand as e:
        return _fail(str(e))
    except FlagError as e:
        return _fail(f"failed to parse kubelet flag: {e}")
    if flags.given("version"):
        print(f"Kubernetes {version}")
        return 0
    if flags.flag("help"):
        print(USAGE, end="")
        return 0
    for warning in flags.deprecation_warnings():
        klog.plain(warning)
    try:
        kubelet = build(flags, version)
    except CommandFailed as e:
        return _fail(str(e))

    def stop(signum: int, frame: object) -> None:
        kubelet.stop_event.set()
        kubelet.wake.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    set_process_name("kubelet", argv)
    kubelet.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
