"""Package commands for kube packages (pure builders returning Cmd) and repository switching.

Every builder takes parsed values: a version given as text is parsed with
`parse_package_version` first, so a hostile string raises VersionError and never reaches a
command. Package names must look like Debian/RPM package names.

Holds differ per family. On Debian and Ubuntu, `apt-mark hold` keeps apt from upgrading
the packages; `install` passes `--allow-change-held-packages` so holds stay in place
through an upgrade (apt keeps the hold flag on the new version). On RHEL-family systems
the kubeadm docs hold packages with the repository's `exclude=` line and lift it per
command with `--disableexcludes=kubernetes`; `hold`/`unhold` therefore return None there,
unless the node uses the versionlock plugin (`versionlock=True`), where they add and
delete lock entries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from nodeops.cmd import Arg, Cmd, cmd, sequence
from nodeops.facts.packages import parse_apt_policy
from nodeops.platforms import APT, DNF, YUM
from nodeops.versions import (
    MinorKey,
    PackageVersion,
    Version,
    VersionError,
    minor_text,
    parse_package_version,
)

PACKAGE_MANAGERS = (APT, DNF, YUM)
# Seconds apt waits for the dpkg lock (unattended-upgrades, a cloud-init run) before failing.
DEFAULT_LOCK_TIMEOUT = 120
# The repository id of the kubeadm install docs' /etc/yum.repos.d/kubernetes.repo.
DEFAULT_REPO_ID = "kubernetes"
MIGRATION_URL = "https://kubernetes.io/blog/2023/08/15/pkgs-k8s-io-introduction/"
CHANGE_REPO_URL = (
    "https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/change-package-repository/"
)
# pkgs.k8s.io publishes core:/stable: repositories from v1.24 on.
FIRST_PKGS_MINOR: MinorKey = (1, 24)

_PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]{0,99}")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")

PackageVersions = Mapping[str, PackageVersion | str]


def _check_pm(pm: str) -> str:
    if pm not in PACKAGE_MANAGERS:
        raise ValueError(f"unknown package manager {pm!r} (expected apt, dnf or yum)")
    return pm


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _PACKAGE_NAME.fullmatch(name):
        raise VersionError(
            f"not a package name: {name!r} (lower-case letters, digits and + . - only)"
        )
    return name


def _check_repo_id(repo_id: str) -> str:
    if not _REPO_ID.fullmatch(repo_id):
        raise ValueError(f"not a repository id: {repo_id!r}")
    return repo_id


def _as_package_version(version: PackageVersion | str) -> PackageVersion:
    if isinstance(version, PackageVersion):
        return version
    if isinstance(version, Version):
        raise VersionError(
            f"{version} has no package revision: use the exact version the repository serves"
            " (see available_versions_cmd)"
        )
    return parse_package_version(version)


def package_spec(pm: str, name: str, version: PackageVersion | str) -> str:
    """One package pinned to one version: `kubeadm=1.30.2-1.1` (apt) or
    `kubeadm-1.30.2-150500.1.1` (dnf, yum). The revision must suit the package manager."""
    _check_pm(pm)
    _check_name(name)
    pinned = _as_package_version(version)
    if pinned.style.is_deb != (pm == APT):
        wanted = (
            "a Debian revision such as 1.30.2-1.1"
            if pm == APT
            else ("an RPM release such as 1.30.2-150500.1.1")
        )
        raise VersionError(
            f"{name} {pinned} comes from a {pinned.style} repository; {pm} needs {wanted}"
        )
    return f"{name}={pinned}" if pm == APT else f"{name}-{pinned}"


def _specs(pm: str, packages: PackageVersions) -> list[str]:
    if not packages:
        raise ValueError("no packages given")
    return [package_spec(pm, name, version) for name, version in sorted(packages.items())]


def _names(names: Iterable[str]) -> list[str]:
    checked = sorted({_check_name(name) for name in names})
    if not checked:
        raise ValueError("no packages given")
    return checked


def _apt_options(lock_timeout: int) -> list[Arg]:
    if not isinstance(lock_timeout, int) or lock_timeout < 0:
        raise ValueError(f"lock_timeout must be a whole number of seconds, not {lock_timeout!r}")
    return ["-o", f"DPkg::Lock::Timeout={lock_timeout}"]


_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def refresh(pm: str, *, lock_timeout: int = DEFAULT_LOCK_TIMEOUT) -> Cmd:
    """Refresh package metadata: `apt-get update`, `dnf makecache --refresh`, or yum's."""
    if _check_pm(pm) == APT:
        return cmd("apt-get", *_apt_options(lock_timeout), "update", sudo=True, env=_APT_ENV)
    if pm == DNF:
        return cmd("dnf", "-y", "makecache", "--refresh", sudo=True)
    # yum keeps metadata per repository id; after a baseurl change it must be expired.
    return sequence(
        [cmd("yum", "-y", "clean", "expire-cache", sudo=True), cmd("yum", "-y", "makecache")],
        sudo=True,
    )


def download_only(
    pm: str,
    packages: PackageVersions,
    *,
    lock_timeout: int = DEFAULT_LOCK_TIMEOUT,
    repo_id: str = DEFAULT_REPO_ID,
    downgrade: bool = False,
) -> Cmd:
    """Fetch the packages into the package cache without installing them (pre-staging
    before any cordon, so a slow mirror never keeps a node drained). `downgrade`: as
    `install` does for a planned downgrade (apt refuses one with -y even when only
    downloading)."""
    specs = _specs(pm, packages)
    if pm == APT:
        return cmd(
            "apt-get",
            "install",
            "-y",
            "--download-only",
            "--allow-change-held-packages",
            *_allow_downgrades(downgrade),
            *_apt_options(lock_timeout),
            *specs,
            sudo=True,
            env=_APT_ENV,
        )
    return cmd(
        pm,
        _rpm_verb(downgrade),
        "-y",
        "--downloadonly",
        f"--disableexcludes={_check_repo_id(repo_id)}",
        *specs,
        sudo=True,
    )


def install(
    pm: str,
    packages: PackageVersions,
    *,
    allow_held: bool = True,
    lock_timeout: int = DEFAULT_LOCK_TIMEOUT,
    repo_id: str = DEFAULT_REPO_ID,
    downgrade: bool = False,
) -> Cmd:
    """Install exactly these versions. apt keeps existing config files (--force-confold),
    waits a bounded time for the dpkg lock, and never downgrades (apt-get -y refuses a
    downgrade without --allow-downgrades) unless `downgrade`: the packages of a planned
    downgrade hop, where apt gets --allow-downgrades and dnf/yum run `downgrade`."""
    specs = _specs(pm, packages)
    if pm == APT:
        held: list[Arg] = ["--allow-change-held-packages"] if allow_held else []
        return cmd(
            "apt-get",
            "install",
            "-y",
            *held,
            *_allow_downgrades(downgrade),
            "-o",
            "Dpkg::Options::=--force-confold",
            *_apt_options(lock_timeout),
            *specs,
            sudo=True,
            env=_APT_ENV,
        )
    return cmd(
        pm,
        _rpm_verb(downgrade),
        "-y",
        *specs,
        f"--disableexcludes={_check_repo_id(repo_id)}",
        sudo=True,
    )


def _allow_downgrades(downgrade: bool) -> list[Arg]:
    return ["--allow-downgrades"] if downgrade else []


def _rpm_verb(downgrade: bool) -> str:
    # dnf 4 and 5 would downgrade on `install NAME-VERSION` too, but yum 3 (EL7) refuses an
    # older version there; `downgrade` works on all three and refuses to raise a package.
    return "downgrade" if downgrade else "install"


def audit(pm: str) -> Cmd | None:
    """`dpkg --audit`: packages a killed or failed dpkg left unpacked or half-configured (it
    prints them and exits 0 either way, so its output is the verdict). None off apt."""
    if _check_pm(pm) != APT:
        return None
    return cmd("dpkg", "--audit", sudo=True)


def configure_pending(pm: str) -> Cmd | None:
    """`dpkg --configure -a`, keeping existing config files: finishes what an interrupted
    dpkg left. Run only when the operator asks for it. None off apt."""
    if _check_pm(pm) != APT:
        return None
    return cmd("dpkg", "--force-confold", "--configure", "-a", sudo=True, env=_APT_ENV)


def hold(pm: str, names: Iterable[str], *, versionlock: bool = False) -> Cmd | None:
    """Keep the packages at their installed version: `apt-mark hold`; on dnf/yum None (the
    repo's exclude= holds them) or `versionlock add` when the node uses versionlock."""
    checked = _names(names)
    if _check_pm(pm) == APT:
        return cmd("apt-mark", "hold", *checked, sudo=True)
    if not versionlock:
        return None
    return cmd(pm, "-y", "versionlock", "add", *checked, sudo=True)


def unhold(pm: str, names: Iterable[str], *, versionlock: bool = False) -> Cmd | None:
    """Undo `hold`: `apt-mark unhold`; on dnf/yum None, or `versionlock delete`.

    dnf's versionlock deletes by package name; yum's (yum-plugin-versionlock) matches lock
    entries (`0:kubeadm-1.28.2-0.*`), hence the `*:NAME-*` wildcard there.
    """
    checked = _names(names)
    if _check_pm(pm) == APT:
        return cmd("apt-mark", "unhold", *checked, sudo=True)
    if not versionlock:
        return None
    entries = checked if pm == DNF else [f"*:{name}-*" for name in checked]
    return cmd(pm, "-y", "versionlock", "delete", *entries, sudo=True)


def available_versions_cmd(pm: str, name: str, *, repo_id: str = DEFAULT_REPO_ID) -> Cmd:
    """List every version of a package the configured repositories serve (read-only):
    `apt-cache madison NAME` or `dnf list --showduplicates NAME --disableexcludes=ID`."""
    _check_name(name)
    if _check_pm(pm) == APT:
        return cmd("apt-cache", "madison", name, env={"LC_ALL": "C"})
    return cmd(
        pm,
        "-q",
        "list",
        "--showduplicates",
        name,
        f"--disableexcludes={_check_repo_id(repo_id)}",
        sudo=True,
        env={"LC_ALL": "C"},
    )


def _keep(found: list[PackageVersion], text: str) -> None:
    try:
        version = parse_package_version(text)
    except VersionError:
        return  # pre-releases and foreign revisions are not install targets
    if version not in found:
        found.append(version)


def parse_madison(text: str, name: str | None = None) -> list[PackageVersion]:
    """Versions from `apt-cache madison NAME` (`kubeadm | 1.28.11-1.1 | https://... Packages`),
    in the order printed (newest first). Rows that are not package versions are skipped."""
    found: list[PackageVersion] = []
    for line in text.splitlines():
        fields = [part.strip() for part in line.split("|")]
        if len(fields) != 3 or (name is not None and fields[0] != name):
            continue
        if fields[2].endswith("Sources"):
            continue
        _keep(found, fields[1])
    return found


_YUM_NAME_ARCH = re.compile(r"[A-Za-z0-9_+.-]+\.[A-Za-z0-9_]+")
_YUM_ROW = re.compile(r"(?P<name>[A-Za-z0-9_+.-]+)\.(?P<arch>[A-Za-z0-9_]+)\s+(?P<evr>\S+)\s+\S+")


def parse_showduplicates(text: str, name: str | None = None) -> list[PackageVersion]:
    """Versions from `dnf|yum list --showduplicates NAME`, installed and available, in the
    order printed. Handles rows wrapped after a long name and an explicit `0:` epoch."""
    found: list[PackageVersion] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if pending:
            stripped, pending = f"{pending} {stripped}", ""
        elif _YUM_NAME_ARCH.fullmatch(stripped) and not line[:1].isspace():
            pending = stripped  # yum wraps the rest of a long row onto the next line
            continue
        row = _YUM_ROW.fullmatch(stripped)
        if row is None or (name is not None and row.group("name") != name):
            continue
        evr = row.group("evr")
        if evr.startswith("0:"):
            evr = evr[2:]
        _keep(found, evr)
    return found


def parse_apt_policy_versions(text: str) -> list[PackageVersion]:
    """Package versions from `apt-cache policy NAME` (its version table), via the facts parser."""
    found: list[PackageVersion] = []
    for version in parse_apt_policy(text).versions:
        _keep(found, version)
    return found


def parse_available(pm: str, text: str, name: str | None = None) -> list[PackageVersion]:
    """The output of `available_versions_cmd(pm, name)` as package versions."""
    if _check_pm(pm) == APT:
        return parse_madison(text, name)
    return parse_showduplicates(text, name)


# --- repository files -------------------------------------------------------------------------

_PKGS_URL = re.compile(
    r"(?P<prefix>https?://(?:pkgs\.k8s\.io|pkgs\.kubernetes\.io|packages\.kubernetes\.io)"
    r"/core:/(?P<channel>stable|prerelease):/)v(?P<minor>[^/\s]*)(?P<suffix>/(?P<kind>deb|rpm)/)?"
)
_LEGACY = re.compile(
    r"apt\.kubernetes\.io|yum\.kubernetes\.io|packages\.cloud\.google\.com"
    r"|kubernetes-xenial|kubernetes-el7"
)
_MINOR_TEXT = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


def _active_lines(text: str) -> list[str]:
    return [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def repo_minor(pm: str, repo_text: str) -> MinorKey:
    """The pkgs.k8s.io minor an apt sources file or a yum .repo file points at, or VersionError
    (legacy repository, no pkgs.k8s.io URL, several minors, a URL without a minor)."""
    _check_pm(pm)
    kind = "deb" if pm == APT else "rpm"
    what = "apt sources file" if pm == APT else "yum repository file"
    active = _active_lines(repo_text)
    for line in active:
        if _LEGACY.search(line):
            raise VersionError(
                f"the {what} uses the legacy Kubernetes package repository"
                f" ({line.strip()!r}: apt.kubernetes.io, packages.cloud.google.com or a mirror"
                " of them), frozen since September 2023 and without per-minor repositories;"
                f" migrate the node to pkgs.k8s.io first: {MIGRATION_URL}"
            )
    minors: set[MinorKey] = set()
    for line in active:
        for match in _PKGS_URL.finditer(line):
            minor = _MINOR_TEXT.fullmatch(match.group("minor"))
            if minor is None or match.group("suffix") is None:
                raise VersionError(
                    f"the {what} has a pkgs.k8s.io URL without a usable minor version"
                    f" ({match.group(0)!r}); expected .../core:/stable:/v1.30/{kind}/"
                )
            if match.group("kind") != kind:
                raise VersionError(
                    f"the {what} points at the pkgs.k8s.io {match.group('kind')} repository;"
                    f" {pm} needs the {kind} one"
                )
            minors.add((int(minor.group(1)), int(minor.group(2))))
    if not minors:
        raise VersionError(
            f"no pkgs.k8s.io core:/stable: repository in the {what}; see {CHANGE_REPO_URL}"
        )
    if len(minors) > 1:
        listed = ", ".join(f"v{minor_text(m)}" for m in sorted(minors))
        raise VersionError(f"the {what} names several Kubernetes minors ({listed})")
    return minors.pop()


def switch_repo(pm: str, minor: MinorKey | Version, current_repo_text: str) -> str:
    """The apt sources file or yum .repo file pointed at another pkgs.k8s.io minor.

    Only the minor inside pkgs.k8s.io core URLs changes (baseurl and gpgkey alike);
    signed-by, exclude= and every other byte stay as they were. Legacy repositories
    (apt.kubernetes.io, packages.cloud.google.com and their mirrors) are refused with a
    pointer to the pkgs.k8s.io migration. Switching to the minor already configured returns
    the text unchanged.
    """
    key = minor.minor_key if isinstance(minor, Version) else minor
    if key < FIRST_PKGS_MINOR:
        raise VersionError(
            f"pkgs.k8s.io serves Kubernetes v{minor_text(FIRST_PKGS_MINOR)} and later, not"
            f" v{minor_text(key)}"
        )
    current = repo_minor(pm, current_repo_text)
    if current == key:
        return current_repo_text

    def replace(match: re.Match[str]) -> str:
        return f"{match.group('prefix')}v{minor_text(key)}{match.group('suffix')}"

    lines = current_repo_text.splitlines(keepends=True)
    out = [
        line if line.lstrip().startswith("#") else _PKGS_URL.sub(replace, line) for line in lines
    ]
    return "".join(out)


def latest(versions: Sequence[PackageVersion], minor: MinorKey | None = None) -> PackageVersion:
    """The newest package version (in one minor, when given), or VersionError if none."""
    pool = [v for v in versions if minor is None or v.minor_key == minor]
    if not pool:
        where = f" in v{minor_text(minor)}" if minor is not None else ""
        raise VersionError(f"no package versions{where}")
    return max(pool)
