"""The `nodeops` command: Invoke's Program serving the same tasks as `invoke` in the repo."""

from __future__ import annotations

from invoke.program import Program

from nodeops import __version__
from nodeops.tasks import ns

program = Program(namespace=ns, version=__version__, name="nodeops", binary="nodeops")


def main() -> None:
    """Entry point of the `nodeops` console script."""
    program.run()
