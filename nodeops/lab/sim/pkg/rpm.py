"""Simulated rpm: queries (-q, -qa, --qf) of the kube packages of a RHEL-family lab node."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from nodeops.lab.sim.pkg import catalog, state
from nodeops.lab.sim.pkg.catalog import Release

RPM_VERSION = "4.16.1.3"
DEFAULT_FORMAT = "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n"
_TAG = re.compile(r"%(-?\d*)\{([A-Za-z]+)(?::[a-z]+)?\}")
_ESCAPES = {"\\n": "\n", "\\t": "\t", "\\\\": "\\"}


def tags(release: Release) -> dict[str, str]:
    """The header tags a query format can name."""
    return {
        "NAME": release.name,
        "VERSION": release.upstream,
        "RELEASE": release.rpm_release,
        "ARCH": catalog.RPM_ARCH,
        "EPOCH": "(none)",
        "SUMMARY": catalog.DESCRIPTIONS.get(release.name, ""),
    }


def expand(fmt: str, release: Release) -> str:
    """Expand a --queryformat for one package (tags, field widths, \\n and \\t)."""
    values = tags(release)

    def tag(m: re.Match[str]) -> str:
        value = values.get(m.group(2).upper(), "(none)")
        width = m.group(1)
        if width and width != "-":
            n = int(width)
            return value.ljust(-n) if n < 0 else value.rjust(n)
        return value

    text = _TAG.sub(tag, fmt)
    return re.sub(r"\\[nt\\]", lambda m: _ESCAPES[m.group(0)], text)


def run(args: Sequence[str], root: Path, out: TextIO, err: TextIO) -> int:
    """Run rpm; return its exit code (for -q: the number of packages not found)."""
    if list(args) == ["--version"]:
        print(f"RPM version {RPM_VERSION}", file=out)
        return 0
    fmt, names, query, every = DEFAULT_FORMAT, [], False, False
    it = iter(args)
    for a in it:
        if a in ("-q", "--query"):
            query = True
        elif a in ("-qa", "-aq"):
            query = every = True
        elif a in ("-a", "--all"):
            every = True
        elif a in ("--qf", "--queryformat"):
            fmt = next(it, "")
        elif a.startswith(("--qf=", "--queryformat=")):
            fmt = a.split("=", 1)[1]
        elif a.startswith("-"):
            print(f"rpm: simulated option not implemented: {a}", file=err)
            return 1
        else:
            names.append(a)
    if not query:
        print("rpm: simulated command not implemented: " + " ".join(args), file=err)
        return 1
    st = state.load(root)
    if every:
        for name in sorted(st.installed):
            out.write(expand(fmt, st.installed[name].release))
        return 0
    if not names:
        print("rpm: no arguments given for query", file=err)
        return 1
    missing = 0
    for name in names:
        item = st.installed.get(name)
        if item is None:
            item = next(
                (
                    i
                    for i in st.installed.values()
                    if expand(DEFAULT_FORMAT, i.release).strip() == name
                ),
                None,
            )
        if item is None:
            print(f"package {name} is not installed", file=out)
            missing += 1
        else:
            out.write(expand(fmt, item.release))
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    state.set_process_name("rpm")
    return run(
        list(sys.argv[1:] if argv is None else argv), state.sim_root(), sys.stdout, sys.stderr
    )


if __name__ == "__main__":
    sys.exit(main())
