"""Tests for nodeops.platforms: os-release parsing and the OS family registry."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeops.errors import UnsupportedOS
from nodeops.platforms import (
    Platform,
    detect_platform,
    parse_env_file,
    parse_os_release,
)

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
OS_RELEASE_DIR = FIXTURES / "os-release"
OS_RELEASE_FILES = sorted(OS_RELEASE_DIR.glob("*")) if OS_RELEASE_DIR.is_dir() else []
needs_fixtures = pytest.mark.skipif(
    not OS_RELEASE_FILES, reason=f"shared fixtures not found at {OS_RELEASE_DIR}"
)

DEB = ("debian", "apt")
DNF = ("rhel", "dnf")
YUM = ("rhel", "yum")
REFUSED = None

# Every file in ../shared/fixtures/os-release: expected (family, package manager), or
# REFUSED with a word the UnsupportedOS message must contain.
EXPECTED: dict[str, tuple[str, str] | tuple[None, str]] = {
    "almalinux-10.0.os-release": DNF,
    "almalinux-9.4.os-release": DNF,
    "amzn-2.os-release": YUM,
    "amzn-2023.os-release": DNF,
    "amzn-ami-2016.03.os-release": YUM,
    "centos-7.os-release": YUM,
    "centos-8.os-release": DNF,
    "centos-stream-8.os-release": DNF,
    "centos-stream-9.os-release": DNF,
    "coreos-899.15.0.os-release": (None, "immutable"),
    "debian-10.os-release": DEB,
    "debian-11.os-release": DEB,
    "debian-12.os-release": DEB,
    "debian-13.os-release": DEB,
    "fedora-30.os-release": DNF,
    "fedora-42.os-release": DNF,
    "flatcar-3139.2.0.os-release": (None, "immutable"),
    "opensuse-leap-15.2.os-release": (None, "zypper"),
    "opensuse-leap-15.4.os-release": (None, "zypper"),
    "oraclelinux-7.5.os-release": YUM,
    "rhel-7.0.os-release": YUM,
    "rhel-8.7.os-release": DNF,
    "rhel-9.4.os-release": DNF,
    "rhel-9.6.os-release": DNF,
    "rocky-8.4.os-release": DNF,
    "rocky-9.3.os-release": DNF,
    "sles-12-sp1.os-release": (None, "zypper"),
    "ubuntu-16.04.os-release": DEB,
    "ubuntu-18.04.os-release": DEB,
    "ubuntu-20.04.5-kubeadm-controlplane.os-release": DEB,
    "ubuntu-20.04.os-release": DEB,
    "ubuntu-22.04.os-release": DEB,
    "ubuntu-24.04.os-release": DEB,
}


@needs_fixtures
def test_every_os_release_fixture_has_an_expectation() -> None:
    names = {path.name for path in OS_RELEASE_FILES}
    assert names - EXPECTED.keys() == set(), "add the new fixture to EXPECTED"


@needs_fixtures
@pytest.mark.parametrize("path", OS_RELEASE_FILES, ids=lambda p: p.name)
def test_os_release_fixture(path: Path) -> None:
    fields = parse_os_release(path.read_text(encoding="utf-8"))
    expected = EXPECTED[path.name]
    if expected[0] is None:
        with pytest.raises(UnsupportedOS) as caught:
            detect_platform(fields)
        message = str(caught.value)
        assert message.startswith("unsupported OS: ")
        assert expected[1] in message
        assert fields["PRETTY_NAME"] in message and fields["ID"] in message
    else:
        platform = detect_platform(fields)
        assert (platform.family, platform.package_manager) == expected
        assert platform.id == fields["ID"]
        assert platform.version_id == fields["VERSION_ID"]
        assert platform.pretty_name == fields["PRETTY_NAME"]


@needs_fixtures
@pytest.mark.parametrize("path", OS_RELEASE_FILES, ids=lambda p: p.name)
def test_os_release_fixture_parses_like_sh(path: Path) -> None:
    """os-release is shell-compatible: sourcing it in sh gives the same values."""
    keys = ["ID", "ID_LIKE", "VERSION_ID", "PRETTY_NAME", "NAME", "VERSION"]
    script = '. "$1"; for k in ' + " ".join(keys) + '; do eval "printf \'%s\\0\' \\"\\$$k\\""; done'
    out = subprocess.run(
        ["sh", "-c", script, "sh", str(path)], capture_output=True, text=True, check=True
    ).stdout
    from_sh = dict(zip(keys, out.split("\0")[:-1], strict=True))
    parsed = parse_os_release(path.read_text(encoding="utf-8"))
    assert {k: parsed.get(k, "") for k in keys} == from_sh


# --- parse_os_release on inline samples --------------------------------------------------

UBUNTU_2204 = """\
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
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

CENTOS_7 = """\
NAME="CentOS Linux"
VERSION="7 (Core)"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="7"
PRETTY_NAME="CentOS Linux 7 (Core)"

"""

COREOS_NO_NEWLINE = 'NAME=CoreOS\nID=coreos\nVERSION_ID=899.15.0\nPRETTY_NAME="CoreOS 899.15.0"'


def test_parse_inline_ubuntu() -> None:
    fields = parse_os_release(UBUNTU_2204)
    assert fields["ID"] == "ubuntu"
    assert fields["VERSION_ID"] == "22.04"
    assert fields["PRETTY_NAME"] == "Ubuntu 22.04.4 LTS"
    assert fields["VERSION_CODENAME"] == "jammy"


def test_parse_without_trailing_newline() -> None:
    assert parse_os_release(COREOS_NO_NEWLINE)["PRETTY_NAME"] == "CoreOS 899.15.0"


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ('A="double quoted"', "double quoted"),
        ("A='single quoted'", "single quoted"),
        ("A=unquoted", "unquoted"),
        (
            'A="a \\"quote\\" and \\$dollar \\`tick\\` \\\\slash"',
            'a "quote" and $dollar `tick` \\slash',
        ),
        ('A="keep \\n as is"', "keep \\n as is"),
        ("A='no \\escapes here'", "no \\escapes here"),
        ("A=esc\\ aped", "esc aped"),
        ('A="trailing spaces after quote"    ', "trailing spaces after quote"),
        ("A=trailing blanks   \t", "trailing blanks"),
        ("  A = spaced  ", "spaced"),
        ("A=", ""),
        ('A=""', ""),
        ("A=\"con\"'cat'", "concat"),
        ("A=x=y", "x=y"),
        ('A="unterminated', "unterminated"),
        ('A="multi\nline"', "multi\nline"),
        ("A=line \\\ncontinued", "line continued"),
        ("A=crlf\r\n", "crlf"),
    ],
)
def test_parse_value_forms(line: str, value: str) -> None:
    assert parse_env_file(line) == {"A": value}


def test_parse_skips_comments_blanks_and_junk() -> None:
    text = "# a comment\n; another\n\n   \nnot an assignment\n1BAD=x\nBAD KEY=x\nGOOD=yes\n# end"
    assert parse_env_file(text) == {"GOOD": "yes"}


def test_last_assignment_wins() -> None:
    assert parse_env_file("ID=one\nID=two\n") == {"ID": "two"}


def test_comment_with_escaped_newline_still_ends_at_the_line() -> None:
    assert parse_env_file("# comment \\\nID=x\n") == {"ID": "x"}


_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"),
    max_size=40,
)
_keys = st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True)


def _quote(value: str) -> str:
    escaped = "".join("\\" + c if c in '"\\`$' else c for c in value)
    return f'"{escaped}"'


@given(st.dictionaries(_keys, _values, max_size=8))
def test_round_trip_of_double_quoted_values(fields: dict[str, str]) -> None:
    text = "".join(f"{k}={_quote(v)}\n" for k, v in fields.items())
    assert parse_os_release(text) == fields


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(_keys, _values, min_size=1, max_size=4))
def test_round_trip_matches_a_real_sh(fields: dict[str, str]) -> None:
    text = "".join(f"{k}={_quote(v)}\n" for k, v in fields.items())
    keys = list(fields)
    script = text + "".join(f"printf '%s\\0' \"${k}\";" for k in keys)
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout
    from_sh = dict(zip(keys, out.decode().split("\0")[:-1], strict=True))
    assert parse_os_release(text) == from_sh == fields


@given(st.text(max_size=300))
def test_parse_never_raises(text: str) -> None:
    parse_env_file(text)


# --- detect_platform on inline samples ----------------------------------------------------


def test_ubuntu_is_debian_apt() -> None:
    assert detect_platform(parse_os_release(UBUNTU_2204)) == Platform(
        id="ubuntu",
        version_id="22.04",
        pretty_name="Ubuntu 22.04.4 LTS",
        family="debian",
        package_manager="apt",
    )


def test_rocky_is_rhel_dnf() -> None:
    platform = detect_platform(parse_os_release(ROCKY_93))
    assert (platform.id, platform.family, platform.package_manager) == ("rocky", "rhel", "dnf")


def test_centos_7_is_yum() -> None:
    assert detect_platform(parse_os_release(CENTOS_7)).package_manager == "yum"


def test_has_dnf_overrides_the_table() -> None:
    centos7 = parse_os_release(CENTOS_7)
    rocky = parse_os_release(ROCKY_93)
    assert detect_platform(centos7, has_dnf=True).package_manager == "dnf"
    assert detect_platform(rocky, has_dnf=False).package_manager == "yum"
    assert detect_platform(rocky, has_dnf=None).package_manager == "dnf"


def test_has_dnf_is_ignored_on_debian() -> None:
    assert detect_platform(parse_os_release(UBUNTU_2204), has_dnf=True).package_manager == "apt"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"ID": "ubuntu", "VERSION_ID": "14.04", "PRETTY_NAME": "Ubuntu 14.04.5 LTS"},
            "unsupported OS: Ubuntu 14.04 (nodeops needs Ubuntu 16.04 or newer)",
        ),
        (
            {"ID": "debian", "VERSION_ID": "8", "PRETTY_NAME": "Debian GNU/Linux 8 (jessie)"},
            "unsupported OS: Debian 8 (nodeops needs Debian 9 or newer)",
        ),
        (
            {"ID": "centos", "ID_LIKE": "rhel fedora", "VERSION_ID": "6"},
            "unsupported OS: CentOS 6 (nodeops needs CentOS 7 or newer)",
        ),
        (
            {"ID": "rhel", "VERSION_ID": "6.10", "PRETTY_NAME": "RHEL 6.10"},
            "unsupported OS: RHEL 6.10 (nodeops needs RHEL 7 or newer)",
        ),
    ],
)
def test_too_old_releases_are_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(UnsupportedOS) as caught:
        detect_platform(fields)
    assert str(caught.value) == message


def test_old_el_derivative_is_refused_by_its_el_release() -> None:
    scientific = {
        "ID": "scientific",
        "ID_LIKE": "rhel centos fedora",
        "VERSION_ID": "6.9",
        "PRETTY_NAME": "Scientific Linux 6.9",
        "PLATFORM_ID": "platform:el6",
    }
    with pytest.raises(UnsupportedOS, match="Enterprise Linux 7 or newer"):
        detect_platform(scientific)


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ({"ID": "alpine", "VERSION_ID": "3.19.1", "PRETTY_NAME": "Alpine Linux v3.19"}, "apk"),
        ({"ID": "opensuse-tumbleweed", "ID_LIKE": "opensuse suse"}, "zypper"),
        ({"ID": "sles", "VERSION_ID": "15.5", "PRETTY_NAME": "SUSE Linux Enterprise 15"}, "zypper"),
        ({"ID": "rhcos", "ID_LIKE": "rhel fedora", "VERSION_ID": "4.14"}, "immutable"),
        ({"ID": "fedora", "VARIANT_ID": "coreos", "VERSION_ID": "39"}, "immutable"),
        ({"ID": "arch", "PRETTY_NAME": "Arch Linux"}, "Debian and Ubuntu"),
        ({"NAME": "Linux"}, "ID=linux"),
    ],
)
def test_refused_systems_name_themselves(fields: dict[str, str], word: str) -> None:
    with pytest.raises(UnsupportedOS) as caught:
        detect_platform(fields)
    message = str(caught.value)
    assert message.startswith("unsupported OS: ")
    assert word in message
    assert f"ID={fields.get('ID', 'linux')}" in message


def test_missing_os_release_is_refused() -> None:
    with pytest.raises(UnsupportedOS, match="no /etc/os-release"):
        detect_platform({})


def test_derivatives_match_on_id_like() -> None:
    mint = {"ID": "linuxmint", "ID_LIKE": "ubuntu debian", "VERSION_ID": "21.3"}
    assert detect_platform(mint).family == "debian"
    euro = {"ID": "eurolinux", "ID_LIKE": "rhel fedora centos", "VERSION_ID": "9.2"}
    assert (detect_platform(euro).family, detect_platform(euro).package_manager) == DNF
    old = {"ID": "eurolinux", "ID_LIKE": "rhel fedora centos", "VERSION_ID": "7.9"}
    assert detect_platform(old).package_manager == "yum"


def test_debian_testing_without_version_id_is_supported() -> None:
    sid = {"ID": "debian", "PRETTY_NAME": "Debian GNU/Linux trixie/sid", "NAME": "Debian"}
    platform = detect_platform(sid)
    assert (platform.family, platform.version_id) == ("debian", "")


@pytest.mark.parametrize(
    ("version", "manager"),
    [("2016.03", "yum"), ("2018.03", "yum"), ("2", "yum"), ("2022", "dnf"), ("2023", "dnf")],
)
def test_amazon_linux_releases(version: str, manager: str) -> None:
    amzn = {"ID": "amzn", "ID_LIKE": "centos rhel fedora", "VERSION_ID": version}
    assert detect_platform(amzn).package_manager == manager


@pytest.mark.parametrize(("version", "manager"), [("21", "yum"), ("22", "dnf"), ("40", "dnf")])
def test_fedora_releases(version: str, manager: str) -> None:
    assert detect_platform({"ID": "fedora", "VERSION_ID": version}).package_manager == manager


def test_id_wins_over_id_like() -> None:
    # ID_LIKE names a refused family, but the ID itself is known: first match wins.
    odd = {"ID": "ubuntu", "ID_LIKE": "suse", "VERSION_ID": "22.04"}
    assert detect_platform(odd).family == "debian"


@given(
    st.dictionaries(
        st.sampled_from(
            ["ID", "ID_LIKE", "VERSION_ID", "PLATFORM_ID", "VARIANT_ID", "PRETTY_NAME", "NAME"]
        ),
        st.text(max_size=20),
    )
)
def test_detect_platform_raises_only_unsupported_os(fields: dict[str, str]) -> None:
    try:
        platform = detect_platform(fields)
    except UnsupportedOS:
        return
    assert platform.family in {"debian", "rhel"}
    assert platform.package_manager in {"apt", "dnf", "yum"}
