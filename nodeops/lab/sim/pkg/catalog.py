"""What the Kubernetes package repositories serve: versions per minor, per repository flavour.

pkgs.k8s.io has one repository per minor (`core:/stable:/v1.30/deb/`, `.../rpm/`) serving
only that minor's patches, deb revision `-1.1` and rpm release `-150500.1.1`; a handful of
patches were rebuilt once (revision `-2.1`). The legacy Google-hosted repositories
(apt.kubernetes.io `kubernetes-xenial`, packages.cloud.google.com `kubernetes-el7-x86_64`)
serve every minor side by side with revision `-00` (rpm `-0`); they were frozen on
2023-09-13 and nothing newer was published there.

The patch lists are those published up to CATALOG_DATE.
"""

from __future__ import annotations

from dataclasses import dataclass

CATALOG_DATE = "2025-09-09"
LEGACY_FREEZE_DATE = "2023-09-13"
MINORS = tuple(f"1.{m}" for m in range(27, 34))
KUBE = ("kubeadm", "kubelet", "kubectl")
PACKAGES = (*KUBE, "cri-tools", "kubernetes-cni")

# Highest patch per minor published on pkgs.k8s.io by CATALOG_DATE.
_LAST_PATCH = {"1.27": 16, "1.28": 15, "1.29": 15, "1.30": 14, "1.31": 13, "1.32": 9, "1.33": 5}
# Patches re-released with build revision 2 (deb -2.1, rpm -150500.2.1) in April 2024.
_REBUILT = frozenset({"1.27.13", "1.28.9", "1.29.4"})
# cri-tools and kubernetes-cni versions (upstream version, build) in each minor's repository.
_CRI_TOOLS = {
    "1.27": (("1.27.1", 1),),
    "1.28": (("1.28.0", 1),),
    "1.29": (("1.29.0", 1),),
    "1.30": (("1.30.0", 1), ("1.30.1", 1)),
    "1.31": (("1.31.0", 1), ("1.31.1", 1)),
    "1.32": (("1.32.0", 1),),
    "1.33": (("1.33.0", 1),),
}
_CNI = {
    "1.27": (("1.2.0", 2),),
    "1.28": (("1.2.0", 2),),
    "1.29": (("1.3.0", 1),),
    "1.30": (("1.4.0", 1),),
    "1.31": (("1.5.1", 1),),
    "1.32": (("1.6.0", 1),),
    "1.33": (("1.6.0", 1),),
}
# Legacy repositories at their freeze: the newest patch of each minor they carried.
_LEGACY_LAST = {"1.24": 17, "1.25": 14, "1.26": 9, "1.27": 6, "1.28": 2}
_LEGACY_CRI_TOOLS = ("1.24.2", "1.25.0", "1.26.0")
_LEGACY_CNI = ("1.1.1", "1.2.0")

PKGS_HOST = "pkgs.k8s.io"
# Where pkgs.k8s.io redirects downloads; apt prints this URI in its Hit/Get lines.
PKGS_CDN = "https://prod-cdn.packages.k8s.io/repositories/isv:/kubernetes:/core:/stable:"
DEB_ARCH = "amd64"
RPM_ARCH = "x86_64"


@dataclass(frozen=True, order=True)
class Release:
    """One package version a repository serves: upstream version plus deb/rpm revision."""

    name: str
    upstream: str  # "1.30.2"
    build: int = 1  # 1 -> "-1.1" / "-150500.1.1"; 0 -> the legacy "-00" / "-0"
    legacy: bool = False

    @property
    def deb_version(self) -> str:
        """The Debian version string (`1.30.2-1.1`, legacy `1.28.2-00`)."""
        return f"{self.upstream}-00" if self.legacy else f"{self.upstream}-{self.build}.1"

    @property
    def rpm_release(self) -> str:
        """The RPM release (`150500.1.1`, legacy `0`)."""
        return "0" if self.legacy else f"150500.{self.build}.1"

    @property
    def rpm_evr(self) -> str:
        """VERSION-RELEASE as rpm and dnf print it (`1.30.2-150500.1.1`)."""
        return f"{self.upstream}-{self.rpm_release}"


def patches(minor: str) -> tuple[str, ...]:
    """The Kubernetes patch versions of a minor that pkgs.k8s.io serves ("1.30" -> 1.30.0..)."""
    last = _LAST_PATCH.get(minor)
    return () if last is None else tuple(f"{minor}.{p}" for p in range(last + 1))


def latest_patch(minor: str) -> str | None:
    """The newest patch of a minor in the catalog."""
    found = patches(minor)
    return found[-1] if found else None


def minor_of(version: str) -> str:
    """ "1.30.2" (or "v1.30.2", "1.30.2-1.1") -> "1.30"."""
    parts = version.lstrip("v").split(".")
    return ".".join(parts[:2])


def pkgs_releases(minor: str) -> tuple[Release, ...]:
    """Every package version in pkgs.k8s.io's repository for one minor (empty if none)."""
    found: list[Release] = []
    for version in patches(minor):
        build = 2 if version in _REBUILT else 1
        found += [Release(name, version, build) for name in KUBE]
    found += [Release("cri-tools", v, b) for v, b in _CRI_TOOLS.get(minor, ())]
    found += [Release("kubernetes-cni", v, b) for v, b in _CNI.get(minor, ())]
    return tuple(found)


def legacy_releases() -> tuple[Release, ...]:
    """Every package version the frozen legacy repositories serve (a subset: 1.24 and later)."""
    found: list[Release] = []
    for minor, last in _LEGACY_LAST.items():
        for p in range(last + 1):
            found += [Release(name, f"{minor}.{p}", 0, legacy=True) for name in KUBE]
    found += [Release("cri-tools", v, 0, legacy=True) for v in _LEGACY_CRI_TOOLS]
    found += [Release("kubernetes-cni", v, 0, legacy=True) for v in _LEGACY_CNI]
    return tuple(found)


def depends(release: Release) -> tuple[tuple[str, str], ...]:
    """What a package requires, as (name, minimum upstream version).

    kubeadm needs cri-tools of its own minor in the pkgs.k8s.io packages, which is why
    upgrading kubeadm also upgrades cri-tools; kubelet needs kubernetes-cni.
    """
    if release.name == "kubeadm":
        minor = minor_of(release.upstream)
        tools = _CRI_TOOLS.get(minor, ())
        if release.legacy or not tools:
            return (("cri-tools", "1.13.0"),)
        return (("cri-tools", tools[0][0]),)
    if release.name == "kubelet":
        return (("kubernetes-cni", "1.1.1"),)
    return ()


# Approximate download sizes (bytes) as the real repositories list them.
_SIZES = {
    "kubeadm": 10_400_000,
    "kubelet": 19_900_000,
    "kubectl": 10_500_000,
    "cri-tools": 21_300_000,
    "kubernetes-cni": 31_400_000,
}


def download_size(name: str) -> int:
    """The size of a package file, roughly as the repositories serve it."""
    return _SIZES.get(name, 1_000_000)


DESCRIPTIONS = {
    "kubeadm": "Command-line utility for administering a Kubernetes cluster",
    "kubelet": "Node agent for Kubernetes clusters",
    "kubectl": "Command-line utility for interacting with a Kubernetes cluster",
    "cri-tools": "Command-line utility for interacting with a container runtime",
    "kubernetes-cni": "Binaries required to provision kubernetes container networking",
}
