"""The simulated apt's archives cache: apt-get keeps the .debs it installed, `apt` does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_sim_pkg import apt_repo, node, run_apt

ARCHIVES = "var/cache/apt/archives"


def _debs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / ARCHIVES).glob("*.deb"))


@pytest.mark.parametrize(
    ("tool", "options", "kept"),
    [
        ("apt-get", (), True),
        ("apt", (), False),  # Binary::apt::APT::Keep-Downloaded-Packages "false"
        ("apt", ("-o", "APT::Keep-Downloaded-Packages=true"), True),
        ("apt-get", ("-o", "APT::Keep-Downloaded-Packages=false"), False),
    ],
)
def test_installed_archives_stay_in_the_cache_as_apt_keep_downloaded_packages_says(
    tmp_path: Path, tool: str, options: tuple[str, ...], kept: bool
) -> None:
    root = node(tmp_path, "ubuntu-24.04")
    apt_repo(root, "1.31")
    run_apt(root, "apt-get", "update")
    code, _, err = run_apt(root, tool, "install", "-y", *options, "kubeadm=1.31.4-*")
    assert code == 0, err
    assert _debs(root) == (
        ["cri-tools_1.31.1-1.1_amd64.deb", "kubeadm_1.31.4-1.1_amd64.deb"] if kept else []
    )


def test_a_second_install_after_apt_get_finds_its_archives(tmp_path: Path) -> None:
    # Staged once (download-only), installed, then installed again after a removal: nothing
    # is fetched again, as a real apt-get's cache would have it.
    root = node(tmp_path, "ubuntu-24.04")
    apt_repo(root, "1.31")
    run_apt(root, "apt-get", "update")
    run_apt(root, "apt-get", "install", "-y", "--download-only", "kubeadm=1.31.4-*")
    assert run_apt(root, "apt-get", "install", "-y", "kubeadm=1.31.4-*")[0] == 0
    assert run_apt(root, "apt-get", "remove", "-y", "kubeadm")[0] == 0
    code, out, _ = run_apt(root, "apt-get", "install", "-y", "kubeadm=1.31.4-*")
    assert code == 0 and "Get:" not in out
