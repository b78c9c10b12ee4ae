"""Packaging guards: invoke.yaml matches the defaults, one task tree for invoke and nodeops."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# Dependency floors and safe YAML loading: test_security_deps.py (reliability case 4).


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
