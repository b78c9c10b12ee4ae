"""Case 4, dependency floor: declared and installed versions carry the security fixes, and
PyYAML is only ever used through safe loading (an AST scan, so comments and strings do not
count and aliases do)."""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from yaml.constructor import BaseConstructor, FullConstructor

ROOT = Path(__file__).resolve().parents[2]

# The lowest version that carries the fix each floor exists for.
FLOORS = {
    "paramiko": (3, 4, 0),  # Terrapin, CVE-2023-48795
    "jinja2": (3, 1, 6),  # sandbox escapes up to CVE-2025-27516
    "pyyaml": (5, 4),  # CVE-2020-14343
}

# Names that load arbitrary Python objects, or that are only ever used to do so.
_UNSAFE_FUNCTIONS = {"full_load", "full_load_all", "unsafe_load", "unsafe_load_all"}
_UNSAFE_NAMES = {
    *_UNSAFE_FUNCTIONS,
    "Loader",
    "FullLoader",
    "UnsafeLoader",
    "CLoader",
    "CFullLoader",
    "CUnsafeLoader",
    "Constructor",
    "FullConstructor",
    "UnsafeConstructor",
}
_LOADING = {"load", "load_all"}


def _floor(spec: str) -> tuple[int, ...] | None:
    match = re.search(r">=\s*([0-9.]+)", spec)
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def _numbers(text: str, count: int) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:count])


def is_safe_loader(cls: object) -> bool:
    """A Loader class that builds only plain data (SafeLoader, CSafeLoader, BaseLoader, kin)."""
    return (
        isinstance(cls, type)
        and issubclass(cls, BaseConstructor)
        and not issubclass(cls, FullConstructor)
    )


def yaml_offences(source: str, resolve: Callable[[str], object]) -> list[int]:
    """Line numbers where source loads YAML unsafely. `resolve(name)` gives the object a bare
    name stands for in the module (to judge a custom Loader class)."""
    tree = ast.parse(source)
    modules = {"yaml"}  # names the yaml module is bound to (`import yaml as y`)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "yaml"}
    offences: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "yaml":
            if any(a.name in _UNSAFE_NAMES | _LOADING for a in node.names):
                offences.add(node.lineno)
        elif isinstance(node, ast.Attribute) and _is_module(node.value, modules):
            if node.attr in _UNSAFE_NAMES:
                offences.add(node.lineno)
        elif _is_loading_call(node, modules):
            assert isinstance(node, ast.Call)
            loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
            if loader is None and len(node.args) > 1:
                loader = node.args[1]
            if not is_safe_loader(_loader_class(loader, modules, resolve)):
                offences.add(node.lineno)
    return sorted(offences)


def _is_loading_call(node: ast.AST, modules: set[str]) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _LOADING
        and _is_module(node.func.value, modules)
    )


def _is_module(node: ast.expr, modules: set[str]) -> bool:
    return isinstance(node, ast.Name) and node.id in modules


def _loader_class(
    node: ast.expr | None, modules: set[str], resolve: Callable[[str], object]
) -> object:
    if isinstance(node, ast.Attribute) and _is_module(node.value, modules):
        return getattr(yaml, node.attr, None)
    if isinstance(node, ast.Name):
        return resolve(node.id)
    return None


def _sources() -> list[Path]:
    return [*sorted(ROOT.glob("nodeops/**/*.py")), ROOT / "tasks.py"]


def _module_resolver(path: Path) -> Callable[[str], object]:
    def resolve(name: str) -> object:
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        return getattr(importlib.import_module(dotted), name, None)

    return resolve


def test_case_04_declared_floors_hold_the_security_fixes() -> None:
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


def test_case_04_installed_versions_are_above_the_floors() -> None:
    for name, fixed in FLOORS.items():
        installed = _numbers(version(name), len(fixed))
        assert installed >= fixed, f"{name} {version(name)} is older than {fixed}"


def test_case_04_yaml_is_only_ever_loaded_safely() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _sources()
        for line in yaml_offences(path.read_text(), _module_resolver(path))
    ]
    assert offenders == []
    assert len(_sources()) > 50  # the scan really read the package


class _Strict(yaml.SafeLoader):
    pass


@pytest.mark.parametrize(
    "source",
    [
        "import yaml\nyaml.load(text)\n",
        "import yaml\nyaml.load(text, Loader=yaml.Loader)\n",
        "import yaml\nyaml.load(text, yaml.FullLoader)\n",
        "import yaml\nyaml.load_all(text, Loader=yaml.CLoader)\n",
        "import yaml\nyaml.unsafe_load(text)\n",
        "import yaml\nyaml.full_load(text)\n",
        "import yaml as y\ny.load(text)\n",
        "import yaml as y\ny.load(text, Loader=y.UnsafeLoader)\n",
        "from yaml import load\nload(text)\n",
        "from yaml import unsafe_load as u\nu(text)\n",
        "from yaml import Loader\n",
        "import yaml\nclass L(yaml.UnsafeLoader): ...\n",
        "import yaml\nyaml.load(text, Loader=Unknown)\n",
    ],
)
def test_case_04_the_scan_catches_unsafe_loading(source: str) -> None:
    assert yaml_offences(source, lambda name: None) != []


@pytest.mark.parametrize(
    "source",
    [
        "import yaml\nyaml.safe_load(text)\nyaml.safe_load_all(text)\n",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)\n",
        "import yaml\nyaml.load(text, yaml.CSafeLoader)\n",
        "import yaml\nyaml.load(text, Loader=_Strict)\n",
        "import yaml\nclass S(yaml.SafeLoader): ...\n",
        "# yaml.load(text) in a comment\ns = 'yaml.unsafe_load(x)'\n",
        "import json\njson.load(handle)\n",
    ],
)
def test_case_04_the_scan_accepts_safe_loading(source: str) -> None:
    assert yaml_offences(source, {"_Strict": _Strict}.get) == []
