"""Static pod operations over a Transport: read the kubelet's configuration and static pod
directory, apply a rendered manifest (diff, atomic write, wait for the mirror pod, restore on
timeout) and remove one (kept as a copy, wait until the mirror pod is gone).

Reads are single read-only round trips; every command of a run that changes a node goes
through a JournaledTransport. kubectl runs on a control-plane node with the admin kubeconfig.
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
import secrets
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nodeops import kube
from nodeops.cmd import Cmd, Raw
from nodeops.errors import NodeopsError
from nodeops.facts.script import Probe, script_for, show_files, split_files, split_probes
from nodeops.inventory import Inventory
from nodeops.kubeletconfig import (
    DirEntry,
    KubeletConfigFinding,
    kubelet_config_probe,
    parse_kubelet_probe,
    parse_listing,
    parse_read_files,
    read_files_probe,
    resolve,
    with_files,
)
from nodeops.node import Node
from nodeops.staticpods import (
    CREATE,
    KUBERNETES_TMP,
    REPLACE,
    InstallPlan,
    InvalidPod,
    TemplateError,
    generic_values,
    install_command,
    install_input,
    manifest_path,
    plan_install,
    remove_command,
    render,
    render_file,
    second_scheduler_values,
    stray_files,
    validate_pod,
    web_values,
)
from nodeops.transport import Transport

#: Template names the tasks know, to the template file each renders.
TEMPLATE_FILES = {"scheduler": "second-scheduler", "generic": "generic", "web": "web"}
#: kubeadm's own control-plane static pods: nodeops never removes or overwrites these.
KUBEADM_PODS = frozenset({"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"})
SCHEDULER_MANIFEST = "kube-scheduler.yaml"
SCHEDULER_CONFIG_VOLUME = "scheduler-config"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
DEFAULT_TIMEOUT = 120.0
POLL_SECONDS = 0.5

_FILES_PROBE = "static_pod_files"
_DIR_PROBE = "static_pod_dir"
_DEV_PROBE = "filesystems"


class StaticPodRefused(NodeopsError):
    """Input or node state that makes nodeops refuse before changing anything."""


class StaticPodFailed(NodeopsError):
    """A change that was made but did not end as asked; the message says the state left."""


# --- what the kubelet is configured with ---------------------------------------------------


def read_kubelet_config(transport: Transport) -> KubeletConfigFinding:
    """The kubelet's config file and staticPodPath with their sources (two read-only trips
    at most: the process/unit/env files, then the config file it names)."""
    probe = transport.run(kubelet_config_probe())
    evidence = parse_kubelet_probe(probe.stdout)
    finding = resolve(evidence)
    if finding.needs_files:
        files = list(finding.needs_files)
        read = transport.run(read_files_probe(files))
        finding = resolve(with_files(evidence, parse_read_files(read.stdout, files)))
    return finding


# --- the static pod directory --------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """One file of the static pod directory: its name, text and the pod it declares."""

    file: str
    text: str | None
    pod_name: str | None = None
    namespace: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class StaticPodDir:
    """What one read of the static pod directory found."""

    path: str
    entries: tuple[DirEntry, ...]
    manifests: tuple[Manifest, ...]
    extra_files: Mapping[str, str | None] = field(default_factory=dict)
    same_filesystem: bool | None = None

    @property
    def stray(self) -> list[str]:
        """Files the kubelet would read that are no manifests (backups, editor files)."""
        return stray_files(self.entries)

    def manifest(self, file: str) -> Manifest | None:
        """The manifest of that file name, if present."""
        return next((m for m in self.manifests if m.file == file), None)


def _dir_probe(static_pod_path: str, extra: Sequence[str]) -> Cmd:
    quoted = Raw(shlex.quote(static_pod_path.rstrip("/") or "/") + "/*")
    listing = Cmd(
        (
            Raw("if [ -d"),
            static_pod_path,
            Raw("]; then"),
            "ls",
            "-lanb",
            "--time-style=+%s",
            "--",
            static_pod_path,
            Raw("; else"),
            "printf",
            "%s\\n",
            "!missing",
            Raw("; fi"),
        )
    )
    # The temp files go to /etc/kubernetes/tmp: it (or /etc/kubernetes, before it exists)
    # must be on the manifest directory's filesystem for the rename to be atomic.
    devices = Cmd(
        (
            Raw("for p in"),
            KUBERNETES_TMP,
            posixpath.dirname(KUBERNETES_TMP),
            Raw('; do [ -e "$p" ] && break; done;'),
            "stat",
            "-L",
            "-c",
            "%d",
            Raw('-- "$p"'),
            static_pod_path,
        )
    )
    return script_for(
        (
            Probe(_DIR_PROBE, listing),
            Probe(_FILES_PROBE, show_files(quoted, *extra)),
            Probe(_DEV_PROBE, devices),
        )
    )


def _describe(file: str, text: str | None) -> Manifest:
    if text is None:
        return Manifest(file, None, problem="not readable")
    try:
        pod = validate_pod(text)
    except InvalidPod as exc:
        return Manifest(file, text, problem=str(exc))
    meta = pod["metadata"]
    return Manifest(file, text, str(meta["name"]), str(meta.get("namespace") or "default"))


def read_static_pod_dir(
    transport: Transport, static_pod_path: str, extra: Sequence[str] = ()
) -> StaticPodDir:
    """List the directory and read every file in it (and `extra` files) in one round trip."""
    result = transport.run(_dir_probe(static_pod_path, extra))
    outputs = split_probes(result.stdout)
    listing = outputs.get(_DIR_PROBE)
    if listing is None or listing.exit_code != 0:
        raise NodeopsError(
            f"{transport.node.name}: cannot list {static_pod_path}:"
            f" {listing.tail() if listing else 'no output'}"
        )
    if listing.text.strip() == "!missing":
        raise StaticPodRefused(
            f"{transport.node.name}: the static pod directory {static_pod_path} does not exist"
        )
    entries = tuple(parse_listing(listing.text))
    files_out = outputs.get(_FILES_PROBE)
    printed = split_files(files_out.text) if files_out is not None else {}
    base = posixpath.normpath(static_pod_path)
    manifests = tuple(
        _describe(e.name, printed.get(posixpath.join(base, e.name)))
        for e in entries
        if e.type in {"-", "l"} and not e.name.startswith(".")
    )
    devices = outputs.get(_DEV_PROBE)
    same: bool | None = None
    if devices is not None and devices.exit_code == 0:
        numbers = devices.text.split()
        same = len(numbers) == 2 and numbers[0] == numbers[1]
    return StaticPodDir(
        path=base,
        entries=entries,
        manifests=manifests,
        extra_files={path: printed.get(path) for path in extra},
        same_filesystem=same,
    )


# --- mirror pods ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MirrorPod:
    """A mirror pod as the API shows it: phase, readiness and the static pod's hash."""

    name: str
    namespace: str
    phase: str
    ready: str
    running: bool
    config_hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "phase": self.phase,
            "ready": self.ready,
            "running": self.running,
        }


def node_pods_command(node: str, namespace: str | None = None, name: str | None = None) -> Cmd:
    """`kubectl get pods --field-selector spec.nodeName=NODE[,metadata.name=NAME] -o json`
    across namespaces, or in one namespace (read-only)."""
    selector = f"spec.nodeName={node}" + (f",metadata.name={name}" if name else "")
    scope = ["--namespace", namespace] if namespace else ["--all-namespaces"]
    return kube.kubectl("get", "pods", *scope, f"--field-selector={selector}", "-o", "json")


def parse_mirror_pods(text: str) -> dict[tuple[str, str], MirrorPod]:
    """Mirror pods of a pod list, by (namespace, name)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise NodeopsError(f"kubectl did not return JSON: {error}") from None
    found: dict[tuple[str, str], MirrorPod] = {}
    for pod in document.get("items") or []:
        meta = pod.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        if MIRROR_ANNOTATION not in annotations:
            continue
        status = pod.get("status") or {}
        statuses = status.get("containerStatuses") or []
        containers = (pod.get("spec") or {}).get("containers") or []
        ready = sum(1 for s in statuses if s.get("ready"))
        running = (
            bool(statuses)
            and len(statuses) >= len(containers)
            and all("running" in (s.get("state") or {}) for s in statuses)
        )
        key = (str(meta.get("namespace") or "default"), str(meta.get("name")))
        found[key] = MirrorPod(
            name=key[1],
            namespace=key[0],
            phase=str(status.get("phase") or "Unknown"),
            ready=f"{ready}/{len(containers)}",
            running=running and status.get("phase") == "Running",
            config_hash=str(annotations[MIRROR_ANNOTATION]),
        )
    return found


def mirror_pods(api: Transport, node: str) -> dict[tuple[str, str], MirrorPod]:
    """The node's mirror pods, read with kubectl on a control-plane node."""
    return parse_mirror_pods(api.run(node_pods_command(node)).check().stdout)


def mirror_pod(api: Transport, node: str, namespace: str, name: str) -> MirrorPod | None:
    """One mirror pod of the node, None when the API has none of that name."""
    found = parse_mirror_pods(api.run(node_pods_command(node, namespace, name)).check().stdout)
    return found.get((namespace, name))


def mirror_name(pod_name: str, node: str) -> str:
    """A static pod's mirror pod name: NAME-NODENAME (node name lowercased)."""
    return f"{pod_name}-{node.lower()}"


# --- template values -----------------------------------------------------------------------


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    """`--set key=value` options as a dict; bad or repeated keys are refused."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", key):
            raise StaticPodRefused(f"--set takes key=value, not {pair!r}")
        if key in values:
            raise StaticPodRefused(f"--set {key} is given twice")
        values[key] = value
    return values


def _int(key: str, value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise TemplateError(f"--set {key}: {value!r} is not a number")
    return int(value)


def _bool(key: str, value: str) -> bool:
    if value.lower() in {"true", "yes", "1"}:
        return True
    if value.lower() in {"false", "no", "0"}:
        return False
    raise TemplateError(f"--set {key}: {value!r} is not true or false")


def _words(key: str, value: str) -> list[str]:
    """A list option: a JSON list of strings, or one word."""
    if value.startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TemplateError(f"--set {key}: not a JSON list: {exc}") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise TemplateError(f"--set {key}: must be a JSON list of strings")
        return items
    return [value]


def _check_keys(template: str, sets: Mapping[str, str], allowed: set[str]) -> None:
    unknown = sorted(k for k in sets if k not in allowed and not k.startswith("env."))
    if template != "generic":
        unknown += sorted(k for k in sets if k.startswith("env."))
    if unknown:
        raise TemplateError(
            f"template {template}: unknown --set key(s) {', '.join(unknown)};"
            f" known: {', '.join(sorted(allowed))}"
        )


def _require(template: str, sets: Mapping[str, str], *keys: str) -> None:
    missing = [k for k in keys if not sets.get(k)]
    if missing:
        raise TemplateError(
            f"template {template}: missing value(s) {', '.join(missing)}"
            f" (give them with --set {missing[0]}=...)"
        )


def template_values(template: str, sets: Mapping[str, str]) -> dict[str, Any]:
    """Values for the generic or web template from --set options (strings, converted)."""
    if template == "web":
        _check_keys(template, sets, {"name", "image", "port", "namespace", "role"})
        kwargs: dict[str, Any] = {k: v for k, v in sets.items() if k != "port"}
        if "port" in sets:
            kwargs["port"] = _int("port", sets["port"])
        return web_values(**kwargs)
    if template == "generic":
        allowed = {
            "name",
            "image",
            "namespace",
            "container_name",
            "image_pull_policy",
            "host_network",
            "command",
            "args",
            "port",
        }
        _check_keys(template, sets, allowed)
        _require(template, sets, "name", "image")
        env = {k.removeprefix("env."): v for k, v in sets.items() if k.startswith("env.")}
        options: dict[str, Any] = {}
        for key in ("namespace", "container_name", "image_pull_policy"):
            if key in sets:
                options[key] = sets[key]
        return generic_values(
            sets["name"],
            sets["image"],
            command=_words("command", sets["command"]) if "command" in sets else (),
            args=_words("args", sets["args"]) if "args" in sets else (),
            env=env,
            ports=[_int("port", sets["port"])] if "port" in sets else (),
            host_network=_bool("host_network", sets.get("host_network", "false")),
            **options,
        )
    raise TemplateError(f"unknown template {template!r}; known: {', '.join(TEMPLATE_FILES)}")


def is_template_file(template: str) -> bool:
    """Whether --template names a local Jinja2 file rather than a built-in template."""
    return "/" in template or template.endswith(".j2")


def check_template(template: str) -> None:
    """Refuse an unknown template name or a missing template file before connecting."""
    if is_template_file(template):
        if not Path(template).is_file():
            raise StaticPodRefused(f"template file {template} does not exist")
    elif template not in TEMPLATE_FILES:
        raise StaticPodRefused(
            f"unknown template {template!r}; known: {', '.join(TEMPLATE_FILES)}, or a path to"
            " a local *.j2 file"
        )


# --- plans ---------------------------------------------------------------------------------


def new_stamp() -> str:
    """A backup stamp: UTC time plus a random part, unique per run."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


@dataclass(frozen=True)
class ApplyPlan:
    """What static-pod-apply will do on one node, computed from read-only commands only."""

    node: str
    static_pod_path: str
    pod_name: str
    namespace: str
    mirror: str
    manifest: InstallPlan
    extra: tuple[InstallPlan, ...] = ()
    stamp: str = ""
    #: The text each replaced file had when it was read, to restore it on failure.
    previous: Mapping[str, str] = field(default_factory=dict)

    @property
    def installs(self) -> tuple[InstallPlan, ...]:
        """Installs in order: supporting files (a scheduler's configuration) first."""
        return (*self.extra, self.manifest)

    @property
    def changes(self) -> bool:
        """Whether anything is written."""
        return any(p.changes for p in self.installs)

    def diff(self) -> str:
        """A unified diff of every file the apply changes (a new file against /dev/null)."""
        parts: list[str] = []
        for plan in self.installs:
            if plan.action == REPLACE:
                parts.append(plan.diff)
            elif plan.action == CREATE:
                parts.append(
                    "".join(
                        difflib.unified_diff(
                            [],
                            plan.new_text.splitlines(keepends=True),
                            fromfile="/dev/null",
                            tofile=f"{plan.path} (new)",
                        )
                    )
                )
        return "".join(p if p.endswith("\n") or not p else p + "\n" for p in parts)

    @property
    def backup_dir(self) -> str:
        """Where replaced files are kept."""
        return posixpath.join(KUBERNETES_TMP, f"nodeops-{self.stamp}")


Rendered = tuple[str, tuple[tuple[str, str], ...]]


def render_offline(template: str, sets: Mapping[str, str]) -> Rendered | None:
    """The manifest (and supporting files) of a template that needs nothing from the node,
    rendered and validated before connecting; None for the scheduler template."""
    if template == "scheduler":
        return None
    if is_template_file(template):
        return render_file(Path(template), dict(sets)), ()
    return render(TEMPLATE_FILES[template], template_values(template, sets)), ()


def _render(template: str, sets: Mapping[str, str], pod_dir: StaticPodDir, node: str) -> Rendered:
    """The manifest text and supporting files (path, text) of a template."""
    offline = render_offline(template, sets)
    if offline is not None:
        return offline
    if template == "scheduler":
        _check_keys(template, sets, {"name"})
        _require(template, sets, "name")
        own = pod_dir.manifest(SCHEDULER_MANIFEST)
        if own is None or own.text is None:
            raise StaticPodRefused(
                f"{node}: no {SCHEDULER_MANIFEST} in {pod_dir.path} to copy: the scheduler"
                " template runs on a control-plane node"
            )
        values = second_scheduler_values(own.text, sets["name"])
        text = render(TEMPLATE_FILES[template], values)
        config_path, config_text = (
            values.get("scheduler_config_path"),
            values.get("scheduler_config"),
        )
        extra = ((str(config_path), str(config_text)),) if config_path and config_text else ()
        return text, extra
    return render(TEMPLATE_FILES[template], template_values(template, sets)), ()


def scheduler_config_path(sets: Mapping[str, str]) -> str | None:
    """The configuration file a second scheduler of that name gets (read before planning)."""
    name = sets.get("name", "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        return None
    return posixpath.join(posixpath.dirname(KUBERNETES_TMP), f"{name}-config.yaml")


def plan_apply(
    node: str,
    template: str,
    sets: Mapping[str, str],
    pod_dir: StaticPodDir,
    *,
    stamp: str,
    allow_stray_files: bool = False,
    rendered: Rendered | None = None,
) -> ApplyPlan:
    """Render (unless `rendered` holds render_offline's result), validate and compare with
    the node's files; StaticPodRefused, TemplateError or InvalidPod when nothing may be
    written."""
    stray = pod_dir.stray
    if stray and not allow_stray_files:
        raise StaticPodRefused(
            f"{node}: refusing to write into {pod_dir.path}: it holds files that are no"
            f" manifests, which the kubelet reads too: {', '.join(stray)}. Move them out of"
            " the directory (or pass --allow-stray-files)"
        )
    if pod_dir.same_filesystem is False:
        raise StaticPodRefused(
            f"{node}: {KUBERNETES_TMP} is not on the filesystem of {pod_dir.path}: the"
            " manifest could not be renamed into place atomically"
        )
    text, extra_files = rendered or _render(template, sets, pod_dir, node)
    pod = validate_pod(text)
    pod_name = str(pod["metadata"]["name"])
    namespace = str(pod["metadata"].get("namespace") or "default")
    if pod_name in KUBEADM_PODS:
        raise StaticPodRefused(f"{node}: {pod_name} is kubeadm's own static pod: not replaced")
    try:
        path = manifest_path(pod_dir.path, pod_name)
    except ValueError as exc:
        raise StaticPodRefused(f"{node}: {exc}") from None
    file = posixpath.basename(path)
    for other in pod_dir.manifests:
        if other.file != file and other.pod_name == pod_name:
            raise StaticPodRefused(
                f"{node}: {other.file} in {pod_dir.path} already declares pod {pod_name};"
                " two manifests of one pod name make the kubelet run only one of them"
            )
    existing = pod_dir.manifest(file)
    if existing is not None and existing.text is None:
        raise StaticPodRefused(f"{node}: {path} exists but could not be read")
    manifest = plan_install(existing.text if existing else None, text, path=path, stamp=stamp)
    previous: dict[str, str] = {}
    if existing is not None and existing.text is not None:
        previous[path] = existing.text
    extras: list[InstallPlan] = []
    for extra_path, extra_text in extra_files:
        if extra_path not in pod_dir.extra_files:
            raise NodeopsError(f"{node}: {extra_path} was not read before planning")
        old_extra = pod_dir.extra_files[extra_path]
        if old_extra is not None:
            previous[extra_path] = old_extra
        extras.append(
            plan_install(
                old_extra,
                extra_text,
                path=extra_path,
                stamp=stamp,
                keep_out_of=pod_dir.path,
            )
        )
    return ApplyPlan(
        node=node,
        static_pod_path=pod_dir.path,
        pod_name=pod_name,
        namespace=namespace,
        mirror=mirror_name(pod_name, node),
        manifest=manifest,
        extra=tuple(extras),
        stamp=stamp,
        previous=previous,
    )


# --- applying and waiting ------------------------------------------------------------------

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass
class Waiter:
    """Polling with an injectable clock, so unit tests do not sleep."""

    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    poll: float = POLL_SECONDS

    def until(self, timeout: float, check: Callable[[], bool]) -> bool:
        """Call check until it is true (True) or the timeout passes (False)."""
        deadline = self.clock() + timeout
        while True:
            if check():
                return True
            if self.clock() >= deadline:
                return False
            self.sleep(self.poll)


@dataclass(frozen=True)
class ApplyOutcome:
    """How an apply ended: the mirror pod Running after `seconds`, or unchanged."""

    plan: ApplyPlan
    seconds: float | None
    mirror: MirrorPod | None


def _inverse(plan: ApplyPlan, install: InstallPlan, stamp: str) -> tuple[Cmd, str | None]:
    """The command that undoes one install and its stdin: the old text back (the written
    file kept under the stamp's backup directory), or the new file moved there."""
    keep_out = plan.static_pod_path
    if install.action == CREATE:
        return remove_command(install.path, stamp=stamp, keep_out_of=keep_out), None
    old_text = plan.previous.get(install.path)
    if old_text is None:
        raise NodeopsError(f"the previous text of {install.path} is not known")
    back = plan_install(
        install.new_text, old_text, path=install.path, stamp=stamp, keep_out_of=keep_out
    )
    return install_command(back), install_input(back)


def _restore_hint(plan: ApplyPlan, done: Sequence[InstallPlan]) -> str:
    lines: list[str] = []
    for install in reversed(done):
        if install.action == REPLACE and install.backup_path:
            lines.append(f"sudo mv -T -- {install.backup_path} {install.path}")
        elif install.action == CREATE:
            lines.append(f"sudo mv -T -- {install.path} {plan.backup_dir}/")
    return "; ".join(lines)


def apply(
    node_t: Transport,
    api: Transport,
    plan: ApplyPlan,
    *,
    timeout: float,
    waiter: Waiter | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> ApplyOutcome:
    """Install the plan's files in order, then wait until the mirror pod (a new one, when it
    replaced a running one) is Running; on timeout or a failed write, undo what was written
    and raise StaticPodFailed naming the state left. Transports should be journaled."""
    waiter = waiter or Waiter()
    key = (plan.namespace, plan.mirror)
    if not plan.changes:
        return ApplyOutcome(plan, None, mirror_pod(api, plan.node, *key))
    # A replaced manifest has new content, so its pod gets a new hash: until then the API
    # still shows the previous pod. A created one may match a mirror pod not yet deleted.
    before = mirror_pod(api, plan.node, *key) if plan.manifest.action == REPLACE else None
    old_hash = before.config_hash if before is not None else None
    started = time.monotonic()
    done: list[InstallPlan] = []
    for install in plan.installs:
        if not install.changes:
            continue
        try:
            result = node_t.run(install_command(install), stdin=install_input(install))
        except NodeopsError as error:
            # The write may or may not have happened: say where each file may be.
            kept = f"; the previous copy is at {install.backup_path}" if install.backup_path else ""
            raise StaticPodFailed(
                f"{error}\n{install.path} may or may not hold the new text{kept}; written"
                f" before it: {', '.join(i.path for i in done) or 'nothing'}. Check with"
                f" `nodeops static-pods --node {plan.node}`, then run static-pod-apply again"
                f" (it shows the diff) or restore by hand: {_restore_hint(plan, [*done, install])}"
            ) from None
        if not result.ok:
            undone = _undo(node_t, plan, done)
            raise StaticPodFailed(
                f"{result.describe_failure()}\nnothing of {install.path} was changed; {undone}"
            )
        done.append(install)
        say(
            f"{plan.node}: wrote {install.path}"
            + (f" (previous copy kept at {install.backup_path})" if install.backup_path else "")
        )
    seen: list[MirrorPod | None] = [None]
    api_errors: list[str] = []

    def up() -> bool:
        try:
            pod = mirror_pod(api, plan.node, *key)
        except NodeopsError as error:  # the API may be briefly away: keep polling
            api_errors.append(str(error))
            return False
        seen[0] = pod
        if pod is None or not pod.running:
            return False
        # A replaced pod: the mirror must be the new manifest's, not the old one still shown.
        return old_hash is None or pod.config_hash != old_hash

    if waiter.until(timeout, up):
        if not plan.manifest.changes:
            say(
                f"{plan.node}: note: only {', '.join(i.path for i in done)} changed; the"
                f" running pod {plan.mirror} keeps what it read at its start until it restarts"
            )
        return ApplyOutcome(plan, time.monotonic() - started, seen[0])
    last = seen[0]
    if last is None:
        state = "no mirror pod"
    elif old_hash is not None and last.config_hash == old_hash:
        state = f"only the previous manifest's pod, {last.phase}"
    else:
        state = f"{last.phase}, {last.ready} ready"
    if api_errors:
        state += "; last API error: " + " | ".join(api_errors[-1].split("\n  "))
    undone = _undo(node_t, plan, done)
    raise StaticPodFailed(
        f"{plan.node}: mirror pod {plan.namespace}/{plan.mirror} was not Running within"
        f" {timeout:g} s (last seen: {state}); {undone}"
    )


def _undo(node_t: Transport, plan: ApplyPlan, done: Sequence[InstallPlan]) -> str:
    """Undo written installs, newest first; a sentence saying what state was left."""
    if not done:
        return "nothing was written"
    failed_stamp = f"{plan.stamp}-failed"
    undone: list[str] = []
    for install in reversed(done):
        try:
            command, stdin = _inverse(plan, install, failed_stamp)
            result = node_t.run(command, stdin=stdin)
        except NodeopsError as error:
            return (
                f"restoring failed ({error}); restored so far: {', '.join(undone) or 'nothing'};"
                f" to restore by hand on {plan.node}: {_restore_hint(plan, done)}"
            )
        if not result.ok:
            return (
                f"restoring {install.path} failed ({result.describe_failure()}); to restore by"
                f" hand on {plan.node}: {_restore_hint(plan, done)}"
            )
        undone.append(install.path)
    kept = posixpath.join(KUBERNETES_TMP, f"nodeops-{failed_stamp}")
    previous = (
        f"; the replaced files stay kept in {plan.backup_dir}"
        if any(i.action == REPLACE for i in done)
        else ""
    )
    return (
        f"restored the previous state of {', '.join(undone)} (the files written by this run"
        f" are kept in {kept}){previous}"
    )


# --- removing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemovePlan:
    """What static-pod-remove will move out of the directory, and the mirror pod to wait for."""

    node: str
    static_pod_path: str
    pod_name: str
    namespace: str
    mirror: str
    paths: tuple[str, ...]
    stamp: str

    @property
    def backup_dir(self) -> str:
        """Where the removed files are kept."""
        return posixpath.join(KUBERNETES_TMP, f"nodeops-{self.stamp}")

    def kept(self, path: str) -> str:
        """Where a removed file is kept."""
        return posixpath.join(self.backup_dir, posixpath.basename(path))


def _nodeops_scheduler_config(text: str, pod_name: str) -> str | None:
    """The configuration file nodeops made for a second scheduler, if the manifest mounts it."""
    try:
        pod = validate_pod(text)
    except InvalidPod:
        return None
    wanted = scheduler_config_path({"name": pod_name})
    for volume in pod["spec"].get("volumes") or []:
        if (
            isinstance(volume, dict)
            and volume.get("name") == SCHEDULER_CONFIG_VOLUME
            and (volume.get("hostPath") or {}).get("path") == wanted
        ):
            return wanted
    return None


def plan_remove(node: str, name: str, pod_dir: StaticPodDir, *, stamp: str) -> RemovePlan:
    """Find the manifest of a static pod by its name (or its mirror pod's NAME-NODENAME)."""
    candidates = [m for m in pod_dir.manifests if m.pod_name == name]
    suffix = f"-{node.lower()}"
    if not candidates and name.endswith(suffix):
        name = name.removesuffix(suffix)
        candidates = [m for m in pod_dir.manifests if m.pod_name == name]
    if not candidates:
        known = (
            ", ".join(f"{m.pod_name} ({m.file})" for m in pod_dir.manifests if m.pod_name) or "none"
        )
        raise StaticPodRefused(
            f"{node}: no manifest in {pod_dir.path} declares a pod named {name}; static pods"
            f" there: {known}"
        )
    if len(candidates) > 1:
        raise StaticPodRefused(
            f"{node}: several manifests declare pod {name}:"
            f" {', '.join(m.file for m in candidates)}; remove the extra ones by hand"
        )
    found = candidates[0]
    if name in KUBEADM_PODS:
        raise StaticPodRefused(
            f"{node}: {name} is kubeadm's own static pod; nodeops does not remove it"
        )
    paths = [posixpath.join(pod_dir.path, found.file)]
    config = _nodeops_scheduler_config(found.text or "", name)
    if config is not None:
        paths.append(config)
    return RemovePlan(
        node=node,
        static_pod_path=pod_dir.path,
        pod_name=name,
        namespace=found.namespace or "default",
        mirror=mirror_name(name, node),
        paths=tuple(paths),
        stamp=stamp,
    )


def remove(
    node_t: Transport,
    api: Transport,
    plan: RemovePlan,
    *,
    timeout: float,
    waiter: Waiter | None = None,
) -> float:
    """Move the manifest (then a scheduler's configuration) to the backup directory and wait
    until the mirror pod is gone; the seconds it took. StaticPodFailed names the state left."""
    waiter = waiter or Waiter()
    started = time.monotonic()
    moved: list[str] = []
    for path in plan.paths:
        try:
            result = node_t.run(
                remove_command(path, stamp=plan.stamp, keep_out_of=plan.static_pod_path)
            )
        except NodeopsError as error:
            raise StaticPodFailed(
                f"{error}\n{path} may or may not have been moved to {plan.kept(path)}; moved"
                f" before it: {', '.join(moved) or 'nothing'}. Check with `nodeops static-pods"
                f" --node {plan.node}` and run static-pod-remove again"
            ) from None
        if not result.ok:
            back = "; ".join(f"sudo mv -T -- {plan.kept(p)} {p}" for p in moved)
            raise StaticPodFailed(
                f"{result.describe_failure()}\nmoved so far: {', '.join(moved) or 'nothing'}"
                + (f"; to put them back: {back}" if back else "")
            )
        moved.append(path)
    key = (plan.namespace, plan.mirror)

    def gone() -> bool:
        try:
            return mirror_pod(api, plan.node, *key) is None
        except NodeopsError:  # the API may be briefly away: keep polling
            return False

    if waiter.until(timeout, gone):
        return time.monotonic() - started
    back = "; ".join(f"sudo mv -T -- {plan.kept(p)} {p}" for p in plan.paths)
    raise StaticPodFailed(
        f"{plan.node}: the manifest is out of {plan.static_pod_path} (kept in"
        f" {plan.backup_dir}), but mirror pod {plan.namespace}/{plan.mirror} still exists"
        f" after {timeout:g} s: check the kubelet on {plan.node}. To put it back: {back}"
    )


# --- where kubectl runs --------------------------------------------------------------------


def control_plane(inventory: Inventory, via: str | None) -> Node:
    """The node kubectl runs on: --via, else the inventory's first control plane."""
    if via:
        return inventory.node(via)
    for node in inventory.nodes:
        if node.is_control_plane:
            return node
    raise StaticPodRefused(
        f"{inventory.source}: no node has the control-plane role; name one with --via"
    )


def static_pod_path(finding: KubeletConfigFinding, node: str) -> str:
    """The staticPodPath, or StaticPodRefused saying why nodeops cannot use one."""
    try:
        return finding.require_static_pod_path()
    except NodeopsError as exc:
        raise StaticPodRefused(f"{node}: {exc}") from None
