"""Simulated systemctl and journalctl for lab nodes, which have no systemd.

Units are read from /etc/systemd/system, /run/systemd/system and /usr/lib/systemd/system
with their drop-ins (`<unit>.d/*.conf`) combined as systemd does. A started unit runs under
a small supervisor (detached with setsid) that applies Restart=, records the main PID in
/run/nodeops-sim/units/<unit>.pid and appends journal-style lines to
/var/log/nodeops-sim/<unit>.log, which `journalctl -u` shows. As in systemd, a unit's
configuration is loaded once and kept until `daemon-reload`; changed files on disk make
start, restart and status warn.

Run as `python -m nodeops.lab.sim.systemctl systemctl|journalctl ARGS...`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from nodeops.lab.sim import faultfiles, module_env
from nodeops.platforms import parse_env_file

UNIT_PATHS = (
    "etc/systemd/system",
    "run/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
)
RUN_DIR = "run/nodeops-sim/units"
LOG_DIR = "var/log/nodeops-sim"
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STOP_TIMEOUT = 5.0
RELOAD_WARNING = (
    "Warning: The unit file, source configuration file or drop-ins of {unit} changed on disk."
    " Run 'systemctl daemon-reload' to reload units."
)


def sim_root() -> Path:
    """The node's root: / in a node, a directory in unit tests ($NODEOPS_SIM_ROOT)."""
    return Path(os.environ.get("NODEOPS_SIM_ROOT", "/"))


def unit_name(name: str) -> str:
    """`kubelet` -> `kubelet.service`."""
    return name if "." in name else f"{name}.service"


# --- unit files -------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitFiles:
    """The fragment and drop-ins that make a unit, in the order systemd applies them."""

    fragment: str | None
    dropins: tuple[str, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        """Every file, fragment first."""
        return ((self.fragment,) if self.fragment else ()) + self.dropins


def find_unit(root: Path, unit: str) -> UnitFiles:
    """Locate a unit's fragment (first in path order) and drop-ins (by name, first path wins)."""
    fragment = None
    for d in UNIT_PATHS:
        path = root / d / unit
        if path.is_file():
            fragment = f"/{d}/{unit}"
            break
    dropins: dict[str, str] = {}
    for d in UNIT_PATHS:
        ddir = root / d / f"{unit}.d"
        if ddir.is_dir():
            for conf in ddir.iterdir():
                if conf.name.endswith(".conf") and conf.name not in dropins:
                    dropins[conf.name] = f"/{d}/{unit}.d/{conf.name}"
    return UnitFiles(fragment, tuple(dropins[n] for n in sorted(dropins)))


def parse_unit_text(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) assignments of one unit file, continuation lines joined."""
    found = []
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, eq, value = line.partition("=")
        if eq:
            found.append((section, key.strip(), value.strip()))
    return found


@dataclass(frozen=True)
class Service:
    """A unit's settings that the simulation uses, after all files were combined."""

    description: str = ""
    documentation: tuple[str, ...] = ()
    exec_start: tuple[str, ...] = ()
    environment: tuple[str, ...] = ()  # KEY=VALUE, in order
    environment_files: tuple[str, ...] = ()  # "-" prefix: optional
    restart: str = "no"
    restart_sec: float = 0.1
    wanted_by: tuple[str, ...] = ()


def combine(texts: Sequence[str]) -> Service:
    """Apply a fragment and its drop-ins in order: list settings accumulate, empty resets."""
    lists: dict[str, list[str]] = {
        "ExecStart": [],
        "Environment": [],
        "EnvironmentFile": [],
        "Documentation": [],
        "WantedBy": [],
    }
    scalars: dict[str, str] = {}
    for text in texts:
        for section, key, value in parse_unit_text(text):
            if key in lists:
                if not value:
                    lists[key] = []
                elif key == "Environment":
                    lists[key] += [w for w in split_words(value) if "=" in w]
                elif key in ("Documentation", "WantedBy"):
                    lists[key] += value.split()
                else:
                    lists[key].append(value)
            elif section in ("Unit", "Service", "Install"):
                scalars[key] = value
    return Service(
        description=scalars.get("Description", ""),
        documentation=tuple(lists["Documentation"]),
        exec_start=tuple(lists["ExecStart"]),
        environment=tuple(lists["Environment"]),
        environment_files=tuple(lists["EnvironmentFile"]),
        restart=scalars.get("Restart", "no"),
        restart_sec=_seconds(scalars.get("RestartSec", "100ms")),
        wanted_by=tuple(lists["WantedBy"]),
    )


def _seconds(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m)?\s*", text)
    if not m:
        return 0.1
    scale = {"ms": 0.001, "min": 60.0, "m": 60.0}.get(m.group(2) or "s", 1.0)
    return float(m.group(1)) * scale


def split_words(text: str) -> list[str]:
    """Split like systemd's extract_first_word with quotes: "a b" and 'a b' stay one word."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:
        return text.split()


def environment(root: Path, service: Service) -> dict[str, str]:
    """The unit's environment: Environment=, then EnvironmentFile= files, which override."""
    env: dict[str, str] = {}
    for assignment in service.environment:
        key, _, value = assignment.partition("=")
        env[key] = value
    for entry in service.environment_files:
        optional = entry.startswith("-")
        path = entry.lstrip("-")
        try:
            env.update(parse_env_file((root / path.lstrip("/")).read_text()))
        except OSError:
            if not optional:
                raise
    return env


_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BARE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def command_line(exec_start: str, env: dict[str, str]) -> list[str]:
    """ExecStart= to argv: `$VAR` alone is split at whitespace, `${VAR}` stays one word."""
    argv: list[str] = []
    for word in split_words(exec_start):
        bare = _BARE.fullmatch(word)
        if bare:
            argv += env.get(bare.group(1), "").split()
        else:
            argv.append(_BRACED.sub(lambda m: env.get(m.group(1), ""), word).replace("$$", "$"))
    if argv:
        argv[0] = argv[0].lstrip("-@+!:")
    return argv


# --- runtime state ----------------------------------------------------------------------


def _fingerprint(root: Path, files: UnitFiles) -> str:
    digest = hashlib.sha256()
    for path in files.paths:
        digest.update(path.encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update((root / path.lstrip("/")).read_bytes())
    return digest.hexdigest()


@dataclass
class Loaded:
    """A unit as the (simulated) manager loaded it: files, their texts and fingerprint."""

    files: UnitFiles
    texts: list[str] = field(default_factory=list)
    fingerprint: str = ""


class Manager:
    """The unit state of one node: loaded configurations, PIDs, logs."""

    def __init__(self, root: Path, out: TextIO, err: TextIO) -> None:
        self.root, self.out, self.err = root, out, err
        self.run = root / RUN_DIR
        self.logs = root / LOG_DIR

    def _loaded_path(self) -> Path:
        return self.run / "loaded.json"

    def _loaded_all(self) -> dict[str, dict[str, object]]:
        try:
            data: dict[str, dict[str, object]] = json.loads(self._loaded_path().read_text())
            return data
        except (OSError, ValueError):
            return {}

    def _save_loaded(self, data: dict[str, dict[str, object]]) -> None:
        self.run.mkdir(parents=True, exist_ok=True)
        tmp = self._loaded_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._loaded_path())

    def _read(self, files: UnitFiles) -> Loaded:
        texts = []
        for path in files.paths:
            try:
                texts.append((self.root / path.lstrip("/")).read_text())
            except OSError:
                texts.append("")
        return Loaded(files, texts, _fingerprint(self.root, files))

    def load(self, unit: str) -> Loaded | None:
        """The unit as loaded (loading it now if it never was); None if it does not exist."""
        data = self._loaded_all()
        item = data.get(unit)
        if item is not None:
            files = UnitFiles(
                item["fragment"] if isinstance(item["fragment"], str) else None,
                tuple(str(d) for d in item["dropins"]) if isinstance(item["dropins"], list) else (),
            )
            texts = [str(t) for t in item["texts"]] if isinstance(item["texts"], list) else []
            return Loaded(files, texts, str(item["fingerprint"]))
        files = find_unit(self.root, unit)
        if files.fragment is None:
            return None
        loaded = self._read(files)
        data[unit] = {
            "fragment": files.fragment,
            "dropins": list(files.dropins),
            "texts": loaded.texts,
            "fingerprint": loaded.fingerprint,
        }
        self._save_loaded(data)
        return loaded

    def changed_on_disk(self, unit: str, loaded: Loaded) -> bool:
        """Whether the unit's files differ from what was loaded (new drop-ins count)."""
        return _fingerprint(self.root, find_unit(self.root, unit)) != loaded.fingerprint

    def warn_if_changed(self, unit: str, loaded: Loaded) -> None:
        """systemd's daemon-reload warning, on stderr."""
        if self.changed_on_disk(unit, loaded):
            print(RELOAD_WARNING.format(unit=unit), file=self.err)

    def daemon_reload(self) -> int:
        """Reload every unit that was loaded (and forget ones whose files are gone)."""
        data = self._loaded_all()
        fresh: dict[str, dict[str, object]] = {}
        for unit in data:
            files = find_unit(self.root, unit)
            if files.fragment is None:
                continue
            loaded = self._read(files)
            fresh[unit] = {
                "fragment": files.fragment,
                "dropins": list(files.dropins),
                "texts": loaded.texts,
                "fingerprint": loaded.fingerprint,
            }
        self._save_loaded(fresh)
        return 0

    def pid_file(self, unit: str) -> Path:
        """Where the main PID is recorded."""
        return self.run / f"{unit}.pid"

    def _status_file(self, unit: str) -> Path:
        return self.run / f"{unit}.json"

    def runtime(self, unit: str) -> dict[str, object]:
        """What the supervisor last recorded: state, since, result, main pid."""
        try:
            data: dict[str, object] = json.loads(self._status_file(unit).read_text())
        except (OSError, ValueError):
            return {"state": "inactive", "sub": "dead"}
        sup = data.get("supervisor")
        if data.get("state") in ("active", "activating") and not (
            isinstance(sup, int) and _alive(sup)
        ):
            return {**data, "state": "failed", "sub": "failed", "result": "signal"}
        return data

    def is_active(self, unit: str) -> str:
        """active, activating, inactive or failed."""
        return str(self.runtime(unit).get("state", "inactive"))

    # --- actions ------------------------------------------------------------------------
    def start(self, unit: str) -> int:
        """Start a unit under a detached supervisor (no-op if it is running)."""
        loaded = self.load(unit)
        if loaded is None:
            print(f"Failed to start {unit}: Unit {unit} not found.", file=self.err)
            return 5
        self.warn_if_changed(unit, loaded)
        if self.is_active(unit) in ("active", "activating"):
            return 0
        service = combine(loaded.texts)
        if not service.exec_start:
            print(
                f"Failed to start {unit}: Unit {unit} has a bad unit file setting.", file=self.err
            )
            return 1
        try:
            environment(self.root, service)
        except OSError:
            self._record(unit, {"state": "failed", "sub": "failed", "result": "resources"})
            print(
                f"Job for {unit} failed because of unavailable resources or another system error.",
                file=self.err,
            )
            return 1
        self.run.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "nodeops.lab.sim.systemctl", "--supervise", unit]
        env = {**os.environ, **module_env(), "NODEOPS_SIM_ROOT": str(self.root)}
        env.pop("NODEOPS_SIM_TOOL", None)
        with open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(
                argv,
                stdin=devnull,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
                cwd="/",
            )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            info = self.runtime(unit)
            if info.get("supervisor") == proc.pid and info.get("state") != "starting":
                break
            time.sleep(0.01)
        return 0

    def stop(self, unit: str) -> int:
        """Stop a unit: SIGTERM its supervisor, which stops the main process."""
        if find_unit(self.root, unit).fragment is None and unit not in self._loaded_all():
            print(f"Failed to stop {unit}: Unit {unit} not loaded.", file=self.err)
            return 5
        info = self.runtime(unit)
        sup = info.get("supervisor")
        if isinstance(sup, int) and _alive(sup):
            with contextlib.suppress(ProcessLookupError):
                os.kill(sup, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT + 2
            while _alive(sup) and time.monotonic() < deadline:
                time.sleep(0.01)
        return 0

    def restart(self, unit: str) -> int:
        """Stop, then start."""
        loaded = self.load(unit)
        if loaded is None:
            print(f"Failed to restart {unit}: Unit {unit} not found.", file=self.err)
            return 5
        if unit == "kubelet.service":
            faultfiles.cut_ssh_session_if("kubelet-restart")
            # A kubelet that comes back broken (bad flags, a runtime gone): NotReady for good.
            if faultfiles.take(faultfiles.NOT_READY_ON_RESTART) is not None:
                faultfiles.NOT_READY.touch()
        self.stop(unit)
        return self.start(unit)

    def _record(self, unit: str, data: dict[str, object]) -> None:
        self.run.mkdir(parents=True, exist_ok=True)
        path = self._status_file(unit)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    def enable(self, unit: str, on: bool) -> int:
        """enable/disable: the WantedBy= symlinks under /etc/systemd/system."""
        files = find_unit(self.root, unit)
        if files.fragment is None:
            verb = "enable" if on else "disable"
            print(f"Failed to {verb} unit: Unit file {unit} does not exist.", file=self.err)
            return 1
        service = combine(self._read(files).texts)
        for target in service.wanted_by:
            link = self.root / "etc/systemd/system" / f"{target}.wants" / unit
            shown = f"/etc/systemd/system/{target}.wants/{unit}"
            if on and not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(files.fragment)
                print(f"Created symlink {shown} \u2192 {files.fragment}.", file=self.err)
            elif not on and link.is_symlink():
                link.unlink()
                print(f'Removed "{shown}".', file=self.err)
        return 0

    def enabled_state(self, unit: str) -> str | None:
        """enabled, disabled or static; None when the unit does not exist."""
        files = find_unit(self.root, unit)
        if files.fragment is None:
            return None
        service = combine(self._read(files).texts)
        if not service.wanted_by:
            return "static"
        wants = self.root / "etc/systemd/system"
        on = any((wants / f"{t}.wants" / unit).is_symlink() for t in service.wanted_by)
        return "enabled" if on else "disabled"

    def cat(self, unit: str) -> int:
        """The unit's files as on disk, each under a `# path` line."""
        files = find_unit(self.root, unit)
        if files.fragment is None:
            print(f"No files found for {unit}.", file=self.err)
            return 1
        loaded = self._loaded_all().get(unit)
        if loaded is not None:
            self.warn_if_changed(unit, self.load(unit) or Loaded(files))
        parts = []
        for path in files.paths:
            text = (self.root / path.lstrip("/")).read_text()
            parts.append(f"# {path}\n{text.rstrip(chr(10))}\n")
        print("\n".join(parts), end="", file=self.out)
        return 0

    def status(self, unit: str, lines: int = 10) -> int:
        """systemctl status: Loaded, Drop-In, Active, Main PID and the journal's tail."""
        loaded = self.load(unit)
        if loaded is None:
            print(f"Unit {unit} could not be found.", file=self.err)
            return 4
        service = combine(loaded.texts)
        info = self.runtime(unit)
        state = str(info.get("state", "inactive"))
        dot = {"active": "\u25cf", "failed": "\u00d7", "activating": "\u25cf"}.get(state, "\u25cb")
        out = [f"{dot} {unit} - {service.description or unit}"]
        enabled = self.enabled_state(unit) or "disabled"
        out.append(f"     Loaded: loaded ({loaded.files.fragment}; {enabled}; {self.preset()})")
        if loaded.files.dropins:
            first = True
            for d in sorted({str(Path(p).parent) for p in loaded.files.dropins}):
                names = [Path(p).name for p in loaded.files.dropins if str(Path(p).parent) == d]
                label = "    Drop-In: " if first else "             "
                out.append(f"{label}{d}")
                out.append("             \u2514\u2500" + ", ".join(names))
                first = False
        since = info.get("since")
        when = ""
        if isinstance(since, (int, float)):
            ago = max(0, int(time.time() - since))
            stamp = datetime.fromtimestamp(since).astimezone().strftime("%a %Y-%m-%d %H:%M:%S %Z")
            when = f" since {stamp}; {_ago(ago)} ago"
        sub = str(info.get("sub", "dead"))
        result = info.get("result")
        detail = f" (Result: {result})" if state == "failed" or sub == "auto-restart" else ""
        out.append(f"     Active: {state} ({sub}){detail}{when}")
        for doc in service.documentation:
            out.append(f"       Docs: {doc}")
        pid = info.get("pid")
        if state == "active" and isinstance(pid, int):
            out.append(f"   Main PID: {pid} ({Path(str(info.get('argv0', unit))).name})")
            out.append(f"     CGroup: /system.slice/{unit}")
            out.append(f"             \u2514\u2500{pid} {info.get('cmdline', '')}")
        print("\n".join(out), file=self.out)
        tail = self.journal(unit, lines)
        if tail:
            print("", file=self.out)
            print("\n".join(tail), file=self.out)
        self.warn_if_changed(unit, loaded)
        return 0 if state == "active" else 3

    def preset(self) -> str:
        """The preset note of the Loaded: line as this node's systemd words it.

        systemd 249 (Ubuntu 22.04) says "vendor preset"; 252 and later "preset"; RHEL's
        presets leave units disabled.
        """
        try:
            fields = parse_env_file((self.root / "etc/os-release").read_text())
        except OSError:
            fields = {}
        if fields.get("ID") == "ubuntu" and fields.get("VERSION_ID") == "22.04":
            return "vendor preset: enabled"
        like = {fields.get("ID", ""), *fields.get("ID_LIKE", "").split()}
        return "preset: disabled" if like & {"rhel", "fedora", "centos"} else "preset: enabled"

    def journal(self, unit: str, lines: int | None) -> list[str]:
        """The unit's log lines (the last `lines` of them)."""
        try:
            text = (self.logs / f"{unit}.log").read_text(errors="replace")
        except OSError:
            return []
        all_lines = text.splitlines()
        return all_lines if lines is None else all_lines[-lines:] if lines else []


def _ago(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}min {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}min"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


# --- the supervisor ---------------------------------------------------------------------


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _journal_prefix(ident: str, pid: int) -> str:
    stamp = datetime.now().strftime("%b %d %H:%M:%S")
    return f"{stamp} {socket.gethostname()} {ident}[{pid}]: "


def supervise(root: Path, unit: str) -> int:
    """Run a unit's ExecStart= (applying Restart=) until SIGTERM; log like the journal."""
    manager = Manager(root, sys.stdout, sys.stderr)
    loaded = manager.load(unit)
    if loaded is None:
        return 5
    service = combine(loaded.texts)
    log_path = manager.logs / f"{unit}.log"
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            _kill_group(child.pid, signal.SIGTERM)
            # like systemd's TimeoutStopSec: what ignores SIGTERM is killed
            timer = threading.Timer(STOP_TIMEOUT, _kill_group, (child.pid, signal.SIGKILL))
            timer.daemon = True
            timer.start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    me = os.getpid()
    with log_path.open("a", buffering=1) as log:

        def system(message: str) -> None:
            log.write(_journal_prefix("systemd", 1) + message + "\n")

        desc = f"{unit} - {service.description}" if service.description else unit
        while True:
            since = time.time()
            env = {"PATH": SERVICE_PATH, "LANG": "C.UTF-8", **environment(root, service)}
            argv = command_line(service.exec_start[-1], env)
            try:
                child = subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    # its own process group stands in for the unit's cgroup: stop kills it all
                    start_new_session=True,
                )
            except OSError as e:
                system(f"{unit}: Failed to execute {argv[0] if argv else ''}: {e.strerror}")
                manager._record(
                    unit,
                    {"state": "failed", "sub": "failed", "result": "exit-code", "since": since},
                )
                return 1
            manager.pid_file(unit).write_text(f"{child.pid}\n")
            manager._record(
                unit,
                {
                    "state": "active",
                    "sub": "running",
                    "since": since,
                    "pid": child.pid,
                    "supervisor": me,
                    "argv0": argv[0],
                    "cmdline": shlex.join(argv),
                },
            )
            system(f"Started {desc}.")
            ident = Path(argv[0]).name
            assert child.stdout is not None
            for raw in child.stdout:
                log.write(_journal_prefix(ident, child.pid) + raw.decode(errors="replace"))
            code = child.wait()
            manager.pid_file(unit).unlink(missing_ok=True)
            if stopping:
                system(f"Stopping {desc}...")
                system(f"{unit}: Deactivated successfully.")
                system(f"Stopped {desc}.")
                manager._record(unit, {"state": "inactive", "sub": "dead", "since": time.time()})
                return 0
            result = "exit-code" if code > 0 else "signal" if code < 0 else "success"
            if code != 0:
                system(
                    f"{unit}: Main process exited, code=exited, status={code}/FAILURE"
                    if code > 0
                    else f"{unit}: Main process exited, code=killed, status={-code}"
                )
                system(f"{unit}: Failed with result '{result}'.")
            again = service.restart == "always" or (service.restart == "on-failure" and code != 0)
            if not again:
                final = {"state": "inactive" if code == 0 else "failed"}
                manager._record(
                    unit,
                    {
                        **final,
                        "sub": "dead" if code == 0 else "failed",
                        "result": result,
                        "since": time.time(),
                    },
                )
                return 0
            manager._record(
                unit,
                {
                    "state": "activating",
                    "sub": "auto-restart",
                    "result": result,
                    "since": time.time(),
                    "supervisor": me,
                },
            )
            deadline = time.monotonic() + service.restart_sec
            while time.monotonic() < deadline and not stopping:
                time.sleep(min(0.1, service.restart_sec))
            if stopping:
                manager._record(unit, {"state": "inactive", "sub": "dead", "since": time.time()})
                return 0
            system(f"{unit}: Scheduled restart job, restart counter is at 1.")


# --- command lines ----------------------------------------------------------------------


def systemctl(args: Sequence[str], root: Path, out: TextIO, err: TextIO) -> int:
    """Run systemctl; return its exit code."""
    words = [a for a in args if not a.startswith("-")]
    flags = [a for a in args if a.startswith("-")]
    quiet = "-q" in flags or "--quiet" in flags
    lines = 10
    for f in flags:
        if f.startswith("--lines="):
            lines = int(f.split("=", 1)[1])
    m = Manager(root, out, err)
    if not words:
        print("systemctl: simulated: listing units is not implemented", file=err)
        return 1
    verb, units = words[0], [unit_name(u) for u in words[1:]]
    if verb == "daemon-reload":
        return m.daemon_reload()
    if not units:
        print("Too few arguments.", file=err)
        return 1
    code = 0
    for unit in units:
        if verb == "start":
            code = m.start(unit) or code
        elif verb == "stop":
            code = m.stop(unit) or code
        elif verb in ("restart", "try-restart", "reload-or-restart"):
            code = m.restart(unit) or code
        elif verb == "status":
            code = m.status(unit, lines) or code
        elif verb == "is-active":
            state = m.is_active(unit)
            if not quiet:
                print(state, file=out)
            code = code or (0 if state == "active" else 3)
        elif verb == "is-failed":
            state = m.is_active(unit)
            if not quiet:
                print(state, file=out)
            code = code or (0 if state == "failed" else 1)
        elif verb == "is-enabled":
            enabled = m.enabled_state(unit)
            if enabled is None:
                print(
                    f"Failed to get unit file state for {unit}: No such file or directory",
                    file=err,
                )
                code = 1
            else:
                if not quiet:
                    print(enabled, file=out)
                code = code or (0 if enabled in ("enabled", "static") else 1)
        elif verb in ("enable", "disable"):
            code = m.enable(unit, verb == "enable") or code
            if "--now" in flags:
                code = (m.start(unit) if verb == "enable" else m.stop(unit)) or code
        elif verb == "cat":
            code = m.cat(unit) or code
        elif verb == "show":
            info = m.runtime(unit)
            print(f"MainPID={info.get('pid', 0) if info.get('state') == 'active' else 0}", file=out)
            print(f"ActiveState={info.get('state', 'inactive')}", file=out)
            print(f"SubState={info.get('sub', 'dead')}", file=out)
        else:
            print(f"systemctl: simulated verb not implemented yet: {verb}", file=err)
            return 1
    return code


def journalctl(args: Sequence[str], root: Path, out: TextIO, err: TextIO) -> int:
    """journalctl -u UNIT [-n N] [--no-pager]: the unit's log."""
    units: list[str] = []
    lines: int | None = None
    it = iter(args)
    for a in it:
        if a in ("-u", "--unit"):
            units.append(unit_name(next(it, "")))
        elif a.startswith("--unit="):
            units.append(unit_name(a.split("=", 1)[1]))
        elif a.startswith("-u") and len(a) > 2:
            units.append(unit_name(a[2:]))
        elif a in ("-n", "--lines"):
            value = next(it, "10")
            lines = None if value == "all" else int(value)
        elif a.startswith("--lines="):
            value = a.split("=", 1)[1]
            lines = None if value == "all" else int(value)
        elif a.startswith("-n") and a[2:].isdigit():
            lines = int(a[2:])
    m = Manager(root, out, err)
    found: list[str] = []
    for unit in units:
        found += m.journal(unit, None)
    if lines is not None:
        found = found[-lines:] if lines else []
    if not found:
        print("-- No entries --", file=out)
        return 0
    print("\n".join(found), file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: `systemctl ARGS`, `journalctl ARGS`, or `--supervise UNIT` (internal)."""
    args = list(sys.argv[1:] if argv is None else argv)
    root = sim_root()
    if args[:1] == ["--supervise"] and len(args) == 2:
        return supervise(root, args[1])
    tool = os.environ.get("NODEOPS_SIM_TOOL") or (args.pop(0) if args else "systemctl")
    if tool == "journalctl":
        return journalctl(args, root, sys.stdout, sys.stderr)
    return systemctl(args, root, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
