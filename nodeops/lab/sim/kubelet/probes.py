"""Startup and readiness probes (httpGet, tcpSocket) of running containers.

Upstream semantics, on lab time: a container counts as started once its startupProbe
succeeded (at once without one) and as ready once started and its readinessProbe succeeded.
initialDelaySeconds and periodSeconds are capped at 1 s so that a control plane is Ready in
seconds rather than the ~10-20 s kubeadm's manifests ask for. Liveness probes, exec and gRPC
probes are not run (exec and gRPC count as succeeding).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LAB_MAX_SECONDS = 1.0
TIMEOUT_MAX = 1.0


@dataclass
class ProbeState:
    """What the prober knows about one container."""

    started_at: float
    started: bool = False
    ready: bool = False
    last: float = 0.0


def _port(value: object, container: dict[str, Any]) -> int:
    if isinstance(value, int):
        return value
    for p in container.get("ports") or []:
        if p.get("name") == value:
            return int(p["containerPort"])
    return int(str(value))


def run_probe(probe: dict[str, Any], container: dict[str, Any], pod_ip: str) -> bool:
    """One probe attempt: HTTP status 200-399 or an accepted TCP connection is success."""
    timeout = min(float(probe.get("timeoutSeconds") or 1), TIMEOUT_MAX)
    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            host = str(get.get("host") or pod_ip)
            port = _port(get.get("port"), container)
            conn: http.client.HTTPConnection
            if str(get.get("scheme") or "HTTP").upper() == "HTTPS":
                # The kubelet does not verify the certificates of the endpoints it probes.
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                conn.request("GET", str(get.get("path") or "/"), headers=headers)
                return 200 <= conn.getresponse().status < 400
            finally:
                conn.close()
        if "tcpSocket" in probe:
            tcp = probe["tcpSocket"]
            host = str(tcp.get("host") or pod_ip)
            with socket.create_connection((host, _port(tcp.get("port"), container)), timeout):
                return True
    except (OSError, http.client.HTTPException, ValueError):
        return False
    return True


def _due(probe: dict[str, Any], state: ProbeState, now: float) -> bool:
    delay = min(float(probe.get("initialDelaySeconds") or 0), LAB_MAX_SECONDS)
    period = min(float(probe.get("periodSeconds") or 10), LAB_MAX_SECONDS)
    return now - state.started_at >= delay and now - state.last >= period


def step(
    container: dict[str, Any],
    state: ProbeState,
    pod_ip: str,
    now: float,
    attempt: Callable[[dict[str, Any], dict[str, Any], str], bool] = run_probe,
) -> bool:
    """Advance a container's probe state by one attempt when due; whether anything changed."""
    before = (state.started, state.ready)
    startup, readiness = container.get("startupProbe"), container.get("readinessProbe")
    if not state.started:
        if not startup:
            state.started = True
        elif _due(startup, state, now):
            state.last = now
            state.started = attempt(startup, container, pod_ip)
    if state.started:
        if not readiness:
            state.ready = True
        elif _due(readiness, state, now) or state.last == 0.0:
            state.last = now
            state.ready = attempt(readiness, container, pod_ip)
    return (state.started, state.ready) != before


class Prober:
    """Probes running containers in a thread of its own, so slow endpoints never stall syncs."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.states: dict[tuple[str, str], ProbeState] = {}
        self.targets: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self.lock = threading.Lock()
        self.on_change = on_change

    def watch(
        self, key: tuple[str, str], container: dict[str, Any], pod_ip: str, t0: float
    ) -> None:
        """Probe this container (pod uid, name) from now on; t0 is when its process started."""
        with self.lock:
            if key not in self.states or self.targets.get(key, ({}, ""))[0] != container:
                state = ProbeState(started_at=t0)
                state.started = not container.get("startupProbe")
                state.ready = state.started and not container.get("readinessProbe")
                self.states[key] = state
            self.targets[key] = (container, pod_ip)

    def reset(self, key: tuple[str, str]) -> None:
        """Start over for a container (a new process: not started, not ready)."""
        with self.lock:
            self.targets.pop(key, None)
            self.states.pop(key, None)

    def forget(self, keep: set[tuple[str, str]]) -> None:
        """Stop probing containers not in keep."""
        with self.lock:
            for key in set(self.targets) - keep:
                self.targets.pop(key, None)
                self.states.pop(key, None)

    def result(self, key: tuple[str, str]) -> tuple[bool, bool]:
        """(started, ready) of a container; (False, False) before its first probe."""
        with self.lock:
            s = self.states.get(key)
            return (s.started, s.ready) if s else (False, False)

    def run(self, stop: threading.Event) -> None:
        """Probe due containers every 0.2 s until stop is set."""
        while not stop.wait(0.2):
            with self.lock:
                work = [(k, c, ip, self.states[k]) for k, (c, ip) in self.targets.items()]
            changed = False
            for _, container, ip, state in work:
                changed |= step(container, state, ip, time.monotonic())
            if changed:
                self.on_change()
