"""Pure parts of the simulated `kubeadm upgrade`: version rules and printed tables.

Version rules follow cmd/kubeadm/app/phases/upgrade/policy.go (EnforceVersionPolicies) and
their wording; the etcd and CoreDNS versions per minor follow cmd/kubeadm/app/constants
(SupportedEtcdVersion, CoreDNSVersion) as each minor's first release shipped them (later
patch releases sometimes backported newer etcd images; the lab keeps one per minor).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: kubeadm's etcd image tag per Kubernetes minor (constants.SupportedEtcdVersion).
ETCD_VERSIONS = {
    25: "3.5.6-0",
    26: "3.5.6-0",
    27: "3.5.7-0",
    28: "3.5.9-0",
    29: "3.5.10-0",
    30: "3.5.12-0",
    31: "3.5.15-0",
    32: "3.5.16-0",
    33: "3.5.21-0",
    34: "3.6.4-0",
}
#: CoreDNS image tag per Kubernetes minor (constants.CoreDNSVersion).
COREDNS_VERSIONS = {
    25: "v1.9.3",
    26: "v1.9.3",
    27: "v1.10.1",
    28: "v1.10.1",
    29: "v1.11.1",
    30: "v1.11.1",
    31: "v1.11.3",
    32: "v1.11.3",
    33: "v1.12.0",
    34: "v1.12.1",
}
#: The oldest control plane kubeadm of a minor still upgrades (constants.MinimumControlPlaneVersion
#: is the previous minor).
MAX_UPGRADE_SKEW = 1
MAX_DOWNGRADE_SKEW = 1
MAX_KUBELET_SKEW = 1
#: Control-plane components in the order kubeadm upgrades them (constants.ControlPlaneComponents).
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
#: kubeadm's per-component upgrade timeout (UpgradeManifestTimeout), as Go prints it.
TIMEOUT_TEXT = "5m0s"

_SEMVER = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")


class VersionSyntaxError(ValueError):
    """A version string kubeadm would not parse."""


@dataclass(frozen=True, order=True)
class Semver:
    """A Kubernetes version (major, minor, patch and pre-release)."""

    major: int
    minor: int
    patch: int
    pre: str = ""

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}" + (f"-{self.pre}" if self.pre else "")

    def less_than(self, other: Semver) -> bool:
        """Semantic ordering: a pre-release is lower than its release."""
        a = (self.major, self.minor, self.patch)
        b = (other.major, other.minor, other.patch)
        if a != b:
            return a < b
        if self.pre == other.pre:
            return False
        if not self.pre:
            return False
        if not other.pre:
            return True
        return self.pre < other.pre


def parse_semver(text: str) -> Semver:
    """`v1.30.2` or `1.30.2` (kubeadm normalises the leading v); VersionSyntaxError otherwise."""
    m = _SEMVER.fullmatch(text.strip())
    if m is None:
        raise VersionSyntaxError(
            f'unable to parse normalized version "{text}" as a semantic version'
        )
    return Semver(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4) or "")


def etcd_version_for(version: Semver) -> str:
    """The etcd image tag kubeadm deploys for a Kubernetes version (nearest known minor)."""
    known = sorted(ETCD_VERSIONS)
    minor = min(max(version.minor, known[0]), known[-1])
    return ETCD_VERSIONS[minor]


def coredns_version_for(version: Semver) -> str:
    """The CoreDNS image tag kubeadm deploys for a Kubernetes version."""
    known = sorted(COREDNS_VERSIONS)
    minor = min(max(version.minor, known[0]), known[-1])
    return COREDNS_VERSIONS[minor]


def etcd_tag_key(tag: str) -> tuple[int, ...]:
    """An etcd image tag (`3.5.12-0`) as comparable numbers."""
    return tuple(int(p) for p in re.findall(r"\d+", tag))


@dataclass
class PolicyErrors:
    """Version skew errors: mandatory ones always stop; skippable ones stop without --force."""

    mandatory: list[str] = field(default_factory=list)
    skippable: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.mandatory or self.skippable)


def enforce_version_policies(
    target_text: str,
    target: Semver,
    cluster: Semver,
    kubeadm: Semver,
    kubeadm_text: str,
    kubelets: Iterable[str] = (),
    *,
    allow_experimental: bool = False,
    allow_rc: bool = False,
) -> PolicyErrors:
    """policy.go EnforceVersionPolicies, with its messages."""
    errs = PolicyErrors()
    minimum = Semver(kubeadm.major, kubeadm.minor - 1, 0)
    if target.less_than(minimum):
        errs.mandatory.append(
            f'Specified version to upgrade to "{target_text}" is equal to or lower than the'
            f' minimum supported version "{minimum}". Please specify a higher version to'
            " upgrade to"
        )
    if target.minor > cluster.minor + MAX_UPGRADE_SKEW:
        msg = (
            f'Specified version to upgrade to "{target_text}" is too high; kubeadm can upgrade'
            f" only {MAX_UPGRADE_SKEW} minor version at a time"
        )
        (errs.skippable if target.pre else errs.mandatory).append(msg)
    if target.minor < cluster.minor - MAX_DOWNGRADE_SKEW:
        msg = (
            f'Specified version to downgrade to "{target_text}" is too low; kubeadm can'
            f" downgrade only {MAX_DOWNGRADE_SKEW} minor version at a time"
        )
        (errs.skippable if target.pre else errs.mandatory).append(msg)
    if kubeadm.less_than(target):
        if target.minor > kubeadm.minor:
            msg = (
                f'Specified version to upgrade to "{target_text}" is at least one minor release'
                f" higher than the kubeadm minor release ({target.minor} > {kubeadm.minor})."
                " Such an upgrade is not supported"
            )
            (errs.skippable if target.pre else errs.mandatory).append(msg)
        else:
            errs.skippable.append(
                f'Specified version to upgrade to "{target_text}" is higher than the kubeadm'
                f' version "{kubeadm_text}". Upgrade kubeadm first using the tool you used to'
                " install kubeadm"
            )
    if kubeadm.major > target.major or kubeadm.minor > target.minor:
        errs.skippable.append(
            f"Kubeadm version {kubeadm_text} can only be used to upgrade to Kubernetes version"
            f" {kubeadm.major}.{kubeadm.minor}"
        )
    if target.pre and not allow_experimental and not (target.pre.startswith("rc") and allow_rc):
        errs.skippable.append(
            f'Specified version to upgrade to "{target_text}" is an unstable version and such'
            " upgrades weren't allowed via setting the --allow-*-upgrades flags"
        )
    too_old = []
    for text in dict.fromkeys(kubelets):
        try:
            kubelet = parse_semver(text)
        except VersionSyntaxError:
            errs.skippable.append(f"couldn't parse kubelet version {text}")
            break
        if target.minor > kubelet.minor + MAX_KUBELET_SKEW:
            too_old.append(text)
    if too_old:
        errs.skippable.append(
            "There are kubelets in this cluster that are too old that have these versions"
            f" [{' '.join(too_old)}]"
        )
    return errs


def format_err_msg(errors: Sequence[str]) -> str:
    """kubeadmutil.FormatErrMsg: one `\\t- error` line each."""
    return "".join(f"\t- {e}\n" for e in errors)


def policy_failure(errs: PolicyErrors, *, force: bool) -> str | None:
    """The `[upgrade/version] FATAL` text for policy errors; None when the upgrade may go on."""
    if errs.mandatory:
        return (
            "[upgrade/version] FATAL: the --version argument is invalid due to these fatal"
            f" errors:\n\n{format_err_msg(errs.mandatory)}\nPlease fix the misalignments"
            " highlighted above and try upgrading again"
        )
    if errs.skippable and not force:
        return (
            "[upgrade/version] FATAL: the --version argument is invalid due to these errors:"
            f"\n\n{format_err_msg(errs.skippable)}\nCan be bypassed if you pass the --force flag"
        )
    return None


def forced_notice(errs: PolicyErrors) -> str:
    """What kubeadm prints when --force skips skippable errors."""
    return (
        f"[upgrade/version] Found {len(errs.skippable)} potential version compatibility errors"
        f" but skipping since the --force flag is set: \n\n{format_err_msg(errs.skippable)}"
    )


# ---- preflight


def preflight_failure(
    errors: Mapping[str, str], ignored: Iterable[str], prefix: str = "[upgrade/health] FATAL: "
) -> tuple[list[str], str | None]:
    """Warnings for ignored checks, and the fatal text for the others (preflight's wording).

    `errors` maps a check name (ControlPlaneNodesReady) to its message; `ignored` holds the
    --ignore-preflight-errors values (case-insensitive, `all` ignores everything).
    """
    skip = {i.strip().lower() for i in ignored if i.strip()}
    warnings, fatal = [], []
    for name, msg in errors.items():
        if "all" in skip or name.lower() in skip:
            warnings.append(f"\t[WARNING {name}]: {msg}")
        else:
            fatal.append(f"\t[ERROR {name}]: {msg}")
    if not fatal:
        return warnings, None
    text = (
        f"{prefix}[preflight] Some fatal errors occurred:\n"
        + "\n".join(fatal)
        + "\n[preflight] If you know what you are doing, you can make a check non-fatal with"
        " `--ignore-preflight-errors=...`"
    )
    return warnings, text


# ---- tables (Go's text/tabwriter as kubeadm uses it: minwidth 10, padding 3, spaces)


def tabwrite(rows: Sequence[Sequence[str]], *, minwidth: int = 10, padding: int = 3) -> str:
    """Rows aligned like tabwriter.NewWriter(w, 10, 4, 3, ' ', 0): the last cell unpadded."""
    ncols = max((len(r) for r in rows), default=0)
    widths = [0] * ncols
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell) + padding, minwidth)
    out = []
    for r in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])]
        out.append("".join(cells) + (r[-1] if r else ""))
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class PlanInput:
    """What `kubeadm upgrade plan` knows about the cluster."""

    cluster: Semver  # the apiserver's version
    kubeadm: Semver
    kubelets: Mapping[str, str]  # node -> kubelet version
    control_plane: Mapping[str, Mapping[str, str]]  # node -> component -> image tag
    coredns: str  # current CoreDNS image tag
    etcd: Mapping[str, str]  # node -> etcd image tag
    kube_proxy: str  # current kube-proxy image tag


def _grouped(values: Iterable[str]) -> list[tuple[int, str]]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return sorted(((n, v) for v, n in counts.items()), key=lambda c: c[1])


def plan_target(p: PlanInput) -> Semver | None:
    """The version plan offers: kubeadm's own (no internet), when newer than the cluster."""
    return p.kubeadm if p.cluster.less_than(p.kubeadm) else None


def render_plan_versions(p: PlanInput) -> str:
    """The `[upgrade/versions]` lines after `Fetching available versions to upgrade to`."""
    series = f"v{p.cluster.major}.{p.cluster.minor}"
    return (
        f"[upgrade/versions] Cluster version: {p.cluster}\n"
        f"[upgrade/versions] kubeadm version: {p.kubeadm}\n"
        f"[upgrade/versions] Target version: {p.kubeadm}\n"
        f"[upgrade/versions] Latest version in the {series} series: {p.kubeadm}\n"
    )


def render_plan_tables(p: PlanInput) -> str:
    """The tables of `kubeadm upgrade plan`: kubelets, control plane, the apply hint.

    Up to 1.30 the kubelet rows are grouped by version (`2 x v1.29.3`); from 1.31 kubeadm prints
    one row per node with a NODE column, control-plane components too.
    """
    target = plan_target(p)
    if target is None:
        return "Awesome, you're up-to-date! Enjoy!\n"
    t = str(target)
    etcd_target = etcd_version_for(target)
    dns_target = coredns_version_for(target)
    series = f"v{p.cluster.major}.{p.cluster.minor}"
    parts = [
        "Components that must be upgraded manually after you have upgraded the control plane"
        " with 'kubeadm upgrade apply':\n"
    ]
    if p.kubeadm.minor >= 31:
        rows = [["COMPONENT", "NODE", "CURRENT", "TARGET"]]
        for i, node in enumerate(sorted(p.kubelets)):
            rows.append(["kubelet" if i == 0 else "", node, p.kubelets[node], t])
        parts.append(tabwrite(rows))
        parts.append(f"\nUpgrade to the latest version in the {series} series:\n\n")
        rows = [["COMPONENT", "NODE", "CURRENT", "TARGET"]]
        for comp in COMPONENTS:
            for i, node in enumerate(sorted(p.control_plane)):
                current = p.control_plane[node].get(comp, "")
                rows.append([comp if i == 0 else "", node, current, t])
        for i, node in enumerate(sorted(p.etcd)):
            rows.append(["etcd" if i == 0 else "", node, p.etcd[node], etcd_target])
        rows.append(["kube-proxy", "", p.kube_proxy, t])
        rows.append(["CoreDNS", "", p.coredns, dns_target])
        parts.append(tabwrite(rows))
    else:
        rows = [["COMPONENT", "CURRENT", "TARGET"]]
        for i, (n, v) in enumerate(_grouped(p.kubelets.values())):
            rows.append(["kubelet" if i == 0 else "", f"{n} x {v}", t])
        parts.append(tabwrite(rows))
        parts.append(f"\nUpgrade to the latest version in the {series} series:\n\n")
        rows = [["COMPONENT", "CURRENT", "TARGET"]]
        for comp in COMPONENTS:
            tags = _grouped(tags[comp] for tags in p.control_plane.values() if comp in tags)
            for i, (n, v) in enumerate(tags):
                current = v if len(tags) == 1 else f"{n} x {v}"
                rows.append([comp if i == 0 else "", current, t])
        rows.append(["kube-proxy", p.kube_proxy, t])
        rows.append(["CoreDNS", p.coredns, dns_target])
        etcd = _grouped(p.etcd.values())
        for i, (n, v) in enumerate(etcd):
            rows.append(
                ["etcd" if i == 0 else "", v if len(etcd) == 1 else f"{n} x {v}", etcd_target]
            )
        parts.append(tabwrite(rows))
    parts.append(
        "\nYou can now apply the upgrade by executing the following command:\n\n"
        f"\tkubeadm upgrade apply {t}\n\n"
        "_____________________________________________________________________\n\n"
    )
    parts.append(
        "\nThe table below shows the current state of component configs as understood by this"
        ' version of kubeadm.\nConfigs that have a "yes" mark in the "MANUAL UPGRADE REQUIRED"'
        " column require manual config upgrade or\nresetting to kubeadm defaults before a"
        " successful upgrade can be performed. The version to manually\nupgrade to is denoted"
        ' in the "PREFERRED VERSION" column.\n\n'
    )
    parts.append(
        tabwrite(
            [
                ["API GROUP", "CURRENT VERSION", "PREFERRED VERSION", "MANUAL UPGRADE REQUIRED"],
                ["kubeproxy.config.k8s.io", "v1alpha1", "v1alpha1", "no"],
                ["kubelet.config.k8s.io", "v1beta1", "v1beta1", "no"],
            ]
        )
    )
    parts.append("_____________________________________________________________________\n\n")
    return "".join(parts)


# ---- parsing the output back (for tests and tools)


@dataclass(frozen=True)
class PlanRow:
    """One row of a plan table."""

    component: str
    current: str
    target: str
    node: str = ""


def parse_plan(text: str) -> tuple[str | None, list[PlanRow]]:
    """The `kubeadm upgrade apply vX` version a plan suggests and its table rows."""
    suggested = None
    rows: list[PlanRow] = []
    header: list[str] = []
    component = ""
    for line in text.splitlines():
        words = line.split()
        if line.strip().startswith("kubeadm upgrade apply "):
            suggested = words[-1]
            continue
        if words[:1] == ["COMPONENT"]:
            header = words
            component = ""
            continue
        if not line.strip():
            header = []
            continue
        if not header:
            continue
        cells = _split_cells(line)
        if len(header) == 4:
            comp = cells[0] or component
            if len(cells) == 4:
                rows.append(PlanRow(comp, cells[2], cells[3], node=cells[1]))
            elif len(cells) == 3:  # no NODE (kube-proxy, CoreDNS)
                rows.append(PlanRow(comp, cells[1], cells[2]))
        elif len(cells) == 3:
            comp = cells[0] or component
            rows.append(PlanRow(comp, cells[1], cells[2]))
        component = rows[-1].component if rows else component
    return suggested, rows


def _split_cells(line: str) -> list[str]:
    """Cells of a tabwriter line (separated by 2+ spaces; a leading gap is an empty cell)."""
    cells = re.split(r"\s{2,}", line.rstrip())
    return cells
