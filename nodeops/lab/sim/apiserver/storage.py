"""Objects in etcd under /registry, resourceVersion = etcd mod_revision, and a watch cache."""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodeops.lab.sim.apiserver import errors
from nodeops.lab.sim.apiserver.etcd import Etcd, EtcdError, KeyValue
from nodeops.lab.sim.apiserver.resources import RESOURCES, Resource

Obj = dict[str, Any]
_HISTORY = 10_000


def encode(obj: Obj) -> bytes:
    """The stored form: JSON without resourceVersion (etcd's mod_revision is the version)."""
    stored = dict(obj)
    stored["metadata"] = {
        k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"
    }
    return json.dumps(stored, separators=(",", ":")).encode()


def decode(kv: KeyValue) -> Obj:
    """An object read from etcd, with its resourceVersion."""
    obj: Obj = json.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


@dataclass(frozen=True)
class Event:
    """A change to one object, as the watch cache keeps it."""

    revision: int
    plural: str
    group: str
    namespace: str
    kind: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    prev: Obj | None


def _resource_for_key(key: str) -> tuple[Resource, str] | None:
    # Longest prefix first: services/specs vs services/endpoints share "services/".
    best: tuple[Resource, str] | None = None
    for res in RESOURCES:
        prefix = res.etcd_prefix()
        if key.startswith(prefix) and (best is None or len(prefix) > len(best[0].etcd_prefix())):
            rest = key[len(prefix) :]
            namespace = rest.partition("/")[0] if res.namespaced else ""
            best = (res, namespace)
    return best


class WatchCache:
    """Recent events of every resource, fed by one etcd watch on /registry/."""

    def __init__(self, etcd: Etcd, start_revision: int) -> None:
        self._etcd = etcd
        self._events: collections.deque[Event] = collections.deque(maxlen=_HISTORY)
        self._cond = threading.Condition()
        self.oldest = start_revision  # events after this revision are all in the cache
        self.latest = start_revision
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="watch-cache", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                current = self._etcd.revision()
                if current < self.latest:
                    # etcd was restored from a snapshot: its history went backwards, so
                    # every older resourceVersion is now meaningless (clients relist on 410).
                    with self._cond:
                        self._events.clear()
                        self.oldest = self.latest = current
                for ev in self._etcd.watch("/registry/", self.latest + 1):
                    self._add(ev.kind, ev.kv, ev.prev)
            except EtcdError:
                time.sleep(0.5)

    def _add(self, kind: str, kv: KeyValue, prev: KeyValue | None) -> None:
        found = _resource_for_key(kv.key)
        with self._cond:
            if found is not None:
                res, namespace = found
                prev_obj = decode(prev) if prev is not None else None
                if kind == "DELETE":
                    if prev_obj is None:
                        return
                    obj = dict(prev_obj)
                    obj["metadata"] = {
                        **prev_obj["metadata"],
                        "resourceVersion": str(kv.mod_revision),
                    }
                    event_kind = "DELETED"
                else:
                    obj = decode(kv)
                    event_kind = "ADDED" if kv.create_revision == kv.mod_revision else "MODIFIED"
                if len(self._events) == self._events.maxlen:
                    self.oldest = self._events[0].revision
                self._events.append(
                    Event(
                        kv.mod_revision, res.plural, res.group, namespace, event_kind, obj, prev_obj
                    )
                )
            self.latest = max(self.latest, kv.mod_revision)
            self._cond.notify_all()

    def since(self, revision: int, timeout: float) -> list[Event]:
        """Events after `revision`, waiting up to `timeout` seconds for the first one."""
        if revision < self.oldest:
            raise errors.gone(f"too old resource version: {revision} ({self.oldest})")
        with self._cond:
            if self.latest <= revision:
                self._cond.wait(timeout)
            return [e for e in self._events if e.revision > revision]

    def wait_for(self, revision: int, timeout: float) -> None:
        """Block until the cache has seen `revision` (so a watch from a list misses nothing)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.latest < revision and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())

    def stop(self) -> None:
        """Stop after the current etcd stream ends (the thread is a daemon)."""
        self._stop = True


class Store:
    """CRUD on objects kept in etcd."""

    def __init__(self, etcd: Etcd) -> None:
        self.etcd = etcd

    def get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        """One object; NotFound when absent."""
        kv = self._kv(res, namespace, name)
        return decode(kv)

    def _kv(self, res: Resource, namespace: str | None, name: str) -> KeyValue:
        try:
            kv = self.etcd.get(res.etcd_key(namespace, name))
        except EtcdError as exc:
            raise errors.internal(str(exc)) from exc
        if kv is None:
            raise errors.not_found(res, name)
        return kv

    def list(self, res: Resource, namespace: str | None) -> tuple[list[Obj], int]:
        """Every object of `res` (in `namespace` when given) and the store revision."""
        try:
            kvs, revision = self.etcd.range(res.etcd_prefix(namespace), prefix=True)
        except EtcdError as exc:
            raise errors.internal(str(exc)) from exc
        return [decode(kv) for kv in kvs], revision

    def create(self, res: Resource, obj: Obj, *, dry_run: bool = False) -> Obj:
        """Store a new object; AlreadyExists when the key is taken."""
        metadata = obj["metadata"]
        key = res.etcd_key(metadata.get("namespace"), metadata["name"])
        if dry_run:
            if self.etcd.get(key) is not None:
                raise errors.already_exists(res, metadata["name"])
            return obj
        try:
            revision = self.etcd.put_if(key, encode(obj), mod_revision=0)
        except EtcdError as exc:
            raise errors.internal(str(exc)) from exc
        if revision is None:
            raise errors.already_exists(res, metadata["name"])
        metadata["resourceVersion"] = str(revision)
        return obj

    def update(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        mutate: Callable[[Obj], Obj | None],
        *,
        dry_run: bool = False,
    ) -> Obj:
        """Read, mutate and compare-and-swap until it sticks; `mutate` returns None to delete.

        `mutate` gets the current object and may raise an ApiError (e.g. a Conflict when the
        caller's resourceVersion is stale).
        """
        for _ in range(50):
            kv = self._kv(res, namespace, name)
            current = decode(kv)
            new = mutate(current)
            if dry_run:
                return new if new is not None else current
            try:
                if new is None:
                    revision = self.etcd.delete_if(kv.key, mod_revision=kv.mod_revision)
                    if revision is not None:
                        current["metadata"]["resourceVersion"] = str(revision)
                        return current
                    continue
                if encode(new) == kv.value:
                    return current
                revision = self.etcd.put_if(kv.key, encode(new), mod_revision=kv.mod_revision)
            except EtcdError as exc:
                raise errors.internal(str(exc)) from exc
            if revision is not None:
                new["metadata"]["resourceVersion"] = str(revision)
                return new
        raise errors.conflict(res, name, errors.MODIFIED)
