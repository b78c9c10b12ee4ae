"""Pure parts of the simulated apiserver: routes, tables, discovery, errors, protobuf, updates."""

from __future__ import annotations

from nodeops.lab.sim.apiserver import discovery, errors, protobuf, tables
from nodeops.lab.sim.apiserver.registry import merge_update
from nodeops.lab.sim.apiserver.resources import require
from nodeops.lab.sim.apiserver.server import Handler, field_value
from nodeops.lab.sim.apiserver.version import version_info

PODS = require("", "v1", "pods")
NODES = require("", "v1", "nodes")
DEPLOYMENTS = require("apps", "v1", "deployments")


def test_routes() -> None:
    route = Handler._route("/api/v1/namespaces/default/pods/web-1/eviction")
    assert route is not None
    assert (route.res.plural, route.namespace, route.name, route.subresource) == (
        "pods", "default", "web-1", "eviction",
    )  # fmt: skip
    ns = Handler._route("/api/v1/namespaces/kube-system")
    assert ns is not None and (ns.res.plural, ns.name) == ("namespaces", "kube-system")
    status = Handler._route("/api/v1/namespaces/kube-system/status")
    assert status is not None and (status.res.plural, status.subresource) == (
        "namespaces",
        "status",
    )
    dep = Handler._route("/apis/apps/v1/deployments")
    assert dep is not None and dep.namespace is None and dep.name is None
    assert Handler._route("/apis/apps/v1/namespaces/x/pods") is None
    assert Handler._route("/api/v1/pods/x/frobnicate") is None


def test_storage_keys_follow_upstream() -> None:
    assert NODES.etcd_key(None, "w1") == "/registry/minions/w1"
    assert PODS.etcd_key("default", "p") == "/registry/pods/default/p"
    assert DEPLOYMENTS.etcd_key("ns", "d") == "/registry/deployments/ns/d"


def test_node_table_row() -> None:
    node = {
        "metadata": {
            "name": "cp1",
            "creationTimestamp": "2020-01-01T00:00:00Z",
            "labels": {
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/etcd": "",
            },
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "Unknown"}],
            "nodeInfo": {"kubeletVersion": "v1.29.0"},
            "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
        },
    }
    table = tables.table(NODES, [node], resource_version="7")
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:5] == ["Name", "Status", "Roles", "Age", "Version"]
    assert [c["priority"] for c in table["columnDefinitions"]][5:] == [1] * 5
    cells = table["rows"][0]["cells"]
    assert cells[1:3] == ["NotReady,SchedulingDisabled", "control-plane,etcd"]
    assert cells[4:7] == ["v1.29.0", "10.0.0.2", "<none>"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert tables.wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not tables.wants_table("application/json")


def test_pod_table_status() -> None:
    pod = {
        "metadata": {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}}},
                {
                    "name": "b",
                    "restartCount": 1,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                },
            ],
        },
    }
    cells = tables.table(PODS, [pod], resource_version="1")["rows"][0]["cells"]
    assert cells[1:4] == ["1/2", "Terminating", "3"]
    del pod["metadata"]["deletionTimestamp"]
    assert (
        tables.table(PODS, [pod], resource_version="1")["rows"][0]["cells"][2] == "CrashLoopBackOff"
    )


def test_discovery() -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    assert discovery.negotiate_aggregated(accept) == "v2"
    assert discovery.negotiate_aggregated(accept.replace("v=v2;", "v=v2beta1;")) == "v2beta1"
    assert discovery.negotiate_aggregated("application/json") is None
    core = discovery.resource_list("", "v1")
    assert core is not None
    names = {r["name"]: r for r in core["resources"]}
    assert names["pods/eviction"]["group"] == "policy"
    assert names["pods"]["shortNames"] == ["po"]
    groups = discovery.aggregated(False, "v2")
    assert [g["metadata"]["name"] for g in groups["items"]] == [
        "apps",
        "policy",
        "coordination.k8s.io",
    ]
    v3 = discovery.openapi_v3_group("api/v1")
    assert v3 is not None
    assert (
        v3["paths"]["/api/v1/nodes/{name}"]["patch"]["x-kubernetes-group-version-kind"]["kind"]
        == "Node"
    )


def test_error_messages() -> None:
    assert errors.not_found(PODS, "x").status()["message"] == 'pods "x" not found'
    status = errors.not_found(DEPLOYMENTS, "d").status()
    assert status["message"] == 'deployments.apps "d" not found'
    assert status["details"] == {"name": "d", "group": "apps", "kind": "deployments"}
    assert errors.conflict(PODS, "x", errors.MODIFIED).message == (
        'Operation cannot be fulfilled on pods "x": the object has been modified; please apply'
        " your changes to the latest version and try again"
    )
    assert errors.already_exists(NODES, "n").code == 409


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def test_protobuf_eviction_and_delete_options() -> None:
    meta = _field(1, b"web-1") + _field(2, b"") + _field(3, b"default")
    options = _field(1, 30) + _field(4, b"Foreground")
    eviction = _field(1, meta) + _field(2, options)
    type_meta = _field(1, b"policy/v1") + _field(2, b"Eviction")
    body = protobuf.MAGIC + _field(1, type_meta) + _field(2, eviction)
    assert protobuf.decode_object(body) == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-1", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 30, "propagationPolicy": "Foreground"},
    }
    delete = protobuf.MAGIC + _field(2, _field(1, 0))
    assert protobuf.delete_options(delete) == {"gracePeriodSeconds": 0}
    assert protobuf.delete_options(b'{"kind":"DeleteOptions"}') == {}


def test_update_rules() -> None:
    old = {
        "metadata": {
            "name": "d",
            "namespace": "ns",
            "uid": "u1",
            "generation": 1,
            "resourceVersion": "5",
        },
        "spec": {"replicas": 1},
        "status": {"replicas": 1},
    }
    new = {
        "metadata": {"name": "d", "uid": "hacked"},
        "spec": {"replicas": 2},
        "status": {"replicas": 9},
    }
    result = merge_update(DEPLOYMENTS, old, new)
    assert result["metadata"]["uid"] == "u1"
    assert result["metadata"]["generation"] == 2
    assert result["status"] == {"replicas": 1}
    status_only = merge_update(DEPLOYMENTS, old, new, subresource="status")
    assert status_only["spec"] == {"replicas": 1} and status_only["status"] == {"replicas": 9}


def test_pod_field_selectors() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n"}, "spec": {"nodeName": "w1"}, "status": {}}
    assert field_value(PODS, pod, "spec.nodeName") == "w1"
    assert field_value(PODS, pod, "metadata.namespace") == "n"
    assert field_value(PODS, pod, "spec.bogus") is None
    assert field_value(NODES, {"spec": {"unschedulable": True}}, "spec.unschedulable") == "true"


def test_version_document() -> None:
    info = version_info("v1.33.1")
    assert (info["major"], info["minor"], info["gitVersion"]) == ("1", "33", "v1.33.1")
    assert info["emulationMinor"] == "33"
    assert "emulationMinor" not in version_info("v1.29.0")
    assert version_info("v1.29.0")["platform"].startswith("linux/")
