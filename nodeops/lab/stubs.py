"""Placeholder package tools of RHEL-family lab nodes: dnf, yum (-> dnf) and rpm.

They answer only what the lab needs so far (versions, `rpm -q` of absent packages) and say
"simulated command not implemented yet" to anything else. The simulated dnf/yum/rpm with
repositories and installed packages will replace this module; nothing else writes these files.
"""

from __future__ import annotations

import os
from pathlib import Path

_RPM = """\
#!/bin/sh
# nodeops lab: placeholder rpm (see nodeops/lab/stubs.py)
tool=${0##*/}
all="$*"
case "$1" in
--version)
    echo "RPM version 4.16.1.3"
    exit 0 ;;
-q|--query)
    shift
    names=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --qf|--queryformat) shift ;;
        --qf=*|--queryformat=*) ;;
        -*) echo "$tool: simulated command not implemented yet: $all" >&2; exit 1 ;;
        *) names="$names $1" ;;
        esac
        shift
    done
    if [ -z "$names" ]; then
        echo "rpm: no arguments given for query" >&2
        exit 1
    fi
    # Real rpm exits with the number of packages it did not find. No package is installed yet.
    missing=0
    for name in $names; do
        echo "package $name is not installed"
        missing=$((missing + 1))
    done
    exit $missing ;;
esac
echo "$tool: simulated command not implemented yet: $all" >&2
exit 1
"""

_DNF = """\
#!/bin/sh
# nodeops lab: placeholder dnf, also yum (see nodeops/lab/stubs.py)
tool=${0##*/}
if [ "$#" -eq 1 ] && [ "$1" = "--version" ]; then
    echo "4.14.0"
    echo "  Installed: dnf-0:4.14.0-8.el9.noarch at Mon 13 Nov 2023 12:00:00 AM GMT"
    exit 0
fi
echo "$tool: simulated command not implemented yet: $*" >&2
exit 1
"""

#: Scripts by path relative to /usr.
RHEL_TOOLS = {"bin/rpm": _RPM, "bin/dnf": _DNF}
#: Symlinks by path relative to /usr, to their target.
RHEL_LINKS = {"bin/yum": "dnf"}
#: What the tools shadow when the host has them, relative to /usr (the apt family hides these).
RHEL_TOOL_NAMES = ("bin/rpm", "bin/dnf", "bin/yum", "bin/rpmquery", "bin/dnf-3", "bin/yum-builddep")


def install_rhel_tools(usr_upper: Path) -> None:
    """Write the placeholder tools into a node's /usr overlay upper directory."""
    for rel, text in RHEL_TOOLS.items():
        path = usr_upper / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    for rel, target in RHEL_LINKS.items():
        path = usr_upper / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
