"""Tests for nodeops.facts: the probes, the one-round-trip script, and its pure parsers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeops.cmd import Cmd, Raw, cmd
from nodeops.facts import (
    PROBES,
    NodeFacts,
    Probe,
    ProbeOutput,
    binaries,
    facts_command,
    gather_facts,
    packages,
    parse_facts,
    runtime,
    split_probes,
    system,
)
from nodeops.facts.script import script_for, show_files, split_files
from nodeops.node import Node
from nodeops.platforms import detect_platform, parse_os_release
from nodeops.transport import FakeTransport

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"


def fixture(relative: str) -> str:
    """A shared fixture's text, read in place; skips the test when ../shared is absent."""
    path = FIXTURES / relative
    if not path.is_file():
        pytest.skip(f"shared fixture not found: {path}")
    return path.read_text(encoding="utf-8")


def canned(outputs: dict[str, tuple[str, int]]) -> str:
    """Facts script output as a node prints it: each probe between its marker lines."""
    return "".join(
        f"\n@@nodeops-probe {name}@@\n{text}\n@@nodeops-rc {name} {rc}@@\n"
        for name, (text, rc) in outputs.items()
    )


def files(*pairs: tuple[str, str]) -> str:
    """What a show_files() probe prints for these (path, content) pairs."""
    return "".join(f"==> {path} <==\n{content}\n" for path, content in pairs)


# --- canned nodes --------------------------------------------------------------------------

DEBIAN_12 = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""

ROCKY_93 = """\
NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
"""

KUBECTL_JSON = json.dumps(
    {
        "clientVersion": {"major": "1", "minor": "30", "gitVersion": "v1.30.2"},
        "kustomizeVersion": "v5.0.4-0.20230601165947-6ce0bf390ce3",
    },
    indent=2,
)

KUBELET_CONFIG_YAML = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
staticPodPath: /etc/kubernetes/manifests
"""

KUBERNETES_REPO = """\
[kubernetes]
name=Kubernetes
baseurl=https://pkgs.k8s.io/core:/stable:/v1.29/rpm/
enabled=1
gpgcheck=1
gpgkey=https://pkgs.k8s.io/core:/stable:/v1.29/rpm/repodata/repomd.xml.key
exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni
"""

DEBIAN_NODE = {
    "hostname": ("cp1\n", 0),
    "kernel": ("6.1.0-18-amd64\n", 0),
    "os_release": (DEBIAN_12, 0),
    "tools": ("", 0),
    "packages_dpkg": (
        "kubeadm\t1.30.2-1.1\thi \n"
        "kubelet\t1.30.2-1.1\thi \n"
        "kubectl\t1.30.2-1.1\thi \n"
        "dpkg-query: no packages found matching cri-tools\n"
        "kubernetes-cni\t1.4.0-1.1\tii \n",
        1,
    ),
    "packages_rpm": ("", 127),
    "yum_excludes": ("", 0),
    "versionlock": ("", 127),
    "kubeadm_version": ("v1.30.2\n", 0),
    "kubelet_version": ("Kubernetes v1.30.2\n", 0),
    "kubectl_version": (KUBECTL_JSON + "\n", 0),
    "kubelet_flags": (
        files(
            (
                runtime.KUBEADM_FLAGS_ENV,
                'KUBELET_KUBEADM_ARGS="--pod-infra-container-image=registry.k8s.io/pause:3.9"\n',
            ),
            ("/etc/default/kubelet", "KUBELET_EXTRA_ARGS=\n"),
        ),
        0,
    ),
    "kubelet_config": (files((runtime.KUBELET_CONFIG, KUBELET_CONFIG_YAML)), 0),
    "cri_sockets": ("/run/containerd/containerd.sock\n", 0),
    "containerd_version": (
        "containerd containerd.io 1.7.2 0cae528dd6cb557f7201036e9f43420650207b58\n",
        0,
    ),
    "crio_version": ("", 127),
    "docker_version": ("", 127),
    "kube_files": (
        f"present {system.APISERVER_MANIFEST}\npresent {system.KUBELET_KUBECONFIG}\n",
        0,
    ),
}

ROCKY_NODE = {
    "hostname": ("worker-2.example.com\n", 0),
    "kernel": ("5.14.0-362.8.1.el9_3.x86_64\n", 0),
    "os_release": (ROCKY_93, 0),
    "tools": ("dnf\t/usr/bin/dnf\nyum\t/usr/bin/yum\n", 0),
    "packages_dpkg": ("", 127),
    "packages_rpm": (
        "kubeadm\t1.29.3-150500.1.1\n"
        "kubelet\t1.29.3-150500.1.1\n"
        "kubectl\t1.29.3-150500.1.1\n"
        "cri-tools\t1.29.0-150500.1.1\n"
        "package kubernetes-cni is not installed\n",
        1,
    ),
    "yum_excludes": (
        files(
            ("/etc/dnf/dnf.conf", "[main]\ngpgcheck=1\n"),
            ("/etc/yum.repos.d/kubernetes.repo", KUBERNETES_REPO),
        ),
        0,
    ),
    "versionlock": ("", 0),  # no versionlock plugin: none of its files exist
    "kubeadm_version": ("v1.29.3\n", 0),
    "kubelet_version": ("Kubernetes v1.29.3\n", 0),
    "kubectl_version": (KUBECTL_JSON.replace("v1.30.2", "v1.29.3") + "\n", 0),
    "kubelet_flags": (
        files(
            (
                runtime.KUBEADM_FLAGS_ENV,
                'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint='
                'unix:///var/run/crio/crio.sock --v=8"\n',
            ),
        ),
        0,
    ),
    "kubelet_config": ("", 0),
    "cri_sockets": ("/var/run/crio/crio.sock\n", 0),
    "containerd_version": ("", 127),
    "crio_version": ("crio version 1.29.1\nVersion:        1.29.1\nGitCommit:      78e17924\n", 0),
    "docker_version": ("", 127),
    "kube_files": (
        f"absent {system.APISERVER_MANIFEST}\npresent {system.KUBELET_KUBECONFIG}\n",
        0,
    ),
}


def test_canned_nodes_cover_every_probe() -> None:
    names = [probe.name for probe in PROBES]
    assert list(DEBIAN_NODE) == names
    assert list(ROCKY_NODE) == names


def _transport(name: str, outputs: dict[str, tuple[str, int]], rc: int = 0) -> FakeTransport:
    return FakeTransport(
        Node(name, "192.0.2.10"), rules=[("@@nodeops-probe", (rc, canned(outputs), ""))]
    )


def test_gather_facts_on_a_debian_control_plane() -> None:
    transport = _transport("cp1", DEBIAN_NODE)
    facts = gather_facts(transport)
    assert transport.sent == [facts_command()]
    assert facts.errors == {}
    assert facts.ok
    assert facts.node == "cp1"
    assert facts.hostname == "cp1"
    assert facts.kernel == "6.1.0-18-amd64"
    assert facts.platform is not None
    assert (facts.platform.id, facts.platform.version_id) == ("debian", "12")
    assert (facts.platform.family, facts.platform.package_manager) == ("debian", "apt")
    assert facts.os_error is None
    assert facts.packages == {
        "kubeadm": "1.30.2-1.1",
        "kubelet": "1.30.2-1.1",
        "kubectl": "1.30.2-1.1",
        "kubernetes-cni": "1.4.0-1.1",
    }
    assert facts.binaries == {"kubeadm": "v1.30.2", "kubelet": "v1.30.2", "kubectl": "v1.30.2"}
    assert facts.held == ("kubeadm", "kubelet", "kubectl")
    assert facts.container_runtime == "containerd 1.7.2"
    assert facts.role == "control-plane"


def test_gather_facts_on_a_rocky_worker() -> None:
    facts = gather_facts(_transport("worker-2", ROCKY_NODE))
    assert facts.errors == {}
    assert facts.hostname == "worker-2.example.com"
    assert facts.platform is not None
    assert (facts.platform.id, facts.platform.family) == ("rocky", "rhel")
    assert facts.platform.package_manager == "dnf"
    assert facts.packages == {
        "kubeadm": "1.29.3-150500.1.1",
        "kubelet": "1.29.3-150500.1.1",
        "kubectl": "1.29.3-150500.1.1",
        "cri-tools": "1.29.0-150500.1.1",
    }
    assert facts.binaries == {"kubeadm": "v1.29.3", "kubelet": "v1.29.3", "kubectl": "v1.29.3"}
    assert facts.held == packages.KUBE_PACKAGES  # the upstream repo's exclude= line
    assert facts.container_runtime == "cri-o 1.29.1"
    assert facts.role == "worker"


def test_rocky_node_with_only_yum_uses_yum() -> None:
    node = dict(ROCKY_NODE, tools=("yum\t/usr/bin/yum\n", 0))
    facts = parse_facts("w", canned(node))
    assert facts.platform is not None and facts.platform.package_manager == "yum"


def test_debian_node_from_the_real_fixture() -> None:
    node = dict(DEBIAN_NODE, os_release=(fixture("os-release/debian-12.os-release"), 0))
    facts = parse_facts("cp1", canned(node))
    assert facts.platform is not None
    assert facts.platform.pretty_name == "Debian GNU/Linux 12 (bookworm)"


def test_unsupported_os_is_reported_not_raised() -> None:
    suse = (
        'NAME="openSUSE Leap"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'
        'VERSION_ID="15.4"\nPRETTY_NAME="openSUSE Leap 15.4"\n'
    )
    facts = gather_facts(_transport("s1", dict(DEBIAN_NODE, os_release=(suse, 0))))
    assert facts.platform is None
    assert facts.os_error is not None and "openSUSE Leap 15.4" in facts.os_error
    assert not facts.ok
    assert facts.hostname == "cp1"  # the other facts are still there


def test_missing_os_release_is_an_os_error() -> None:
    text = "cat: /usr/lib/os-release: No such file or directory\n"
    facts = parse_facts("n", canned(dict(DEBIAN_NODE, os_release=(text, 1))))
    assert facts.platform is None
    assert facts.os_error is not None and "no /etc/os-release" in facts.os_error
    assert "os_release" not in facts.errors


def test_a_bare_node_has_no_kube_anything() -> None:
    bare = dict(
        DEBIAN_NODE,
        packages_dpkg=(
            "".join(
                f"dpkg-query: no packages found matching {n}\n" for n in packages.KUBE_PACKAGES
            ),
            1,
        ),
        kubeadm_version=("", 127),
        kubelet_version=("", 127),
        kubectl_version=("", 127),
        kubelet_flags=("", 0),
        kubelet_config=("", 0),
        cri_sockets=("", 0),
        containerd_version=("", 127),
        kube_files=(f"absent {system.APISERVER_MANIFEST}\nabsent {system.KUBELET_KUBECONFIG}\n", 0),
    )
    facts = parse_facts("n", canned(bare))
    assert facts.errors == {}
    assert facts.packages == {"kubeadm": None, "kubelet": None, "kubectl": None}
    assert facts.binaries == {"kubeadm": None, "kubelet": None, "kubectl": None}
    assert facts.held == ()
    assert facts.container_runtime is None
    assert facts.role == "none"


def test_runtime_falls_back_to_sockets() -> None:
    node = dict(DEBIAN_NODE, kubelet_flags=("", 0), kubelet_config=("", 0))
    assert parse_facts("n", canned(node)).container_runtime == "containerd 1.7.2"
    node = dict(
        node, cri_sockets=("/run/containerd/containerd.sock\n/var/run/cri-dockerd.sock\n", 0)
    )
    node["docker_version"] = ("Docker version 24.0.5, build ced0996\n", 0)
    assert parse_facts("n", canned(node)).container_runtime == "docker 24.0.5"


def test_runtime_without_a_version_binary_is_just_its_name() -> None:
    node = dict(DEBIAN_NODE, containerd_version=("", 127))
    assert parse_facts("n", canned(node)).container_runtime == "containerd"


def test_unknown_runtime_endpoint_is_reported_as_is() -> None:
    flags = files(
        (
            runtime.KUBEADM_FLAGS_ENV,
            "KUBELET_KUBEADM_ARGS=--container-runtime-endpoint=unix:///run/other.sock\n",
        )
    )
    facts = parse_facts("n", canned(dict(DEBIAN_NODE, kubelet_flags=(flags, 0))))
    assert facts.container_runtime == "unix:///run/other.sock"


def test_unexpected_failures_land_in_errors() -> None:
    node = dict(
        DEBIAN_NODE,
        kubelet_version=("segmentation fault\n", 139),
        kubeadm_version=("some banner without a version\n", 0),
        kubelet_config=(files((runtime.KUBELET_CONFIG, "key: [unclosed\n")), 0),
        kubelet_flags=("", 0),
        packages_dpkg=("kubelet\t1.30.2-1.1\tiF \nkubeadm\t1.30.2-1.1\tii \n", 0),
    )
    facts = parse_facts("n", canned(node))
    assert facts.binaries["kubelet"] is None
    assert "exited 139" in facts.errors["kubelet_version"]
    assert "no version" in facts.errors["kubeadm_version"]
    assert "not valid YAML" in facts.errors["kubelet_config"]
    assert "half-configured" in facts.errors["packages_dpkg"]
    assert facts.packages["kubelet"] is None
    assert facts.container_runtime == "containerd 1.7.2"  # from the socket


def test_no_package_tool_at_all() -> None:
    node = dict(DEBIAN_NODE, packages_dpkg=("", 127))
    facts = parse_facts("n", canned(node))
    assert "no dpkg-query" in facts.errors["packages"]


def test_failed_command_is_recorded() -> None:
    transport = FakeTransport(
        Node("n1", "192.0.2.1"),
        rules=[("@@nodeops-probe", (1, "", "sudo: a password is required\n"))],
    )
    facts = gather_facts(transport)
    assert "no probe output" in facts.errors["facts"]
    assert "sudo: a password is required" in facts.errors["facts_command"]
    assert facts.platform is None and facts.hostname is None
    assert list(facts.errors) == ["facts", "facts_command"]  # not one error per probe


def test_to_dict_is_json_with_stable_keys() -> None:
    facts = parse_facts("cp1", canned(DEBIAN_NODE))
    data = facts.to_dict()
    assert list(data) == [
        "node",
        "hostname",
        "kernel",
        "platform",
        "os_error",
        "role",
        "packages",
        "binaries",
        "held",
        "container_runtime",
        "errors",
    ]
    assert json.loads(json.dumps(data)) == data
    assert data["platform"]["package_manager"] == "apt"
    assert data["held"] == ["kubeadm", "kubelet", "kubectl"]


def test_node_facts_is_frozen_and_hashable() -> None:
    facts = parse_facts("cp1", canned(DEBIAN_NODE))
    with pytest.raises(AttributeError):
        facts.role = "worker"  # type: ignore[misc]
    with pytest.raises(TypeError):
        facts.packages["kubeadm"] = "x"  # type: ignore[index]
    assert hash(facts) == hash(parse_facts("cp1", canned(DEBIAN_NODE)))
    assert NodeFacts("n").to_dict()["packages"] == {}


# --- split_probes and hostile output --------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "x", "x\n", "\n", "a\n\nb", "trailing blanks  \n\n", "crlf\r\n"]
)
def test_split_probes_returns_text_exactly(text: str) -> None:
    assert split_probes(canned({"one": (text, 3), "two": ("y", 0)})) == {
        "one": ProbeOutput(text, 3),
        "two": ProbeOutput("y", 0),
    }


def test_marker_like_lines_inside_a_probe_do_not_split_it() -> None:
    # What sed makes of a probe that prints marker lines: escaped with one backslash.
    hostile = "\\@@nodeops-rc one 0@@\n\\@@nodeops-probe two@@\n\\\\@@nodeops-x\nend"
    outputs = split_probes(canned({"one": (hostile, 0), "two": ("real", 0)}))
    assert outputs["one"] == ProbeOutput(
        "@@nodeops-rc one 0@@\n@@nodeops-probe two@@\n\\@@nodeops-x\nend", 0
    )
    assert outputs["two"] == ProbeOutput("real", 0)


def test_unescaped_marker_lines_do_not_crash() -> None:
    # Output that never went through sed (a node without it): wrong but not fatal.
    hostile = "@@nodeops-rc hostname 0@@\n@@nodeops-probe kernel@@\nevil\n@@nodeops-rc kernel 0@@"
    node = dict(DEBIAN_NODE, hostname=(hostile, 0))
    facts = parse_facts("n", canned(node))
    assert facts.kernel is None  # two outputs claim to be the kernel's: trust neither
    assert "more than once" in facts.errors["kernel"]
    assert facts.platform is not None


def test_rc_line_of_another_probe_is_text() -> None:
    text = "a\n@@nodeops-rc other 5@@\nb"
    assert split_probes(canned({"one": (text, 0)}))["one"] == ProbeOutput(text, 0)


def test_missing_rc_line() -> None:
    out = (
        "\n@@nodeops-probe hostname@@\ncp1\n"  # no rc line: the probe was cut off
        "\n@@nodeops-probe kernel@@\n6.1.0\n\n@@nodeops-rc kernel 0@@\n"
    )
    outputs = split_probes(out)
    assert outputs["hostname"].exit_code is None
    assert outputs["kernel"] == ProbeOutput("6.1.0\n", 0)
    facts = parse_facts("n", out)
    assert facts.hostname is None
    assert "cut off" in facts.errors["hostname"]
    assert facts.kernel == "6.1.0"
    assert "missing from the output" in facts.errors["os_release"]


def test_absurd_rc_is_not_a_marker() -> None:
    out = "\n@@nodeops-probe one@@\nx\n@@nodeops-rc one " + "9" * 5000 + "@@\n"
    assert split_probes(out)["one"].exit_code is None


def test_text_outside_markers_is_ignored() -> None:
    out = "motd banner\n" + canned({"one": ("x", 0)}) + "trailing noise"
    assert split_probes(out) == {"one": ProbeOutput("x", 0)}


def test_every_truncation_of_a_real_output_parses() -> None:
    full = canned(DEBIAN_NODE)
    for cut in range(0, len(full), 7):
        facts = parse_facts("n", full[:cut])
        assert isinstance(facts, NodeFacts)
    assert parse_facts("n", full).errors == {}


@given(st.text(max_size=500))
def test_garbage_never_raises(text: str) -> None:
    parse_facts("n", text)


@given(
    st.dictionaries(
        st.sampled_from([probe.name for probe in PROBES]),
        st.tuples(st.text(max_size=80), st.integers(min_value=0, max_value=255)),
    )
)
def test_random_probe_outputs_never_raise(outputs: dict[str, tuple[str, int]]) -> None:
    facts = parse_facts("n", canned(outputs))
    json.dumps(facts.to_dict())


# --- the script ---------------------------------------------------------------------------


def test_facts_command_is_one_root_command_with_every_probe() -> None:
    command = facts_command()
    assert isinstance(command, Cmd)
    assert command.sudo
    assert command.secrets == ()
    text = command.render(as_root=True)
    for probe in PROBES:
        assert f"' {probe.name} ;" in text or f" {probe.name} ;" in text
    assert command.render().startswith("sudo -n -- sh -c ")
    assert command.display() == command.render()


def test_probe_names_are_unique_and_valid() -> None:
    names = [probe.name for probe in PROBES]
    assert len(names) == len(set(names))
    with pytest.raises(ValueError, match="probe name"):
        Probe("Bad Name", cmd("true"))
    with pytest.raises(ValueError, match="env"):
        Probe("x", cmd("true", env={"A": "b"}))
    with pytest.raises(ValueError, match="two probes"):
        script_for([Probe("x", cmd("true")), Probe("x", cmd("true"))])


def _sh(script: str, shell: str = "sh") -> subprocess.CompletedProcess[str]:
    """Run a script in a real shell; output decoded without newline translation."""
    done = subprocess.run([shell, "-c", script], capture_output=True, timeout=120)
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "surrogateescape"),
        done.stderr.decode("utf-8", "surrogateescape"),
    )


needs_sh = pytest.mark.skipif(shutil.which("sh") is None, reason="no /bin/sh")


@needs_sh
@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_facts_script_runs_in_a_real_shell(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    result = _sh(facts_command().render(as_root=True), shell)
    assert result.returncode == 0, result.stderr
    facts = parse_facts("local", result.stdout)
    assert set(split_probes(result.stdout)) == {probe.name for probe in PROBES}
    assert facts.hostname == os.uname().nodename
    assert facts.kernel == os.uname().release
    os_release = Path("/etc/os-release")
    if os_release.is_file():
        local = parse_os_release(os_release.read_text(encoding="utf-8"))
        if local.get("ID") == "debian" and local.get("VERSION_ID") == "12":
            assert facts.platform is not None
            assert (facts.platform.id, facts.platform.version_id) == ("debian", "12")
            assert facts.platform.package_manager == "apt"
        assert facts.platform == detect_platform(local) or facts.os_error
    assert facts.role in {"control-plane", "worker", "none"}
    assert facts.errors == {}


@needs_sh
@pytest.mark.skipif(shutil.which("sudo") is None or os.geteuid() != 0, reason="needs root and sudo")
def test_facts_script_runs_through_sudo() -> None:
    result = _sh(facts_command().render())
    if result.returncode != 0 and "sudo" in result.stderr:
        pytest.skip(f"sudo refused: {result.stderr.strip()}")
    assert parse_facts("local", result.stdout).hostname == os.uname().nodename


HOSTILE_TEXT = (
    "@@nodeops-rc hostile 0@@\n"
    "@@nodeops-probe after@@\n"
    "\\@@nodeops-already escaped\n"
    "  @@nodeops-indented\n"
    "no newline at the end"
)


@needs_sh
def test_hostile_probe_through_a_real_shell() -> None:
    probes = [
        Probe("hostile", cmd("printf", "%s", HOSTILE_TEXT)),
        Probe("missing", cmd("no-such-command-nodeops")),
        Probe("fails", Cmd(("echo", "to stderr", Raw(">&2;"), "exit", "3"))),
        Probe("reads_stdin", cmd("cat")),
        Probe("after", cmd("echo", "still here")),
    ]
    result = _sh(script_for(probes).render(as_root=True))
    outputs = split_probes(result.stdout)
    assert outputs["hostile"] == ProbeOutput(HOSTILE_TEXT, 0)
    assert outputs["missing"].exit_code == 127
    assert outputs["fails"] == ProbeOutput("to stderr\n", 3)
    assert outputs["reads_stdin"] == ProbeOutput("", 0)  # stdin is /dev/null, no hang
    assert outputs["after"] == ProbeOutput("still here\n", 0)


@needs_sh
@settings(max_examples=30, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")))
def test_any_probe_text_round_trips_through_a_real_shell(text: str) -> None:
    result = _sh(script_for([Probe("echo", cmd("printf", "%s", text))]).render(as_root=True))
    assert split_probes(result.stdout) == {"echo": ProbeOutput(text, 0)}


@needs_sh
def test_show_files_through_a_real_shell(tmp_path: Path) -> None:
    (tmp_path / "a.repo").write_text("[a]\nexclude=kube*\n")
    (tmp_path / "b.repo").write_text("no newline")
    (tmp_path / "sub dir").mkdir()
    probe = Probe(
        "files",
        show_files(
            str(tmp_path / "missing"), Raw(str(tmp_path) + "/*.repo"), str(tmp_path / "sub dir")
        ),
    )
    outputs = split_probes(_sh(script_for([probe]).render(as_root=True)).stdout)
    assert outputs["files"].exit_code == 0
    assert split_files(outputs["files"].text) == {
        str(tmp_path / "a.repo"): "[a]\nexclude=kube*\n",
        str(tmp_path / "b.repo"): "no newline",
    }


# --- parsers: packages ------------------------------------------------------------------------


def test_parse_dpkg_query() -> None:
    text = (
        "kubeadm\t1.30.2-1.1\thi \n"
        "kubelet\t1.30.2-1.1\tii \n"
        "kubectl\t1.29.0-1.1\trc \n"
        "cri-tools\t1.30.0-1.1\tiW \n"
        "dpkg-query: no packages found matching kubernetes-cni\n"
    )
    query = packages.parse_dpkg_query(text)
    assert query.versions == {
        "kubeadm": "1.30.2-1.1",
        "kubelet": "1.30.2-1.1",
        "cri-tools": "1.30.0-1.1",
    }
    assert query.held == {"kubeadm"}
    assert query.problems == ()


def test_parse_dpkg_query_reports_odd_lines() -> None:
    query = packages.parse_dpkg_query("dpkg-query: error: cannot access archive\nkubelet\t1\tiU \n")
    assert query.versions == {}
    assert query.problems[0].startswith("dpkg-query: error")
    assert "unpacked" in query.problems[1]


def test_parse_rpm_query() -> None:
    text = (
        "kubeadm\t1.28.2-150500.1.1\npackage kubelet is not installed\nkubectl\t1.28.2-150500.1.1\n"
    )
    query = packages.parse_rpm_query(text)
    assert query.versions == {"kubeadm": "1.28.2-150500.1.1", "kubectl": "1.28.2-150500.1.1"}
    assert query.problems == ()
    assert packages.parse_rpm_query("error: rpmdb: damaged\n").problems == (
        "error: rpmdb: damaged",
    )


ALL_KUBE = {"kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni"}


@pytest.mark.parametrize(
    ("name", "held"),
    [
        ("kubernetes.repo.legacy-google-exclude-kube-glob", ALL_KUBE - {"cri-tools"}),
        ("kubernetes.repo.pkgs.k8s.io-v1.28-official", ALL_KUBE),
        ("kubernetes.repo.pkgs.k8s.io-v1.29-with-exclude", ALL_KUBE),
        ("kubernetes.repo.legacy-google-basearch", set()),
        ("kubernetes.repo.legacy-google-el7-two-gpgkeys", set()),
        ("kubernetes.repo.pkgs.k8s.io-broken-version", set()),
    ],
)
def test_repo_fixture_excludes(name: str, held: set[str]) -> None:
    patterns = packages.parse_repo_excludes(fixture(f"apt-yum/{name}"))
    assert packages.excluded_packages(patterns) == held


def test_repo_excludes_inline() -> None:
    text = (
        "[main]\nexclude = kernel*, kubelet\n"
        "[off]\nenabled=0\nexclude=kubeadm\n"
        "[multi]\nexcludepkgs=cri-tools\n  kubectl\n# exclude=kubernetes-cni\n"
    )
    patterns = packages.parse_repo_excludes(text)
    assert packages.excluded_packages(patterns) == {"kubelet", "cri-tools", "kubectl"}


def test_parse_yum_excludes_by_file() -> None:
    text = files(
        ("/etc/dnf/dnf.conf", "[main]\nexclude=kube*\n"), ("/etc/yum.repos.d/x.repo", "[x]\n")
    )
    assert packages.parse_yum_excludes(text) == {"/etc/dnf/dnf.conf": ("kube*",)}


def test_parse_versionlock_formats() -> None:
    dnf4 = (
        "kubelet-0:1.28.2-150500.1.1.*\n!kubeadm-0:1.28.1-150500.1.1.*\nkubectl-plugin-0:1.0-1.*\n"
    )
    assert packages.parse_versionlock(dnf4) == {"kubelet", "kubeadm"}
    yum = "0:kubectl-1.11.2-0.*\n"
    assert packages.parse_versionlock(yum) == {"kubectl"}
    dnf5 = (
        "# Added by 'versionlock add' command on 2024-05-01\n"
        "Package name: kubelet\nevr = 1.30.2-150500.1.1\n"
    )
    assert packages.parse_versionlock(dnf5) == {"kubelet"}
    toml = '[[packages]]\nname = "kubeadm"\n[packages.conditions]\nevr = "1.30.2"\n'
    assert packages.parse_versionlock(toml) == {"kubeadm"}
    assert packages.parse_versionlock("No such command: versionlock.\n") == frozenset()


def test_apt_policy_fixture_with_installed_version() -> None:
    policy = packages.parse_apt_policy(
        fixture("outputs/apt-cache-policy-kubelet.installed-1.11.2.legacy-apt.txt")
    )
    assert policy.installed == "1.11.2-00"
    assert policy.candidate == "1.11.2-00"
    assert policy.versions == ("1.11.2-00", "1.11.1-00", "1.11.0-00", "1.10.7-00")


@pytest.mark.parametrize(
    ("name", "candidate", "versions"),
    [
        (
            "apt-cache-policy-kubeadm.grep-1.11.legacy-apt.txt",
            None,
            ("1.11.3-00", "1.11.2-00", "1.11.1-00", "1.11.0-00"),
        ),
        ("apt-cache-policy-kubeadm.grep-1.12.legacy-apt.txt", "1.12.1-02", ("1.12.1-02",)),
    ],
)
def test_apt_policy_excerpt_fixtures(
    name: str, candidate: str | None, versions: tuple[str, ...]
) -> None:
    policy = packages.parse_apt_policy(fixture(f"outputs/{name}"))
    assert policy.installed is None
    assert (policy.candidate, policy.versions) == (candidate, versions)


def test_apt_policy_inline_not_installed() -> None:
    text = (
        "kubeadm:\n  Installed: (none)\n  Candidate: 1.30.2-1.1\n  Version table:\n"
        "     1.30.2-1.1 500\n"
        "        500 https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages\n"
    )
    policy = packages.parse_apt_policy(text)
    assert (policy.installed, policy.candidate, policy.versions) == (
        None,
        "1.30.2-1.1",
        ("1.30.2-1.1",),
    )


# --- parsers: binaries ------------------------------------------------------------------------


def test_kubeadm_version_forms() -> None:
    assert binaries.parse_kubeadm_version("v1.30.2\n") == "v1.30.2"
    assert (
        binaries.parse_kubeadm_version(fixture("outputs/kubeadm-version.v1.15.9-beta.0.txt"))
        == "v1.15.9-beta.0"
    )


def test_kubeadm_version_inline_full_form() -> None:
    text = (
        'kubeadm version: &version.Info{Major:"1", Minor:"30", GitVersion:"v1.30.2",'
        ' GitCommit:"39683505"}\n'
    )
    assert binaries.parse_kubeadm_version(text) == "v1.30.2"
    assert binaries.parse_kubeadm_version("command not found\n") is None


def test_kubelet_version() -> None:
    assert binaries.parse_kubelet_version("Kubernetes v1.30.2\n") == "v1.30.2"
    assert binaries.parse_kubelet_version("Kubernetes v1.17.17+k3s1\n") == "v1.17.17+k3s1"
    assert binaries.parse_kubelet_version("") is None


@pytest.mark.parametrize(
    ("name", "client"),
    [
        ("kubectl-version-short.v1.21.8-client-k3s-server.txt", "v1.21.8"),
        ("kubectl-version.v1.15-client-v1.14-server-legacy.txt", "v1.15.0"),
        ("kubectl-version.v1.25.0-client-v1.25.1-server.deprecation-warning.txt", "v1.25.0"),
        ("kubectl-version.v1.26-client-v1.23-server-deprecation-and-skew-warnings.txt", "v1.26.2"),
        ("kubectl-version.v1.28.1-new-format.txt", "v1.28.1"),
        ("kubectl-version.v1.30.0-client-v1.29.2-server.txt", "v1.30.0"),
    ],
)
def test_kubectl_version_fixtures(name: str, client: str) -> None:
    assert binaries.parse_kubectl_version(fixture(f"outputs/{name}")) == client


def test_kubectl_version_inline() -> None:
    assert binaries.parse_kubectl_version(KUBECTL_JSON) == "v1.30.2"
    assert (
        binaries.parse_kubectl_version("Client Version: v1.27.4\nKustomize Version: v5.0.1\n")
        == "v1.27.4"
    )
    assert binaries.parse_kubectl_version("{not json\nClient Version: v1.20.0\n") == "v1.20.0"
    assert binaries.parse_kubectl_version('{"clientVersion": {"gitVersion": 5}}') is None
    assert binaries.parse_kubectl_version("[" * 10000 + "{" * 10000) is None


# --- parsers: runtime -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "endpoint"),
    [
        ("kubeadm-flags.env.crio-endpoint", "unix:///var/run/crio/crio.sock"),
        ("kubeadm-flags.env.v1.11-unquoted", "/var/run/crio/crio.sock"),
        ("kubeadm-flags.env.v1.1x-cgroupfs-trailing-spaces", None),
    ],
)
def test_kubeadm_flags_fixtures(name: str, endpoint: str | None) -> None:
    text = files((runtime.KUBEADM_FLAGS_ENV, fixture(f"kubelet/{name}")))
    assert runtime.parse_kubelet_flags(text) == endpoint


def test_kubeadm_flags_trailing_spaces_keep_the_args() -> None:
    content = fixture("kubelet/kubeadm-flags.env.v1.1x-cgroupfs-trailing-spaces")
    args = runtime.kubelet_args({runtime.KUBEADM_FLAGS_ENV: content})
    assert args[-1] == "--resolv-conf=/run/systemd/resolve/resolv.conf"


def test_extra_args_override_kubeadm_args() -> None:
    found = {
        runtime.KUBEADM_FLAGS_ENV: 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock"',
        "/etc/sysconfig/kubelet": "KUBELET_EXTRA_ARGS=--container-runtime-endpoint unix:///var/run/crio/crio.sock",
    }
    assert (
        runtime.endpoint_from_args(runtime.kubelet_args(found)) == "unix:///var/run/crio/crio.sock"
    )


@pytest.mark.parametrize(
    ("name", "endpoint"),
    [
        ("config.yaml.no-staticPodPath.crio", "unix:///var/run/crio/crio.sock"),
        ("config.yaml.kubeadm-generated.v1.2x-cgroupfs", None),
        ("config.yaml.commented-binary-install.v1.12", None),
        ("config.yaml.minikube-v1.20.2", None),
        ("config.yaml.no-staticPodPath.flow-list.v1.16-binary", None),
        ("kubelet-config.json.eks-ami", None),
    ],
)
def test_kubelet_config_fixtures(name: str, endpoint: str | None) -> None:
    assert runtime.kubelet_config_endpoint(fixture(f"kubelet/{name}")) == endpoint


def test_kubelet_config_inline() -> None:
    assert (
        runtime.kubelet_config_endpoint(KUBELET_CONFIG_YAML)
        == "unix:///run/containerd/containerd.sock"
    )
    assert (
        runtime.kubelet_config_endpoint('{"containerRuntimeEndpoint": "unix:///x/crio.sock"}')
        == "unix:///x/crio.sock"
    )
    assert runtime.kubelet_config_endpoint("") is None
    with pytest.raises(ValueError, match="not a mapping"):
        runtime.kubelet_config_endpoint("- a list\n")


def test_runtime_names() -> None:
    assert runtime.runtime_name("unix:///run/containerd/containerd.sock") == "containerd"
    assert runtime.runtime_name("/var/run/crio/crio.sock") == "cri-o"
    assert runtime.runtime_name("unix:///var/run/cri-dockerd.sock") == "docker"
    assert runtime.runtime_name("/var/run/dockershim.sock") == "docker"
    assert runtime.runtime_name("unix:///run/other.sock") is None


def test_sockets_in_order_of_specificity() -> None:
    text = "/run/containerd/containerd.sock\n/var/run/dockershim.sock\n/not/known.sock\n"
    assert runtime.parse_sockets(text) == (
        "/var/run/dockershim.sock",
        "/run/containerd/containerd.sock",
    )


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("containerd containerd.io 1.6.21 3dce8eb055cbb6872793272b4f20ed16117344f8\n", "1.6.21"),
        (
            "containerd github.com/containerd/containerd v1.7.2 0cae528dd6cb557f720103\n",
            "1.7.2",
        ),
        ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n", "1.6.20~ds1"),
        ("containerd: command not found\n", None),
    ],
)
def test_containerd_version(text: str, version: str | None) -> None:
    assert runtime.parse_containerd_version(text) == version


def test_crio_and_docker_versions() -> None:
    assert runtime.parse_crio_version("crio version 1.29.1\n") == "1.29.1"
    assert (
        runtime.parse_crio_version("INFO[0000] starting\nVersion:  1.24.6\nGitCommit: abc\n")
        == "1.24.6"
    )
    assert runtime.parse_docker_version("Docker version 24.0.5, build ced0996\n") == "24.0.5"
    assert runtime.parse_docker_version("nothing") is None


# --- parsers: system --------------------------------------------------------------------------


def test_roles() -> None:
    cp = system.parse_kube_files(
        f"present {system.APISERVER_MANIFEST}\npresent {system.KUBELET_KUBECONFIG}\n"
    )
    worker = system.parse_kube_files(
        f"absent {system.APISERVER_MANIFEST}\npresent {system.KUBELET_KUBECONFIG}\n"
    )
    bare = system.parse_kube_files(
        f"absent {system.APISERVER_MANIFEST}\nabsent {system.KUBELET_KUBECONFIG}\n"
    )
    assert [system.role_from(f) for f in (cp, worker, bare, {})] == [
        "control-plane",
        "worker",
        "none",
        None,
    ]


def test_tools_and_has_dnf() -> None:
    assert system.has_dnf(system.parse_tools("dnf\t/usr/bin/dnf\nyum\t/usr/bin/yum\n")) is True
    assert system.has_dnf(system.parse_tools("yum\t/usr/bin/yum\n")) is False
    assert system.has_dnf(system.parse_tools("")) is None


# --- reliability case 34: unsupported OS ----------------------------------------------------

ALPINE = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'
UBUNTU_14 = (
    'NAME="Ubuntu"\nVERSION="14.04.6 LTS, Trusty Tahr"\nID=ubuntu\nID_LIKE=debian\n'
    'PRETTY_NAME="Ubuntu 14.04.6 LTS"\nVERSION_ID="14.04"\n'
)
NO_OS_RELEASE = "cat: /usr/lib/os-release: No such file or directory\n"


def _case_34_nodes() -> dict[str, dict[str, tuple[str, int]]]:
    both = "dnf\t/usr/bin/dnf\nyum\t/usr/bin/yum\napt-get\t/usr/bin/apt-get\n"
    return {
        "alpine": dict(DEBIAN_NODE, os_release=(ALPINE, 0)),
        "no-os-release": dict(DEBIAN_NODE, os_release=(NO_OS_RELEASE, 1)),
        "old-ubuntu": dict(DEBIAN_NODE, os_release=(UBUNTU_14, 0)),
        "old-ubuntu-fixture": dict(
            DEBIAN_NODE,
            os_release=(
                fixture("os-release/ubuntu-22.04.os-release").replace(
                    'VERSION_ID="22.04"', 'VERSION_ID="14.04"'
                ),
                0,
            ),
        ),
        "debian-with-yum": dict(
            DEBIAN_NODE,
            os_release=(fixture("os-release/debian-12.os-release"), 0),
            tools=("yum\t/usr/bin/yum\napt-get\t/usr/bin/apt-get\n", 0),
        ),
        "rocky-with-apt": dict(
            ROCKY_NODE, os_release=(fixture("os-release/rocky-9.3.os-release"), 0), tools=(both, 0)
        ),
    }


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("alpine", ["Alpine Linux v3.19", "apk"]),
        ("no-os-release", ["no /etc/os-release"]),
        ("old-ubuntu", ["Ubuntu 14.04", "16.04 or newer"]),
        ("old-ubuntu-fixture", ["Ubuntu 14.04", "16.04 or newer"]),
        ("debian-with-yum", ["Debian GNU/Linux 12", "apt-get", "/usr/bin/yum"]),
        ("rocky-with-apt", ["Rocky Linux 9.3", "/usr/bin/apt-get", "dnf"]),
    ],
)
def test_case_34_unsupported_os_is_refused_and_the_node_untouched(
    case: str, words: list[str]
) -> None:
    """Case 34: Alpine, no os-release, an old Ubuntu, apt and yum both present: "unsupported
    OS" naming why; the only command sent is the read-only facts script."""
    transport = _transport("n1", _case_34_nodes()[case])
    facts = gather_facts(transport)
    assert transport.sent == [facts_command()]  # nothing but the read-only probe script
    assert facts.platform is None
    assert facts.os_error is not None and facts.os_error.startswith("unsupported OS: ")
    for word in words:
        assert word in facts.os_error, (case, facts.os_error)
    assert not facts.ok


def test_case_34_one_package_manager_beside_its_family_is_fine() -> None:
    """Case 34's counterpart: a Debian node with apt-get only, a Rocky node with dnf and yum."""
    debian = dict(DEBIAN_NODE, tools=("apt-get\t/usr/bin/apt-get\n", 0))
    rocky = dict(ROCKY_NODE, tools=("dnf\t/usr/bin/dnf\nyum\t/usr/bin/yum\n", 0))
    for node, manager in ((debian, "apt"), (rocky, "dnf")):
        facts = gather_facts(_transport("n1", node))
        assert facts.platform is not None and facts.platform.package_manager == manager
