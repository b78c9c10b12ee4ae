"""A node's simulated package state: what is installed and held, and the files it owns.

The record is /var/lib/nodeops-sim/packages.json in the node (its own /var/lib overlay).
On Debian-family nodes the kube packages are also written into /var/lib/dpkg/status, so
that the real dpkg-query (kept beside the simulated tools) answers for them exactly as it
does for the host's own packages.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nodeops.lab.sim import faultfiles
from nodeops.lab.sim.pkg import catalog, files
from nodeops.lab.sim.pkg.catalog import Release

SIM_DIR = "var/lib/nodeops-sim"
STATE_FILE = f"{SIM_DIR}/packages.json"
DPKG_STATUS = "var/lib/dpkg/status"
LOCK_FRONTEND = "var/lib/dpkg/lock-frontend"
# Lab fault switches, named in faultfiles; relative here, as they are read under the root.
SLOW_DOWNLOAD = str(faultfiles.SLOW_DOWNLOAD.relative_to("/"))
DPKG_INTERRUPT = str(faultfiles.DPKG_INTERRUPT.relative_to("/"))
DPKG_UPDATES = "var/lib/dpkg/updates"
# dpkg states of a package whose unpack or configure did not finish (dpkg --audit lists them).
UNFINISHED = ("half-installed", "unpacked", "half-configured", "triggers-awaited")


def sim_root() -> Path:
    """The node's root as the tools see it: / in a node, a directory in unit tests."""
    return Path(os.environ.get("NODEOPS_SIM_ROOT", "/"))


def family(root: Path) -> str:
    """ "debian" or "rhel", from the node's os-release ID and ID_LIKE."""
    text = ""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        with contextlib.suppress(OSError):
            text = (root / rel).read_text()
            break
    words: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            words += value.strip().strip('"').split()
    rhel = {"rhel", "fedora", "centos", "rocky", "almalinux"}
    return "rhel" if any(w in rhel for w in words) else "debian"


@dataclass
class Installed:
    """One installed package and the files it put on the node."""

    release: Release
    files: list[str] = field(default_factory=list)


@dataclass
class PackageState:
    """Installed kube packages and apt holds of one node (mutable while a tool runs)."""

    installed: dict[str, Installed] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    unpacked: set[str] = field(default_factory=set)  # not configured (dpkg was interrupted)


def load(root: Path) -> PackageState:
    """The node's package state (empty when nothing was ever installed)."""
    try:
        data = json.loads((root / STATE_FILE).read_text())
    except (OSError, ValueError):
        data = {}
    installed = {
        name: Installed(
            Release(name, item["upstream"], int(item["build"]), bool(item["legacy"])),
            list(item["files"]),
        )
        for name, item in data.get("installed", {}).items()
    }
    held = set(data.get("held", []))
    unpacked: set[str] = set()
    if family(root) == "debian":
        held = _dpkg_holds(root)
        unpacked = _dpkg_unfinished(root) & set(installed)
    return PackageState(installed, held, unpacked)


def _dpkg_statuses(root: Path) -> dict[str, list[str]]:
    """Kube package -> its dpkg Status words (want, error flag, state), from dpkg's status file,
    which the real `dpkg --set-selections` and `dpkg --configure -a` also edit."""
    try:
        text = (root / DPKG_STATUS).read_text()
    except OSError:
        return {}
    found: dict[str, list[str]] = {}
    for stanza in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[:1] != " "
        )
        if fields.get("Package") in catalog.PACKAGES:
            found[fields["Package"]] = fields.get("Status", "").split()
    return found


def _dpkg_holds(root: Path) -> set[str]:
    """Held kube packages per dpkg's status file."""
    return {name for name, words in _dpkg_statuses(root).items() if words[:1] == ["hold"]}


def _dpkg_unfinished(root: Path) -> set[str]:
    """Kube packages dpkg left unpacked or half-done."""
    return {
        name
        for name, words in _dpkg_statuses(root).items()
        if words[2:3] and words[2] in UNFINISHED
    }


def interrupted(root: Path) -> bool:
    """Whether dpkg was interrupted: its journal directory has pending entries (apt checks it)."""
    updates = root / DPKG_UPDATES
    with contextlib.suppress(OSError):
        return any(p.name.isdigit() for p in updates.iterdir())
    return False


def interrupt_fault(root: Path) -> bool:
    """Whether the dpkg-interrupt fault is set; it is used up by this run."""
    try:
        (root / DPKG_INTERRUPT).unlink()
    except OSError:
        return False
    return True


def record_interrupted(root: Path, state: PackageState, name: str) -> None:
    """Leave `name` unpacked and dpkg's journal pending, as a dpkg killed mid-run does."""
    state.unpacked.add(name)
    save(root, state)
    _atomic_write(root / DPKG_UPDATES / "0000", _stanza(name, state) + "\n")


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.nodeops-new")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


def save(root: Path, state: PackageState) -> None:
    """Write the record, and the kube stanzas of dpkg's status file on Debian-family nodes."""
    data = {
        "installed": {
            name: {
                "upstream": i.release.upstream,
                "build": i.release.build,
                "legacy": i.release.legacy,
                "files": i.files,
            }
            for name, i in sorted(state.installed.items())
        },
        "held": sorted(state.held),
    }
    _atomic_write(root / STATE_FILE, json.dumps(data, indent=1) + "\n")
    if family(root) == "debian":
        _write_dpkg_status(root, state)


def _stanza(name: str, state: PackageState) -> str:
    want = "hold" if name in state.held else "install"
    item = state.installed.get(name)
    if item is None:
        return f"Package: {name}\nStatus: hold ok not-installed\nArchitecture: amd64\n"
    r = item.release
    lines = [
        f"Package: {name}",
        f"Status: {want} ok {'unpacked' if name in state.unpacked else 'installed'}",
        "Priority: optional",
        "Section: admin",
        f"Installed-Size: {catalog.download_size(name) * 4 // 1024}",
        "Maintainer: Kubernetes Authors <dev@kubernetes.io>",
        f"Architecture: {catalog.DEB_ARCH}",
        f"Version: {r.deb_version}",
    ]
    deps = ", ".join(f"{n} (>= {v})" for n, v in catalog.depends(r))
    if deps:
        lines.append(f"Depends: {deps}")
    lines.append(f"Description: {catalog.DESCRIPTIONS.get(name, name)}")
    lines.append(f" {catalog.DESCRIPTIONS.get(name, name)}.")
    lines.append("Homepage: https://kubernetes.io")
    return "\n".join(lines) + "\n"


def _write_dpkg_status(root: Path, state: PackageState) -> None:
    path = root / DPKG_STATUS
    try:
        text = path.read_text()
    except OSError:
        text = ""
    ours = set(catalog.PACKAGES)
    kept = [
        s.strip("\n")
        for s in text.split("\n\n")
        if s.strip() and s.split("\n", 1)[0].removeprefix("Package: ").strip() not in ours
    ]
    names = sorted(set(state.installed) | (state.held & ours))
    stanzas = [*kept, *(_stanza(n, state).strip("\n") for n in names)]
    _atomic_write(path, "\n\n".join(stanzas) + "\n\n" if stanzas else "")
    info = root / "var/lib/dpkg/info"
    for name in catalog.PACKAGES:
        listing = info / f"{name}.list"
        sums = info / f"{name}.md5sums"
        if name in state.installed:
            owned = state.installed[name].files
            _atomic_write(listing, "".join(f"{f}\n" for f in ["/.", *owned]))
            _atomic_write(sums, _md5sums(root, owned))
        else:
            for path in (listing, sums):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _md5sums(root: Path, owned: list[str]) -> str:
    """dpkg's md5sums control file: `<md5>  <path without the leading />` per regular file."""
    lines = []
    for path in owned:
        full = root / path.lstrip("/")
        if full.is_file() and not full.is_symlink():
            lines.append(f"{hashlib.md5(full.read_bytes()).hexdigest()}  {path.lstrip('/')}\n")  # noqa: S324 - dpkg's format
    return "".join(lines)


def place(root: Path, state: PackageState, release: Release, fam: str) -> None:
    """Install (or replace) one package's files and record it."""
    old = state.installed.get(release.name)
    written = files.install(root, release, fam)
    if old is not None:
        for stale in set(old.files) - set(written):
            files.remove_path(root, stale)
    state.installed[release.name] = Installed(release, written)


def remove(root: Path, state: PackageState, name: str) -> None:
    """Remove a package's files and its record."""
    old = state.installed.pop(name, None)
    if old is not None:
        for path in old.files:
            files.remove_path(root, path)


def slow_download_seconds(root: Path) -> float:
    """The slow-download fault: seconds each download waits (env wins over the file switch)."""
    value = os.environ.get("NODEOPS_SIM_SLOW_DOWNLOAD")
    if value is None:
        try:
            value = (root / SLOW_DOWNLOAD).read_text().strip()
        except OSError:
            return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


class LockHeld(Exception):
    """The dpkg frontend lock is held by another process."""

    def __init__(self, path: str, pid: int, name: str) -> None:
        super().__init__(path, pid, name)
        self.path, self.pid, self.name = path, pid, name


# struct flock on Linux x86_64: l_type, l_whence, (pad), l_start, l_len, l_pid, (pad).
_FLOCK = "hhqqi4x"


def _holder(fd: int) -> int:
    probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    got = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
    return int(struct.unpack(_FLOCK, got)[4])


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class DpkgInterrupted(Exception):
    """dpkg's journal has pending entries: apt refuses until `dpkg --configure -a` ran."""


@contextlib.contextmanager
def frontend_lock(
    root: Path, *, wait: float = 0, waiting: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold /var/lib/dpkg/lock-frontend with an fcntl write lock, as apt and dpkg do.

    With `wait` (apt's DPkg::Lock::Timeout) it retries once a second, telling `waiting`
    "Waiting for cache lock: ..." each time, as apt's progress line does.
    """
    path = root / LOCK_FRONTEND
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o640)
    try:
        waited = 0
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                pid = _holder(fd)
                held = LockHeld(f"/{LOCK_FRONTEND}", pid, _process_name(pid))
                if waited >= wait:
                    raise held from None
                if waiting is not None:
                    waiting(
                        f"Waiting for cache lock: Could not get lock {held.path}. It is held by"
                        f" process {held.pid} ({held.name})... {waited}s"
                    )
                time.sleep(1)
                waited += 1
        if interrupted(root):
            raise DpkgInterrupted
        yield
    finally:
        os.close(fd)


def set_process_name(name: str) -> None:
    """Name this process (/proc/self/comm) like the tool it plays: apt names lock holders so."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
