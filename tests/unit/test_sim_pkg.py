"""The simulated package tools, run on a temporary node root (no lab)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeops.facts.packages import (
    parse_apt_policy,
    parse_dpkg_query,
    parse_repo_excludes,
    parse_rpm_query,
)
from nodeops.lab import stubs
from nodeops.lab.images import os_release
from nodeops.lab.sim.pkg import apt, catalog, dnf, preinstall, repos, rpm, state
from nodeops.lab.sim.pkg.catalog import Release
from nodeops.lab.sim.pkg.versions import deb_compare, deb_matches, rpm_matches

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared fixtures not present")


def node(tmp_path: Path, os_name: str) -> Path:
    root = tmp_path / "node"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(os_release(os_name))
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    return root


def run_apt(root: Path, tool: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = apt.run(tool, list(args), root, out, err)
    return code, out.getvalue(), err.getvalue()


def run_dnf(root: Path, *args: str, width: int = 80) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = dnf.run("yum", list(args), root, out, err, width)
    return code, out.getvalue(), err.getvalue()


def apt_repo(root: Path, minor: str) -> None:
    path = root / preinstall.APT_LIST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(preinstall.apt_source_line(minor))


def yum_repo(root: Path, minor: str) -> None:
    path = root / preinstall.YUM_REPO
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(preinstall.yum_repo_text(minor))


# --- catalog and versions ------------------------------------------------------------------


def test_catalog_serves_each_minor_with_its_patches_and_revisions() -> None:
    assert catalog.MINORS == ("1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33")
    assert catalog.patches("1.29")[0] == "1.29.0" and catalog.latest_patch("1.29") == "1.29.15"
    assert catalog.patches("1.26") == () and catalog.patches("1.34") == ()
    kubeadm = {r.upstream: r for r in catalog.pkgs_releases("1.29") if r.name == "kubeadm"}
    assert kubeadm["1.29.3"].deb_version == "1.29.3-1.1"
    assert kubeadm["1.29.4"].deb_version == "1.29.4-2.1"  # rebuilt in April 2024
    assert kubeadm["1.29.3"].rpm_evr == "1.29.3-150500.1.1"
    assert {catalog.minor_of(r.upstream) for r in kubeadm.values()} == {"1.29"}
    tools = [r.deb_version for r in catalog.pkgs_releases("1.30") if r.name == "cri-tools"]
    assert tools == ["1.30.0-1.1", "1.30.1-1.1"]


def test_legacy_repositories_stop_at_their_freeze() -> None:
    legacy = [r for r in catalog.legacy_releases() if r.name == "kubeadm"]
    assert all(r.deb_version.endswith("-00") and r.rpm_release == "0" for r in legacy)
    newest = max(legacy, key=lambda r: tuple(int(p) for p in r.upstream.split(".")))
    assert newest.upstream == "1.28.2"
    assert not any(catalog.minor_of(r.upstream) == "1.29" for r in legacy)


@needs_fixtures
def test_catalog_agrees_with_a_real_madison_listing() -> None:
    real = (FIXTURES / "outputs/apt-cache-madison-kubeadm.pkgs.k8s.io-v1.28.txt").read_text()
    versions = [line.split(" | ")[1] for line in real.splitlines()]
    ours = [r.deb_version for r in catalog.pkgs_releases("1.28") if r.name == "kubeadm"]
    assert set(versions) <= set(ours)
    assert "1.28.9-2.1" in ours


@pytest.mark.parametrize(
    ("a", "b", "sign"),
    [
        ("1.30.2-1.1", "1.30.10-1.1", -1),
        ("1.29.4-2.1", "1.29.4-1.1", 1),
        ("1.28.2-00", "1.28.2-1.1", -1),
        ("1:528.0.0-0", "1.33.0-1.1", 1),
        ("1.0~rc1", "1.0", -1),
        ("1.30.2-1.1", "1.30.2-1.1", 0),
    ],
)
def test_deb_compare(a: str, b: str, sign: int) -> None:
    got = deb_compare(a, b)
    assert (got > 0) - (got < 0) == sign


def test_apt_version_globs() -> None:
    assert deb_matches("1.30.2-*", "1.30.2-1.1")
    assert not deb_matches("1.30.2-*", "1.30.20-1.1")
    assert not deb_matches("1.30.2", "1.30.2-1.1")


@pytest.mark.parametrize(
    ("spec", "hit"),
    [
        ("kubeadm", True),
        ("kubeadm-1.30.2", True),
        ("kubeadm-1.30.2-*", True),
        ("kubeadm-1.30.2-150500.1.1", True),
        ("kubeadm-1.30.2-150500.1.1.x86_64", True),
        ("kubeadm-0:1.30.2-150500.1.1", True),
        ("kubeadm-1.30.*", True),
        ("kubeadm-1.30", False),
        ("kubeadm-1.30.20", False),
        ("kubelet-1.30.2", False),
    ],
)
def test_dnf_package_specs(spec: str, hit: bool) -> None:
    assert rpm_matches(spec, Release("kubeadm", "1.30.2")) is hit


@needs_fixtures
def test_sources_and_repo_files_from_the_field() -> None:
    apt_dir = FIXTURES / "apt-yum"
    v128 = repos.parse_sources_list(
        (apt_dir / "kubernetes.list.pkgs.k8s.io-v1.28-official").read_text()
    )
    assert [(s.minor, s.suite, s.legacy) for s in v128] == [("1.28", "/", False)]
    legacy = repos.parse_sources_list((apt_dir / "kubernetes.list.legacy-signed-by").read_text())
    assert legacy[0].legacy and legacy[0].minor is None
    mirrors = repos.parse_sources_list(
        (apt_dir / "kubernetes.list.legacy-mirrors-commented").read_text()
    )
    assert [s.uri for s in mirrors] == ["https://mirrors.cloud.tencent.com/kubernetes/apt/"]
    assert (
        repos.parse_sources_list(
            (apt_dir / "kubernetes.list.pkgs.k8s.io-v1.23-archive-keyring-name").read_text()
        )[0].releases()
        == ()
    )
    repo = repos.parse_repo_file(
        (apt_dir / "kubernetes.repo.pkgs.k8s.io-v1.29-with-exclude").read_text()
    )[0]
    assert (repo.id, repo.minor, repo.enabled) == ("kubernetes", "1.29", True)
    assert repo.excludes == parse_repo_excludes(
        (apt_dir / "kubernetes.repo.pkgs.k8s.io-v1.29-with-exclude").read_text()
    )
    google = repos.parse_repo_file(
        (apt_dir / "kubernetes.repo.legacy-google-basearch").read_text()
    )[0]
    assert google.legacy and google.excludes == ()


def test_preinstall_writes_the_docs_repo_definitions() -> None:
    assert preinstall.apt_source_line("1.30") == (
        "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg]"
        " https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n"
    )
    text = preinstall.yum_repo_text("1.30")
    assert parse_repo_excludes(text) == (
        "kubelet",
        "kubeadm",
        "kubectl",
        "cri-tools",
        "kubernetes-cni",
    )
    assert repos.parse_repo_file(text)[0].minor == "1.30"


# --- apt -----------------------------------------------------------------------------------


def test_apt_install_hold_and_upgrade_like_the_kubeadm_docs(tmp_path: Path) -> None:
    root = node(tmp_path, "ubuntu-22.04")
    apt_repo(root, "1.29")
    code, out, _ = run_apt(root, "apt-get", "update")
    assert code == 0 and out.splitlines()[-1] == "Reading package lists... Done"
    assert (
        "Get:1 https://prod-cdn.packages.k8s.io/repositories/isv:/kubernetes:/core:/stable:"
        "/v1.29/deb  InRelease [1,189 B]" in out
    )
    code, out, err = run_apt(
        root, "apt-get", "install", "-y", "kubeadm=1.29.3-1.1", "kubelet=1.29.3-1.1"
    )
    assert code == 0, err
    assert (
        "Unpacking kubeadm (1.29.3-1.1) ..." in out
        and "Setting up cri-tools (1.29.0-1.1) ..." in out
    )
    assert run_apt(root, "apt-mark", "hold", "kubeadm")[1] == "kubeadm set on hold.\n"
    assert run_apt(root, "apt-mark", "hold", "kubeadm")[1] == "kubeadm was already set on hold.\n"
    assert run_apt(root, "apt-mark", "showhold")[1] == "kubeadm\n"

    apt_repo(root, "1.30")
    # the repo switched but the lists are the old ones until `apt-get update`
    code, _, err = run_apt(root, "apt-get", "install", "-y", "kubeadm=1.30.2-*")
    assert (code, err) == (100, "E: Version '1.30.2-*' for 'kubeadm' was not found\n")
    run_apt(root, "apt-get", "update")
    code, out, err = run_apt(root, "apt-get", "install", "-y", "kubeadm=1.30.2-*")
    assert code == 100
    assert "The following held packages will be changed:\n  kubeadm\n" in out
    assert (
        err
        == "E: Held packages were changed and -y was used without --allow-change-held-packages.\n"
    )
    assert run_apt(root, "apt-mark", "unhold", "kubeadm")[1] == "Canceled hold on kubeadm.\n"
    code, out, err = run_apt(root, "apt-get", "install", "-y", "kubeadm=1.30.2-*")
    assert code == 0, err
    assert (
        "Selected version '1.30.2-1.1'"
        " (isv:kubernetes:core:stable:v1.30:pkgs.k8s.io [amd64]) for 'kubeadm'" in out
    )
    assert "Unpacking kubeadm (1.30.2-1.1) over (1.29.3-1.1) ..." in out
    assert "Unpacking cri-tools (1.30.1-1.1) over (1.29.0-1.1) ..." in out  # kubeadm needs it
    wrapper = (root / "usr/bin/kubeadm").read_text()
    assert "NODEOPS_KUBEADM_VERSION=v1.30.2" in wrapper and "nodeops.lab.sim.kubeadm" in wrapper
    code, _, err = run_apt(root, "apt-get", "install", "-y", "kubeadm=1.31.0-1.1")
    assert (code, err) == (100, "E: Version '1.31.0-1.1' for 'kubeadm' was not found\n")
    code, _, err = run_apt(root, "apt-get", "install", "-y", "kubeadm=1.29.3-1.1")
    assert (code, err) == (100, "E: Version '1.29.3-1.1' for 'kubeadm' was not found\n")
    code, _, err = run_apt(root, "apt-get", "install", "-y", "curl")
    assert (code, err) == (100, "E: Unable to locate package curl\n")


def test_apt_downgrade_needs_allow_downgrades(tmp_path: Path) -> None:
    root = node(tmp_path, "debian-12")
    apt_repo(root, "1.30")
    run_apt(root, "apt-get", "update")
    assert run_apt(root, "apt-get", "install", "-y", "kubectl=1.30.5-*")[0] == 0
    code, out, err = run_apt(root, "apt-get", "install", "-y", "kubectl=1.30.2-*")
    assert code == 100 and "The following packages will be DOWNGRADED:\n  kubectl\n" in out
    assert "0 upgraded, 0 newly installed, 1 downgraded, 0 to remove and 0 not upgraded." in out
    assert err == "E: Packages were downgraded and -y was used without --allow-downgrades.\n"
    code, out, _ = run_apt(
        root, "apt-get", "install", "-y", "--allow-downgrades", "kubectl=1.30.2-*"
    )
    assert code == 0 and "dpkg: warning: downgrading kubectl from 1.30.5-1.1 to 1.30.2-1.1" in out


def test_apt_download_only_prestages_then_installs_without_fetching(tmp_path: Path) -> None:
    root = node(tmp_path, "ubuntu-24.04")
    apt_repo(root, "1.31")
    run_apt(root, "apt-get", "update")
    code, out, _ = run_apt(root, "apt-get", "install", "-y", "--download-only", "kubelet=1.31.4-*")
    assert code == 0 and out.splitlines()[-1] == "Download complete and in download only mode"
    assert state.load(root).installed == {}
    code, out, _ = run_apt(root, "apt-get", "install", "-y", "-q", "kubelet=1.31.4-*")
    # kubelet's and its dependency's archives were pre-staged: nothing left to fetch
    assert code == 0 and "Get:" not in out
    assert "Need to get 0 B/51.3 MB of archives." in out
    assert (root / "usr/lib/systemd/system/kubelet.service").stat().st_mode & 0o777 == 0o600
    assert (root / "etc/default/kubelet").read_text() == "KUBELET_EXTRA_ARGS=\n"


@needs_fixtures
def test_apt_cache_madison_and_policy_formats(tmp_path: Path) -> None:
    root = node(tmp_path, "ubuntu-22.04")
    apt_repo(root, "1.28")
    run_apt(root, "apt-get", "update")
    _, out, _ = run_apt(root, "apt-cache", "madison", "kubeadm")
    lines = out.splitlines()
    assert (
        lines[0]
        == "   kubeadm | 1.28.15-1.1 | https://pkgs.k8s.io/core:/stable:/v1.28/deb  Packages"
    )
    real = (FIXTURES / "outputs/apt-cache-madison-kubeadm.pkgs.k8s.io-v1.28.txt").read_text()
    # the fixture's author stripped the leading alignment; it was taken when 1.28.11 was newest
    assert [line.strip() for line in lines[4:]] == real.splitlines()
    run_apt(root, "apt-get", "install", "-y", "kubelet=1.28.2-1.1")
    _, out, _ = run_apt(root, "apt-cache", "policy", "kubelet")
    policy = parse_apt_policy(out)
    assert (policy.installed, policy.candidate) == ("1.28.2-1.1", "1.28.15-1.1")
    assert policy.versions[0] == "1.28.15-1.1" and len(policy.versions) == 16
    assert (
        " *** 1.28.2-1.1 500\n"
        "        500 https://pkgs.k8s.io/core:/stable:/v1.28/deb  Packages\n"
        "        100 /var/lib/dpkg/status\n" in out
    )


@needs_fixtures
def test_legacy_policy_lines_look_like_the_real_ones(tmp_path: Path) -> None:
    root = node(tmp_path, "ubuntu-22.04")
    path = root / preinstall.APT_LIST
    path.parent.mkdir(parents=True)
    path.write_text(
        (FIXTURES / "apt-yum/archive_uri-http_apt_kubernetes_io_-jammy.list").read_text()
    )
    run_apt(root, "apt-get", "update")
    _, out, _ = run_apt(root, "apt-cache", "policy", "kubeadm")
    real = (FIXTURES / "outputs/apt-cache-policy-kubeadm.grep-1.12.legacy-apt.txt").read_text()
    origin = real.splitlines()[-1]
    assert origin == "        500 http://apt.kubernetes.io kubernetes-xenial/main amd64 Packages"
    assert origin in out.splitlines()
    assert parse_apt_policy(out).candidate == "1.28.2-00"


def test_dpkg_status_is_what_the_real_dpkg_query_reads(tmp_path: Path) -> None:
    if not Path("/usr/bin/dpkg-query").exists():
        pytest.skip("needs dpkg-query")
    root = node(tmp_path, "ubuntu-22.04")
    (root / "var/lib/dpkg/status").write_text(
        stubs.without_kube_packages(
            "Package: kubectl\nStatus: install ok installed\nVersion: 1:528.0.0-0\n\n"
            "Package: less\nStatus: install ok installed\nPriority: important\nSection: text\n"
            "Maintainer: x <x@example.org>\nArchitecture: amd64\nVersion: 590-2\n"
            "Description: pager\n\n"
        )
    )
    apt_repo(root, "1.29")
    run_apt(root, "apt-get", "update")
    run_apt(root, "apt-get", "install", "-y", "kubeadm=1.29.3-*", "kubectl=1.29.3-*")
    run_apt(root, "apt-mark", "hold", "kubeadm")
    fmt = "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"
    done = subprocess.run(
        ["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", f"--showformat={fmt}",
         "kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni", "less"],
        capture_output=True, text=True,
    )  # fmt: skip
    query = parse_dpkg_query(done.stdout + done.stderr)
    assert query.versions == {
        "kubeadm": "1.29.3-1.1", "kubectl": "1.29.3-1.1", "cri-tools": "1.29.0-1.1",
        "less": "590-2",
    }  # fmt: skip
    assert query.held == {"kubeadm"} and query.problems == ()
    # `dpkg --set-selections` edits the same file: apt-mark sees it
    status = root / "var/lib/dpkg/status"
    status.write_text(
        status.read_text().replace("Status: hold ok installed", "Status: install ok installed")
    )
    assert run_apt(root, "apt-mark", "showhold")[1] == ""


@contextlib.contextmanager
def _dpkg_lock_held(root: Path) -> Iterator[subprocess.Popen[str]]:
    """A process holding the dpkg frontend lock with fcntl, as apt does; killed on leaving."""
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(30)\n"
    )
    path = root / state.LOCK_FRONTEND
    argv = [sys.executable, "-c", code, str(path)]
    # Leaving the Popen block closes the pipe and reaps the killed holder.
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
            yield proc
        finally:
            proc.kill()


def test_the_dpkg_frontend_lock_is_a_real_fcntl_lock(tmp_path: Path) -> None:
    root = node(tmp_path, "ubuntu-22.04")
    apt_repo(root, "1.29")
    run_apt(root, "apt-get", "update")
    with _dpkg_lock_held(root) as holder:
        holder_name = Path(f"/proc/{holder.pid}/comm").read_text().strip()
        code, _, err = run_apt(root, "apt-get", "install", "-y", "kubeadm")
    assert code == 100
    lock = "/var/lib/dpkg/lock-frontend"
    assert err.splitlines() == [
        f"E: Could not get lock {lock}. It is held by process {holder.pid} ({holder_name})",
        "N: Be aware that removing the lock file is not a solution and may break your system.",
        f"E: Unable to acquire the dpkg frontend lock ({lock}), is another process using it?",
    ]
    assert state.load(root).installed == {}
    assert run_apt(root, "apt-get", "install", "-y", "kubeadm")[0] == 0  # free again


def test_dpkg_lock_timeout_waits_for_the_holder_then_fails_past_it(tmp_path: Path) -> None:
    root = node(tmp_path, "ubuntu-22.04")
    apt_repo(root, "1.29")
    run_apt(root, "apt-get", "update")
    with _dpkg_lock_held(root) as holder:
        code, out, err = run_apt(
            root, "apt-get", "-o", "DPkg::Lock::Timeout=1", "install", "-y", "kubeadm"
        )
        assert code == 100 and "E: Could not get lock /var/lib/dpkg/lock-frontend" in err
        assert "Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend." in out
        releaser = subprocess.Popen(["sh", "-c", f"sleep 1.5; kill {holder.pid}"])
        code, out, err = run_apt(
            root, "apt-get", "-oDPkg::Lock::Timeout=30", "install", "-y", "kubeadm"
        )
        releaser.wait()
    assert code == 0, err
    assert out.count("Waiting for cache lock") >= 1
    assert "kubeadm" in state.load(root).installed


def _dpkg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["dpkg", f"--admindir={root}/var/lib/dpkg", *args], capture_output=True, text=True
    )


def test_dpkg_interrupt_fault_leaves_what_a_killed_dpkg_leaves(tmp_path: Path) -> None:
    if not Path("/usr/bin/dpkg").exists():
        pytest.skip("needs the real dpkg")
    root = node(tmp_path, "debian-12")
    (root / "var/lib/dpkg/updates").mkdir()
    apt_repo(root, "1.29")
    run_apt(root, "apt-get", "update")
    assert run_apt(root, "apt-get", "install", "-y", "kubeadm=1.29.3-*")[0] == 0
    assert _dpkg(root, "--audit").stdout == ""  # md5sums and statuses as dpkg expects
    apt_repo(root, "1.30")
    run_apt(root, "apt-get", "update")
    fault = root / state.DPKG_INTERRUPT
    fault.parent.mkdir(parents=True, exist_ok=True)
    fault.touch()
    code, _, err = run_apt(root, "apt-get", "install", "-y", "kubeadm=1.30.*", "kubelet=1.30.*")
    assert code == 100 and err.strip() == "E: Sub-process /usr/bin/dpkg received signal 9."
    assert not fault.exists()
    assert "have been unpacked but not yet configured" in _dpkg(root, "--audit").stdout
    code, _, err = run_apt(root, "apt-get", "install", "-y", "kubelet=1.30.*")
    assert code == 100
    assert err.startswith("E: dpkg was interrupted, you must manually run 'dpkg --configure -a'")
    configure = _dpkg(root, "--configure", "-a")
    assert configure.returncode == 0, configure.stderr
    assert _dpkg(root, "--audit").stdout == ""
    assert state.load(root).unpacked == set()
    assert run_apt(root, "apt-get", "install", "-y", "kubelet=1.30.*")[0] == 0


def test_slow_download_fault(tmp_path: Path) -> None:
    root = node(tmp_path, "ubuntu-22.04")
    apt_repo(root, "1.29")
    run_apt(root, "apt-get", "update")
    fault = root / state.SLOW_DOWNLOAD
    fault.parent.mkdir(parents=True)
    fault.write_text("0.2\n")
    start = time.monotonic()
    assert run_apt(root, "apt-get", "install", "-y", "kubectl=1.29.3-*")[0] == 0
    assert time.monotonic() - start >= 0.2


# --- dnf, yum, rpm -------------------------------------------------------------------------


def test_yum_excludes_and_the_docs_upgrade(tmp_path: Path) -> None:
    root = node(tmp_path, "rocky-9")
    yum_repo(root, "1.29")
    code, out, err = run_dnf(root, "install", "-y", "kubeadm-1.29.3")
    assert code == 1
    assert err == (
        "All matches were filtered out by exclude filtering for argument: kubeadm-1.29.3\n"
        "Error: Unable to find a match: kubeadm-1.29.3\n"
    )
    code, out, err = run_dnf(
        root, "install", "-y", "kubelet-1.29.3", "kubeadm-1.29.3", "kubectl-1.29.3",
        "--disableexcludes=kubernetes",
    )  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[-1] == "Complete!"
    yum_repo(root, "1.30")
    code, out, err = run_dnf(
        root, "install", "-y", "kubeadm-1.30.2-*", "--setopt=disable_excludes=kubernetes"
    )
    assert code == 0, err
    assert "Upgrading:\n cri-tools" in out
    code, _, err = run_dnf(root, "install", "-y", "kubeadm-1.31.0", "--disableexcludes=kubernetes")
    assert (code, err) == (
        1,
        "No match for argument: kubeadm-1.31.0\nError: Unable to find a match: kubeadm-1.31.0\n",
    )
    out_, err_ = io.StringIO(), io.StringIO()
    fmt = "%{NAME}\\t%{VERSION}-%{RELEASE}\\n"
    code = rpm.run(["-q", "--queryformat", fmt, *catalog.PACKAGES], root, out_, err_)
    assert code == 0
    query = parse_rpm_query(out_.getvalue())
    assert query.versions == {
        "kubeadm": "1.30.2-150500.1.1", "kubelet": "1.29.3-150500.1.1",
        "kubectl": "1.29.3-150500.1.1", "cri-tools": "1.30.1-150500.1.1",
        "kubernetes-cni": "1.3.0-150500.1.1",
    }  # fmt: skip
    assert (root / "etc/sysconfig/kubelet").exists() and not (root / "etc/default/kubelet").exists()


def test_rpm_query_of_missing_packages_counts_them(tmp_path: Path) -> None:
    root = node(tmp_path, "rocky-9")
    out, err = io.StringIO(), io.StringIO()
    assert rpm.run(["-q", "kubeadm", "kubelet"], root, out, err) == 2
    assert out.getvalue() == "package kubeadm is not installed\npackage kubelet is not installed\n"


@needs_fixtures
def test_yum_list_showduplicates_columns_match_a_real_terminal() -> None:
    real = (
        FIXTURES / "outputs/yum-list-showduplicates-kubeadm.pkgs.k8s.io-v1.26-excerpt.txt"
    ).read_text()
    rows = [tuple(line.split()) for line in real.splitlines()]
    assert dnf.columns(rows, 177) == real.splitlines()  # type: ignore[arg-type]


def test_yum_list_lists_installed_then_available(tmp_path: Path) -> None:
    root = node(tmp_path, "rocky-9")
    yum_repo(root, "1.32")
    code, out, err = run_dnf(root, "list", "--showduplicates", "kubeadm")
    assert (code, err) == (1, "Error: No matching Packages to list\n")
    code, out, _ = run_dnf(
        root, "-q", "list", "--showduplicates", "kubeadm", "--disableexcludes=kubernetes"
    )
    lines = out.splitlines()
    assert lines[0] == "Available Packages"
    assert [line.split()[1] for line in lines[1:]] == [f"1.32.{p}-150500.1.1" for p in range(10)]
    assert dnf.run("dnf", ["-q", "versionlock", "list"], root, io.StringIO(), io.StringIO()) == 1


def test_preinstall_on_both_families(tmp_path: Path) -> None:
    for os_name, held in (("ubuntu-22.04", {"kubeadm", "kubelet", "kubectl"}), ("rocky-9", set())):
        root = node(tmp_path / os_name, os_name)
        out, err = io.StringIO(), io.StringIO()
        assert preinstall.preinstall("v1.29.3", root, out, err) == 0, err.getvalue()
        got = state.load(root)
        assert {
            n: i.release.upstream for n, i in got.installed.items() if n in catalog.KUBE
        } == dict.fromkeys(catalog.KUBE, "1.29.3")
        assert set(got.installed) == set(catalog.PACKAGES)
        assert got.held == held
        assert (root / "etc/systemd/system/multi-user.target.wants/kubelet.service").is_symlink()
    assert preinstall.preinstall("1.29.99", root, io.StringIO(), io.StringIO()) == 2


def test_removing_a_package_removes_its_files(tmp_path: Path) -> None:
    root = node(tmp_path, "debian-12")
    apt_repo(root, "1.33")
    run_apt(root, "apt-get", "update")
    run_apt(root, "apt-get", "install", "-y", "kubeadm")
    assert (root / "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf").exists()
    code, out, _ = run_apt(root, "apt-get", "remove", "-y", "kubeadm")
    assert code == 0 and "Removing kubeadm (1.33.5-1.1) ..." in out
    assert not (root / "usr/bin/kubeadm").exists()
    assert not (root / "usr/lib/systemd/system/kubelet.service.d").exists()


def test_update_of_a_minor_pkgs_k8s_io_never_published(tmp_path: Path) -> None:
    root = node(tmp_path, "ubuntu-22.04")
    apt_repo(root, "1.23")
    code, out, err = run_apt(root, "apt-get", "update")
    assert code == 100
    assert out.startswith(
        "Err:1 https://pkgs.k8s.io/core:/stable:/v1.23/deb  InRelease\n"
        "  403  Forbidden [IP: 127.0.0.1 443]\n"
    )
    assert err.splitlines()[:2] == [
        "E: Failed to fetch https://pkgs.k8s.io/core:/stable:/v1.23/deb/InRelease  403  Forbidden"
        " [IP: 127.0.0.1 443]",
        "E: The repository 'https://pkgs.k8s.io/core:/stable:/v1.23/deb  InRelease' is not signed.",
    ]
    assert run_apt(root, "apt-get", "install", "-y", "kubeadm")[2] == (
        "E: Unable to locate package kubeadm\n"
    )


def test_legacy_apt_repository_and_apt_options(tmp_path: Path) -> None:
    root = node(tmp_path, "ubuntu-22.04")
    path = root / preinstall.APT_LIST
    path.parent.mkdir(parents=True)
    path.write_text("deb https://apt.kubernetes.io/ kubernetes-xenial main\n")
    _, out, _ = run_apt(root, "apt-get", "update")
    assert out.startswith("Get:1 https://packages.cloud.google.com/apt kubernetes-xenial InRelease")
    assert run_apt(root, "apt-get", "update")[1].startswith(
        "Hit:1 https://packages.cloud.google.com/apt kubernetes-xenial InRelease\n"
    )
    code, out, err = run_apt(
        root, "apt-get", "-o", "Dpkg::Options::=--force-confold", "install", "-y", "kubeadm=1.27.*"
    )
    assert code == 0, err
    assert "Unpacking kubeadm (1.27.6-00) ..." in out  # the newest 1.27 before the freeze


def test_legacy_yum_repository_serves_release_0(tmp_path: Path) -> None:
    root = node(tmp_path, "rocky-9")
    path = root / preinstall.YUM_REPO
    path.parent.mkdir(parents=True)
    path.write_text(
        "[kubernetes]\nname=Kubernetes\n"
        "baseurl=https://packages.cloud.google.com/yum/repos/kubernetes-el7-$basearch\n"
        "enabled=1\nexclude=kube*\n"
    )
    code, _, err = run_dnf(root, "install", "-y", "kubeadm-1.28.2")
    assert code == 1 and "filtered out by exclude filtering" in err
    code, out, err = run_dnf(root, "install", "-y", "kubeadm-1.28.2", "--disableexcludes=all")
    assert code == 0, err
    assert " kubeadm              x86_64         1.28.2-0 " in out
    assert run_dnf(root, "install", "-y", "kubeadm-1.29.0", "--disableexcludes=all")[0] == 1


def test_apt_get_upgrade_keeps_held_packages_back(tmp_path: Path) -> None:
    root = node(tmp_path, "ubuntu-24.04")
    apt_repo(root, "1.32")
    run_apt(root, "apt-get", "update")
    run_apt(root, "apt-get", "install", "-y", "kubeadm=1.32.1-*", "kubectl=1.32.1-*")
    run_apt(root, "apt-mark", "hold", "kubeadm")
    code, out, err = run_apt(root, "apt-get", "upgrade", "-y")
    assert code == 0, err
    assert "The following packages have been kept back:\n  kubeadm\n" in out
    assert "1 upgraded, 0 newly installed, 0 to remove and 1 not upgraded." in out
    got = state.load(root).installed
    assert (got["kubeadm"].release.upstream, got["kubectl"].release.upstream) == (
        "1.32.1",
        "1.32.9",
    )
