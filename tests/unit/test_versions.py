"""Tests for nodeops.versions: parsing, the version-skew policy, and upgrade paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeops.errors import NodeopsError
from nodeops.packages import install, package_spec
from nodeops.versions import (
    ClusterVersions,
    Component,
    Hop,
    MinorRange,
    PackageVersion,
    RepoStyle,
    Version,
    VersionError,
    allowed_control_plane_range,
    allowed_kubectl_range,
    allowed_kubelet_range,
    check_hop,
    group_by_minor,
    parse_package_version,
    parse_version,
    skew_problems,
    upgrade_path,
)

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"


def fixture(relative: str) -> str:
    """A shared fixture's text, read in place; skips the test when ../shared is absent."""
    path = FIXTURES / relative
    if not path.is_file():
        pytest.skip(f"shared fixture not found: {path}")
    return path.read_text(encoding="utf-8")


def V(text: str) -> Version:
    return parse_version(text, allow_prerelease=True, allow_bare_minor=True)


# --- parsing ---------------------------------------------------------------------------------

ACCEPTED = [
    # text, str(), .v, build
    ("1.30.2", "1.30.2", "v1.30.2", None),
    ("v1.30.2", "1.30.2", "v1.30.2", None),
    ("1.30.2-00", "1.30.2", "v1.30.2", None),
    ("1.30.2-0", "1.30.2", "v1.30.2", None),
    ("1.30.2-1.1", "1.30.2", "v1.30.2", None),
    ("1.28.9-2.1", "1.28.9", "v1.28.9", None),
    ("1.30.2-150500.1.1", "1.30.2", "v1.30.2", None),
    ("v1.0.0", "1.0.0", "v1.0.0", None),
    ("v1.17.17+k3s1", "1.17.17+k3s1", "v1.17.17+k3s1", "+k3s1"),
    ("v1.27.3-gke.100", "1.27.3-gke.100", "v1.27.3-gke.100", "-gke.100"),
    ("v1.29.0-eks-5e0fdde", "1.29.0-eks-5e0fdde", "v1.29.0-eks-5e0fdde", "-eks-5e0fdde"),
    ("v1.12.4+509916ce1", "1.12.4+509916ce1", "v1.12.4+509916ce1", "+509916ce1"),
    ("v1.30.1+rke2r1", "1.30.1+rke2r1", "v1.30.1+rke2r1", "+rke2r1"),
]


@pytest.mark.parametrize(("text", "plain", "v", "build"), ACCEPTED)
def test_accepted_forms_normalise(text: str, plain: str, v: str, build: str | None) -> None:
    version = parse_version(text)
    assert str(version) == plain
    assert version.v == v
    assert version.build == build
    assert version.is_upstream is (build is None)
    assert version.upstream.is_upstream


def test_vendor_builds_are_recognised_not_upstream() -> None:
    k3s = parse_version("v1.17.17+k3s1")
    assert (k3s.major, k3s.minor, k3s.patch) == (1, 17, 17)
    assert not k3s.is_upstream
    assert k3s.upstream == parse_version("1.17.17")
    assert k3s != parse_version("1.17.17")


REJECTED = [
    ("1.030.2", "leading zero"),
    ("01.30.2", "leading zero"),
    ("1.30.02", "leading zero"),
    (" 1.30.2", "whitespace"),
    ("1.30.2 ", "whitespace"),
    ("1.30.2\n", "whitespace"),
    ("\u0661.\u0663\u0660.\u0662", "ASCII"),  # Arabic-Indic digits
    ("\uff11.\uff13\uff10.\uff12", "ASCII"),  # fullwidth digits
    ("1.३०.2", "ASCII"),  # Devanagari digits
    ("1.30.2-rc.1", "pre-release"),
    ("v1.31.0-beta.0", "pre-release"),
    ("1.30", "bare minor"),
    ("v1.30", "bare minor"),
    ("", "empty"),
    ("1", "not a Kubernetes version"),
    ("1.", "not a Kubernetes version"),
    ("latest", "not a Kubernetes version"),
    ("stable-1.30", "not a Kubernetes version"),
    ("V1.30.2", "lower case"),
    ("1.30.2.4", "cannot read"),
    ("1.30.2-rc1", "pre-release is written"),
    ("1.30.2-1.1x", "cannot read"),
    ("1.30.2;reboot", "cannot read"),
    ("1.30.2 && reboot", "cannot read"),
    ("1.30.2$(id)", "cannot read"),
    ("1.30.2`id`", "cannot read"),
    ("1.30.2-", "cannot read"),
    ("1.30.2+", "cannot read"),
    ("1.30.2\x00", "ASCII"),
    ("1.30-00", "bare minor takes no suffix"),
    ("1.30.2-123", "unknown package revision"),
    ("1.30.2-1.2.3.4", "unknown package revision"),
]


@pytest.mark.parametrize(("text", "reason"), REJECTED)
def test_rejected_forms_say_why_and_quote_the_input(text: str, reason: str) -> None:
    with pytest.raises(VersionError) as raised:
        parse_version(text)
    message = str(raised.value)
    assert reason in message
    if text:
        assert repr(text)[:20] in message or repr(text[:40])[:20] in message


def test_version_error_is_a_nodeops_error() -> None:
    assert issubclass(VersionError, NodeopsError)


def test_non_string_is_rejected() -> None:
    with pytest.raises(VersionError, match="must be text"):
        parse_version(1.30)  # type: ignore[arg-type]


def test_opt_ins() -> None:
    assert str(parse_version("1.30", allow_bare_minor=True)) == "1.30"
    assert parse_version("v1.30", allow_bare_minor=True).is_bare_minor
    rc = parse_version("1.30.2-rc.1", allow_prerelease=True)
    assert rc.pre == "rc.1" and rc.is_prerelease and str(rc) == "1.30.2-rc.1"
    dev = parse_version("v1.30.0-alpha.3.55+466019b1b27fc0-dirty", allow_prerelease=True)
    assert dev.pre == "alpha.3.55" and dev.build == "+466019b1b27fc0-dirty"
    beta = parse_version("v1.15.9-beta.0", allow_prerelease=True)
    assert beta.pre == "beta.0"


def test_ordering() -> None:
    ordered = [
        V("1.9.9"),
        V("1.29"),
        V("1.29.0-alpha.1"),
        V("1.29.0-alpha.3"),
        V("1.29.0-alpha.3.55"),
        V("1.29.0-beta.0"),
        V("1.29.0-rc.0"),
        V("1.29.0-rc.2"),
        V("1.29.0"),
        V("1.29.1"),
        V("1.29.10"),
        V("1.30.0"),
        V("2.0.0"),
    ]
    assert sorted(reversed(ordered)) == ordered
    assert V("1.30.2") == V("v1.30.2") == V("1.30.2-1.1")
    assert len({V("1.30.2"), V("v1.30.2")}) == 1
    assert V("1.30.2").minor_key == (1, 30)


def test_version_validates_its_fields() -> None:
    with pytest.raises(VersionError):
        Version(1, 30, 2, pre="gamma.1")
    with pytest.raises(VersionError):
        Version(1, 30, 2, build="; rm")
    with pytest.raises(VersionError):
        Version(1, -1, 2)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_parse_never_crashes_and_round_trips(text: str) -> None:
    try:
        version = parse_version(text, allow_prerelease=True, allow_bare_minor=True)
    except VersionError:
        return
    assert text.isascii() and text == text.strip()
    assert parse_version(str(version), allow_prerelease=True, allow_bare_minor=True) == version


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3), st.integers(0, 60), st.integers(0, 40), st.sampled_from(["", "v"]))
def test_generated_versions_parse(major: int, minor: int, patch: int, prefix: str) -> None:
    version = parse_version(f"{prefix}{major}.{minor}.{patch}")
    assert (version.major, version.minor, version.patch) == (major, minor, patch)


# --- package versions ------------------------------------------------------------------------

PACKAGE_FORMS = [
    ("1.30.2-1.1", "1.30.2", "1.1", RepoStyle.PKGS_DEB),
    ("1.28.9-2.1", "1.28.9", "2.1", RepoStyle.PKGS_DEB),
    ("1.30.2-150500.1.1", "1.30.2", "150500.1.1", RepoStyle.PKGS_RPM),
    ("1.18.2-00", "1.18.2", "00", RepoStyle.LEGACY_DEB),
    ("1.12.1-02", "1.12.1", "02", RepoStyle.LEGACY_DEB),
    ("1.18.2-0", "1.18.2", "0", RepoStyle.LEGACY_RPM),
]


@pytest.mark.parametrize(("text", "upstream", "revision", "style"), PACKAGE_FORMS)
def test_package_versions(text: str, upstream: str, revision: str, style: RepoStyle) -> None:
    package = parse_package_version(text)
    assert str(package) == text
    assert package.version == parse_version(upstream)
    assert package.revision == revision
    assert package.style is style
    assert package.style.is_deb == (style in (RepoStyle.PKGS_DEB, RepoStyle.LEGACY_DEB))


@pytest.mark.parametrize(
    "text",
    ["1.30.2", "v1.30.2+k3s1", "1.30.2-rc.1-1.1", "1.30.2-1.2.3.4", "1.30-1.1", "1.30.2-1.1 "],
)
def test_package_versions_rejected(text: str) -> None:
    with pytest.raises(VersionError):
        parse_package_version(text)


def test_package_version_ordering_uses_numeric_revisions() -> None:
    assert parse_package_version("1.28.9-2.1") > parse_package_version("1.28.9-1.1")
    assert parse_package_version("1.28.10-1.1") > parse_package_version("1.28.9-2.1")
    assert parse_package_version("1.30.2-10.1") > parse_package_version("1.30.2-9.1")


# --- skew policy -----------------------------------------------------------------------------


def cluster(
    apiservers: dict[str, str],
    *,
    cms: dict[str, str] | None = None,
    schedulers: dict[str, str] | None = None,
    kubelets: dict[str, str] | None = None,
    proxies: dict[str, str] | None = None,
    kubectl: dict[str, str] | None = None,
) -> ClusterVersions:
    def parse(values: dict[str, str] | None) -> dict[str, Version]:
        return {node: V(text) for node, text in (values or {}).items()}

    return ClusterVersions(
        apiservers=parse(apiservers),
        controller_managers=parse(cms),
        schedulers=parse(schedulers),
        kubelets=parse(kubelets),
        kube_proxies=parse(proxies),
        kubectl=parse(kubectl),
    )


def test_seed_example_two_apiserver_versions_narrow_every_range() -> None:
    apiservers = [V("1.20.4"), V("1.19.8")]
    assert allowed_kubelet_range(apiservers) == MinorRange((1, 18), (1, 19))
    assert allowed_control_plane_range(apiservers) == MinorRange((1, 19), (1, 19))
    assert allowed_kubectl_range(apiservers) == MinorRange((1, 19), (1, 20))
    c = cluster(
        {"cp1": "1.20.4", "cp2": "1.19.8"},
        cms={"cp1": "1.20.4", "cp2": "1.19.8"},
        schedulers={"cp1": "1.20.4", "cp2": "1.19.8"},
        kubelets={"cp1": "1.20.4", "w1": "1.19.8", "w2": "1.18.1"},
    )
    flagged = {(p.component, p.node) for p in skew_problems(c)}
    assert flagged == {
        (Component.CONTROLLER_MANAGER, "cp1"),
        (Component.SCHEDULER, "cp1"),
        (Component.KUBELET, "cp1"),
    }
    problem = next(p for p in skew_problems(c) if p.component is Component.KUBELET)
    assert problem.allowed == MinorRange((1, 18), (1, 19))
    assert "1.18 … 1.19" in problem.message and "1.20.4" in problem.message


KUBELET_TABLE = [
    # apiserver, kubelet, allowed?
    ("1.30.2", "1.30.0", True),
    ("1.30.2", "1.29.5", True),
    ("1.30.2", "1.28.5", True),
    ("1.30.2", "1.27.5", True),  # three older, kubelet >= 1.25
    ("1.30.2", "1.26.5", False),  # four older
    ("1.30.2", "1.31.0", False),  # newer
    ("1.28.0", "1.25.0", True),  # three older, kubelet exactly 1.25
    ("1.27.0", "1.24.9", False),  # three older but kubelet < 1.25: only two allowed
    ("1.27.0", "1.25.0", True),
    ("1.26.0", "1.24.0", True),  # two older, kubelet < 1.25
    ("1.26.0", "1.23.0", False),
    ("1.20.0", "1.18.0", True),
    ("1.20.0", "1.17.0", False),
]


@pytest.mark.parametrize(("apiserver", "kubelet", "allowed"), KUBELET_TABLE)
def test_kubelet_skew(apiserver: str, kubelet: str, allowed: bool) -> None:
    c = cluster({"cp": apiserver}, kubelets={"n": kubelet}, proxies={"n": kubelet})
    problems = skew_problems(c)
    assert (not problems) is allowed, problems
    if not allowed:
        assert {p.component for p in problems} == {Component.KUBELET, Component.KUBE_PROXY}


CONTROL_PLANE_TABLE = [
    ("1.30.2", "1.30.0", True),
    ("1.30.2", "1.29.9", True),
    ("1.30.2", "1.28.9", False),
    ("1.30.2", "1.31.0", False),
]


@pytest.mark.parametrize(("apiserver", "component", "allowed"), CONTROL_PLANE_TABLE)
def test_controller_manager_and_scheduler_skew(
    apiserver: str, component: str, allowed: bool
) -> None:
    c = cluster({"cp": apiserver}, cms={"cp": component}, schedulers={"cp": component})
    assert (not skew_problems(c)) is allowed


KUBECTL_TABLE = [
    ("1.30.2", "1.31.0", True),
    ("1.30.2", "1.30.0", True),
    ("1.30.2", "1.29.0", True),
    ("1.30.2", "1.32.0", False),
    ("1.30.2", "1.28.0", False),
]


@pytest.mark.parametrize(("apiserver", "kubectl", "allowed"), KUBECTL_TABLE)
def test_kubectl_skew(apiserver: str, kubectl: str, allowed: bool) -> None:
    assert (not skew_problems(cluster({"cp": apiserver}, kubectl={"cp": kubectl}))) is allowed


def test_apiservers_within_one_minor() -> None:
    assert not skew_problems(cluster({"a": "1.30.1", "b": "1.29.3"}))
    problems = skew_problems(cluster({"a": "1.30.1", "b": "1.28.3", "c": "1.30.0"}))
    assert [(p.component, p.node) for p in problems] == [(Component.APISERVER, "b")]
    assert "more than one minor" in problems[0].message


def test_kube_proxy_against_its_kubelet() -> None:
    c = cluster({"cp": "1.30.0"}, kubelets={"n": "1.30.0"}, proxies={"n": "1.27.0"})
    assert not skew_problems(c)


def test_no_apiserver_known() -> None:
    problems = skew_problems(ClusterVersions(apiservers={}))
    assert len(problems) == 1 and "no kube-apiserver" in problems[0].message
    with pytest.raises(VersionError):
        allowed_kubelet_range([])


def test_minor_range() -> None:
    assert str(MinorRange((1, 18), (1, 19))) == "1.18 … 1.19"
    assert str(MinorRange((1, 19), (1, 19))) == "1.19"
    assert str(MinorRange((1, 20), (1, 19))) == "none" and MinorRange((1, 20), (1, 19)).empty
    assert V("1.19.3") in MinorRange((1, 18), (1, 19))
    assert (1, 17) not in MinorRange((1, 18), (1, 19))


# --- check_hop --------------------------------------------------------------------------------

AT_130 = {
    "apiservers": {"cp1": "1.30.2", "cp2": "1.30.2"},
    "cms": {"cp1": "1.30.2", "cp2": "1.30.2"},
    "schedulers": {"cp1": "1.30.2", "cp2": "1.30.2"},
    "kubelets": {"cp1": "1.30.2", "cp2": "1.30.2", "w1": "1.30.2", "w2": "1.29.4"},
    "kubectl": {"cp1": "1.30.2"},
}


def at_130(**changes: dict[str, str]) -> ClusterVersions:
    parts = {key: dict(value) for key, value in AT_130.items()}
    for key, value in changes.items():
        parts[key].update(value)
    return cluster(
        parts["apiservers"],
        cms=parts["cms"],
        schedulers=parts["schedulers"],
        kubelets=parts["kubelets"],
        kubectl=parts["kubectl"],
    )


def test_hop_to_next_minor_is_clear() -> None:
    assert check_hop(at_130(), V("1.31.0")) == []
    assert check_hop(at_130(), V("1.30.5")) == []  # patch upgrade


def test_hop_skipping_a_minor_is_refused() -> None:
    blockers = check_hop(at_130(), V("1.32.0"))
    assert any("one minor at a time" in b and "1.31" in b for b in blockers)


def test_downgrade_refused_unless_allowed() -> None:
    blockers = check_hop(at_130(), V("1.29.9"))
    assert any("downgrade" in b for b in blockers)
    # allowed: the kubelets at 1.30 would be newer than the downgraded apiservers
    allowed = check_hop(at_130(), V("1.29.9"), allow_downgrade=True)
    assert not any("downgrades are refused" in b for b in allowed)
    assert any("kubelet on w1" in b and "newer than the target" in b for b in allowed)
    # a control plane upgraded before its kubelets can go back one minor
    rollback = cluster(
        {"cp1": "1.30.2"},
        cms={"cp1": "1.30.2"},
        schedulers={"cp1": "1.30.2"},
        kubelets={"cp1": "1.29.9"},
    )
    assert check_hop(rollback, V("1.29.9"), allow_downgrade=True) == []
    assert any(
        "one minor at a time" in b for b in check_hop(rollback, V("1.28.0"), allow_downgrade=True)
    )
    assert any("downgrade" in b for b in check_hop(at_130(), V("1.30.1")))  # patch downgrade


def test_kubelet_newer_than_the_control_plane_is_refused() -> None:
    blockers = check_hop(at_130(kubelets={"w1": "1.31.0"}), V("1.31.0"))
    assert any("kubelet on w1" in b and "newer than every kube-apiserver" in b for b in blockers)


def test_kubelets_must_be_at_t_minus_one_or_two_before_a_minor_hop() -> None:
    assert check_hop(at_130(kubelets={"w2": "1.29.0"}), V("1.31.0")) == []
    # 1.28 is allowed today (two behind 1.30) and by the skew policy after the hop (three
    # behind 1.31), but the upgrade-order prerequisite asks for T-1 or T-2.
    blockers = check_hop(at_130(kubelets={"w2": "1.28.9"}), V("1.31.0"))
    assert len(blockers) == 1 and "kubelet on w2" in blockers[0] and "1.29" in blockers[0]
    # a patch upgrade changes no minor skew: three behind stays allowed
    assert check_hop(at_130(kubelets={"w2": "1.27.9"}), V("1.30.5")) == []
    assert check_hop(at_130(kubelets={"w2": "1.26.9"}), V("1.30.5"))


def test_hop_in_progress_allows_upgraded_nodes() -> None:
    mid = cluster(
        {"cp1": "1.31.0", "cp2": "1.30.2"},
        cms={"cp1": "1.31.0", "cp2": "1.30.2"},
        schedulers={"cp1": "1.31.0", "cp2": "1.30.2"},
        kubelets={"cp1": "1.31.0", "cp2": "1.30.2", "w1": "1.29.0"},
        kubectl={"cp1": "1.31.0", "cp2": "1.30.2"},
    )
    assert check_hop(mid, V("1.31.0")) == []
    # the strict policy check still reports the transient skew
    assert {p.node for p in skew_problems(mid)} == {"cp1"}


def test_control_plane_components_newer_than_apiservers() -> None:
    blockers = check_hop(at_130(cms={"cp2": "1.31.0"}), V("1.31.0"))
    assert any("kube-controller-manager on cp2" in b for b in blockers)
    blockers = check_hop(at_130(schedulers={"cp2": "1.29.0"}), V("1.31.0"))
    assert any("kube-scheduler on cp2" in b and "1.30 or newer" in b for b in blockers)


def test_kubectl_too_old_for_the_hop() -> None:
    blockers = check_hop(at_130(kubectl={"cp1": "1.29.0"}), V("1.31.0"))
    assert any("kubectl on cp1" in b for b in blockers)


def test_vendor_clusters_and_targets() -> None:
    k3s = cluster({"s": "v1.17.17+k3s1"})
    assert any("vendor build" in b for b in check_hop(k3s, V("1.18.0")))
    assert any("vendor build" in b for b in check_hop(at_130(), V("1.31.0+k3s1")))


def test_check_hop_edges() -> None:
    assert check_hop(ClusterVersions(apiservers={}), V("1.31.0"))
    with pytest.raises(VersionError):
        check_hop(at_130(), V("1.31"))
    assert any("major" in b for b in check_hop(at_130(), V("2.0.0")))


def test_check_hop_on_real_kubectl_get_nodes_versions() -> None:
    text = fixture("outputs/kubectl-get-nodes.mixed-versions.v1.17-v1.16.txt")
    versions = {
        line.split()[0]: V(line.split()[-1]) for line in text.splitlines()[1:] if line.strip()
    }
    assert {v.minor_key for v in versions.values()} <= {(1, 16), (1, 17)}
    newest = max(versions.values())
    c = ClusterVersions(apiservers={"cp": newest}, kubelets=versions)
    assert check_hop(c, Version(1, 18, 0)) == []
    assert check_hop(c, Version(1, 19, 0))


# --- upgrade path ----------------------------------------------------------------------------


def served(*minors: tuple[int, int, int]) -> dict[tuple[int, int], list[PackageVersion]]:
    """Repositories serving patches 0..last of each (major, minor, last)."""
    return group_by_minor(
        parse_package_version(f"{major}.{minor}.{patch}-1.1")
        for major, minor, last in minors
        for patch in range(last + 1)
    )


REPOS = served((1, 28, 11), (1, 29, 9), (1, 30, 6), (1, 31, 2))


def path(current: str, target: str, available: object = REPOS, **kw: bool) -> list[str]:
    hops: list[Hop] = upgrade_path(V(current), V(target), available, **kw)  # type: ignore[arg-type]
    return [f"{h.kind} {h.target}" for h in hops]


PATHS = [
    ("1.28.5", "1.30", ["minor 1.29.9-1.1", "minor 1.30.6-1.1"]),
    ("1.28.5", "1.30.2", ["minor 1.29.9-1.1", "minor 1.30.2-1.1"]),
    ("1.28.5", "1.29", ["minor 1.29.9-1.1"]),
    ("1.28.5", "1.28.11", ["patch 1.28.11-1.1"]),
    ("1.28.5", "1.28", ["patch 1.28.11-1.1"]),
    ("1.28.11", "1.28", []),
    ("1.28.11", "1.28.11", []),
    ("1.28.5", "1.31", ["minor 1.29.9-1.1", "minor 1.30.6-1.1", "minor 1.31.2-1.1"]),
]


@pytest.mark.parametrize(("current", "target", "expected"), PATHS)
def test_upgrade_paths(current: str, target: str, expected: list[str]) -> None:
    assert path(current, target) == expected


def test_hop_fields() -> None:
    hop = upgrade_path(V("1.29.1"), V("1.30"), REPOS)[0]
    assert hop.minor == (1, 30) and hop.repo == "v1.30" and hop.kind == "minor"
    assert hop.version == V("1.30.6")
    assert "1.30.6-1.1" in str(hop)


def test_latest_revision_wins_for_the_same_patch() -> None:
    repos = group_by_minor(
        parse_package_version(t) for t in ["1.28.9-1.1", "1.28.9-2.1", "1.28.8-1.1"]
    )
    assert path("1.27.3", "1.28.9", {**repos, **served((1, 27, 3))}) == ["minor 1.28.9-2.1"]


def test_skipped_minor_without_packages_is_refused() -> None:
    repos = served((1, 29, 9), (1, 31, 2))
    with pytest.raises(VersionError, match=r"v1\.30 repository serves nothing"):
        upgrade_path(V("1.29.9"), V("1.31.2"), repos)


def test_target_not_served_names_what_is_served() -> None:
    with pytest.raises(VersionError) as raised:
        upgrade_path(V("1.30.0"), V("1.30.9"), REPOS)
    assert "the v1.30 repository serves 1.30.0 … 1.30.6; 1.30.9 is not there" in str(raised.value)
    # only the v1.29 repository is known (the node's repo file points at it)
    only_129 = served((1, 29, 9))
    with pytest.raises(VersionError) as raised:
        upgrade_path(V("1.29.3"), V("1.30.2"), only_129)
    assert "the v1.29 repository serves 1.29.0 … 1.29.9; 1.30.2 is not there" in str(raised.value)


def test_downgrades_refused() -> None:
    with pytest.raises(VersionError, match="downgrade"):
        upgrade_path(V("1.30.2"), V("1.29.9"), REPOS)
    with pytest.raises(VersionError, match="downgrade"):
        upgrade_path(V("1.30.2"), V("1.30.1"), REPOS)
    assert path("1.30.2", "1.29.9", allow_downgrade=True) == ["downgrade 1.29.9-1.1"]
    with pytest.raises(VersionError, match="one minor version at a time"):
        upgrade_path(V("1.30.2"), V("1.28.1"), REPOS, allow_downgrade=True)


def test_path_refuses_vendor_and_bare_current() -> None:
    with pytest.raises(VersionError, match="vendor build"):
        upgrade_path(V("1.28.5+k3s1"), V("1.29.0"), REPOS)
    with pytest.raises(VersionError, match="patch release"):
        upgrade_path(V("1.28"), V("1.29.0"), REPOS)
    with pytest.raises(VersionError, match="major"):
        upgrade_path(V("1.28.5"), V("2.0.0"), REPOS)


def test_path_from_the_real_madison_listing() -> None:
    from nodeops.packages import parse_madison

    text = fixture("outputs/apt-cache-madison-kubeadm.pkgs.k8s.io-v1.28.txt")
    repos = group_by_minor(parse_madison(text))
    assert list(repos) == [(1, 28)]
    assert path("1.28.2", "1.28", repos) == ["patch 1.28.11-1.1"]
    assert path("1.28.2", "1.28.9", repos) == ["patch 1.28.9-2.1"]
    with pytest.raises(VersionError, match=r"serves 1\.28\.0 … 1\.28\.11; 1\.28\.12"):
        upgrade_path(V("1.28.2"), V("1.28.12"), repos)


# --- reliability case 32: version strings -------------------------------------------------

CASE_32 = [
    # input, parse_version() result or the reason it is refused (no opt-ins)
    ("1.30", "bare minor"),
    ("v1.30.2", "1.30.2"),
    ("1.30.2-00", "1.30.2"),
    ("1.30.2-1.1", "1.30.2"),
    ("1.30.2-150500.1.1", "1.30.2"),
    ("1.30.2-rc.1", "pre-release"),
    ("1.030.2", "leading zero"),
    (" 1.30.2", "whitespace"),
    ("\u0661.\u0663\u0660.\u0662", "ASCII"),
    ("1.\uff13\uff10.2", "ASCII"),
]


@pytest.mark.parametrize(("text", "expected"), CASE_32)
def test_case_32_version_strings_normalise_or_fail_clearly(text: str, expected: str) -> None:
    """Case 32: each listed string is normalised or refused with a reason that quotes it;
    a bare minor and an RC only with their opt-ins; a pinned package spec is built for the
    package manager and repository style, and anything else never becomes one."""
    if expected[0].isdigit():
        assert str(parse_version(text)) == expected
        assert parse_version(text).v == "v" + expected
        return
    with pytest.raises(VersionError) as raised:
        parse_version(text)
    assert expected in str(raised.value)
    assert repr(text) in str(raised.value)
    # No package spec can be built from a string the parser refuses.
    with pytest.raises(VersionError):
        package_spec("apt", "kubeadm", text)


def test_case_32_opt_ins_and_package_specs_per_repo() -> None:
    """Case 32: `1.30` and `1.30.2-rc.1` only with opt-in; specs follow the OS and repo."""
    assert parse_version("1.30", allow_bare_minor=True).is_bare_minor
    assert parse_version("1.30.2-rc.1", allow_prerelease=True).pre == "rc.1"
    assert package_spec("apt", "kubeadm", "1.30.2-1.1") == "kubeadm=1.30.2-1.1"
    assert package_spec("apt", "kubeadm", "1.30.2-00") == "kubeadm=1.30.2-00"
    assert package_spec("dnf", "kubeadm", "1.30.2-150500.1.1") == "kubeadm-1.30.2-150500.1.1"
    assert package_spec("yum", "kubelet", "1.30.2-0") == "kubelet-1.30.2-0"
    for pm, text in (("apt", "1.30.2-150500.1.1"), ("dnf", "1.30.2-1.1")):
        with pytest.raises(VersionError, match="needs"):
            package_spec(pm, "kubeadm", text)
    with pytest.raises(VersionError, match="no package revision"):
        package_spec("apt", "kubeadm", parse_version("v1.30.2"))  # type: ignore[arg-type]
    # What reaches the node is one quoted word per package, never shell syntax.
    command = install("apt", {"kubeadm": "1.30.2-1.1"}).render(as_root=True)
    assert " kubeadm=1.30.2-1.1" in command
    for hostile in ("1.30.2-1.1;reboot", "1.30.2-1.1 kubelet=1.0.0-1.1", "$(id)"):
        with pytest.raises(VersionError):
            install("apt", {"kubeadm": hostile})
