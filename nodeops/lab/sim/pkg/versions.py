"""Version order and version patterns as dpkg/apt and rpm/dnf see them (pure)."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from nodeops.lab.sim.pkg.catalog import RPM_ARCH, Release


def _order(c: str) -> int:
    # dpkg's order(): ~ sorts before everything, even the end of the string; letters before others
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256 if c else 0


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_deb(version: str) -> tuple[int, str, str]:
    epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch or 0), upstream, revision


def deb_compare(a: str, b: str) -> int:
    """dpkg's version comparison: negative, zero or positive."""
    ea, ua, ra = _split_deb(a)
    eb, ub, rb = _split_deb(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def _rpm_segments(text: str) -> list[str]:
    return re.findall(r"\d+|[A-Za-z]+", text)


def rpm_vercmp(a: str, b: str) -> int:
    """rpm's rpmvercmp on one field (version or release); tilde handling left out."""
    if a == b:
        return 0
    sa, sb = _rpm_segments(a), _rpm_segments(b)
    for x, y in zip(sa, sb, strict=False):
        if x.isdigit() != y.isdigit():
            return 1 if x.isdigit() else -1
        if x.isdigit():
            diff = int(x) - int(y)
            if diff:
                return diff
        elif x != y:
            return -1 if x < y else 1
    return len(sa) - len(sb)


def rpm_compare(a: Release, b: Release) -> int:
    """Order two releases as rpm does: version, then release."""
    return rpm_vercmp(a.upstream, b.upstream) or rpm_vercmp(a.rpm_release, b.rpm_release)


def deb_matches(pattern: str, version: str) -> bool:
    """Whether apt's `pkg=VERSION` selects version; apt matches VERSION as a glob."""
    return fnmatchcase(version, pattern)


def rpm_forms(release: Release, arch: str = RPM_ARCH) -> tuple[str, ...]:
    """The spellings dnf accepts for a package (NEVRA forms without and with the epoch)."""
    n, v, r = release.name, release.upstream, release.rpm_release
    return (
        n,
        f"{n}.{arch}",
        f"{n}-{v}",
        f"{n}-{v}-{r}",
        f"{n}-{v}-{r}.{arch}",
        f"{n}-0:{v}-{r}",
        f"{n}-0:{v}-{r}.{arch}",
        f"{n}-0:{v}",
    )


def rpm_matches(spec: str, release: Release) -> bool:
    """Whether a dnf/yum package spec (`kubeadm-1.30.2`, `'kubeadm-1.30.2-*'`) names release."""
    return any(fnmatchcase(form, spec) for form in rpm_forms(release))


def spec_names(spec: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The package names a dnf spec could be about (for filtering and error messages)."""
    return tuple(
        n
        for n in names
        if fnmatchcase(n, spec) or spec.startswith(n + "-") or spec.startswith(n + ".")
    )
