"""The simulated tools start light: no `site`, none of the host-side lab code imported, and
the import path they need passed on from one simulated program to the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from nodeops.lab.sim import SOURCE_ROOT, module_argv, module_env


def _python(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def test_a_simulated_tool_imports_no_host_side_lab_code() -> None:
    code = (
        "import sys, json, runpy; sys.argv = ['rpm', '--version'];\n"
        "try:\n    runpy.run_module('nodeops.lab.sim.pkg.rpm', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('nodeops.lab.'))))"
    )
    env = {**os.environ, **module_env(), "NODEOPS_SIM_TOOL": "rpm"}
    loaded = json.loads(_python("-S", "-c", code, env=env).splitlines()[-1])
    assert loaded and all(m.startswith("nodeops.lab.sim") for m in loaded), loaded


def test_the_import_path_passes_from_one_simulated_program_to_the_next() -> None:
    ours = module_env()["PYTHONPATH"].split(os.pathsep)
    assert ours[0] == str(SOURCE_ROOT) and any(p.endswith("site-packages") for p in ours[1:])
    assert module_argv("x", ["y"])[1:] == ["-S", "-m", "x", "y"]
    code = "from nodeops.lab.sim import module_env; print(module_env()['PYTHONPATH'])"
    env = {**os.environ, **module_env()}
    assert _python("-S", "-c", code, env=env).strip() == os.pathsep.join(ours)
    import yaml  # noqa: F401  (a third-party module the simulations use)

    assert _python("-S", "-c", "import yaml; print('ok')", env=env).strip() == "ok"
