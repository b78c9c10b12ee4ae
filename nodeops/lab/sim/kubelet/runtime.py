"""The container runtime stand-in: containers are processes, recorded so a restarted kubelet
finds them again (as containerd keeps containers running while the kubelet restarts)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nodeops.lab.sim.kubelet import images

#: Where container records live: a tmpfs in each lab node, gone with the node like containerd's.
STATE_DIR = Path("/run/nodeops/containers")
LOG_DIR = Path("/var/log/pods")
PODS_DIR = Path("/var/lib/kubelet/pods")
EMPTY_DIR_PLUGIN = "kubernetes.io~empty-dir"


@dataclass(frozen=True)
class Container:
    """A running (or exited) container: its process and what the kubelet reports about it."""

    pod_uid: str
    pod_key: str  # namespace/name
    name: str
    image: str
    container_id: str  # 64 hex digits
    pid: int
    start_ticks: int
    started_at: str  # RFC 3339
    spec_hash: str  # the pod's hash when started: a changed static pod restarts it
    restart_count: int
    log_path: str
    source: str = "api"  # "file" for static pods
    pod_ip: str = ""

    @property
    def record_name(self) -> str:
        """File name of the record."""
        return f"{self.pod_uid}_{self.name}.json"


def start_ticks(pid: int) -> int | None:
    """A live process's start time in clock ticks; None when gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def now_rfc3339() -> str:
    """Now, as the API's metav1.Time renders it."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Runtime:
    """Starts, stops and finds containers; one per kubelet."""

    def __init__(
        self, state_dir: Path = STATE_DIR, log_dir: Path = LOG_DIR, pods_dir: Path = PODS_DIR
    ) -> None:
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.pods_dir = pods_dir
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._exit_codes: dict[int, int] = {}

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            code = proc.poll()
            if code is not None:
                # A signal death shows as 128+N, as container runtimes report it.
                self._exit_codes[pid] = code if code >= 0 else 128 - code
                del self._children[pid]

    def exit_code(self, c: Container) -> int | None:
        """How an ended container exited; None when unknown (started by an earlier kubelet)."""
        self._reap()
        return self._exit_codes.pop(c.pid, None)

    def running(self, c: Container) -> bool:
        """Whether the container's process still runs."""
        self._reap()
        return start_ticks(c.pid) == c.start_ticks

    def list(self) -> list[Container]:
        """Every recorded container (running or not)."""
        found = []
        for path in sorted(self.state_dir.glob("*.json")):
            try:
                found.append(Container(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue
        return found

    def _save(self, c: Container) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / f".{c.record_name}.tmp"
        tmp.write_text(json.dumps(asdict(c)))
        os.replace(tmp, self.state_dir / c.record_name)

    def forget(self, c: Container) -> None:
        """Drop a container's record."""
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / c.record_name).unlink()

    def start(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        *,
        spec_hash: str,
        restart_count: int = 0,
        source: str = "api",
        pod_ip: str = "",
    ) -> Container:
        """Start a container's process (hostPath volumes prepared, binds where paths differ)."""
        meta = pod["metadata"]
        pod_key = f"{meta['namespace']}/{meta['name']}"
        uid = str(meta.get("uid") or "")
        prepare_host_paths(pod)
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        proc_spec = images.process_for(pod_key, container, completes=policy != "Always")
        binds = [] if proc_spec.placeholder else images.host_path_binds(pod, container)
        argv = images.wrap_binds(proc_spec.argv, binds)
        log_dir = self.log_dir / f"{meta['namespace']}_{meta['name']}_{uid}" / container["name"]
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{restart_count}.log"
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "HOSTNAME": os.uname().nodename,
            **proc_spec.env,
        }
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=str(container.get("workingDir") or "/"),
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        self._children[proc.pid] = proc
        ticks = start_ticks(proc.pid) or 0
        c = Container(
            pod_uid=uid,
            pod_key=pod_key,
            name=str(container["name"]),
            image=str(container.get("image") or ""),
            container_id=secrets.token_hex(32),
            pid=proc.pid,
            start_ticks=ticks,
            started_at=now_rfc3339(),
            spec_hash=spec_hash,
            restart_count=restart_count,
            log_path=str(log_path),
            source=source,
            pod_ip=pod_ip,
        )
        self._save(c)
        return c

    def prepare_pod(self, pod: dict[str, Any]) -> None:
        """The pod's directory under /var/lib/kubelet/pods, with its emptyDir volumes."""
        uid = str(pod["metadata"].get("uid") or "")
        if not uid:
            return
        base = self.pods_dir / uid
        for sub in ("containers", "plugins", "volumes"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        for v in (pod.get("spec") or {}).get("volumes") or []:
            if isinstance(v, dict) and "emptyDir" in v and v.get("name"):
                (base / "volumes" / EMPTY_DIR_PLUGIN / str(v["name"])).mkdir(
                    parents=True, exist_ok=True
                )

    def remove_pod(self, uid: str, namespace: str, name: str) -> None:
        """Remove a gone pod's directory (emptyDir data with it) and its logs."""
        if not uid:
            return
        shutil.rmtree(self.pods_dir / uid, ignore_errors=True)
        shutil.rmtree(self.log_dir / f"{namespace}_{name}_{uid}", ignore_errors=True)

    def stop(self, c: Container, grace: float = 30.0) -> None:
        """SIGTERM the container's process group, SIGKILL after `grace` s; wait for its end."""
        if self.running(c):
            self._signal(c, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.running(c) and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.running(c):
                self._signal(c, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while self.running(c) and time.monotonic() < deadline:
                    time.sleep(0.02)
        self.forget(c)

    def _signal(self, c: Container, sig: signal.Signals) -> None:
        # The process leads its own session (start_new_session), so its group is its PID;
        # bind-mount wrappers exec, so the PID is the container's main process.
        try:
            os.killpg(c.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(c.pid, sig)


def prepare_host_paths(pod: dict[str, Any]) -> None:
    """Create hostPath volumes of type DirectoryOrCreate / FileOrCreate, as the kubelet does."""
    for v in (pod.get("spec") or {}).get("volumes") or []:
        hp = v.get("hostPath") if isinstance(v, dict) else None
        if not isinstance(hp, dict) or not hp.get("path"):
            continue
        path = Path(str(hp["path"]))
        kind = hp.get("type") or ""
        try:
            if kind == "DirectoryOrCreate" and not path.exists():
                path.mkdir(mode=0o755, parents=True)
            elif kind == "FileOrCreate" and not path.exists():
                path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                path.touch(mode=0o644)
        except OSError:
            continue
