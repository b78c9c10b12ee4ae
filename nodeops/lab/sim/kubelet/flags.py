"""The kubelet's command line, parsed as pflag does (`--f=v`, `--f v`, bools, `_` as `-`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: Flags that take a value (a subset of kubelet 1.29's; enough for kubeadm's and common units).
VALUE_FLAGS = frozenset(
    {
        "address",
        "authorization-mode",
        "bootstrap-kubeconfig",
        "cert-dir",
        "cgroup-driver",
        "client-ca-file",
        "cloud-provider",
        "cluster-dns",
        "cluster-domain",
        "config",
        "config-dir",
        "container-runtime-endpoint",
        "enforce-node-allocatable",
        "eviction-hard",
        "feature-gates",
        "file-check-frequency",
        "healthz-bind-address",
        "healthz-port",
        "hostname-override",
        "image-service-endpoint",
        "kube-reserved",
        "kubeconfig",
        "lock-file",
        "log-dir",
        "log-file",
        "max-pods",
        "node-ip",
        "node-labels",
        "node-status-update-frequency",
        "pod-infra-container-image",
        "pod-manifest-path",
        "port",
        "provider-id",
        "read-only-port",
        "register-with-taints",
        "resolv-conf",
        "root-dir",
        "runtime-request-timeout",
        "sync-frequency",
        "system-reserved",
        "tls-cert-file",
        "tls-private-key-file",
        "v",
        "vmodule",
    }
)

#: Flags that are booleans: `--f` means true, `--f=false` false, the next word is not consumed.
BOOL_FLAGS = frozenset(
    {
        "alsologtostderr",
        "anonymous-auth",
        "authentication-token-webhook",
        "cgroups-per-qos",
        "exit-on-lock-contention",
        "fail-swap-on",
        "help",
        "logtostderr",
        "register-node",
        "rotate-certificates",
        "version",
    }
)

#: Deprecation warnings pflag prints for flags set on the command line (kubelet 1.29 wording).
_CONFIG_FILE_HINT = (
    "This parameter should be set via the config file specified by the Kubelet's --config flag."
    " See https://kubernetes.io/docs/tasks/administer-cluster/kubelet-config-file/ for more"
    " information."
)
DEPRECATED = {
    "container-runtime-endpoint": _CONFIG_FILE_HINT,
    "pod-manifest-path": _CONFIG_FILE_HINT,
    "cgroup-driver": _CONFIG_FILE_HINT,
    "address": _CONFIG_FILE_HINT,
    "pod-infra-container-image": (
        "will be removed in a future release. Image garbage collector will get sandbox image"
        " information from CRI."
    ),
}

_SHORTHANDS = {"v": "v", "h": "help"}


class FlagError(ValueError):
    """A command line the kubelet refuses; str() is pflag's message."""


class UnknownCommand(FlagError):
    """Non-flag words on the command line (reported without the flag-parsing prefix)."""


@dataclass(frozen=True)
class KubeletFlags:
    """The parsed command line: flag values by name (last one wins) and the order they came in."""

    values: dict[str, str] = field(default_factory=dict)
    order: tuple[str, ...] = ()

    def get(self, name: str, default: str = "") -> str:
        """A flag's value, or default when it was not given."""
        return self.values.get(name, default)

    def given(self, name: str) -> bool:
        """Whether the flag was on the command line."""
        return name in self.values

    def flag(self, name: str) -> bool:
        """A boolean flag's value (false when absent)."""
        return self.values.get(name, "false").lower() in ("true", "1", "t")

    def deprecation_warnings(self) -> list[str]:
        """pflag's `Flag --x has been deprecated, ...` lines, in command line order."""
        return [
            f"Flag --{name} has been deprecated, {DEPRECATED[name]}"
            for name in dict.fromkeys(self.order)
            if name in DEPRECATED
        ]


def _normalize(name: str) -> str:
    # The kubelet's flag set normalizes '_' to '-' (kubernetes PR 61053).
    return name.replace("_", "-")


def parse_flags(argv: Sequence[str]) -> KubeletFlags:
    """Parse kubelet arguments; FlagError with pflag's wording on anything it would reject."""
    values: dict[str, str] = {}
    order: list[str] = []
    args = list(argv)
    i = 0
    positional: list[str] = []
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional.extend(args[i:])
            break
        if arg.startswith("--") and len(arg) > 2:
            body = arg[2:]
            name, eq, value = body.partition("=")
            name = _normalize(name)
            if name in BOOL_FLAGS:
                if eq and value.lower() not in ("true", "false", "1", "0", "t", "f"):
                    raise FlagError(
                        f'invalid argument "{value}" for "--{name}" flag: strconv.ParseBool:'
                        f' parsing "{value}": invalid syntax'
                    )
                values[name] = value if eq else "true"
            elif name in VALUE_FLAGS:
                if not eq:
                    if i >= len(args):
                        raise FlagError(f"flag needs an argument: --{name}")
                    value = args[i]
                    i += 1
                values[name] = value
            else:
                raise FlagError(f"unknown flag: --{name}")
            order.append(name)
        elif arg.startswith("-") and len(arg) > 1:
            short = arg[1]
            if short not in _SHORTHANDS:
                raise FlagError(f"unknown shorthand flag: '{short}' in {arg}")
            name = _SHORTHANDS[short]
            rest = arg[2:].removeprefix("=")
            if name in BOOL_FLAGS:
                values[name] = "true"
            elif rest:
                values[name] = rest
            elif i < len(args):
                values[name] = args[i]
                i += 1
            else:
                raise FlagError(f"flag needs an argument: '{short}' in -{short}")
            order.append(name)
        else:
            positional.append(arg)
    if positional:
        # kubelet 1.29 (cmd/kubelet/app/server.go): non-flag arguments are an error.
        raise UnknownCommand(f"unknown command {positional[0]}")
    return KubeletFlags(values=values, order=tuple(order))
