"""Taints vs tolerations and nodeAffinity vs labels: the kubernetes.io tables, then properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodeops.drainplan import (
    NO_EXECUTE,
    NO_SCHEDULE,
    PREFER_NO_SCHEDULE,
    SelectorError,
    label_selector_matches,
    matches_node_selector_term,
    matches_required_affinity,
    parse_selector,
    preferred_affinity_score,
    taints_tolerated,
    tolerates,
    toleration_tolerates,
    untolerated_taint,
)

EFFECTS = (NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE)


def taint(key: str, value: str, effect: str) -> dict[str, str]:
    return {"key": key, "value": value, "effect": effect}


# --- table 1: taint vs toleration (kubernetes.io "Taints and Tolerations" and
# --- core/v1 TestTolerationToleratesTaint) ------------------------------------------------

K1 = taint("key1", "value1", NO_SCHEDULE)
TOLERATION_TABLE: list[tuple[str, dict[str, Any], dict[str, str], bool]] = [
    (
        "Equal, same key, value and effect",
        {"key": "key1", "operator": "Equal", "value": "value1", "effect": NO_SCHEDULE},
        K1,
        True,
    ),
    (
        "Exists, same key and effect",
        {"key": "key1", "operator": "Exists", "effect": NO_SCHEDULE},
        K1,
        True,
    ),
    (
        "Exists ignores the value",
        {"key": "key1", "operator": "Exists", "value": "x", "effect": NO_SCHEDULE},
        K1,
        True,
    ),
    (
        "Equal, other value",
        {"key": "key1", "operator": "Equal", "value": "value2", "effect": NO_SCHEDULE},
        K1,
        False,
    ),
    (
        "Equal, other key",
        {"key": "key2", "operator": "Equal", "value": "value1", "effect": NO_SCHEDULE},
        K1,
        False,
    ),
    ("Exists, other key", {"key": "key2", "operator": "Exists", "effect": NO_SCHEDULE}, K1, False),
    (
        "operator defaults to Equal",
        {"key": "key1", "value": "value1", "effect": NO_SCHEDULE},
        K1,
        True,
    ),
    (
        "defaulted Equal, other value",
        {"key": "key1", "value": "v", "effect": NO_SCHEDULE},
        K1,
        False,
    ),
    (
        "effect differs",
        {"key": "key1", "operator": "Equal", "value": "value1", "effect": NO_EXECUTE},
        K1,
        False,
    ),
    ("empty effect matches NoSchedule", {"key": "key1", "operator": "Exists"}, K1, True),
    (
        "empty effect matches NoExecute",
        {"key": "key1", "operator": "Exists"},
        taint("key1", "v", NO_EXECUTE),
        True,
    ),
    (
        "empty effect matches PreferNoSchedule",
        {"key": "key1", "operator": "Equal", "value": "value1"},
        taint("key1", "value1", PREFER_NO_SCHEDULE),
        True,
    ),
    ("empty key with Exists tolerates everything", {"operator": "Exists"}, K1, True),
    (
        "empty key with Exists, any effect",
        {"operator": "Exists"},
        taint("a", "b", NO_EXECUTE),
        True,
    ),
    (
        "empty key with Exists and an effect",
        {"operator": "Exists", "effect": NO_EXECUTE},
        K1,
        False,
    ),
    (
        "Equal to an empty value",
        {"key": "dedicated", "operator": "Equal", "value": ""},
        taint("dedicated", "", NO_SCHEDULE),
        True,
    ),
    (
        "Equal, taint without value",
        {"key": "dedicated", "operator": "Equal", "value": "x"},
        {"key": "dedicated", "effect": NO_SCHEDULE},
        False,
    ),
    ("unknown operator", {"key": "key1", "operator": "Gt", "value": "value1"}, K1, False),
    (
        "control-plane taint, kubeadm toleration",
        {
            "key": "node-role.kubernetes.io/control-plane",
            "operator": "Exists",
            "effect": NO_SCHEDULE,
        },
        taint("node-role.kubernetes.io/control-plane", "", NO_SCHEDULE),
        True,
    ),
]


@pytest.mark.parametrize(
    ("toleration", "the_taint", "expected"),
    [row[1:] for row in TOLERATION_TABLE],
    ids=[row[0] for row in TOLERATION_TABLE],
)
def test_toleration_table(
    toleration: dict[str, Any], the_taint: dict[str, str], expected: bool
) -> None:
    assert toleration_tolerates(toleration, the_taint) is expected
    assert tolerates([toleration], the_taint) is expected


def test_docs_three_taints_two_tolerations_cannot_schedule() -> None:
    # kubernetes.io: key1=value1:NoSchedule, key1=value1:NoExecute, key2=value2:NoSchedule
    taints = [K1, taint("key1", "value1", NO_EXECUTE), taint("key2", "value2", NO_SCHEDULE)]
    tolerations = [
        {"key": "key1", "operator": "Equal", "value": "value1", "effect": NO_SCHEDULE},
        {"key": "key1", "operator": "Equal", "value": "value1", "effect": NO_EXECUTE},
    ]
    assert not taints_tolerated(tolerations, taints)
    assert untolerated_taint(tolerations, taints) == taints[2]
    assert taints_tolerated([*tolerations, {"key": "key2", "operator": "Exists"}], taints)


def test_prefer_no_schedule_is_not_a_filter() -> None:
    soft = [taint("spot", "true", PREFER_NO_SCHEDULE)]
    assert taints_tolerated([], soft)
    assert not taints_tolerated([], soft, effects=(PREFER_NO_SCHEDULE,))


def test_no_taints_are_always_tolerated() -> None:
    assert taints_tolerated([], [])


# --- table 2: nodeAffinity vs labels (kubernetes.io "Assigning Pods to Nodes") -------------

ZONE = "topology.kubernetes.io/zone"


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        out["values"] = list(values)
    return out


def term(*exprs: dict[str, Any]) -> dict[str, Any]:
    return {"matchExpressions": list(exprs)}


AFFINITY_TABLE: list[tuple[str, dict[str, Any], dict[str, str], bool]] = [
    (
        "In, value listed",
        term(expr(ZONE, "In", "antarctica-east1", "antarctica-west1")),
        {ZONE: "antarctica-west1"},
        True,
    ),
    (
        "In, value not listed",
        term(expr(ZONE, "In", "antarctica-east1")),
        {ZONE: "africa-south1"},
        False,
    ),
    ("In, label missing", term(expr(ZONE, "In", "antarctica-east1")), {}, False),
    ("In, no values is invalid", term(expr(ZONE, "In")), {ZONE: ""}, False),
    ("NotIn, value listed", term(expr("disk", "NotIn", "hdd")), {"disk": "hdd"}, False),
    ("NotIn, other value", term(expr("disk", "NotIn", "hdd")), {"disk": "ssd"}, True),
    ("NotIn, label missing matches", term(expr("disk", "NotIn", "hdd")), {}, True),
    ("Exists, label present", term(expr("gpu", "Exists")), {"gpu": ""}, True),
    ("Exists, label missing", term(expr("gpu", "Exists")), {"other": "x"}, False),
    ("Exists with values is invalid", term(expr("gpu", "Exists", "x")), {"gpu": "x"}, False),
    ("DoesNotExist, label missing", term(expr("gpu", "DoesNotExist")), {}, True),
    ("DoesNotExist, label present", term(expr("gpu", "DoesNotExist")), {"gpu": "a100"}, False),
    ("Gt, greater", term(expr("cores", "Gt", "8")), {"cores": "16"}, True),
    ("Gt, equal", term(expr("cores", "Gt", "8")), {"cores": "8"}, False),
    ("Gt, label missing", term(expr("cores", "Gt", "8")), {}, False),
    ("Gt, label not an integer", term(expr("cores", "Gt", "8")), {"cores": "16x"}, False),
    ("Gt, label a float", term(expr("cores", "Gt", "8")), {"cores": "16.0"}, False),
    ("Gt, value not an integer", term(expr("cores", "Gt", "eight")), {"cores": "16"}, False),
    ("Gt, two values is invalid", term(expr("cores", "Gt", "1", "2")), {"cores": "16"}, False),
    ("Gt, signed integers as ParseInt", term(expr("t", "Gt", "-3")), {"t": "+2"}, True),
    ("Gt, beyond int64", term(expr("t", "Gt", "1")), {"t": "9223372036854775808"}, False),
    ("Lt, less", term(expr("cores", "Lt", "8")), {"cores": "4"}, True),
    ("Lt, greater", term(expr("cores", "Lt", "8")), {"cores": "10"}, False),
    ("Lt, whitespace is not an integer", term(expr("cores", "Lt", "8")), {"cores": " 4"}, False),
    ("unknown operator", term(expr("a", "Like", "b")), {"a": "b"}, False),
    (
        "expressions are ANDed, both hold",
        term(expr("a", "In", "1"), expr("b", "Exists")),
        {"a": "1", "b": ""},
        True,
    ),
    (
        "expressions are ANDed, one fails",
        term(expr("a", "In", "1"), expr("b", "Exists")),
        {"a": "1"},
        False,
    ),
    ("empty term matches nothing", {"matchExpressions": []}, {"a": "1"}, False),
]


@pytest.mark.parametrize(
    ("the_term", "labels", "expected"),
    [row[1:] for row in AFFINITY_TABLE],
    ids=[row[0] for row in AFFINITY_TABLE],
)
def test_affinity_table(the_term: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert matches_node_selector_term(the_term, labels) is expected


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


def pod_with(
    affinity: dict[str, Any] | None = None, selector: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if affinity is not None:
        spec["affinity"] = {"nodeAffinity": affinity}
    if selector is not None:
        spec["nodeSelector"] = selector
    return {"metadata": {"name": "p"}, "spec": spec}


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}


REQUIRED_TABLE: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    ("no constraints", pod_with(), node("n"), True),
    (
        "nodeSelector matches",
        pod_with(selector={"disktype": "ssd"}),
        node("n", disktype="ssd"),
        True,
    ),
    (
        "nodeSelector differs",
        pod_with(selector={"disktype": "ssd"}),
        node("n", disktype="hdd"),
        False,
    ),
    (
        "nodeSelector and affinity: both must hold",
        pod_with(required(term(expr(ZONE, "In", "z1"))), {"disktype": "ssd"}),
        node("n", disktype="ssd", **{ZONE: "z2"}),
        False,
    ),
    (
        "terms are ORed",
        pod_with(required(term(expr("a", "In", "1")), term(expr("b", "In", "2")))),
        node("n", b="2"),
        True,
    ),
    (
        "no term matches",
        pod_with(required(term(expr("a", "In", "1")), term(expr("b", "In", "2")))),
        node("n", c="3"),
        False,
    ),
    (
        "an invalid term does not spoil a valid one",
        pod_with(required(term(expr("a", "Gt", "x")), term(expr("b", "Exists")))),
        node("n", b=""),
        True,
    ),
    ("empty nodeSelectorTerms match nothing", pod_with(required()), node("n"), False),
    (
        "matchFields on the node name",
        pod_with(required({"matchFields": [expr("metadata.name", "In", "n")]})),
        node("n"),
        True,
    ),
    (
        "matchFields, other node",
        pod_with(required({"matchFields": [expr("metadata.name", "In", "n")]})),
        node("m"),
        False,
    ),
    (
        "matchFields NotIn",
        pod_with(required({"matchFields": [expr("metadata.name", "NotIn", "n")]})),
        node("m"),
        True,
    ),
]


@pytest.mark.parametrize(
    ("pod", "the_node", "expected"),
    [row[1:] for row in REQUIRED_TABLE],
    ids=[row[0] for row in REQUIRED_TABLE],
)
def test_required_affinity_table(
    pod: dict[str, Any], the_node: dict[str, Any], expected: bool
) -> None:
    assert matches_required_affinity(pod, the_node) is expected


def test_preferred_weights_from_the_docs() -> None:
    # kubernetes.io: weight 1 for label-1=key-1, weight 50 for label-2=key-2
    pod = pod_with(
        {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": term(expr("label-1", "In", "key-1"))},
                {"weight": 50, "preference": term(expr("label-2", "In", "key-2"))},
            ]
        }
    )
    assert preferred_affinity_score(pod, node("a", **{"label-1": "key-1"})) == 1
    assert preferred_affinity_score(pod, node("b", **{"label-2": "key-2"})) == 50
    assert (
        preferred_affinity_score(pod, node("c", **{"label-1": "key-1", "label-2": "key-2"})) == 51
    )
    assert preferred_affinity_score(pod, node("d")) == 0
    # preferred terms never filter
    assert matches_required_affinity(pod, node("d"))


def test_preferred_ignores_zero_weight_and_empty_preference() -> None:
    pod = pod_with(
        {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 0, "preference": term(expr("a", "Exists"))},
                {"weight": 5, "preference": {}},
            ]
        }
    )
    assert preferred_affinity_score(pod, node("n", a="1")) == 0


# --- properties ----------------------------------------------------------------------------

keys = st.sampled_from(["a", "b", "example.com/c", "node-role.kubernetes.io/control-plane"])
values = st.sampled_from(["", "1", "2", "x", "-5", "10"])
effects = st.sampled_from(EFFECTS)
taints_st = st.builds(taint, keys, values, effects)
maybe_effect = st.sampled_from(["", *EFFECTS])
labels_st = st.dictionaries(keys, values, max_size=4)


@given(taints_st, maybe_effect)
def test_exists_without_key_tolerates_every_taint_of_its_effect(
    t: dict[str, str], effect: str
) -> None:
    tol = {"operator": "Exists", "effect": effect} if effect else {"operator": "Exists"}
    assert toleration_tolerates(tol, t) is (not effect or effect == t["effect"])


@given(keys, values, maybe_effect, taints_st)
def test_equal_tolerates_exactly_same_key_value_and_effect(
    key: str, value: str, effect: str, t: dict[str, str]
) -> None:
    tol = {"key": key, "operator": "Equal", "value": value, "effect": effect}
    expected = key == t["key"] and value == t["value"] and effect in ("", t["effect"])
    assert toleration_tolerates(tol, t) is expected


@given(
    st.lists(st.fixed_dictionaries({"key": keys, "operator": st.just("Exists")}), max_size=3),
    st.lists(taints_st, max_size=4),
)
def test_more_tolerations_never_untolerate(
    tols: list[dict[str, str]], taints: list[dict[str, str]]
) -> None:
    if taints_tolerated(tols, taints):
        assert taints_tolerated([*tols, {"key": "zzz", "operator": "Exists"}], taints)


@given(keys, st.lists(values, min_size=1, max_size=3), labels_st)
def test_notin_is_the_negation_of_in_when_the_key_exists(
    key: str, vals: list[str], labels: dict[str, str]
) -> None:
    is_in = matches_node_selector_term(term(expr(key, "In", *vals)), labels)
    not_in = matches_node_selector_term(term(expr(key, "NotIn", *vals)), labels)
    if key in labels:
        assert is_in is not not_in
    else:
        assert not is_in and not_in


@given(keys, labels_st)
def test_doesnotexist_is_the_negation_of_exists(key: str, labels: dict[str, str]) -> None:
    exists = matches_node_selector_term(term(expr(key, "Exists")), labels)
    absent = matches_node_selector_term(term(expr(key, "DoesNotExist")), labels)
    assert exists is (key in labels)
    assert absent is not exists


@given(keys, st.integers(-20, 20), st.integers(-20, 20))
def test_gt_and_lt_compare_integers(key: str, label: int, bound: int) -> None:
    labels = {key: str(label)}
    assert matches_node_selector_term(term(expr(key, "Gt", str(bound))), labels) is (label > bound)
    assert matches_node_selector_term(term(expr(key, "Lt", str(bound))), labels) is (label < bound)


operators = st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"])


@st.composite
def requirements(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(operators)
    if op in ("Exists", "DoesNotExist"):
        return expr(draw(keys), op)
    if op in ("Gt", "Lt"):
        return expr(draw(keys), op, str(draw(st.integers(-10, 10))))
    return expr(draw(keys), op, *draw(st.lists(values, min_size=1, max_size=3)))


exprs_st = st.lists(requirements(), min_size=1, max_size=3)


@given(st.lists(exprs_st, min_size=1, max_size=3), exprs_st, labels_st)
def test_terms_are_ored_adding_a_term_never_removes_matches(
    terms: list[list[dict[str, Any]]], extra: list[dict[str, Any]], labels: dict[str, str]
) -> None:
    the_node = {"metadata": {"name": "n", "labels": labels}}
    before = matches_required_affinity(pod_with(required(*(term(*t) for t in terms))), the_node)
    after = matches_required_affinity(
        pod_with(required(*(term(*t) for t in [*terms, extra]))), the_node
    )
    assert after >= before
    assert before is any(matches_node_selector_term(term(*t), labels) for t in terms)


@given(exprs_st, requirements(), labels_st)
def test_expressions_are_anded_adding_one_never_adds_matches(
    exprs: list[dict[str, Any]], extra: dict[str, Any], labels: dict[str, str]
) -> None:
    before = matches_node_selector_term(term(*exprs), labels)
    after = matches_node_selector_term(term(*exprs, extra), labels)
    assert after <= before
    assert before is all(matches_node_selector_term(term(e), labels) for e in exprs)


# --- label selectors ----------------------------------------------------------------------


def test_pdb_selector_empty_matches_nothing_for_eviction() -> None:
    assert not label_selector_matches({}, {"app": "web"}, empty_matches=False)
    assert not label_selector_matches(None, {"app": "web"}, empty_matches=True)
    assert label_selector_matches({}, {"app": "web"}, empty_matches=True)
    sel = {"matchLabels": {"app": "web"}, "matchExpressions": [expr("tier", "NotIn", "db")]}
    assert label_selector_matches(sel, {"app": "web"}, empty_matches=False)
    assert not label_selector_matches(sel, {"app": "web", "tier": "db"}, empty_matches=False)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", {}, True),
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "db"}, False),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("app in (web, api),tier", {"app": "api", "tier": "x"}, True),
        ("app notin (web,api)", {"app": "api"}, False),
        ("!canary", {"canary": "1"}, False),
        ("!canary,app=web", {"app": "web"}, True),
        ("cores>4", {"cores": "8"}, True),
    ],
)
def test_pod_selector_strings(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(text)(labels) is expected


@pytest.mark.parametrize("text", ["app in ()", "a=b=c", "x>y", "!a in (b)"])
def test_pod_selector_rejects_invalid(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(text)


# --- the matchers against models written from the kubernetes.io prose ----------------------


def toleration_model(tol: dict[str, str], t: dict[str, str]) -> bool:
    """kubernetes.io: empty effect matches all effects; empty key with Exists matches all keys;
    Exists matches any value, Equal (the default) needs equal values."""
    if tol.get("effect") and tol["effect"] != t["effect"]:
        return False
    if tol.get("key") and tol["key"] != t["key"]:
        return False
    if tol.get("operator", "Equal") == "Exists":
        return True
    return tol.get("operator", "Equal") == "Equal" and tol.get("value", "") == t["value"]


@st.composite
def tolerations(draw: st.DrawFn) -> dict[str, str]:
    tol: dict[str, str] = {}
    for field, strategy in (
        ("key", keys),
        ("operator", st.sampled_from(["Equal", "Exists"])),
        ("value", values),
        ("effect", effects),
    ):
        if draw(st.booleans()):
            tol[field] = draw(strategy)
    return tol


@given(tolerations(), taints_st)
def test_toleration_matches_the_docs_model(tol: dict[str, str], t: dict[str, str]) -> None:
    assert toleration_tolerates(tol, t) is toleration_model(tol, t)


def requirement_model(req: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, vals = req["key"], req["operator"], req.get("values", [])
    if op == "In":
        return key in labels and labels[key] in vals
    if op == "NotIn":
        return key not in labels or labels[key] not in vals
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    try:
        have, want = int(labels[key]), int(vals[0])
    except (KeyError, ValueError):
        return False
    return have > want if op == "Gt" else have < want


@given(exprs_st, labels_st)
def test_term_matches_the_docs_model(exprs: list[dict[str, Any]], labels: dict[str, str]) -> None:
    expected = all(requirement_model(e, labels) for e in exprs)
    assert matches_node_selector_term(term(*exprs), labels) is expected
