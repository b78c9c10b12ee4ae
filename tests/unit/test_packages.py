"""Tests for nodeops.packages: package commands per package manager, listings, repo switches."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeops.cmd import Cmd
from nodeops.packages import (
    MIGRATION_URL,
    available_versions_cmd,
    download_only,
    hold,
    install,
    latest,
    package_spec,
    parse_apt_policy_versions,
    parse_available,
    parse_madison,
    parse_showduplicates,
    refresh,
    repo_minor,
    switch_repo,
    unhold,
)
from nodeops.platforms import APT, DNF, YUM
from nodeops.versions import RepoStyle, VersionError, parse_package_version, parse_version

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
REPO_FIXTURES = FIXTURES / "apt-yum"


def fixture(relative: str) -> str:
    """A shared fixture's text, read in place; skips the test when ../shared is absent."""
    path = FIXTURES / relative
    if not path.is_file():
        pytest.skip(f"shared fixture not found: {path}")
    return path.read_text(encoding="utf-8")


def argv(command: Cmd) -> list[str]:
    """The words a shell would see, for a command run as root (no sudo wrapper)."""
    return shlex.split(command.render(as_root=True))


DEB = parse_package_version("1.30.2-1.1")
RPM = parse_package_version("1.30.2-150500.1.1")


# --- package specs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pm", "version", "spec"),
    [
        (APT, "1.30.2-1.1", "kubeadm=1.30.2-1.1"),
        (APT, "1.28.9-2.1", "kubeadm=1.28.9-2.1"),
        (APT, "1.18.2-00", "kubeadm=1.18.2-00"),
        (DNF, "1.30.2-150500.1.1", "kubeadm-1.30.2-150500.1.1"),
        (YUM, "1.30.2-150500.1.1", "kubeadm-1.30.2-150500.1.1"),
        (YUM, "1.18.2-0", "kubeadm-1.18.2-0"),
    ],
)
def test_package_spec(pm: str, version: str, spec: str) -> None:
    assert package_spec(pm, "kubeadm", version) == spec
    assert package_spec(pm, "kubeadm", parse_package_version(version)) == spec


@pytest.mark.parametrize(
    ("pm", "version", "message"),
    [
        (APT, "1.30.2-150500.1.1", "apt needs a Debian revision"),
        (DNF, "1.30.2-1.1", "dnf needs an RPM release"),
        (YUM, "1.18.2-00", "yum needs an RPM release"),
        (APT, "1.30.2", "no package revision"),
        (APT, "v1.30.2+k3s1", "no package revision"),
        (APT, "1.30.2-rc.1-1.1", "pre-release"),
    ],
)
def test_package_spec_refusals(pm: str, version: str, message: str) -> None:
    with pytest.raises(VersionError, match=message):
        package_spec(pm, "kubeadm", version)


def test_package_spec_needs_a_revision_not_a_bare_version() -> None:
    with pytest.raises(VersionError, match="no package revision"):
        package_spec(APT, "kubeadm", parse_version("1.30.2"))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "Kubeadm", "kube adm", "kubeadm;id", "-kubeadm", "kube$x"])
def test_package_names_are_checked(name: str) -> None:
    with pytest.raises(VersionError, match="not a package name"):
        package_spec(APT, name, DEB)


def test_unknown_package_manager() -> None:
    with pytest.raises(ValueError, match="unknown package manager"):
        refresh("zypper")


# --- commands ------------------------------------------------------------------------------


def test_apt_install() -> None:
    command = install(APT, {"kubeadm": DEB})
    assert command.sudo
    assert argv(command) == [
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "--allow-change-held-packages",
        "-o",
        "Dpkg::Options::=--force-confold",
        "-o",
        "DPkg::Lock::Timeout=120",
        "kubeadm=1.30.2-1.1",
    ]
    assert command.render().startswith("sudo -n -- sh -c ")
    assert "--allow-downgrades" not in command.render()


def test_apt_install_several_without_held_override() -> None:
    command = install(
        APT, {"kubelet": "1.30.2-1.1", "kubectl": DEB}, allow_held=False, lock_timeout=300
    )
    words = argv(command)
    assert "--allow-change-held-packages" not in words
    assert "DPkg::Lock::Timeout=300" in words
    assert words[-2:] == ["kubectl=1.30.2-1.1", "kubelet=1.30.2-1.1"]


@pytest.mark.parametrize("pm", [DNF, YUM])
def test_rpm_install(pm: str) -> None:
    command = install(pm, {"kubeadm": RPM})
    assert command.sudo
    assert argv(command) == [
        pm,
        "install",
        "-y",
        "kubeadm-1.30.2-150500.1.1",
        "--disableexcludes=kubernetes",
    ]
    assert "--disableexcludes=k8s" in argv(install(pm, {"kubeadm": RPM}, repo_id="k8s"))


def test_download_only() -> None:
    assert argv(download_only(APT, {"kubeadm": DEB})) == [
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "--download-only",
        "--allow-change-held-packages",
        "-o",
        "DPkg::Lock::Timeout=120",
        "kubeadm=1.30.2-1.1",
    ]
    assert argv(download_only(DNF, {"kubeadm": RPM})) == [
        "dnf",
        "install",
        "-y",
        "--downloadonly",
        "--disableexcludes=kubernetes",
        "kubeadm-1.30.2-150500.1.1",
    ]


def test_refresh() -> None:
    assert argv(refresh(APT)) == [
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "-o",
        "DPkg::Lock::Timeout=120",
        "update",
    ]
    assert argv(refresh(DNF)) == ["dnf", "-y", "makecache", "--refresh"]
    assert refresh(YUM).render(as_root=True) == "yum -y clean expire-cache && yum -y makecache"
    assert all(refresh(pm).sudo for pm in (APT, DNF, YUM))


def test_holds() -> None:
    command = hold(APT, ["kubelet", "kubeadm", "kubeadm"])
    assert command is not None and command.sudo
    assert argv(command) == ["apt-mark", "hold", "kubeadm", "kubelet"]
    command = unhold(APT, ["kubeadm"])
    assert command is not None and argv(command) == ["apt-mark", "unhold", "kubeadm"]
    # RHEL family: exclude= in the repo file is the hold
    assert hold(DNF, ["kubeadm"]) is None and unhold(YUM, ["kubeadm"]) is None
    locked = hold(DNF, ["kubeadm"], versionlock=True)
    assert locked is not None and argv(locked) == ["dnf", "-y", "versionlock", "add", "kubeadm"]
    unlocked = unhold(YUM, ["kubeadm"], versionlock=True)
    assert unlocked is not None
    assert argv(unlocked) == ["yum", "-y", "versionlock", "delete", "*:kubeadm-*"]
    with pytest.raises(ValueError, match="no packages"):
        hold(APT, [])
    with pytest.raises(VersionError):
        hold(APT, ["kubeadm; reboot"])


def test_available_versions_cmd() -> None:
    assert argv(available_versions_cmd(APT, "kubeadm")) == [
        "env",
        "LC_ALL=C",
        "apt-cache",
        "madison",
        "kubeadm",
    ]
    assert argv(available_versions_cmd(DNF, "kubeadm")) == [
        "env",
        "LC_ALL=C",
        "dnf",
        "-q",
        "list",
        "--showduplicates",
        "kubeadm",
        "--disableexcludes=kubernetes",
    ]


def test_no_packages() -> None:
    with pytest.raises(ValueError, match="no packages"):
        install(APT, {})


hostile = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "1.30.2-1.1; reboot",
            "1.30.2-1.1 && id",
            "$(id)",
            "`id`",
            "1.30.2-1.1\nreboot",
            "1.30.2-1.1'",
            '1.30.2-1.1"',
            "-o APT::Get::AllowUnauthenticated=true",
            "1.30.2-1.1 --allow-unauthenticated",
            " 1.30.2-1.1",
            "1.٣٠.2-1.1",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(hostile, st.sampled_from([APT, DNF, YUM]))
def test_hostile_versions_never_produce_a_command(text: str, pm: str) -> None:
    try:
        command = install(pm, {"kubeadm": text})
    except VersionError:
        return
    # Only a well-formed package version of the right style gets through, and then as one word.
    version = parse_package_version(text)
    assert version.style.is_deb == (pm == APT)
    expected = f"kubeadm={version}" if pm == APT else f"kubeadm-{version}"
    assert expected in argv(command)
    assert str(version) == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_hostile_names_never_produce_a_command(name: str) -> None:
    try:
        command = hold(APT, [name])
    except VersionError:
        return
    assert command is not None and argv(command) == ["apt-mark", "hold", name]
    assert name.isascii() and " " not in name and ";" not in name


# --- listings --------------------------------------------------------------------------------

MADISON = """\
   kubeadm | 1.30.2-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages
   kubeadm | 1.30.1-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages
   kubeadm | 1.30.1-1.1 | https://mirror.example/core:/stable:/v1.30/deb  Packages
   kubeadm | 1.30.0-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages
   kubeadm | 1.30.0~rc.1-1.1 | https://pkgs.k8s.io/core:/prerelease:/v1.30/deb  Packages
   kubelet | 1.30.2-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages
N: Unable to locate package foo
"""


def test_parse_madison_inline() -> None:
    assert [str(v) for v in parse_madison(MADISON, "kubeadm")] == [
        "1.30.2-1.1",
        "1.30.1-1.1",
        "1.30.0-1.1",
    ]
    assert len(parse_madison(MADISON)) == 3  # kubelet 1.30.2-1.1 is the same version
    assert parse_madison("") == []


def test_parse_madison_fixture() -> None:
    text = fixture("outputs/apt-cache-madison-kubeadm.pkgs.k8s.io-v1.28.txt")
    versions = parse_madison(text, "kubeadm")
    assert len(versions) == 12
    assert str(versions[0]) == "1.28.11-1.1" and str(versions[-1]) == "1.28.0-1.1"
    assert all(v.style is RepoStyle.PKGS_DEB for v in versions)
    assert str(latest(versions)) == "1.28.11-1.1"
    assert any(str(v) == "1.28.9-2.1" for v in versions)
    assert parse_available(APT, text, "kubeadm") == versions


SHOWDUPLICATES = """\
Last metadata expiration check: 0:00:12 ago on Fri 27 Nov 2026 04:00:00 AM UTC.
Error:
Installed Packages
kubeadm.x86_64                 1.29.3-150500.1.1                 @kubernetes
Available Packages
kubeadm.x86_64                 1.29.0-150500.1.1                 kubernetes
kubeadm.x86_64                 1.29.3-150500.1.1                 kubernetes
kubeadm.x86_64                 0:1.29.4-150500.1.1               kubernetes
kubernetes-cni-plugins-with-a-very-long-name.x86_64
                               1.4.0-150500.1.1                  kubernetes
kubeadm.aarch64                1.29.5-150500.1.1                 kubernetes
"""


def test_parse_showduplicates_inline() -> None:
    assert [str(v) for v in parse_showduplicates(SHOWDUPLICATES, "kubeadm")] == [
        "1.29.3-150500.1.1",
        "1.29.0-150500.1.1",
        "1.29.4-150500.1.1",
        "1.29.5-150500.1.1",
    ]
    wrapped = parse_showduplicates(SHOWDUPLICATES, "kubernetes-cni-plugins-with-a-very-long-name")
    assert [str(v) for v in wrapped] == ["1.4.0-150500.1.1"]


def test_parse_showduplicates_fixture() -> None:
    text = fixture("outputs/yum-list-showduplicates-kubeadm.pkgs.k8s.io-v1.26-excerpt.txt")
    versions = parse_showduplicates(text, "kubeadm")
    assert [v.version.patch for v in versions] == [3, 4, 5, 6, 7, 8, 9]
    assert all(v.style is RepoStyle.PKGS_RPM for v in versions)
    assert str(latest(versions, (1, 26))) == "1.26.9-150500.1.1"
    assert parse_available(DNF, text, "kubeadm") == versions


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("apt-cache-policy-kubeadm.grep-1.11.legacy-apt.txt", "1.11.3-00"),
        ("apt-cache-policy-kubeadm.grep-1.12.legacy-apt.txt", "1.12.1-02"),
        ("apt-cache-policy-kubelet.installed-1.11.2.legacy-apt.txt", "1.11.2-00"),
    ],
)
def test_parse_apt_policy_fixtures(name: str, expected: str) -> None:
    versions = parse_apt_policy_versions(fixture(f"outputs/{name}"))
    assert str(versions[0]) == expected
    assert all(v.style is RepoStyle.LEGACY_DEB for v in versions)


def test_latest_of_nothing() -> None:
    with pytest.raises(VersionError, match=r"in v1\.31"):
        latest([DEB], (1, 31))


# --- repository switch -----------------------------------------------------------------------

APT_LIST = (
    "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg]"
    " https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /\n"
)
YUM_REPO = """\
[kubernetes]
name=Kubernetes
baseurl=https://pkgs.k8s.io/core:/stable:/v1.29/rpm/
enabled=1
gpgcheck=1
gpgkey=https://pkgs.k8s.io/core:/stable:/v1.29/rpm/repodata/repomd.xml.key
exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni
"""


def test_switch_apt_inline() -> None:
    switched = switch_repo(APT, (1, 30), APT_LIST)
    assert switched == APT_LIST.replace("v1.29", "v1.30")
    assert "signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg" in switched
    assert repo_minor(APT, switched) == (1, 30)
    assert switch_repo(APT, parse_version("1.30.2"), APT_LIST) == switched


def test_switch_yum_inline_keeps_gpgkey_and_exclude() -> None:
    switched = switch_repo(DNF, (1, 30), YUM_REPO)
    assert switched.count("v1.30") == 2 and "v1.29" not in switched
    assert "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n" in switched
    assert switched.replace("v1.30", "v1.29") == YUM_REPO


def test_switch_to_the_current_minor_changes_nothing() -> None:
    assert switch_repo(APT, (1, 29), APT_LIST) == APT_LIST


def test_switch_keeps_comments_and_a_missing_final_newline() -> None:
    text = "# was: https://pkgs.k8s.io/core:/stable:/v1.28/deb/ /\n" + APT_LIST.rstrip("\n")
    switched = switch_repo(APT, (1, 30), text)
    assert switched.startswith("# was: https://pkgs.k8s.io/core:/stable:/v1.28/deb/ /\n")
    assert switched.endswith("/v1.30/deb/ /")


def test_switch_deb822_sources() -> None:
    text = (
        "Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.29/deb/\nSuites: /\n"
        "Signed-By: /etc/apt/keyrings/kubernetes-apt-keyring.gpg\n"
    )
    assert switch_repo(APT, (1, 30), text) == text.replace("v1.29", "v1.30")


def test_switch_other_hosts_and_prerelease_channel() -> None:
    text = "deb https://pkgs.kubernetes.io/core:/prerelease:/v1.29/deb/ /\n"
    assert "core:/prerelease:/v1.30/deb/" in switch_repo(APT, (1, 30), text)


@pytest.mark.parametrize(
    ("pm", "text", "message"),
    [
        (APT, YUM_REPO, "needs the deb one"),
        (DNF, APT_LIST, "needs the rpm one"),
        (APT, "", "no pkgs.k8s.io"),
        (APT, "deb http://deb.debian.org/debian bookworm main\n", "no pkgs.k8s.io"),
        (APT, APT_LIST + APT_LIST.replace("v1.29", "v1.30"), "several Kubernetes minors"),
        (APT, "deb https://apt.kubernetes.io/ kubernetes-xenial main\n", "legacy"),
        (DNF, "baseurl=https://pkgs.k8s.io/core:/stable:/v/rpm/\n", "without a usable minor"),
        (DNF, "baseurl=https://pkgs.k8s.io/core:/stable:/v1.029/rpm/\n", "without a usable"),
    ],
)
def test_switch_refusals(pm: str, text: str, message: str) -> None:
    with pytest.raises(VersionError, match=message):
        switch_repo(pm, (1, 30), text)


def test_switch_below_the_first_pkgs_minor() -> None:
    with pytest.raises(VersionError, match=r"v1\.24 and later"):
        switch_repo(APT, (1, 23), APT_LIST)


def _repo_fixture_names() -> list[str]:
    if not REPO_FIXTURES.is_dir():
        return ["(absent)"]
    return sorted(p.name for p in REPO_FIXTURES.iterdir() if p.is_file())


@pytest.mark.parametrize("name", _repo_fixture_names())
def test_switch_every_real_repo_file(name: str) -> None:
    text = fixture(f"apt-yum/{name}")
    pm = APT if name.endswith(".list") or ".list." in name else DNF
    legacy = "legacy" in name or "apt_kubernetes_io" in name
    if legacy:
        with pytest.raises(VersionError) as raised:
            switch_repo(pm, (1, 30), text)
        assert MIGRATION_URL in str(raised.value)
        return
    if "broken-version" in name:
        with pytest.raises(VersionError, match="without a usable minor"):
            switch_repo(pm, (1, 30), text)
        return
    current = repo_minor(pm, text)
    target = (current[0], current[1] + 1)
    switched = switch_repo(pm, target, text)
    assert repo_minor(pm, switched) == target
    old, new = f"/v{current[0]}.{current[1]}/", f"/v{target[0]}.{target[1]}/"
    assert switched.replace(new, old) == text  # every other byte kept
    assert switched != text
    for line in text.splitlines():
        if line.startswith(("exclude=", "gpgcheck=", "enabled=")) or "signed-by=" in line:
            assert (line in switched.splitlines()) or old in line
