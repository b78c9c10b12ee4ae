"""HTTPS front end: routing, authentication by client certificate, content negotiation, watch."""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nodeops.lab.sim.apiserver import discovery, errors, protobuf, tables
from nodeops.lab.sim.apiserver.errors import ApiError
from nodeops.lab.sim.apiserver.registry import Registry, finished, merge_update
from nodeops.lab.sim.apiserver.resources import GROUPS, Resource, find, in_group
from nodeops.lab.sim.apiserver.storage import Store, WatchCache
from nodeops.lab.sim.kube_patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from nodeops.lab.sim.kube_selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)

Obj = dict[str, Any]
_PUBLIC = ("/healthz", "/livez", "/readyz", "/version")
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


@dataclass(frozen=True)
class Route:
    """A parsed resource path."""

    res: Resource
    namespace: str | None
    name: str | None
    subresource: str


@dataclass(frozen=True)
class User:
    """The authenticated client: certificate CN and O."""

    name: str
    groups: tuple[str, ...]


def _pod_fields(obj: Obj, path: str) -> str | None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    values = {
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.restartPolicy": spec.get("restartPolicy", ""),
        "spec.schedulerName": spec.get("schedulerName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "spec.hostNetwork": str(bool(spec.get("hostNetwork"))).lower(),
        "status.phase": status.get("phase", ""),
        "status.podIP": status.get("podIP", ""),
        "status.nominatedNodeName": status.get("nominatedNodeName", ""),
    }
    return values.get(path)


def field_value(res: Resource, obj: Obj, path: str) -> str | None:
    """The value of a selectable field of `obj` (None: not a selectable field)."""
    meta = obj.get("metadata") or {}
    if path == "metadata.name":
        return str(meta.get("name", ""))
    if path == "metadata.namespace" and res.namespaced:
        return str(meta.get("namespace", ""))
    if res.plural == "pods":
        return _pod_fields(obj, path)
    if res.plural == "nodes" and path == "spec.unschedulable":
        return str(bool((obj.get("spec") or {}).get("unschedulable"))).lower()
    if res.plural == "namespaces" and path == "status.phase":
        return str((obj.get("status") or {}).get("phase", ""))
    if res.plural == "events" and path.startswith("involvedObject."):
        return str((obj.get("involvedObject") or {}).get(path.partition(".")[2], ""))
    if res.plural == "secrets" and path == "type":
        return str(obj.get("type", ""))
    return None


def _strip_type(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


class ApiServer(ThreadingHTTPServer):
    """The simulated kube-apiserver."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        context: ssl.SSLContext,
        store: Store,
        version: Obj,
        advertise: str,
    ) -> None:
        super().__init__(address, Handler)
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )
        self.store = store
        self.registry = Registry(store)
        self.version_info = version
        self.advertise = advertise
        self.cache = WatchCache(store.etcd, store.etcd.revision())
        self.stopping = threading.Event()

    def etcd_ok(self) -> bool:
        """Whether etcd answers."""
        try:
            self.store.etcd.revision()
        except Exception:
            return False
        return True


class Handler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ApiServer
    _read: bool = False

    def setup(self) -> None:
        """Finish the TLS handshake in this thread, not in the accept loop."""
        super().setup()
        conn = self.request
        conn.settimeout(30)
        try:
            conn.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            raise
        conn.settimeout(None)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the apiserver logs only errors."""

    # --- plumbing -------------------------------------------------------------------------

    def _user(self) -> User | None:
        try:
            cert = self.request.getpeercert()
        except (ValueError, AttributeError):
            return None
        if not cert:
            return None
        name, groups = "", []
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    name = value
                elif key == "organizationName":
                    groups.append(value)
        return User(name, (*groups, "system:authenticated"))

    def _send(self, code: int, body: bytes, content_type: str, headers: Obj | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: Any, content_type: str = "application/json") -> None:
        self._send(code, json.dumps(obj).encode(), content_type)

    def _error(self, err: ApiError) -> None:
        headers = {"Retry-After": err.retry_after} if err.retry_after else None
        self._send(err.code, json.dumps(err.status()).encode(), "application/json", headers)

    def _text(self, code: int, text: str) -> None:
        self._send(
            code, text.encode(), "text/plain; charset=utf-8", {"X-Content-Type-Options": "nosniff"}
        )

    def _body(self) -> bytes:
        if self._read:
            return b""
        self._read = True
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> Obj:
        raw = self._body()
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf":
            # kubectl's typed clients (create deployment, drain) send protobuf.
            try:
                return protobuf.decode_object(raw)
            except ValueError as exc:
                raise errors.unsupported_media_type("application/json") from exc
        if ctype not in ("application/json", "*/*", ""):
            raise errors.unsupported_media_type(
                "application/json, application/yaml, application/vnd.kubernetes.protobuf"
            )
        try:
            obj = json.loads(raw or b"{}")
        except ValueError as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request is not a JSON object")
        return obj

    def _accepts_json(self) -> bool:
        accept = self.headers.get("Accept") or "*/*"
        for part in accept.split(","):
            media = part.split(";")[0].strip()
            if media in ("application/json", "*/*", "application/*", "application/yaml", ""):
                return True
        return False

    # --- dispatch ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        """GET."""
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        """HEAD."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """POST."""
        self._dispatch("POST")

    def do_PUT(self) -> None:
        """PUT."""
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        """PATCH."""
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        """DELETE."""
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._read = False
        url = urllib.parse.urlsplit(self.path)
        query = {
            k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()
        }
        path = url.path.rstrip("/") or "/"
        try:
            if path in _PUBLIC or path.startswith(("/healthz/", "/livez/", "/readyz/")):
                self._public(path, query)
                return
            if self._user() is None:
                raise errors.unauthorized()
            if not self._accepts_json() and path != "/openapi/v2":
                raise ApiError(
                    406,
                    "NotAcceptable",
                    "only the following media types are accepted: application/json,"
                    " application/yaml, application/json;stream=watch",
                )
            if self._discovery(path):
                return
            route = self._route(path)
            if route is None:
                raise errors.path_not_found()
            self._resource(method, route, query)
        except ApiError as err:
            self._body_drain(method)
            self._error(err)
        except (ConnectionError, ssl.SSLError, BrokenPipeError):
            self.close_connection = True
        except Exception as exc:  # a bug must cost one request, not the connection thread
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._error(errors.internal(f"{type(exc).__name__}: {exc}"))

    def _body_drain(self, method: str) -> None:
        # Keep the connection usable when we answer before reading the body.
        if method in ("POST", "PUT", "PATCH", "DELETE") and not self._read:
            try:
                self._body()
            except OSError:
                self.close_connection = True

    def _public(self, path: str, query: Obj) -> None:
        if path == "/version":
            self._json(200, self.server.version_info)
            return
        kind = path.strip("/").split("/")[0]
        etcd = self.server.etcd_ok()
        checks = [("ping", True), ("log", True), ("etcd", etcd)]
        if kind == "readyz":
            checks += [("etcd-readiness", etcd), ("informer-sync", True), ("shutdown", True)]
        checks += [("poststarthook/start-apiserver-admission-initializer", True)]
        sub = path.strip("/").partition("/")[2]
        if sub:
            match = [ok for name, ok in checks if name == sub]
            if not match:
                raise errors.path_not_found()
            self._text(200 if match[0] else 500, "ok" if match[0] else "internal server error")
            return
        healthy = all(ok for _, ok in checks)
        if "verbose" in query or not healthy:
            lines = [f"[+]{n} ok" if ok else f"[-]{n} failed: reason withheld" for n, ok in checks]
            lines.append(f"{kind} check {'passed' if healthy else 'failed'}")
            self._text(200 if healthy else 500, "\n".join(lines) + "\n")
        else:
            self._text(200, "ok")

    def _discovery(self, path: str) -> bool:
        accept = self.headers.get("Accept") or ""
        if path in ("/api", "/apis"):
            version = discovery.negotiate_aggregated(accept)
            if version is not None:
                doc = discovery.aggregated(path == "/api", version)
                self._json(200, doc, discovery.AGGREGATED_TYPES[version])
            elif path == "/api":
                host = f"{self.server.advertise}:{self.server.server_address[1]}"
                self._json(200, discovery.api_versions(host))
            else:
                self._json(200, discovery.api_group_list())
            return True
        if path == "/openapi/v2" and "protobuf" in accept:
            # An empty (valid) gnostic Document: kubectl <= 1.27 then skips client-side
            # schema validation instead of failing `create -f` and `apply`.
            self._send(200, b"", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
            return True
        if path == "/openapi/v3":
            self._json(200, discovery.openapi_v3_root())
            return True
        if path.startswith("/openapi/v3/"):
            spec = discovery.openapi_v3_group(path.removeprefix("/openapi/v3/"))
            if spec is None:
                raise errors.path_not_found()
            self._json(200, spec)
            return True
        parts = path.strip("/").split("/")
        if parts == ["api", "v1"]:
            self._json(200, discovery.resource_list("", "v1") or {})
            return True
        if len(parts) == 2 and parts[0] == "apis":
            group = discovery.api_group(parts[1])
            if group is None:
                raise errors.path_not_found()
            self._json(200, group)
            return True
        if len(parts) == 3 and parts[0] == "apis":
            listing = discovery.resource_list(parts[1], parts[2])
            if listing is None:
                raise errors.path_not_found()
            self._json(200, listing)
            return True
        return False

    @staticmethod
    def _route(path: str) -> Route | None:
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis" and (parts[1], parts[2]) in GROUPS:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        plurals = {r.plural for r in in_group(group, version) if r.namespaced}
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in plurals:
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        res = find(group, version, rest[0])
        if res is None:
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in {s.name for s in res.subresources}:
            return None
        return Route(res, namespace, name, sub)

    # --- resources --------------------------------------------------------------------------

    def _resource(self, method: str, route: Route, query: Obj) -> None:
        res = route.res
        dry_run = query.get("dryRun") == "All"
        if route.name is None:
            if method == "GET":
                if query.get("watch") in ("1", "true"):
                    self._watch(route, query)
                else:
                    self._list(route, query)
            elif method == "POST":
                obj = self._json_body()
                created = self.server.registry.create(res, route.namespace, obj, dry_run=dry_run)
                self._json(201, created)
            elif method == "DELETE":
                self._delete_collection(route, query, dry_run)
            else:
                raise errors.method_not_allowed()
            return
        name = route.name
        if method == "GET":
            obj = self.server.store.get(res, route.namespace, name)
            if tables.wants_table(self.headers.get("Accept") or ""):
                table = tables.table(
                    res,
                    [obj],
                    resource_version=obj["metadata"]["resourceVersion"],
                    include=query.get("includeObject", "Metadata"),
                )
                self._json(200, table, tables.TABLE_TYPE)
            else:
                self._json(200, obj)
        elif method == "POST" and route.subresource in ("binding", "eviction"):
            body = self._json_body()
            if route.subresource == "binding":
                self.server.registry.bind(route.namespace or "default", name, body)
                self._json(
                    201,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "code": 201,
                    },
                )
            else:
                result = self.server.registry.evict(
                    route.namespace or "default", name, body, dry_run=dry_run
                )
                self._json(int(result.get("code", 201)), result)
        elif method == "PUT":
            self._update(route, self._json_body(), dry_run)
        elif method == "PATCH":
            self._patch(route, dry_run)
        elif method == "DELETE" and not route.subresource:
            self._delete(route, query, dry_run)
        else:
            raise errors.method_not_allowed()

    def _selectors(self, query: Obj) -> tuple[LabelSelector, FieldSelector]:
        try:
            return (
                parse_label_selector(query.get("labelSelector", "")),
                parse_field_selector(query.get("fieldSelector", "")),
            )
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc

    def _matcher(self, res: Resource, query: Obj) -> Any:
        labels, fields = self._selectors(query)

        def matches(obj: Obj) -> bool:
            if not labels.matches((obj.get("metadata") or {}).get("labels")):
                return False
            try:
                return fields.matches(lambda path: field_value(res, obj, path))
            except SelectorError as exc:
                raise errors.bad_request(str(exc)) from exc

        return matches

    def _list(self, route: Route, query: Obj) -> None:
        res = route.res
        matches = self._matcher(res, query)
        objects, revision = self.server.store.list(res, route.namespace)
        objects = [o for o in objects if matches(o)]
        if tables.wants_table(self.headers.get("Accept") or ""):
            table = tables.table(
                res,
                objects,
                resource_version=str(revision),
                include=query.get("includeObject", "Metadata"),
            )
            self._json(200, table, tables.TABLE_TYPE)
            return
        self._json(
            200,
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.group_version,
                "metadata": {"resourceVersion": str(revision)},
                "items": [_strip_type(o) for o in objects],
            },
        )

    def _update(self, route: Route, body: Obj, dry_run: bool) -> None:
        res, name = route.res, route.name or ""
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") and body_meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({body_meta['name']}) does not match the name on the"
                f" URL ({name})"
            )
        want_rv = body_meta.get("resourceVersion")

        def mutate(current: Obj) -> Obj | None:
            if want_rv and want_rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(res, name, errors.MODIFIED)
            new = merge_update(res, current, body, subresource=route.subresource)
            return None if finished(new) else new

        result = self.server.store.update(res, route.namespace, name, mutate, dry_run=dry_run)
        self._json(200, result)

    def _patch(self, route: Route, dry_run: bool) -> None:
        raw = self._body()
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype not in _PATCH_TYPES:
            raise errors.unsupported_media_type(", ".join(_PATCH_TYPES))
        try:
            patch = json.loads(raw or b"null")
        except ValueError as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from exc
        res, name = route.res, route.name or ""

        def mutate(current: Obj) -> Obj | None:
            try:
                if ctype == "application/json-patch+json":
                    patched = json_patch(current, patch)
                elif ctype == "application/merge-patch+json":
                    patched = merge_patch(current, patch)
                else:
                    patched = strategic_merge_patch(current, patch)
            except (PatchError, KeyError, IndexError, TypeError, ValueError) as exc:
                raise errors.ApiError(422, "Invalid", str(exc)) from exc
            if not isinstance(patched, dict):
                raise errors.bad_request("patched object is not a JSON object")
            want_rv = (patched.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(res, name, errors.MODIFIED)
            new = merge_update(res, current, patched, subresource=route.subresource)
            return None if finished(new) else new

        result = self.server.store.update(res, route.namespace, name, mutate, dry_run=dry_run)
        self._json(200, result)

    def _delete_options(self, query: Obj) -> Obj:
        raw = self._body()
        options: Obj = {}
        if raw.startswith(protobuf.MAGIC):
            try:
                options = protobuf.delete_options(raw)
            except ValueError:
                options = {}
        elif raw.strip():
            try:
                loaded = json.loads(raw)
                options = loaded if isinstance(loaded, dict) else {}
            except ValueError:
                options = {}
        for key in ("gracePeriodSeconds", "propagationPolicy", "orphanDependents"):
            if key in query:
                value: Any = query[key]
                if key == "gracePeriodSeconds":
                    value = int(value)
                elif key == "orphanDependents":
                    value = value == "true"
                options[key] = value
        return options

    def _delete(self, route: Route, query: Obj, dry_run: bool) -> None:
        options = self._delete_options(query)
        res, name = route.res, route.name or ""
        obj, gone = self.server.registry.delete(
            res, route.namespace, name, options, dry_run=dry_run
        )
        if not gone or res.plural == "pods":
            self._json(200, obj)
            return
        details = {"name": name, "kind": res.plural, "uid": obj["metadata"].get("uid")}
        if res.group:
            details["group"] = res.group
        self._json(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            },
        )

    def _delete_collection(self, route: Route, query: Obj, dry_run: bool) -> None:
        options = self._delete_options(query)
        res = route.res
        matches = self._matcher(res, query)
        objects, revision = self.server.store.list(res, route.namespace)
        deleted = []
        for obj in objects:
            if not matches(obj):
                continue
            meta = obj["metadata"]
            try:
                result, _ = self.server.registry.delete(
                    res, meta.get("namespace"), meta["name"], options, dry_run=dry_run
                )
            except ApiError as err:
                if err.code == 404:
                    continue
                raise
            deleted.append(_strip_type(result))
        self._json(
            200,
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.group_version,
                "metadata": {"resourceVersion": str(revision)},
                "items": deleted,
            },
        )

    # --- watch ------------------------------------------------------------------------------

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _client_gone(self) -> bool:
        # A watch client sends nothing after its request: readable means closed.
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _watch(self, route: Route, query: Obj) -> None:
        res = route.res
        matches = self._matcher(res, query)
        as_table = tables.wants_table(self.headers.get("Accept") or "")
        timeout = float(query.get("timeoutSeconds") or random.uniform(1800, 3600))  # noqa: S311
        deadline = time.monotonic() + timeout
        rv = query.get("resourceVersion", "")
        cache = self.server.cache
        initial: list[tuple[str, Obj]] = []
        if rv in ("", "0"):
            objects, revision = self.server.store.list(res, route.namespace)
            initial = [("ADDED", o) for o in objects if matches(o)]
            cache.wait_for(revision, 5.0)
        else:
            try:
                revision = int(rv)
            except ValueError as exc:
                raise errors.bad_request(f"invalid resource version: {rv}") from exc
            if revision < cache.oldest:
                raise errors.gone(f"too old resource version: {revision} ({cache.oldest})")
        self.send_response(200)
        self.send_header("Content-Type", tables.TABLE_TYPE if as_table else "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.close_connection = True
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        last_bookmark = time.monotonic()

        def send(kind: str, obj: Obj) -> None:
            payload = obj
            if as_table and kind != "BOOKMARK":
                payload = tables.table(
                    res,
                    [obj],
                    resource_version=obj["metadata"]["resourceVersion"],
                    include=query.get("includeObject", "Metadata"),
                )
            self._chunk(json.dumps({"type": kind, "object": payload}).encode() + b"\n")

        try:
            for kind, obj in initial:
                send(kind, obj)
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                events = cache.since(revision, min(1.0, max(deadline - time.monotonic(), 0.01)))
                for ev in events:
                    revision = ev.revision
                    if ev.plural != res.plural or ev.group != res.group:
                        continue
                    if route.namespace and ev.namespace != route.namespace:
                        continue
                    now_match = ev.kind != "DELETED" and matches(ev.obj)
                    was_match = ev.prev is not None and matches(ev.prev)
                    if ev.kind == "DELETED":
                        if was_match:
                            send("DELETED", ev.obj)
                    elif now_match and not was_match:
                        send("ADDED", ev.obj)
                    elif now_match:
                        send("MODIFIED", ev.obj)
                    elif was_match:
                        send("DELETED", ev.obj)
                if bookmarks and time.monotonic() - last_bookmark > 30:
                    last_bookmark = time.monotonic()
                    send(
                        "BOOKMARK",
                        {
                            "kind": res.kind,
                            "apiVersion": res.group_version,
                            "metadata": {"resourceVersion": str(revision)},
                        },
                    )
                if not events and self._client_gone():
                    return
            self.wfile.write(b"0\r\n\r\n")
        except ApiError as err:
            status = err.status()
            self._chunk(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, ssl.SSLError):
            return


def make_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    """The serving TLS context: our certificate, and client certificates checked when sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def wait_listening(host: str, port: int, timeout: float) -> bool:
    """Whether something accepts TCP connections on host:port within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False
