"""The HTTPS health endpoints kube-controller-manager and kube-scheduler serve.

kubeadm's manifests probe https://127.0.0.1:10257/healthz and :10259/healthz; the real
components answer with a self-signed serving certificate (the kubelet does not verify probe
certificates), and refuse to start when the port is taken.
"""

from __future__ import annotations

import datetime
import os
import signal
import ssl
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


def _self_signed(component: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{component}@localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        status, body = (200, b"ok") if path in HEALTH_PATHS else (404, b"404 page not found\n")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Probes every second would flood the component's log."""


def serve_healthz(bind_address: str, port: int, component: str) -> ThreadingHTTPServer:
    """Serve the health endpoints over HTTPS in a daemon thread; OSError when the port is taken."""
    cert, key = _self_signed(component)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # ssl reads certificates only from files: a private temp file, removed once loaded.
    handle, path = tempfile.mkstemp(prefix=f"{component}-serving-", suffix=".pem")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(cert + key)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    server = ThreadingHTTPServer((bind_address or "0.0.0.0", port), _Health)  # noqa: S104
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="healthz", daemon=True).start()
    return server


def listen_error(bind_address: str, port: int, error: OSError) -> str:
    """The message the real components print when their secure port cannot be bound."""
    where = f"{bind_address or '0.0.0.0'}:{port}"  # noqa: S104 - a message, not a bind
    return (
        f"failed to create listener: failed to listen on {where}:"
        f" listen tcp {where}: bind: {error.strerror or error}"
    )


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT: how the kubelet stops a component's container."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    return stop


def serve_component_healthz(flags: dict[str, str], default_port: int, component: str) -> bool:
    """Serve --bind-address:--secure-port; False, with the component's error, when it is taken."""
    bind = flags.get("bind-address", "0.0.0.0")  # noqa: S104 - upstream's default
    port = int(flags.get("secure-port", str(default_port)))
    try:
        serve_healthz(bind, port, component)
    except OSError as exc:
        print(f"E {listen_error(bind, port, exc)}", file=sys.stderr)
        return False
    return True
