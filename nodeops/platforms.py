"""Platforms: which OS family a node runs and which package manager drives it.

The registry is an ordered table; the node's os-release `ID` is looked up first, then each
word of `ID_LIKE`, and the first entry that matches wins. Refusals come before families so
that, for example, Red Hat CoreOS (`ID_LIKE="rhel fedora"`) is refused rather than treated
as RHEL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from nodeops.errors import UnsupportedOS

DEBIAN = "debian"
RHEL = "rhel"
APT = "apt"
DNF = "dnf"
YUM = "yum"


# --- os-release(5) ---------------------------------------------------------------------

_NEWLINE = "\n\r"
_WHITESPACE = " \t\n\r"
_COMMENTS = "#;"
_SHELL_NEED_ESCAPE = '"\\`$'
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env_file(text: str) -> dict[str, str]:
    """Parse KEY=value lines the way systemd reads os-release and EnvironmentFile= files.

    A port of systemd's `parse_env_file()` state machine: `#`/`;` comments, blank lines,
    single quotes (literal), double quotes (backslash escapes only `"`, `\\`, `` ` ``, `$`),
    unquoted values (backslash escapes any character, trailing blanks dropped), backslash-
    newline continuations, and a missing final newline. Lines that are not assignments
    and keys that are not variable names are skipped; the last assignment of a key wins.
    """
    result: dict[str, str] = {}
    state = "pre_key"
    key: list[str] = []
    value: list[str] = []
    key_ws: int | None = None  # index where trailing whitespace of the key begins
    value_ws: int | None = None  # same for an unquoted value

    def push() -> None:
        name = "".join(key[:key_ws] if key_ws is not None else key)
        if _ENV_NAME.fullmatch(name):
            result[name] = "".join(value)

    for c in text:
        if state == "pre_key":
            if c in _COMMENTS:
                state = "comment"
            elif c not in _WHITESPACE:
                state, key, value, key_ws = "key", [c], [], None
        elif state == "key":
            if c in _NEWLINE:
                state = "pre_key"
            elif c == "=":
                state, value_ws = "pre_value", None
            else:
                if c not in _WHITESPACE:
                    key_ws = None
                elif key_ws is None:
                    key_ws = len(key)
                key.append(c)
        elif state == "pre_value":
            if c in _NEWLINE:
                push()
                state = "pre_key"
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif c not in _WHITESPACE:
                state = "value"
                value.append(c)
        elif state == "value":
            if c in _NEWLINE:
                if value_ws is not None:
                    del value[value_ws:]
                push()
                state = "pre_key"
            elif c == "\\":
                state, value_ws = "value_escape", None
            else:
                if c not in _WHITESPACE:
                    value_ws = None
                elif value_ws is None:
                    value_ws = len(value)
                value.append(c)
        elif state == "value_escape":
            state = "value"
            if c not in _NEWLINE:  # an escaped newline continues the line
                value.append(c)
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value.append(c)
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value.append(c)
        elif state == "double_escape":
            state = "double"
            if c in _SHELL_NEED_ESCAPE:
                value.append(c)
            elif c != "\n":
                value.extend(("\\", c))
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c in _NEWLINE:
                state = "pre_key"
        else:  # comment_escape
            state = "pre_key" if c in _NEWLINE else "comment"

    if state in {"pre_value", "value", "value_escape", "single", "double", "double_escape"}:
        if state == "value" and value_ws is not None:
            del value[value_ws:]
        push()
    return result


def parse_os_release(text: str) -> dict[str, str]:
    """Parse /etc/os-release (os-release(5)) into a dict of its fields."""
    return parse_env_file(text)


# --- the registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    """A supported node OS: what os-release says, its family and its package manager."""

    id: str
    version_id: str
    pretty_name: str
    family: str  # "debian" | "rhel"
    package_manager: str  # "apt" | "dnf" | "yum"


@dataclass(frozen=True)
class FamilyRule:
    """One registry entry: os-release IDs, and the family they join or why they are refused."""

    ids: frozenset[str]
    family: str | None = None
    reason: str = ""


_IMMUTABLE = (
    "an immutable OS without a package manager that the kubeadm install docs cover;"
    " nodeops upgrades kubeadm clusters through apt, dnf or yum"
)

REGISTRY: tuple[FamilyRule, ...] = (
    FamilyRule(frozenset({"coreos", "flatcar", "fedora-coreos", "rhcos"}), reason=_IMMUTABLE),
    FamilyRule(
        frozenset(
            {
                "suse",
                "sles",
                "sles_sap",
                "sled",
                "sle-micro",
                "opensuse",
                "opensuse-leap",
                "opensuse-tumbleweed",
                "opensuse-microos",
            }
        ),
        reason="SUSE-family systems use zypper, which nodeops does not drive",
    ),
    FamilyRule(
        frozenset({"alpine"}),
        reason="Alpine uses apk, and the Kubernetes project publishes no kubeadm packages for it",
    ),
    FamilyRule(frozenset({"ubuntu", "debian"}), family=DEBIAN),
    FamilyRule(
        frozenset({"rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn"}), family=RHEL
    ),
)

# Oldest release per os-release ID that kubeadm packages still install on.
MINIMUM_VERSIONS: Mapping[str, tuple[str, str]] = {
    "ubuntu": ("Ubuntu", "16.04"),
    "debian": ("Debian", "9"),
    "rhel": ("RHEL", "7"),
    "centos": ("CentOS", "7"),
    "ol": ("Oracle Linux", "7"),
    "rocky": ("Rocky Linux", "8"),
    "almalinux": ("AlmaLinux", "8"),
}

# Fedora variants built on rpm-ostree: no dnf to install or hold packages with.
_OSTREE_VARIANTS = frozenset({"coreos", "silverblue", "kinoite", "iot", "sericea", "onyx"})

_NUMERIC = re.compile(r"\d+(?:\.\d+)*")
_EL_PLATFORM = re.compile(r"platform:el(\d+)")


def _version_tuple(text: str) -> tuple[int, ...] | None:
    match = _NUMERIC.match(text.strip())
    if not match:
        return None
    return tuple(int(part) for part in match.group().split("."))


def _describe(os_release: Mapping[str, str]) -> str:
    os_id = os_release.get("ID", "linux")
    name = (
        os_release.get("PRETTY_NAME")
        or " ".join(filter(None, (os_release.get("NAME"), os_release.get("VERSION_ID"))))
        or os_id
    )
    return f"{name} (ID={os_id})"


def _refuse(os_release: Mapping[str, str], reason: str) -> UnsupportedOS:
    return UnsupportedOS(f"unsupported OS: {_describe(os_release)}: {reason}")


def _match(candidates: list[str]) -> tuple[str, FamilyRule] | None:
    for candidate in candidates:
        for rule in REGISTRY:
            if candidate in rule.ids:
                return candidate, rule
    return None


def _el_major(os_release: Mapping[str, str], base: str) -> int | None:
    """The Enterprise Linux major release of a RHEL-like system, if it can be told."""
    platform_id = _EL_PLATFORM.fullmatch(os_release.get("PLATFORM_ID", "").strip())
    if platform_id:
        return int(platform_id.group(1))
    if base in {"rhel", "centos", "rocky", "almalinux", "ol"}:
        version = _version_tuple(os_release.get("VERSION_ID", ""))
        return version[0] if version else None
    return None


def _rhel_package_manager(os_release: Mapping[str, str], base: str) -> str:
    version = _version_tuple(os_release.get("VERSION_ID", ""))
    major = version[0] if version else None
    if base == "amzn":
        # Amazon Linux 2023 (and the 2022 previews) ship dnf; Amazon Linux 2 and the
        # 20xx.yy AMIs ship yum. A missing VERSION_ID means a current release.
        return DNF if major is None or major >= 2022 else YUM
    if base == "fedora" and _EL_PLATFORM.fullmatch(os_release.get("PLATFORM_ID", "")) is None:
        return DNF if major is None or major >= 22 else YUM
    el = _el_major(os_release, base)
    return DNF if el is None or el >= 8 else YUM


def detect_platform(os_release: Mapping[str, str], *, has_dnf: bool | None = None) -> Platform:
    """The Platform of a node from its os-release fields, or UnsupportedOS saying why not.

    `has_dnf`, when given (from probing the node for a `dnf` command), overrides the
    release table's choice between dnf and yum on RHEL-family systems.
    """
    if not os_release:
        raise UnsupportedOS(
            "unsupported OS: no /etc/os-release, or it is empty (nodeops reads it to tell"
            " Debian/Ubuntu nodes from RHEL-family ones)"
        )
    os_id = os_release.get("ID", "linux").strip().lower() or "linux"
    like = os_release.get("ID_LIKE", "").lower().split()
    matched = _match([os_id, *like])
    if matched is None:
        raise _refuse(
            os_release,
            "nodeops supports Debian and Ubuntu (apt) and RHEL-family systems (dnf or yum)",
        )
    base, rule = matched
    if rule.family is None:
        raise _refuse(os_release, rule.reason)

    version_id = os_release.get("VERSION_ID", "").strip()
    minimum = MINIMUM_VERSIONS.get(os_id)
    if minimum is not None:
        label, oldest = minimum
        have, need = _version_tuple(version_id), _version_tuple(oldest)
        if have is not None and need is not None and have < need:
            raise UnsupportedOS(
                f"unsupported OS: {label} {version_id} (nodeops needs {label} {oldest} or newer)"
            )

    if rule.family == DEBIAN:
        package_manager = APT
    else:
        variant = os_release.get("VARIANT_ID", "").strip().lower()
        if variant in _OSTREE_VARIANTS:
            raise _refuse(os_release, f"the {variant} variant is {_IMMUTABLE}")
        el = _el_major(os_release, base)
        if el is not None and el < 7 and minimum is None:
            raise UnsupportedOS(
                f"unsupported OS: {_describe(os_release)} is Enterprise Linux {el}"
                " (nodeops needs Enterprise Linux 7 or newer)"
            )
        package_manager = _rhel_package_manager(os_release, base)
        if has_dnf is not None:
            package_manager = DNF if has_dnf else YUM

    pretty = (
        os_release.get("PRETTY_NAME")
        or " ".join(filter(None, (os_release.get("NAME"), version_id)))
        or os_id
    )
    return Platform(
        id=os_id,
        version_id=version_id,
        pretty_name=pretty,
        family=rule.family,
        package_manager=package_manager,
    )


_FOREIGN_TOOLS = {DEBIAN: ("dnf", "yum"), RHEL: ("apt-get",)}


def check_package_managers(platform: Platform, tools: Mapping[str, str]) -> None:
    """Refuse a node that has the other family's package manager beside its own.

    With apt-get and yum (or dnf) both installed, the Kubernetes packages may belong to
    either database, so nodeops would not know which one to pin, hold or upgrade.
    `tools` maps a tool name to its path, as the facts' tools probe reports it.
    """
    foreign = [
        f"{name} ({tools[name]})" for name in _FOREIGN_TOOLS[platform.family] if name in tools
    ]
    if foreign:
        own = "apt-get" if platform.family == DEBIAN else platform.package_manager
        raise UnsupportedOS(
            f"unsupported OS: {platform.pretty_name} (ID={platform.id}) has {own} and also"
            f" {' and '.join(foreign)}; nodeops cannot tell which package manager owns the"
            " Kubernetes packages, so it leaves the node alone"
        )
