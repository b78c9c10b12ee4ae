"""What process stands for a container: control-plane images run the simulated components."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from nodeops.lab.sim import module_argv, module_env

ETCD_BINARY = "/usr/bin/etcd"
VERSION_ENV = "NODEOPS_COMPONENT_VERSION"
#: Image names (last path part) of control-plane components, to the module simulating each.
COMPONENT_MODULES = {
    "kube-apiserver": "nodeops.lab.sim.apiserver",
    "kube-controller-manager": "nodeops.lab.sim.controller_manager",
    "kube-scheduler": "nodeops.lab.sim.scheduler",
}
PLACEHOLDER_MODULE = "nodeops.lab.sim.container"
COMPLETES_ENV = "NODEOPS_CONTAINER_COMPLETES"  # read by nodeops.lab.sim.container


@dataclass(frozen=True)
class ImageRef:
    """An image reference split up: registry/path, the name (last part), tag and digest."""

    repository: str
    name: str
    tag: str
    digest: str


def parse_image(image: str) -> ImageRef:
    """Split `registry.k8s.io/kube-apiserver:v1.29.3` (tag defaults to latest, as docker does)."""
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        repository, tag = rest[:colon], rest[colon + 1 :]
    else:
        repository, tag = rest, "" if digest else "latest"
    return ImageRef(
        repository=repository, name=repository.rsplit("/", 1)[-1], tag=tag, digest=digest
    )


def normalize_image(image: str) -> str:
    """The fully qualified name containerd reports (`nginx:1.25` -> docker.io/library/...)."""
    first, slash, _ = image.partition("/")
    if not slash:
        return f"docker.io/library/{image}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{image}"
    return image


def image_id(image: str) -> str:
    """A stable imageID of the shape containerd reports: `repo@sha256:...`."""
    ref = parse_image(normalize_image(image))
    if ref.digest:
        return f"{ref.repository}@{ref.digest}"
    return f"{ref.repository}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


@dataclass(frozen=True)
class Process:
    """The argv and extra environment that run a container here."""

    argv: tuple[str, ...]
    env: dict[str, str]
    placeholder: bool = False  # an idle stand-in: it reads no files, so it needs no mounts


def container_args(container: dict[str, Any]) -> list[str]:
    """The container's command minus its first word, then its args (what the binary gets)."""
    command = [str(w) for w in container.get("command") or []]
    args = [str(w) for w in container.get("args") or []]
    return command[1:] + args


def process_for(pod_key: str, container: dict[str, Any], *, completes: bool = False) -> Process:
    """How a container runs: etcd as the real etcd, components as their simulations, else an
    idle placeholder (one that exits 0 at once when `completes`, for run-to-completion pods)."""
    image = str(container.get("image") or "")
    ref = parse_image(image)
    env = {
        str(e["name"]): str(e.get("value", ""))
        for e in container.get("env") or []
        if isinstance(e, dict) and "name" in e and "valueFrom" not in e
    }
    if ref.name == "etcd":
        return Process(argv=(ETCD_BINARY, *container_args(container)), env=env)
    module = COMPONENT_MODULES.get(ref.name)
    if module is not None:
        env = {**env, **module_env(), VERSION_ENV: ref.tag}
        return Process(argv=tuple(module_argv(module, container_args(container))), env=env)
    words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    argv = module_argv(PLACEHOLDER_MODULE, [f"{pod_key}/{container['name']}", image, *words])
    env = {**env, **module_env()}
    if completes:
        env[COMPLETES_ENV] = "1"
    return Process(argv=tuple(argv), env=env, placeholder=True)


def host_path_binds(pod: dict[str, Any], container: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of hostPath mounts whose paths differ, in mount order."""
    volumes = {
        v["name"]: v["hostPath"]
        for v in (pod.get("spec") or {}).get("volumes") or []
        if isinstance(v, dict) and isinstance(v.get("hostPath"), dict)
    }
    binds = []
    for m in container.get("volumeMounts") or []:
        hp = volumes.get(m.get("name"))
        if hp is None:
            continue
        host, target = str(hp.get("path", "")), str(m.get("mountPath", ""))
        if host and target and host.rstrip("/") != target.rstrip("/"):
            binds.append((host, target))
    return binds


# Mount each (host, target) pair in a private mount namespace, then exec the container's argv.
_BIND_SCRIPT = """\
n=$1; shift
while [ "$n" -gt 0 ]; do
    [ -e "$2" ] || { if [ -d "$1" ]; then mkdir -p "$2"; else touch "$2"; fi; }
    mount --bind "$1" "$2" || exit 125
    shift 2; n=$((n - 1))
done
exec "$@"
"""


def wrap_binds(argv: tuple[str, ...], binds: list[tuple[str, str]]) -> tuple[str, ...]:
    """argv run so that each host path shows at its container path (only when any differ)."""
    if not binds:
        return argv
    pairs = [w for pair in binds for w in pair]
    return (
        "unshare", "--mount", "--propagation", "private", "--",
        "/bin/sh", "-c", _BIND_SCRIPT, "container", str(len(binds)), *pairs, *argv,
    )  # fmt: skip
