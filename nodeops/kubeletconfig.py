"""Kubelet configuration: which config file the kubelet reads, its staticPodPath, and why.

Sources, most trusted first:

1. the running kubelet's command line (`ps`), `--config` and `--pod-manifest-path`;
2. the systemd unit as systemd combines it (`systemctl cat kubelet`: the unit, then its
   drop-ins in order; Environment=, EnvironmentFile=, ExecStart= resets), with the
   environment files it names (`/var/lib/kubelet/kubeadm-flags.env`, `/etc/default/kubelet`,
   `/etc/sysconfig/kubelet`), expanded as systemd expands ExecStart=;
3. the KubeletConfiguration file itself (YAML or JSON), where `staticPodPath` lives.

Command-line flags override the config file, as the kubelet does. An empty or absent
`staticPodPath` (and no `--pod-manifest-path`) means the kubelet has no file source at all
(pkg/kubelet/kubelet.go only adds it when the path is set).

Everything here is pure except the two probe builders, which return a `Cmd`.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml

from nodeops.cmd import Arg, Cmd, Raw
from nodeops.errors import NodeopsError
from nodeops.facts.script import Probe, script_for, show_files, split_files, split_probes
from nodeops.platforms import parse_env_file

KUBEADM_FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
ENV_FILES = (KUBEADM_FLAGS_ENV, "/etc/default/kubelet", "/etc/sysconfig/kubelet")
KUBELET_UNIT = "kubelet.service"
NO_STATIC_POD_PATH = "no staticPodPath: this kubelet runs no file-based static pods"

PS_PROBE = "kubelet_ps"
UNIT_PROBE = "kubelet_unit"
ENV_PROBE = "kubelet_env"
FILES_PROBE = "kubelet_files"
DIRS_PROBE = "static_pod_dirs"


class StaticPodPathError(NodeopsError):
    """The kubelet's staticPodPath is unknown or unset, so no static pod can be managed."""


# --- the kubelet's command line ------------------------------------------------------------

#: Kubelet flags that are booleans (pflag `NoOptDefVal`): `--flag` alone means true and the
#: next word is never consumed. From cmd/kubelet/app/options (1.5 to 1.31), klog, cadvisor's
#: flags the kubelet registers, and `--version` (a tri-state that also takes no word).
BOOL_FLAGS = frozenset(
    {
        "add-dir-header",
        "allow-privileged",
        "alsologtostderr",
        "anonymous-auth",
        "authentication-token-webhook",
        "babysit-daemons",
        "cgroups-per-qos",
        "containerized",
        "cpu-cfs-quota",
        "docker-disable-shared-pid",
        "docker-only",
        "docker-tls",
        "enable-cadvisor-json-endpoints",
        "enable-controller-attach-detach",
        "enable-cri",
        "enable-custom-metrics",
        "enable-debugging-handlers",
        "enable-load-reader",
        "enable-server",
        "exit-on-lock-contention",
        "experimental-allocatable-ignore-eviction",
        "experimental-check-node-capabilities-before-mount",
        "experimental-dockershim",
        "experimental-fail-swap-on",
        "experimental-kernel-memcg-notification",
        "fail-cgroupv1",
        "fail-swap-on",
        "help",
        "kernel-memcg-notification",
        "keep-terminated-pod-volumes",
        "local-storage-capacity-isolation",
        "log-cadvisor-usage",
        "log-json-split-stream",
        "logtostderr",
        "make-iptables-util-chains",
        "one-output",
        "protect-kernel-defaults",
        "really-crash-for-testing",
        "redirect-container-streaming",
        "register-node",
        "register-schedulable",
        "require-kubeconfig",
        "rotate-certificates",
        "rotate-server-certificates",
        "runonce",
        "seccomp-default",
        "serialize-image-pulls",
        "skip-headers",
        "skip-log-headers",
        "storage-driver-secure",
        "version",
    }
)
#: One-letter flags: `-v 8`, `-v=8`, `-v8` take a value; `-h` does not.
_SHORT_VALUE = frozenset({"v"})
_SHORT_BOOL = frozenset({"h"})


def _normalize(name: str) -> str:
    """The kubelet's flag set normalizes `_` to `-` (cliflag.WordSepNormalizeFunc)."""
    return name.replace("_", "-")


def _iter_flags(args: Sequence[str]) -> Iterator[tuple[str, str, int]]:
    """(name, value, index of the word that named the flag) for each flag, as pflag reads."""
    index = 0
    while index < len(args):
        start = index
        arg = args[index]
        index += 1
        if arg == "--":
            return
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            name = _normalize(name)
            if eq:
                yield name, value, start
            elif name in BOOL_FLAGS:
                yield name, "true", start
            elif index < len(args):
                yield name, args[index], start
                index += 1
            else:
                yield name, "", start  # pflag: "flag needs an argument"; the kubelet stops
        elif arg.startswith("-") and len(arg) > 1:
            letter, rest = arg[1], arg[2:]
            if letter in _SHORT_BOOL:
                yield "help", "true", start
            elif letter in _SHORT_VALUE:
                if rest:
                    yield letter, rest.removeprefix("="), start
                elif index < len(args):
                    yield letter, args[index], start
                    index += 1


def parse_flags(args: Sequence[str]) -> dict[str, str]:
    """The kubelet's flags from its arguments (without the program name), as pflag reads them.

    `--flag=value` and `--flag value` (the second only for flags that take a value: see
    BOOL_FLAGS), booleans as "true"/"false", repeated flags last-wins, `_` read as `-`, and
    `--` ending the flags. Names are returned without dashes: `{"config": "/var/lib/..."}`.
    """
    return {name: value for name, value, _ in _iter_flags(args)}


@dataclass(frozen=True)
class KubeletProcess:
    """A running kubelet: its pid and its argv as `ps` shows it (split at whitespace)."""

    pid: int
    argv: tuple[str, ...]

    @property
    def args(self) -> tuple[str, ...]:
        """The arguments after the program (and after `kubelet` for a hyperkube)."""
        skip = 2 if posixpath.basename(self.argv[0]) == "hyperkube" else 1
        return self.argv[skip:]

    @property
    def flags(self) -> dict[str, str]:
        """The process's flags, parsed as the kubelet parses them."""
        return parse_flags(self.args)


def is_kubelet_argv(argv: Sequence[str]) -> bool:
    """Whether argv runs the kubelet binary: argv[0]'s basename is `kubelet` (or hyperkube's)."""
    if not argv:
        return False
    program = posixpath.basename(argv[0])
    if program == "kubelet":
        return True
    return program == "hyperkube" and len(argv) > 1 and argv[1] == "kubelet"


_PS_HEADER = re.compile(r"\s*(PID|USER)\b")
_AUX_FIELDS = 10  # USER PID %CPU %MEM VSZ RSS TTY STAT START TIME, then COMMAND


def parse_kubelet_processes(ps_output: str) -> list[KubeletProcess]:
    """The kubelet processes in `ps -ww -eo pid,args` (or `ps auxwww`) output.

    Only processes whose program is the kubelet count: not kube-apiserver with its
    `--kubelet-*` flags, not `grep kubelet`, not `systemctl status kubelet`.
    """
    found: list[KubeletProcess] = []
    for line in ps_output.splitlines():
        if not line.strip() or _PS_HEADER.match(line):
            continue
        words = line.split()
        if words[0].isdigit():
            pid, argv = int(words[0]), words[1:]
        elif len(words) > _AUX_FIELDS and words[1].isdigit():
            pid, argv = int(words[1]), words[_AUX_FIELDS:]
        else:
            continue
        if is_kubelet_argv(argv):
            found.append(KubeletProcess(pid=pid, argv=tuple(argv)))
    return found


# --- systemd: the unit and its drop-ins ----------------------------------------------------

# A `systemctl cat` header: "# /path/to/unit-or-drop-in", the path a unit file or a .conf.
_CAT_HEADER = re.compile(r"# (/\S*\.(?:service|conf))")
_EXEC_PREFIXES = "-@:+!"


@dataclass(frozen=True)
class Assignment:
    """One `Key=value` line of a [Service] section and the file it came from."""

    key: str
    value: str
    source: str


@dataclass(frozen=True)
class Unit:
    """The kubelet's systemd unit as systemd combines the unit file and its drop-ins.

    `exec_start` keeps the ExecStart= lines left after the last empty reset (more than one
    means systemd refuses to start a Type=simple service); `environment` the Environment=
    assignments (name, value, source) in order; `environment_files` the EnvironmentFile=
    entries (path, optional, source) in order; `files` every file read, in order.
    """

    files: tuple[str, ...] = ()
    exec_start: tuple[Assignment, ...] = ()
    environment: tuple[tuple[str, str, str], ...] = ()
    environment_files: tuple[tuple[str, bool, str], ...] = ()
    warnings: tuple[str, ...] = ()

    def describe(self, path: str) -> str:
        """How a source file is named in findings: the unit file or one of its drop-ins."""
        return f"drop-in {path}" if path.endswith(".conf") else f"unit {path}"


def split_systemctl_cat(text: str) -> list[tuple[str, str]]:
    """`systemctl cat` output as (path, content) pairs, in the order systemd applies them.

    A header is `# /path` naming a .service or .conf file, as the first line or after the
    blank line systemctl prints between files; other comments stay part of the content.
    """
    files: list[tuple[str, str]] = []
    current: str | None = None
    body: list[str] = []
    previous_blank = True
    for line in text.split("\n"):
        header = _CAT_HEADER.fullmatch(line.rstrip("\r"))
        if header and (previous_blank or "/systemd/" in header.group(1)):
            if current is not None:
                files.append((current, "\n".join(body)))
            current, body = header.group(1), []
        elif current is not None:
            body.append(line)
        previous_blank = not line.strip()
    if current is not None:
        files.append((current, "\n".join(body)))
    return files


def _logical_lines(text: str) -> Iterable[str]:
    """Unit file lines with backslash-newline continuations joined (comment lines inside a
    continuation are skipped, as systemd does)."""
    pending: str | None = None
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if pending is not None and stripped[:1] in {"#", ";"}:
            continue
        if (len(line) - len(line.rstrip("\\"))) % 2 == 1:  # an unescaped final backslash
            pending = (pending or "") + line[:-1] + " "
            continue
        yield (pending or "") + line
        pending = None
    if pending is not None:
        yield pending


def _c_unescape(text: str, index: int) -> tuple[str, int]:
    """One C escape at text[index] (just after a backslash): the character and the next index."""
    simple = {
        "a": "\a",
        "b": "\b",
        "f": "\f",
        "n": "\n",
        "r": "\r",
        "t": "\t",
        "v": "\v",
        "s": " ",
        "\\": "\\",
        '"': '"',
        "'": "'",
    }
    if index >= len(text):
        return "\\", index
    c = text[index]
    if c in simple:
        return simple[c], index + 1
    if c == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[index + 1 : index + 3]):
        return chr(int(text[index + 1 : index + 3], 16)), index + 3
    if c == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[index + 1 : index + 5]):
        return chr(int(text[index + 1 : index + 5], 16)), index + 5
    if c in "01234567" and re.fullmatch(r"[0-7]{3}", text[index : index + 3]):
        return chr(int(text[index : index + 3], 8)), index + 3
    return c, index + 1  # systemd is relaxed about unknown escapes: keep the character


def split_words(text: str) -> list[str]:
    """Split a unit setting into words as systemd's extract_first_word() does.

    Whitespace separates words; `"..."` and `'...'` quote (also inside a word); backslash
    escapes are C escapes. `%%` becomes `%`; other specifiers are left as written.
    """
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote: str | None = None
    index = 0
    while index < len(text):
        c = text[index]
        if quote is not None:
            if c == quote:
                quote = None
                index += 1
            elif c == "\\":
                char, index = _c_unescape(text, index + 1)
                word.append(char)
            else:
                word.append(c)
                index += 1
            continue
        if c in " \t\n\r":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            index += 1
            continue
        in_word = True
        if c in "\"'":
            quote = c
            index += 1
        elif c == "\\":
            char, index = _c_unescape(text, index + 1)
            word.append(char)
        else:
            word.append(c)
            index += 1
    if in_word:
        words.append("".join(word))
    return [w.replace("%%", "%") for w in words]


def combine_unit(text: str) -> Unit:
    """The kubelet unit from `systemctl cat kubelet` output, combined as systemd does.

    Files apply in order (later drop-ins win); `ExecStart=`, `Environment=` and
    `EnvironmentFile=` with an empty value reset what came before; `#`/`;` comment lines,
    continuation lines and assignments outside [Service] are handled as systemd does.
    """
    files = split_systemctl_cat(text)
    exec_start: list[Assignment] = []
    environment: list[tuple[str, str, str]] = []
    env_files: list[tuple[str, bool, str]] = []
    # systemctl cat starts with "# Warning: kubelet.service changed on disk, the version
    # systemd has loaded is outdated." when a daemon-reload is pending.
    warnings: list[str] = [
        f"{line[len('# Warning: ') :].strip()} (systemctl daemon-reload pending)"
        for line in text.split("\n")
        if line.startswith("# Warning: ") and "changed on disk" in line
    ]
    for path, content in files:
        section: str | None = None
        for line in _logical_lines(content):
            stripped = line.strip()
            if not stripped or stripped[0] in "#;":
                continue
            if stripped.startswith("[") and stripped.endswith("]"):
                section = stripped[1:-1]
                continue
            key, eq, value = stripped.partition("=")
            if not eq:
                warnings.append(f"{path}: line without '=' ignored: {stripped[:60]!r}")
                continue
            if section != "Service":
                continue
            key, value = key.strip(), value.strip()
            if key == "ExecStart":
                if value:
                    exec_start.append(Assignment(key, value, path))
                else:
                    exec_start.clear()
            elif key == "Environment":
                if not value:
                    environment.clear()
                    continue
                for word in split_words(value):
                    name, has_eq, val = word.partition("=")
                    if has_eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                        environment.append((name, val, path))
                    else:
                        warnings.append(f"{path}: invalid Environment= assignment {word!r}")
            elif key == "EnvironmentFile":
                if not value:
                    env_files.clear()
                    continue
                for word in split_words(value):
                    optional = word.startswith("-")
                    env_files.append((word.removeprefix("-"), optional, path))
    if len(exec_start) > 1:
        warnings.append(
            f"{len(exec_start)} ExecStart= lines without a reset (ExecStart= empty) before"
            " the last: systemd refuses to start a Type=simple service with more than one"
        )
    return Unit(
        files=tuple(path for path, _ in files),
        exec_start=tuple(exec_start),
        environment=tuple(environment),
        environment_files=tuple(env_files),
        warnings=tuple(warnings),
    )


def unit_environment(
    unit: Unit, env_files: Mapping[str, str | None]
) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """The service's environment as name -> (value, source), and problems found.

    Environment= first, then each EnvironmentFile= in order: the files override
    Environment= (systemd.exec(5)), and a later file overrides an earlier one. `env_files`
    maps a path to its content, None for a file known to be absent; a path not in the
    mapping was not read.
    """
    env: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for name, value, source in unit.environment:
        env[name] = (value, unit.describe(source))
    for path, optional, source in unit.environment_files:
        content = env_files.get(path)
        if content is None:
            if path not in env_files:
                problems.append(f"environment file {path} (from {source}) was not read")
            elif not optional:
                problems.append(
                    f"environment file {path} (from {source}) is missing and not optional:"
                    " systemd will not start the kubelet"
                )
            continue
        for name, value in parse_env_file(content).items():
            env[name] = (value, f"environment file {path}")
    return env, problems


_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")


def expand_exec_sourced(unit: Unit, env_files: Mapping[str, str | None]) -> list[tuple[str, str]]:
    """The effective ExecStart= argv, each word with the file or variable source it came from.

    Expansion follows systemd: a word that is exactly `$VAR` becomes the value split at
    whitespace (zero words when unset or empty); `${VAR}` inside a word is replaced by the
    value as it is (empty when unset); `$$` is a literal `$`. The `:` prefix turns expansion
    off; `-@+!` prefixes are dropped (with `@`, the second word is argv[0] and is dropped
    too, keeping the executable path first). The last ExecStart= line counts.
    """
    if not unit.exec_start:
        return []
    line = unit.exec_start[-1]
    env, _ = unit_environment(unit, env_files)
    words = split_words(line.value)
    command: list[str] = []
    for word in words:  # several commands separated by a lone ";": the first one runs first
        if word == ";":
            break
        command.append(word)
    if not command:
        return []
    program = command[0]
    prefix = ""
    while program and program[0] in _EXEC_PREFIXES:
        prefix += program[0]
        program = program[1:]
    rest = command[1:]
    if "@" in prefix and rest:
        rest = rest[1:]
    origin = unit.describe(line.source)
    result: list[tuple[str, str]] = [(program, origin)]
    for word in rest:
        if ":" in prefix:
            result.append((word, origin))
            continue
        if word.startswith("$") and word[1:2] not in {"{", "$"}:
            value, source = env.get(word[1:], ("", origin))
            result.extend((part, source) for part in value.split())
            continue
        sources: list[str] = []

        def replace(match: re.Match[str], sources: list[str] = sources) -> str:
            if match.group(0) == "$$":
                return "$"
            value, source = env.get(match.group(1), ("", origin))
            sources.append(source)
            return value

        expanded = _BRACED.sub(replace, word)
        result.append((expanded, sources[0] if sources else origin))
    return result


def expand_exec(unit: Unit, env_files: Mapping[str, str | None]) -> list[str]:
    """The kubelet's effective argv from its unit and environment files, as systemd builds it."""
    return [word for word, _ in expand_exec_sourced(unit, env_files)]


# --- the KubeletConfiguration file ---------------------------------------------------------


@dataclass(frozen=True)
class KubeletConfig:
    """The fields nodeops reads from a KubeletConfiguration; `raw` keeps the whole document."""

    kind: str | None
    api_version: str | None
    static_pod_path: str | None
    cgroup_driver: str | None
    container_runtime_endpoint: str | None
    authentication: Mapping[str, Any] = field(default_factory=dict, hash=False)
    authorization: Mapping[str, Any] = field(default_factory=dict, hash=False)
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False)


def _opt_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value.strip() or None


def parse_kubelet_config(text: str) -> KubeletConfig:
    """A KubeletConfiguration from YAML or JSON text; ValueError when it is not one.

    An empty `staticPodPath` reads as None, as the kubelet treats it (no file source).
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML or JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise ValueError("not a KubeletConfiguration: the document is not a mapping")
    kind = document.get("kind")
    if kind is not None and kind != "KubeletConfiguration":
        raise ValueError(f"not a KubeletConfiguration: kind is {kind!r}")
    try:
        static = _opt_str(document.get("staticPodPath"))
        cgroup = _opt_str(document.get("cgroupDriver"))
        endpoint = _opt_str(document.get("containerRuntimeEndpoint"))
    except ValueError as exc:
        raise ValueError(f"KubeletConfiguration: {exc}") from None
    authn = document.get("authentication")
    authz = document.get("authorization")
    return KubeletConfig(
        kind=kind,
        api_version=document.get("apiVersion"),
        static_pod_path=static,
        cgroup_driver=cgroup,
        container_runtime_endpoint=endpoint,
        authentication=MappingProxyType(authn if isinstance(authn, dict) else {}),
        authorization=MappingProxyType(authz if isinstance(authz, dict) else {}),
        raw=MappingProxyType(document),
    )


# --- static pod directory listings ---------------------------------------------------------


@dataclass(frozen=True)
class DirEntry:
    """One entry of `ls -lanb --time-style=+%s`: name (unescaped), type letter, mode, size,
    mtime (epoch seconds) and a symlink's target."""

    name: str
    type: str  # "-" file, "d" directory, "l" symlink, others as ls prints them
    mode: str
    size: int | None = None
    mtime: int | None = None
    target: str | None = None


def _ls_unescape(text: str) -> str:
    """Undo GNU ls `-b` (escape quoting): `\\ `, `\\n`, `\\t`, octal `\\NNN` bytes ..."""
    out = bytearray()
    index = 0
    while index < len(text):
        c = text[index]
        if c != "\\" or index + 1 >= len(text):
            out += c.encode("utf-8", "surrogateescape")
            index += 1
            continue
        nxt = text[index + 1]
        if re.fullmatch(r"[0-7]{3}", text[index + 1 : index + 4]):
            out.append(int(text[index + 1 : index + 4], 8) & 0xFF)
            index += 4
            continue
        mapped = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
        out += mapped.get(nxt, nxt).encode("utf-8", "surrogateescape")
        index += 2
    return out.decode("utf-8", "surrogateescape")


def parse_listing(text: str) -> list[DirEntry]:
    """Entries of `ls -lanb --time-style=+%s -- DIR` output, without `.` and `..`."""
    entries: list[DirEntry] = []
    for line in text.splitlines():
        if not line or line.startswith("total ") or line.startswith("ls: "):
            continue
        kind = line[0]
        fields = line.split(None, 7 if kind in "cb" else 6)
        if len(fields) < (8 if kind in "cb" else 7):
            continue
        name_field = fields[-1]
        size = int(fields[4]) if fields[4].isdigit() else None
        mtime_field = fields[-2]
        mtime = int(mtime_field) if re.fullmatch(r"-?\d+", mtime_field) else None
        target = None
        if kind == "l" and " -> " in name_field:
            name_field, _, raw_target = name_field.partition(" -> ")
            target = _ls_unescape(raw_target)
        name = _ls_unescape(name_field)
        if name in {".", ".."}:
            continue
        entries.append(DirEntry(name, kind, fields[0], size, mtime, target))
    return entries


# --- probes --------------------------------------------------------------------------------


def kubelet_config_probe() -> Cmd:
    """One read-only round trip: kubelet processes, `systemctl cat kubelet`, the env files."""
    ps = Cmd(("ps", "-ww", "-eo", "pid,args"))
    unit = Cmd(
        (
            Raw("if command -v systemctl >/dev/null 2>&1; then"),
            "systemctl",
            "--no-pager",
            "cat",
            KUBELET_UNIT,
            Raw("; else exit 127; fi"),
        )
    )
    return script_for(
        (
            Probe(PS_PROBE, ps),
            Probe(UNIT_PROBE, unit),
            Probe(ENV_PROBE, show_files(*ENV_FILES)),
        )
    )


def _listing_body(dirs: Sequence[str]) -> Cmd:
    pieces: list[Arg] = [Raw("st=0; for d in"), *dirs]
    pieces += [Raw("; do printf"), "==> %s <==\\n", Raw('"$d"; if [ -d "$d" ]; then')]
    pieces += ["ls", "-lanb", "--time-style=+%s", Raw('-- "$d" || st=1; elif [ -e "$d" ]; then')]
    pieces += ["printf", "%s\\n", "!not-a-directory", Raw("; else"), "printf", "%s\\n"]
    pieces += ["!missing", Raw('; fi; done; exit "$st"')]
    return Cmd(tuple(pieces))


def read_files_probe(files: Sequence[str], dirs: Sequence[str] = ()) -> Cmd:
    """One read-only round trip printing files (the config file) and listing directories
    (the static pod directory); every path is quoted."""
    for path in (*files, *dirs):
        if not path.startswith("/"):
            raise ValueError(f"not an absolute path: {path!r}")
    probes: list[Probe] = []
    if files:
        probes.append(Probe(FILES_PROBE, show_files(*files)))
    if dirs:
        probes.append(Probe(DIRS_PROBE, _listing_body(dirs)))
    if not probes:
        raise ValueError("nothing to read")
    return script_for(probes)


@dataclass(frozen=True)
class FilesRead:
    """What read_files_probe found: file contents and directory listings, None when absent."""

    files: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    dirs: Mapping[str, tuple[DirEntry, ...] | None] = field(default_factory=dict, hash=False)
    problems: tuple[str, ...] = ()


def parse_read_files(stdout: str, files: Sequence[str], dirs: Sequence[str] = ()) -> FilesRead:
    """Parse read_files_probe(files, dirs) output; a requested path not printed is absent."""
    outputs = split_probes(stdout)
    problems: list[str] = []
    found_files: dict[str, str | None] = {}
    if files:
        out = outputs.get(FILES_PROBE)
        printed = split_files(out.text) if out is not None else {}
        if out is None or out.exit_code != 0:
            problems.append(
                f"reading {', '.join(files)} failed: {out.tail() if out else 'no output'}"
            )
        for path in files:
            found_files[path] = printed.get(path)
    found_dirs: dict[str, tuple[DirEntry, ...] | None] = {}
    if dirs:
        out = outputs.get(DIRS_PROBE)
        printed = split_files(out.text) if out is not None else {}
        if out is None or out.exit_code != 0:
            problems.append(
                f"listing {', '.join(dirs)} failed: {out.tail() if out else 'no output'}"
            )
        for path in dirs:
            body = printed.get(path)
            if body is None or body.strip() in {"!missing", "!not-a-directory"}:
                found_dirs[path] = None
            else:
                found_dirs[path] = tuple(parse_listing(body))
    return FilesRead(MappingProxyType(found_files), MappingProxyType(found_dirs), tuple(problems))


# --- putting it together -------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """What the probes found: kubelet processes, the unit, env files and config files.

    `env_files` and `config_files` map a path to its content, or None when the file was
    looked for and is absent; a path missing from the mapping was not read yet.
    """

    processes: tuple[KubeletProcess, ...] = ()
    unit_text: str | None = None
    env_files: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    config_files: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    problems: tuple[str, ...] = ()


def with_files(evidence: Evidence, read: FilesRead) -> Evidence:
    """The evidence plus the config files a read_files_probe() round trip found."""
    return dataclasses.replace(
        evidence,
        config_files=MappingProxyType({**evidence.config_files, **read.files}),
        problems=(*evidence.problems, *read.problems),
    )


def parse_kubelet_probe(stdout: str) -> Evidence:
    """Evidence from kubelet_config_probe() output (config files are read in a second trip)."""
    outputs = split_probes(stdout)
    problems: list[str] = []
    processes: tuple[KubeletProcess, ...] = ()
    ps = outputs.get(PS_PROBE)
    if ps is None or ps.exit_code != 0:
        problems.append(f"ps failed: {ps.tail() if ps else 'no output'}")
    if ps is not None:
        processes = tuple(parse_kubelet_processes(ps.text))
    unit = outputs.get(UNIT_PROBE)
    unit_text = unit.text if unit is not None and unit.exit_code == 0 else None
    if unit is not None and unit.exit_code not in {0, 1, 127}:
        problems.append(f"systemctl cat kubelet failed: {unit.tail()}")
    env = outputs.get(ENV_PROBE)
    env_files: dict[str, str | None] = {}
    if env is not None and env.exit_code is not None:
        printed = split_files(env.text)
        env_files = {path: printed.get(path) for path in ENV_FILES}
        if env.exit_code != 0:
            problems.append(f"reading the kubelet environment files failed: {env.tail()}")
    return Evidence(
        processes=processes,
        unit_text=unit_text,
        env_files=MappingProxyType(env_files),
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class Sourced:
    """A value and where it was found, e.g. ("/etc/kubernetes/manifests", "config file ...")."""

    value: str
    source: str

    def __str__(self) -> str:
        return f"{self.value} ({self.source})"


@dataclass(frozen=True)
class KubeletConfigFinding:
    """The kubelet's config file and staticPodPath, each with its source, and what disagrees.

    `static_pod_path` is None with `static_pod_reason` saying why: no staticPodPath (no
    file-based static pods), the config file not read yet (`needs_files`), or unreadable.
    """

    argv: tuple[str, ...] = ()
    argv_source: str | None = None
    config_path: Sourced | None = None
    config: KubeletConfig | None = None
    static_pod_path: Sourced | None = None
    static_pod_reason: str | None = None
    needs_files: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict with stable keys."""

        def sourced(value: Sourced | None) -> dict[str, str] | None:
            return {"value": value.value, "source": value.source} if value else None

        return {
            "argv": list(self.argv),
            "argv_source": self.argv_source,
            "config_path": sourced(self.config_path),
            "static_pod_path": sourced(self.static_pod_path),
            "static_pod_reason": self.static_pod_reason,
            "needs_files": list(self.needs_files),
            "conflicts": list(self.conflicts),
            "notes": list(self.notes),
        }

    def require_static_pod_path(self) -> str:
        """The staticPodPath, or StaticPodPathError saying why nodeops cannot use one."""
        if self.static_pod_path is None:
            raise StaticPodPathError(
                "refusing to manage static pods: the kubelet's staticPodPath is unresolved:"
                f" {self.static_pod_reason or 'unknown'}"
            )
        return self.static_pod_path.value


def _flag_sources(words: Sequence[tuple[str, str]]) -> dict[str, Sourced]:
    """Flag name -> (value, source of the word that set it last), from a sourced argv."""
    args = [word for word, _ in words[1:]]
    return {name: Sourced(value, words[1 + index][1]) for name, value, index in _iter_flags(args)}


def resolve(evidence: Evidence) -> KubeletConfigFinding:
    """Where the kubelet's config file and staticPodPath come from, with conflicts noted."""
    notes: list[str] = list(evidence.problems)
    conflicts: list[str] = []

    unit_words: list[tuple[str, str]] = []
    if evidence.unit_text is not None:
        unit = combine_unit(evidence.unit_text)
        notes.extend(unit.warnings)
        _, env_problems = unit_environment(unit, evidence.env_files)
        notes.extend(env_problems)
        unit_words = expand_exec_sourced(unit, evidence.env_files)
        if unit_words and not is_kubelet_argv([w for w, _ in unit_words]):
            notes.append(f"the kubelet unit runs {unit_words[0][0]}, not a kubelet binary")

    process: KubeletProcess | None = None
    if len(evidence.processes) == 1:
        process = evidence.processes[0]
    elif len(evidence.processes) > 1:
        unit_args = tuple(w for w, _ in unit_words[1:])
        matching = [p for p in evidence.processes if p.args == unit_args]
        pids = ", ".join(str(p.pid) for p in evidence.processes)
        if len(matching) == 1:
            process = matching[0]
            notes.append(
                f"{len(evidence.processes)} kubelet processes ({pids}); pid"
                f" {process.pid} matches the unit"
            )
        else:
            notes.append(
                f"{len(evidence.processes)} kubelet processes ({pids}) and none matches the"
                " unit alone: the process flags are not used"
            )
    else:
        notes.append("no kubelet process is running: using the systemd unit")

    flags: dict[str, Sourced]
    if process is not None:
        origin = f"process flags of pid {process.pid}"
        argv = process.argv
        flags = {name: Sourced(value, origin) for name, value in process.flags.items()}
        if unit_words:
            unit_flags = _flag_sources(unit_words)
            for name in ("config", "pod-manifest-path"):
                running, configured = flags.get(name), unit_flags.get(name)
                if (running and running.value) != (configured and configured.value):
                    conflicts.append(
                        f"--{name}: the running kubelet (pid {process.pid}) has"
                        f" {running.value if running else 'none'}, the unit now gives"
                        f" {configured if configured else 'none'}: the kubelet was not"
                        " restarted since the unit or its environment files changed"
                    )
        argv_source: str | None = origin
    elif unit_words:
        argv = tuple(w for w, _ in unit_words)
        flags = _flag_sources(unit_words)
        argv_source = "systemd unit kubelet.service"
    else:
        return KubeletConfigFinding(
            static_pod_reason="no kubelet process and no kubelet systemd unit found",
            conflicts=tuple(conflicts),
            notes=tuple(notes),
        )

    for name in ("config-dir", "dynamic-config-dir"):
        if name in flags:
            notes.append(
                f"--{name}={flags[name].value} ({flags[name].source}): files there may"
                " override the config file; nodeops does not read them"
            )

    config_path = flags.get("config")
    if config_path is not None and not config_path.value:
        config_path = None
    manifest_flag = flags.get("pod-manifest-path")
    if manifest_flag is not None and not manifest_flag.value:
        manifest_flag = None

    config: KubeletConfig | None = None
    config_static: Sourced | None = None
    needs: list[str] = []
    reason: str | None = None
    if config_path is not None:
        path = config_path.value
        if path not in evidence.config_files:
            needs.append(path)
            reason = f"the config file {path} has not been read yet"
        elif evidence.config_files[path] is None:
            reason = f"the config file {path} does not exist (the kubelet cannot start)"
        else:
            try:
                config = parse_kubelet_config(evidence.config_files[path] or "")
            except ValueError as exc:
                reason = f"the config file {path} cannot be parsed: {exc}"
            else:
                if config.static_pod_path is not None:
                    value = config.static_pod_path
                    if not value.startswith("/"):
                        # The kubelet resolves relative paths against the config file's dir.
                        value = posixpath.normpath(posixpath.join(posixpath.dirname(path), value))
                    config_static = Sourced(value, f"config file {path}")
                else:
                    reason = NO_STATIC_POD_PATH

    static: Sourced | None = None
    if manifest_flag is not None:
        static = manifest_flag
        reason = None
        if config_static is not None and config_static.value != manifest_flag.value:
            conflicts.append(
                f"--pod-manifest-path={manifest_flag.value} ({manifest_flag.source}) overrides"
                f" staticPodPath {config_static.value} in {config_static.source}"
            )
    elif config_static is not None:
        static = config_static
    elif config_path is None:
        reason = f"{NO_STATIC_POD_PATH} (no --config and no --pod-manifest-path)"

    return KubeletConfigFinding(
        argv=tuple(argv),
        argv_source=argv_source,
        config_path=config_path,
        config=config,
        static_pod_path=static,
        static_pod_reason=None if static is not None else reason,
        needs_files=tuple(needs),
        conflicts=tuple(conflicts),
        notes=tuple(notes),
    )
