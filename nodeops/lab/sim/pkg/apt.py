"""Simulated apt-get, apt, apt-mark and apt-cache for the kube packages of a lab node.

Run as `python -m nodeops.lab.sim.pkg.apt TOOL ARGS...` by the wrappers at /usr/bin/TOOL.
Package indexes come from the catalog for the sources configured in /etc/apt (pkgs.k8s.io
per minor, the legacy kubernetes-xenial suite); `apt-get update` records which sources were
fetched, and only those are visible until the next update, as with apt's lists. Packages
other than the kube ones cannot be installed (the lab has no distribution mirror).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from nodeops.lab.sim.pkg import catalog, state
from nodeops.lab.sim.pkg.catalog import Release
from nodeops.lab.sim.pkg.repos import AptSource, apt_sources
from nodeops.lab.sim.pkg.versions import deb_compare, deb_matches

# The wrappers at /usr/bin/TOOL name the tool they stand for in this variable.
TOOL_ENV = "NODEOPS_SIM_TOOL"
LISTS_FILE = f"{state.SIM_DIR}/apt-lists.json"
ARCHIVES = "var/cache/apt/archives"
LOCK_NOTE = "N: Be aware that removing the lock file is not a solution and may break your system."


class AptError(Exception):
    """An error apt reports with `E:` and exit code 100."""


@dataclass(frozen=True)
class Candidate:
    """A package version some configured source offers."""

    release: Release
    source: AptSource


def _fetched(root: Path) -> set[tuple[str, str]]:
    try:
        data = json.loads((root / LISTS_FILE).read_text())
    except (OSError, ValueError):
        return set()
    return {(u, s) for u, s in data.get("fetched", [])}


def visible(root: Path) -> list[Candidate]:
    """Every kube package version in the indexes apt has (configured and fetched sources)."""
    fetched = _fetched(root)
    found = []
    for src in apt_sources(root):
        if src.kube and (src.uri, src.suite) in fetched:
            found += [Candidate(r, src) for r in src.releases()]
    return found


def versions_of(root: Path, name: str) -> list[Candidate]:
    """The versions of one package apt knows, newest first (one entry per version)."""
    seen: dict[str, Candidate] = {}
    for c in visible(root):
        if c.release.name == name:
            seen.setdefault(c.release.deb_version, c)
    return sorted(
        seen.values(),
        key=lambda c: _Key(c.release.deb_version),
        reverse=True,
    )


class _Key:
    def __init__(self, version: str) -> None:
        self.version = version

    def __lt__(self, other: _Key) -> bool:
        return deb_compare(self.version, other.version) < 0


def _release_label(src: AptSource) -> str:
    """How apt names a source's Release file (origin:label) in `Selected version` lines."""
    if src.minor is not None:
        return f"isv:kubernetes:core:stable:v{src.minor}:pkgs.k8s.io"
    return f"kubernetes-xenial:{src.suite}"


def _cdn_uri(src: AptSource) -> str:
    """The URI apt names in Hit/Get lines: where the repository redirects to."""
    if src.minor is not None:
        return f"{catalog.PKGS_CDN}/v{src.minor}/deb"
    if re.fullmatch(r"https?://apt\.kubernetes\.io/?", src.uri):
        return "https://packages.cloud.google.com/apt"
    return src.uri.rstrip("/")


def _index_line(src: AptSource) -> str:
    """How apt names a source's package index in policy and madison."""
    if src.suite == "/":
        return f"{src.uri.rstrip('/')}  Packages"
    comp = src.components[0] if src.components else ""
    return f"{src.uri.rstrip('/')} {src.suite}/{comp} {catalog.DEB_ARCH} Packages"


def size_str(n: float) -> str:
    """apt's SizeToStr: `1,189 B`, `11.2 kB`, `7,672 kB`, `12.2 MB`."""
    units = ("B", "kB", "MB", "GB", "TB")
    value = float(n)
    for i, unit in enumerate(units):
        if value < 100 and i != 0:
            return f"{value:,.1f} {unit}"
        if value < 10000 or i == len(units) - 1:
            return f"{value:,.0f} {unit}"
        value /= 1000
    return f"{value:,.0f} TB"


class Apt:
    """One run of an apt tool on a node root."""

    def __init__(self, root: Path, out: TextIO, err: TextIO) -> None:
        self.root, self.out, self.err = root, out, err
        self.quiet = 0
        self.config: dict[str, str] = {}  # -o Key=Value (apt's keys are case-insensitive)
        self.tool = "apt-get"

    def keeps_downloaded_packages(self) -> bool:
        """APT::Keep-Downloaded-Packages: apt-get keeps fetched .debs in the archives cache;
        the `apt` binary defaults it to false (Binary::apt) and deletes them once installed."""
        default = "false" if self.tool == "apt" else "true"
        value = self.config.get("apt::keep-downloaded-packages", default)
        return value.lower() in ("1", "true", "yes", "on")

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """dpkg's frontend lock, waiting DPkg::Lock::Timeout seconds for it as apt does."""
        try:
            wait = int(self.config.get("dpkg::lock::timeout", "0"))
        except ValueError:
            wait = 0
        return state.frontend_lock(self.root, wait=wait, waiting=lambda line: self.say(line, 1))

    def say(self, text: str, level: int = 2) -> None:
        """Print unless -qq (quiet level 2) silenced it; -q only drops progress meters."""
        if self.quiet < level:
            print(text, file=self.out)

    # --- apt-get update ---------------------------------------------------------------
    def update(self) -> int:
        """apt-get update: fetch (simulated) the indexes of every configured source."""
        fetched = _fetched(self.root)
        now: set[tuple[str, str]] = set()
        total = 0
        item = 0
        for src in apt_sources(self.root):
            item += 1
            key = (src.uri, src.suite)
            dist = src.suite if src.suite != "/" else ""
            if src.minor is not None and not catalog.patches(src.minor):
                # pkgs.k8s.io has no such minor: it answers 403 before any redirect
                self.say(f"Err:{item} {src.uri.rstrip('/')}  InRelease")
                self.say("  403  Forbidden [IP: 127.0.0.1 443]")
                print(
                    f"E: Failed to fetch {src.uri.rstrip('/')}/InRelease  403  Forbidden"
                    " [IP: 127.0.0.1 443]",
                    file=self.err,
                )
                print(
                    f"E: The repository '{src.uri.rstrip('/')}  InRelease' is not signed.",
                    file=self.err,
                )
                print(
                    "N: Updating from such a repository can't be done securely,"
                    " and is therefore disabled by default.",
                    file=self.err,
                )
                print(
                    "N: See apt-secure(8) manpage for repository creation and user"
                    " configuration details.",
                    file=self.err,
                )
                continue
            now.add(key)
            if key in fetched or not src.kube:
                self.say(f"Hit:{item} {_cdn_uri(src)} {dist} InRelease")
            else:
                size = 900 * len(src.releases())
                total += 1_189 + size
                self.say(f"Get:{item} {_cdn_uri(src)} {dist} InRelease [{size_str(1_189)}]")
                item += 1
                self.say(f"Get:{item} {_cdn_uri(src)} {dist} Packages [{size_str(size)}]")
        if total:
            self.say(f"Fetched {size_str(total)} in 0s ({size_str(total)}/s)")
        self.say("Reading package lists... Done")
        path = self.root / LISTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"fetched": sorted(now)}) + "\n")
        return (
            100
            if any(
                s.minor is not None and not catalog.patches(s.minor) for s in apt_sources(self.root)
            )
            else 0
        )

    # --- apt-get install --------------------------------------------------------------
    def resolve(self, specs: Sequence[str]) -> list[Candidate]:
        """Map `name`, `name=version` (globs allowed) to the versions to install."""
        chosen: list[Candidate] = []
        installed = state.load(self.root).installed
        for spec in specs:
            name, eq, pattern = spec.partition("=")
            known = versions_of(self.root, name)
            # apt knows installed packages from dpkg's status even when no index has them
            if name not in catalog.PACKAGES or not (known or name in installed):
                raise AptError(f"Unable to locate package {name}")
            if not eq and not known:
                raise AptError(f"Package '{name}' has no installation candidate")
            if eq:
                match = [c for c in known if deb_matches(pattern, c.release.deb_version)]
                if not match:
                    raise AptError(f"Version '{pattern}' for '{name}' was not found")
                if match[0].release.deb_version != pattern:
                    self.say(
                        f"Selected version '{match[0].release.deb_version}'"
                        f" ({_release_label(match[0].source)} [{catalog.DEB_ARCH}]) for '{name}'"
                    )
                chosen.append(match[0])
            else:
                chosen.append(known[0])
        return chosen

    def install(self, specs: Sequence[str], opts: set[str]) -> int:
        """apt-get install."""
        self.say("Reading package lists... Done")
        self.say("Building dependency tree... Done")
        self.say("Reading state information... Done")
        st = state.load(self.root)
        wanted = self.resolve(specs)
        plan: dict[str, Candidate] = {c.release.name: c for c in wanted}
        extra: list[str] = []
        for c in list(plan.values()):
            for dep, minimum in catalog.depends(c.release):
                if dep in plan:
                    continue
                have = st.installed.get(dep)
                if have and deb_compare(have.release.upstream, minimum) >= 0:
                    continue
                options = [
                    d
                    for d in versions_of(self.root, dep)
                    if deb_compare(d.release.upstream, minimum) >= 0
                ]
                if options:
                    plan[dep] = options[0]
                    extra.append(dep)
        return self._apply(st, plan, extra, opts)

    def upgrade(self, opts: set[str]) -> int:
        """apt-get upgrade: every installed kube package to its candidate, held ones kept back."""
        self.say("Reading package lists... Done")
        self.say("Building dependency tree... Done")
        self.say("Reading state information... Done")
        self.say("Calculating upgrade... Done")
        st = state.load(self.root)
        plan: dict[str, Candidate] = {}
        kept: list[str] = []
        for name, item in sorted(st.installed.items()):
            known = versions_of(self.root, name)
            if known and deb_compare(known[0].release.deb_version, item.release.deb_version) > 0:
                if name in st.held:
                    kept.append(name)
                else:
                    plan[name] = known[0]
        return self._apply(st, plan, [], opts, kept)

    def _apply(
        self,
        st: state.PackageState,
        plan: dict[str, Candidate],
        extra: list[str],
        opts: set[str],
        kept: Sequence[str] = (),
    ) -> int:
        """Print what a plan changes, refuse what apt refuses, then fetch and unpack."""
        new: list[str] = []
        upgrade: list[str] = []
        downgrade: list[str] = []
        same: list[str] = []
        for name, c in plan.items():
            have = st.installed.get(name)
            if have is None:
                new.append(name)
                continue
            cmp = deb_compare(c.release.deb_version, have.release.deb_version)
            (upgrade if cmp > 0 else downgrade if cmp < 0 else same).append(name)
        for name in same:
            self.say(f"{name} is already the newest version ({plan[name].release.deb_version}).")
            del plan[name]
        held = sorted(n for n in plan if n in st.held and n in st.installed)
        if kept:
            self.say("The following packages have been kept back:")
            self.say("  " + " ".join(kept))
        if extra:
            self.say("The following additional packages will be installed:")
            self.say("  " + " ".join(sorted(extra)))
        if held:
            self.say("The following held packages will be changed:")
            self.say("  " + " ".join(held))
        if new:
            self.say("The following NEW packages will be installed:")
            self.say("  " + " ".join(sorted(new)))
        if upgrade:
            self.say("The following packages will be upgraded:")
            self.say("  " + " ".join(sorted(upgrade)))
        if downgrade:
            self.say("The following packages will be DOWNGRADED:")
            self.say("  " + " ".join(sorted(downgrade)))
        down = f"{len(downgrade)} downgraded, " if downgrade else ""
        self.say(
            f"{len(upgrade)} upgraded, {len(new)} newly installed, {down}"
            f"0 to remove and {len(kept)} not upgraded."
        )
        if not plan:
            return 0
        if held and "-y" in opts and "--allow-change-held-packages" not in opts:
            raise AptError(
                "Held packages were changed and -y was used without --allow-change-held-packages."
            )
        if downgrade and "-y" in opts and "--allow-downgrades" not in opts:
            raise AptError("Packages were downgraded and -y was used without --allow-downgrades.")
        with self.lock():
            return self._fetch_and_unpack(st, plan, opts, new)

    def _fetch_and_unpack(
        self, st: state.PackageState, plan: dict[str, Candidate], opts: set[str], new: list[str]
    ) -> int:
        archives = self.root / ARCHIVES
        todo = [c for c in plan.values() if not (archives / _deb_name(c.release)).exists()]
        need = sum(catalog.download_size(c.release.name) for c in todo)
        whole = sum(catalog.download_size(c.release.name) for c in plan.values())
        if need != whole:
            self.say(f"Need to get {size_str(need)}/{size_str(whole)} of archives.")
        else:
            self.say(f"Need to get {size_str(need)} of archives.")
        if "--download-only" not in opts:
            used = size_str(whole * 1.2)
            self.say(f"After this operation, {used} of additional disk space will be used.")
        if "-y" not in opts and not _confirm(self.out):
            return 1
        pause = state.slow_download_seconds(self.root)
        archives.mkdir(parents=True, exist_ok=True)
        for n, c in enumerate(todo, start=1):
            if pause:
                time.sleep(pause)
            r = c.release
            self.say(
                f"Get:{n} {_cdn_uri(c.source)}  {r.name} {r.deb_version}"
                f" [{size_str(catalog.download_size(r.name))}]"
            )
            (archives / _deb_name(r)).write_text(f"{r.name} {r.deb_version}\n")
        if todo:
            self.say(f"Fetched {size_str(need)} in 1s ({size_str(need)}/s)")
        if "--download-only" in opts:
            self.say("Download complete and in download only mode")
            return 0
        fam = state.family(self.root)
        if state.interrupt_fault(self.root):
            # Killed while dpkg unpacks the first package: unpacked, never configured.
            first = sorted(plan.values(), key=lambda c: c.release.name)[0].release
            self.say(f"Preparing to unpack .../{_deb_name(first)} ...")
            self.say(f"Unpacking {first.name} ({first.deb_version}) ...")
            state.place(self.root, st, first, fam)
            state.record_interrupted(self.root, st, first.name)
            print("E: Sub-process /usr/bin/dpkg received signal 9.", file=self.err)
            return 100
        self.say("(Reading database ... 20584 files and directories currently installed.)")
        order = sorted(plan.values(), key=lambda c: c.release.name)
        for c in order:
            r = c.release
            old = st.installed.get(r.name)
            if old is None:
                self.say(f"Selecting previously unselected package {r.name}.")
            if old is not None and deb_compare(r.deb_version, old.release.deb_version) < 0:
                self.say(
                    f"dpkg: warning: downgrading {r.name} from {old.release.deb_version}"
                    f" to {r.deb_version}"
                )
            self.say(f"Preparing to unpack .../{_deb_name(r)} ...")
            if old is None:
                self.say(f"Unpacking {r.name} ({r.deb_version}) ...")
            else:
                self.say(
                    f"Unpacking {r.name} ({r.deb_version}) over ({old.release.deb_version}) ..."
                )
            state.place(self.root, st, r, fam)
            if not self.keeps_downloaded_packages():
                (archives / _deb_name(r)).unlink(missing_ok=True)
        for c in order:
            self.say(f"Setting up {c.release.name} ({c.release.deb_version}) ...")
        state.save(self.root, st)
        return 0

    def remove(self, names: Sequence[str], opts: set[str], purge: bool) -> int:
        """apt-get remove/purge of kube packages."""
        self.say("Reading package lists... Done")
        self.say("Building dependency tree... Done")
        self.say("Reading state information... Done")
        st = state.load(self.root)
        gone = []
        for name in names:
            if name not in catalog.PACKAGES:
                raise AptError(f"Unable to locate package {name}")
            if name not in st.installed:
                self.say(f"Package '{name}' is not installed, so not removed")
            else:
                gone.append(name)
        if gone:
            self.say("The following packages will be REMOVED:")
            self.say("  " + " ".join(f"{n}*" if purge else n for n in sorted(gone)))
        self.say(f"0 upgraded, 0 newly installed, {len(gone)} to remove and 0 not upgraded.")
        if not gone:
            return 0
        held = [n for n in gone if n in st.held]
        if held and "-y" in opts and "--allow-change-held-packages" not in opts:
            raise AptError(
                "Held packages were changed and -y was used without --allow-change-held-packages."
            )
        if "-y" not in opts and not _confirm(self.out):
            return 1
        with self.lock():
            for name in sorted(gone):
                self.say(f"Removing {name} ({st.installed[name].release.deb_version}) ...")
                state.remove(self.root, st, name)
                if purge:
                    st.held.discard(name)
            state.save(self.root, st)
        return 0

    # --- apt-mark ---------------------------------------------------------------------
    def mark(self, action: str, names: Sequence[str]) -> int:
        """apt-mark hold/unhold/showhold."""
        st = state.load(self.root)
        if action == "showhold":
            for name in sorted(st.held & set(st.installed)):
                print(name, file=self.out)
            return 0
        for name in names:
            if name not in catalog.PACKAGES or not (
                name in st.installed or versions_of(self.root, name)
            ):
                raise AptError(f"Unable to locate package {name}")
        with self.lock():
            for name in names:
                if action == "hold":
                    if name in st.held:
                        print(f"{name} was already set on hold.", file=self.out)
                    else:
                        st.held.add(name)
                        print(f"{name} set on hold.", file=self.out)
                elif name in st.held:
                    st.held.discard(name)
                    print(f"Canceled hold on {name}.", file=self.out)
                else:
                    print(f"{name} was already not on hold.", file=self.out)
            state.save(self.root, st)
        return 0

    # --- apt-cache --------------------------------------------------------------------
    def madison(self, names: Sequence[str]) -> int:
        """apt-cache madison: one line per version and source."""
        for name in names:
            known = [c for c in visible(self.root) if c.release.name == name]
            known.sort(key=lambda c: _Key(c.release.deb_version), reverse=True)
            if not known:
                print(f"N: Unable to locate package {name}", file=self.err)
            for c in known:
                print(
                    f"{name:>10} | {c.release.deb_version:>10} | {_index_line(c.source)}",
                    file=self.out,
                )
        return 0

    def policy(self, names: Sequence[str]) -> int:
        """apt-cache policy NAME...: installed, candidate and the version table."""
        st = state.load(self.root)
        for name in names:
            known = versions_of(self.root, name)
            have = st.installed.get(name)
            if name not in catalog.PACKAGES or (not known and have is None):
                print(f"N: Unable to locate package {name}", file=self.err)
                continue
            installed = have.release.deb_version if have else "(none)"
            candidate = known[0].release.deb_version if known else installed
            print(f"{name}:", file=self.out)
            print(f"  Installed: {installed}", file=self.out)
            print(f"  Candidate: {candidate}", file=self.out)
            print("  Version table:", file=self.out)
            rows = {c.release.deb_version: c for c in known}
            versions = sorted({*rows, *([installed] if have else [])}, key=_Key, reverse=True)
            for v in versions:
                mark = " ***" if have and v == installed else "    "
                prio = 500 if v in rows else 100
                print(f"{mark} {v} {prio}", file=self.out)
                for c in (x for x in visible(self.root) if x.release.name == name):
                    if c.release.deb_version == v:
                        print(f"        500 {_index_line(c.source)}", file=self.out)
                if have and v == installed:
                    print("        100 /var/lib/dpkg/status", file=self.out)
        return 0


def _deb_name(r: Release) -> str:
    return f"{r.name}_{r.deb_version}_{catalog.DEB_ARCH}.deb"


def _confirm(out: TextIO) -> bool:
    print("Do you want to continue? [Y/n] ", end="", file=out, flush=True)
    answer = sys.stdin.readline()
    if answer.strip().lower() in ("", "y", "yes") and answer:
        return True
    print("Abort.", file=out)
    return False


_FLAGS = {
    "-y": "-y", "--yes": "-y", "--assume-yes": "-y",
    "-d": "--download-only", "--download-only": "--download-only",
    "--allow-change-held-packages": "--allow-change-held-packages",
    "--allow-downgrades": "--allow-downgrades",
    "--no-install-recommends": "", "--allow-unauthenticated": "", "--force-yes": "",
}  # fmt: skip


def _parse(args: Sequence[str]) -> tuple[list[str], set[str], int, dict[str, str]]:
    words, opts, quiet = [], set(), 0
    config: dict[str, str] = {}
    it = iter(args)
    for a in it:
        if a in ("-o", "--option"):
            key, _, value = (next(it, None) or "").partition("=")
            config[key.strip().lower()] = value.strip()
            continue
        if a in ("-c", "--config-file", "-t", "--target-release"):
            next(it, None)  # the option's value
            continue
        if a in ("-q", "--quiet"):
            quiet += 1
        elif a == "-qq":
            quiet += 2
        elif a.startswith("--quiet="):
            quiet = int(a.split("=", 1)[1] or 0)
        elif a in _FLAGS:
            if _FLAGS[a]:
                opts.add(_FLAGS[a])
        elif a.startswith("-o") or a.startswith("--option="):
            key, _, value = a.removeprefix("--option=").removeprefix("-o").partition("=")
            config[key.strip().lower()] = value.strip()
        elif (
            a.startswith("-")
            and len(a) > 2
            and not a.startswith("--")
            and set(a[1:]) <= {"y", "q", "d"}
        ):
            for ch in a[1:]:
                quiet += ch == "q"
                opts |= {"y": {"-y"}, "d": {"--download-only"}, "q": set()}[ch]
        elif a.startswith("-"):
            continue
        else:
            words.append(a)
    return words, opts, quiet, config


def run(tool: str, args: Sequence[str], root: Path, out: TextIO, err: TextIO) -> int:
    """Run one apt tool; return its exit code."""
    apt = Apt(root, out, err)
    apt.tool = tool
    words, opts, apt.quiet, apt.config = _parse(args)
    if tool == "apt" and not out.isatty():
        print(
            "\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n",
            file=err,
        )
    try:
        if not words:
            print("E: No operation specified", file=err)
            return 100
        op, rest = words[0], words[1:]
        if tool in ("apt-get", "apt"):
            if op == "update":
                return apt.update()
            if op == "install":
                return apt.install(rest, opts)
            if op in ("upgrade", "dist-upgrade", "full-upgrade") and not rest:
                return apt.upgrade(opts)
            if op in ("remove", "purge"):
                return apt.remove(rest, opts, op == "purge")
            if op in ("clean", "autoclean"):
                for f in (root / ARCHIVES).glob("*.deb"):
                    f.unlink()
                return 0
            if tool == "apt" and op in ("madison", "policy"):
                return apt.madison(rest) if op == "madison" else apt.policy(rest)
        elif tool == "apt-mark" and op in ("hold", "unhold", "showhold"):
            return apt.mark(op, rest)
        elif tool == "apt-cache" and op in ("madison", "policy"):
            return apt.madison(rest) if op == "madison" else apt.policy(rest)
        print(f"E: Invalid operation {op}", file=err)
        return 100
    except AptError as e:
        print(f"E: {e}", file=err)
        return 100
    except state.DpkgInterrupted:
        print(
            "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct"
            " the problem. ",
            file=err,
        )
        return 100
    except state.LockHeld as held:
        print(
            f"E: Could not get lock {held.path}. It is held by process {held.pid} ({held.name})",
            file=err,
        )
        print(LOCK_NOTE, file=err)
        print(
            f"E: Unable to acquire the dpkg frontend lock ({held.path}),"
            " is another process using it?",
            file=err,
        )
        return 100


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: argv[0] is the tool name (apt-get, apt, apt-mark, apt-cache)."""
    args = list(sys.argv[1:] if argv is None else argv)
    tool = os.environ.get(TOOL_ENV) or (args.pop(0) if args else "apt-get")
    state.set_process_name(tool)
    return run(tool, args, state.sim_root(), sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
