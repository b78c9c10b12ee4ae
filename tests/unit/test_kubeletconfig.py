"""Tests for nodeops.kubeletconfig: kubelet processes, flags, systemd units, config files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nodeops.kubeletconfig import (
    NO_STATIC_POD_PATH,
    DirEntry,
    Evidence,
    KubeletProcess,
    StaticPodPathError,
    combine_unit,
    expand_exec,
    expand_exec_sourced,
    kubelet_config_probe,
    parse_flags,
    parse_kubelet_config,
    parse_kubelet_probe,
    parse_kubelet_processes,
    parse_listing,
    parse_read_files,
    read_files_probe,
    resolve,
    split_systemctl_cat,
    split_words,
    with_files,
)

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "kubelet"

UNIT = "/usr/lib/systemd/system/kubelet.service"
DROPIN_DIR = "/usr/lib/systemd/system/kubelet.service.d"
KUBEADM_DROPIN = f"{DROPIN_DIR}/10-kubeadm.conf"
FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
CONFIG = "/var/lib/kubelet/config.yaml"

# Small inline samples so the tests run without ../shared.
KUBELET_SERVICE = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent

[Service]
ExecStart=/usr/bin/kubelet
Restart=always

[Install]
WantedBy=multi-user.target
"""
KUBEADM_CONF = """\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
--kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS \
$KUBELET_EXTRA_ARGS
"""
CONFIG_YAML = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
staticPodPath: /etc/kubernetes/manifests
"""


def fixture(name: str) -> str:
    """A shared kubelet fixture, read in place; skips the test when ../shared is absent."""
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"shared fixture not found: {path}")
    return path.read_text(encoding="utf-8")


def files(*pairs: tuple[str, str]) -> str:
    """What read_files_probe prints for these files (show_files inside the probe markers)."""
    body = "".join(f"==> {path} <==\n{content}\n" for path, content in pairs)
    return f"\n@@nodeops-probe kubelet_files@@\n{body}\n@@nodeops-rc kubelet_files 0@@\n"


def systemctl_cat(*files: tuple[str, str]) -> str:
    """What `systemctl cat kubelet` prints: each file after `# path`, blank lines between."""
    return "\n".join(f"# {path}\n{text}" for path, text in files)


def kubeadm_unit(dropin: str = KUBEADM_CONF, *more: tuple[str, str]) -> str:
    return systemctl_cat((UNIT, KUBELET_SERVICE), (KUBEADM_DROPIN, dropin), *more)


COVERED = {
    "10-kubeadm.conf.handwritten-config-in-kubeconfig-args",
    "10-kubeadm.conf.modern-deb",
    "10-kubeadm.conf.modern-pkgs.k8s.io",
    "10-kubeadm.conf.v1.11-deb-first",
    "10-kubeadm.conf.v1.5-rpm",
    "10-kubeadm.conf.v1.7-rpm",
    "10-kubeadm.conf.v1.8-v1.10-deb",
    "20-etcd-service-manager.conf.non-default-config-path",
    "20-etcd-service-manager.conf.pod-manifest-path-flag",
    "config.yaml.commented-binary-install.v1.12",
    "config.yaml.kubeadm-generated.v1.2x-cgroupfs",
    "config.yaml.minikube-v1.20.2",
    "config.yaml.no-staticPodPath.crio",
    "config.yaml.no-staticPodPath.flow-list.v1.16-binary",
    "kubeadm-flags.env.crio-endpoint",
    "kubeadm-flags.env.v1.11-unquoted",
    "kubeadm-flags.env.v1.1x-cgroupfs-trailing-spaces",
    "kubelet-config.json.eks-ami",
    "kubelet.conf.etcd-node-KubeletConfiguration-in-dropin-dir",
    "kubelet.service",
    "ps-auxwww-grep-kubelet.minikube-v1.20.2.txt",
}


def test_every_kubelet_fixture_has_a_test() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found: {FIXTURES}")
    assert {p.name for p in FIXTURES.iterdir()} == COVERED


# --- processes -----------------------------------------------------------------------------


def test_ps_fixture_finds_exactly_the_kubelet() -> None:
    procs = parse_kubelet_processes(fixture("ps-auxwww-grep-kubelet.minikube-v1.20.2.txt"))
    assert [p.pid for p in procs] == [852]
    assert procs[0].argv[0] == "/var/lib/minikube/binaries/v1.20.2/kubelet"
    assert procs[0].flags["config"] == "/var/lib/kubelet/config.yaml"
    assert procs[0].flags["container-runtime"] == "docker"


HOSTILE_PS = """\
    PID COMMAND
      1 /sbin/init
      2 [kthreadd]
    100 grep --color=auto kubelet
    101 systemctl status kubelet
    102 journalctl -u kubelet -f
    103 kube-apiserver --kubelet-client-certificate=/x --kubelet-preferred-address-types=InternalIP
    104 /usr/bin/kubelet-wrapper --config=/evil
    105 vim /var/lib/kubelet/config.yaml
    106 /bin/sh -c /usr/bin/kubelet --config=/evil
    107 sudo /usr/bin/kubelet --config=/evil
    108 kubelet-kubelet --config=/evil
    200 /usr/bin/kubelet --config=/var/lib/kubelet/config.yaml --v 2
    201 /usr/local/bin/hyperkube kubelet --pod-manifest-path=/etc/kubernetes/manifests
"""


def test_hostile_process_lines_are_not_kubelets() -> None:
    procs = parse_kubelet_processes(HOSTILE_PS)
    assert [p.pid for p in procs] == [200, 201]
    assert procs[0].flags == {"config": "/var/lib/kubelet/config.yaml", "v": "2"}
    assert procs[1].flags == {"pod-manifest-path": "/etc/kubernetes/manifests"}


def test_ps_aux_and_pid_args_formats() -> None:
    aux = "root 852 1.0 2.0 1 1 ? Ssl 06:54 1:00 /usr/bin/kubelet --config=/c.yaml\n"
    assert parse_kubelet_processes(aux) == [
        KubeletProcess(852, ("/usr/bin/kubelet", "--config=/c.yaml"))
    ]
    assert parse_kubelet_processes("  852 kubelet\n") == [KubeletProcess(852, ("kubelet",))]
    assert parse_kubelet_processes("") == []


# --- flags ---------------------------------------------------------------------------------


def test_flags_both_forms_last_wins_and_bools() -> None:
    argv = [
        "--config=/a.yaml",
        "--config",
        "/b.yaml",
        "--fail-swap-on",
        "--pod-manifest-path",
        "/m",
        "--rotate-certificates",
        "--register-node=false",
        "--pod_infra_container_image=pause:3.9",
        "-v",
        "4",
        "--",
        "--config=/ignored",
    ]
    assert parse_flags(argv) == {
        "config": "/b.yaml",
        "fail-swap-on": "true",
        "pod-manifest-path": "/m",
        "rotate-certificates": "true",
        "register-node": "false",
        "pod-infra-container-image": "pause:3.9",
        "v": "4",
    }


def test_boolean_flag_never_consumes_the_next_word() -> None:
    flags = parse_flags(["--anonymous-auth", "--config=/c", "--version", "--node-ip", "10.0.0.1"])
    assert flags == {
        "anonymous-auth": "true",
        "config": "/c",
        "version": "true",
        "node-ip": "10.0.0.1",
    }


def test_value_flag_at_the_end_has_an_empty_value() -> None:
    assert parse_flags(["--config"]) == {"config": ""}
    assert parse_flags(["-v8", "-h"]) == {"v": "8", "help": "true"}


# --- systemd -------------------------------------------------------------------------------


def test_split_systemctl_cat_headers() -> None:
    text = kubeadm_unit()
    files = split_systemctl_cat(text)
    assert [path for path, _ in files] == [UNIT, KUBEADM_DROPIN]
    assert files[1][1].startswith("# Note: This dropin")


def test_comment_naming_a_path_inside_a_file_is_not_a_header() -> None:
    body = "[Service]\n# /etc/default/kubelet.conf is read below\nEnvironment=A=1\n"
    files = split_systemctl_cat(systemctl_cat(("/etc/x/kubelet.service", body)))
    assert len(files) == 1


def test_kubeadm_unit_expands_like_systemd() -> None:
    unit = combine_unit(kubeadm_unit())
    env = {FLAGS_ENV: 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///x.sock"\n'}
    assert expand_exec(unit, env | {"/etc/default/kubelet": None}) == [
        "/usr/bin/kubelet",
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--config=/var/lib/kubelet/config.yaml",
        "--container-runtime-endpoint=unix:///x.sock",
    ]
    sourced = dict(expand_exec_sourced(unit, env))
    assert sourced["--config=/var/lib/kubelet/config.yaml"] == f"drop-in {KUBEADM_DROPIN}"
    assert sourced["--container-runtime-endpoint=unix:///x.sock"] == (
        f"environment file {FLAGS_ENV}"
    )


def test_execstart_reset_and_later_dropin_wins() -> None:
    override = "[Service]\nExecStart=\nExecStart=/opt/bin/kubelet --config=/etc/kubelet.yaml\n"
    unit = combine_unit(
        kubeadm_unit(KUBEADM_CONF, ("/etc/systemd/system/kubelet.service.d/90-x.conf", override))
    )
    assert expand_exec(unit, {}) == ["/opt/bin/kubelet", "--config=/etc/kubelet.yaml"]
    assert unit.warnings == ()


def test_execstart_without_reset_is_flagged() -> None:
    unit = combine_unit(
        systemctl_cat(
            (UNIT, KUBELET_SERVICE),
            ("/etc/x.conf", "[Service]\nExecStart=/usr/bin/kubelet --v=2\n"),
        )
    )
    assert len(unit.exec_start) == 2
    assert any("more than one" in w for w in unit.warnings)


def test_continuation_lines_and_comments() -> None:
    dropin = (
        "[Service]\n"
        "; a comment\n"
        "ExecStart=\n"
        "ExecStart=/usr/bin/kubelet \\\n"
        "  --config=/etc/k.yaml \\\n"
        "# a comment inside the continuation is skipped\n"
        "  --pod-manifest-path=/etc/m\n"
    )
    unit = combine_unit(kubeadm_unit(dropin))
    assert expand_exec(unit, {}) == [
        "/usr/bin/kubelet",
        "--config=/etc/k.yaml",
        "--pod-manifest-path=/etc/m",
    ]


def test_pending_daemon_reload_and_escaped_backslashes() -> None:
    text = (
        "# Warning: kubelet.service changed on disk, the version systemd has loaded is outdated.\n"
        "# This output shows the current version of the unit's original fragment and drop-in"
        " files.\n"
        + kubeadm_unit(
            "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --a=x\\\\\n"
            "ExecStart=\nExecStart=/usr/bin/kubelet --b=y\\\\\\\n  --c=z\n"
        )
    )
    unit = combine_unit(text)
    assert unit.files == (UNIT, KUBEADM_DROPIN)
    assert any("daemon-reload pending" in w for w in unit.warnings)
    # Two final backslashes are one escaped backslash; three add a continuation.
    assert expand_exec(unit, {}) == ["/usr/bin/kubelet", "--b=y\\", "--c=z"]


def test_finding_to_dict() -> None:
    proc = KubeletProcess(9, ("/usr/bin/kubelet", "--pod-manifest-path=/m"))
    data = resolve(Evidence(processes=(proc,))).to_dict()
    assert data["static_pod_path"] == {"value": "/m", "source": "process flags of pid 9"}
    assert data["config_path"] is None


def test_dollar_var_splits_braced_var_does_not() -> None:
    dropin = (
        "[Service]\n"
        'Environment="A=--x=1 --y=2" B=plain\n'
        "Environment='C=one two'\n"
        "ExecStart=\n"
        'ExecStart=-/usr/bin/kubelet $A ${C} "--z=${B}" $UNSET ${UNSET} $$HOME "$A"\n'
    )
    unit = combine_unit(kubeadm_unit(dropin))
    assert expand_exec(unit, {}) == [
        "/usr/bin/kubelet",
        "--x=1",
        "--y=2",
        "one two",
        "--z=plain",
        "",
        "$HOME",
        "--x=1",
        "--y=2",
    ]


def test_environment_reset_and_env_file_overrides_environment() -> None:
    dropin = (
        "[Service]\n"
        "Environment=A=--from-unit\n"
        "Environment=B=--dropped\n"
        "Environment=\n"
        "Environment=A=--from-unit-2\n"
        "EnvironmentFile=/etc/a.env\n"
        "ExecStart=\n"
        "ExecStart=/usr/bin/kubelet $A $B\n"
    )
    unit = combine_unit(kubeadm_unit(dropin))
    assert expand_exec(unit, {"/etc/a.env": ""}) == ["/usr/bin/kubelet", "--from-unit-2"]
    assert expand_exec(unit, {"/etc/a.env": "A='--from-file'\n"}) == [
        "/usr/bin/kubelet",
        "--from-file",
    ]
    assert unit.environment_files == ((("/etc/a.env", False, KUBEADM_DROPIN)),)


def test_split_words_quotes_and_escapes() -> None:
    assert split_words(r'a "b c" d\ e "f\"g" x"y z"w 100%%') == [
        "a",
        "b c",
        "d e",
        'f"g',
        "xy zw",
        "100%",
    ]


@pytest.mark.parametrize(
    ("dropin", "config", "manifests"),
    [
        ("10-kubeadm.conf.modern-deb", CONFIG, None),
        ("10-kubeadm.conf.modern-pkgs.k8s.io", CONFIG, None),
        ("10-kubeadm.conf.v1.11-deb-first", CONFIG, None),
        ("10-kubeadm.conf.handwritten-config-in-kubeconfig-args", CONFIG, None),
        ("10-kubeadm.conf.v1.5-rpm", None, "/etc/kubernetes/manifests"),
        ("10-kubeadm.conf.v1.7-rpm", None, "/etc/kubernetes/manifests"),
        ("10-kubeadm.conf.v1.8-v1.10-deb", None, "/etc/kubernetes/manifests"),
    ],
)
def test_kubeadm_dropin_fixtures(dropin: str, config: str | None, manifests: str | None) -> None:
    text = kubeadm_unit(fixture(dropin))
    finding = resolve(Evidence(unit_text=text, env_files={}))
    source = f"drop-in {KUBEADM_DROPIN}"
    if config is None:
        assert finding.config_path is None
    else:
        assert finding.config_path is not None
        assert (finding.config_path.value, finding.config_path.source) == (config, source)
        assert finding.needs_files == (config,)
    if manifests is None:
        assert finding.static_pod_path is None
    else:
        assert finding.static_pod_path is not None
        assert (finding.static_pod_path.value, finding.static_pod_path.source) == (
            manifests,
            source,
        )
    assert finding.argv[0] == "/usr/bin/kubelet"
    assert finding.argv_source == "systemd unit kubelet.service"


def test_env_files_named_by_the_fixtures() -> None:
    deb = combine_unit(kubeadm_unit(fixture("10-kubeadm.conf.modern-deb")))
    rpm = combine_unit(kubeadm_unit(fixture("10-kubeadm.conf.modern-pkgs.k8s.io")))
    assert [(p, o) for p, o, _ in deb.environment_files] == [
        (FLAGS_ENV, True),
        ("/etc/default/kubelet", True),
    ]
    assert [p for p, _, _ in rpm.environment_files] == [FLAGS_ENV, "/etc/sysconfig/kubelet"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "kubeadm-flags.env.crio-endpoint",
            ["--container-runtime-endpoint=unix:///var/run/crio/crio.sock", "--v=8"],
        ),
        (
            "kubeadm-flags.env.v1.11-unquoted",
            ["--container-runtime=remote", "--container-runtime-endpoint=/var/run/crio/crio.sock"],
        ),
        (
            "kubeadm-flags.env.v1.1x-cgroupfs-trailing-spaces",
            [
                "--cgroup-driver=cgroupfs",
                "--pod-infra-container-image=k8s.gcr.io/pause:3.1",
                "--resolv-conf=/run/systemd/resolve/resolv.conf",
            ],
        ),
    ],
)
def test_kubeadm_flags_env_fixtures(name: str, expected: list[str]) -> None:
    unit = combine_unit(kubeadm_unit(fixture("10-kubeadm.conf.modern-deb")))
    argv = expand_exec(unit, {FLAGS_ENV: fixture(name), "/etc/default/kubelet": None})
    assert argv[4:] == expected
    assert argv[3] == "--config=/var/lib/kubelet/config.yaml"


def test_etcd_service_manager_dropin_with_config_in_the_dropin_dir() -> None:
    config_path = "/etc/systemd/system/kubelet.service.d/kubelet.conf"
    text = systemctl_cat(
        (UNIT, fixture("kubelet.service")),
        (KUBEADM_DROPIN, fixture("10-kubeadm.conf.modern-deb")),
        (
            "/etc/systemd/system/kubelet.service.d/20-etcd-service-manager.conf",
            fixture("20-etcd-service-manager.conf.non-default-config-path"),
        ),
        # The KubeletConfiguration lives in the drop-in dir, so systemctl cat shows it too.
        (config_path, fixture("kubelet.conf.etcd-node-KubeletConfiguration-in-dropin-dir")),
    )
    unit = combine_unit(text)
    assert expand_exec(unit, {}) == ["/usr/bin/kubelet", f"--config={config_path}"]
    assert any("without '='" in w for w in unit.warnings)  # the YAML, ignored by systemd
    first = resolve(Evidence(unit_text=text))
    assert first.needs_files == (config_path,)
    config = fixture("kubelet.conf.etcd-node-KubeletConfiguration-in-dropin-dir")
    finding = resolve(Evidence(unit_text=text, config_files={config_path: config}))
    assert finding.config_path is not None
    assert finding.config_path.source.endswith("20-etcd-service-manager.conf")
    assert finding.static_pod_path is not None
    assert finding.static_pod_path.value == "/etc/kubernetes/manifests"
    assert finding.static_pod_path.source == f"config file {config_path}"


def test_etcd_service_manager_pod_manifest_path_flag() -> None:
    text = kubeadm_unit(
        fixture("10-kubeadm.conf.modern-deb"),
        (
            "/etc/systemd/system/kubelet.service.d/20-etcd-service-manager.conf",
            fixture("20-etcd-service-manager.conf.pod-manifest-path-flag"),
        ),
    )
    finding = resolve(Evidence(unit_text=text))
    assert finding.config_path is None
    assert finding.static_pod_path is not None
    assert finding.static_pod_path.value == "/etc/kubernetes/manifests"
    assert finding.static_pod_path.source.endswith("20-etcd-service-manager.conf")
    assert "--cgroup-driver=systemd" in finding.argv


# --- the config file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "static", "cgroup", "endpoint"),
    [
        (
            "config.yaml.commented-binary-install.v1.12",
            "/etc/kubernetes/manifests",
            "systemd",
            None,
        ),
        (
            "config.yaml.kubeadm-generated.v1.2x-cgroupfs",
            "/etc/kubernetes/manifests",
            "cgroupfs",
            None,
        ),
        ("config.yaml.minikube-v1.20.2", "/etc/kubernetes/manifests", "cgroupfs", None),
        ("config.yaml.no-staticPodPath.crio", None, None, "unix:///var/run/crio/crio.sock"),
        ("config.yaml.no-staticPodPath.flow-list.v1.16-binary", None, "cgroupfs", None),
        ("kubelet-config.json.eks-ami", None, "cgroupfs", None),
        (
            "kubelet.conf.etcd-node-KubeletConfiguration-in-dropin-dir",
            "/etc/kubernetes/manifests",
            "systemd",
            "unix:///var/run/containerd/containerd.sock",
        ),
    ],
)
def test_config_fixtures(
    name: str, static: str | None, cgroup: str | None, endpoint: str | None
) -> None:
    text = fixture(name)
    config = parse_kubelet_config(text)
    assert config.kind == "KubeletConfiguration"
    assert (config.static_pod_path, config.cgroup_driver) == (static, cgroup)
    assert config.container_runtime_endpoint == endpoint
    finding = resolve(Evidence(unit_text=kubeadm_unit(), config_files={CONFIG: text}))
    if static is None:
        assert finding.static_pod_path is None
        assert finding.static_pod_reason == NO_STATIC_POD_PATH
        with pytest.raises(StaticPodPathError, match="no file-based static pods"):
            finding.require_static_pod_path()
    else:
        assert finding.require_static_pod_path() == static
        assert finding.static_pod_path is not None
        assert finding.static_pod_path.source == f"config file {CONFIG}"


def test_config_authentication_is_read() -> None:
    config = parse_kubelet_config(fixture("kubelet-config.json.eks-ami"))
    assert config.authentication["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt"
    assert config.authorization["mode"] == "Webhook"


@pytest.mark.parametrize(
    "text",
    ["[1, 2]", "kind: Pod\n", "staticPodPath: [a]\nkind: KubeletConfiguration\n", "a: [\n"],
)
def test_bad_config_files_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_kubelet_config(text)


def test_empty_static_pod_path_means_none() -> None:
    assert parse_kubelet_config('staticPodPath: ""\n').static_pod_path is None


# --- resolve -------------------------------------------------------------------------------


def test_process_flags_are_trusted_first() -> None:
    proc = KubeletProcess(1234, ("/usr/bin/kubelet", "--config", CONFIG))
    finding = resolve(
        Evidence(processes=(proc,), unit_text=kubeadm_unit(), config_files={CONFIG: CONFIG_YAML})
    )
    assert finding.config_path is not None
    assert finding.config_path.source == "process flags of pid 1234"
    assert finding.static_pod_path is not None
    assert str(finding.static_pod_path) == (f"/etc/kubernetes/manifests (config file {CONFIG})")
    assert finding.conflicts == ()


def test_stale_process_and_unit_disagree() -> None:
    proc = KubeletProcess(7, ("/usr/bin/kubelet", "--config=/old.yaml"))
    finding = resolve(Evidence(processes=(proc,), unit_text=kubeadm_unit()))
    assert finding.config_path is not None and finding.config_path.value == "/old.yaml"
    assert finding.needs_files == ("/old.yaml",)
    assert any("not restarted" in c for c in finding.conflicts)


def test_pod_manifest_path_flag_overrides_the_config_file() -> None:
    proc = KubeletProcess(
        1234, ("/usr/bin/kubelet", f"--config={CONFIG}", "--pod-manifest-path=/etc/kubelet.d")
    )
    finding = resolve(Evidence(processes=(proc,), config_files={CONFIG: CONFIG_YAML}))
    assert finding.static_pod_path is not None
    assert finding.static_pod_path.value == "/etc/kubelet.d"
    assert finding.static_pod_path.source == "process flags of pid 1234"
    assert finding.conflicts == (
        "--pod-manifest-path=/etc/kubelet.d (process flags of pid 1234) overrides staticPodPath"
        f" /etc/kubernetes/manifests in config file {CONFIG}",
    )


def test_relative_static_pod_path_is_relative_to_the_config_file() -> None:
    proc = KubeletProcess(1, ("kubelet", "--config=/etc/kubelet/config.yaml"))
    finding = resolve(
        Evidence(
            processes=(proc,),
            config_files={"/etc/kubelet/config.yaml": "staticPodPath: manifests\n"},
        )
    )
    assert finding.require_static_pod_path() == "/etc/kubelet/manifests"


def test_missing_or_broken_config_file_is_a_clear_refusal() -> None:
    proc = KubeletProcess(1, ("kubelet", f"--config={CONFIG}"))
    missing = resolve(Evidence(processes=(proc,), config_files={CONFIG: None}))
    with pytest.raises(StaticPodPathError, match="does not exist"):
        missing.require_static_pod_path()
    broken = resolve(Evidence(processes=(proc,), config_files={CONFIG: "a: [\n"}))
    with pytest.raises(StaticPodPathError, match="cannot be parsed"):
        broken.require_static_pod_path()


def test_no_kubelet_at_all() -> None:
    finding = resolve(Evidence())
    assert finding.static_pod_path is None
    with pytest.raises(StaticPodPathError, match="no kubelet process and no kubelet"):
        finding.require_static_pod_path()


def test_kubelet_without_config_or_flag_runs_no_static_pods() -> None:
    proc = KubeletProcess(1, ("/usr/bin/kubelet", "--kubeconfig=/k"))
    finding = resolve(Evidence(processes=(proc,)))
    assert finding.static_pod_reason is not None
    assert finding.static_pod_reason.startswith(NO_STATIC_POD_PATH)


def test_several_kubelets_use_the_one_matching_the_unit() -> None:
    unit_argv = expand_exec(combine_unit(kubeadm_unit()), {})
    ours = KubeletProcess(20, tuple(unit_argv))
    other = KubeletProcess(10, ("/usr/bin/kubelet", "--config=/other.yaml"))
    finding = resolve(Evidence(processes=(other, ours), unit_text=kubeadm_unit()))
    assert finding.argv_source == "process flags of pid 20"
    neither = resolve(Evidence(processes=(other, other), unit_text=kubeadm_unit()))
    assert neither.argv_source == "systemd unit kubelet.service"
    assert any("none matches" in n for n in neither.notes)


# --- probes through a real shell -----------------------------------------------------------


def _run(command: str, env_path: str | None = None) -> str:
    env = dict(os.environ)
    if env_path:
        env["PATH"] = f"{env_path}:{env['PATH']}"
    return subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, env=env, check=False
    ).stdout


def test_kubelet_config_probe_round_trip(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ps").write_text(
        "#!/bin/sh\nprintf '    PID COMMAND\\n    42 /usr/bin/kubelet --config=/c.yaml\\n"
        "    43 grep kubelet\\n'\n"
    )
    (bin_dir / "systemctl").write_text(
        "#!/bin/sh\n[ \"$*\" = '--no-pager cat kubelet.service' ] || exit 9\n"
        f"printf '# {UNIT}\\n[Service]\\nExecStart=/usr/bin/kubelet --config=/c.yaml\\n'\n"
    )
    for tool in ("ps", "systemctl"):
        (bin_dir / tool).chmod(0o755)
    command = kubelet_config_probe()
    assert command.sudo
    evidence = parse_kubelet_probe(_run(command.render(as_root=True), str(bin_dir)))
    assert [p.pid for p in evidence.processes] == [42]
    assert evidence.unit_text is not None and "ExecStart" in evidence.unit_text
    assert set(evidence.env_files) == {
        FLAGS_ENV,
        "/etc/default/kubelet",
        "/etc/sysconfig/kubelet",
    }
    finding = resolve(evidence)
    assert finding.config_path is not None
    assert finding.config_path.source == "process flags of pid 42"
    assert finding.needs_files == ("/c.yaml",)
    read = parse_read_files(files(("/c.yaml", CONFIG_YAML)), ["/c.yaml"])
    second = resolve(with_files(evidence, read))
    assert second.require_static_pod_path() == "/etc/kubernetes/manifests"
    assert second.needs_files == ()


def test_read_files_probe_round_trip(tmp_path: Path) -> None:
    config = tmp_path / "it's config.yaml"
    config.write_text(CONFIG_YAML)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    names = ["kube-apiserver.yaml", "kube-apiserver.yaml.bak", "x~", "#x#", ".hidden", "a b"]
    names.append("new\nline")
    for name in names:
        (manifests / name).write_text("x")
    (manifests / "sub").mkdir()
    (manifests / "link.yaml").symlink_to(manifests / "kube-apiserver.yaml")
    missing = str(tmp_path / "nowhere")
    files = [str(config), str(tmp_path / "absent.yaml")]
    dirs = [str(manifests), missing]
    out = _run(read_files_probe(files, dirs).render(as_root=True))
    read = parse_read_files(out, files, dirs)
    assert read.files[str(config)] == CONFIG_YAML
    assert read.files[str(tmp_path / "absent.yaml")] is None
    assert read.dirs[missing] is None
    entries = read.dirs[str(manifests)]
    assert entries is not None
    by_name = {e.name: e for e in entries}
    assert set(by_name) == {*names, "sub", "link.yaml"}
    assert by_name["sub"].type == "d"
    assert by_name["link.yaml"].type == "l"
    assert by_name["link.yaml"].target == str(manifests / "kube-apiserver.yaml")
    assert by_name["kube-apiserver.yaml"].size == 1


def test_read_files_probe_refuses_relative_paths() -> None:
    with pytest.raises(ValueError):
        read_files_probe(["etc/x"])
    with pytest.raises(ValueError):
        read_files_probe([])


def test_parse_listing_sample() -> None:
    text = (
        "total 8\n"
        "drwx------ 2 0 0 4096 1700000000 .\n"
        "drwxr-xr-x 4 0 0 4096 1700000000 ..\n"
        "-rw-------. 1 0 0 1462 1700000001 kube-scheduler.yaml\n"
        "-rw------- 1 0 0 9 1700000002 a\\ b\\nc\n"
        "lrwxrwxrwx 1 0 0 8 1700000003 l -> /x\\ y\n"
        "crw-rw-rw- 1 0 0 1, 3 1700000004 null\n"
    )
    assert parse_listing(text) == [
        DirEntry("kube-scheduler.yaml", "-", "-rw-------.", 1462, 1700000001),
        DirEntry("a b\nc", "-", "-rw-------", 9, 1700000002),
        DirEntry("l", "l", "lrwxrwxrwx", 8, 1700000003, "/x y"),
        DirEntry("null", "c", "crw-rw-rw-", None, 1700000004),
    ]
