"""The simulated systemctl: unit and drop-in combination, ExecStart expansion, start/stop."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from nodeops.lab.sim import systemctl
from nodeops.lab.sim.pkg import files

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "kubelet"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared fixtures not present")


@needs_fixtures
def test_the_packaged_unit_and_drop_in_are_upstreams() -> None:
    assert (FIXTURES / "kubelet.service").read_text() == files.KUBELET_SERVICE
    assert (FIXTURES / "10-kubeadm.conf.modern-pkgs.k8s.io").read_text() == files.KUBEADM_DROPIN


@needs_fixtures
def test_kubeadm_drop_in_resets_and_replaces_exec_start(tmp_path: Path) -> None:
    unit = (FIXTURES / "kubelet.service").read_text()
    dropin = (FIXTURES / "10-kubeadm.conf.modern-pkgs.k8s.io").read_text()
    service = systemctl.combine([unit, dropin])
    assert service.exec_start == (
        "/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS"
        " $KUBELET_EXTRA_ARGS",
    )
    assert service.environment_files == (
        "-/var/lib/kubelet/kubeadm-flags.env",
        "-/etc/sysconfig/kubelet",
    )
    assert (service.restart, service.restart_sec) == ("always", 10.0)
    flags = tmp_path / "var/lib/kubelet/kubeadm-flags.env"
    flags.parent.mkdir(parents=True)
    flags.write_text(
        'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/'
        'containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9"\n'
    )
    env = systemctl.environment(tmp_path, service)  # /etc/sysconfig/kubelet is optional
    assert systemctl.command_line(service.exec_start[-1], env) == [
        "/usr/bin/kubelet",
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--config=/var/lib/kubelet/config.yaml",
        "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
        "--pod-infra-container-image=registry.k8s.io/pause:3.9",
    ]


@needs_fixtures
def test_a_later_drop_in_overrides_exec_start() -> None:
    texts = [
        (FIXTURES / "kubelet.service").read_text(),
        (FIXTURES / "10-kubeadm.conf.modern-pkgs.k8s.io").read_text(),
        (FIXTURES / "20-etcd-service-manager.conf.pod-manifest-path-flag").read_text(),
    ]
    service = systemctl.combine(texts)
    assert len(service.exec_start) == 1
    argv = systemctl.command_line(service.exec_start[0], {})
    assert argv[0] == "/usr/bin/kubelet" and "--pod-manifest-path=/etc/kubernetes/manifests" in argv


def test_environment_quoting_and_expansion() -> None:
    unit = (
        "[Service]\n"
        'Environment="A=one two" B=three\n'
        'Environment="C=x\\\n  y"\n'
        'ExecStart=/bin/x $A "${A}" pre${B} $$HOME $NONE\n'
    )
    service = systemctl.combine([unit])
    env = {"A": "one two", "B": "three", "C": "x y"}
    assert systemctl.environment(Path("/nonexistent"), service) == env
    assert systemctl.command_line(service.exec_start[0], env) == [
        "/bin/x", "one", "two", "one two", "prethree", "$HOME",
    ]  # fmt: skip
    empty = systemctl.combine(["[Service]\nEnvironment=A=1\nEnvironment=\nEnvironmentFile=/x\n"])
    assert empty.environment == ()
    with pytest.raises(OSError):
        systemctl.environment(Path("/nonexistent"), empty)  # not optional: no "-"


def test_drop_ins_from_etc_override_same_named_ones_and_sort_by_name(tmp_path: Path) -> None:
    for d in ("usr/lib/systemd/system/x.service.d", "etc/systemd/system/x.service.d"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "usr/lib/systemd/system/x.service").write_text("[Service]\nExecStart=/bin/a\n")
    (tmp_path / "usr/lib/systemd/system/x.service.d/10-a.conf").write_text("")
    (tmp_path / "usr/lib/systemd/system/x.service.d/30-c.conf").write_text("")
    (tmp_path / "etc/systemd/system/x.service.d/10-a.conf").write_text("")
    (tmp_path / "etc/systemd/system/x.service.d/20-b.conf").write_text("")
    (tmp_path / "etc/systemd/system/x.service.d/skip.txt").write_text("")
    found = systemctl.find_unit(tmp_path, "x.service")
    assert found.fragment == "/usr/lib/systemd/system/x.service"
    assert found.dropins == (
        "/etc/systemd/system/x.service.d/10-a.conf",
        "/etc/systemd/system/x.service.d/20-b.conf",
        "/usr/lib/systemd/system/x.service.d/30-c.conf",
    )


def _ctl(root: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = systemctl.systemctl(list(args), root, out, err)
    return code, out.getvalue(), err.getvalue()


def test_start_stop_restart_and_the_daemon_reload_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    units = tmp_path / "etc/systemd/system"
    (units / "demo.service.d").mkdir(parents=True)
    (units / "demo.service").write_text(
        "[Unit]\nDescription=Demo\n[Service]\nEnvironment=WORD=hello\n"
        "ExecStart=/bin/sh -c 'echo $0; exec sleep 60' $WORD\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )
    assert _ctl(tmp_path, "start", "nope") == (
        5, "", "Failed to start nope.service: Unit nope.service not found.\n",
    )  # fmt: skip
    assert _ctl(tmp_path, "is-active", "demo")[:2] == (3, "inactive\n")
    assert _ctl(tmp_path, "start", "demo") == (0, "", "")
    try:
        pid = int((tmp_path / "run/nodeops-sim/units/demo.service.pid").read_text())
        os.kill(pid, 0)
        assert _ctl(tmp_path, "is-active", "demo")[:2] == (0, "active\n")
        code, out, _ = _ctl(tmp_path, "status", "demo")
        assert code == 0
        assert (
            "     Loaded: loaded (/etc/systemd/system/demo.service; disabled; preset: enabled)"
            in out
        )
        (tmp_path / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="22.04"\n')
        assert "; disabled; vendor preset: enabled)" in _ctl(tmp_path, "status", "demo")[1]
        assert "     Active: active (running) since " in out
        assert f"   Main PID: {pid} (sh)" in out
        (units / "demo.service.d/override.conf").write_text("[Service]\nEnvironment=WORD=bye\n")
        code, _, err = _ctl(tmp_path, "restart", "demo")
        warning = (
            "Warning: The unit file, source configuration file or drop-ins of demo.service changed"
            " on disk. Run 'systemctl daemon-reload' to reload units.\n"
        )
        assert (code, err) == (0, warning)
        assert _ctl(tmp_path, "daemon-reload") == (0, "", "")
        code, _, err = _ctl(tmp_path, "restart", "demo")
        assert (code, err) == (0, "")
        deadline = time.monotonic() + 5
        log = tmp_path / "var/log/nodeops-sim/demo.service.log"
        while "]: bye" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        journal = log.read_text()
        # the first restart ran the configuration loaded before the drop-in, as systemd would
        assert journal.count("]: hello") == 2 and journal.count("]: bye") == 1
        assert "systemd[1]: Stopped demo.service - Demo." in journal
    finally:
        assert _ctl(tmp_path, "stop", "demo")[0] == 0
    assert _ctl(tmp_path, "is-active", "demo")[:2] == (3, "inactive\n")
    assert not (tmp_path / "run/nodeops-sim/units/demo.service.pid").exists()
    out, err = io.StringIO(), io.StringIO()
    assert systemctl.journalctl(["-u", "demo", "-n", "1", "--no-pager"], tmp_path, out, err) == 0
    assert out.getvalue().endswith("systemd[1]: Stopped demo.service - Demo.\n")


def test_enable_and_is_enabled(tmp_path: Path) -> None:
    units = tmp_path / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    (units / "kubelet.service").write_text(files.KUBELET_SERVICE)
    assert _ctl(tmp_path, "is-enabled", "kubelet")[:2] == (1, "disabled\n")
    code, _, err = _ctl(tmp_path, "enable", "kubelet")
    assert code == 0 and err == (
        "Created symlink /etc/systemd/system/multi-user.target.wants/kubelet.service"
        " \u2192 /usr/lib/systemd/system/kubelet.service.\n"
    )
    assert _ctl(tmp_path, "is-enabled", "kubelet")[:2] == (0, "enabled\n")
    code, out, _ = _ctl(tmp_path, "cat", "kubelet")
    assert out.startswith("# /usr/lib/systemd/system/kubelet.service\n[Unit]\n")
