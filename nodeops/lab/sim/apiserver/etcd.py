"""A small etcd v3 client over the gRPC gateway's JSON API (HTTPS, client certificates).

etcd 3.4 serves `/v3/kv/*` and `/v3/watch` on its client port. Python etcd clients break
with current protobuf, and the apiserver needs only range, put, compare-and-swap and watch.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class EtcdError(Exception):
    """etcd unreachable or answering with an error."""


@dataclass(frozen=True)
class KeyValue:
    """One key with its value and revisions."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True)
class WatchEvent:
    """A put or delete seen by a watch; `prev` is the value before it."""

    kind: str  # PUT or DELETE
    kv: KeyValue
    prev: KeyValue | None
    revision: int


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with `prefix`."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return raw.decode()


def _kv(data: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=base64.b64decode(data.get("key", "")).decode(),
        value=base64.b64decode(data.get("value", "")),
        create_revision=int(data.get("create_revision", 0)),
        mod_revision=int(data.get("mod_revision", 0)),
    )


class Etcd:
    """Client for one etcd endpoint; safe to share between threads (one connection each)."""

    def __init__(self, endpoint: str, *, ca: str, cert: str, key: str, timeout: float = 5.0):
        url = urllib.parse.urlsplit(endpoint)
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or 2379
        self._https = url.scheme == "https"
        self._timeout = timeout
        self._context: ssl.SSLContext | None = None
        if self._https:
            self._context = ssl.create_default_context(cafile=ca)
            self._context.load_cert_chain(cert, key)
        self._local = threading.local()

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        conn.connect()
        if conn.sock is not None:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body)
        for attempt in range(2):
            conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
            try:
                if conn is None:
                    conn = self._connect(self._timeout)
                    self._local.conn = conn
                conn.request("POST", path, payload, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                self._local.conn = None
                if attempt:
                    raise EtcdError(f"etcd {self._host}:{self._port}: {exc}") from exc
                continue
            result: dict[str, Any] = json.loads(data or b"{}")
            if resp.status != 200 or "error" in result:
                raise EtcdError(f"etcd {path}: {resp.status} {result.get('error', data[:200])}")
            return result
        raise EtcdError("unreachable")

    def range(self, key: str, *, prefix: bool = False) -> tuple[list[KeyValue], int]:
        """Values at `key` (or under it), and the store revision."""
        body: dict[str, Any] = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(prefix_end(key))
        result = self._call("/v3/kv/range", body)
        revision = int(result.get("header", {}).get("revision", 0))
        return [_kv(kv) for kv in result.get("kvs", [])], revision

    def get(self, key: str) -> KeyValue | None:
        """The value at `key`, if any."""
        kvs, _ = self.range(key)
        return kvs[0] if kvs else None

    def revision(self) -> int:
        """The current store revision."""
        result = self._call("/v3/kv/range", {"key": _b64("\0"), "count_only": True})
        return int(result.get("header", {}).get("revision", 0))

    def put_if(self, key: str, value: bytes, *, mod_revision: int) -> int | None:
        """Put if the key's mod_revision is `mod_revision` (0: absent); new revision or None."""
        compare: dict[str, Any] = {"key": _b64(key), "result": "EQUAL"}
        if mod_revision:
            compare.update(target="MOD", mod_revision=str(mod_revision))
        else:
            compare.update(target="CREATE", create_revision="0")
        result = self._call(
            "/v3/kv/txn",
            {
                "compare": [compare],
                "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
            },
        )
        if not result.get("succeeded"):
            return None
        return int(result.get("header", {}).get("revision", 0))

    def delete_if(self, key: str, *, mod_revision: int) -> int | None:
        """Delete when the key's mod_revision is `mod_revision`; new revision or None."""
        result = self._call(
            "/v3/kv/txn",
            {
                "compare": [
                    {
                        "key": _b64(key),
                        "result": "EQUAL",
                        "target": "MOD",
                        "mod_revision": str(mod_revision),
                    }
                ],
                "success": [{"request_delete_range": {"key": _b64(key)}}],
            },
        )
        if not result.get("succeeded"):
            return None
        return int(result.get("header", {}).get("revision", 0))

    def watch(self, prefix: str, start_revision: int) -> Iterator[WatchEvent]:
        """Events under `prefix` from `start_revision` on; ends when the stream breaks."""
        conn = self._connect(None)
        try:
            body = {
                "create_request": {
                    "key": _b64(prefix),
                    "range_end": _b64(prefix_end(prefix)),
                    "start_revision": str(start_revision),
                    "prev_kv": True,
                }
            }
            conn.request("POST", "/v3/watch", json.dumps(body))
            resp = conn.getresponse()
            if resp.status != 200:
                raise EtcdError(f"etcd watch: {resp.status} {resp.read()[:200]!r}")
            while True:
                line = resp.readline()
                if not line:
                    return
                message = json.loads(line)
                if "error" in message:
                    raise EtcdError(f"etcd watch: {message['error']}")
                result = message.get("result", {})
                if result.get("compact_revision") and result.get("canceled"):
                    raise EtcdError(f"etcd watch compacted at {result['compact_revision']}")
                for event in result.get("events", []):
                    kv = _kv(event["kv"])
                    prev = _kv(event["prev_kv"]) if "prev_kv" in event else None
                    yield WatchEvent(
                        kind=event.get("type", "PUT"),
                        kv=kv,
                        prev=prev,
                        revision=kv.mod_revision,
                    )
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise EtcdError(f"etcd watch: {exc}") from exc
        finally:
            conn.close()
