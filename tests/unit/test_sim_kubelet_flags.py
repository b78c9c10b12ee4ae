"""The simulated kubelet's command line and configuration: pflag's and the kubelet's wording."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nodeops.lab.sim import SOURCE_ROOT
from nodeops.lab.sim.kubelet.config import (
    ConfigError,
    load_config_file,
    os_image,
    parse_duration,
    settings,
)
from nodeops.lab.sim.kubelet.flags import FlagError, UnknownCommand, parse_flags

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
KUBEADM_ARGV = [
    "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
    "--kubeconfig=/etc/kubernetes/kubelet.conf",
    "--config=/var/lib/kubelet/config.yaml",
    "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
    "--pod-infra-container-image=registry.k8s.io/pause:3.9",
]


def test_kubeadm_command_line() -> None:
    flags = parse_flags(KUBEADM_ARGV)
    assert flags.get("config") == "/var/lib/kubelet/config.yaml"
    assert flags.get("kubeconfig") == "/etc/kubernetes/kubelet.conf"
    assert flags.get("container-runtime-endpoint") == "unix:///var/run/containerd/containerd.sock"
    assert flags.deprecation_warnings() == [
        "Flag --container-runtime-endpoint has been deprecated, This parameter should be set via"
        " the config file specified by the Kubelet's --config flag. See"
        " https://kubernetes.io/docs/tasks/administer-cluster/kubelet-config-file/ for more"
        " information.",
        "Flag --pod-infra-container-image has been deprecated, will be removed in a future"
        " release. Image garbage collector will get sandbox image information from CRI.",
    ]


def test_separate_values_bools_underscores_and_last_wins() -> None:
    flags = parse_flags(
        ["--config", "/a.yaml", "--fail-swap-on", "--node_ip", "10.0.0.5", "--config=/b.yaml"]
    )
    assert flags.get("config") == "/b.yaml"
    assert flags.get("node-ip") == "10.0.0.5"
    assert flags.flag("fail-swap-on")
    assert parse_flags(["--fail-swap-on=false"]).flag("fail-swap-on") is False
    assert parse_flags(["-v", "2"]).get("v") == "2"
    assert parse_flags(["-v=4"]).get("v") == "4"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--network-plugin=cni"], "unknown flag: --network-plugin"),
        (["--x"], "unknown flag: --x"),
        (["--config"], "flag needs an argument: --config"),
        (["-q"], "unknown shorthand flag: 'q' in -q"),
        (
            ["--fail-swap-on=maybe"],
            'invalid argument "maybe" for "--fail-swap-on" flag: strconv.ParseBool:'
            ' parsing "maybe": invalid syntax',
        ),
    ],
)
def test_rejected_flags(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as e:
        parse_flags(argv)
    assert str(e.value) == message
    assert not isinstance(e.value, UnknownCommand)


def test_positional_words_are_an_unknown_command() -> None:
    with pytest.raises(UnknownCommand, match=r"^unknown command serve$"):
        parse_flags(["--v=2", "serve"])


def _kubelet(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nodeops.lab.sim.kubelet", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(SOURCE_ROOT), **(env or {})},
        check=False,
    )


def test_version_and_fatal_errors_of_the_program() -> None:
    done = _kubelet("--version", env={"NODEOPS_KUBELET_VERSION": "v1.28.9"})
    assert (done.returncode, done.stdout) == (0, "Kubernetes v1.28.9\n")

    done = _kubelet("--network-plugin=cni")
    assert done.returncode == 1
    assert done.stderr.rstrip().endswith(
        ' run.go:74] "command failed" err="failed to parse kubelet flag: unknown flag:'
        ' --network-plugin"'
    )
    assert done.stderr.startswith("E")

    done = _kubelet("--config=/nonexistent/config.yaml")
    assert done.returncode == 1
    assert (
        'err="failed to load kubelet config file, path: /nonexistent/config.yaml, error: failed'
        " to load Kubelet config file /nonexistent/config.yaml, error failed to read kubelet"
        ' config file \\"/nonexistent/config.yaml\\", error: open /nonexistent/config.yaml: no'
        ' such file or directory"'
    ) in done.stderr

    done = _kubelet(
        "--kubeconfig=/nonexistent/kubelet.conf",
        "--bootstrap-kubeconfig=/nonexistent/bootstrap-kubelet.conf",
    )
    assert done.returncode == 1
    assert (
        'err="failed to run Kubelet: unable to load bootstrap kubeconfig: stat'
        ' /nonexistent/bootstrap-kubelet.conf: no such file or directory"'
    ) in done.stderr


@pytest.mark.parametrize(
    ("fixture", "static_path", "driver"),
    [
        ("config.yaml.kubeadm-generated.v1.2x-cgroupfs", "/etc/kubernetes/manifests", "cgroupfs"),
        ("config.yaml.minikube-v1.20.2", "/etc/kubernetes/manifests", "cgroupfs"),
        ("config.yaml.commented-binary-install.v1.12", "/etc/kubernetes/manifests", "systemd"),
        ("config.yaml.no-staticPodPath.crio", "", "cgroupfs"),  # the default
        ("config.yaml.no-staticPodPath.flow-list.v1.16-binary", "", "cgroupfs"),
        ("kubelet-config.json.eks-ami", "", "cgroupfs"),
    ],
)
def test_real_config_files(fixture: str, static_path: str, driver: str) -> None:
    path = FIXTURES / "kubelet" / fixture
    if not path.exists():
        pytest.skip(f"fixture {path} not present")
    config = load_config_file(str(path))
    s = settings(parse_flags(["--hostname-override=Node-A", "--node-ip=10.0.0.7"]), config)
    assert s.static_pod_path == static_path
    assert s.cgroup_driver == driver
    assert (s.node_name, s.node_ip) == ("node-a", "10.0.0.7")


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "staticPodPath: /etc/kubernetes/manifests\nnodeStatusUpdateFrequency: 1m30s\n"
        "fileCheckFrequency: 0s\n"
    )
    config = load_config_file(str(path))
    s = settings(parse_flags(["--pod-manifest-path=/srv/pods", "--hostname-override=n"]), config)
    assert s.static_pod_path == "/srv/pods"
    assert s.status_update_seconds == 90
    assert s.file_check_seconds == 20  # 0s means the default, as kubeadm's file relies on


def test_config_that_is_not_a_kubelet_configuration(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\n")
    with pytest.raises(ConfigError, match='no kind "Pod" is registered for version "v1"'):
        load_config_file(str(path))


def test_durations() -> None:
    assert parse_duration("10s", 1) == 10
    assert parse_duration("1h2m3s", 1) == 3723
    assert parse_duration("500ms", 1) == 0.5
    assert parse_duration("0s", 7) == 7
    with pytest.raises(ConfigError):
        parse_duration("10 s", 1)


def test_os_image_from_os_release(tmp_path: Path) -> None:
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "os-release").write_text(
        'NAME="Rocky Linux"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n'
    )
    assert os_image(str(tmp_path)) == "Rocky Linux 9.3 (Blue Onyx)"
