"""Facts: read-only probes of a node, run as one command in one round trip, parsed purely.

Each probe is a `Probe(name, script)`; `facts_command()` runs them all between marker
lines, `split_probes()` takes the output apart and `parse_facts()` turns it into NodeFacts.
"""

from nodeops.facts.nodefacts import (
    PROBES,
    NodeFacts,
    facts_command,
    gather_facts,
    parse_facts,
)
from nodeops.facts.script import Probe, ProbeOutput, split_probes

__all__ = [
    "PROBES",
    "NodeFacts",
    "Probe",
    "ProbeOutput",
    "facts_command",
    "gather_facts",
    "parse_facts",
    "split_probes",
]
