"""Hostile strings through every command builder: never shell syntax, always one argument.

Each builder gets hostile values where it takes outside input (node names, paths read from
nodes such as a staticPodPath or an etcd manifest's flags, package names and versions,
template values). The Cmd it returns is rendered exactly as it goes to a node (`sudo -n --
sh -c '…'`) and run by a real shell with a PATH of stubs that record their argv, and with
the shell builtins printf, echo and test replaced by stubs too. The properties:

- no injected command runs: the canary stub is never called and its file never appears;
- every argument any program receives is one of the Cmd's own pieces (or a constant token
  of its Raw shell text), so no value was split, joined or expanded on the way;
- a value starting with `-` never reaches a program as an option: it follows `--`, or is
  glued to its option (`--flag=VALUE`);
- a builder that validates instead raises a clean error (NodeopsError or ValueError).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import re
import shlex
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nodeops import etcdops, kube, packages, staticpodops, staticpods, versions
from nodeops.cmd import Cmd, Raw, Secret, cmd, sequence
from nodeops.drainplan import DrainOptions
from nodeops.errors import NodeopsError
from nodeops.etcd import snapshot
from nodeops.etcd.flags import EtcdctlArgs, etcdctl_connection, parse_etcd_manifest
from nodeops.facts import nodefacts, script
from nodeops.kubeletconfig import _listing_body, kubelet_config_probe, read_files_probe
from nodeops.upgrade import cluster as upgrade_cluster
from nodeops.upgrade import lock as upgrade_lock
from nodeops.upgrade import nodesteps

# `nodeops.etcd` re-exports a function named `restore`, which hides the module of that name.
etcd_restore = importlib.import_module("nodeops.etcd.restore")
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"

# Programs the builders call, each replaced by a recording stub. `env` and `timeout` record
# and then run the real tool, which finds the next program among the stubs.
RECORDED = [
    "apt-cache",
    "apt-get",
    "apt-mark",
    "base64",
    "cat",
    "chmod",
    "chown",
    "cp",
    "crictl",
    "dd",
    "dnf",
    "dpkg",
    "dpkg-query",
    "echo",
    "etcd",
    "etcdctl",
    "etcdutl",
    "find",
    "grep",
    "head",
    "hostname",
    "id",
    "install",
    "journalctl",
    "kill",
    "kubeadm",
    "kubectl",
    "ln",
    "ls",
    "mkdir",
    "mktemp",
    "mv",
    "nodeops_canary",
    "pgrep",
    "printf",
    "ps",
    "rm",
    "rpm",
    "sed",
    "sha256sum",
    "sleep",
    "sort",
    "ss",
    "stat",
    "systemctl",
    "tail",
    "tee",
    "test",
    "touch",
    "uname",
    "yum",
    "[",
]
PASS_THROUGH = {"env": "/usr/bin/env", "timeout": "/usr/bin/timeout"}
# The stub shell: bash in which every recorded program, and the builtins echo, printf,
# test and [, is a function that logs its argv (no process per call: fast).
PRELUDE = """
__rec() {  # one file per call: calls in a pipeline run at once
  builtin printf '%s\\0' "$(( $# - 1 ))" "$@" > "$NODEOPS_STUB_LOG/$BASHPID.$(( ++__seq ))"
}
for __n in NAMES; do eval "function $__n { __rec $__n \\"\\$@\\"; }"; done
function [ { __rec [ "$@"; return "$NODEOPS_TEST_RESULT"; }  # every test: true, or false
function test { __rec test "$@"; return "$NODEOPS_TEST_RESULT"; }
function mktemp { __rec mktemp "$@"; builtin echo "$PWD/tmp.$(( ++__seq ))"; }
function nodeops_canary { __rec nodeops_canary "$@"; /usr/bin/touch "$NODEOPS_CANARY"; }
function env { __rec env "$@"; while [[ $# -gt 0 && $1 == *=* ]]; do shift; done; "$@"; }
function timeout { __rec timeout "$@"; while [[ $1 == -* ]]; do shift; done; shift; "$@"; }
"""


@dataclass
class Sandbox:
    """A stub PATH, its argv log, and the canary file an injection would create."""

    bin: Path
    log: Path  # a directory: one file per call
    canary: Path
    scratch: Path

    def run(
        self, command: Cmd, *, shell: str = "stub", tests: bool = True
    ) -> tuple[list[list[str]], str]:
        """Run the command as a node would (through sudo and `sh -c`); (invocations, stderr).

        `tests` is what every `[`/`test` answers in the stub shell, so both branches of the
        builders' `if [ -e … ]` checks can be reached."""
        for stale in self.log.iterdir():
            stale.unlink()
        line = command.render(as_root=False)
        # The stub sh is bash with the builtins stubbed; "real" is the node's /bin/sh (dash).
        sh = str(self.bin / "sh") if shell == "stub" else "/bin/sh"
        done = subprocess.run(
            [sh, "-c", line],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.scratch,
            env={
                "PATH": str(self.bin),
                "NODEOPS_STUB_LOG": str(self.log),
                "NODEOPS_CANARY": str(self.canary),
                "NODEOPS_TEST_RESULT": "0" if tests else "1",
                "HOME": str(self.scratch),
            },
        )
        calls = [call for f in self.log.iterdir() for call in _parse_log(f.read_bytes())]
        return calls, done.stderr


def _parse_log(data: bytes) -> list[list[str]]:
    fields = data.decode().split("\0")
    calls: list[list[str]] = []
    index = 0
    while index < len(fields) - 1:
        count = int(fields[index])
        calls.append(fields[index + 1 : index + 2 + count])
        index += 2 + count
    return calls


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(stat.S_IRWXU)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("stubs")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    record = 'printf "%s\\0" "$#" "${0##*/}" "$@" > "$NODEOPS_STUB_LOG/$$"\n'
    for name in RECORDED:
        _write(bin_dir / name, "#!/bin/sh\n" + record)
    _write(
        bin_dir / "nodeops_canary", "#!/bin/sh\n" + record + '/usr/bin/touch "$NODEOPS_CANARY"\n'
    )
    for name, real in PASS_THROUGH.items():
        _write(bin_dir / name, f'#!/bin/sh\n{record}exec {real} "$@"\n')
    # sudo -n -- sh -c BODY: drop sudo's own options, run the rest.
    _write(
        bin_dir / "sudo", '#!/bin/sh\n[ "$1" = -n ] && shift\n[ "$1" = -- ] && shift\nexec "$@"\n'
    )
    prelude = root / "prelude.bash"
    prelude.write_text(
        PRELUDE.replace("NAMES", " ".join(n for n in RECORDED if n != "nodeops_canary"))
    )
    _write(bin_dir / "sh", f'#!/bin/sh\nexec /bin/bash --norc --noprofile -c ". {prelude}\n$2"\n')
    scratch = root / "cwd"
    scratch.mkdir()
    (root / "argv").mkdir()
    yield Sandbox(bin_dir, root / "argv", root / "canary", scratch)


# --- hostile values -------------------------------------------------------------------------

PAYLOADS = [
    "$(nodeops_canary)",
    "`nodeops_canary`",
    ";nodeops_canary;",
    "'; nodeops_canary; '",
    '"; nodeops_canary; "',
    "\nnodeops_canary\n",
    "|nodeops_canary",
    "&& nodeops_canary",
    "${IFS}nodeops_canary",
    "$(touch /tmp/nodeops-fuzz-pwn)",
    "-oProxyCommand=nodeops_canary",
    "--kubeconfig=/tmp/evil",
    "-rf",
    "--",
    "*",
    "~root",
    "$HOME",
    "\\",
    "' \"",
    "a b",
    "\t",
    "é中🙂\u202e",
    "",
]
# The payloads that try to run something (the others test splitting and options).
INJECTIONS = [p for p in PAYLOADS if "canary" in p or "touch" in p]
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24
)
HOSTILE = st.one_of(
    st.sampled_from(PAYLOADS),
    st.builds(lambda a, p, b: a + p + b, _text, st.sampled_from(PAYLOADS), _text),
    _text,
)
CLEAN_ERRORS = (NodeopsError, ValueError)
# Options whose next argument is their value, never read as an option itself.
NO_OPTIONS = {"[", "test", "printf"}  # they read their operands as operands
VALUE_OPTIONS = {"--password", "--namespace", "-n", "-o", "-f", "--qf", "-c", "-m", "-w"}


# --- the builders ---------------------------------------------------------------------------

ETCD_MANIFEST = (FIXTURES / "manifests" / "v1.29.0-etcd.yaml").read_text()


def _etcd_member(h: str) -> etcd_restore.EtcdMember:
    """The fixture's etcd member with hostile text in the flags and paths a node controls."""
    pod = yaml.safe_load(ETCD_MANIFEST)

    def swap(text: str) -> str:
        for old, new in (
            ("/var/lib/etcd", f"/var/lib/etcd{h}"),
            ("/etc/kubernetes/pki/etcd", f"/etc/kubernetes/pki/e{h}"),
            ("controlplane", f"cp{h}"),
        ):
            text = text.replace(old, new)
        return text

    container = pod["spec"]["containers"][0]
    container["command"] = [swap(arg) for arg in container["command"]]
    for mount in container["volumeMounts"]:
        mount["mountPath"] = swap(mount["mountPath"])
    for volume in pod["spec"]["volumes"]:
        volume["hostPath"]["path"] = swap(volume["hostPath"]["path"])
    return parse_etcd_manifest(yaml.safe_dump(pod))


def _args(h: str) -> EtcdctlArgs:
    return EtcdctlArgs(endpoint=f"https://{h}:2379", cacert=f"/x/{h}", cert=h, key=f"/k/{h}")


TOOLS = snapshot.tools_for((3, 5, 12))


def _plan_restore(h: str) -> Cmd:
    member = _etcd_member(h)
    plan = etcd_restore.plan_restore(
        member,
        f"/var/lib/nodeops/{h}.db",
        tools=TOOLS,
        etcdctl=etcdctl_connection(member),
        timestamp="20261127T044500Z",
    )
    commands = [c for s in plan.steps for c in (*s.do, *s.undo)]
    commands += [s.wait.probe for s in plan.steps if s.wait]
    return sequence(commands, joiner="; ")


def _install(h: str, replace: bool) -> Cmd:
    path = f"/etc/kubernetes/manifests/{h}.yaml"
    old = f"old {h}" if replace else None
    plan = staticpods.plan_install(old, f"kind: Pod\nname: {h}\n", path=path, stamp="20261127")
    return staticpods.install_command(plan)


def _rendered(template: str, values: dict[str, object]) -> Cmd:
    text = staticpods.render(template, values)
    plan = staticpods.plan_install(None, text, path="/etc/kubernetes/manifests/p.yaml", stamp="s")
    return staticpods.install_command(plan)


def _pv(h: str) -> str:
    return f"1.30.2-{h}"


BUILDERS: dict[str, Callable[[str], Cmd | None]] = {
    # nodeops/cmd.py
    "cmd": lambda h: cmd("printf", "%s", h, h),
    "cmd sudo env": lambda h: cmd("kubectl", "--", h, sudo=True, env={"X": h}),
    "cmd secret": lambda h: cmd("etcdctl", "--password", Secret(h), sudo=True),
    "sequence": lambda h: sequence([cmd("printf", "%s", h), cmd("cat", "--", h, env={"Y": h})]),
    # nodeops/packages.py
    "refresh": lambda h: packages.refresh(h),
    "install apt": lambda h: packages.install("apt", {h: _pv(h)}),
    "install apt version": lambda h: packages.install("apt", {"kubeadm": _pv(h)}),
    "install dnf repo": lambda h: packages.install(
        "dnf", {"kubeadm": "1.30.2-150500.1.1"}, repo_id=h
    ),
    "download_only": lambda h: packages.download_only("yum", {h: _pv(h)}, repo_id=h),
    "hold": lambda h: packages.hold("apt", [h]),
    "unhold yum": lambda h: packages.unhold("yum", [h], versionlock=True),
    "available_versions": lambda h: packages.available_versions_cmd("dnf", h, repo_id=h),
    "package_spec": lambda h: cmd("true", packages.package_spec("apt", "kubeadm", h)),
    # nodeops/versions.py: a version from the user or a node, as nodesteps' inline
    # `kubeadm upgrade apply vX` uses it
    "kubeadm apply version": lambda h: cmd(
        "kubeadm", "upgrade", "apply", versions.parse_version(h).v, "-y", sudo=True
    ),
    # nodeops/kube.py
    "kubectl": lambda h: kube.kubectl("get", "--", h, kubeconfig=h),
    "get_json": lambda h: kube.get_json([h, "pods"]),
    "cordon": lambda h: kube.cordon(h),
    "uncordon": lambda h: kube.uncordon(h),
    "drain": lambda h: kube.drain(h, DrainOptions(pod_selector=h), timeout_seconds=60),
    "drain selector": lambda h: kube.drain("w1", DrainOptions(pod_selector=h), timeout_seconds=9),
    # nodeops/staticpods.py
    "install create": lambda h: _install(h, replace=False),
    "install replace": lambda h: _install(h, replace=True),
    "render web": lambda h: _rendered("web.yaml.j2", staticpods.web_values("w", h, role=h)),
    "render generic": lambda h: _rendered(
        "generic.yaml.j2",
        staticpods.generic_values("g", h, command=[h], args=[h, "--", h], env={"X": h}),
    ),
    "remove": lambda h: staticpods.remove_command(f"/etc/kubernetes/manifests/{h}", stamp="s"),
    "manifest_path": lambda h: cmd("cat", "--", staticpods.manifest_path("/etc/m", h)),
    # nodeops/staticpodops.py (staticPodPath and names read from the node or the API)
    "static pod dir probe": lambda h: staticpodops._dir_probe(f"/etc/{h}", [f"/etc/{h}/x"]),
    "static pod dir probe relative": lambda h: staticpodops._dir_probe(h, [h]),
    "node_pods": lambda h: staticpodops.node_pods_command(h, h, h),
    # nodeops/kubeletconfig.py
    "kubelet_config_probe": lambda h: kubelet_config_probe(),
    "read_files_probe": lambda h: read_files_probe([f"/var/lib/{h}"], [f"/etc/{h}"]),
    "read_files_probe relative": lambda h: read_files_probe([h], [h]),
    "listing": lambda h: _listing_body([h, f"/{h}"]),
    # nodeops/facts/*
    "facts_command": lambda h: nodefacts.facts_command(),
    "show_files": lambda h: script.show_files(h, f"/etc/{h}"),
    "needs": lambda h: script.needs("kubeadm", "kubeadm", "--", h),
    "first_available": lambda h: script.first_available(("dnf", ["dnf", "--", h]), ("yum", [h])),
    "script_for": lambda h: script.script_for([script.Probe("p", cmd("cat", "--", h))]),
    # nodeops/etcd/snapshot.py
    "make_private_dir": lambda h: snapshot.make_private_dir(f"/var/lib/{h}"),
    "make_private_file": lambda h: snapshot.make_private_file(h),
    "remove_file": lambda h: snapshot.remove_file(f"/var/lib/{h}"),
    "sha256": lambda h: snapshot.sha256(f"/var/lib/{h}"),
    "snapshot_save": lambda h: snapshot.snapshot_save(_args(h), f"/var/lib/{h}"),
    "snapshot_status": lambda h: snapshot.snapshot_status(TOOLS, f"/var/lib/{h}"),
    "trial_restore": lambda h: snapshot.trial_restore(_args(h), f"/a/{h}", f"/b/{h}"),
    "client_pair_check": lambda h: snapshot.client_pair_check(_args(h)),
    "endpoint_health": lambda h: snapshot.endpoint_health(_args(h)),
    "tool_version": lambda h: snapshot.tool_version(),
    # nodeops/etcd/restore.py and flags.py (an etcd manifest read from the node)
    "etcd restore": lambda h: etcd_restore.restore(
        _etcd_member(h), f"/var/lib/{h}", f"/var/lib/new{h}", tools=TOOLS
    ),
    "etcd plan_restore": _plan_restore,
    "etcd_present": lambda h: etcd_restore.etcd_present(etcdctl_connection(_etcd_member(h))),
    "move": lambda h: etcd_restore._move(f"/a/{h}", f"/b/{h}"),
    "move_back": lambda h: etcd_restore._move_back(f"/a/{h}", f"/b/{h}"),
    # nodeops/etcdops.py
    "site_probe": lambda h: etcdops._site_probe(f"/etc/{h}"),
    "member_list": lambda h: etcdops.member_list(etcdctl_connection(_etcd_member(h))),
    "private_dir": lambda h: etcdops.private_dir(f"/var/lib/{h}"),
    "stat_modes": lambda h: etcdops.stat_modes(f"/var/{h}", f"/etc/{h}"),
    "read_chunk": lambda h: etcdops.read_chunk(f"/var/{h}", 3),
    "write_chunk": lambda h: etcdops.write_chunk(f"/var/{h}", first=True),
    "move_new": lambda h: etcdops.move_new(f"/var/{h}", f"/etc/{h}"),
    "api_resources": lambda h: etcdops.api_resources(),
    "get_resources": lambda h: etcdops.get_resources([h, "pods"]),
    # nodeops/upgrade/*
    "get_node": lambda h: upgrade_cluster.get_node(h),
    "get_nodes": lambda h: upgrade_cluster.get_nodes(),
    "get_system_pods": lambda h: upgrade_cluster.get_system_pods(),
    "read_lock_cmd": lambda h: upgrade_lock.read_lock_cmd(),
    "installed_cmd": lambda h: nodesteps.installed_cmd(h),
    "kubeadm_upgrade_node": lambda h: nodesteps.kubeadm_upgrade_node(),
    "restart_kubelet": lambda h: nodesteps.restart_kubelet(),
}


# --- the properties -------------------------------------------------------------------------


BENIGN = ("x", "/x", "kubeadm", "1.1", "cp1")


@functools.cache
def _baseline(name: str) -> Cmd | None:
    """The builder's command for a plain value: its Raw shell text is the only shell text."""
    for value in BENIGN:
        try:
            return BUILDERS[name](value)
        except CLEAN_ERRORS:
            continue
    raise AssertionError(f"{name}: no plain value builds a command")


_CONSTANT_RUN: set[tuple[str, bool]] = set()


def _words(command: Cmd | None) -> set[str]:
    """The words of a command's Raw shell text, as the shell splits them."""
    words: set[str] = set()
    for arg in command.argv if command else ():
        if isinstance(arg, Raw):
            lexer = shlex.shlex(arg.text, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            with contextlib.suppress(ValueError):
                words.update(lexer)
    return words


def _pieces(command: Cmd | None) -> set[str]:
    """The values a command passes as arguments: its str pieces, secrets and env settings."""
    if command is None:
        return set()
    pieces = {"", "env", *(f"{k}={v}" for k, v in command.env)}
    for arg in command.argv:
        if isinstance(arg, Secret):
            pieces.add(arg.value)
        elif isinstance(arg, str):
            pieces.add(arg)
    return pieces


def _expected(arg: str, allowed: set[str]) -> bool:
    if arg in allowed or arg.isdigit():
        return True
    # `$(command -v TOOL)`, or a glob over a directory: paths that exist on this machine.
    return arg.startswith("/") and os.path.lexists(arg)


def check(sandbox: Sandbox, name: str, h: str, *, tests: bool = True) -> None:
    """Build, then run through the stub shell; assert the properties of the module doc."""
    try:
        command = BUILDERS[name](h)
    except CLEAN_ERRORS:
        return  # refused cleanly: nothing to run
    if command is None:
        return
    baseline = _baseline(name)
    if command == baseline and (name, tests) in _CONSTANT_RUN:
        return  # the builder takes no outside value here: once is enough
    _CONSTANT_RUN.add((name, tests))
    # Shell words come only from the plain build: a value pasted into Raw shows up here.
    pieces = _pieces(command)
    # A quoted directory followed by a Raw `/*` (staticpodops' listing) arrives as `DIR/*`.
    allowed = pieces | _words(baseline) | {p.rstrip("/") + "/*" for p in pieces}
    constant = h in _pieces(baseline) | _words(baseline)  # e.g. h == "--": the code's own
    calls, stderr = sandbox.run(command, tests=tests)
    assert not sandbox.canary.exists(), f"{name}: the injection ran for {h!r}"
    assert not re.search(r"command not found|: not found\b", stderr), (name, h, stderr)
    for call in calls:
        program, args = call[0], call[1:]
        assert program not in {"nodeops_canary", "touch", "id"}, (name, h, call)
        for index, arg in enumerate(args):
            assert _expected(arg, allowed), f"{name}: {program} got {arg!r} for {h!r}: {call}"
            if h.startswith("-") and arg == h and not constant and program not in NO_OPTIONS:
                value = index > 0 and args[index - 1] in VALUE_OPTIONS
                assert value or "--" in args[:index], (
                    f"{name}: {h!r} reached {program} as an option"
                )


@pytest.fixture(autouse=True)
def _no_pwn() -> Iterator[None]:
    Path("/tmp/nodeops-fuzz-pwn").unlink(missing_ok=True)
    yield
    assert not Path("/tmp/nodeops-fuzz-pwn").exists()


# Builders with a known finding (a strict xfail each, dropped once fixed).
KNOWN: dict[str, str] = {}
NAMES = [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN[n])) if n in KNOWN else n
    for n in sorted(BUILDERS)
]


@pytest.mark.parametrize("name", NAMES)
def test_fixed_hostile_values_stay_data(sandbox: Sandbox, name: str) -> None:
    for value in PAYLOADS:
        check(sandbox, name, value, tests=True)
        check(sandbox, name, value, tests=False)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=HOSTILE)
@example(h="-oProxyCommand=nodeops_canary")
def test_fuzzed_hostile_values_stay_data(sandbox: Sandbox, name: str, h: str) -> None:
    check(sandbox, name, h, tests=len(h) % 2 == 0)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_the_real_sh_runs_no_injection(sandbox: Sandbox, name: str) -> None:
    """The same fixed values through the node's own /bin/sh, builtins and all."""
    seen: set[Cmd] = set()
    for value in INJECTIONS:
        try:
            command = BUILDERS[name](value)
        except CLEAN_ERRORS:
            continue
        if command is not None and command not in seen:
            seen.add(command)
            sandbox.run(command, shell="real")
            assert not sandbox.canary.exists(), f"{name}: the injection ran for {value!r}"


BROKEN: dict[str, Callable[[str], Cmd]] = {
    "pasted into Raw": lambda h: cmd("kubectl", "cordon", Raw(h), sudo=True),
    "no -- before it": lambda h: cmd("kubectl", "cordon", h, sudo=True),
}


@pytest.mark.parametrize(
    ("broken", "value", "problem"),
    [
        ("pasted into Raw", "$(nodeops_canary)", "injection ran"),
        ("pasted into Raw", "a b", "got 'a'"),
        ("pasted into Raw", "x; id", "['id']"),
        ("no -- before it", "-oProxyCommand=x", "as an option"),
    ],
)
def test_the_harness_catches_broken_builders(
    sandbox: Sandbox, broken: str, value: str, problem: str
) -> None:
    BUILDERS[broken] = BROKEN[broken]
    try:
        with pytest.raises(AssertionError, match=re.escape(problem)):
            check(sandbox, broken, value)
    finally:
        del BUILDERS[broken]
        _baseline.cache_clear()
        sandbox.canary.unlink(missing_ok=True)


def test_the_stub_shell_records_programs_builtins_and_sudo(sandbox: Sandbox) -> None:
    """The recording is not vacuous: through sudo and sh -c, a program, a builtin, an env
    prefix, both branches of a test and a `$(mktemp)` are seen with their exact arguments."""
    value = "a b'$(nodeops_canary)\n"
    command = sequence(
        [cmd("kubectl", "get", "--", value, sudo=True, env={"K": value}), cmd("[", "-e", value)],
        joiner="; ",
    )
    calls, _ = sandbox.run(command)
    assert ["env", f"K={value}", "kubectl", "get", "--", value] in calls
    assert ["kubectl", "get", "--", value] in calls
    assert ["[", "-e", value] in calls
    path = f"/etc/kubernetes/manifests/{value}.yaml"
    plan = staticpods.plan_install(None, "kind: Pod\n", path=path, stamp="s")
    exists, _ = sandbox.run(staticpods.install_command(plan), tests=True)
    assert not any(call[0] == "mv" for call in exists)  # "appeared since it was read"
    absent, _ = sandbox.run(staticpods.install_command(plan), tests=False)
    assert [call[-1] for call in absent if call[:3] == ["mv", "-T", "--"]] == [path]
    assert not sandbox.canary.exists()
