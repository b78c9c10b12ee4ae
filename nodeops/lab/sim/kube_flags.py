"""Parse Kubernetes component flags (`--name=value`, `--name value`, `--bool`)."""

from __future__ import annotations

from collections.abc import Sequence


def parse_flags(argv: Sequence[str]) -> dict[str, str]:
    """Flags by name without dashes; a later flag wins; positional words are ignored."""
    flags: dict[str, str] = {}
    i = 0
    args = list(argv)
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-"):
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if not eq:
            if i < len(args) and not args[i].startswith("-"):
                value = args[i]
                i += 1
            else:
                value = "true"
        flags[name] = value
    return flags
