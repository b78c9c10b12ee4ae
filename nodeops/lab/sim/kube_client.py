"""A small Kubernetes API client for the simulated components (kubeconfig with client certs)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]


class ApiStatusError(Exception):
    """The API answered with an error Status."""

    def __init__(self, code: int, status: Obj) -> None:
        super().__init__(f"{code}: {status.get('message', status)}")
        self.code = code
        self.status = status


def _context_from_kubeconfig(path: Path) -> tuple[str, ssl.SSLContext]:
    config = yaml.safe_load(path.read_text())
    current = config.get("current-context")
    context = next(c["context"] for c in config["contexts"] if c["name"] == current)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    ssl_context = ssl.create_default_context()
    if "certificate-authority-data" in cluster:
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        ssl_context.load_verify_locations(cadata=ca)
    elif "certificate-authority" in cluster:
        ssl_context.load_verify_locations(cluster["certificate-authority"])
    cert = user.get("client-certificate-data")
    key = user.get("client-key-data")
    if cert and key:
        # ssl loads client certificates only from files: use a private temporary file.
        with tempfile.TemporaryDirectory() as tmp:
            pem = Path(tmp) / "client.pem"
            fd = os.open(pem, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, base64.b64decode(cert) + b"\n" + base64.b64decode(key))
            os.close(fd)
            ssl_context.load_cert_chain(pem)
    elif user.get("client-certificate") and user.get("client-key"):
        ssl_context.load_cert_chain(user["client-certificate"], user["client-key"])
    return str(cluster["server"]), ssl_context


class Client:
    """JSON over HTTPS to one apiserver; one keep-alive connection per thread."""

    def __init__(self, server: str, context: ssl.SSLContext, *, timeout: float = 10.0) -> None:
        url = urllib.parse.urlsplit(server)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 443
        self.context = context
        self.timeout = timeout
        self._local = threading.local()

    @classmethod
    def from_kubeconfig(cls, path: str | Path) -> Client:
        """A client for the current context of a kubeconfig."""
        server, context = _context_from_kubeconfig(Path(path))
        return cls(server, context)

    def _connect(self, timeout: float | None) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(
            self.host, self.port, timeout=timeout, context=self.context
        )
        conn.connect()
        if conn.sock is not None:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        """One request; the decoded JSON answer, or ApiStatusError."""
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        payload = None if body is None else json.dumps(body)
        headers = {"Accept": "application/json", "User-Agent": "nodeops-sim"}
        if payload is not None:
            headers["Content-Type"] = content_type
        for attempt in range(2):
            conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
            try:
                if conn is None:
                    conn = self._connect(self.timeout)
                    self._local.conn = conn
                conn.request(method, path, payload, headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                self._local.conn = None
                if attempt:
                    raise
                continue
            result: Obj = json.loads(data) if data else {}
            if resp.status >= 400:
                raise ApiStatusError(resp.status, result)
            return result
        raise ConnectionError("unreachable")

    def get(self, path: str, **params: str) -> Obj:
        """GET."""
        return self.request("GET", path, params=params or None)

    def items(self, path: str, **params: str) -> list[Obj]:
        """The items of a list."""
        return list(self.get(path, **params).get("items") or [])

    def create(self, path: str, obj: Obj) -> Obj:
        """POST."""
        return self.request("POST", path, obj)

    def update(self, path: str, obj: Obj) -> Obj:
        """PUT."""
        return self.request("PUT", path, obj)

    def patch(self, path: str, patch: Any, kind: str = "strategic") -> Obj:
        """PATCH with `kind` strategic, merge or json."""
        ctype = {
            "strategic": "application/strategic-merge-patch+json",
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
        }[kind]
        return self.request("PATCH", path, patch, content_type=ctype)

    def delete(self, path: str, options: Obj | None = None) -> Obj:
        """DELETE with optional DeleteOptions."""
        return self.request("DELETE", path, options)

    def watch(self, path: str, **params: str) -> Iterator[Obj]:
        """Watch events ({type, object}) until the server ends the stream."""
        query = urllib.parse.urlencode({**params, "watch": "1"})
        conn = self._connect(None)
        try:
            conn.request("GET", f"{path}?{query}", headers={"Accept": "application/json"})
            resp = conn.getresponse()
            if resp.status >= 400:
                raise ApiStatusError(resp.status, json.loads(resp.read() or b"{}"))
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()


def resource_path(
    api_version: str, plural: str, namespace: str | None = None, name: str = ""
) -> str:
    """The REST path of a collection or object."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    return f"{base}/{name}" if name else base


class ChangeGate:
    """Tells a polling loop whether anything changed since its last full pass.

    Any list answer carries the store's current revision; while it stays put, a controller
    can skip its pass (up to `max_idle` seconds, for the time-driven parts).
    """

    def __init__(self, client: Client, *, max_idle: float) -> None:
        self.client = client
        self.max_idle = max_idle
        self._seen = ""
        self._last = 0.0

    def changed(self) -> bool:
        """Whether to run a pass now."""
        revision = str(
            self.client.get("/api/v1/namespaces", limit="1")
            .get("metadata", {})
            .get("resourceVersion")
        )
        now = time.monotonic()
        if revision == self._seen and now - self._last < self.max_idle:
            return False
        self._seen = revision
        self._last = now
        return True
