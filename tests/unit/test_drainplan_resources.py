"""Quantities (apimachinery's TestQuantityParse examples), pod requests and the fit check."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodeops.drainplan import (
    QuantityError,
    fits_resources,
    insufficient_resources,
    node_allocatable,
    parse_quantity,
    pod_requests,
    scheduler_units,
)

KI, MI, GI, TI = 2**10, 2**20, 2**30, 2**40

# From k8s.io/apimachinery/pkg/api/resource/quantity_test.go TestQuantityParse.
UPSTREAM_VALID = [
    ("0", "0"),
    ("0n", "0"),
    ("0Ki", "0"),
    ("1", "1"),
    ("1Ki", str(KI)),
    ("7Mi", str(7 * MI)),
    ("6Gi", str(6 * GI)),
    ("5Ti", str(5 * TI)),
    ("3Ei", str(3 * 2**60)),
    ("5n", "5e-9"),
    ("4u", "4e-6"),
    ("3m", "0.003"),
    ("8k", "8000"),
    ("50k", "50000"),
    ("7M", "7e6"),
    ("6G", "6e9"),
    ("5T", "5e12"),
    ("2P", "2e15"),
    ("1E", "1e18"),
    ("1E-3", "0.001"),
    ("1e3", "1000"),
    ("1E6", "1e6"),
    ("100.035k", "100035"),
    ("0.001", "0.001"),
    ("0.0005k", "0.5"),
    ("0.5", "0.5"),
    ("0.5e-1", "0.05"),
    ("10.035M", "10035000"),
    ("1.2e3", "1200"),
    ("1.3E+6", "1300000"),
    ("1.01E", "1.01e18"),
    ("3.001n", "4e-9"),
    ("1.1E-9", "2e-9"),
    ("0.0000000001", "1e-9"),
    ("0.5e-9", "1e-9"),
    ("0.00000012345", "124e-9"),
    ("9Ei", str(2**63 - 1)),
    ("9223372036854775807Ki", str(2**63 - 1)),
    ("12E", "12e18"),
    ("100.035Ki", "102435.84"),
    ("0.5Mi", str(MI // 2)),
    ("0.025Ti", "27487790694.4"),
    ("0.000000000001Ki", "2e-9"),
    (".001", "0.001"),
    ("1.", "1"),
    ("1.G", "1e9"),
    (".", "0"),
    # the brief's everyday examples
    ("100m", "0.1"),
    ("512Mi", str(512 * MI)),
]


@pytest.mark.parametrize(("text", "value"), UPSTREAM_VALID)
def test_parse_quantity_upstream_examples(text: str, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)
    assert parse_quantity("+" + text) == Decimal(value)
    assert parse_quantity("-" + text) == -Decimal(value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1.1.M",
        "1+1.0M",
        "0.1mi",
        "0.1am",
        "aoeu",
        ".5i",
        "1i",
        "-3.01i",
        "-3.01e-",
        "1e4294967297",
        " 1",
        "1 ",
        "1e",
        "1K",
        "1GB",
        "1Gi ",
        "\u0661",
    ],
)
def test_parse_quantity_rejects_upstream_invalid(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


@given(st.integers(0, 10**6), st.sampled_from(["", "m", "k", "Ki", "Mi", "Gi", "M", "G"]))
def test_parse_quantity_integers(n: int, suffix: str) -> None:
    scale: dict[str, int | Decimal] = {
        "": 1,
        "m": Decimal("0.001"),
        "k": 1000,
        "Ki": KI,
        "Mi": MI,
        "Gi": GI,
        "M": 10**6,
        "G": 10**9,
    }
    assert parse_quantity(f"{n}{suffix}") == n * Decimal(scale[suffix])


def test_scheduler_units_round_up_like_millivalue_and_value() -> None:
    assert scheduler_units("cpu", parse_quantity("100m")) == 100
    assert scheduler_units("cpu", parse_quantity("0.5")) == 500
    assert scheduler_units("cpu", parse_quantity("1n")) == 1
    assert scheduler_units("memory", parse_quantity("1.5")) == 2
    assert scheduler_units("memory", parse_quantity("1Gi")) == GI


def container(**requests: str) -> dict[str, Any]:
    return {"name": "c", "resources": {"requests": requests}}


def test_pod_requests_sum_of_containers() -> None:
    pod = {"spec": {"containers": [container(cpu="100m", memory="64Mi"), container(cpu="250m")]}}
    assert pod_requests(pod) == {"cpu": 350, "memory": 64 * MI}


def test_pod_requests_init_containers_take_the_max() -> None:
    pod = {
        "spec": {
            "containers": [container(cpu="100m", memory="64Mi")],
            "initContainers": [container(cpu="1", memory="1Mi"), container(cpu="200m")],
        }
    }
    assert pod_requests(pod) == {"cpu": 1000, "memory": 64 * MI}


def test_pod_requests_sidecars_add_up_and_overhead_is_added() -> None:
    sidecar = container(cpu="50m")
    sidecar["restartPolicy"] = "Always"
    pod = {
        "spec": {
            "initContainers": [sidecar, container(cpu="300m")],
            "containers": [container(cpu="100m")],
            "overhead": {"cpu": "10m"},
        }
    }
    # max(100m + 50m sidecar, 300m init + 50m sidecar already running) + 10m overhead
    assert pod_requests(pod) == {"cpu": 360}


def test_pod_without_requests_requests_nothing() -> None:
    assert pod_requests({"spec": {"containers": [{"name": "c"}]}}) == {}


def test_node_allocatable() -> None:
    the_node = {"status": {"allocatable": {"cpu": "3800m", "memory": "7Gi", "pods": "110"}}}
    assert node_allocatable(the_node) == {"cpu": 3800, "memory": 7 * GI, "pods": 110}


def test_fits_resources() -> None:
    alloc = {"cpu": 2000, "memory": 4 * GI, "pods": 3}
    assert fits_resources({"cpu": 1000}, alloc, {"cpu": 1000, "pods": 1})
    assert insufficient_resources({"cpu": 1001}, alloc, {"cpu": 1000, "pods": 1}) == ("cpu",)
    assert insufficient_resources({"cpu": 1, "memory": 5 * GI}, alloc, {}) == ("memory",)
    assert insufficient_resources({}, alloc, {"pods": 3}) == ("pods",)
    # an extended resource the node does not have
    assert insufficient_resources({"nvidia.com/gpu": 1}, alloc, {}) == ("nvidia.com/gpu",)
    # requesting nothing always fits (apart from the pod count)
    assert fits_resources({}, {}, {"cpu": 10**9})


@given(st.integers(0, 5000), st.integers(0, 5000), st.integers(0, 5000))
def test_fit_is_request_within_free(req: int, alloc: int, used: int) -> None:
    fits = fits_resources({"cpu": req}, {"cpu": alloc}, {"cpu": used})
    assert fits is (req == 0 or req <= alloc - used)
