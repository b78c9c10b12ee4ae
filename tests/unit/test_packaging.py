"""Packaging guards: dependency floors with the security fixes, safe YAML only, one task tree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# The lowest version that carries the fix each floor exists for.
FLOORS = {
    "paramiko": (3, 4, 0),  # Terrapin, CVE-2023-48795
    "jinja2": (3, 1, 6),  # sandbox escapes up to CVE-2025-27516
    "pyyaml": (5, 4),  # CVE-2020-14343
}


def _floor(spec: str) -> tuple[int, ...] | None:
    match = re.search(r">=\s*([0-9.]+)", spec)
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def test_dependency_floors_hold_the_security_fixes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].lower(): d for d in project["dependencies"]
    }
    for name, fixed in FLOORS.items():
        assert name in declared, f"{name} is not a declared dependency"
        floor = _floor(declared[name])
        assert floor is not None and floor >= fixed, (
            f"{declared[name]} allows a version before {fixed}"
        )
    assert project["requires-python"] == ">=3.11"


def test_installed_versions_are_above_the_floors() -> None:
    from importlib.metadata import version

    for name, fixed in FLOORS.items():
        installed = tuple(int(p) for p in re.findall(r"\d+", version(name))[: len(fixed)])
        assert installed >= fixed, f"{name} {version(name)} is older than {fixed}"


def test_yaml_is_only_ever_loaded_safely() -> None:
    """No yaml.load/full_load/unsafe_load; a custom Loader must derive from SafeLoader."""
    import ast
    import importlib

    offenders = []
    for path in [*ROOT.glob("nodeops/**/*.py"), ROOT / "tasks.py"]:
        tree = ast.parse(path.read_text())
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            if call.func.attr in {"full_load", "full_load_all", "unsafe_load", "unsafe_load_all"}:
                offenders.append(f"{path.name}:{call.lineno}")
            if (
                call.func.attr in {"load", "load_all"}
                and getattr(call.func.value, "id", "") == "yaml"
            ):
                loader = next((k.value for k in call.keywords if k.arg == "Loader"), None)
                module = importlib.import_module(
                    ".".join(path.relative_to(ROOT).with_suffix("").parts)
                )
                cls = getattr(module, loader.id, None) if isinstance(loader, ast.Name) else None
                if not (isinstance(cls, type) and issubclass(cls, yaml.SafeLoader)):
                    offenders.append(f"{path.name}:{call.lineno}")
    assert offenders == []


def test_invoke_yaml_matches_the_built_in_defaults() -> None:
    from nodeops.settings import DEFAULTS

    shipped = yaml.safe_load((ROOT / "invoke.yaml").read_text())["nodeops"]
    assert shipped == DEFAULTS


def test_invoke_and_nodeops_serve_the_same_task_tree() -> None:
    import importlib.util

    from nodeops.cli import program

    spec = importlib.util.spec_from_file_location("repo_tasks", ROOT / "tasks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ns is program.namespace
    names = set(program.namespace.task_names)
    assert {"facts", "run", "lab.up", "lab.down", "lab.status", "lab.ssh"} <= names
