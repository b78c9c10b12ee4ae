"""Cmd quoting: every value reaches the remote program exactly as given, and secrets never show."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeops.cmd import REDACTED, Cmd, Raw, Secret, cmd, scrub, sequence

# Prints its argv as JSON, so the test sees exactly what the remote program would receive.
ECHO_ARGV = [sys.executable, "-c", "import json,sys; print(json.dumps(sys.argv[1:]))"]

# NUL cannot be part of any argv on a POSIX system; everything else must survive.
argument_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)


def run_in_sh(line: str) -> list[str]:
    out = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@settings(max_examples=100, deadline=None)
@given(st.lists(argument_text, min_size=1, max_size=5))
def test_arguments_survive_a_real_shell_unchanged(values: list[str]) -> None:
    line = cmd(*ECHO_ARGV, *values).render(as_root=True)
    assert run_in_sh(line) == values


@settings(max_examples=40, deadline=None)
@given(st.lists(argument_text, min_size=1, max_size=3))
def test_arguments_survive_the_sudo_sh_c_wrapper(values: list[str]) -> None:
    # The sudo wrapper is `sudo -n -- sh -c '<body>'`; dropping the sudo prefix leaves the
    # exact shell layering the node sees, so the round trip checks the double quoting.
    line = cmd(*ECHO_ARGV, *values, sudo=True).render(as_root=False)
    assert line.startswith("sudo -n -- sh -c ")
    assert run_in_sh(line.removeprefix("sudo -n -- ")) == values


@pytest.mark.parametrize(
    "hostile",
    [
        "$(touch /tmp/nodeops-pwn)",
        "`id`",
        "a'b",
        'a"b',
        "x\ny",
        "-oProxyCommand=sh",
        "; rm -rf /",
        "--",
        "*",
        "~root",
        "$HOME",
        "a\\b",
        "&& echo no",
        "|cat",
        "> /tmp/x",
        "\t",
    ],
)
def test_hostile_values_are_data(hostile: str) -> None:
    assert run_in_sh(cmd(*ECHO_ARGV, hostile).render(as_root=True)) == [hostile]


def test_sudo_wrapper_only_when_not_root() -> None:
    command = cmd("apt-mark", "showhold", sudo=True)
    assert command.render(as_root=True) == "apt-mark showhold"
    assert command.render(as_root=False) == "sudo -n -- sh -c 'apt-mark showhold'"


def test_raw_is_the_only_way_to_shell_syntax() -> None:
    piped = cmd("dpkg-query", "-W", Raw("2>/dev/null"), Raw("||"), "true")
    assert piped.render() == "dpkg-query -W 2>/dev/null || true"
    assert cmd("echo", "2>/dev/null").render() == "echo '2>/dev/null'"


def test_secret_is_masked_everywhere_but_the_wire() -> None:
    command = cmd("etcdctl", "--password", Secret("hunter2"), sudo=True)
    assert "hunter2" in command.render(as_root=False)
    for shown in (command.display(), command.display(as_root=False), str(command), repr(command)):
        assert "hunter2" not in shown
        assert REDACTED in shown
    assert command.secrets == ("hunter2",)
    assert (
        scrub("error: bad password hunter2", command.secrets) == f"error: bad password {REDACTED}"
    )


def test_env_is_quoted_and_applies_to_the_command() -> None:
    command = cmd(*ECHO_ARGV[:2], "import os; print(os.environ['X'])", env={"X": "a b$(id)"})
    out = subprocess.run(["/bin/sh", "-c", command.render()], capture_output=True, text=True)
    assert out.stdout == "a b$(id)\n"
    with pytest.raises(ValueError):
        cmd("true", env={"X=1; id": "v"})


def test_sequence_joins_and_keeps_root() -> None:
    joined = sequence([cmd("true"), cmd("apt-get", "update", sudo=True)])
    assert joined.sudo
    assert joined.render(as_root=True) == "true && apt-get update"
    with pytest.raises(ValueError):
        sequence([cmd("true")], joiner="; rm -rf /")


def test_only_strings_secrets_and_raw_are_arguments() -> None:
    with pytest.raises(TypeError):
        Cmd(("ls", 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Cmd(())
