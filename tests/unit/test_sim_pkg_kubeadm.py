"""The simulated `kubeadm version`, read back with nodeops' own parser."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from nodeops.facts.binaries import parse_kubeadm_version
from nodeops.lab.sim import kubeadm

FIXTURE = (
    Path(__file__).resolve().parents[3]
    / "shared/fixtures/outputs/kubeadm-version.v1.15.9-beta.0.txt"
)


def run(*args: str, version: str = "v1.30.2") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return kubeadm.run(list(args), version, out, err), out.getvalue(), err.getvalue()


@pytest.mark.parametrize("version", ["v1.27.16", "v1.29.3", "v1.30.2", "v1.33.0"])
def test_every_output_form_parses(version: str) -> None:
    for args in (("version",), ("version", "-o", "short"), ("version", "-o=short")):
        code, out, _ = run(*args, version=version)
        assert code == 0 and parse_kubeadm_version(out) == version
    assert (
        json.loads(run("version", "-o", "json", version=version)[1])["clientVersion"]["gitVersion"]
        == version
    )
    assert (
        yaml.safe_load(run("version", "-o", "yaml", version=version)[1])["clientVersion"][
            "gitVersion"
        ]
        == version
    )


def test_long_form_is_gos_struct_print() -> None:
    assert run("version", version="v1.29.3")[1] == (
        'kubeadm version: &version.Info{Major:"1", Minor:"29", GitVersion:"v1.29.3",'
        ' GitCommit:"6813625b7cd706db5bc7388921be03071e1a492d", GitTreeState:"clean",'
        ' BuildDate:"2024-03-15T00:06:16Z", GoVersion:"go1.21.8", Compiler:"gc",'
        ' Platform:"linux/amd64"}\n'
    )
    assert (
        'Minor:"33", EmulationMajor:"", EmulationMinor:"",' in run("version", version="v1.33.0")[1]
    )


@pytest.mark.skipif(not FIXTURE.exists(), reason="shared fixtures not present")
def test_long_form_has_the_real_field_order() -> None:
    real = FIXTURE.read_text()
    keys = [part.split(":")[0] for part in real.split("{", 1)[1].rstrip("}\n").split(", ")]
    ours = run("version")[1]
    assert [part.split(":")[0] for part in ours.split("{", 1)[1].rstrip("}\n").split(", ")] == keys


def test_other_subcommands_are_refused() -> None:
    assert run("init") == (
        1, "", "kubeadm: simulated subcommand not implemented yet: init\n",
    )  # fmt: skip
    assert run("version", "-o", "xml")[0] == 1
