"""/version as kube-apiserver reports it (k8s.io/apimachinery/pkg/version.Info)."""

from __future__ import annotations

import hashlib
import os
import platform
import re
from typing import Any

DEFAULT_VERSION = "v1.29.0"
# Go releases upstream built each minor with (close enough for goVersion).
_GO = {27: "go1.20.13", 28: "go1.21.9", 29: "go1.21.5", 30: "go1.22.2", 31: "go1.22.5",
       32: "go1.23.3", 33: "go1.24.2"}  # fmt: skip


def component_version() -> str:
    """This component's version: env NODEOPS_COMPONENT_VERSION (from the image tag)."""
    return os.environ.get("NODEOPS_COMPONENT_VERSION") or DEFAULT_VERSION


def version_info(git_version: str) -> dict[str, Any]:
    """The /version document for `git_version` (e.g. v1.29.0)."""
    m = re.match(r"^v(\d+)\.(\d+)", git_version)
    major, minor = (m.group(1), m.group(2)) if m else ("", "")
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    info: dict[str, Any] = {"major": major, "minor": minor}
    if minor and int(minor) >= 33:
        info.update(
            emulationMajor=major,
            emulationMinor=minor,
            minCompatibilityMajor=major,
            minCompatibilityMinor=str(int(minor) - 1),
        )
    info.update(
        gitVersion=git_version,
        gitCommit=hashlib.sha1(git_version.encode()).hexdigest(),  # noqa: S324 - a fake commit id
        gitTreeState="clean",
        buildDate="2024-01-01T00:00:00Z",
        goVersion=_GO.get(int(minor) if minor else 0, "go1.22.0"),
        compiler="gc",
        platform=f"linux/{arch}",
    )
    return info
