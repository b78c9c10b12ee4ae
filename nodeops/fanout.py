"""Fan-out: one connection per node for the whole run, bounded parallel work across nodes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from nodeops.errors import NodeopsError
from nodeops.node import Node
from nodeops.transport import FabricTransport, SSHOptions, Transport

T = TypeVar("T")
Item = TypeVar("Item")

DEFAULT_PARALLEL = 32


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one node's share of a fan-out gave: a value, or the error that stopped it."""

    node: Node
    value: T | None = None
    error: NodeopsError | None = None

    @property
    def ok(self) -> bool:
        """Whether the node's work finished without an error."""
        return self.error is None


class Sessions:
    """The run's connections: one transport per node, opened on first use, closed together."""

    def __init__(
        self,
        options: SSHOptions,
        factory: Callable[[Node, SSHOptions], Transport] = FabricTransport,
    ) -> None:
        self.options = options
        self._factory = factory
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Sessions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to(self, node: Node) -> Transport:
        """The transport for a node, made on first use and reused after."""
        with self._lock:
            transport = self._transports.get(node.name)
            if transport is None:
                transport = self._factory(node, self.options)
                self._transports[node.name] = transport
            return transport

    def close(self) -> None:
        """Close every connection this run opened."""
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            transport.close()

    def each(
        self,
        nodes: Sequence[Node],
        work: Callable[[Transport], T],
        *,
        parallel: int = DEFAULT_PARALLEL,
    ) -> list[Outcome[T]]:
        """Run work on every node, at most `parallel` at once; outcomes in node order.

        A node's NodeopsError (unreachable, refused host key, failed command) becomes its
        outcome; the other nodes carry on. Any other exception is a bug and propagates.
        """

        def one(node: Node) -> Outcome[T]:
            try:
                return Outcome(node, value=work(self.to(node)))
            except NodeopsError as error:
                return Outcome(node, error=error)

        return map_bounded(one, nodes, parallel)


def map_bounded(work: Callable[[Item], T], nodes: Iterable[Item], parallel: int) -> list[T]:
    """Apply work to nodes (or anything per node) in a bounded thread pool, results in input
    order."""
    items = list(nodes)
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, not {parallel}")
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(parallel, len(items))) as pool:
        return list(pool.map(work, items))
