"""NodeFacts: everything the read-only probes tell about one node, gathered in one round trip."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from nodeops.cmd import Cmd
from nodeops.errors import UnsupportedOS
from nodeops.facts import binaries, packages, runtime, system
from nodeops.facts.script import Probe, ProbeOutput, repeated_probes, script_for, split_probes
from nodeops.platforms import (
    Platform,
    check_package_managers,
    detect_platform,
    parse_os_release,
)
from nodeops.transport import Transport

PROBES: tuple[Probe, ...] = (
    system.HOSTNAME,
    system.KERNEL,
    system.OS_RELEASE,
    system.TOOLS,
    packages.PACKAGES_DPKG,
    packages.PACKAGES_RPM,
    packages.YUM_EXCLUDES,
    packages.VERSIONLOCK,
    binaries.KUBEADM_VERSION,
    binaries.KUBELET_VERSION,
    binaries.KUBECTL_VERSION,
    runtime.KUBELET_FLAGS,
    runtime.KUBELET_CONFIG_FILE,
    runtime.SOCKETS,
    runtime.CONTAINERD_VERSION,
    runtime.CRIO_VERSION,
    runtime.DOCKER_VERSION,
    system.KUBE_FILES,
)

NOT_FOUND = 127  # the shell's exit code for a command that is not installed
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class NodeFacts:
    """What a node runs, as its read-only probes found it.

    `platform` is None when the OS is refused (`os_error` says why) or could not be read;
    `packages` maps kubeadm, kubelet and kubectl (and cri-tools, kubernetes-cni when
    installed) to the installed package version or None; `binaries` maps kubeadm, kubelet
    and kubectl to the version the binary reports (`v1.30.2`) or None; `role` is
    "control-plane", "worker", "none", or None when the probe failed; `errors` names the
    probes that failed unexpectedly.
    """

    node: str
    hostname: str | None = None
    platform: Platform | None = None
    os_error: str | None = None
    packages: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    binaries: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    held: tuple[str, ...] = ()
    container_runtime: str | None = None
    role: str | None = None
    kernel: str | None = None
    errors: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("packages", "binaries", "errors"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        object.__setattr__(self, "held", tuple(self.held))

    @property
    def ok(self) -> bool:
        """Whether every probe worked and the OS is supported."""
        return not self.errors and self.os_error is None and self.platform is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict with stable keys."""
        return {
            "node": self.node,
            "hostname": self.hostname,
            "kernel": self.kernel,
            "platform": dataclasses.asdict(self.platform) if self.platform else None,
            "os_error": self.os_error,
            "role": self.role,
            "packages": dict(self.packages),
            "binaries": dict(self.binaries),
            "held": list(self.held),
            "container_runtime": self.container_runtime,
            "errors": dict(sorted(self.errors.items())),
        }


def facts_command() -> Cmd:
    """The one command (run as root: /etc/kubernetes is root-only) that runs every probe."""
    return script_for(PROBES)


T = TypeVar("T")


class _Reader:
    """Hands out probe outputs and collects what went wrong, so parsing never raises."""

    def __init__(self, outputs: dict[str, ProbeOutput], repeated: frozenset[str]) -> None:
        self.outputs = outputs
        self.repeated = repeated
        self.errors: dict[str, str] = {}

    def output(
        self, probe: Probe, *, ok_codes: frozenset[int] = frozenset({0})
    ) -> ProbeOutput | None:
        """The probe's complete output, or None (with an error) if missing or cut off.

        An exit code outside ok_codes (and not 127, not installed) is recorded as an error;
        the output is still returned for what it is worth.
        """
        out = self.outputs.get(probe.name)
        if out is None:
            if self.outputs:  # with no probe at all, one "facts" error says it
                self.errors[probe.name] = (
                    "missing from the output (the facts script stopped early?)"
                )
            return None
        if probe.name in self.repeated:
            # The script prints each marker once; a second one was printed by a probe
            # whose output escaped escaping. Neither copy can be trusted.
            self.errors[probe.name] = "its marker line appears more than once (forged output?)"
            return None
        if out.exit_code is None:
            self.errors[probe.name] = f"output cut off before the probe finished: {out.tail()}"
            return None
        if out.exit_code not in ok_codes and out.exit_code != NOT_FOUND:
            self.errors[probe.name] = f"exited {out.exit_code}: {out.tail()}"
        return out

    def parse(self, name: str, parser: Callable[[str], T], text: str, default: T) -> T:
        """parser(text), or default with an error recorded if the parser raises."""
        try:
            return parser(text)
        except Exception as exc:  # a parser bug or hostile input must not lose the other facts
            self.errors[name] = f"could not parse the output: {exc}"
            return default

    def line(self, probe: Probe) -> str | None:
        """A one-line fact (hostname, kernel)."""
        out = self.output(probe)
        if out is not None and out.exit_code == NOT_FOUND:
            self.errors[probe.name] = f"command not found: {out.tail()}"
        if out is None or out.exit_code != 0:
            return None
        value = system.parse_line(out.text)
        if value is None:
            self.errors[probe.name] = "empty output"
        return value

    def version(self, probe: Probe, parser: Callable[[str], str | None]) -> str | None:
        """A version reported by a binary: None when not installed or unreadable."""
        out = self.output(probe)
        if out is None or out.exit_code != 0:
            return None
        value = self.parse(probe.name, parser, out.text, None)
        if value is None and probe.name not in self.errors:
            self.errors[probe.name] = f"no version in the output: {out.tail()}"
        return value


def _platform(reader: _Reader) -> tuple[Platform | None, str | None]:
    tools_out = reader.output(system.TOOLS)
    tools: dict[str, str] = {}
    if tools_out is not None:
        tools = reader.parse("tools", system.parse_tools, tools_out.text, {})
    out = reader.output(system.OS_RELEASE, ok_codes=frozenset({0, 1}))
    if out is None:
        return None, None
    fields: dict[str, str] = {}
    if out.ok:
        fields = reader.parse("os_release", parse_os_release, out.text, {})
    try:
        platform = detect_platform(fields, has_dnf=system.has_dnf(tools))
        check_package_managers(platform, tools)
        return platform, None
    except UnsupportedOS as exc:
        return None, str(exc)


_QUERIES = {
    "debian": ((packages.PACKAGES_DPKG, "dpkg-query", packages.parse_dpkg_query),),
    "rhel": ((packages.PACKAGES_RPM, "rpm", packages.parse_rpm_query),),
}
_ANY_QUERY = (*_QUERIES["debian"], *_QUERIES["rhel"])
# dpkg-query exits 1 when a package is unknown; rpm -q with the count of missing packages.
_QUERY_OK_CODES = {
    packages.PACKAGES_DPKG.name: frozenset({0, 1}),
    packages.PACKAGES_RPM.name: frozenset(range(len(packages.KUBE_PACKAGES) + 1)),
}


def _packages(reader: _Reader, platform: Platform | None) -> tuple[dict[str, str | None], set[str]]:
    """Installed versions from dpkg on Debian, rpm on RHEL, whichever exists otherwise."""
    versions: dict[str, str | None] = dict.fromkeys(packages.CORE_PACKAGES)
    queries = _QUERIES.get(platform.family, _ANY_QUERY) if platform else _ANY_QUERY
    outputs = [
        (probe, tool, parse, reader.output(probe, ok_codes=_QUERY_OK_CODES[probe.name]))
        for probe, tool, parse in queries
    ]
    usable = [(p, parse, out) for p, _, parse, out in outputs if out and out.exit_code != NOT_FOUND]
    if not usable:
        if all(out is not None for *_, out in outputs):
            tools = " or ".join(tool for _, tool, _, _ in outputs)
            reader.errors["packages"] = f"cannot list packages: no {tools} on the node"
        return versions, set()
    probe, parse, out = usable[0]
    query = reader.parse(probe.name, parse, out.text, packages.PackageQuery({}))
    if query.problems:
        reader.errors.setdefault(probe.name, "; ".join(query.problems))
    for name in packages.KUBE_PACKAGES:
        if name in query.versions or name in packages.CORE_PACKAGES:
            versions[name] = query.versions.get(name)
    return versions, set(query.held)


def _held(reader: _Reader, held: set[str]) -> tuple[str, ...]:
    excludes = reader.output(packages.YUM_EXCLUDES)
    if excludes is not None:
        no_excludes: dict[str, tuple[str, ...]] = {}
        by_file = reader.parse(
            "yum_excludes", packages.parse_yum_excludes, excludes.text, no_excludes
        )
        for patterns in by_file.values():
            held |= packages.excluded_packages(patterns)
    # The versionlock plugin is optional: any exit code is fine, the output tells.
    locks = reader.output(packages.VERSIONLOCK, ok_codes=frozenset(range(256)))
    if locks is not None:
        held |= reader.parse("versionlock", packages.parse_versionlock, locks.text, frozenset())
    return tuple(name for name in packages.KUBE_PACKAGES if name in held)


_RUNTIME_VERSIONS: dict[str, tuple[Probe, Callable[[str], str | None]]] = {
    runtime.CONTAINERD: (runtime.CONTAINERD_VERSION, runtime.parse_containerd_version),
    runtime.CRIO: (runtime.CRIO_VERSION, runtime.parse_crio_version),
    runtime.DOCKER: (runtime.DOCKER_VERSION, runtime.parse_docker_version),
}


def _runtime(reader: _Reader) -> str | None:
    """The kubelet's CRI: its configured endpoint, else the most telling socket; + version."""
    endpoint = None
    flags = reader.output(runtime.KUBELET_FLAGS)
    if flags is not None:
        endpoint = reader.parse("kubelet_flags", runtime.parse_kubelet_flags, flags.text, None)
    if endpoint is None:
        config = reader.output(runtime.KUBELET_CONFIG_FILE)
        if config is not None:
            endpoint = reader.parse(
                "kubelet_config", runtime.parse_kubelet_config, config.text, None
            )
    if endpoint is None:
        sockets = reader.output(runtime.SOCKETS)
        found = runtime.parse_sockets(sockets.text) if sockets else ()
        endpoint = found[0] if found else None
    if endpoint is None:
        return None
    name = runtime.runtime_name(endpoint)
    if name is None:
        return endpoint  # a CRI nodeops does not know: say where the kubelet points
    probe, parser = _RUNTIME_VERSIONS[name]
    return runtime.describe_runtime(name, reader.version(probe, parser))


def parse_facts(node_name: str, stdout: str) -> NodeFacts:
    """NodeFacts from the facts script's stdout. Pure; problems land in `errors`, never raise."""
    outputs = split_probes(stdout)
    reader = _Reader(outputs, repeated_probes(stdout))
    if not outputs:
        head = stdout.strip()[:200]
        reader.errors["facts"] = "no probe output found" + (f": {head!r}" if head else "")

    hostname = reader.line(system.HOSTNAME)
    kernel = reader.line(system.KERNEL)
    platform, os_error = _platform(reader)
    versions, held = _packages(reader, platform)
    held_names = _held(reader, held)
    binaries_found = {
        "kubeadm": reader.version(binaries.KUBEADM_VERSION, binaries.parse_kubeadm_version),
        "kubelet": reader.version(binaries.KUBELET_VERSION, binaries.parse_kubelet_version),
        "kubectl": reader.version(binaries.KUBECTL_VERSION, binaries.parse_kubectl_version),
    }
    container_runtime = _runtime(reader)
    files = reader.output(system.KUBE_FILES)
    role = system.role_from(system.parse_kube_files(files.text)) if files and files.ok else None
    if files is not None and files.ok and role is None:
        reader.errors["kube_files"] = f"unexpected output: {files.tail()}"

    return NodeFacts(
        node=node_name,
        hostname=hostname,
        platform=platform,
        os_error=os_error,
        packages=versions,
        binaries=binaries_found,
        held=held_names,
        container_runtime=container_runtime,
        role=role,
        kernel=kernel,
        errors=reader.errors,
    )


def gather_facts(transport: Transport, *, timeout: float | None = DEFAULT_TIMEOUT) -> NodeFacts:
    """Run every probe on the transport's node in one round trip and parse the result.

    An unsupported OS is reported in `os_error`, not raised; a node that cannot be
    reached raises whatever the transport raises (TransportError).
    """
    result = transport.run(facts_command(), timeout=timeout)
    facts = parse_facts(transport.node.name, result.stdout)
    if result.ok:
        return facts
    errors = dict(facts.errors)
    errors["facts_command"] = result.describe_failure()
    return dataclasses.replace(facts, errors=errors)
