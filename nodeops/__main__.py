"""`python -m nodeops` is the `nodeops` command."""

from nodeops.cli import main

main()
