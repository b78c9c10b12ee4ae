"""The facts script: every probe in one shell command, and the splitter for its output.

Each probe runs in its own subshell with stdin from /dev/null and stderr merged into its
output, between two marker lines:

    @@nodeops-probe NAME@@
    ...what the probe printed...
    @@nodeops-rc NAME EXIT_CODE@@

A probe's output passes through `sed`, which escapes any line that starts with
`@@nodeops-` (and any number of backslashes before it) by adding one backslash, so nothing a
probe prints can look like a marker; `split_probes` removes that backslash again. The exit
code travels around `sed` on file descriptor 3, so it is the probe's own, not sed's, and
the script runs the same under dash and bash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nodeops.cmd import Arg, Cmd, Raw

PROBE_MARKER = "@@nodeops-probe"
RC_MARKER = "@@nodeops-rc"

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PROBE_LINE = re.compile(r"@@nodeops-probe ([a-z][a-z0-9_]*)@@")
_RC_LINE = re.compile(r"@@nodeops-rc ([a-z][a-z0-9_]*) (-?\d{1,10})@@")
_ESCAPED = re.compile(r"\\+@@nodeops-")
# sed: one more backslash before any line that starts with backslashes then "@@nodeops-".
_SED_ESCAPE = r"s/^\(\\*@@nodeops-\)/\\\1/"
# The files a probe prints with show_files() each follow a header line of this form.
_FILE_HEADER = re.compile(r"^==> (/[^\n]*) <==\n", re.MULTILINE)

# LC_ALL=C: messages such as rpm's "package X is not installed" stay in English.
# PATH: sudo's secure_path on RHEL lacks /usr/local/bin, where binary installs put kubeadm.
# fd 4: the script's stdout, for each probe's escaped output to reach past $( ).
_PRELUDE = Raw(
    "LC_ALL=C; export LC_ALL;"
    ' PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"; export PATH;'
    " exec 4>&1;"
)


@dataclass(frozen=True)
class Probe:
    """A read-only command run as one section of the facts script; `name` labels its output."""

    name: str
    script: Cmd

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"a probe name is lowercase letters, digits and '_': {self.name!r}")
        if self.script.env:
            raise ValueError(f"probe {self.name}: set variables inside the script, not with env")


@dataclass(frozen=True)
class ProbeOutput:
    """What one probe printed (stdout and stderr merged) and its exit code; None if cut off."""

    text: str
    exit_code: int | None

    @property
    def ok(self) -> bool:
        """Whether the probe ran to its end and exited 0."""
        return self.exit_code == 0

    def tail(self, lines: int = 3) -> str:
        """The last few non-blank lines of the output, for an error message."""
        kept = [line.strip() for line in self.text.splitlines() if line.strip()]
        return " | ".join(kept[-lines:]) or "(no output)"


def first_available(*alternatives: tuple[str, Sequence[Arg]]) -> Cmd:
    """A probe body running the first alternative whose tool is installed; exit 127 if none is."""
    if not alternatives:
        raise ValueError("no alternatives")
    pieces: list[Arg] = []
    for index, (tool, argv) in enumerate(alternatives):
        pieces += [Raw("elif" if index else "if"), "command", "-v", tool]
        pieces += [Raw(">/dev/null 2>&1; then"), *argv, Raw(";")]
    pieces.append(Raw("else exit 127; fi"))
    return Cmd(tuple(pieces))


def needs(tool: str, *argv: Arg) -> Cmd:
    """A probe body running argv when tool is installed, exiting 127 (not found) otherwise."""
    return first_available((tool, argv))


def show_files(*paths: Arg) -> Cmd:
    """A probe body printing each existing file after a `==> path <==` header line.

    Missing files are skipped; the exit code is 1 when an existing file could not be read.
    Pass a glob as Raw.
    """
    return Cmd(
        (
            Raw("st=0; for f in"),
            *paths,
            Raw('; do if [ -f "$f" ]; then printf'),
            "==> %s <==\\n",
            Raw('"$f"; cat -- "$f" || st=1; printf'),
            "\\n",
            Raw('; fi; done; exit "$st"'),
        )
    )


def split_files(text: str) -> dict[str, str]:
    """The files in a show_files() probe's output, by path, each exactly as it was read."""
    headers = list(_FILE_HEADER.finditer(text))
    files: dict[str, str] = {}
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        body = text[header.end() : end]
        files.setdefault(header.group(1), body[:-1] if body.endswith("\n") else body)
    return files


def script_for(probes: Iterable[Probe]) -> Cmd:
    """One command that runs the probes in order, each between its marker lines."""
    pieces: list[Arg] = [_PRELUDE]
    seen: set[str] = set()
    for probe in probes:
        if probe.name in seen:
            raise ValueError(f"two probes are named {probe.name}")
        seen.add(probe.name)
        pieces += ["printf", f"\\n{PROBE_MARKER} %s@@\\n", probe.name, Raw(";")]
        pieces += [Raw("rc=$( { { ("), *probe.script.argv]
        pieces += [Raw(') </dev/null 2>&1 3>&- 4>&-; echo "$?" >&3; } | sed'), _SED_ESCAPE]
        pieces += [Raw(">&4 3>&-; } 3>&1 );")]
        pieces += ["printf", f"\\n{RC_MARKER} %s %s@@\\n", probe.name, Raw('"$rc";')]
    if not seen:
        raise ValueError("no probes")
    return Cmd(tuple(pieces), sudo=True)


def _unescape(line: str) -> str:
    return line[1:] if _ESCAPED.match(line) else line


def repeated_probes(stdout: str) -> frozenset[str]:
    """Probe names whose start marker appears more than once: forged output, not to trust."""
    seen: set[str] = set()
    repeated: set[str] = set()
    for line in stdout.split("\n"):
        start = _PROBE_LINE.fullmatch(line.removesuffix("\r"))
        if start:
            name = start.group(1)
            (repeated if name in seen else seen).add(name)
    return frozenset(repeated)


def split_probes(stdout: str) -> dict[str, ProbeOutput]:
    """Each probe's output and exit code from the facts script's stdout, by probe name.

    Pure and total: text outside markers is ignored, a probe whose rc line never came has
    exit_code None, and a probe name seen twice keeps its first output.
    """
    found: dict[str, ProbeOutput] = {}
    current: str | None = None
    lines: list[str] = []

    def finish(exit_code: int | None) -> None:
        if current is not None and current not in found:
            found[current] = ProbeOutput("\n".join(lines), exit_code)

    for raw in stdout.split("\n"):
        line = raw.removesuffix("\r")
        start = _PROBE_LINE.fullmatch(line)
        if start:
            finish(None)
            current, lines = start.group(1), []
            continue
        if current is None:
            continue
        end = _RC_LINE.fullmatch(line)
        if end and end.group(1) == current:
            finish(int(end.group(2)))
            current, lines = None, []
            continue
        lines.append(_unescape(raw))
    finish(None)
    return found
