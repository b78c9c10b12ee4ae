"""Kubernetes versions: parsing, the version-skew policy, and the upgrade path (all pure).

Sources followed here:

- Version skew policy (kubernetes.io/releases/version-skew-policy): kube-apiserver
  instances within one minor of each other; kube-controller-manager and kube-scheduler not
  newer than any apiserver and at most one minor older; kubelet and kube-proxy not newer
  and at most three minors older (two when they are older than 1.25); kubectl within one
  minor either way. Skew between apiservers narrows every range to the intersection.
- The upgrade order in the same page: before an apiserver goes to minor T, every kubelet
  must be at T-1 or T-2, and controller-manager and scheduler at T-1.
- kubeadm (cmd/kubeadm/app/phases/upgrade/policy.go): one minor per upgrade, and one minor
  per downgrade; skipping a minor is unsupported.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from nodeops.errors import NodeopsError

MinorKey = tuple[int, int]
"""(major, minor): the key of a Kubernetes minor release and of its package repository."""


class VersionError(NodeopsError):
    """A version string nodeops cannot use, or a version change it refuses."""


# --- Version ---------------------------------------------------------------------------------

_PRE_KINDS = {"alpha": 0, "beta": 1, "rc": 2}
_RELEASE_RANK = 3

# Everything is ASCII on purpose: `\d` would match Arabic-Indic or fullwidth digits.
_CORE = re.compile(r"v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?")
_PRE = re.compile(r"-(alpha|beta|rc)\.([0-9]+)((?:\.[0-9]+)*)")
_REVISION = re.compile(r"-([0-9]+(?:\.[0-9]+)*)")
# Vendor builds and build metadata: +k3s1, +rke2r1, -gke.100, -eks-5e0fdde, +509916ce1 (OpenShift),
# +466019b1b27fc0-dirty (a development build).
_BUILD = re.compile(r"[-+][0-9A-Za-z][0-9A-Za-z.+_~-]*")

ACCEPTED = (
    "accepted: 1.30.2 or v1.30.2, optionally with a package revision (1.30.2-1.1,"
    " 1.30.2-150500.1.1, 1.30.2-00, 1.30.2-0) or a vendor suffix (+k3s1, -gke.100)"
)


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    """A Kubernetes version: 1.30.2, a pre-release 1.31.0-rc.1, or a vendor build 1.30.2+k3s1.

    `patch` is None only for a bare minor ("1.30"), which means "the latest 1.30 patch".
    `pre` is the pre-release text ("rc.1", "alpha.3.55"); `build` a vendor or build suffix
    with its separator ("+k3s1", "-gke.100"). Versions order by major, minor, patch (a
    bare minor before its patches), then alpha < beta < rc < release, then suffix.
    """

    major: int
    minor: int
    patch: int | None = None
    pre: str | None = None
    build: str | None = None

    def __post_init__(self) -> None:
        numbers = [self.major, self.minor] + ([] if self.patch is None else [self.patch])
        if any(n < 0 for n in numbers):
            raise VersionError(f"negative number in version {numbers!r}")
        if self.pre is not None and not re.fullmatch(r"(alpha|beta|rc)(\.[0-9]+)+", self.pre):
            raise VersionError(f"not a pre-release: {self.pre!r} (alpha.N, beta.N or rc.N)")
        if self.build is not None and not _BUILD.fullmatch(self.build):
            raise VersionError(f"not a vendor or build suffix: {self.build!r}")

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}"
        if self.patch is not None:
            text += f".{self.patch}"
        if self.pre:
            text += f"-{self.pre}"
        return text + (self.build or "")

    @property
    def v(self) -> str:
        """The version as Kubernetes prints it: v1.30.2."""
        return f"v{self}"

    @property
    def minor_key(self) -> MinorKey:
        """(major, minor), the key of this version's minor release."""
        return (self.major, self.minor)

    @property
    def minor_text(self) -> str:
        """The minor release as text: 1.30."""
        return f"{self.major}.{self.minor}"

    @property
    def is_bare_minor(self) -> bool:
        """Whether this is a bare minor ("1.30") without a patch."""
        return self.patch is None

    @property
    def is_prerelease(self) -> bool:
        """Whether this is an alpha, beta or release candidate."""
        return self.pre is not None

    @property
    def is_upstream(self) -> bool:
        """Whether this is an upstream release (no vendor or build suffix such as +k3s1)."""
        return self.build is None

    @property
    def upstream(self) -> Version:
        """The same version without its vendor or build suffix."""
        return Version(self.major, self.minor, self.patch, self.pre)

    def _key(self) -> tuple[int, int, int, tuple[int, ...], str]:
        patch = -1 if self.patch is None else self.patch
        if self.pre is None:
            pre: tuple[int, ...] = (_RELEASE_RANK,)
        else:
            kind, *numbers = self.pre.split(".")
            pre = (_PRE_KINDS[kind], *(int(n) for n in numbers))
        return (self.major, self.minor, patch, pre, self.build or "")

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()


def minor_text(key: MinorKey) -> str:
    """A minor key as text: (1, 30) -> "1.30"."""
    return f"{key[0]}.{key[1]}"


def _number(text: str, part: str, whole: str) -> int:
    if len(text) > 1 and text.startswith("0"):
        raise VersionError(
            f"not a Kubernetes version: {whole!r} (the {part} {text!r} has a leading zero); "
            + ACCEPTED
        )
    if len(text) > 9:
        raise VersionError(f"not a Kubernetes version: {whole!r} (the {part} is too large)")
    return int(text)


def _guard(text: object) -> str:
    if not isinstance(text, str):
        raise VersionError(f"a version must be text, not {type(text).__name__}: {text!r}")
    if not text:
        raise VersionError("empty version; " + ACCEPTED)
    if text != text.strip():
        raise VersionError(
            f"not a Kubernetes version: {text!r} (leading or trailing whitespace); " + ACCEPTED
        )
    if not text.isascii() or not text.isprintable():
        raise VersionError(
            f"not a Kubernetes version: {text!r} (only ASCII digits 0-9, letters and . - +"
            " are used in versions); " + ACCEPTED
        )
    if len(text) > 128:
        raise VersionError(f"not a Kubernetes version: {text[:40]!r}... (too long)")
    return text


@dataclass(frozen=True)
class _Parsed:
    version: Version
    revision: str | None


def _parse(text: str, *, allow_prerelease: bool, allow_bare_minor: bool) -> _Parsed:
    text = _guard(text)
    core = _CORE.match(text)
    if core is None:
        hint = " (write 'v' in lower case)" if text[:1] == "V" else ""
        raise VersionError(f"not a Kubernetes version: {text!r}{hint}; " + ACCEPTED)
    major = _number(core.group(1), "major", text)
    minor = _number(core.group(2), "minor", text)
    patch = None if core.group(3) is None else _number(core.group(3), "patch", text)
    rest = text[core.end() :]

    pre = None
    pre_match = _PRE.match(rest)
    if pre_match:
        numbers = [pre_match.group(2), *pre_match.group(3).split(".")[1:]]
        for number in numbers:
            _number(number, "pre-release number", text)
        pre = ".".join([pre_match.group(1), *numbers])
        rest = rest[pre_match.end() :]

    revision = None
    revision_match = _REVISION.fullmatch(rest)
    if revision_match:
        revision = revision_match.group(1)
        rest = ""
        try:
            repo_style(revision)
        except VersionError as error:
            raise VersionError(f"not a Kubernetes version: {text!r} ({error})") from None

    build = None
    if rest:
        if rest.startswith(("-alpha", "-beta", "-rc")):
            raise VersionError(
                f"not a Kubernetes version: {text!r} (a pre-release is written -alpha.N,"
                " -beta.N or -rc.N)"
            )
        if not _BUILD.fullmatch(rest) or (rest[0] == "-" and rest[1:2].isdigit()):
            raise VersionError(
                f"not a Kubernetes version: {text!r} (cannot read {rest!r}); " + ACCEPTED
            )
        build = rest

    if patch is None:
        if pre or revision or build:
            raise VersionError(
                f"not a Kubernetes version: {text!r} (a bare minor takes no suffix); " + ACCEPTED
            )
        if not allow_bare_minor:
            raise VersionError(
                f"{text!r} is a bare minor; name a patch release such as"
                f" {major}.{minor}.0, or ask for the latest {major}.{minor} patch explicitly"
            )
    if pre is not None and not allow_prerelease:
        raise VersionError(
            f"{text!r} is a pre-release ({pre}); pre-releases are used only when explicitly allowed"
        )
    return _Parsed(Version(major, minor, patch, pre, build), revision)


def parse_version(
    text: str, *, allow_prerelease: bool = False, allow_bare_minor: bool = False
) -> Version:
    """Parse a version as operators write it: 1.30.2, v1.30.2, 1.30.2-1.1, 1.30.2+k3s1 ...

    A package revision (-00, -0, -1.1, -150500.1.1) is dropped: the result is the upstream
    version. A bare minor ("1.30") and pre-releases ("1.31.0-rc.1") need an explicit opt-in.
    Anything else raises VersionError quoting the input.
    """
    return _parse(
        text, allow_prerelease=allow_prerelease, allow_bare_minor=allow_bare_minor
    ).version


# --- package versions ------------------------------------------------------------------------


class RepoStyle(StrEnum):
    """Which repository a package revision comes from."""

    PKGS_DEB = "pkgs.k8s.io deb"  # 1.30.2-1.1
    PKGS_RPM = "pkgs.k8s.io rpm"  # 1.30.2-150500.1.1
    LEGACY_DEB = "legacy apt.kubernetes.io deb"  # 1.18.2-00
    LEGACY_RPM = "legacy yum.kubernetes.io rpm"  # 1.18.2-0

    @property
    def is_deb(self) -> bool:
        """Whether packages of this style install with apt."""
        return self in (RepoStyle.PKGS_DEB, RepoStyle.LEGACY_DEB)

    @property
    def is_legacy(self) -> bool:
        """Whether this is one of the frozen Google-hosted repositories."""
        return self in (RepoStyle.LEGACY_DEB, RepoStyle.LEGACY_RPM)


def repo_style(revision: str) -> RepoStyle:
    """The repository style a package revision belongs to, or VersionError."""
    if re.fullmatch(r"[0-9]{2}", revision):
        return RepoStyle.LEGACY_DEB
    if re.fullmatch(r"[0-9]", revision):
        return RepoStyle.LEGACY_RPM
    if re.fullmatch(r"[0-9]+\.[0-9]+", revision):
        return RepoStyle.PKGS_DEB
    if re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", revision):
        return RepoStyle.PKGS_RPM
    raise VersionError(
        f"unknown package revision {revision!r}: expected -1.1 (pkgs.k8s.io deb),"
        " -150500.1.1 (pkgs.k8s.io rpm), -00 (legacy deb) or -0 (legacy rpm)"
    )


@functools.total_ordering
@dataclass(frozen=True)
class PackageVersion:
    """A kube package version: the upstream Version plus the repository's revision."""

    version: Version
    revision: str
    style: RepoStyle

    def __post_init__(self) -> None:
        if self.version.patch is None or not self.version.is_upstream:
            raise VersionError(f"not a package version: {self.version}-{self.revision}")
        if repo_style(self.revision) is not self.style:
            raise VersionError(f"revision {self.revision!r} is not of style {self.style}")

    def __str__(self) -> str:
        return f"{self.version}-{self.revision}"

    @property
    def minor_key(self) -> MinorKey:
        """(major, minor) of the upstream version."""
        return self.version.minor_key

    def _key(self) -> tuple[Version, tuple[int, ...]]:
        return (self.version, tuple(int(n) for n in self.revision.split(".")))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, PackageVersion):
            return NotImplemented
        return self._key() < other._key()


def parse_package_version(text: str) -> PackageVersion:
    """Parse a package version as apt or dnf prints it: 1.30.2-1.1, 1.30.2-150500.1.1, 1.18.2-00.

    Pre-releases and vendor builds are not packages nodeops installs and raise VersionError.
    """
    parsed = _parse(text, allow_prerelease=False, allow_bare_minor=False)
    if parsed.revision is None:
        raise VersionError(
            f"{text!r} has no package revision: expected 1.30.2-1.1 (pkgs.k8s.io deb),"
            " 1.30.2-150500.1.1 (pkgs.k8s.io rpm), 1.30.2-00 (legacy deb) or 1.30.2-0 (legacy rpm)"
        )
    if not parsed.version.is_upstream:
        raise VersionError(f"{text!r} is a vendor build, not an upstream package version")
    return PackageVersion(parsed.version, parsed.revision, repo_style(parsed.revision))


def group_by_minor(versions: Iterable[PackageVersion]) -> dict[MinorKey, list[PackageVersion]]:
    """Package versions by minor release, each list sorted oldest first without duplicates."""
    grouped: dict[MinorKey, set[PackageVersion]] = {}
    for version in versions:
        grouped.setdefault(version.minor_key, set()).add(version)
    return {key: sorted(found) for key, found in sorted(grouped.items())}


# --- skew policy -------------------------------------------------------------------------------


class Component(StrEnum):
    """The components the version-skew policy speaks about."""

    APISERVER = "kube-apiserver"
    CONTROLLER_MANAGER = "kube-controller-manager"
    SCHEDULER = "kube-scheduler"
    KUBELET = "kubelet"
    KUBE_PROXY = "kube-proxy"
    KUBECTL = "kubectl"


# kubelet and kube-proxy older than 1.25 may be only two minors behind, not three.
_THREE_MINOR_SKEW_SINCE: MinorKey = (1, 25)


@dataclass(frozen=True)
class MinorRange:
    """An inclusive range of minor releases; empty when low > high."""

    low: MinorKey
    high: MinorKey

    def __contains__(self, item: object) -> bool:
        if isinstance(item, Version):
            return self.low <= item.minor_key <= self.high
        if isinstance(item, tuple):
            return bool(self.low <= item <= self.high)
        return False

    @property
    def empty(self) -> bool:
        """Whether no minor release fits."""
        return self.low > self.high

    def __str__(self) -> str:
        if self.empty:
            return "none"
        if self.low == self.high:
            return minor_text(self.low)
        return f"{minor_text(self.low)} … {minor_text(self.high)}"


def _shift(key: MinorKey, by: int) -> MinorKey:
    return (key[0], max(key[1] + by, 0))


def _oldest_allowed_node_component(apiserver: MinorKey) -> MinorKey:
    """The oldest kubelet or kube-proxy one apiserver accepts (three minors, two before 1.25)."""
    three = _shift(apiserver, -3)
    return three if three >= _THREE_MINOR_SKEW_SINCE else _shift(apiserver, -2)


def _apiserver_keys(apiservers: Mapping[str, Version] | Iterable[Version]) -> list[MinorKey]:
    values = apiservers.values() if isinstance(apiservers, Mapping) else apiservers
    keys = [v.minor_key for v in values]
    if not keys:
        raise VersionError("no kube-apiserver version is known, so no skew range can be computed")
    return keys


def allowed_kubelet_range(apiservers: Mapping[str, Version] | Iterable[Version]) -> MinorRange:
    """Minors a kubelet (or kube-proxy) may run with these apiservers: not newer than any,
    at most three minors older than every one (two when the kubelet is older than 1.25)."""
    keys = _apiserver_keys(apiservers)
    return MinorRange(max(_oldest_allowed_node_component(k) for k in keys), min(keys))


def allowed_control_plane_range(
    apiservers: Mapping[str, Version] | Iterable[Version],
) -> MinorRange:
    """Minors kube-controller-manager and kube-scheduler may run: not newer than any
    apiserver, at most one minor older than every one."""
    keys = _apiserver_keys(apiservers)
    return MinorRange(_shift(max(keys), -1), min(keys))


def allowed_kubectl_range(apiservers: Mapping[str, Version] | Iterable[Version]) -> MinorRange:
    """Minors kubectl may run: within one minor of every apiserver."""
    keys = _apiserver_keys(apiservers)
    return MinorRange(_shift(max(keys), -1), _shift(min(keys), 1))


@dataclass(frozen=True)
class ClusterVersions:
    """The versions running in a cluster, per component, as node name -> Version."""

    apiservers: Mapping[str, Version]
    controller_managers: Mapping[str, Version] = field(default_factory=dict)
    schedulers: Mapping[str, Version] = field(default_factory=dict)
    kubelets: Mapping[str, Version] = field(default_factory=dict)
    kube_proxies: Mapping[str, Version] = field(default_factory=dict)
    kubectl: Mapping[str, Version] = field(default_factory=dict)

    def components(self) -> list[tuple[Component, Mapping[str, Version]]]:
        """Each component with its versions by node, in upgrade order."""
        return [
            (Component.APISERVER, self.apiservers),
            (Component.CONTROLLER_MANAGER, self.controller_managers),
            (Component.SCHEDULER, self.schedulers),
            (Component.KUBELET, self.kubelets),
            (Component.KUBE_PROXY, self.kube_proxies),
            (Component.KUBECTL, self.kubectl),
        ]


@dataclass(frozen=True)
class SkewProblem:
    """One component on one node outside the range the version-skew policy allows."""

    component: Component
    node: str
    version: Version | None
    allowed: MinorRange | None
    message: str

    def __str__(self) -> str:
        return self.message


def _where(component: Component, node: str) -> str:
    return f"{component} on {node}" if node else str(component)


def skew_problems(cluster: ClusterVersions) -> list[SkewProblem]:
    """Every component outside the version-skew policy as it stands now.

    Ranges are the intersection over all apiservers (the policy's HA notes), so with
    apiservers at 1.20 and 1.19 a kubelet, controller-manager or scheduler at 1.20 is a
    problem. During a rolling upgrade this flags upgraded nodes until the last apiserver
    catches up; `check_hop` is the gate that knows about hops in progress.
    """
    if not cluster.apiservers:
        return [
            SkewProblem(
                Component.APISERVER,
                "",
                None,
                None,
                "no kube-apiserver version is known, so the version skew cannot be checked",
            )
        ]
    problems: list[SkewProblem] = []
    keys = [v.minor_key for v in cluster.apiservers.values()]
    newest_node, newest = max(cluster.apiservers.items(), key=lambda item: item[1])
    apiserver_range = MinorRange(_shift(max(keys), -1), max(keys))
    for node, version in sorted(cluster.apiservers.items()):
        if version.major != newest.major:
            problems.append(
                SkewProblem(
                    Component.APISERVER,
                    node,
                    version,
                    apiserver_range,
                    f"kube-apiserver on {node} is at {version}, another major version than"
                    f" {newest} on {newest_node}",
                )
            )
        elif version not in apiserver_range:
            problems.append(
                SkewProblem(
                    Component.APISERVER,
                    node,
                    version,
                    apiserver_range,
                    f"kube-apiserver on {node} is at {version}, more than one minor behind"
                    f" {newest} on {newest_node} (apiservers must be within one minor)",
                )
            )

    ranges = {
        Component.CONTROLLER_MANAGER: allowed_control_plane_range(cluster.apiservers),
        Component.SCHEDULER: allowed_control_plane_range(cluster.apiservers),
        Component.KUBELET: allowed_kubelet_range(cluster.apiservers),
        Component.KUBE_PROXY: allowed_kubelet_range(cluster.apiservers),
        Component.KUBECTL: allowed_kubectl_range(cluster.apiservers),
    }
    for component, versions in cluster.components()[1:]:
        allowed = ranges[component]
        for node, version in sorted(versions.items()):
            if version in allowed:
                continue
            problems.append(
                SkewProblem(
                    component,
                    node,
                    version,
                    allowed,
                    f"{_where(component, node)} is at {version}; with kube-apiserver at"
                    f" {_apiserver_summary(cluster.apiservers)} the version-skew policy allows"
                    f" {allowed}",
                )
            )

    for node, proxy in sorted(cluster.kube_proxies.items()):
        kubelet = cluster.kubelets.get(node)
        if kubelet is None:
            continue
        limit = 3 if proxy.minor_key >= _THREE_MINOR_SKEW_SINCE else 2
        if proxy.major != kubelet.major or abs(proxy.minor - kubelet.minor) > limit:
            problems.append(
                SkewProblem(
                    Component.KUBE_PROXY,
                    node,
                    proxy,
                    MinorRange(_shift(kubelet.minor_key, -limit), _shift(kubelet.minor_key, limit)),
                    f"kube-proxy on {node} is at {proxy}, more than {limit} minors from the"
                    f" kubelet beside it ({kubelet})",
                )
            )
    return problems


def _apiserver_summary(apiservers: Mapping[str, Version]) -> str:
    minors = sorted({v.minor_key for v in apiservers.values()})
    return " and ".join(minor_text(k) for k in minors)


def check_hop(
    cluster: ClusterVersions, target: Version, *, allow_downgrade: bool = False
) -> list[str]:
    """What blocks moving the control plane to `target` now; empty when the hop may start.

    The upgrade prerequisites of the skew policy, for a hop to minor T: every apiserver at
    T-1 or T (one minor at a time, as kubeadm enforces); controller-manager and scheduler at
    T-1 or T and not newer than every apiserver; every kubelet and kube-proxy at T-2 or T-1
    (the stricter upgrade-order rule), or at T once an apiserver is already there (a hop in
    progress: kubeadm upgrades a node's kubelet right after its control plane); kubectl within
    one minor of every apiserver before and after. A target older than the newest apiserver
    is a downgrade, refused unless `allow_downgrade` (still one minor at a time, and no
    kubelet, kube-proxy or kubectl may stay newer than the target).
    """
    if target.patch is None:
        raise VersionError(f"check_hop needs a patch release, not the bare minor {target}")
    if not cluster.apiservers:
        return ["no kube-apiserver version is known, so the version skew cannot be checked"]
    blockers: list[str] = []
    if not target.is_upstream:
        blockers.append(f"{target} is a vendor build; nodeops installs upstream releases only")
    t_key = target.minor_key
    newest_node, newest = max(cluster.apiservers.items(), key=lambda item: item[1])
    oldest_node, oldest = min(cluster.apiservers.items(), key=lambda item: item[1])
    for node, version in sorted(cluster.apiservers.items()):
        if not version.is_upstream:
            blockers.append(
                f"kube-apiserver on {node} reports {version.v}, a vendor build ({version.build});"
                " nodeops upgrades upstream kubeadm clusters only"
            )
    for component, versions in cluster.components():
        for node, version in sorted(versions.items()):
            if version.major != target.major:
                blockers.append(
                    f"{_where(component, node)} is at {version}: changing the major version"
                    f" to {target} is not supported"
                )
    if blockers:
        return blockers

    newest_key = newest.minor_key
    downgrade = target < newest.upstream
    if downgrade and not allow_downgrade:
        blockers.append(
            f"{target} is older than kube-apiserver {newest} on {newest_node}: downgrades are"
            " refused unless explicitly allowed"
        )
    if newest_key[1] - oldest.minor_key[1] > 1:
        blockers.append(
            f"kube-apiservers are more than one minor apart ({oldest} on {oldest_node},"
            f" {newest} on {newest_node}); bring {oldest_node} within one minor first"
        )
    if t_key[1] > oldest.minor_key[1] + 1:
        blockers.append(
            f"one minor at a time: kube-apiserver on {oldest_node} is at {oldest};"
            f" upgrade to {oldest.major}.{oldest.minor + 1} before {target}"
        )
    if t_key[1] < newest_key[1] - 1:
        blockers.append(
            f"one minor at a time: kube-apiserver on {newest_node} is at {newest};"
            f" a downgrade may go to {newest.major}.{newest.minor - 1} at the lowest, not {target}"
        )

    hop_started = any(v.minor_key == t_key for v in cluster.apiservers.values())
    minor_hop = t_key > oldest.minor_key
    by_component = dict(cluster.components())
    control_floor = _shift(t_key, -1)
    for component in (Component.CONTROLLER_MANAGER, Component.SCHEDULER):
        versions = by_component[component]
        for node, version in sorted(versions.items()):
            key = version.minor_key
            if key > newest_key:
                blockers.append(
                    f"{component} on {node} is at {version}, newer than every kube-apiserver"
                    f" (newest {newest} on {newest_node})"
                )
            elif key < control_floor:
                blockers.append(
                    f"{component} on {node} is at {version}; before the move to {target} it"
                    f" must be at {minor_text(control_floor)} or newer"
                )

    during = [v.minor_key for v in cluster.apiservers.values()] + [t_key]
    # The policy's range over every apiserver version the hop passes through; for a minor
    # upgrade the stricter upgrade-order rule (T-2 at the oldest) on top.
    node_floor = max(_oldest_allowed_node_component(k) for k in during)
    if minor_hop:
        node_floor = max(node_floor, _shift(t_key, -2))
    for component in (Component.KUBELET, Component.KUBE_PROXY):
        versions = by_component[component]
        for node, version in sorted(versions.items()):
            key = version.minor_key
            if key > newest_key:
                blockers.append(
                    f"{component} on {node} is at {version}, newer than every kube-apiserver"
                    f" (newest {newest} on {newest_node}); the skew policy never allows that"
                )
            elif key > t_key:
                blockers.append(
                    f"{component} on {node} is at {version}, newer than the target {target}"
                )
            elif key == t_key and not hop_started and not downgrade:
                blockers.append(
                    f"{component} on {node} is at {version}, already at the target minor while"
                    f" every kube-apiserver is older"
                )
            elif key < node_floor:
                blockers.append(
                    f"{component} on {node} is at {version}; before kube-apiserver moves to"
                    f" {target} every {component} must be at {minor_text(node_floor)} or"
                    " newer: upgrade it first"
                )

    kubectl_range = MinorRange(_shift(max(during), -1), _shift(min(during), 1))
    for node, version in sorted(cluster.kubectl.items()):
        if version not in kubectl_range:
            blockers.append(
                f"kubectl on {node} is at {version}; during the move to {target} it must be"
                f" within one minor of every kube-apiserver ({kubectl_range})"
            )
    return blockers


# --- upgrade path --------------------------------------------------------------------------------

HopKind = Literal["patch", "minor", "downgrade"]


@dataclass(frozen=True)
class Hop:
    """One step of an upgrade: the minor repository to use and the package to install."""

    minor: MinorKey
    target: PackageVersion
    kind: HopKind

    @property
    def version(self) -> Version:
        """The upstream version this hop ends at."""
        return self.target.version

    @property
    def repo(self) -> str:
        """The repository's minor as pkgs.k8s.io names it: v1.30."""
        return f"v{minor_text(self.minor)}"

    def __str__(self) -> str:
        return f"{self.kind} upgrade to {self.version} ({self.target} from the {self.repo} repo)"


def _served(
    available: Mapping[MinorKey, Sequence[PackageVersion]], key: MinorKey
) -> list[PackageVersion]:
    return sorted(p for p in available.get(key, ()) if p.minor_key == key)


def _describe_served(key: MinorKey, served: Sequence[PackageVersion]) -> str:
    if not served:
        return f"the v{minor_text(key)} repository serves nothing"
    low, high = served[0].version, served[-1].version
    span = str(low) if low == high else f"{low} … {high}"
    return f"the v{minor_text(key)} repository serves {span}"


def _pick(
    key: MinorKey,
    wanted: Version | None,
    available: Mapping[MinorKey, Sequence[PackageVersion]],
) -> PackageVersion:
    served = _served(available, key)
    if wanted is None:
        if not served:
            known = [_describe_served(k, _served(available, k)) for k in sorted(available)]
            also = f" ({'; '.join(known)})" if known else ""
            raise VersionError(
                f"{_describe_served(key, served)}{also}: minor versions cannot be skipped,"
                f" so no upgrade can go through {minor_text(key)}"
            )
        return served[-1]
    matches = [p for p in served if p.version == wanted]
    if not matches:
        where = _describe_served(key, served)
        if not served:
            known = [_describe_served(k, _served(available, k)) for k in sorted(available)]
            if known:
                where = "; ".join(known)
        raise VersionError(f"{where}; {wanted} is not there")
    return matches[-1]


def upgrade_path(
    current: Version,
    target: Version,
    available: Mapping[MinorKey, Sequence[PackageVersion]],
    *,
    allow_downgrade: bool = False,
) -> list[Hop]:
    """The hops from `current` to `target`: one minor per hop, none skipped.

    Each intermediate hop installs the latest patch its minor's repository serves; the last
    hop installs `target` exactly, or the latest patch when `target` is a bare minor. A
    target in the current minor is one "patch" hop; an equal (or, for a bare minor, not
    newer) target gives no hops. A downgrade raises VersionError unless `allow_downgrade`,
    and then goes at most one minor down in one "downgrade" hop. `available` maps each
    minor to the package versions its repository serves (see `group_by_minor`).
    """
    if current.patch is None:
        raise VersionError(f"the current version must name a patch release, not {current}")
    for role, version in (("current", current), ("target", target)):
        if not version.is_upstream:
            raise VersionError(
                f"the {role} version {version} is a vendor build ({version.build}); nodeops"
                " upgrades upstream kubeadm clusters from pkgs.k8s.io packages only"
            )
    if target.major != current.major:
        raise VersionError(f"cannot change the major version from {current} to {target}")

    cur_key, t_key = current.minor_key, target.minor_key
    wanted = None if target.patch is None else target
    if t_key == cur_key:
        chosen = (
            _latest_or_none(t_key, available) if wanted is None else _pick(t_key, wanted, available)
        )
        if chosen is None or chosen.version == current:
            return []
        if chosen.version < current:
            if wanted is None:
                return []  # the repository's latest is older: nothing newer to go to
            return _downgrade(current, target, chosen, allow_downgrade)
        return [Hop(t_key, chosen, "patch")]
    if t_key < cur_key:
        if t_key[1] < cur_key[1] - 1:
            raise VersionError(
                f"refusing to go from {current} to {target}: kubeadm can downgrade only one"
                " minor version at a time"
            )
        return _downgrade(current, target, _pick(t_key, wanted, available), allow_downgrade)

    hops: list[Hop] = []
    for minor in range(cur_key[1] + 1, t_key[1] + 1):
        key = (cur_key[0], minor)
        last = key == t_key
        hops.append(Hop(key, _pick(key, wanted if last else None, available), "minor"))
    return hops


def _latest_or_none(
    key: MinorKey, available: Mapping[MinorKey, Sequence[PackageVersion]]
) -> PackageVersion | None:
    served = _served(available, key)
    return served[-1] if served else None


def _downgrade(current: Version, target: Version, chosen: PackageVersion, allow: bool) -> list[Hop]:
    if not allow:
        raise VersionError(
            f"refusing to downgrade from {current} to {target}; downgrades are done only when"
            " explicitly allowed"
        )
    return [Hop(chosen.minor_key, chosen, "downgrade")]
