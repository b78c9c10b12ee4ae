"""OS images: the files that make a node look like Ubuntu, Debian or Rocky Linux.

An image is written into the node's overlay upper directories: its os-release and release
files, the simulated package tools and systemctl of its family (nodeops.lab.stubs), and
overlay whiteouts (0:0 character devices) that hide the host's tools of the other package
family and the host's own kube binaries. The texts live in images/ beside this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nodeops.lab import stubs
from nodeops.lab.overlay import make_dirs, whiteout

IMAGES_DIR = Path(__file__).resolve().parent / "images"

# The host's Debian package tools and data, hidden on RHEL-family nodes (relative to their root).
_DEBIAN_TOOL_GLOBS = (
    "usr/bin/apt",
    "usr/bin/apt-*",
    "usr/bin/dpkg",
    "usr/bin/dpkg-*",
    "usr/sbin/apt*",
    "usr/sbin/dpkg*",
    "usr/lib/apt",
    "usr/lib/dpkg",
)
_DEBIAN_DATA = (
    "etc/apt",
    "etc/dpkg",
    "etc/debian_version",
    "etc/lsb-release",
    "var/lib/apt",
    "var/lib/dpkg",
)
_RHEL_DATA = (
    "etc/redhat-release",
    "etc/rocky-release",
    "etc/system-release",
    "etc/yum.repos.d",
    "etc/dnf",
    "var/lib/rpm",
    "var/lib/dnf",
)


@dataclass(frozen=True)
class OsImage:
    """What a node running this OS has of its own."""

    name: str
    family: str  # "debian" (apt, dpkg) or "rhel" (dnf, yum, rpm)
    etc_files: dict[str, str] = field(default_factory=dict)  # /etc path -> text (or images/ file)
    etc_links: dict[str, str] = field(default_factory=dict)  # /etc path -> symlink target


IMAGES = {
    "ubuntu-22.04": OsImage(
        "ubuntu-22.04",
        "debian",
        {"debian_version": "bookworm/sid\n", "lsb-release": "@ubuntu-22.04.lsb-release"},
    ),
    "ubuntu-24.04": OsImage(
        "ubuntu-24.04",
        "debian",
        {"debian_version": "trixie/sid\n", "lsb-release": "@ubuntu-24.04.lsb-release"},
    ),
    "debian-12": OsImage("debian-12", "debian", {"debian_version": "12.8\n"}),
    "rocky-9": OsImage(
        "rocky-9",
        "rhel",
        {"rocky-release": "Rocky Linux release 9.3 (Blue Onyx)\n"},
        {"redhat-release": "rocky-release", "system-release": "rocky-release"},
    ),
}


def os_release(os_name: str) -> str:
    """The /usr/lib/os-release text of an OS image."""
    return (IMAGES_DIR / f"{os_name}.os-release").read_text()


def install(os_name: str, upper: dict[str, Path], host_root: Path = Path("/")) -> None:
    """Write an OS image into a node's upper directories, keyed "etc", "usr" and "var/lib"."""
    image = IMAGES[os_name]

    def place(rel: str) -> Path:
        top = next(t for t in sorted(upper, key=len, reverse=True) if rel.startswith(t + "/"))
        parent = Path(rel).parent
        make_dirs(upper[top], host_root / top, str(parent.relative_to(top)))
        return upper[top] / Path(rel).relative_to(top)

    def write(rel: str, text: str) -> None:
        path = place(rel)
        path.write_text(text)
        path.chmod(0o644)

    write("usr/lib/os-release", os_release(os_name))
    os.symlink("../usr/lib/os-release", place("etc/os-release"))
    for name, text in image.etc_files.items():
        if text.startswith("@"):
            text = (IMAGES_DIR / text[1:]).read_text()
        write(f"etc/{name}", text)
    for name, target in image.etc_links.items():
        os.symlink(target, place(f"etc/{name}"))

    taken = {f"etc/{n}" for n in [*image.etc_files, *image.etc_links]}
    stubs.install_tools(image.family, upper["usr"])
    if image.family == "rhel":
        hidden = [
            str(p.relative_to(host_root)) for g in _DEBIAN_TOOL_GLOBS for p in host_root.glob(g)
        ]
        hidden += list(_DEBIAN_DATA)
    else:
        hidden = [f"usr/{rel}" for rel in stubs.RHEL_TOOL_NAMES] + list(_RHEL_DATA)
        _install_dpkg_status(place, host_root)
    hidden += list(stubs.KUBE_BINARIES)
    for rel in sorted(set(hidden) - taken):
        path = place(rel)
        if os.path.lexists(host_root / rel) and not os.path.lexists(path):
            whiteout(path)


def _install_dpkg_status(place: Callable[[str], Path], host_root: Path) -> None:
    """Give the node a dpkg database without the host's kube packages (it starts with none)."""
    status = host_root / "var/lib/dpkg/status"
    if status.is_file():
        text = status.read_text(errors="surrogateescape")
        path = place("var/lib/dpkg/status")
        path.write_text(stubs.without_kube_packages(text), errors="surrogateescape")
        path.chmod(0o644)
