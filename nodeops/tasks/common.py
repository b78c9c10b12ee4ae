"""What every task shares: turning expected errors into one line, and node selection."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.exceptions import Exit

from nodeops.errors import NodeopsError

if TYPE_CHECKING:
    from nodeops import fanout
    from nodeops.inventory import Inventory
    from nodeops.node import Node
    from nodeops.transport import SSHOptions

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes: 1 = the work ran and some node failed; 2 = nothing ran (bad input, refused).
EXIT_NODE_FAILED = 1
EXIT_REFUSED = 2

SELECT_HELP = {
    "node": "A node by name (repeatable).",
    "group": "Every node of an inventory group (repeatable): control-planes, workers, etcd, ...",
    "limit": "Glob on node names, e.g. 'worker*'; with --node/--group it narrows them.",
    "all": "Every node of the inventory.",
    "inventory": "Inventory file (nodeops YAML or an Ansible INI/YAML inventory).",
    "accept_new_host_keys": "Trust host keys seen for the first time and record them "
    "(changed keys are always refused).",
}


def Sessions(options: SSHOptions) -> fanout.Sessions:
    """The run's connections over SSH (fanout, and paramiko, imported on first use).

    Task modules import this name so that tests can point it at fake transports.
    """
    from nodeops.fanout import Sessions as FanoutSessions

    return FanoutSessions(options)


def reported(body: F) -> F:
    """Report a NodeopsError as `error: …` on stderr and exit 2, without a traceback."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except NodeopsError as error:
            raise Exit(f"error: {error}", code=EXIT_REFUSED) from None

    return wrapper  # type: ignore[return-value]


def select_nodes(
    inventory: Inventory,
    node: Sequence[str] | None,
    group: Sequence[str] | None,
    limit: str | None,
    all_nodes: bool,
) -> tuple[Node, ...]:
    """The nodes a task's --node/--group/--limit/--all options pick."""
    limits = [part for part in (limit or "").split(",") if part]
    return inventory.select(names=node or (), groups=group or (), limits=limits, all=all_nodes)


def remainder() -> list[str]:
    """The words after `--` on the command line (Invoke keeps them out of task arguments)."""
    argv = sys.argv
    return argv[argv.index("--") + 1 :] if "--" in argv else []


def seconds_option(value: str | None, option: str) -> float | None:
    """A positive number of seconds from an option (Invoke hands untyped options over as text)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise NodeopsError(f"{option} takes a number of seconds, not {value!r}") from None
    if not 0 < seconds < float("inf"):
        raise NodeopsError(f"{option} must be a positive number of seconds, not {value!r}")
    return seconds
