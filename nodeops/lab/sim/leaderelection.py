"""Lease-based leader election for the simulated controller-manager and scheduler.

Follows client-go's tools/leaderelection with a LeaseLock: a coordination.k8s.io/v1 Lease in
kube-system named after the component, holderIdentity `<hostname>_<uuid>`; a candidate takes
the lease once it has seen the same record unchanged for leaseDuration (its own clock, not the
renewTime, as upstream), the holder renews every retryPeriod, and writes carry the
resourceVersion they read so that two candidates never both win. Defaults are the components'
(--leader-elect-lease-duration=15s, --leader-elect-renew-deadline=10s,
--leader-elect-retry-period=2s).

Divergences, on purpose: a holder that cannot renew within the renew deadline goes back to
being a candidate instead of exiting (upstream exits and the kubelet restarts it); both
components release the lease when stopped (client-go's ReleaseOnCancel), so a restarted
component takes over within one retry period instead of a lease duration.
"""

from __future__ import annotations

import datetime
import http.client
import re
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from nodeops.lab.sim.kube_client import ApiStatusError

Obj = dict[str, Any]
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


class LeaseClient(Protocol):
    """The API calls an elector makes (nodeops.lab.sim.kube_client.Client has them)."""

    def get(self, path: str, **params: str) -> Obj:
        """GET a path."""

    def create(self, path: str, obj: Obj) -> Obj:
        """POST to a collection."""

    def update(self, path: str, obj: Obj) -> Obj:
        """PUT an object."""


@dataclass(frozen=True)
class ElectionConfig:
    """A component's leader election settings, from its flags or configuration file."""

    enabled: bool = True
    name: str = ""
    namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


def _duration(text: str) -> float:
    """A Go duration (15s, 1m30s, 500ms) in seconds."""
    total = 0.0
    parts = re.findall(r"([0-9.]+)(ms|s|m|h)", text)
    for number, unit in parts:
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total if parts else float(text)


def config_from_flags(flags: Mapping[str, str], component: str) -> ElectionConfig:
    """--leader-elect and --leader-elect-* flags (upstream defaults when absent)."""
    return ElectionConfig(
        enabled=flags.get("leader-elect", "true").lower() in ("true", "1", "t"),
        name=flags.get("leader-elect-resource-name", component),
        namespace=flags.get("leader-elect-resource-namespace", "kube-system"),
        lease_duration=_duration(flags.get("leader-elect-lease-duration", "15s")),
        renew_deadline=_duration(flags.get("leader-elect-renew-deadline", "10s")),
        retry_period=_duration(flags.get("leader-elect-retry-period", "2s")),
    )


def config_from_file(section: Mapping[str, Any] | None, component: str) -> ElectionConfig:
    """A component configuration's `leaderElection` section (LeaderElectionConfiguration)."""
    s = section or {}
    return ElectionConfig(
        enabled=bool(s.get("leaderElect", True)),
        name=str(s.get("resourceName") or component),
        namespace=str(s.get("resourceNamespace") or "kube-system"),
        lease_duration=_duration(str(s.get("leaseDuration") or "15s")),
        renew_deadline=_duration(str(s.get("renewDeadline") or "10s")),
        retry_period=_duration(str(s.get("retryPeriod") or "2s")),
    )


def micro_time(moment: datetime.datetime) -> str:
    """metav1.MicroTime's JSON form (RFC 3339 with microseconds)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_identity() -> str:
    """`<hostname>_<uuid>`, as kube-controller-manager and kube-scheduler name themselves."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


#: What a failed API call raises: the lease is left as it is until the next retry.
_API_ERRORS = (OSError, ValueError, KeyError, http.client.HTTPException, ApiStatusError)


class LeaderElector:
    """One candidate for one lease; call `leading()` from the component's loop."""

    def __init__(
        self,
        client: LeaseClient,
        config: ElectionConfig,
        *,
        identity: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.client = client
        self.config = config
        self.identity = identity or new_identity()
        self.clock, self.wall, self.log = clock, wall, log
        self.path = LEASES.format(namespace=config.namespace) + f"/{config.name}"
        self._observed: Obj | None = None  # the lease's spec as last read
        self._observed_at = 0.0
        self._renewed_at: float | None = None  # when this candidate last wrote the lease
        self._attempted_at: float | None = None

    @property
    def holder(self) -> str:
        """The holder of the lease as last seen ("" when none)."""
        return str((self._observed or {}).get("holderIdentity") or "")

    def _is_leader(self) -> bool:
        if self._renewed_at is None:
            return False
        return self.clock() - self._renewed_at < self.config.renew_deadline

    def leading(self) -> bool:
        """Try to acquire or renew when a retry period has passed; whether this one leads."""
        if not self.config.enabled:
            return True
        now = self.clock()
        if self._attempted_at is None or now - self._attempted_at >= self.config.retry_period:
            self._attempted_at = now
            was = self._is_leader()
            try:
                if self._try_acquire_or_renew():
                    self._renewed_at = self.clock()
            except _API_ERRORS as exc:
                self.log(
                    f"error retrieving or updating lease {self.config.namespace}/"
                    f"{self.config.name}: {exc}"
                )
            is_now = self._is_leader()
            if is_now and not was:
                self.log(f"successfully acquired lease {self.config.namespace}/{self.config.name}")
            elif was and not is_now:
                self.log(f"failed to renew lease {self.config.namespace}/{self.config.name}")
                self._renewed_at = None
        return self._is_leader()

    def _spec(self, acquire: str, transitions: int, *, holder: str | None = None) -> Obj:
        stamp = micro_time(self.wall())
        return {
            "holderIdentity": self.identity if holder is None else holder,
            "leaseDurationSeconds": max(1, int(self.config.lease_duration)),
            "acquireTime": acquire or stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }

    def _try_acquire_or_renew(self) -> bool:
        """tryAcquireOrRenew: create the lease, renew ours, or take an expired one."""
        try:
            lease = self.client.get(self.path)
        except ApiStatusError as exc:
            if exc.code != 404:
                raise
            spec = self._spec("", 0)
            obj: Obj = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                "spec": spec,
            }
            created = self.client.create(LEASES.format(namespace=self.config.namespace), obj)
            self._observe(created.get("spec") or spec)
            return True
        spec = dict(lease.get("spec") or {})
        self._observe(spec)
        holder = str(spec.get("holderIdentity") or "")
        mine = holder == self.identity
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
        if holder and not mine and self.clock() < self._observed_at + duration:
            return False  # held by another candidate that renewed within its lease
        transitions = int(spec.get("leaseTransitions") or 0)
        if mine:
            new_spec = self._spec(str(spec.get("acquireTime") or ""), transitions)
        else:
            new_spec = self._spec("", transitions + 1)
        updated = self.client.update(self.path, {**lease, "spec": new_spec})
        self._observe(updated.get("spec") or new_spec)
        return True

    def _observe(self, spec: Obj) -> None:
        if spec != self._observed:
            self._observed = dict(spec)
            self._observed_at = self.clock()

    def release(self) -> None:
        """Give the lease up if this candidate holds it (ReleaseOnCancel)."""
        if not self.config.enabled or not self._is_leader():
            return
        try:
            lease = self.client.get(self.path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            stamp = micro_time(self.wall())
            released = {
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": int(spec.get("leaseTransitions") or 0),
            }
            self.client.update(self.path, {**lease, "spec": released})
            self._renewed_at = None
            self.log(f"released lease {self.config.namespace}/{self.config.name}")
        except _API_ERRORS as exc:  # best effort on the way out, as upstream
            self.log(f"failed to release lease {self.config.namespace}/{self.config.name}: {exc}")
