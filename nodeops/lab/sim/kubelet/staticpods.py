"""Static pods: the manifests in staticPodPath, and the mirror pods that show them in the API."""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Annotation keys (pkg/kubelet/types/pod_update.go).
CONFIG_MIRROR = "kubernetes.io/config.mirror"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_SEEN = "kubernetes.io/config.seen"
FILE_SOURCE = "file"


class ManifestError(ValueError):
    """A manifest file that is not a single valid Pod."""


@dataclass(frozen=True)
class StaticPod:
    """A pod read from a manifest file, defaulted as the kubelet's file source does."""

    path: str
    pod: dict[str, Any]  # name already NAME-NODENAME, nodeName set, config annotations set
    hash: str

    @property
    def name(self) -> str:
        """The pod's name (NAME-NODENAME)."""
        return str(self.pod["metadata"]["name"])

    @property
    def namespace(self) -> str:
        """The pod's namespace."""
        return str(self.pod["metadata"]["namespace"])

    @property
    def key(self) -> str:
        """namespace/name."""
        return f"{self.namespace}/{self.name}"


def static_pod_name(name: str, node: str) -> str:
    """NAME-NODENAME, the node name lowercased (config/common.go generatePodName)."""
    return f"{name}-{node.lower()}"


def rfc3339nano(t: datetime.datetime) -> str:
    """Go's time.RFC3339Nano rendering of a UTC time (trailing zeros of the fraction dropped)."""
    t = t.astimezone(datetime.UTC)
    frac = f"{t.microsecond:06d}000".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def pod_hash(pod: dict[str, Any], node: str, source: str) -> str:
    """The static pod's UID and config hash: an MD5 over the pod, the node and the file.

    Upstream hashes Go's deep printing of the decoded pod; this hashes its canonical JSON, so
    the value differs from a real kubelet's but changes exactly when the manifest's content does.
    """
    h = hashlib.md5(usedforsecurity=False)
    h.update(json.dumps(pod, sort_keys=True, separators=(",", ":")).encode())
    h.update(f"host:{node}".encode())
    h.update(f"file:{source}".encode())
    return h.hexdigest()


def decode_pod(data: bytes, source: str) -> dict[str, Any]:
    """Decode one manifest as a single v1 Pod; ManifestError as upstream words it."""
    try:
        docs = [d for d in yaml.safe_load_all(data.decode("utf-8", errors="replace"))]
    except yaml.YAMLError as e:
        raise ManifestError(
            f"{source}: couldn't parse as pod(yaml: {e}), please check config file"
        ) from None
    doc = docs[0] if docs else None
    if not isinstance(doc, dict):
        raise ManifestError(
            f"{source}: couldn't parse as pod(Object 'Kind' is missing in '{doc}'),"
            " please check config file"
        )
    kind, version = doc.get("kind"), doc.get("apiVersion")
    if not kind:
        raise ManifestError(
            f"{source}: couldn't parse as pod(Object 'Kind' is missing in"
            f" '{json.dumps(doc, default=str)}'), please check config file"
        )
    if kind != "Pod" or version != "v1":
        raise ManifestError(
            f"{source}: couldn't parse as pod(invalid pod: kind {kind!r}, apiVersion"
            f" {version!r}), please check config file"
        )
    meta = doc.get("metadata")
    spec = doc.get("spec")
    errors = []
    if not isinstance(meta, dict) or not meta.get("name"):
        errors.append("metadata.name: Required value: name or generateName is required")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers:
        errors.append("spec.containers: Required value")
    elif not all(isinstance(c, dict) and c.get("name") and c.get("image") for c in containers):
        errors.append("spec.containers[*]: name and image are required")
    if errors:
        raise ManifestError(f"invalid pod: [{', '.join(errors)}]")
    return doc


def read_static_pod(path: Path, node: str, seen: datetime.datetime) -> StaticPod:
    """Read and default one manifest file (config/common.go applyDefaults)."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ManifestError(f"open {source}: {(e.strerror or str(e)).lower()}") from None
    doc = decode_pod(data, source)
    pod = copy.deepcopy(doc)
    digest = pod_hash(doc, node, source)
    meta = pod["metadata"]
    meta["name"] = static_pod_name(str(meta["name"]), node)
    meta["namespace"] = meta.get("namespace") or "default"
    meta["uid"] = digest
    meta.pop("creationTimestamp", None)
    annotations = dict(meta.get("annotations") or {})
    annotations[CONFIG_HASH] = digest
    annotations[CONFIG_SEEN] = rfc3339nano(seen)
    annotations[CONFIG_SOURCE] = FILE_SOURCE
    meta["annotations"] = annotations
    spec = pod["spec"]
    spec["nodeName"] = node
    tolerations = list(spec.get("tolerations") or [])
    noexec = {"operator": "Exists", "effect": "NoExecute"}
    if noexec not in tolerations:
        tolerations.append(noexec)
    spec["tolerations"] = tolerations
    pod.pop("status", None)
    pod["status"] = {"phase": "Pending"}
    return StaticPod(path=source, pod=pod, hash=digest)


def manifest_files(directory: Path) -> list[Path]:
    """Every non-dot entry of the directory, sorted (file.go globs `[^.]*`)."""
    try:
        names = sorted(p.name for p in directory.iterdir())
    except FileNotFoundError:
        return []
    return [directory / n for n in names if not n.startswith(".")]


@dataclass(frozen=True)
class Scan:
    """The result of reading staticPodPath: the pods and what was skipped, with why."""

    pods: tuple[StaticPod, ...]
    skipped: tuple[tuple[str, str], ...]  # (path, reason)
    duplicates: tuple[StaticPod, ...] = ()  # same namespace/name as an earlier file: ignored


#: A file's identity for the parse cache: inode, size, modification time.
FileSignature = tuple[int, int, int]
ParseCache = dict[str, tuple[FileSignature, "StaticPod | ManifestError"]]


def scan(
    directory: Path,
    node: str,
    seen: dict[str, tuple[str, datetime.datetime]],
    cache: ParseCache | None = None,
) -> Scan:
    """Read the static pod directory; `seen` maps path -> (hash, first seen) and is updated.

    With a cache, files whose inode, size and mtime did not change are not parsed again.
    """
    cache = {} if cache is None else cache
    pods: list[StaticPod] = []
    skipped: list[tuple[str, str]] = []
    duplicates: list[StaticPod] = []
    now = datetime.datetime.now(datetime.UTC)
    keys: set[str] = set()
    for path in manifest_files(directory):
        if path.is_dir():
            skipped.append((str(path), "Not recursing into manifest path"))
            continue
        if not path.is_file():
            skipped.append((str(path), "Manifest path is not a directory or file"))
            continue
        previous = seen.get(str(path))
        try:
            st = path.stat()
        except OSError:
            continue
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = cache.get(str(path))
        if cached is not None and cached[0] == signature:
            result = cached[1]
        else:
            try:
                result = read_static_pod(path, node, now)
            except ManifestError as e:
                result = e
            cache[str(path)] = (signature, result)
        if isinstance(result, ManifestError):
            skipped.append((str(path), str(result)))
            continue
        sp = result
        if previous is not None and previous[0] == sp.hash:
            # Unchanged since first seen: keep that time, as the kubelet's config.seen does.
            sp.pod["metadata"]["annotations"][CONFIG_SEEN] = rfc3339nano(previous[1])
        else:
            seen[str(path)] = (sp.hash, now)
        if sp.key in keys:
            # config.go filterInvalidPods: the first file (in name order) wins.
            duplicates.append(sp)
            continue
        keys.add(sp.key)
        pods.append(sp)
    for gone in set(seen) - {p.path for p in pods}:
        del seen[gone]
    for gone in set(cache) - {str(p) for p in manifest_files(directory)}:
        del cache[gone]
    return Scan(pods=tuple(pods), skipped=tuple(skipped), duplicates=tuple(duplicates))


def mirror_pod(static: StaticPod, node_uid: str) -> dict[str, Any]:
    """The mirror pod object for a static pod (pkg/kubelet/pod/mirror_client.go)."""
    pod = copy.deepcopy(static.pod)
    meta = pod["metadata"]
    meta.pop("uid", None)
    meta["annotations"][CONFIG_MIRROR] = static.hash
    meta["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "name": pod["spec"]["nodeName"],
            "uid": node_uid,
            "controller": True,
        }
    ]
    pod["apiVersion"] = "v1"
    pod["kind"] = "Pod"
    pod.pop("status", None)
    return pod


def is_mirror_pod(pod: dict[str, Any]) -> bool:
    """Whether an API pod is a mirror pod."""
    return CONFIG_MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})
