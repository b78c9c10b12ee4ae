"""Package probes: installed kube package versions, holds, excludes and version locks."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from nodeops.cmd import Raw
from nodeops.facts.script import Probe, needs, show_files, split_files

CORE_PACKAGES = ("kubeadm", "kubelet", "kubectl")
KUBE_PACKAGES = (*CORE_PACKAGES, "cri-tools", "kubernetes-cni")

# dpkg-query and rpm expand \t and \n in their formats themselves.
DPKG_FORMAT = "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"
RPM_FORMAT = "%{NAME}\\t%{VERSION}-%{RELEASE}\\n"
YUM_CONFIG_FILES = ("/etc/dnf/dnf.conf", "/etc/yum.conf")
YUM_REPO_GLOB = "/etc/yum.repos.d/*.repo"

PACKAGES_DPKG = Probe(
    "packages_dpkg",
    needs("dpkg-query", "dpkg-query", "-W", f"--showformat={DPKG_FORMAT}", *KUBE_PACKAGES),
)
PACKAGES_RPM = Probe(
    "packages_rpm", needs("rpm", "rpm", "-q", "--queryformat", RPM_FORMAT, *KUBE_PACKAGES)
)
YUM_EXCLUDES = Probe("yum_excludes", show_files(*YUM_CONFIG_FILES, Raw(YUM_REPO_GLOB)))
# -C: from the cache only, so listing locks never reaches the network.
# The versionlock plugins' own lock files, read directly: `dnf versionlock list` would start
# dnf (about a second of Python on a real node) just to print the same lines.
VERSIONLOCK_FILES = (
    "/etc/dnf/plugins/versionlock.list",  # dnf 4
    "/etc/yum/pluginconf.d/versionlock.list",  # yum 3
    "/etc/dnf/versionlock.toml",  # dnf 5
)
VERSIONLOCK = Probe("versionlock", show_files(*VERSIONLOCK_FILES))


@dataclass(frozen=True)
class PackageQuery:
    """What dpkg or rpm said about the kube packages: installed versions, holds, odd lines."""

    versions: dict[str, str]
    held: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()


# dpkg's db:Status-Abbrev is want, status, error flag. Status i (installed), W and t
# (triggers awaited or pending) mean installed; H, U and F mean a broken install.
_DPKG_INSTALLED = frozenset("iWt")
_DPKG_BROKEN = {"H": "half-installed", "U": "unpacked", "F": "half-configured"}
_DPKG_NOT_FOUND = re.compile(r"dpkg-query: no packages found matching \S+")
_RPM_NOT_INSTALLED = re.compile(r"package \S+ is not installed")


def parse_dpkg_query(text: str) -> PackageQuery:
    """Parse `dpkg-query -W --showformat='${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'`."""
    versions: dict[str, str] = {}
    held: set[str] = set()
    problems: list[str] = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[0] and len(fields[2].strip()) >= 2:
            name, version, abbrev = fields[0], fields[1].strip(), fields[2]
            want, status = abbrev[0], abbrev[1]
            if want == "h":
                held.add(name)
            if status in _DPKG_INSTALLED and version:
                versions[name] = version
            elif status in _DPKG_BROKEN:
                problems.append(f"{name} {version} is {_DPKG_BROKEN[status]} (dpkg {abbrev!r})")
        elif line.strip() and not _DPKG_NOT_FOUND.fullmatch(line.strip()):
            problems.append(line.strip())
    return PackageQuery(versions, frozenset(held), tuple(problems))


def parse_rpm_query(text: str) -> PackageQuery:
    """Parse `rpm -q --queryformat '%{NAME}\\t%{VERSION}-%{RELEASE}\\n' NAME...`."""
    versions: dict[str, str] = {}
    problems: list[str] = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 2 and fields[0] and fields[1].strip():
            name, version = fields[0], fields[1].strip()
            if name in versions and versions[name] != version:
                problems.append(f"{name}: several versions installed ({versions[name]}, {version})")
            versions[name] = version
        elif line.strip() and not _RPM_NOT_INSTALLED.fullmatch(line.strip()):
            problems.append(line.strip())
    return PackageQuery(versions, frozenset(), tuple(problems))


def parse_repo_excludes(content: str) -> tuple[str, ...]:
    """The exclude= (or excludepkgs=) patterns of one yum/dnf .conf or .repo file.

    Continuation lines (indented) extend the option above them; patterns are separated by
    blanks or commas. Sections with `enabled=0` are skipped: a disabled repository's
    exclude keeps nothing from being installed.
    """
    sections: list[tuple[dict[str, str], str]] = []
    options: dict[str, str] = {}
    current = ""
    last: str | None = None
    for line in content.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if line[:1].isspace() and last is not None:
            options[last] += " " + stripped
            continue
        section = _INI_SECTION.fullmatch(stripped)
        if section:
            sections.append((options, current))
            options, current, last = {}, section.group(1), None
            continue
        option = _INI_OPTION.fullmatch(stripped)
        if option:
            last = option.group(1).lower()
            if last in options and last in _EXCLUDE_KEYS:
                options[last] += " " + option.group(2)
            else:
                options[last] = option.group(2)
    sections.append((options, current))
    patterns: list[str] = []
    for opts, _name in sections:
        if opts.get("enabled", "1").strip().lower() in _FALSE:
            continue
        for key in sorted(_EXCLUDE_KEYS):
            patterns += [p for p in re.split(r"[\s,]+", opts.get(key, "")) if p]
    return tuple(patterns)


_INI_SECTION = re.compile(r"\[([^\]]*)\]")
_INI_OPTION = re.compile(r"([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)")
_EXCLUDE_KEYS = frozenset({"exclude", "excludepkgs"})
_FALSE = frozenset({"0", "no", "false", "off"})


def parse_yum_excludes(text: str) -> dict[str, tuple[str, ...]]:
    """Exclude patterns by file from the yum_excludes probe (files that have any)."""
    found: dict[str, tuple[str, ...]] = {}
    for path, content in split_files(text).items():
        patterns = parse_repo_excludes(content)
        if patterns:
            found[path] = patterns
    return found


def excluded_packages(
    patterns: Iterable[str], names: Iterable[str] = KUBE_PACKAGES
) -> frozenset[str]:
    """The names that any exclude pattern (a shell glob such as `kube*`) matches."""
    globs = list(patterns)
    return frozenset(name for name in names if any(fnmatchcase(name, g) for g in globs))


def parse_versionlock(text: str, names: Iterable[str] = KUBE_PACKAGES) -> frozenset[str]:
    """Locked (or lock-excluded) package names from the versionlock files or `versionlock list`.

    Entries look like `kubelet-0:1.28.2-150500.1.1.*` (dnf 4), `0:kubelet-1.11.2-0.*`
    (yum), `!kubelet-...` (excluded), `Package name: kubelet` (dnf 5's list) or
    `name = "kubelet"` (dnf 5's versionlock.toml).
    """
    wanted = list(names)
    locked: set[str] = set()
    for line in text.splitlines():
        entry = line.strip()
        dnf5 = re.fullmatch(r"Package name:\s*(\S+)", entry) or re.fullmatch(
            r"name\s*=\s*[\"']([^\"']+)[\"']", entry
        )
        if dnf5:
            if dnf5.group(1) in wanted:
                locked.add(dnf5.group(1))
            continue
        for name in wanted:
            if re.match(rf"!?(?:\d+:)?{re.escape(name)}-(?:\d+:)?\d", entry):
                locked.add(name)
    return frozenset(locked)


@dataclass(frozen=True)
class AptPolicy:
    """What `apt-cache policy PACKAGE` says: installed and candidate versions, known versions."""

    installed: str | None
    candidate: str | None
    versions: tuple[str, ...]


_POLICY_VERSION = re.compile(r"\s*(?:\*\*\*)?\s+(\S+) (-?\d+)")


def parse_apt_policy(text: str) -> AptPolicy:
    """Parse `apt-cache policy PACKAGE` output (also a grep'd excerpt of its version table)."""
    installed = candidate = None
    versions: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Installed:"):
            value = stripped.partition(":")[2].strip()
            installed = None if value in {"", "(none)"} else value
        elif stripped.startswith("Candidate:"):
            value = stripped.partition(":")[2].strip()
            candidate = None if value in {"", "(none)"} else value
        else:
            match = _POLICY_VERSION.fullmatch(line)
            # Version rows: "     1.11.2-00 500" or " *** 1.11.2-00 500"; origin rows
            # ("        500 http://...") have a priority first and are skipped by fullmatch.
            if match and not match.group(1).isdigit() and match.group(1) not in versions:
                versions.append(match.group(1))
    return AptPolicy(installed, candidate, tuple(versions))
