"""Simulated dnf (also yum) for the kube packages of a RHEL-family lab node.

Run as `python -m nodeops.lab.sim.pkg.dnf TOOL ARGS...`. Repositories come from
/etc/yum.repos.d/*.repo (pkgs.k8s.io per minor, the legacy kubernetes-el7 repository);
their `exclude=` hides packages unless `--disableexcludes=ID|all` or
`--setopt=disable_excludes=...` lifts it, as dnf 4 does. Metadata is "downloaded" the first
time a repository (id and baseurl) is used, the way dnf refreshes a cache whose baseurl changed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TextIO

from nodeops.lab.sim.pkg import catalog, state
from nodeops.lab.sim.pkg.catalog import Release
from nodeops.lab.sim.pkg.repos import YumRepo, main_excludes, yum_repos
from nodeops.lab.sim.pkg.versions import rpm_compare, rpm_matches, spec_names

CACHE_FILE = f"{state.SIM_DIR}/dnf-cache.json"
DNF_VERSION = "4.14.0"
RULE = "=" * 80


class DnfError(Exception):
    """An error dnf reports as `Error: ...` with exit code 1."""


@dataclass(frozen=True)
class Offer:
    """A package version an enabled repository offers."""

    release: Release
    repo: YumRepo


@dataclass
class Options:
    """Command-line options that matter here."""

    yes: bool = False
    quiet: bool = False
    cache_only: bool = False
    show_duplicates: bool = False
    download_only: bool = False
    disable_excludes: set[str] = field(default_factory=set)


def _key(r: Release) -> tuple[int, ...]:
    return (*(int(p) for p in r.upstream.split(".")), r.build)


class Dnf:
    """One run of dnf on a node root."""

    def __init__(self, root: Path, out: TextIO, err: TextIO, opts: Options) -> None:
        self.root, self.out, self.err, self.opts = root, out, err, opts
        self.repos = [r for r in yum_repos(root) if r.enabled]

    def say(self, text: str = "") -> None:
        """Print unless -q."""
        if not self.opts.quiet:
            print(text, file=self.out)

    def _excluded(self, offer: Offer) -> bool:
        off = self.opts.disable_excludes
        if "all" in off:
            return False
        patterns = [] if "main" in off else list(main_excludes(self.root))
        if offer.repo.id not in off:
            patterns += offer.repo.excludes
        return any(fnmatchcase(offer.release.name, p) for p in patterns)

    def refresh(self) -> None:
        """Load each enabled repository's metadata, downloading what the cache lacks."""
        path = self.root / CACHE_FILE
        try:
            cache: dict[str, dict[str, float | str]] = json.loads(path.read_text())
        except (OSError, ValueError):
            cache = {}
        now = time.time()
        oldest = now
        for repo in self.repos:
            got = cache.get(repo.id)
            if got and got.get("baseurl") == repo.baseurl:
                oldest = min(oldest, float(got["time"]))
                continue
            if self.opts.cache_only:
                raise DnfError(f"Cache-only enabled but no cache for '{repo.id}'")
            size = 900 * len(repo.releases()) + 2_000
            line = f"{repo.name:<49}{size / 1000 * 3:>4.0f} kB/s | {size / 1000:>4.1f} kB     00:00"
            self.say(line)
            cache[repo.id] = {"baseurl": repo.baseurl, "time": now}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache) + "\n")
        ago = dt.timedelta(seconds=int(now - oldest))
        stamp = dt.datetime.fromtimestamp(oldest, dt.UTC).strftime("%a %d %b %Y %I:%M:%S %p UTC")
        self.say(f"Last metadata expiration check: {ago} ago on {stamp}.")

    def offers(self, *, with_excluded: bool = False) -> list[Offer]:
        """Every package version of the enabled repositories (excludes applied unless asked)."""
        found = [Offer(r, repo) for repo in self.repos for r in repo.releases()]
        return found if with_excluded else [o for o in found if not self._excluded(o)]

    # --- install ----------------------------------------------------------------------
    def install(self, specs: Sequence[str]) -> int:
        """dnf install SPEC...: newest match of each spec, plus what it requires."""
        self.refresh()
        st = state.load(self.root)
        offers = self.offers()
        plan: dict[str, Offer] = {}
        missing = []
        for spec in specs:
            match = [o for o in offers if rpm_matches(spec, o.release)]
            if not match:
                hidden = [
                    o for o in self.offers(with_excluded=True) if rpm_matches(spec, o.release)
                ]
                if hidden:
                    print(
                        f"All matches were filtered out by exclude filtering for argument: {spec}",
                        file=self.err,
                    )
                elif any(
                    i.release.name in spec_names(spec, catalog.PACKAGES)
                    and rpm_matches(spec, i.release)
                    for i in st.installed.values()
                ):
                    self.say(f"Package {spec} is already installed.")
                    continue
                else:
                    print(f"No match for argument: {spec}", file=self.err)
                missing.append(spec)
                continue
            best = max(match, key=lambda o: _key(o.release))
            have = st.installed.get(best.release.name)
            if have and have.release == best.release:
                nevra = f"{best.release.name}-{best.release.rpm_evr}.{catalog.RPM_ARCH}"
                self.say(f"Package {nevra} is already installed.")
                continue
            plan[best.release.name] = best
        if missing:
            raise DnfError(f"Unable to find a match: {' '.join(missing)}")
        deps: list[str] = []
        for o in list(plan.values()):
            for dep, minimum in catalog.depends(o.release):
                have = st.installed.get(dep)
                if dep in plan or (have and _vt(have.release.upstream) >= _vt(minimum)):
                    continue
                options = [
                    x
                    for x in offers
                    if x.release.name == dep and _vt(x.release.upstream) >= _vt(minimum)
                ]
                if options:
                    plan[dep] = max(options, key=lambda x: _key(x.release))
                    deps.append(dep)
        self.say("Dependencies resolved.")
        if not plan:
            self.say("Nothing to do.")
            self.say("Complete!")
            return 0
        return self._transaction(st, plan, deps)

    def _transaction(self, st: state.PackageState, plan: dict[str, Offer], deps: list[str]) -> int:
        groups: dict[str, list[Offer]] = {"Installing": [], "Upgrading": [], "Downgrading": []}
        for name, o in sorted(plan.items()):
            have = st.installed.get(name)
            if have is None:
                key = "Installing dependencies" if name in deps else "Installing"
                groups.setdefault(key, []).append(o)
            elif rpm_compare(o.release, have.release) > 0:
                groups["Upgrading"].append(o)
            else:
                groups["Downgrading"].append(o)
        self.say(RULE)
        self.say(
            f" {'Package':<21}{'Architecture':<15}{'Version':<26}{'Repository':<13}{'Size':>4}"
        )
        self.say(RULE)
        for title in ("Installing", "Upgrading", "Downgrading", "Installing dependencies"):
            if groups.get(title):
                self.say(f"{title}:")
                for o in groups[title]:
                    size = f"{catalog.download_size(o.release.name) // 1_000_000} M"
                    r = o.release
                    row = f"{r.name:<21}{catalog.RPM_ARCH:<15}{r.rpm_evr:<26}{o.repo.id:<13}"
                    self.say(f" {row}{size:>4}")
        self.say("")
        self.say("Transaction Summary")
        self.say(RULE)
        inst = len(groups["Installing"]) + len(groups.get("Installing dependencies", []))
        for word, n in (
            ("Install", inst),
            ("Upgrade", len(groups["Upgrading"])),
            ("Downgrade", len(groups["Downgrading"])),
        ):
            if n:
                self.say(f"{word:<9}{n} Package{'s' if n > 1 else ''}")
        total = sum(catalog.download_size(n) for n in plan)
        self.say("")
        self.say(f"Total download size: {total // 1_000_000} M")
        if not self.opts.yes:
            print("Is this ok [y/N]: ", end="", file=self.out, flush=True)
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                print("Operation aborted.", file=self.out)
                return 1
        self.say("Downloading Packages:")
        pause = state.slow_download_seconds(self.root)
        for i, o in enumerate(plan.values(), start=1):
            if pause:
                time.sleep(pause)
            rpm = f"{o.release.name}-{o.release.rpm_evr}.{catalog.RPM_ARCH}.rpm"
            self.say(f"({i}/{len(plan)}): {rpm}")
        if self.opts.download_only:
            self.say("Complete!")
            self.say(
                "The downloaded packages were saved in cache until the next successful transaction."
            )
            return 0
        self.say("Running transaction check")
        self.say("Transaction check succeeded.")
        self.say("Running transaction test")
        self.say("Transaction test succeeded.")
        self.say("Running transaction")
        fam = state.family(self.root)
        n = len(plan)
        done = []
        for i, (name, o) in enumerate(sorted(plan.items()), start=1):
            verb = (
                "Installing"
                if name not in st.installed
                else (
                    "Upgrading"
                    if rpm_compare(o.release, st.installed[name].release) > 0
                    else "Downgrading"
                )
            )
            nevra = f"{name}-{o.release.rpm_evr}.{catalog.RPM_ARCH}"
            self.say(f"  {verb:<17}: {nevra:<55}{i}/{n}")
            state.place(self.root, st, o.release, fam)
            done.append(nevra)
        state.save(self.root, st)
        self.say("")
        self.say("Installed:" if not groups["Upgrading"] else "Upgraded:")
        self.say("  " + "   ".join(done))
        self.say("")
        self.say("Complete!")
        return 0

    def remove(self, names: Sequence[str]) -> int:
        """dnf remove NAME..."""
        st = state.load(self.root)
        gone = [n for n in names if n in st.installed]
        for n in names:
            if n not in st.installed:
                print(f"No match for argument: {n}", file=self.err)
        if not gone:
            print("No packages marked for removal.", file=self.err)
            self.say("Dependencies resolved.")
            self.say("Nothing to do.")
            self.say("Complete!")
            return 0
        self.say("Dependencies resolved.")
        for n in gone:
            self.say(
                f"  Erasing          : {n}-{st.installed[n].release.rpm_evr}.{catalog.RPM_ARCH}"
            )
            state.remove(self.root, st, n)
        state.save(self.root, st)
        self.say("Complete!")
        return 0

    # --- list -------------------------------------------------------------------------
    def list(self, patterns: Sequence[str], width: int) -> int:
        """dnf list [--showduplicates] [PATTERN...]: installed and available packages."""
        self.refresh()
        st = state.load(self.root)
        pats = list(patterns) or ["*"]
        installed = [
            i.release
            for i in st.installed.values()
            if any(fnmatchcase(i.release.name, p) for p in pats)
        ]
        avail = [o for o in self.offers() if any(fnmatchcase(o.release.name, p) for p in pats)]
        if not self.opts.show_duplicates:
            avail = [o for o in avail if o.release not in installed]
            newest: dict[str, Offer] = {}
            for o in avail:
                if o.release.name not in newest or _key(o.release) > _key(
                    newest[o.release.name].release
                ):
                    newest[o.release.name] = o
            avail = [
                o
                for o in newest.values()
                if not any(
                    i.name == o.release.name and _key(i) >= _key(o.release) for i in installed
                )
            ]
        if not installed and not avail:
            raise DnfError("No matching Packages to list")
        rows_i = [
            (f"{r.name}.{catalog.RPM_ARCH}", r.rpm_evr, "@kubernetes")
            for r in sorted(installed, key=lambda r: (r.name, _key(r)))
        ]
        rows_a = [
            (f"{o.release.name}.{catalog.RPM_ARCH}", o.release.rpm_evr, o.repo.id)
            for o in sorted(avail, key=lambda o: (o.release.name, _key(o.release)))
        ]
        for title, rows in (("Installed Packages", rows_i), ("Available Packages", rows_a)):
            if rows:
                print(title, file=self.out)
                for line in columns(rows, width, [*rows_i, *rows_a]):
                    print(line, file=self.out)
        return 0


def _vt(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".") if p.isdigit())


def columns(
    rows: Sequence[tuple[str, str, str]],
    width: int,
    everything: Sequence[tuple[str, str, str]] = (),
) -> list[str]:
    """dnf's three-column list layout: spare width split between the first two columns.

    Widths are measured over `everything` (all rows of the listing) when given, as dnf
    lays out its Installed and Available sections alike.
    """
    measured = everything or rows
    wn = max(len(r[0]) for r in measured)
    wv = max(len(r[1]) for r in measured)
    wr = max(len(r[2]) for r in measured)
    spare = max(0, width - (wn + wv + wr) - 3)
    wn += spare // 2
    wv += spare - spare // 2
    return [f"{n:<{wn}} {v:<{wv}} {r:<{wr}} " for n, v, r in rows]


def _parse(args: Sequence[str]) -> tuple[list[str], Options]:
    words, opts = [], Options()
    it = iter(args)
    for a in it:
        if a in ("-y", "--assumeyes"):
            opts.yes = True
        elif a in ("-q", "--quiet"):
            opts.quiet = True
        elif a in ("-C", "--cacheonly"):
            opts.cache_only = True
        elif a == "--showduplicates":
            opts.show_duplicates = True
        elif a == "--downloadonly":
            opts.download_only = True
        elif a.startswith("--disableexcludes=") or a.startswith("--disableexcludepkgs="):
            opts.disable_excludes |= set(a.split("=", 1)[1].split(","))
        elif a in ("--disableexcludes", "--disableexcludepkgs"):
            opts.disable_excludes |= set(next(it, "").split(","))
        elif a.startswith("--setopt="):
            key, _, value = a.split("=", 1)[1].partition("=")
            if key in ("disable_excludes", "disableexcludes"):
                opts.disable_excludes |= set(value.split(","))
        elif a == "--setopt":
            key, _, value = next(it, "").partition("=")
            if key in ("disable_excludes", "disableexcludes"):
                opts.disable_excludes |= set(value.split(","))
        elif a.startswith("-"):
            continue
        else:
            words.append(a)
    return words, opts


def run(
    tool: str, args: Sequence[str], root: Path, out: TextIO, err: TextIO, width: int = 80
) -> int:
    """Run dnf (or yum); return its exit code."""
    if list(args) == ["--version"]:
        print(DNF_VERSION, file=out)
        print(
            f"  Installed: dnf-0:{DNF_VERSION}-8.el9.noarch at Mon 13 Nov 2023 12:00:00 AM GMT",
            file=out,
        )
        return 0
    words, opts = _parse(args)
    dnf = Dnf(root, out, err, opts)
    try:
        if not words:
            raise DnfError("No command given")
        op, rest = words[0], words[1:]
        if op in ("install", "upgrade", "update", "downgrade"):
            if not rest:
                raise DnfError("Need to pass a list of pkgs to install")
            return dnf.install(rest)
        if op in ("remove", "erase"):
            return dnf.remove(rest)
        if op == "list":
            if rest[:1] in (["available"], ["installed"], ["all"]):
                rest = rest[1:]
            return dnf.list(rest, width)
        if op == "makecache":
            dnf.refresh()
            dnf.say("Metadata cache created.")
            return 0
        if op == "clean":
            (root / CACHE_FILE).unlink(missing_ok=True)
            print("0 files removed" if not rest else "12 files removed", file=out)
            return 0
        print(f"No such command: {op}. Please use /usr/bin/{tool} --help", file=err)
        print(
            f"It could be a DNF plugin command, try: \"{tool} install 'dnf-command({op})'\"",
            file=err,
        )
        return 1
    except DnfError as e:
        print(f"Error: {e}", file=err)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the first argument is the tool name (dnf or yum)."""
    args = list(sys.argv[1:] if argv is None else argv)
    tool = os.environ.get("NODEOPS_SIM_TOOL") or (args.pop(0) if args else "dnf")
    state.set_process_name(tool)
    width = int(os.environ.get("COLUMNS", "0") or 0) or 80
    return run(tool, args, state.sim_root(), sys.stdout, sys.stderr, width)


if __name__ == "__main__":
    sys.exit(main())
