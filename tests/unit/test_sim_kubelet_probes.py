"""Startup and readiness probes of the simulated kubelet."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from nodeops.lab import manifests
from nodeops.lab.sim.kubelet import probes


def test_startup_then_readiness_on_lab_time() -> None:
    api = manifests.apiserver_manifest("10.0.0.11", "v1.29.3")["spec"]["containers"][0]
    answers: list[bool] = []
    asked: list[str] = []

    def attempt(probe: dict[str, Any], container: dict[str, Any], ip: str) -> bool:
        asked.append(probe["httpGet"]["path"])
        return answers.pop(0)

    state = probes.ProbeState(started_at=100.0)
    # kubeadm asks for a 10 s initial delay; the lab waits at most 1 s.
    assert not probes.step(api, state, "10.0.0.11", 100.5, attempt)
    assert asked == []
    answers[:] = [False]
    assert not probes.step(api, state, "10.0.0.11", 101.0, attempt)
    assert asked == ["/livez"] and not state.started  # startupProbe failed
    answers[:] = [True]
    assert probes.step(api, state, "10.0.0.11", 102.0, attempt)
    assert state.started and not state.ready
    answers[:] = [True]
    assert probes.step(api, state, "10.0.0.11", 103.0, attempt)
    assert asked[-1] == "/readyz" and state.ready
    answers[:] = [False]
    assert probes.step(api, state, "10.0.0.11", 104.0, attempt)
    assert state.started and not state.ready  # readiness can be lost again


def test_containers_without_probes_are_ready_at_once() -> None:
    prober = probes.Prober(lambda: None)
    prober.watch(("uid", "c"), {"name": "c", "image": "nginx"}, "10.0.0.1", 0.0)
    assert prober.result(("uid", "c")) == (True, True)
    prober.watch(("uid", "p"), {"name": "p", "readinessProbe": {"tcpSocket": {"port": 1}}}, "", 0)
    assert prober.result(("uid", "p")) == (True, False)
    prober.forget({("uid", "c")})
    assert prober.result(("uid", "p")) == (False, False)


@pytest.fixture
def server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_and_tcp_probes_against_a_real_endpoint(server: int) -> None:
    container = {"name": "c", "ports": [{"name": "http", "containerPort": server}]}
    ok = {"httpGet": {"path": "/readyz", "port": "http", "scheme": "HTTP"}}
    bad = {"httpGet": {"path": "/livez", "port": server, "host": "127.0.0.1"}}
    assert probes.run_probe(ok, container, "127.0.0.1")
    assert not probes.run_probe(bad, container, "127.0.0.1")
    assert probes.run_probe({"tcpSocket": {"port": server}}, container, "127.0.0.1")
    closed = {"tcpSocket": {"port": 1, "host": "127.0.0.1"}}
    assert not probes.run_probe(closed, container, "127.0.0.1")
    assert probes.run_probe({"exec": {"command": ["true"]}}, container, "127.0.0.1")
