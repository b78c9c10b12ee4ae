"""Package sources of a node: apt's sources lists and yum's .repo files, mapped to the catalog."""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path

from nodeops.lab.sim.pkg import catalog
from nodeops.lab.sim.pkg.catalog import Release

_PKGS_DEB = re.compile(r"https?://pkgs\.k8s\.io/core:/stable:/v(\d+\.\d+)/deb/?")
_PKGS_RPM = re.compile(r"https?://pkgs\.k8s\.io/core:/stable:/v(\d+\.\d+)/rpm/?")
_LEGACY_YUM = re.compile(r"https?://\S*/yum/repos/kubernetes-el7-(?:x86_64|\$basearch)/?")
LEGACY_SUITE = "kubernetes-xenial"


@dataclass(frozen=True)
class AptSource:
    """One `deb` line (or deb822 stanza entry): where apt fetches an index from."""

    uri: str
    suite: str
    components: tuple[str, ...] = ()
    file: str = ""

    @property
    def minor(self) -> str | None:
        """The pkgs.k8s.io minor this source is for, if it is one."""
        m = _PKGS_DEB.fullmatch(self.uri)
        return m.group(1) if m else None

    @property
    def legacy(self) -> bool:
        """Whether this is the legacy kubernetes-xenial suite (Google's or a mirror)."""
        return self.suite == LEGACY_SUITE

    @property
    def kube(self) -> bool:
        """Whether this source is a Kubernetes package repository."""
        return self.minor is not None or self.legacy

    @property
    def label(self) -> str:
        """The source as apt names it in madison/policy: `URI SUITE` or `URI` for flat repos."""
        base = self.uri.rstrip("/")
        if self.suite == "/":
            return base
        return f"{base} {self.suite}"

    def releases(self) -> tuple[Release, ...]:
        """What this source serves."""
        if self.minor is not None:
            return catalog.pkgs_releases(self.minor)
        if self.legacy:
            return catalog.legacy_releases()
        return ()


def parse_sources_list(text: str, file: str = "") -> list[AptSource]:
    """The `deb` entries of a one-line-style sources list."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        if rest.startswith("["):
            rest = rest.partition("]")[2].strip()
        words = rest.split()
        if len(words) >= 2:
            found.append(AptSource(words[0], words[1], tuple(words[2:]), file))
    return found


def parse_deb822(text: str, file: str = "") -> list[AptSource]:
    """The deb entries of a deb822 `.sources` file."""
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                found.append(
                    AptSource(uri, suite, tuple(fields.get("components", "").split()), file)
                )
    return found


def apt_sources(root: Path) -> list[AptSource]:
    """Every deb source configured under root/etc/apt, in apt's reading order."""
    etc = root / "etc/apt"
    found: list[AptSource] = []
    main = etc / "sources.list"
    if main.is_file():
        found += parse_sources_list(main.read_text(errors="replace"), str(main))
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.name.endswith(".list"):
                found += parse_sources_list(
                    path.read_text(errors="replace"), f"/{path.relative_to(root)}"
                )
            elif path.name.endswith(".sources"):
                found += parse_deb822(
                    path.read_text(errors="replace"), f"/{path.relative_to(root)}"
                )
    return found


@dataclass(frozen=True)
class YumRepo:
    """One [section] of a .repo file."""

    id: str
    name: str
    baseurl: str
    enabled: bool
    excludes: tuple[str, ...]

    @property
    def minor(self) -> str | None:
        """The pkgs.k8s.io minor this repository is for, if it is one."""
        m = _PKGS_RPM.fullmatch(self.baseurl)
        return m.group(1) if m else None

    @property
    def legacy(self) -> bool:
        """Whether this is Google's legacy kubernetes-el7 repository (or a mirror of it)."""
        return _LEGACY_YUM.fullmatch(self.baseurl) is not None

    def releases(self) -> tuple[Release, ...]:
        """What this repository serves."""
        if self.minor is not None:
            return catalog.pkgs_releases(self.minor)
        if self.legacy:
            return catalog.legacy_releases()
        return ()


_FALSE = {"0", "no", "false", "off"}


def _excludes(value: str) -> tuple[str, ...]:
    return tuple(p for p in re.split(r"[\s,]+", value) if p)


def parse_repo_file(text: str) -> list[YumRepo]:
    """The sections of a yum/dnf .repo file."""
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return []
    repos = []
    for section in parser.sections():
        opts = parser[section]
        excludes = _excludes(opts.get("exclude", "")) + _excludes(opts.get("excludepkgs", ""))
        repos.append(
            YumRepo(
                id=section,
                name=opts.get("name", section),
                baseurl=opts.get("baseurl", "").split()[0] if opts.get("baseurl") else "",
                enabled=opts.get("enabled", "1").strip().lower() not in _FALSE,
                excludes=excludes,
            )
        )
    return repos


def yum_repos(root: Path) -> list[YumRepo]:
    """Every repository under root/etc/yum.repos.d, in file and section order."""
    found: list[YumRepo] = []
    d = root / "etc/yum.repos.d"
    if d.is_dir():
        for path in sorted(d.glob("*.repo")):
            found += parse_repo_file(path.read_text(errors="replace"))
    return found


def main_excludes(root: Path) -> tuple[str, ...]:
    """exclude= of the [main] section of dnf.conf (or yum.conf)."""
    for rel in ("etc/dnf/dnf.conf", "etc/yum.conf"):
        path = root / rel
        if path.is_file():
            parser = configparser.RawConfigParser(strict=False)
            try:
                parser.read_string(path.read_text(errors="replace"))
            except configparser.Error:
                continue
            if parser.has_section("main"):
                opts = parser["main"]
                return _excludes(opts.get("exclude", "")) + _excludes(opts.get("excludepkgs", ""))
    return ()
