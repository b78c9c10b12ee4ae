"""Cmd: the only way nodeops builds a command that runs on a node.

A command is a tuple of arguments. Plain strings are always quoted, so a value read from
an inventory, a user or a node can never become shell syntax. Shell syntax (pipes,
redirections, `||`) is only possible through an explicit `Raw` piece, which is easy to
find in review. A `Secret` renders as `***` everywhere except in the one string that is
sent to the node.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

REDACTED = "***"


@dataclass(frozen=True)
class Secret:
    """A value that reaches the node but never a log, a journal, an error or a dry run."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return REDACTED

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"


@dataclass(frozen=True)
class Raw:
    """Shell syntax passed through verbatim: pipes, redirections, `||`, `2>/dev/null`."""

    text: str


Arg = str | Secret | Raw


def _render_arg(arg: Arg, *, reveal: bool) -> str:
    if isinstance(arg, Raw):
        return arg.text
    if isinstance(arg, Secret):
        return shlex.quote(arg.value) if reveal else REDACTED
    if isinstance(arg, str):
        return shlex.quote(arg)
    raise TypeError(f"a command argument must be str, Secret or Raw, not {type(arg).__name__}")


@dataclass(frozen=True)
class Cmd:
    """A remote command: argv pieces, whether it needs root, and an optional environment.

    `render()` gives the exact text sent to the node; `display()` the same with secrets
    masked, for everything a person or a file will see.
    """

    argv: tuple[Arg, ...]
    sudo: bool = False
    env: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("a command needs at least one argument")
        for arg in self.argv:
            if not isinstance(arg, str | Secret | Raw):
                raise TypeError(
                    f"a command argument must be str, Secret or Raw, not {type(arg).__name__}"
                )
        for name, value in self.env:
            if not name.isidentifier():
                raise ValueError(f"not an environment variable name: {name!r}")
            if not isinstance(value, str):
                # `env NAME=VALUE` is in the node's process table, and a Secret here would
                # render as `***` anyway: secrets never go through the environment.
                raise TypeError(
                    f"environment variable {name}: the value must be str, not "
                    f"{type(value).__name__} (no secrets through the environment)"
                )

    def _body(self, *, reveal: bool) -> str:
        words = [_render_arg(arg, reveal=reveal) for arg in self.argv]
        if self.env:
            # `env NAME=value cmd` rather than `NAME=value cmd` so it survives `sh -c` and
            # applies to exactly this command.
            assigns = [shlex.quote(f"{name}={value}") for name, value in self.env]
            words = ["env", *assigns, *words]
        return " ".join(words)

    def render(self, *, as_root: bool = False, reveal: bool = True) -> str:
        """The command line for the remote shell.

        `as_root` says the session already runs as root, so no sudo wrapper is needed.
        """
        body = self._body(reveal=reveal)
        if self.sudo and not as_root:
            # `sudo -n` fails at once instead of hanging on a password prompt; `sh -c` keeps
            # pipes and redirections inside the privileged part.
            return "sudo -n -- sh -c " + shlex.quote(body)
        return body

    def display(self, *, as_root: bool = False) -> str:
        """The command as people see it: secrets masked."""
        return self.render(as_root=as_root, reveal=False)

    def __str__(self) -> str:
        return self.display(as_root=True)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Secret values this command carries, so output can be scrubbed of them."""
        return tuple(arg.value for arg in self.argv if isinstance(arg, Secret))

    def with_sudo(self) -> Cmd:
        """The same command, run as root."""
        return Cmd(self.argv, sudo=True, env=self.env)


def cmd(*argv: Arg, sudo: bool = False, env: Mapping[str, str] | None = None) -> Cmd:
    """Build a Cmd from arguments: `cmd("kubectl", "get", "nodes", sudo=True)`."""
    return Cmd(tuple(argv), sudo=sudo, env=tuple((env or {}).items()))


def sequence(parts: Iterable[Cmd], *, joiner: str = " && ", sudo: bool | None = None) -> Cmd:
    """Join commands with `&&` (or another joiner, such as `; `) into one round trip.

    The result needs root when any part does, unless `sudo` says otherwise.
    """
    cmds = list(parts)
    if not cmds:
        raise ValueError("nothing to join")
    if joiner.strip() not in {"&&", "||", ";", "|"}:
        raise ValueError(f"not a shell joiner: {joiner!r}")
    pieces: list[Arg] = []
    for index, part in enumerate(cmds):
        if index:
            pieces.append(Raw(joiner.strip()))
        pieces.extend(_inline(part))
    needs_root = any(part.sudo for part in cmds) if sudo is None else sudo
    return Cmd(tuple(pieces), sudo=needs_root)


def _inline(part: Cmd) -> list[Arg]:
    """A command's pieces for use inside a larger one (its env becomes an `env` prefix)."""
    if not part.env:
        return list(part.argv)
    assigns: list[Arg] = [f"{name}={value}" for name, value in part.env]
    return ["env", *assigns, *part.argv]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in text (command output, an error) with `***`."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
