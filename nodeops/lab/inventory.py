"""The nodeops inventory a lab writes for itself (inventories/lab.yaml by default)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from nodeops.errors import LabError
from nodeops.lab.state import LabState, write_file

#: inventories/lab.yaml of this checkout.
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "inventories" / "lab.yaml"

_PLAIN = re.compile(r"[A-Za-z0-9_./@+-]+")


def header(lab: str) -> str:
    """The first line of a lab's inventory: who wrote it and who removes it."""
    return f'# Written by `invoke lab.up` for the local lab "{lab}"; `invoke lab.down` removes it.'


def _scalar(value: str) -> str:
    # A JSON string is a YAML double-quoted scalar.
    return value if _PLAIN.fullmatch(value) and value[0] not in "@-" else json.dumps(value)


def render(state: LabState) -> str:
    """The inventory of a running lab."""
    lines = [
        header(state.name),
        f"lab: {state.name}",
        f"known_hosts: {_scalar(str(state.known_hosts_path))}",
        "ssh_config: false",
        f"defaults: {{user: root, port: 22, key: {_scalar(str(state.key_path))}}}",
        "nodes:",
    ]
    for spec, node in zip(state.spec.nodes, state.nodes, strict=True):
        roles = ", ".join(spec.roles)
        lines.append(f"  {node.name}: {{address: {node.address}, roles: [{roles}], groups: [lab]}}")
    return "\n".join(lines) + "\n"


def written_by(path: Path, lab: str) -> bool:
    """Whether path is an inventory this lab wrote."""
    try:
        with path.open() as f:
            return f.readline().rstrip("\n") == header(lab)
    except (OSError, UnicodeDecodeError):
        return False


def check_writable(path: Path, lab: str) -> None:
    """Raise LabError if writing the lab's inventory at path would replace someone else's file."""
    if path.exists() and not written_by(path, lab):
        raise LabError(
            f"{path} exists and is not lab {lab}'s inventory; move it away or choose another path"
        )


def write(state: LabState) -> None:
    """Write the lab's inventory (atomically) where its state says."""
    if state.inventory_path is None:
        return
    path = state.inventory_path
    check_writable(path, state.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, render(state), 0o644)


def remove(path: Path | None, lab: str) -> None:
    """Remove the lab's inventory at path, if it is there and is the lab's."""
    if path is not None and written_by(path, lab):
        path.unlink(missing_ok=True)
