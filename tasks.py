"""Invoke entry point: `invoke --list`. The tasks live in nodeops/tasks so that the installed
`nodeops` command serves exactly the same tree."""

from nodeops.tasks import ns

__all__ = ["ns"]
