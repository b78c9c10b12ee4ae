"""Simulated kubeadm: `kubeadm version` in every output form, `kubeadm upgrade plan|apply|node`
(nodeops.lab.sim.kubeadm_upgrade); other subcommands refuse.

The version comes from $NODEOPS_KUBEADM_VERSION (set by the package's /usr/bin/kubeadm
wrapper). Build metadata is the real one for the releases listed in BUILDS; for the others
the commit is a stand-in (a hash of the version) and the date is the catalog's.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

# Real `kubeadm version` build metadata: version -> (GitCommit, BuildDate, GoVersion).
BUILDS = {
    "v1.29.0": ("3f7a50f38688eb332e2a1b013678c6435d539ae6", "2023-12-13T08:50:10Z", "go1.21.5"),
    "v1.29.3": ("6813625b7cd706db5bc7388921be03071e1a492d", "2024-03-15T00:06:16Z", "go1.21.8"),
    "v1.30.0": ("7c48c2bd72b9bf5c44d21d7338cc7bea77d0ad2a", "2024-04-17T17:34:08Z", "go1.22.2"),
    "v1.31.0": ("9edcffcde5595e8a5b1a35f88c421764e575afce", "2024-08-13T07:35:57Z", "go1.22.5"),
    "v1.32.0": ("70d3cc986aa8221cd1dfb1121852688902d3bf53", "2024-12-11T18:04:20Z", "go1.23.3"),
    "v1.33.0": ("60a317eadfcb839692a68eab88b2096f4d708f4f", "2025-04-23T13:05:48Z", "go1.24.2"),
    "v1.33.3": ("80779bd6ff08b451e1c165a338a7b69351e9b0b8", "2025-07-15T18:05:14Z", "go1.24.4"),
}
# Approximate Go versions per Kubernetes minor, for versions not in BUILDS (not verified).
_GO = {
    "27": "go1.20.14",
    "28": "go1.21.13",
    "29": "go1.22.12",
    "30": "go1.23.10",
    "31": "go1.23.12",
    "32": "go1.24.6",
    "33": "go1.24.6",
}
# version.Info gained the emulation fields in 1.33; kubeadm prints them with %#v.
_EMULATION_SINCE = 33


def info(version: str) -> dict[str, str]:
    """The version.Info fields of a kubeadm build, in Go's field order."""
    major, minor = version.lstrip("v").split(".")[:2]
    commit, date, go = BUILDS.get(
        version,
        (
            hashlib.sha1(version.encode(), usedforsecurity=False).hexdigest(),
            "2025-09-09T00:00:00Z",
            _GO.get(minor, "go1.24.6"),
        ),
    )
    fields = {"major": major, "minor": minor}
    if int(minor) >= _EMULATION_SINCE:
        fields |= dict.fromkeys(
            ("emulationMajor", "emulationMinor", "minCompatibilityMajor", "minCompatibilityMinor"),
            "",
        )
    return fields | {
        "gitVersion": version,
        "gitCommit": commit,
        "gitTreeState": "clean",
        "buildDate": date,
        "goVersion": go,
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def long_form(version: str) -> str:
    """`kubeadm version` without -o: Go's %#v of version.Info."""
    parts = [f'{k[0].upper()}{k[1:]}:"{v}"' for k, v in info(version).items()]
    return f"kubeadm version: &version.Info{{{', '.join(parts)}}}"


def yaml_form(version: str) -> str:
    """`kubeadm version -o yaml` (sigs.k8s.io/yaml: keys sorted, empty ones omitted)."""
    lines = ["clientVersion:"]
    for key, value in sorted(info(version).items()):
        if value == "":
            continue
        quoted = f'"{value}"' if value.isdigit() or ":" in value else value
        lines.append(f"  {key}: {quoted}")
    return "\n".join(lines)


def json_form(version: str) -> str:
    """`kubeadm version -o json` (indented, empty emulation fields omitted)."""
    data = {k: v for k, v in info(version).items() if v != ""}
    return json.dumps({"clientVersion": data}, indent=2)


def run(
    args: Sequence[str], version: str, out: TextIO, err: TextIO, stdin: TextIO | None = None
) -> int:
    """Run kubeadm; return its exit code."""
    if args and args[0] == "upgrade":
        from nodeops.lab.sim import kubeadm_upgrade

        return kubeadm_upgrade.run(args[1:], version, out, err, stdin)
    if not args or args[0] != "version":
        print(f"kubeadm: simulated subcommand not implemented yet: {' '.join(args)}", file=err)
        return 1
    output = ""
    rest = list(args[1:])
    while rest:
        a = rest.pop(0)
        if a in ("-o", "--output"):
            output = rest.pop(0) if rest else ""
        elif a.startswith(("-o=", "--output=")):
            output = a.split("=", 1)[1]
        elif a.startswith("-o") and len(a) > 2:
            output = a[2:]
    forms = {"": long_form, "short": lambda v: v, "json": json_form, "yaml": yaml_form}
    if output not in forms:
        print(f"error: invalid output format: {output}", file=err)
        print("To see the stack trace of this error execute with --v=5 or higher", file=err)
        return 1
    print(forms[output](version), file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    version = os.environ.get("NODEOPS_KUBEADM_VERSION", "v0.0.0")
    args = list(sys.argv[1:] if argv is None else argv)
    return run(args, version, sys.stdout, sys.stderr, sys.stdin)


if __name__ == "__main__":
    sys.exit(main())
