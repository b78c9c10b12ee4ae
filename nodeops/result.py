"""Result: what one remote command did."""

from __future__ import annotations

from dataclasses import dataclass

from nodeops.errors import CommandFailed


@dataclass(frozen=True)
class Result:
    """The outcome of a command on a node. `command` is the display form (secrets masked)."""

    node: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the command exited 0."""
        return self.exit_code == 0

    def check(self) -> Result:
        """Return self when the command succeeded, else raise CommandFailed with its output."""
        if not self.ok:
            raise CommandFailed(self.describe_failure())
        return self

    def describe_failure(self) -> str:
        """A one-paragraph account of a failed command: node, command, exit code, output tail."""
        tail = (self.stderr.strip() or self.stdout.strip()).splitlines()[-5:]
        detail = ("\n  " + "\n  ".join(tail)) if tail else ""
        return f"{self.node}: `{self.command}` exited {self.exit_code}{detail}"
