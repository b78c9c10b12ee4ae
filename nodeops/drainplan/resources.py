"""Pod requests, node allocatable and the NodeResourcesFit check, in the scheduler's units."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from nodeops.drainplan.quantity import parse_quantity, scheduler_units

__all__ = [
    "fits_resources",
    "insufficient_resources",
    "node_allocatable",
    "pod_requests",
    "resource_list",
]

Obj = Mapping[str, Any]
# Resources the scheduler always checks when requested; any other requested name is a scalar
# (extended resources, hugepages-*) and is checked the same way.
_POD_COUNT = "pods"


def resource_list(values: Mapping[str, Any] | None) -> dict[str, Decimal]:
    """A ResourceList (`{"cpu": "100m", "memory": "1Gi"}`) as exact decimals."""
    return {name: parse_quantity(str(value)) for name, value in (values or {}).items()}


def _add(total: dict[str, Decimal], more: Mapping[str, Decimal]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, Decimal(0)) + value


def _max(total: dict[str, Decimal], other: Mapping[str, Decimal]) -> None:
    for name, value in other.items():
        if value > total.get(name, Decimal(0)):
            total[name] = value


def _requests(container: Obj) -> dict[str, Decimal]:
    return resource_list((container.get("resources") or {}).get("requests"))


def pod_requests(pod: Obj) -> dict[str, int]:
    """What the scheduler counts for a pod, as component-helpers resource.PodRequests computes it.

    max(sum of containers + sidecars, each init container + sidecars started before it)
    + overhead; cpu in millicores, everything else in whole units (rounded up).
    """
    spec: Obj = pod.get("spec") or {}
    reqs: dict[str, Decimal] = {}
    for container in spec.get("containers") or ():
        _add(reqs, _requests(container))
    sidecars: dict[str, Decimal] = {}
    init_max: dict[str, Decimal] = {}
    for container in spec.get("initContainers") or ():
        one = _requests(container)
        if container.get("restartPolicy") == "Always":
            # A restartable init container (sidecar) keeps running beside the app containers.
            _add(reqs, one)
            _add(sidecars, one)
            peak = dict(sidecars)
        else:
            peak = dict(one)
            _add(peak, sidecars)
        _max(init_max, peak)
    _max(reqs, init_max)
    _add(reqs, resource_list(spec.get("overhead")))
    return {name: scheduler_units(name, value) for name, value in reqs.items() if value}


def node_allocatable(node: Obj) -> dict[str, int]:
    """status.allocatable in the scheduler's units."""
    allocatable = resource_list((node.get("status") or {}).get("allocatable"))
    return {name: scheduler_units(name, value) for name, value in allocatable.items()}


def insufficient_resources(
    requests: Mapping[str, int], allocatable: Mapping[str, int], used: Mapping[str, int]
) -> tuple[str, ...]:
    """Resources the pod does not fit on (NodeResourcesFit); `pods` means "Too many pods".

    `used` holds the summed requests of the pods already on the node plus `pods`, their count.
    Only requested (non-zero) resources are checked; a resource the node lacks has 0 allocatable.
    """
    short: list[str] = []
    if _POD_COUNT in allocatable and used.get(_POD_COUNT, 0) + 1 > allocatable[_POD_COUNT]:
        short.append(_POD_COUNT)
    for name in sorted(requests):
        if name == _POD_COUNT:
            continue
        want = requests[name]
        if want > 0 and want > allocatable.get(name, 0) - used.get(name, 0):
            short.append(name)
    return tuple(short)


def fits_resources(
    requests: Mapping[str, int], allocatable: Mapping[str, int], used: Mapping[str, int]
) -> bool:
    """Whether the requests fit in allocatable minus used (see `insufficient_resources`)."""
    return not insufficient_resources(requests, allocatable, used)


def sum_requests(pods: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Summed requests of pods, with `pods` set to how many there are."""
    total: dict[str, int] = {_POD_COUNT: 0}
    for reqs in pods:
        total[_POD_COUNT] += 1
        for name, value in reqs.items():
            total[name] = total.get(name, 0) + value
    return total
