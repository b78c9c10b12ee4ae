"""A placeholder container process: it runs until told to stop, like a quiet server would.

`python -m nodeops.lab.sim.container NAMESPACE/POD/CONTAINER IMAGE [command words...]`; the
words are only there so `ps` shows what the container stands for.
"""

from __future__ import annotations

import os
import signal
import sys

#: Set for containers of run-to-completion pods (restartPolicy Never or OnFailure).
COMPLETES_ENV = "NODEOPS_CONTAINER_COMPLETES"


def main(argv: list[str]) -> int:
    """Block until SIGTERM or SIGINT, then exit 0 (a container that shuts down cleanly); with
    $NODEOPS_CONTAINER_COMPLETES set, finish at once with 0 (a batch job that did its work)."""
    sigs = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    if argv:
        print(f"container {argv[0]} started", file=sys.stderr, flush=True)
    if os.environ.get(COMPLETES_ENV):
        return 0
    signal.sigwait(sigs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
