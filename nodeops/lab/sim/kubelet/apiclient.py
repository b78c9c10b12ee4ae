"""A small Kubernetes API client over HTTPS with the client certificate of a kubeconfig."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import ssl
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

JSON = "application/json"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """An API request that failed: status 0 when the server could not be reached."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Credentials:
    """Where the server is and the PEM material to reach it."""

    server: str
    ca_pem: str
    cert_pem: str
    key_pem: str


def _material(entry: dict[str, Any], data_key: str, file_key: str, base: Path) -> str:
    if entry.get(data_key):
        return base64.b64decode(entry[data_key]).decode()
    if entry.get(file_key):
        path = Path(str(entry[file_key]))
        return (path if path.is_absolute() else base / path).read_text()
    return ""


def load_kubeconfig(path: str) -> Credentials:
    """Read the current context of a kubeconfig (embedded data or file references)."""
    p = Path(path)
    doc = yaml.safe_load(p.read_text()) or {}
    contexts = {c["name"]: c.get("context") or {} for c in doc.get("contexts") or []}
    current = contexts.get(doc.get("current-context") or "") or next(iter(contexts.values()), {})
    clusters = {c["name"]: c.get("cluster") or {} for c in doc.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in doc.get("users") or []}
    cluster = clusters.get(current.get("cluster", ""), {})
    user = users.get(current.get("user", ""), {})
    if not cluster.get("server"):
        raise ValueError(f"{path}: no server in the current context")
    return Credentials(
        server=str(cluster["server"]),
        ca_pem=_material(cluster, "certificate-authority-data", "certificate-authority", p.parent),
        cert_pem=_material(user, "client-certificate-data", "client-certificate", p.parent),
        key_pem=_material(user, "client-key-data", "client-key", p.parent),
    )


def ssl_context(creds: Credentials) -> ssl.SSLContext:
    """A TLS client context trusting the cluster CA and presenting the client certificate."""
    ctx = ssl.create_default_context(cadata=creds.ca_pem or None)
    if not creds.ca_pem:
        ctx.load_default_certs()
    if creds.cert_pem and creds.key_pem:
        # ssl loads client keys only from files: a private temp file, removed right away.
        fd, name = tempfile.mkstemp(prefix=".kubelet-client-", suffix=".pem")
        try:
            # kubelet-client-current.pem holds both; write it once then.
            same = creds.cert_pem == creds.key_pem
            with os.fdopen(fd, "w") as f:
                f.write(creds.cert_pem if same else creds.cert_pem.rstrip() + "\n" + creds.key_pem)
            ctx.load_cert_chain(name)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
    return ctx


class Client:
    """JSON requests to one API server; one keep-alive connection per thread."""

    def __init__(self, creds: Credentials, *, timeout: float = 10.0, agent: str = "") -> None:
        url = urllib.parse.urlsplit(creds.server)
        self.host = url.hostname or "localhost"
        self.port = url.port or 443
        self.prefix = url.path.rstrip("/")
        self.ctx = ssl_context(creds)
        self.timeout = timeout
        self.agent = agent or "kubelet/v1.29.3 (linux/amd64) kubernetes/nodeops"
        self._local = threading.local()

    def _conn(self, timeout: float | None = None) -> http.client.HTTPSConnection:
        conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(
                self.host, self.port, context=self.ctx, timeout=timeout or self.timeout
            )
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = JSON,
        query: dict[str, str] | None = None,
    ) -> Any:
        """Send a request; the decoded JSON answer, or ApiError."""
        url = self.prefix + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": JSON, "User-Agent": self.agent}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                # A kept-alive connection the server closed: retry once on a new one.
                if attempt == 0 and isinstance(
                    e, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError
                ):
                    continue
                raise ApiError(0, "Unreachable", f"{method} {url}: {e}") from None
            if resp.getheader("Connection", "").lower() == "close":
                self._drop()
            return _decode(resp.status, raw, method, url)
        raise ApiError(0, "Unreachable", f"{method} {url}: no answer")

    def get(self, path: str, **query: str) -> Any:
        """GET path."""
        return self.request("GET", path, query=query or None)

    def watch(self, path: str, query: dict[str, str], timeout: float) -> Iterator[dict[str, Any]]:
        """Stream watch events (one JSON object per line) on a connection of its own."""
        url = self.prefix + path + "?" + urllib.parse.urlencode({**query, "watch": "true"})
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
        try:
            conn.request("GET", url, headers={"Accept": JSON, "User-Agent": self.agent})
            resp = conn.getresponse()
            if resp.status != 200:
                _decode(resp.status, resp.read(), "GET", url)
                raise ApiError(resp.status, "Unexpected", f"watch {url}: status {resp.status}")
            while True:
                row = resp.readline()
                if not row:
                    return
                if row.strip():
                    yield json.loads(row)
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise ApiError(0, "Unreachable", f"watch {url}: {e}") from None
        finally:
            conn.close()


def _decode(status: int, raw: bytes, method: str, url: str) -> Any:
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        doc = {"message": raw[:200].decode(errors="replace")}
    if 200 <= status < 300:
        return doc
    if not isinstance(doc, dict):
        doc = {}
    raise ApiError(
        status,
        str(doc.get("reason") or http.client.responses.get(status, "")),
        str(doc.get("message") or f"{method} {url}"),
    )
