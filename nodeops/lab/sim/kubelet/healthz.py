"""The kubelet's healthz endpoint (healthzBindAddress:healthzPort, 127.0.0.1:10248), which
kubeadm polls while it waits for the kubelet (`curl -sSL http://localhost:10248/healthz`)."""

from __future__ import annotations

import http.server
import threading

from nodeops.lab.sim.kubelet import klog


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?")[0] in ("/healthz", "/healthz/ping", "/healthz/syncloop"):
            body = b"ok"
            self.send_response(200)
        else:
            body = b"404 page not found\n"
            self.send_response(404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # the real kubelet does not log health checks


def serve(address: str, port: int) -> http.server.ThreadingHTTPServer | None:
    """Serve /healthz in a background thread; None when disabled (port 0) or unavailable."""
    if port <= 0:
        return None
    try:
        server = http.server.ThreadingHTTPServer((address, port), _Handler)
    except OSError as e:
        klog.error("server.go:1232", "Failed to start healthz server", err=e)
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
