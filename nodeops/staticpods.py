"""Static pods: render (Jinja2), validate, plan, and install or remove atomically.

Rendering is safe by construction: every `{{ value }}` is emitted as JSON (a YAML flow
scalar or collection), so no value can add a key, a document or a line; undefined
variables are errors; and the result must be exactly one valid v1 Pod or nothing is written.

Installing follows the design rule for files on nodes: the new manifest is written to a
temp file in /etc/kubernetes/tmp (same filesystem, outside the manifest directory, since
the kubelet reads every non-dot file there), made 0600 root:root, then renamed into place
with `mv -T`. Replaced and removed manifests are moved to
/etc/kubernetes/tmp/nodeops-<timestamp>/, never deleted and never left in the manifest dir.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import functools
import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from nodeops.cmd import Arg, Cmd, Raw
from nodeops.errors import NodeopsError
from nodeops.kubeletconfig import DirEntry

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates" / "staticpods"
TEMPLATES = ("second-scheduler", "generic", "web")
STATIC_POD_DIR = "/etc/kubernetes/manifests"
KUBERNETES_TMP = "/etc/kubernetes/tmp"
#: The namespace the kubelet gives a static pod whose manifest names none
#: (pkg/kubelet/config/common.go applyDefaults: metav1.NamespaceDefault).
DEFAULT_NAMESPACE = "default"

SECOND_SCHEDULER_SECURE_PORT = 10269
SECOND_SCHEDULER_INSECURE_PORT = 10261
_SCHEDULER_SECURE_PORT = 10259
_SCHEDULER_INSECURE_PORT = 10251

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class InvalidPod(NodeopsError, ValueError):
    """Rendered or read text that is not exactly one valid v1 Pod."""


class TemplateError(NodeopsError, ValueError):
    """A template that cannot be rendered: unknown, an undefined variable, a bad value."""


def is_dns1123_label(name: str) -> bool:
    """A DNS-1123 label: lowercase alphanumerics and '-', at most 63 characters."""
    return len(name) <= 63 and _DNS1123_LABEL.fullmatch(name) is not None


def is_dns1123_subdomain(name: str) -> bool:
    """A DNS-1123 subdomain: labels joined by '.', at most 253 characters."""
    return len(name) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(name) is not None


# --- rendering -----------------------------------------------------------------------------

# Characters a YAML double-quoted scalar must not hold raw: C0/C1 controls, NEL and the
# Unicode line separators (YAML 1.1 line breaks), the BOM and non-characters.
_YAML_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def yaml_value(value: object) -> str:
    """A value as one JSON token that YAML reads back as the same value (Jinja's finalize).

    Strings, numbers, booleans, None, lists and dicts only; NaN, infinities and lone
    surrogates are refused.
    """
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the variable
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"value cannot be rendered safely: {exc}") from None
    if _SURROGATE.search(text):
        raise TemplateError("value cannot be rendered safely: it holds a lone surrogate")
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@functools.cache
def environment() -> SandboxedEnvironment:
    """The Jinja2 environment for static pod templates (sandboxed, strict, JSON values)."""
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=yaml_value,
    )


def _template_file(template_name: str) -> str:
    name = template_name.removesuffix(".yaml.j2")
    if name not in TEMPLATES:
        raise TemplateError(
            f"unknown static pod template {template_name!r}; known: {', '.join(TEMPLATES)}"
        )
    return f"{name}.yaml.j2"


def render(template_name: str, values: Mapping[str, Any]) -> str:
    """The manifest text of a template with values; InvalidPod unless it is one valid Pod.

    Undefined variables raise TemplateError (StrictUndefined); values are never evaluated
    as template code.
    """
    template = environment().get_template(_template_file(template_name))
    try:
        text = template.render(**values)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {template_name}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {template_name}: {exc}") from None
    validate_pod(text)
    return text


def render_file(path: Path, values: Mapping[str, Any]) -> str:
    """A local template file rendered as the built-in ones are (sandboxed, StrictUndefined,
    every value as JSON); InvalidPod unless the result is one valid Pod."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read the template {path}: {exc}") from None
    env = environment()
    try:
        # No loader: a local template cannot include or extend other files.
        template = env.overlay(loader=None).from_string(source)
        text = template.render(**values)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {path}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {path}: {exc}") from None
    validate_pod(text)
    return text


# --- validation ----------------------------------------------------------------------------


def _check_container(where: str, container: object, problems: list[str]) -> str | None:
    if not isinstance(container, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    name = container.get("name")
    if not isinstance(name, str) or not is_dns1123_label(name):
        problems.append(f"{where}.name: {name!r} is not a DNS-1123 label")
    image = container.get("image")
    if not isinstance(image, str) or not image.strip():
        problems.append(f"{where}.image: required")
    elif image != image.strip() or any(c.isspace() for c in image):
        problems.append(f"{where}.image: {image!r} holds whitespace")
    for key in ("command", "args"):
        items = container.get(key)
        if items is not None and not (
            isinstance(items, list) and all(isinstance(i, str) for i in items)
        ):
            problems.append(f"{where}.{key}: must be a list of strings")
    return name if isinstance(name, str) else None


def validate_pod(text: str) -> dict[str, Any]:
    """The Pod in text, or InvalidPod listing every problem.

    Exactly one YAML document (safe_load), a mapping with apiVersion v1 and kind Pod,
    metadata.name a DNS-1123 subdomain, metadata.namespace (if set; the kubelet defaults it
    to "default") a DNS-1123 label, at least one container, each with a DNS-1123 label
    name (unique) and an image, and hostNetwork/hostPID/hostIPC booleans when present.
    """
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise InvalidPod(f"invalid static pod: not valid YAML: {exc}") from None
    if len(documents) != 1:
        raise InvalidPod(
            f"invalid static pod: {len(documents)} YAML documents; a manifest holds exactly one"
        )
    pod = documents[0]
    if not isinstance(pod, dict):
        raise InvalidPod("invalid static pod: the document is not a mapping")
    problems: list[str] = []
    if pod.get("apiVersion") != "v1":
        problems.append(f"apiVersion: {pod.get('apiVersion')!r}, must be 'v1'")
    if pod.get("kind") != "Pod":
        problems.append(f"kind: {pod.get('kind')!r}, must be 'Pod'")
    meta = pod.get("metadata")
    if not isinstance(meta, dict):
        problems.append("metadata: required")
    else:
        name = meta.get("name")
        if not isinstance(name, str) or not is_dns1123_subdomain(name):
            problems.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
        namespace = meta.get("namespace")
        if namespace is not None and (
            not isinstance(namespace, str) or not is_dns1123_label(namespace)
        ):
            problems.append(f"metadata.namespace: {namespace!r} is not a DNS-1123 label")
        for key in ("labels", "annotations"):
            value = meta.get(key)
            if value is not None and not (
                isinstance(value, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
            ):
                problems.append(f"metadata.{key}: must map strings to strings")
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        problems.append("spec: required")
    else:
        containers = spec.get("containers")
        if not isinstance(containers, list) or not containers:
            problems.append("spec.containers: at least one container is required")
        else:
            names: list[str | None] = []
            for key in ("initContainers", "containers"):
                items = spec.get(key) or []
                if not isinstance(items, list):
                    problems.append(f"spec.{key}: must be a list")
                    continue
                for index, container in enumerate(items):
                    names.append(_check_container(f"spec.{key}[{index}]", container, problems))
            duplicates = sorted({n for n in names if n and names.count(n) > 1})
            if duplicates:
                problems.append(f"spec.containers: duplicate names {duplicates}")
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if key in spec and not isinstance(spec[key], bool):
                problems.append(f"spec.{key}: {spec[key]!r} is not a boolean")
    if problems:
        raise InvalidPod("invalid static pod: " + "; ".join(problems))
    return pod


# --- values for the templates --------------------------------------------------------------


def web_values(
    name: str = "static-web",
    image: str = "nginx",
    *,
    port: int = 80,
    namespace: str = DEFAULT_NAMESPACE,
    role: str = "myrole",
) -> dict[str, Any]:
    """Values for the `web` template (the Kubernetes docs' static-web example)."""
    return {"name": name, "image": image, "port": port, "namespace": namespace, "role": role}


def generic_values(
    name: str,
    image: str,
    *,
    namespace: str = "kube-system",
    container_name: str | None = None,
    command: Sequence[str] = (),
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    ports: Iterable[int | Mapping[str, Any]] = (),
    resources: Mapping[str, Mapping[str, str]] | None = None,
    host_paths: Iterable[Mapping[str, Any]] = (),
    host_network: bool = False,
    image_pull_policy: str = "IfNotPresent",
) -> dict[str, Any]:
    """Values for the `generic` template, checked and with defaults filled in.

    `ports` are numbers or {container_port, protocol?, name?}; `resources` is
    {"requests"|"limits": {resource: quantity}}; `host_paths` are {name, host_path,
    mount_path?, read_only?, type?} (mount_path defaults to host_path, type to "").
    """
    if resources is not None:
        unknown = set(resources) - {"requests", "limits"}
        if unknown:
            raise TemplateError(f"resources: unknown keys {sorted(unknown)}")
    port_items: list[dict[str, Any]] = []
    for port in ports:
        item = {"container_port": port} if isinstance(port, int) else dict(port)
        number = item.get("container_port")
        if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 65536:
            raise TemplateError(f"ports: {number!r} is not a port number")
        port_items.append(
            {
                "container_port": number,
                "protocol": item.get("protocol", "TCP"),
                "name": item.get("name"),
            }
        )
    volumes: list[dict[str, Any]] = []
    for volume in host_paths:
        host_path = volume.get("host_path")
        if not isinstance(host_path, str) or not host_path.startswith("/"):
            raise TemplateError(f"host_paths: {host_path!r} is not an absolute path")
        volumes.append(
            {
                "name": volume["name"],
                "host_path": host_path,
                "mount_path": volume.get("mount_path", host_path),
                "read_only": bool(volume.get("read_only", True)),
                "type": volume.get("type", ""),
            }
        )
    return {
        "name": name,
        "namespace": namespace,
        "container_name": container_name or name,
        "image": image,
        "image_pull_policy": image_pull_policy,
        "command": list(command),
        "args": list(args),
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "ports": port_items,
        "resources": {k: dict(v) for k, v in (resources or {}).items()},
        "host_paths": volumes,
        "host_network": bool(host_network),
    }


_IMAGE_VERSION = re.compile(r":v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+@][^/]*)?$")
# Flags the copy drops: its own leader election, name and ports are set afresh.
_DROPPED_FLAGS = frozenset(
    {"leader-elect", "scheduler-name", "lock-object-name", "lock-object-namespace", "port"}
)
_REFUSED_FLAGS = frozenset(
    {"config", "policy-config-file", "policy-configmap", "use-legacy-policy-config"}
)
_CONTAINER_KEYS = frozenset(
    {
        "name",
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "env",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "resources",
        "securityContext",
        "volumeMounts",
    }
)
_SPEC_KEYS = frozenset(
    {
        "containers",
        "hostNetwork",
        "priorityClassName",
        "priority",
        "securityContext",
        "tolerations",
        "volumes",
    }
)


def _scheduler_config_api(minor: int) -> str:
    """The KubeSchedulerConfiguration version a kube-scheduler 1.<minor> reads."""
    if minor >= 25:
        return "kubescheduler.config.k8s.io/v1"
    if minor >= 23:
        return "kubescheduler.config.k8s.io/v1beta3"
    return "kubescheduler.config.k8s.io/v1beta2"


def _joined_flags(command: Sequence[str]) -> list[str]:
    """`--flag value` pairs joined into `--flag=value` (kube-scheduler takes no positionals)."""
    out: list[str] = list(command[:1])
    for word in command[1:]:
        if out[1:] and not word.startswith("-") and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={word}"
        else:
            out.append(word)
    return out


def _remap_probe(probe: object, ports: Mapping[int, int]) -> object:
    if not isinstance(probe, dict):
        return probe
    probe = copy.deepcopy(probe)
    http = probe.get("httpGet")
    if isinstance(http, dict) and http.get("port") in ports:
        http["port"] = ports[http["port"]]
    return probe


def second_scheduler_values(
    scheduler_manifest_text: str,
    name: str,
    *,
    version: tuple[int, int] | None = None,
    config_dir: str = "/etc/kubernetes",
    secure_port: int = SECOND_SCHEDULER_SECURE_PORT,
    insecure_port: int = SECOND_SCHEDULER_INSECURE_PORT,
) -> dict[str, Any]:
    """Values for the `second-scheduler` template from the node's kube-scheduler manifest.

    The copy keeps the image (same version as the running scheduler), volumes, probes and
    kubeconfig; it gets the new name (pod, container and `component` label),
    `--leader-elect=false`, and its own ports so both bind on the host network: the secure
    port (1.13+) and the insecure port (before 1.23), probes following. kube-scheduler 1.22
    removed `--scheduler-name`; from 1.22 on, the name goes into a KubeSchedulerConfiguration
    that the values carry as `scheduler_config` (text) for `scheduler_config_path`, mounted
    into the pod. `version` (major 1's minor as (1, minor)) defaults to the image tag's.
    """
    if not is_dns1123_label(name):
        raise TemplateError(f"scheduler name {name!r} is not a DNS-1123 label")
    try:
        pod = validate_pod(scheduler_manifest_text)
    except InvalidPod as exc:
        raise TemplateError(f"the node's kube-scheduler manifest: {exc}") from None
    spec = pod["spec"]
    containers = spec["containers"]
    container = next((c for c in containers if c.get("name") == "kube-scheduler"), None)
    if container is None:
        if len(containers) != 1:
            raise TemplateError("the kube-scheduler manifest has no container kube-scheduler")
        container = containers[0]
    image = container["image"]
    if version is None:
        match = _IMAGE_VERSION.search(image)
        if match is None or match.group(1) != "1":
            raise TemplateError(
                f"cannot tell the kube-scheduler version from the image {image!r}; pass version"
            )
        version = (1, int(match.group(2)))
    minor = version[1]

    command = _joined_flags([*container.get("command", []), *container.get("args", [])])
    if not command:
        raise TemplateError("the kube-scheduler container has no command")
    kept: list[str] = [command[0]]
    old_port: str | None = None
    old_secure: str | None = None
    kubeconfig: str | None = None
    for arg in command[1:]:
        flag, _, value = arg.removeprefix("--").partition("=")
        flag = flag.replace("_", "-")
        if flag in _REFUSED_FLAGS:
            raise TemplateError(
                f"the node's kube-scheduler uses --{flag}; nodeops cannot derive a second"
                " scheduler from a scheduler configured that way"
            )
        if flag == "port":
            old_port = value
        if flag == "secure-port":
            old_secure = value
            continue
        if flag == "kubeconfig":
            kubeconfig = value
            if minor >= 22:
                continue  # ignored next to --config: it goes into the configuration file
        if flag in _DROPPED_FLAGS or flag.startswith("leader-elect-"):
            continue
        kept.append(arg)
    kept.append("--leader-elect=false")

    ports: dict[int, int] = {}
    if minor < 23:
        if old_port == "0":
            kept.append("--port=0")
        else:
            kept.append(f"--port={insecure_port}")
            ports[int(old_port) if old_port and old_port.isdigit() else 10251] = insecure_port
    if minor >= 13:
        kept.append(f"--secure-port={secure_port}")
        ports[int(old_secure) if old_secure and old_secure.isdigit() else 10259] = secure_port

    volumes = copy.deepcopy(spec.get("volumes") or [])
    mounts = copy.deepcopy(container.get("volumeMounts") or [])
    config_text: str | None = None
    config_path: str | None = None
    if minor >= 22:
        if not kubeconfig:
            raise TemplateError("the node's kube-scheduler has no --kubeconfig to copy")
        config_path = posixpath.join(config_dir, f"{name}-config.yaml")
        config_text = yaml.safe_dump(
            {
                "apiVersion": _scheduler_config_api(minor),
                "kind": "KubeSchedulerConfiguration",
                "clientConnection": {"kubeconfig": kubeconfig},
                "leaderElection": {"leaderElect": False},
                "profiles": [{"schedulerName": name}],
            },
            sort_keys=False,
        )
        kept.append(f"--config={config_path}")
        volumes.append(
            {"name": "scheduler-config", "hostPath": {"path": config_path, "type": "File"}}
        )
        mounts.append({"name": "scheduler-config", "mountPath": config_path, "readOnly": True})
    else:
        kept.append(f"--scheduler-name={name}")

    labels = dict(pod["metadata"].get("labels") or {})
    labels["component"] = name
    dropped = sorted(
        [f"spec.{k}" for k in spec if k not in _SPEC_KEYS]
        + [f"container.{k}" for k in container if k not in _CONTAINER_KEYS]
    )
    return {
        "name": name,
        "namespace": pod["metadata"].get("namespace") or "kube-system",
        "labels": labels,
        "annotations": dict(pod["metadata"].get("annotations") or {}),
        "host_network": bool(spec.get("hostNetwork", True)),
        "priority_class_name": spec.get("priorityClassName"),
        "priority": spec.get("priority"),
        "security_context": spec.get("securityContext"),
        "tolerations": spec.get("tolerations") or [],
        "image": image,
        "image_pull_policy": container.get("imagePullPolicy"),
        "command": kept,
        "env": container.get("env") or [],
        "liveness_probe": _remap_probe(container.get("livenessProbe"), ports),
        "readiness_probe": _remap_probe(container.get("readinessProbe"), ports),
        "startup_probe": _remap_probe(container.get("startupProbe"), ports),
        "resources": container.get("resources"),
        "container_security_context": container.get("securityContext"),
        "volume_mounts": mounts,
        "volumes": volumes,
        "scheduler_config": config_text,
        "scheduler_config_path": config_path,
        "dropped": dropped,
    }


# --- the static pod directory --------------------------------------------------------------

#: Names editors, package managers and people leave behind. The kubelet reads every
#: non-dot file in the directory as a manifest, backups included.
STRAY_PATTERNS = (
    "*~",
    "#*#",
    "*.bak",
    "*.backup",
    "*.orig",
    "*.rej",
    "*.old",
    "*.save",
    "*.swp",
    "*.swo",
    "*.tmp",
    "*.dpkg-*",
    "*.ucf-*",
    "*.rpmnew",
    "*.rpmsave",
    "*.rpmorig",
)
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def stray_files(listing: Iterable[DirEntry | str]) -> list[str]:
    """Names in a static pod directory that the kubelet would read but are no manifests.

    Backups and editor files (STRAY_PATTERNS) and anything not named *.yaml, *.yml or
    *.json. Dot-files are ignored by the kubelet and are not stray; directories are not
    read (the kubelet does not recurse).
    """
    stray: list[str] = []
    for entry in listing:
        name, kind = (entry, "-") if isinstance(entry, str) else (entry.name, entry.type)
        if not name or name.startswith(".") or kind == "d":
            continue
        backup = any(fnmatch.fnmatchcase(name, pattern) for pattern in STRAY_PATTERNS)
        if backup or not name.endswith(MANIFEST_SUFFIXES):
            stray.append(name)
    return sorted(stray)


def manifest_path(static_pod_path: str, pod_name: str) -> str:
    """`<staticPodPath>/<pod_name>.yaml`; refuses names that could leave the directory or hide.

    The name must be a DNS-1123 subdomain (so no `/`, no `..`, no leading dot).
    """
    if "/" in pod_name or ".." in pod_name or pod_name.startswith("."):
        raise ValueError(f"refusing manifest name {pod_name!r}: no '/', '..' or leading '.'")
    if not is_dns1123_subdomain(pod_name):
        raise ValueError(f"refusing manifest name {pod_name!r}: not a DNS-1123 subdomain")
    if not static_pod_path.startswith("/") or static_pod_path.rstrip("/") == "":
        raise ValueError(f"refusing static pod path {static_pod_path!r}: not an absolute dir")
    return posixpath.join(posixpath.normpath(static_pod_path), f"{pod_name}.yaml")


# --- install and remove --------------------------------------------------------------------

UNCHANGED = "unchanged"
CREATE = "create"
REPLACE = "replace"


def backup_dir(stamp: str, root: str = KUBERNETES_TMP) -> str:
    """The backup directory of one nodeops run: `<root>/nodeops-<stamp>`."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", stamp):
        raise ValueError(f"not a timestamp: {stamp!r}")
    return posixpath.join(root, f"nodeops-{stamp}")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class InstallPlan:
    """What installing a manifest will do: unchanged, create, or replace (with a diff)."""

    path: str
    action: str
    new_text: str
    diff: str = ""
    backup_path: str | None = None
    old_sha256: str | None = None
    keep_out_of: str = ""

    @property
    def changes(self) -> bool:
        """Whether the install changes anything."""
        return self.action != UNCHANGED


def _check_outside(what: str, path: str, directory: str) -> None:
    """Refuse a temp or backup location in (or under) the directory it must stay out of."""
    path, directory = posixpath.normpath(path), posixpath.normpath(directory)
    if path == directory or path.startswith(directory.rstrip("/") + "/"):
        raise ValueError(f"the {what} {path} is inside {directory}")


def plan_install(
    existing_text: str | None,
    new_text: str,
    *,
    path: str,
    stamp: str,
    backup_root: str = KUBERNETES_TMP,
    keep_out_of: str | None = None,
) -> InstallPlan:
    """Compare the node's file (None when absent) with the new text.

    The backup of a replaced file goes to `<backup_root>/nodeops-<stamp>/<file>`, which must
    stay out of `keep_out_of`: the file's own directory by default; pass the staticPodPath
    when installing a file elsewhere (a second scheduler's configuration in /etc/kubernetes).
    """
    if not path.startswith("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    keep_out = keep_out_of or posixpath.dirname(posixpath.normpath(path))
    backups = backup_dir(stamp, backup_root)
    _check_outside("backup directory", backups, keep_out)
    if existing_text == new_text:
        return InstallPlan(path, UNCHANGED, new_text, keep_out_of=keep_out)
    if existing_text is None:
        return InstallPlan(path, CREATE, new_text, keep_out_of=keep_out)
    diff = "".join(
        difflib.unified_diff(
            existing_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"{path} (on the node)",
            tofile=f"{path} (new)",
        )
    )
    return InstallPlan(
        path,
        REPLACE,
        new_text,
        diff=diff,
        backup_path=posixpath.join(backups, posixpath.basename(path)),
        old_sha256=_sha256(existing_text),
        keep_out_of=keep_out,
    )


def install_command(
    plan: InstallPlan,
    *,
    tmp_dir: str = KUBERNETES_TMP,
    owner: str | None = "root:root",
    mode: str = "0600",
) -> Cmd:
    """The atomic install of a planned manifest (run as root); ValueError when unchanged.

    The new text goes on the command's stdin (`install_input`), not in the command: a
    command line is bounded (the kernel refuses an argument over 128 KiB, sshd a large exec
    request), a manifest is not. Checks the file is still what was planned (absent for
    create, the same sha256 for replace), copies a replaced file to its backup path, writes
    stdin to a temp file in tmp_dir (same filesystem as the target, outside its directory),
    checks its sha256 (a connection cut mid-upload gives a short file, never installed),
    chmod/chown, then `mv -T` into place; the temp file is removed when any step fails.
    """
    if not plan.changes:
        raise ValueError(f"{plan.path} is unchanged: nothing to install")
    _check_outside("temp directory", tmp_dir, plan.keep_out_of or posixpath.dirname(plan.path))
    path = plan.path
    base = posixpath.basename(path)
    pieces: list[Arg] = [Raw("umask 077 &&"), "mkdir", "-p", "--", tmp_dir, Raw("&&")]
    if plan.action == CREATE:
        pieces += [Raw("if [ -e"), path, Raw("] || [ -L"), path, Raw("]; then echo")]
        pieces += [
            f"{path} appeared since it was read; not overwriting it",
            Raw(">&2; exit 3; fi;"),
        ]
    else:
        assert plan.old_sha256 is not None and plan.backup_path is not None
        pieces += [Raw("if ! printf"), "%s  %s\\n", plan.old_sha256, path]
        pieces += [Raw("| sha256sum -c --status; then echo")]
        pieces += [f"{path} changed since it was read; not replacing it", Raw(">&2; exit 3; fi;")]
        pieces += ["mkdir", "-p", "--", posixpath.dirname(plan.backup_path), Raw("&&")]
        pieces += ["cp", "-p", "--", path, plan.backup_path, Raw("&&")]
    pieces += [Raw("tmp=$(mktemp --"), posixpath.join(tmp_dir, f"nodeops-{base}.XXXXXX")]
    pieces += [Raw(') && { cat >"$tmp" && { printf'), "%s  %s\\n", _sha256(plan.new_text)]
    pieces += [Raw('"$tmp" | sha256sum -c --status || { echo')]
    pieces += [
        f"the upload of {path} was cut short (sha256 differs); nothing was installed",
        Raw(">&2; false; }; } &&"),
    ]
    pieces += ["chmod", mode, Raw('"$tmp" &&')]
    if owner is not None:
        pieces += ["chown", owner, Raw('"$tmp" &&')]
    pieces += ["mv", "-T", Raw('-- "$tmp"'), path]
    pieces += [Raw('|| { rc=$?; rm -f -- "$tmp"; exit "$rc"; }; }')]
    return Cmd(tuple(pieces), sudo=True)


def install_input(plan: InstallPlan) -> str:
    """What `install_command(plan)` reads on stdin: the new text."""
    return plan.new_text


def remove_command(
    path: str,
    *,
    stamp: str,
    backup_root: str = KUBERNETES_TMP,
    keep_out_of: str | None = None,
) -> Cmd:
    """Move a file (a manifest) into the run's backup directory, out of `keep_out_of` (its
    directory by default). Never a plain rm; a file already gone is not an error."""
    if not path.startswith("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    backups = backup_dir(stamp, backup_root)
    _check_outside("backup directory", backups, keep_out_of or posixpath.dirname(path))
    target = posixpath.join(backups, posixpath.basename(path))
    pieces: list[Arg] = [Raw("if [ -e"), path, Raw("] || [ -L"), path, Raw("]; then umask 077 &&")]
    pieces += ["mkdir", "-p", "--", backups, Raw("&&"), "mv", "-T", "--", path, target]
    pieces += [Raw("; fi")]
    return Cmd(tuple(pieces), sudo=True)
