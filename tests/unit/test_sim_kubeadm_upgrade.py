"""The simulated `kubeadm upgrade`: version policy, preflight and plan output against the real
outputs in the shared fixtures, flags, and what the upgrade writes (pure parts)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from nodeops.facts.binaries import parse_kubeadm_version
from nodeops.lab import manifests
from nodeops.lab.sim import kubeadm
from nodeops.lab.sim import kubeadm_policy as policy
from nodeops.lab.sim import kubeadm_upgrade as upgrade

OUTPUTS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "outputs"


def fixture(name: str) -> str:
    path = OUTPUTS / name
    if not path.exists():
        pytest.skip(f"fixture {path} is absent (shared fixtures not checked out)")
    return path.read_text()


def check(
    target: str, cluster: str, kubeadm_version: str, kubelets: tuple[str, ...] = ()
) -> policy.PolicyErrors:
    t = policy.parse_semver(target)
    return policy.enforce_version_policies(
        str(t),
        t,
        policy.parse_semver(cluster),
        policy.parse_semver(kubeadm_version),
        kubeadm_version,
        kubelets or (cluster,),
    )


# ---- version policy (policy.go)


def test_one_minor_up_with_a_matching_kubeadm_is_allowed() -> None:
    assert not check("v1.30.2", "v1.29.3", "v1.30.2")
    assert not check("1.30.2", "v1.29.3", "v1.30.2")  # kubeadm normalises the leading v


def test_skipping_a_minor_is_refused_for_good() -> None:
    errs = check("v1.31.0", "v1.29.3", "v1.31.0")
    assert errs.mandatory == [
        'Specified version to upgrade to "v1.31.0" is too high; kubeadm can upgrade only 1'
        " minor version at a time"
    ]
    failure = policy.policy_failure(errs, force=True)
    assert failure is not None and "these fatal errors" in failure  # --force does not help


def test_a_newer_minor_than_kubeadm_is_refused() -> None:
    errs = check("v1.31.0", "v1.30.2", "v1.30.2")
    assert errs.mandatory == [
        'Specified version to upgrade to "v1.31.0" is at least one minor release higher than'
        " the kubeadm minor release (31 > 30). Such an upgrade is not supported"
    ]


def test_a_newer_patch_than_kubeadm_matches_the_real_fatal_output() -> None:
    real = fixture("kubeadm-upgrade-apply.fatal-version-higher-than-kubeadm.v1.25.txt")
    errs = check("v1.25.1", "v1.24.9", "v1.25.0")
    assert errs.mandatory == [] and len(errs.skippable) == 1
    ours = policy.policy_failure(errs, force=False)
    assert ours is not None
    assert ours.expandtabs(8) == real.rstrip("\n")
    assert policy.policy_failure(errs, force=True) is None
    assert policy.forced_notice(errs).startswith("[upgrade/version] Found 1 potential version")


def test_downgrades_beyond_one_minor_and_old_kubeadm_targets() -> None:
    errs = check("v1.28.5", "v1.30.2", "v1.30.2")
    assert (
        'Specified version to downgrade to "v1.28.5" is too low; kubeadm can downgrade only 1'
        " minor version at a time"
    ) in errs.mandatory
    assert any("equal to or lower than the minimum supported version" in e for e in errs.mandatory)
    one_down = check("v1.29.9", "v1.30.2", "v1.30.2")
    assert one_down.mandatory == []
    assert one_down.skippable == [
        "Kubeadm version v1.30.2 can only be used to upgrade to Kubernetes version 1.30"
    ]


def test_unstable_versions_and_old_kubelets_are_skippable() -> None:
    rc = check("v1.30.0-rc.1", "v1.29.3", "v1.30.0")
    assert any("is an unstable version" in e for e in rc.skippable)
    t = policy.parse_semver("v1.30.0-rc.1")
    allowed = policy.enforce_version_policies(
        str(t),
        t,
        policy.parse_semver("v1.29.3"),
        policy.parse_semver("v1.30.0"),
        "v1.30.0",
        ["v1.29.3"],
        allow_rc=True,
    )
    assert not any("unstable" in e for e in allowed.skippable)
    old = check("v1.30.2", "v1.29.3", "v1.30.2", ("v1.29.3", "v1.28.9", "v1.28.9"))
    assert old.skippable == [
        "There are kubelets in this cluster that are too old that have these versions [v1.28.9]"
    ]


def test_semver_order_and_bad_versions() -> None:
    assert policy.parse_semver("v1.30.0-rc.1").less_than(policy.parse_semver("v1.30.0"))
    assert not policy.parse_semver("v1.30.0").less_than(policy.parse_semver("v1.30.0-rc.1"))
    assert policy.parse_semver("v1.29.15").less_than(policy.parse_semver("v1.30.0"))
    for bad in ("1.30", "v1.30.x", "latest", ""):
        with pytest.raises(policy.VersionSyntaxError):
            policy.parse_semver(bad)


def test_etcd_and_coredns_per_minor() -> None:
    assert (
        policy.etcd_version_for(policy.parse_semver("v1.29.3"))
        == manifests.ETCD_IMAGE.split(":")[-1]
    )
    assert policy.etcd_version_for(policy.parse_semver("v1.30.2")) == "3.5.12-0"
    assert policy.etcd_version_for(policy.parse_semver("v1.28.0")) == "3.5.9-0"  # fixture plan
    assert (
        policy.coredns_version_for(policy.parse_semver("v1.29.3"))
        == (manifests.COREDNS_IMAGE.split(":")[-1])
    )
    assert policy.etcd_tag_key("3.5.12-0") > policy.etcd_tag_key("3.5.9-0")


# ---- preflight and tables


def test_preflight_failure_matches_the_real_not_ready_output() -> None:
    real = fixture("kubeadm-upgrade-plan.v1.28-fatal-notready-control-plane.txt").splitlines()
    check_msg = "there are NotReady control-planes in the cluster: [k8s-controller-01]"
    warnings, fatal = policy.preflight_failure({"ControlPlaneNodesReady": check_msg}, [])
    assert warnings == [] and fatal is not None
    assert fatal.splitlines() == real[5:8]
    warnings, fatal = policy.preflight_failure(
        {"ControlPlaneNodesReady": check_msg}, ["controlplanenodesready"]
    )
    assert fatal is None and warnings == [f"\t[WARNING ControlPlaneNodesReady]: {check_msg}"]
    assert policy.preflight_failure({"X": "y"}, ["all"])[1] is None


def _block(text: str, header: str) -> str:
    lines = text.splitlines()
    start = lines.index(header)
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return "\n".join(lines[start:end]) + "\n"


@pytest.mark.parametrize(
    "name",
    ["kubeadm-upgrade-plan.v1.28.0-to-v1.28.9.txt", "kubeadm-upgrade-plan.v1.13.3-to-v1.14.0.txt"],
)
def test_tabwriter_reproduces_the_real_tables(name: str) -> None:
    real = fixture(name)
    headers = [line for line in real.splitlines() if line.startswith(("COMPONENT", "API GROUP"))]
    assert headers
    for header in headers:
        block = _block(real, header)
        rows = [[c for c in cells] for cells in map(policy._split_cells, block.splitlines())]
        assert policy.tabwrite(rows) == block


def _plan_input(kubeadm_version: str, cluster: str = "v1.29.3") -> policy.PlanInput:
    return policy.PlanInput(
        cluster=policy.parse_semver(cluster),
        kubeadm=policy.parse_semver(kubeadm_version),
        kubelets={"cp1": cluster, "worker1": cluster, "worker2": "v1.28.9"},
        control_plane={"cp1": dict.fromkeys(policy.COMPONENTS, cluster)},
        coredns="v1.11.1",
        etcd={"cp1": "3.5.10-0"},
        kube_proxy=cluster,
    )


def test_plan_up_to_1_30_groups_kubelets_and_reads_back() -> None:
    p = _plan_input("v1.30.2")
    versions = policy.render_plan_versions(p)
    assert versions.splitlines() == [
        "[upgrade/versions] Cluster version: v1.29.3",
        "[upgrade/versions] kubeadm version: v1.30.2",
        "[upgrade/versions] Target version: v1.30.2",
        "[upgrade/versions] Latest version in the v1.29 series: v1.30.2",
    ]
    text = policy.render_plan_tables(p)
    assert "COMPONENT   CURRENT       TARGET\nkubelet     1 x v1.28.9   v1.30.2\n" in text
    assert "            2 x v1.29.3   v1.30.2\n" in text
    assert "\n\tkubeadm upgrade apply v1.30.2\n" in text
    suggested, rows = policy.parse_plan(text)
    assert suggested == "v1.30.2"
    table = {(r.component, r.current): r.target for r in rows}
    assert table[("kube-apiserver", "v1.29.3")] == "v1.30.2"
    assert table[("etcd", "3.5.10-0")] == "3.5.12-0"
    assert table[("CoreDNS", "v1.11.1")] == "v1.11.1"
    assert table[("kubelet", "2 x v1.29.3")] == "v1.30.2"


def test_plan_parser_reads_the_real_plans() -> None:
    suggested, rows = policy.parse_plan(fixture("kubeadm-upgrade-plan.v1.28.0-to-v1.28.9.txt"))
    assert suggested == "v1.28.9"
    assert policy.PlanRow("kubelet", "2 x v1.28.0", "v1.28.9") in rows
    assert policy.PlanRow("etcd", "3.5.9-0", "3.5.9-0") in rows
    suggested, rows = policy.parse_plan(
        fixture("kubeadm-upgrade-plan.v1.19-aggregated-kubelet-rows.golden-snippet.txt")
    )
    assert policy.PlanRow("kubelet", "2 x v1.19.3", "v1.19.3") in rows


def test_plan_from_1_31_has_a_node_column() -> None:
    text = policy.render_plan_tables(_plan_input("v1.31.0", "v1.30.2"))
    assert "COMPONENT   NODE      CURRENT   TARGET\n" in text
    _, rows = policy.parse_plan(text)
    assert policy.PlanRow("kubelet", "v1.30.2", "v1.31.0", node="cp1") in rows
    assert policy.PlanRow("kubelet", "v1.28.9", "v1.31.0", node="worker2") in rows
    assert policy.PlanRow("kube-scheduler", "v1.30.2", "v1.31.0", node="cp1") in rows
    assert policy.PlanRow("kube-proxy", "v1.30.2", "v1.31.0") in rows


def test_an_up_to_date_cluster() -> None:
    text = policy.render_plan_tables(_plan_input("v1.29.3"))
    assert text == "Awesome, you're up-to-date! Enjoy!\n"


# ---- flags and the command line


def test_flags_as_cobra_parses_them() -> None:
    o = upgrade.parse_options(
        ["apply", "v1.30.2", "-y", "--etcd-upgrade=false", "--ignore-preflight-errors=all,x"]
    )
    assert (o.command, o.args, o.yes, o.etcd_upgrade) == ("apply", ["v1.30.2"], True, False)
    assert o.ignore == ["all", "x"] and o.certificate_renewal and not o.dry_run
    o = upgrade.parse_options(["apply", "--dry-run", "--certificate-renewal=false", "v1.30.2"])
    assert o.dry_run and not o.certificate_renewal and o.args == ["v1.30.2"]
    o = upgrade.parse_options(["node", "--v=5", "--ignore-preflight-errors", "all"])
    assert o.ignore == ["all"] and o.args == []
    with pytest.raises(upgrade.Fatal, match="unknown flag: --bogus"):
        upgrade.parse_options(["apply", "--bogus"])
    with pytest.raises(upgrade.Fatal, match='invalid argument "maybe"'):
        upgrade.parse_options(["apply", "--yes=maybe"])


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return (
        kubeadm.run(list(args), "v1.30.2", out, err, io.StringIO()),
        out.getvalue(),
        err.getvalue(),
    )


def test_command_line_errors_end_like_kubeadm() -> None:
    code, _, err = run("upgrade", "bogus")
    assert code == 1
    assert err == (
        'unknown command "bogus" for "kubeadm upgrade"\n'
        "To see the stack trace of this error execute with --v=5 or higher\n"
    )
    code, out, err = run("upgrade", "apply")
    assert code == 1 and out == ""
    assert err.startswith("[upgrade/version] FATAL: missing one or more required arguments.")
    assert parse_kubeadm_version(run("version", "-o", "short")[1]) == "v1.30.2"


def test_new_manifests_change_only_the_image_tag() -> None:
    text = manifests.dump(manifests.apiserver_manifest("10.0.0.1", "v1.29.3"))
    new = upgrade.new_manifest(text, "v1.30.2")
    old_doc, new_doc = yaml.safe_load(text), yaml.safe_load(new)
    assert new_doc["spec"]["containers"][0]["image"] == "registry.k8s.io/kube-apiserver:v1.30.2"
    new_doc["spec"]["containers"][0]["image"] = old_doc["spec"]["containers"][0]["image"]
    assert new_doc == old_doc
    assert upgrade.new_manifest(new, "v1.30.2") == new  # a second apply changes nothing
    etcd = manifests.dump(manifests.etcd_manifest("cp1", "10.0.0.1"))
    assert "registry.k8s.io/etcd:3.5.12-0" in upgrade.new_manifest(etcd, "3.5.12-0")
