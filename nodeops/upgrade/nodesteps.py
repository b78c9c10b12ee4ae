"""The steps of one node's upgrade, after the kubeadm upgrade docs, and the context they share.

Order: check node -> switch the package repository (the target must be served, else the old
file is put back) -> download packages (before any cordon) -> record whether the node is
schedulable -> cordon (read back) -> drain (finite timeout; on failure uncordon only what
nodeops cordoned) -> install kubeadm (held) -> kubeadm upgrade apply|node -> install kubelet
and kubectl (held) -> restart kubelet -> wait Ready at the target -> uncordon (only if it
was schedulable before) -> verify. A node already at the target skips every step between
the check and the verification: it is never cordoned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from nodeops import kube, packages
from nodeops.cmd import Cmd, Raw, cmd, sequence
from nodeops.drainplan import DrainOptions
from nodeops.errors import TransportError
from nodeops.facts import NodeFacts, gather_facts
from nodeops.facts.packages import CORE_PACKAGES
from nodeops.journal import Journal, JournaledTransport
from nodeops.node import Node
from nodeops.platforms import APT
from nodeops.steps import Change, Step, StepFailed, run_checked
from nodeops.upgrade import cluster
from nodeops.versions import (
    PackageVersion,
    Version,
    VersionError,
    minor_text,
    parse_package_version,
)

REPO_FILES = {
    "apt": "/etc/apt/sources.list.d/kubernetes.list",
    "dnf": "/etc/yum.repos.d/kubernetes.repo",
    "yum": "/etc/yum.repos.d/kubernetes.repo",
}
KUBEADM = ("kubeadm",)
KUBELET_KUBECTL = ("kubelet", "kubectl")
# Free space the package cache needs for three kube packages, with room to spare.
MIN_FREE_KIB = 512 * 1024
KubeadmAction = Literal["apply", "node"]


@dataclass(frozen=True)
class UpgradeSettings:
    """Bounds and options of one run (from invoke.yaml / DEFAULTS and task options)."""

    drain_timeout: int = 600
    dpkg_lock_timeout: int = 120
    ready_timeout: float = 300.0
    command_timeout: float = 600.0
    # Each poll is one read (the node, a pgrep): Ready is seen within a second, not two.
    poll_seconds: float = 1.0
    api_retry_seconds: float = 90.0
    # How long a node whose SSH connection dropped may take to answer again.
    reconnect_seconds: float = 120.0
    # `dpkg --configure -a` on a node whose dpkg was interrupted: only when asked.
    repair_dpkg: bool = False
    drain_options: DrainOptions = field(
        default_factory=lambda: DrainOptions(ignore_daemonsets=True)
    )


@dataclass
class NodeJob:
    """One node's upgrade: where commands go, the target, and what the steps learned."""

    node: Node
    transport: JournaledTransport  # the node itself
    kubectl: JournaledTransport  # a control plane, where kubectl runs
    journal: Journal
    target: Version | None  # None: the latest patch of `minor`, read when the repo is switched
    minor: tuple[int, int]
    action: KubeadmAction
    run_dir: str
    settings: UpgradeSettings = field(default_factory=UpgradeSettings)
    cordoned_earlier_by_run: bool = False  # the journal of a resumed run says nodeops cordoned it
    # A planned downgrade hop (--allow-downgrade): the only case where packages go down.
    downgrade: bool = False
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    # learned on the way
    facts: NodeFacts | None = None
    status: cluster.NodeStatus | None = None
    at_target: bool = False
    package: PackageVersion | None = None
    repo_text: str | None = None
    repo_written: bool = False
    was_schedulable: bool | None = None
    cordoned_by_nodeops: bool = False
    installed: dict[str, PackageVersion | None] = field(default_factory=dict)
    attempts: list[str] = field(default_factory=list)

    # --- StepContext ---------------------------------------------------------------------------
    @property
    def node_name(self) -> str:
        """The node's name."""
        return self.node.name

    def begin(self, step: str) -> None:
        """Journal the following commands under this step's name."""
        self.transport = self.transport.for_step(step)
        self.kubectl = self.kubectl.for_step(step)

    def run_on_node(self, command: Cmd, *, timeout: float | None = None) -> tuple[int, str]:
        """Run on the node: (exit code, stdout and stderr)."""
        result = self.transport.run(command, timeout=timeout)
        return result.exit_code, (result.stdout + result.stderr)

    # --- helpers -------------------------------------------------------------------------------
    @property
    def pm(self) -> str:
        """The node's package manager."""
        if self.facts is None or self.facts.platform is None:
            raise StepFailed("the node's package manager is not known (facts not gathered)")
        return self.facts.platform.package_manager

    @property
    def repo_file(self) -> str:
        """The kube package repository file of the node's package manager."""
        return REPO_FILES[self.pm]

    def kubectl_out(self, command: Cmd) -> str:
        """Run a read-only kubectl command on the control plane, retried while the API does
        not answer (an apiserver restarting under `kubeadm upgrade apply`) for at most
        `api_retry_seconds`; then StepFailed with its output."""
        deadline = self.clock() + self.settings.api_retry_seconds
        while True:
            try:
                result = self.kubectl.run(command)
            except TransportError:
                if self.clock() > deadline:
                    raise
            else:
                if result.ok:
                    return result.stdout
                if self.clock() > deadline:
                    raise StepFailed(
                        result.describe_failure(), output=result.stdout + result.stderr
                    )
            self.sleep(self.settings.poll_seconds)

    def read_node(self) -> cluster.NodeStatus:
        """The Node object now (read back, never assumed)."""
        self.status = cluster.parse_node_json(self.kubectl_out(cluster.get_node(self.node.name)))
        return self.status

    @property
    def target_text(self) -> str:
        """`1.30.2`, or `the latest 1.30 patch` before it is known."""
        if self.target is not None:
            return str(self.target)
        return f"the latest {minor_text(self.minor)} patch"


def installed_cmd(pm: str) -> Cmd:
    """The installed versions of the kube packages (read-only)."""
    names = list(CORE_PACKAGES)
    if pm == APT:
        return cmd("dpkg-query", "-W", "-f", "${Package}\\t${Version}\\n", *names)
    return cmd("rpm", "-q", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\n", *names)


def parse_installed(text: str) -> dict[str, PackageVersion | None]:
    """name -> installed version from installed_cmd's output (missing names are None)."""
    found: dict[str, PackageVersion | None] = dict.fromkeys(CORE_PACKAGES)
    for line in text.splitlines():
        name, _, version = line.partition("\t")
        if name in found and version.strip():
            try:
                found[name] = parse_package_version(version.strip())
            except VersionError:
                found[name] = None
    return found


def read_installed(job: NodeJob) -> dict[str, PackageVersion | None]:
    """Read the installed kube package versions into the job."""
    _, out = job.run_on_node(installed_cmd(job.pm))
    job.installed = parse_installed(out)
    return job.installed


def describe_served(minor: tuple[int, int], served: Sequence[PackageVersion]) -> str:
    """`the v1.30 repository serves 1.30.0 … 1.30.14`."""
    ours = sorted(v for v in served if v.minor_key == minor)
    if not ours:
        return f"the v{minor_text(minor)} repository serves nothing"
    low, high = ours[0].version, ours[-1].version
    return f"the v{minor_text(minor)} repository serves {low}" + (
        "" if low == high else f" … {high}"
    )


def read_dpkg_audit(job: NodeJob) -> str:
    """What `dpkg --audit` reports on the node ("" when clean, or off apt)."""
    command = packages.audit(job.pm)
    if command is None:
        return ""
    return run_checked(job, command).strip()


def dpkg_interrupted_message(audit: str) -> str:
    """The refusal, with the operator's two ways out."""
    first = audit.splitlines()[0] if audit else ""
    listed = [line.split()[0] for line in audit.splitlines() if line.startswith(" ")]
    which = f" ({', '.join(dict.fromkeys(listed))})" if listed else ""
    return (
        f"dpkg was interrupted and left packages unfinished{which}: `dpkg --audit` says"
        f" \"{first}\"; finish it on the node with `sudo dpkg --configure -a`, or let"
        " nodeops do it by running again with --repair-dpkg"
    )


# --- the steps ------------------------------------------------------------------------------


class _Chain(Step[NodeJob]):
    """A step skipped when the node is already at the target."""

    def skip_reason(self, ctx: NodeJob) -> str | None:
        if ctx.at_target:
            return f"already at {ctx.target_text}"
        return None


class CheckNode(Step[NodeJob]):
    """Preflight: supported OS, Ready, kube packages installed and held, enough disk."""

    name = "check-node"
    title = "Check node"

    def __init__(self) -> None:
        self.free_kib: int | None = None
        self.dpkg_audit = ""

    def prepare(self, ctx: NodeJob) -> None:
        ctx.facts = gather_facts(ctx.transport)
        ctx.read_node()
        if ctx.facts.platform is not None:
            read_installed(ctx)
            self.dpkg_audit = read_dpkg_audit(ctx)
        code, out = ctx.run_on_node(cmd("df", "-Pk", "/var"))
        lines = out.strip().splitlines()
        try:
            self.free_kib = int(lines[-1].split()[3]) if code == 0 else None
        except (IndexError, ValueError):
            self.free_kib = None

    def plan(self, ctx: NodeJob) -> list[Change]:
        facts, status = ctx.facts, ctx.status
        assert facts is not None and status is not None
        problems: list[str] = []
        if facts.platform is None:
            problems.append(f"unsupported OS: {facts.os_error or 'os-release not readable'}")
        if not status.ready:
            problems.append(f"the node is not Ready ({status.ready_message or 'no message'})")
        if facts.platform is not None:
            missing = [n for n in CORE_PACKAGES if ctx.installed.get(n) is None]
            if missing:
                problems.append(
                    f"kube packages not installed from a repository: {', '.join(missing)}"
                )
            unheld = [n for n in CORE_PACKAGES if n not in facts.held]
            if facts.platform.package_manager != APT and unheld:
                problems.append(
                    f"not held: {', '.join(unheld)} (no exclude= line for them in the"
                    " kubernetes repository file and no versionlock); nodeops keeps kube"
                    " packages held and would leave this node unheld"
                )
        if self.free_kib is None:
            problems.append("cannot read the free space of /var (df -Pk /var)")
        elif self.free_kib < MIN_FREE_KIB:
            problems.append(
                f"only {self.free_kib // 1024} MiB free on /var; the packages need"
                f" {MIN_FREE_KIB // 1024} MiB"
            )
        repair: list[Change] = []
        if self.dpkg_audit:
            fix = packages.configure_pending(ctx.pm)
            if ctx.settings.repair_dpkg and fix is not None:
                repair.append(Change("finish the interrupted dpkg run", (fix,)))
            else:
                problems.append(dpkg_interrupted_message(self.dpkg_audit))
        if problems:
            raise StepFailed(f"{ctx.node.name}: " + "; ".join(problems))
        if repair:
            return repair
        if ctx.target is not None:
            packages_at = all(
                (v := ctx.installed.get(n)) is not None and v.version == ctx.target
                for n in CORE_PACKAGES
            )
            ctx.at_target = packages_at and status.kubelet_version == ctx.target
        return []

    def verify(self, ctx: NodeJob) -> None:
        still = read_dpkg_audit(ctx) if self.dpkg_audit else ""
        if still:
            raise StepFailed(
                f"{ctx.node.name}: `dpkg --configure -a` ran, but dpkg still reports: "
                + still.splitlines()[0]
            )


class SwitchRepo(_Chain):
    """Point the repository at the target minor and check it serves the target (else undo)."""

    name = "switch-repo"
    title = "Switch package repository"

    def prepare(self, ctx: NodeJob) -> None:
        ctx.repo_text = run_checked(ctx, cmd("cat", "--", ctx.repo_file, sudo=True))

    def plan(self, ctx: NodeJob) -> list[Change]:
        assert ctx.repo_text is not None
        try:
            new = packages.switch_repo(ctx.pm, ctx.minor, ctx.repo_text)
        except VersionError as error:
            raise StepFailed(f"{ctx.node.name}: {error}") from None
        refresh = packages.refresh(ctx.pm, lock_timeout=ctx.settings.dpkg_lock_timeout)
        if new == ctx.repo_text:
            return [Change("refresh package metadata", (refresh,))]
        return [
            Change(
                f"point {ctx.repo_file} at v{minor_text(ctx.minor)}"
                f" (old file kept in {ctx.run_dir})",
                (*self.write_cmds(ctx), refresh),
            )
        ]

    def write_cmds(self, ctx: NodeJob) -> tuple[Cmd, ...]:
        keep = f"{ctx.run_dir}/{ctx.repo_file.rsplit('/', 1)[1]}.orig"
        return (
            cmd("mkdir", "-p", "-m", "0700", "--", ctx.run_dir, sudo=True),
            cmd("cp", "-p", "--", ctx.repo_file, keep, sudo=True),
        )

    def apply(self, ctx: NodeJob, changes: Sequence[Change]) -> None:
        assert ctx.repo_text is not None
        new = packages.switch_repo(ctx.pm, ctx.minor, ctx.repo_text)
        if new != ctx.repo_text:
            for command in self.write_cmds(ctx):
                run_checked(ctx, command)
            # A temp file beside the kept copy (same filesystem, outside the sources
            # directory, so apt/dnf never read it), then an atomic rename.
            tmp = f"{ctx.run_dir}/{ctx.repo_file.rsplit('/', 1)[1]}.new"
            write = cmd(
                Raw("umask 022; cat >"),
                tmp,
                Raw("&& chmod 0644"),
                tmp,
                Raw("&& mv -T --"),
                tmp,
                ctx.repo_file,
                sudo=True,
            )
            ctx.repo_written = True
            result = ctx.transport.run(write, stdin=new)
            if not result.ok:
                raise StepFailed(result.describe_failure(), output=result.stdout + result.stderr)
        run_checked(ctx, packages.refresh(ctx.pm, lock_timeout=ctx.settings.dpkg_lock_timeout))

    def verify(self, ctx: NodeJob) -> None:
        out = run_checked(ctx, packages.available_versions_cmd(ctx.pm, "kubeadm"))
        served = [v for v in packages.parse_available(ctx.pm, out, "kubeadm")]
        ours = [v for v in served if v.minor_key == ctx.minor]
        if ctx.target is None:
            if not ours:
                raise StepFailed(f"{ctx.node.name}: {describe_served(ctx.minor, served)}")
            ctx.target = max(ours).version
        matches = [v for v in ours if v.version == ctx.target]
        if not matches:
            raise StepFailed(
                f"{ctx.node.name}: {describe_served(ctx.minor, served)}; {ctx.target} is not there"
            )
        ctx.package = max(matches)
        if ctx.status is not None and ctx.status.kubelet_version == ctx.target:
            ctx.at_target = all(
                (v := ctx.installed.get(n)) is not None and v.version == ctx.target
                for n in CORE_PACKAGES
            )

    def cleanup(self, ctx: NodeJob, *, failed: bool) -> None:
        if failed and ctx.repo_written:
            keep = f"{ctx.run_dir}/{ctx.repo_file.rsplit('/', 1)[1]}.orig"
            run_checked(ctx, cmd("cp", "-p", "--", keep, ctx.repo_file, sudo=True))
            ctx.transport.run(packages.refresh(ctx.pm, lock_timeout=ctx.settings.dpkg_lock_timeout))
            ctx.repo_written = False


def _wanted(ctx: NodeJob, names: Sequence[str]) -> dict[str, PackageVersion]:
    assert ctx.package is not None
    wanted: dict[str, PackageVersion] = {}
    for name in names:
        have = ctx.installed.get(name)
        if have is not None and have.version == ctx.package.version:
            continue
        if have is not None and have.version > ctx.package.version and not ctx.downgrade:
            raise StepFailed(
                f"{ctx.node.name}: {name} {have} is newer than the target {ctx.package};"
                " nodeops never downgrades a package"
            )
        if ctx.downgrade and have is not None:
            # A planned downgrade goes down one minor at most, and never raises a package.
            major, minor = ctx.package.minor_key
            if have.version < ctx.package.version or have.minor_key > (major, minor + 1):
                raise StepFailed(
                    f"{ctx.node.name}: {name} {have} cannot go to {ctx.package} in a downgrade,"
                    " which only lowers packages, by one minor at most"
                )
        wanted[name] = ctx.package
    return wanted


class DownloadPackages(_Chain):
    """Fetch the packages into the cache before any cordon."""

    name = "download-packages"
    title = "Download packages before cordoning"

    def prepare(self, ctx: NodeJob) -> None:
        read_installed(ctx)

    def plan(self, ctx: NodeJob) -> list[Change]:
        wanted = _wanted(ctx, (*KUBEADM, *KUBELET_KUBECTL))
        if not wanted:
            return []
        command = packages.download_only(
            ctx.pm, wanted, lock_timeout=ctx.settings.dpkg_lock_timeout, downgrade=ctx.downgrade
        )
        return [Change(f"download {', '.join(sorted(wanted))} {ctx.package}", (command,))]


class RecordSchedulable(_Chain):
    """Journal whether the node was schedulable before nodeops touched it."""

    name = "record-node-state"
    title = "Record whether the node is schedulable"

    def prepare(self, ctx: NodeJob) -> None:
        status = ctx.read_node()
        if status.unschedulable and ctx.cordoned_earlier_by_run:
            ctx.was_schedulable = True  # cordoned by this run before it was interrupted
            ctx.cordoned_by_nodeops = True
        else:
            ctx.was_schedulable = not status.unschedulable
        ctx.journal.record(
            "node-state",
            node=ctx.node.name,
            was_schedulable=ctx.was_schedulable,
            unschedulable=status.unschedulable,
            cordoned_by_nodeops=ctx.cordoned_by_nodeops,
        )

    def plan(self, ctx: NodeJob) -> list[Change]:
        # The check ran when the node was staged, maybe while the batch before it was
        # cordoned: a node gone NotReady since is not cordoned now. One this run cordoned
        # before it stopped goes on (its kubelet may be the reason).
        status = ctx.status
        assert status is not None
        if not status.ready and not ctx.cordoned_by_nodeops:
            raise StepFailed(
                f"{ctx.node.name}: the node is not Ready"
                f" ({status.ready_message or 'no message'}) since it was checked;"
                " nothing was cordoned"
            )
        return []


class CordonNode(_Chain):
    """Mark the node unschedulable and read `.spec.unschedulable` back."""

    name = "cordon"
    title = "Cordon node"

    def prepare(self, ctx: NodeJob) -> None:
        ctx.read_node()

    def plan(self, ctx: NodeJob) -> list[Change]:
        assert ctx.status is not None
        if ctx.status.unschedulable:
            return []
        return [Change("cordon", (kube.cordon(ctx.node.name),))]

    def apply(self, ctx: NodeJob, changes: Sequence[Change]) -> None:
        # Journaled first: if nodeops dies right after the cordon, a resume still knows.
        ctx.cordoned_by_nodeops = True
        ctx.journal.record("node-state", node=ctx.node.name, cordoned_by_nodeops=True)
        ctx.kubectl.run(kube.cordon(ctx.node.name))  # exit code not trusted: read back below

    def verify(self, ctx: NodeJob) -> None:
        if not ctx.read_node().unschedulable:
            if ctx.cordoned_by_nodeops:
                ctx.cordoned_by_nodeops = False
                ctx.journal.record("node-state", node=ctx.node.name, cordoned_by_nodeops=False)
            raise StepFailed(
                f"{ctx.node.name}: after `kubectl cordon`, .spec.unschedulable is not true: the"
                " node is still schedulable; nothing else was changed"
            )


def uncordon_if_ours(ctx: NodeJob) -> str:
    """Uncordon a node only when this run cordoned it; say what was done."""
    if not ctx.cordoned_by_nodeops:
        return "left cordoned (it was cordoned before this run)"
    ctx.kubectl.run(kube.uncordon(ctx.node.name))
    if ctx.read_node().unschedulable:
        return "uncordon failed: the node is still cordoned"
    ctx.cordoned_by_nodeops = False
    ctx.journal.record("node-state", node=ctx.node.name, cordoned_by_nodeops=False)
    return "uncordoned again"


class DrainNode(_Chain):
    """Evict the node's pods with a finite timeout; on failure give the node back."""

    name = "drain"
    title = "Drain node"

    def plan(self, ctx: NodeJob) -> list[Change]:
        command = kube.drain(
            ctx.node.name, ctx.settings.drain_options, timeout_seconds=ctx.settings.drain_timeout
        )
        return [Change("evict the node's pods", (command,))]

    def apply(self, ctx: NodeJob, changes: Sequence[Change]) -> None:
        command = changes[0].commands[0]
        result = ctx.kubectl.run(command, timeout=ctx.settings.drain_timeout + 60)
        if not result.ok:
            done = uncordon_if_ours(ctx)
            raise StepFailed(
                f"{ctx.node.name}: the drain failed ({done}); no package was changed",
                output=result.stdout + result.stderr,
            )

    def verify(self, ctx: NodeJob) -> None:
        if not ctx.read_node().unschedulable:
            raise StepFailed(f"{ctx.node.name}: after the drain the node is schedulable again")


class _Install(_Chain):
    names: tuple[str, ...] = ()

    def prepare(self, ctx: NodeJob) -> None:
        read_installed(ctx)

    def plan(self, ctx: NodeJob) -> list[Change]:
        wanted = _wanted(ctx, self.names)
        if not wanted:
            return []
        install = packages.install(
            ctx.pm, wanted, lock_timeout=ctx.settings.dpkg_lock_timeout, downgrade=ctx.downgrade
        )
        hold = packages.hold(ctx.pm, self.names)
        commands = (install,) if hold is None else (install, hold)
        verb = "downgrade" if ctx.downgrade else "install"
        return [Change(f"{verb} {', '.join(sorted(wanted))} {ctx.package} (held)", commands)]

    def apply(self, ctx: NodeJob, changes: Sequence[Change]) -> None:
        for command in changes[0].commands:
            try:
                run_checked(ctx, command, timeout=ctx.settings.command_timeout)
            except StepFailed as failed:
                audit = read_dpkg_audit(ctx)
                if not audit:
                    raise
                raise StepFailed(
                    f"{ctx.node.name}: {failed}; {dpkg_interrupted_message(audit)}; the node"
                    " stays cordoned",
                    output=failed.output,
                ) from None

    def verify(self, ctx: NodeJob) -> None:
        assert ctx.package is not None
        read_installed(ctx)
        wrong = [
            f"{n} {ctx.installed.get(n)}"
            for n in self.names
            if (v := ctx.installed.get(n)) is None or v.version != ctx.package.version
        ]
        if wrong:
            raise StepFailed(f"{ctx.node.name}: after the install: {', '.join(wrong)}")

    def cleanup(self, ctx: NodeJob, *, failed: bool) -> None:
        # Holds are restored on every path: the hold is idempotent, run it after a failure.
        if failed and ctx.facts is not None and ctx.facts.platform is not None:
            hold = packages.hold(ctx.pm, CORE_PACKAGES)
            if hold is not None:
                ctx.transport.run(hold)


class InstallKubeadm(_Install):
    """Install the target kubeadm and keep it held."""

    name = "install-kubeadm"
    title = "Install kubeadm"
    names = KUBEADM


class KubeadmUpgrade(_Chain):
    """`kubeadm upgrade apply vX -y` (first control plane) or `kubeadm upgrade node`."""

    name = "kubeadm-upgrade"
    title = "Run kubeadm upgrade"

    def __init__(self) -> None:
        self.done = False

    def prepare(self, ctx: NodeJob) -> None:
        assert ctx.target is not None
        wait_for_running_kubeadm(ctx)
        if ctx.action == "apply":
            pods = cluster.parse_static_pods(ctx.kubectl_out(cluster.get_system_pods()))
            self.done = cluster.ClusterState({}, pods).control_plane_at(ctx.node.name, ctx.target)
        else:
            read_installed(ctx)
            kubelet = ctx.installed.get("kubelet")
            # `kubeadm upgrade node` runs before the kubelet package moves: a kubelet at the
            # target means it ran (a resumed run does not repeat it).
            self.done = kubelet is not None and kubelet.version == ctx.target

    def plan(self, ctx: NodeJob) -> list[Change]:
        if self.done:
            return []
        assert ctx.target is not None
        if ctx.action == "apply":
            command = cmd("kubeadm", "upgrade", "apply", ctx.target.v, "-y", sudo=True)
            return [Change(f"move the control plane to {ctx.target.v}", (command,))]
        return [Change("upgrade the node's kubelet configuration", (kubeadm_upgrade_node(),))]

    def apply(self, ctx: NodeJob, changes: Sequence[Change]) -> None:
        command = changes[0].commands[0]
        tries = 1 if ctx.action == "apply" else 2  # `upgrade node` gets one retry
        for attempt in range(1, tries + 1):
            result = ctx.transport.run(command, timeout=ctx.settings.command_timeout)
            output = result.stdout + result.stderr
            ctx.attempts.append(f"attempt {attempt}: exit {result.exit_code}\n{output}")
            if result.ok:
                return
        backups = ""
        if ctx.action == "apply":
            _, found = ctx.run_on_node(
                cmd(Raw("ls -d /etc/kubernetes/tmp/kubeadm-backup-* 2>/dev/null"), sudo=True)
            )
            if found.strip():
                backups = f"; kubeadm's backups (kept): {' '.join(found.split())}"
        raise StepFailed(
            f"{ctx.node.name}: `{command.display()}` failed after {tries} attempt(s){backups};"
            " the node stays cordoned",
            output="\n".join(ctx.attempts),
        )


def running_kubeadm_upgrade() -> Cmd:
    """PIDs of `kubeadm upgrade` processes on the node (the bracket keeps pgrep from matching
    the shell that runs it)."""
    return cmd("pgrep", "-f", "[k]ubeadm upgrade")


def wait_for_running_kubeadm(ctx: NodeJob) -> None:
    """Wait (bounded) while a `kubeadm upgrade` is still running on the node: after a lost SSH
    session the old one carries on, and a second one beside it would race it."""
    deadline = ctx.clock() + ctx.settings.command_timeout
    while True:
        code, out = ctx.run_on_node(running_kubeadm_upgrade())
        if code != 0 or not out.strip():
            return
        if ctx.clock() > deadline:
            raise StepFailed(
                f"{ctx.node.name}: a `kubeadm upgrade` (PID {' '.join(out.split())}) is still"
                f" running after {ctx.settings.command_timeout:g} s; the node stays cordoned"
            )
        ctx.sleep(ctx.settings.poll_seconds)


def kubeadm_upgrade_node() -> Cmd:
    """`kubeadm upgrade node`."""
    return cmd("kubeadm", "upgrade", "node", sudo=True)


class InstallKubelet(_Install):
    """Install the target kubelet and kubectl and keep them held."""

    name = "install-kubelet"
    title = "Install kubelet and kubectl"
    names = KUBELET_KUBECTL


def restart_kubelet() -> Cmd:
    """`systemctl daemon-reload && systemctl restart kubelet`."""
    return sequence(
        [
            cmd("systemctl", "daemon-reload", sudo=True),
            cmd("systemctl", "restart", "kubelet", sudo=True),
        ]
    )


class RestartKubelet(_Chain):
    """Reload units and restart the kubelet so it runs the new binary."""

    name = "restart-kubelet"
    title = "Restart kubelet"

    def prepare(self, ctx: NodeJob) -> None:
        ctx.read_node()

    def plan(self, ctx: NodeJob) -> list[Change]:
        assert ctx.status is not None
        if ctx.status.kubelet_version == ctx.target and ctx.status.ready:
            return []
        return [Change("restart the kubelet", (restart_kubelet(),))]


class WaitReady(_Chain):
    """Wait (bounded) until the node is Ready at the target (control plane: its pods too)."""

    name = "wait-ready"
    title = "Wait until the node is Ready at the target version"

    def plan(self, ctx: NodeJob) -> list[Change]:
        return [Change(f"wait up to {ctx.settings.ready_timeout:g} s")]

    def _ready(self, ctx: NodeJob) -> str | None:
        status = ctx.read_node()
        if not status.ready:
            return f"the node is NotReady ({status.ready_message or 'no message'})"
        if status.kubelet_version != ctx.target:
            have = status.kubelet_version.v if status.kubelet_version else "unknown"
            return f"the kubelet reports {have}"
        if ctx.node.is_control_plane:
            assert ctx.target is not None
            pods = cluster.parse_static_pods(ctx.kubectl_out(cluster.get_system_pods()))
            if not cluster.ClusterState({}, pods).control_plane_at(ctx.node.name, ctx.target):
                return "the control-plane static pods do not all run the target yet"
        return None

    def apply(self, ctx: NodeJob, changes: Sequence[Change]) -> None:
        deadline = ctx.clock() + ctx.settings.ready_timeout
        while True:
            try:
                why = self._ready(ctx)
            except StepFailed as error:
                why = f"the API did not answer ({error})"
            if why is None:
                return
            if ctx.clock() > deadline:
                _, tail = ctx.run_on_node(
                    cmd("journalctl", "-u", "kubelet", "-n", "20", "--no-pager", sudo=True)
                )
                raise StepFailed(
                    f"{ctx.node.name}: not Ready at {ctx.target_text} after"
                    f" {ctx.settings.ready_timeout:g} s: {why}; the node stays cordoned",
                    output=tail,
                )
            ctx.sleep(ctx.settings.poll_seconds)


class UncordonNode(Step[NodeJob]):
    """Make the node schedulable again, only when it was schedulable before the run.

    Not skipped on a node already at the target: a resumed run may find a node it cordoned
    itself (the journal says so) and must give it back.
    """

    name = "uncordon"
    title = "Uncordon node"

    def prepare(self, ctx: NodeJob) -> None:
        status = ctx.read_node()
        if ctx.was_schedulable is None:
            ours = status.unschedulable and ctx.cordoned_earlier_by_run
            ctx.was_schedulable = ours
            ctx.cordoned_by_nodeops = ours

    def plan(self, ctx: NodeJob) -> list[Change]:
        assert ctx.status is not None
        if not ctx.status.unschedulable or not ctx.was_schedulable:
            return []
        return [Change("uncordon", (kube.uncordon(ctx.node.name),))]

    def apply(self, ctx: NodeJob, changes: Sequence[Change]) -> None:
        ctx.kubectl.run(kube.uncordon(ctx.node.name))

    def verify(self, ctx: NodeJob) -> None:
        status = ctx.read_node()
        if ctx.was_schedulable and status.unschedulable:
            raise StepFailed(
                f"{ctx.node.name}: after `kubectl uncordon` the node is still cordoned"
            )
        if ctx.was_schedulable:
            ctx.cordoned_by_nodeops = False
            ctx.journal.record("node-state", node=ctx.node.name, cordoned_by_nodeops=False)


class VerifyNode(Step[NodeJob]):
    """The end state: packages at the target and held, Ready at the target."""

    name = "verify"
    title = "Verify node"

    def prepare(self, ctx: NodeJob) -> None:
        ctx.facts = gather_facts(ctx.transport)
        read_installed(ctx)
        ctx.read_node()

    def verify(self, ctx: NodeJob) -> None:
        assert ctx.facts is not None and ctx.status is not None
        problems: list[str] = []
        for name in CORE_PACKAGES:
            have = ctx.installed.get(name)
            if have is None or have.version != ctx.target:
                problems.append(f"{name} is {have or 'not installed'}")
        unheld = [n for n in CORE_PACKAGES if n not in ctx.facts.held]
        if unheld:
            problems.append(f"not held: {', '.join(unheld)}")
        if not ctx.status.ready or ctx.status.kubelet_version != ctx.target:
            problems.append(f"node {ctx.status.describe()}")
        if problems:
            raise StepFailed(f"{ctx.node.name}: not at {ctx.target_text}: " + "; ".join(problems))


def node_steps() -> list[Step[NodeJob]]:
    """A node's upgrade steps, in order (fresh instances: steps keep per-node state)."""
    return [
        CheckNode(),
        SwitchRepo(),
        DownloadPackages(),
        RecordSchedulable(),
        CordonNode(),
        DrainNode(),
        InstallKubeadm(),
        KubeadmUpgrade(),
        InstallKubelet(),
        RestartKubelet(),
        WaitReady(),
        UncordonNode(),
        VerifyNode(),
    ]
