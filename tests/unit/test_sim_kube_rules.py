"""Pure rules of the simulated control plane: selectors, patches, scheduling, controllers."""

from __future__ import annotations

import pytest

from nodeops.lab.sim.kube_controllers import (
    daemon_should_run,
    fnv32a,
    pdb_status,
    scaled_value,
    template_hash,
)
from nodeops.lab.sim.kube_objects import human_duration
from nodeops.lab.sim.kube_patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from nodeops.lab.sim.kube_sched import (
    check_node,
    choose_node,
    failure_message,
    parse_quantity,
    tolerates,
)
from nodeops.lab.sim.kube_selectors import (
    SelectorError,
    format_selector,
    parse_field_selector,
    parse_label_selector,
    selector_from_object,
)

# --- selectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "db"}, False),
        ("app!=web", {}, True),
        ("tier in (a, b),app", {"tier": "b", "app": "x"}, True),
        ("tier notin (a,b)", {"tier": "a"}, False),
        ("!canary", {"canary": "1"}, False),
        ("!canary", {}, True),
        ("", {"x": "y"}, True),
    ],
)
def test_label_selector(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_label_selector_rejects_garbage() -> None:
    with pytest.raises(SelectorError):
        parse_label_selector("a in b")


def test_selector_objects_and_format() -> None:
    obj = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [{"key": "c", "operator": "Exists"}],
    }
    assert selector_from_object(obj).matches({"a": "1", "b": "2", "c": ""})
    assert not selector_from_object(obj).matches({"a": "1", "b": "2"})
    assert format_selector(obj) == "a=1,b=2,c"
    assert format_selector(None) == "<none>"
    assert selector_from_object({}).empty()


def test_field_selector() -> None:
    sel = parse_field_selector("spec.nodeName=w1,status.phase!=Succeeded")
    values = {"spec.nodeName": "w1", "status.phase": "Running"}
    assert sel.matches(values.get)
    assert not sel.matches({**values, "status.phase": "Succeeded"}.get)
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.nodeName"):
        sel.matches(lambda _path: None)


# --- patches -----------------------------------------------------------------------------------


def test_merge_patch_null_deletes() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2}}, {"a": None, "b": {"d": 3}}) == {
        "b": {"c": 2, "d": 3}
    }


def test_strategic_merge_cordon_and_uncordon() -> None:
    node = {"spec": {"podCIDR": "x"}}
    cordoned = strategic_merge_patch(node, {"spec": {"unschedulable": True}})
    assert cordoned == {"spec": {"podCIDR": "x", "unschedulable": True}}
    assert strategic_merge_patch(cordoned, {"spec": {"unschedulable": None}}) == node


def test_strategic_merge_lists_by_key() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "2"}, {"name": "a", "$patch": "delete"}],
        }
    }
    assert strategic_merge_patch(pod, patch) == {
        "spec": {"containers": [{"name": "b", "image": "2"}]}
    }
    # Lists without a merge key are replaced.
    assert strategic_merge_patch({"args": ["x"]}, {"args": ["y"]}) == {"args": ["y"]}
    assert strategic_merge_patch({"finalizers": ["a"]}, {"finalizers": ["b"]}) == {
        "finalizers": ["a", "b"]
    }


def test_json_patch() -> None:
    doc = {"metadata": {"labels": {"a/b": "1"}}, "items": [1, 2]}
    ops = [
        {"op": "remove", "path": "/metadata/labels/a~1b"},
        {"op": "add", "path": "/items/-", "value": 3},
        {"op": "replace", "path": "/items/0", "value": 0},
        {"op": "test", "path": "/items/2", "value": 3},
    ]
    assert json_patch(doc, ops) == {"metadata": {"labels": {}}, "items": [0, 2, 3]}
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "test", "path": "/items/0", "value": 9}])
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "remove", "path": "/nope/x"}])


# --- scheduling --------------------------------------------------------------------------------


def _node(name: str, labels: dict[str, str] | None = None, **spec: object) -> dict:  # type: ignore[type-arg]
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
        "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "3"}},
    }


def _pod(**spec: object) -> dict:  # type: ignore[type-arg]
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], **spec}}


def test_quantities() -> None:
    assert parse_quantity("100m") == pytest.approx(0.1)
    assert parse_quantity("1Gi") == 2**30
    assert parse_quantity("2") == 2
    with pytest.raises(ValueError):
        parse_quantity("lots")


def test_tolerations() -> None:
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    assert tolerates({"key": "k", "operator": "Equal", "value": "v"}, taint)
    assert not tolerates({"key": "k", "value": "w"}, taint)
    assert tolerates({"operator": "Exists"}, taint)
    assert not tolerates({"key": "k", "operator": "Exists", "effect": "NoExecute"}, taint)


@pytest.mark.parametrize(
    ("operator", "values", "label", "fits"),
    [
        ("In", ["a", "b"], "b", True),
        ("NotIn", ["a"], "a", False),
        ("Exists", [], "x", True),
        ("DoesNotExist", [], "x", False),
        ("Gt", ["5"], "7", True),
        ("Lt", ["5"], "7", False),
    ],
)
def test_required_affinity_operators(
    operator: str, values: list[str], label: str, fits: bool
) -> None:
    expr = {"key": "k", "operator": operator, "values": values}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [expr]}]
            }
        }
    }
    verdict = check_node(_pod(affinity=affinity), _node("n", {"k": label}), [])
    assert (verdict.reason == "") is fits


def test_terms_are_ored() -> None:
    terms = [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
    ]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }
    }
    nodes = [_node("n1", {"zone": "c"}), _node("n2", {"zone": "b"})]
    assert choose_node(_pod(affinity=affinity), nodes, [])[0] == "n2"


def test_failure_message_matches_upstream() -> None:
    nodes = [_node("cp", {}), _node("w1", unschedulable=True), _node("w2", {})]
    target, verdicts = choose_node(_pod(nodeSelector={"disk": "ssd"}), nodes, [])
    assert target is None
    assert failure_message(verdicts) == (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node"
        " affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for"
        " scheduling."
    )


def test_taints_resources_and_preferences() -> None:
    tainted = _node("t", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    assert (
        check_node(_pod(), tainted, []).reason == "node(s) had untolerated taint {dedicated: gpu}"
    )
    big = _pod(containers=[{"name": "c", "resources": {"requests": {"cpu": "3"}}}])
    verdict = check_node(big, _node("n"), [])
    assert (verdict.reason, verdict.resolvable) == ("Insufficient cpu", True)
    full = [{"spec": {"nodeName": "n"}, "status": {"phase": "Running"}}] * 3
    assert check_node(_pod(), _node("n"), full).reason == "Too many pods"
    message = failure_message([check_node(big, _node("n"), []), check_node(_pod(), tainted, [])])
    assert message.endswith(
        "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod,"
        " 1 Preemption is not helpful for scheduling."
    )
    soft = _node("soft", taints=[{"key": "x", "effect": "PreferNoSchedule"}])
    assert choose_node(_pod(), [soft, _node("plain")], [])[0] == "plain"
    preferred = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]},
                }
            ]
        }
    }
    assert (
        choose_node(_pod(affinity=preferred), [_node("a"), _node("b", {"ssd": ""})], [])[0] == "b"
    )


# --- controllers -------------------------------------------------------------------------------


def test_hashes() -> None:
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    h = template_hash({"spec": {"containers": [{"name": "c"}]}})
    assert h == template_hash({"spec": {"containers": [{"name": "c"}]}})
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_daemonset_eligibility() -> None:
    ds = {"spec": {"template": {"spec": {"nodeSelector": {"role": "edge"}}}}}
    assert daemon_should_run(ds, _node("a", {"role": "edge"}))
    assert not daemon_should_run(ds, _node("b"))
    plain = {"spec": {"template": {"spec": {}}}}
    cordoned_taint = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    assert daemon_should_run(plain, _node("c", unschedulable=True, taints=[cordoned_taint]))
    cp = _node(
        "cp", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    )
    assert not daemon_should_run(plain, cp)


def _ready_pod(name: str, ready: bool = True) -> dict:  # type: ignore[type-arg]
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": str(ready)}]},
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"minAvailable": 2}, (3, 2, 5, 1)),
        ({"minAvailable": "50%"}, (3, 2, 4, 1)),
        ({"minAvailable": "100%"}, (3, 4, 4, 0)),
        ({"maxUnavailable": 1}, (3, 3, 4, 0)),
        ({"maxUnavailable": "50%"}, (3, 2, 4, 1)),
    ],
)
def test_pdb_arithmetic(spec: dict, expected: tuple[int, int, int, int]) -> None:  # type: ignore[type-arg]
    # b, c, d are healthy; a is being deleted; e was just evicted (in disruptedPods).
    pods = [_ready_pod(n) for n in "abcde"]
    pods[0]["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    status = pdb_status({"spec": spec}, pods, 4, 1000.0, {"e": 990.0})
    got = (
        status["currentHealthy"],
        status["desiredHealthy"],
        status["expectedPods"],
        status["disruptionsAllowed"],
    )
    assert got == expected
    # An unready pod is not healthy.
    pods[1]["status"]["conditions"][0]["status"] = "False"
    assert pdb_status({"spec": spec}, pods, 4, 1000.0, {"e": 990.0})["currentHealthy"] == 2


def test_scaled_value() -> None:
    assert scaled_value("25%", 3, round_up=False) == 0
    assert scaled_value("25%", 3, round_up=True) == 1
    assert scaled_value(2, 10, round_up=True) == 2


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
     (9 * 3600, "9h"), (3 * 86400, "3d"), (3 * 86400 + 3600, "3d1h"), (400 * 86400, "400d"),
     (800 * 86400, "2y70d")],
)  # fmt: skip
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text
