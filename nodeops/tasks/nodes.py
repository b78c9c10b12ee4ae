"""Tasks that read or act on any set of nodes: facts, run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from invoke.exceptions import Exit
from invoke.tasks import task

from nodeops import report
from nodeops.cmd import Raw, cmd
from nodeops.errors import NodeopsError
from nodeops.settings import open_inventory, setting, ssh_options
from nodeops.tasks.common import (
    EXIT_NODE_FAILED,
    SELECT_HELP,
    Sessions,
    remainder,
    reported,
    seconds_option,
    select_nodes,
)

# Task bodies import what they use: `nodeops --help` must not pay for paramiko, YAML, rich.
if TYPE_CHECKING:
    from nodeops.facts import NodeFacts

FACT_COLUMNS = ("NODE", "ROLE", "OS", "PKG", "KUBEADM", "KUBELET", "KUBECTL", "HELD", "RUNTIME")


def _facts_row(facts: NodeFacts) -> list[str]:
    platform = facts.platform
    os_name = platform.pretty_name if platform else "unsupported (see below)"
    packages = facts.packages
    return [
        facts.node,
        facts.role or "?",
        os_name,
        platform.package_manager if platform else "-",
        packages.get("kubeadm") or "-",
        packages.get("kubelet") or "-",
        packages.get("kubectl") or "-",
        ",".join(facts.held) or "-",
        facts.container_runtime or "-",
    ]


@task(
    iterable=["node", "group"],
    help={**SELECT_HELP, "json": "Print JSON (one object per node) instead of a table."},
)
@reported
def facts(
    c: Any,
    node: list[str] | None = None,
    group: list[str] | None = None,
    limit: str | None = None,
    all: bool = False,
    json: bool = False,
    inventory: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Gather facts from nodes over SSH: OS and package manager, kube package versions,
    held packages, container runtime, role. Read-only; one round trip per node.

    Exits 1 when a node cannot be reached or read (the others are still reported).
    """
    from nodeops.facts import gather_facts

    inv = open_inventory(c.config, inventory)
    nodes = select_nodes(inv, node, group, limit, all)
    options = ssh_options(c.config, inv, accept_new_host_keys=accept_new_host_keys)
    with Sessions(options) as sessions:
        outcomes = sessions.each(nodes, gather_facts, parallel=int(setting(c.config, "parallel")))
    failed = [o for o in outcomes if not o.ok]
    if json:
        report.print_json(
            {
                o.node.name: (o.value.to_dict() if o.value is not None else {"error": str(o.error)})
                for o in outcomes
            }
        )
    else:
        rows = [_facts_row(o.value) for o in outcomes if o.value is not None]
        report.print_table("Node facts", FACT_COLUMNS, rows)
    for outcome in failed:
        report.print_error(str(outcome.error))
    gathered = [o.value for o in outcomes if o.value is not None]
    for node_facts in gathered:
        if node_facts.os_error:
            report.print_error(f"{node_facts.node}: {node_facts.os_error}")
        for probe, problem in node_facts.errors.items():
            sys.stderr.write(f"warning: {node_facts.node}: probe {probe} failed: {problem}\n")
    if failed or any(f.os_error for f in gathered):
        raise Exit(code=EXIT_NODE_FAILED)


@task(
    iterable=["node", "group"],
    help={
        **SELECT_HELP,
        "sudo": "Run the command as root (sudo -n when not connected as root).",
        "shell": "Pass the words after -- to the remote shell as they are (pipes, globs, $VARS).",
        "timeout": "Seconds the command may run on each node.",
    },
)
@reported
def run(
    c: Any,
    node: list[str] | None = None,
    group: list[str] | None = None,
    limit: str | None = None,
    all: bool = False,
    sudo: bool = False,
    shell: bool = False,
    timeout: str | None = None,
    inventory: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Run one ad-hoc command on many nodes at once: `run --all -- uptime`.

    Each word after `--` reaches the node as one quoted argument, unless --shell is given.
    Output is grouped per node with its exit code; exits 1 when any node fails.
    """
    command_timeout = seconds_option(timeout, "--timeout")
    words = remainder()
    if not words:
        raise NodeopsError("no command: put it after --, e.g. `run --all -- uptime`")
    command = cmd(Raw(" ".join(words)), sudo=sudo) if shell else cmd(*words, sudo=sudo)
    inv = open_inventory(c.config, inventory)
    nodes = select_nodes(inv, node, group, limit, all)
    options = ssh_options(c.config, inv, accept_new_host_keys=accept_new_host_keys)
    with Sessions(options) as sessions:
        outcomes = sessions.each(
            nodes,
            lambda transport: transport.run(command, timeout=command_timeout),
            parallel=int(setting(c.config, "parallel")),
        )
    any_failed = False
    for outcome in outcomes:
        result = outcome.value
        if result is None:
            sys.stdout.write(f"== {outcome.node.name}: failed ==\n")
            report.print_error(str(outcome.error))
            any_failed = True
            continue
        sys.stdout.write(f"== {outcome.node.name}: exit {result.exit_code} ==\n")
        for text, stream in ((result.stdout, sys.stdout), (result.stderr, sys.stderr)):
            if text:
                stream.write(text if text.endswith("\n") else text + "\n")
        any_failed = any_failed or not result.ok
    sys.stdout.flush()
    if any_failed:
        raise Exit(code=EXIT_NODE_FAILED)
