"""Simulated `kubeadm upgrade plan|apply|node`, run inside a lab node as root.

Follows cmd/kubeadm/app/cmd/upgrade (plan.go, apply.go, node.go) and phases/upgrade
(policy.go, staticpods.go, health.go): the cluster is read through the API with
/etc/kubernetes/admin.conf (kubelet.conf on workers), the control-plane static pod manifests
get new image tags, the old ones are backed up under /etc/kubernetes/tmp, and kubeadm waits
for the kubelet to restart each component (its mirror pod's config hash changes and the pod
runs the new image), rolling back on timeout. The kubelet package is never touched.

Divergences, on purpose: no internet, so the version plan offers is kubeadm's own; new
manifests are the current ones with the image tag changed (upstream renders them from the
ClusterConfiguration); certificates are not really renewed; the CreateJob health check runs no Job
(it fails when no controller-manager or scheduler mirror pod runs).
The kubeadm-fail fault file (faultfiles) makes the next apply/node fail after the first
manifest was swapped (and removes itself); the ssh-cut fault file (faultfiles) makes the
next `upgrade node` lose its SSH session at the start and carry on to the end.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from nodeops.lab.sim import faultfiles
from nodeops.lab.sim import kubeadm_policy as policy
from nodeops.lab.sim.kube_client import ApiStatusError, Client

KUBE_DIR = Path("/etc/kubernetes")
MANIFESTS = KUBE_DIR / "manifests"
TMP_DIR = KUBE_DIR / "tmp"
ADMIN_CONF = KUBE_DIR / "admin.conf"
KUBELET_CONF = KUBE_DIR / "kubelet.conf"
KUBELET_CONFIG = Path("/var/lib/kubelet/config.yaml")
ETCD_DATA = Path("/var/lib/etcd")
TIMEOUT_ENV = "NODEOPS_KUBEADM_TIMEOUT"  # seconds to wait per component (default 300)
CONFIG_HASH = "kubernetes.io/config.hash"
STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"
FYI = (
    "FYI: You can look at this config file with"
    " 'kubectl -n kube-system get cm kubeadm-config -o yaml'"
)
_RENEWALS = {
    "etcd": ("etcd-server", "etcd-peer", "etcd-healthcheck-client"),
    "kube-apiserver": (
        "apiserver",
        "apiserver-kubelet-client",
        "front-proxy-client",
        "apiserver-etcd-client",
    ),
    "kube-controller-manager": ("controller-manager.conf",),
    "kube-scheduler": ("scheduler.conf",),
}


class Fatal(Exception):
    """kubeadm stops: the message goes to stderr, then the stack-trace hint, exit 1."""


@dataclass
class Options:
    """Parsed flags of `kubeadm upgrade SUBCOMMAND`."""

    command: str
    args: list[str] = field(default_factory=list)
    yes: bool = False
    force: bool = False
    dry_run: bool = False
    etcd_upgrade: bool = True
    certificate_renewal: bool = True
    ignore: list[str] = field(default_factory=list)
    allow_experimental: bool = False
    allow_rc: bool = False


_BOOLS = {
    "yes": "yes",
    "y": "yes",
    "force": "force",
    "f": "force",
    "dry-run": "dry_run",
    "etcd-upgrade": "etcd_upgrade",
    "certificate-renewal": "certificate_renewal",
    "allow-experimental-upgrades": "allow_experimental",
    "allow-release-candidate-upgrades": "allow_rc",
}
_VALUED_IGNORED = {"config", "kubeconfig", "patches", "feature-gates", "v", "print-config"}


def parse_options(argv: Sequence[str]) -> Options:
    """Cobra-style flags: --flag, --flag=value, -y; Fatal on unknown flags."""
    if not argv:
        raise Fatal('missing subcommand; "kubeadm upgrade" is not meant to be run on its own')
    opts = Options(command=argv[0])
    rest = list(argv[1:])
    while rest:
        a = rest.pop(0)
        if not a.startswith("-") or a == "-":
            opts.args.append(a)
            continue
        name, eq, value = a.lstrip("-").partition("=")
        if name in _BOOLS:
            if eq and value.lower() not in ("true", "false", "1", "0", "t", "f"):
                raise Fatal(f'invalid argument "{value}" for "{a.split("=")[0]}" flag')
            setattr(opts, _BOOLS[name], not eq or value.lower() in ("true", "1", "t"))
        elif name == "ignore-preflight-errors":
            value = value if eq else (rest.pop(0) if rest else "")
            opts.ignore += [v for v in value.split(",") if v]
        elif name in _VALUED_IGNORED:
            if (not eq and name != "v" and rest) or (
                not eq and name == "v" and rest and rest[0].isdigit()
            ):
                rest.pop(0)
        else:
            raise Fatal(f"unknown flag: {a.split('=')[0]}")
    return opts


# ---- the API


def _go_url_error(client: Client, path: str, err: Exception) -> str:
    url = f"https://{client.host}:{client.port}{path}?timeout=10s"
    reason = "connect: connection refused"
    if isinstance(err, TimeoutError | socket.timeout):
        reason = "i/o timeout"
    elif isinstance(err, OSError) and err.errno not in (None, 111):
        reason = f"connect: {(err.strerror or str(err)).lower()}"
    return f'Get "{url}": dial tcp {client.host}:{client.port}: {reason}'


class Api:
    """The few API reads and writes kubeadm makes, with Go-like error texts."""

    def __init__(self, kubeconfig: Path) -> None:
        if not kubeconfig.exists():
            raise Fatal(
                f"couldn't create a Kubernetes client from file {str(kubeconfig)!r}: failed to"
                f" load admin kubeconfig: open {kubeconfig}: no such file or directory"
            )
        self.client = Client.from_kubeconfig(kubeconfig)
        self.client.timeout = 10.0

    def get(self, path: str, what: str) -> dict[str, Any]:
        """GET; Fatal worded `what: <Go error>`."""
        try:
            return self.client.get(path)
        except ApiStatusError as e:
            raise Fatal(f"{what}: {e.status.get('message', e)}") from None
        except (OSError, ConnectionError) as e:
            raise Fatal(f"{what}: {_go_url_error(self.client, path, e)}") from None
        except ValueError as e:
            raise Fatal(f"{what}: invalid answer from the API server: {e}") from None

    def try_get(self, path: str) -> dict[str, Any] | None:
        """GET, None on any error (while a component restarts)."""
        try:
            return self.client.get(path)
        except (ApiStatusError, OSError, ConnectionError, ValueError):
            return None

    def put(self, path: str, obj: dict[str, Any], what: str) -> None:
        """PUT; Fatal on error."""
        try:
            self.client.update(path, obj)
        except ApiStatusError as e:
            raise Fatal(f"{what}: {e.status.get('message', e)}") from None
        except (OSError, ConnectionError) as e:
            raise Fatal(f"{what}: {_go_url_error(self.client, path, e)}") from None


CM_PATH = "/api/v1/namespaces/kube-system/configmaps/"


def cluster_configuration(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """The kubeadm-config ConfigMap and its decoded ClusterConfiguration."""
    cm = api.get(
        CM_PATH + "kubeadm-config",
        "unable to fetch the kubeadm-config ConfigMap: failed to get config map",
    )
    text = (cm.get("data") or {}).get("ClusterConfiguration") or ""
    cfg = yaml.safe_load(text) if text else None
    if not isinstance(cfg, dict):
        raise Fatal(
            "unable to fetch the kubeadm-config ConfigMap: unexpected empty ClusterConfiguration"
        )
    return cm, cfg


def _ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def _is_control_plane(node: dict[str, Any]) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return "node-role.kubernetes.io/control-plane" in labels


def health_errors(api: Api, *, local_manifests: bool = True) -> dict[str, str]:
    """health.go: CreateJob (judged from the controller-manager and scheduler mirror pods),
    ControlPlaneNodesReady and StaticPodManifest."""
    errors: dict[str, str] = {}
    nodes = api.get("/api/v1/nodes", "couldn't list control-planes in cluster").get("items") or []
    not_ready = [
        str(n["metadata"]["name"]) for n in nodes if _is_control_plane(n) and not _ready(n)
    ]
    if not_ready:
        errors["ControlPlaneNodesReady"] = (
            f"there are NotReady control-planes in the cluster: [{' '.join(not_ready)}]"
        )
    # CreateJob runs a Job and waits 15 s for it: it cannot complete without a running
    # controller-manager and scheduler; the simulation looks at their mirror pods instead.
    pods = api.try_get("/api/v1/namespaces/kube-system/pods") or {}
    running = {
        (str(p["metadata"].get("labels", {}).get("component")), str(p["spec"].get("nodeName")))
        for p in pods.get("items") or []
        if (p.get("status") or {}).get("phase") == "Running"
    }
    cps = [str(n["metadata"]["name"]) for n in nodes if _is_control_plane(n)]
    for component in ("kube-controller-manager", "kube-scheduler"):
        if cps and not any((component, n) in running for n in cps):
            errors["CreateJob"] = (
                'Job "upgrade-health-check" in the namespace "kube-system" did not complete in'
                " 15s: timed out waiting for the condition"
            )
    if local_manifests:
        missing = [
            str(MANIFESTS / f"{c}.yaml")
            for c in ("etcd", *policy.COMPONENTS)
            if not (MANIFESTS / f"{c}.yaml").is_file()
        ]
        if missing:
            errors["StaticPodManifest"] = (
                "The control plane seems to be Static Pod-hosted, but some of the manifests"
                " don't seem to exist on disk. This probably means you're running 'kubeadm"
                " upgrade' on a remote machine, which is not supported for a Static Pod-hosted"
                f" cluster. Manifest files not found: [{' '.join(missing)}]"
            )
    return errors


def _tag(image: str) -> str:
    rest = image.split("@", 1)[0]
    return rest.rsplit(":", 1)[1] if ":" in rest.rsplit("/", 1)[-1] else "latest"


def _with_tag(image: str, tag: str) -> str:
    rest = image.split("@", 1)[0]
    repo = rest.rsplit(":", 1)[0] if ":" in rest.rsplit("/", 1)[-1] else rest
    return f"{repo}:{tag}"


def _pod_image(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("image") or "")


def gather_plan_input(api: Api, kubeadm_version: policy.Semver) -> policy.PlanInput:
    """What plan shows, from the API: versions of the apiserver, kubelets, static pods, addons."""
    cluster = policy.parse_semver(
        str(api.get("/version", "Unable to fetch cluster version")["gitVersion"])
    )
    nodes = api.get("/api/v1/nodes", "couldn't list nodes in cluster").get("items") or []
    kubelets = {
        str(n["metadata"]["name"]): str(
            n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
        )
        for n in nodes
    }
    cps = {str(n["metadata"]["name"]) for n in nodes if _is_control_plane(n)}
    pods = api.get("/api/v1/namespaces/kube-system/pods", "couldn't list pods").get("items") or []
    control_plane: dict[str, dict[str, str]] = {n: {} for n in cps}
    etcd: dict[str, str] = {}
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        comp = labels.get("component")
        if node not in cps or labels.get("tier") != "control-plane":
            continue
        if comp == "etcd":
            etcd[node] = _tag(_pod_image(pod))
        elif comp in policy.COMPONENTS:
            control_plane[node][comp] = _tag(_pod_image(pod))
    dns = api.try_get("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
    proxy = api.try_get("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy")

    def template_tag(obj: dict[str, Any] | None) -> str:
        if not obj:
            return ""
        return _tag(_pod_image(obj["spec"]["template"]))

    return policy.PlanInput(
        cluster=cluster,
        kubeadm=kubeadm_version,
        kubelets=kubelets,
        control_plane=control_plane,
        coredns=template_tag(dns),
        etcd=etcd,
        kube_proxy=template_tag(proxy),
    )


# ---- output helpers


class Out:
    """kubeadm's stdout, flushed line by line."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, line: str = "", end: str = "\n") -> None:
        self.out.write(line + end)
        self.out.flush()


def _config_lines(say: Out, prefix: str = "[upgrade/config]") -> None:
    say(f"{prefix} Making sure the configuration is correct:")
    say(f"{prefix} Reading configuration from the cluster...")
    say(f"{prefix} {FYI}")


def _preflight(api: Api, say: Out, ignore: Sequence[str]) -> None:
    say("[preflight] Running pre-flight checks.")
    say("[upgrade] Running cluster health checks")
    warnings, fatal = policy.preflight_failure(health_errors(api), ignore)
    for w in warnings:
        say(w)
    if fatal:
        raise Fatal(fatal)


# ---- static pods


def _timeout() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV) or 300)
    except ValueError:
        return 300.0


def _temp_dir(prefix: str) -> Path:
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        path = TMP_DIR / f"{prefix}{random.randint(10**8, 10**10)}"  # noqa: S311 - a name
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
            return path
    raise Fatal(f"couldn't create a temporary directory under {TMP_DIR}")


def _take_fault() -> bool:
    """Whether the kubeadm-fail fault is set; it is used up by this run."""
    if faultfiles.KUBEADM_FAIL.exists():
        with contextlib.suppress(OSError):
            faultfiles.KUBEADM_FAIL.unlink()
        return True
    return False


def new_manifest(text: str, tag: str) -> str:
    """The manifest with every container image's tag set to tag."""
    from nodeops.lab.manifests import dump

    doc = yaml.safe_load(text)
    for c in doc.get("spec", {}).get("containers") or []:
        c["image"] = _with_tag(str(c.get("image") or ""), tag)
    return dump(doc)


class StaticPodUpgrade:
    """phases/upgrade/staticpods.go for one node: backup dirs, one component at a time."""

    def __init__(self, api: Api, say: Out, node: str, version: str, *, renew: bool) -> None:
        self.api, self.say, self.node, self.version, self.renew = api, say, node, version, renew
        stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
        self.backup_dir = TMP_DIR / f"kubeadm-backup-manifests-{stamp}"
        self.backup_etcd = TMP_DIR / f"kubeadm-backup-etcd-{stamp}"
        self.recover: dict[str, Path] = {}
        self.fail = _take_fault()
        self.timeout = _timeout()
        self.temp: Path | None = None

    def mirror(self, component: str) -> dict[str, Any] | None:
        """The component's mirror pod on this node, None while unreachable."""
        name = f"{component}-{self.node.lower()}"
        return self.api.try_get(f"/api/v1/namespaces/kube-system/pods/{name}")

    def hash_of(self, component: str) -> str:
        """The mirror pod's config hash before changing its manifest."""
        deadline = time.monotonic() + min(self.timeout, 30)
        while time.monotonic() < deadline:
            pod = self.mirror(component)
            if pod:
                return str((pod["metadata"].get("annotations") or {}).get(CONFIG_HASH, ""))
            time.sleep(0.2)
        return ""

    def rollback(self, err: str, *, etcd: bool) -> Fatal:
        """rollbackOldManifests: move the backups back; the error to return."""
        problems = []
        for component, backup in self.recover.items():
            if component == "etcd" and not etcd:
                continue
            if backup.exists():
                try:
                    os.replace(backup, MANIFESTS / f"{component}.yaml")
                except OSError as e:
                    problems.append(str(e))
        faced = "; ".join([err, *problems])
        return Fatal(
            "couldn't upgrade control plane. kubeadm has tried to recover everything into the"
            f" earlier state. Errors faced: {faced}"
        )

    def wait_restart(self, component: str, before: str, image: str) -> str | None:
        """Wait for a new config hash and the pod Running with image; an error text on timeout."""
        if self.fail:
            self.fail = False
            time.sleep(0.5)
        else:
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                pod = self.mirror(component)
                if pod:
                    now = (pod["metadata"].get("annotations") or {}).get(CONFIG_HASH, "")
                    running = (pod.get("status") or {}).get("phase") == "Running"
                    if now != before and running and _pod_image(pod) == image:
                        return None
                time.sleep(0.2)
        return (
            f"static Pod hash for component {component} on Node {self.node} did not change after"
            f" {policy.TIMEOUT_TEXT}: timed out waiting for the condition"
        )

    def upgrade_component(self, component: str, new_text: str, before: str, minor: int) -> None:
        """upgradeComponent: swap the manifest, wait, roll back on failure (raises Fatal)."""
        say = self.say
        say(f'[upgrade/staticpods] Preparing for "{component}" upgrade')
        if self.renew:
            for cert in _RENEWALS[component]:
                say(f"[upgrade/staticpods] Renewing {cert} certificate")
        current = MANIFESTS / f"{component}.yaml"
        backup = self.backup_dir / f"{component}.yaml"
        self.recover[component] = backup
        if current.read_text() == new_text:
            say(
                f"[upgrade/staticpods] Current and new manifests of {component} are equal,"
                " skipping upgrade"
            )
            return
        assert self.temp is not None
        staged = self.temp / f"{component}.yaml"
        staged.write_text(new_text)
        staged.chmod(0o600)
        os.replace(current, backup)
        os.replace(staged, current)
        say(
            f'[upgrade/staticpods] Moved new manifest to "{current}" and backed up old manifest'
            f' to "{backup}"'
        )
        say("[upgrade/staticpods] Waiting for the kubelet to restart the component")
        if minor >= 27:
            say(f"[upgrade/staticpods] This can take up to {policy.TIMEOUT_TEXT}")
        else:
            say(
                "[upgrade/staticpods] This might take a minute or longer depending on the"
                f" component/version gap (timeout {policy.TIMEOUT_TEXT})"
            )
        image = str(yaml.safe_load(new_text)["spec"]["containers"][0]["image"])
        err = self.wait_restart(component, before, image)
        if err is not None:
            raise self.rollback(err, etcd=component == "etcd")
        say(f"[apiclient] Found 1 Pods for label selector component={component}")
        say(f'[upgrade/staticpods] Component "{component}" upgraded successfully!')

    def run(self, target: policy.Semver, *, etcd_upgrade: bool) -> None:
        """StaticPodControlPlane: etcd first, then apiserver, controller-manager, scheduler."""
        say = self.say
        TMP_DIR.mkdir(parents=True, exist_ok=True)
        # Upstream's CreateTimestampDirForKubeadm: a directory per second, never reused.
        for path in (self.backup_dir, self.backup_etcd):
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                raise Fatal(
                    f"could not create timestamp directory: mkdir {path}: file exists"
                ) from None
        before = {c: self.hash_of(c) for c in ("etcd", *policy.COMPONENTS)}
        self.temp = _temp_dir("kubeadm-upgraded-manifests")
        try:
            if etcd_upgrade and (MANIFESTS / "etcd.yaml").exists():
                self.upgrade_etcd(target, before["etcd"])
            say(f'[upgrade/staticpods] Writing new Static Pod manifests to "{self.temp}"')
            for component in policy.COMPONENTS:
                text = (MANIFESTS / f"{component}.yaml").read_text()
                self.upgrade_component(
                    component, new_manifest(text, str(target)), before[component], target.minor
                )
        finally:
            shutil.rmtree(self.temp, ignore_errors=True)

    def upgrade_etcd(self, target: policy.Semver, before: str) -> None:
        """performEtcdStaticPodUpgrade: back up the data, bump the image if kubeadm's is newer."""
        say = self.say
        say("[upgrade/etcd] Upgrading to TLS for etcd")
        self.backup_etcd.mkdir(parents=True, exist_ok=True, mode=0o700)
        if ETCD_DATA.is_dir():
            shutil.copytree(ETCD_DATA, self.backup_etcd / "etcd", symlinks=True)
        text = (MANIFESTS / "etcd.yaml").read_text()
        current = _tag(str(yaml.safe_load(text)["spec"]["containers"][0]["image"]))
        desired = policy.etcd_version_for(target)
        if policy.etcd_tag_key(desired) < policy.etcd_tag_key(current):
            say(
                "[upgrade/etcd] Non fatal issue encountered during upgrade: the desired etcd"
                f' version for this Kubernetes version "{target}" is "{desired}", but the'
                f' current etcd version is "{current}". Won\'t downgrade etcd, instead just'
                " continue"
            )
            return
        if desired == current:
            return
        try:
            self.upgrade_component("etcd", new_manifest(text, desired), before, target.minor)
        except Fatal as e:
            say(f"[upgrade/etcd] Failed to upgrade etcd: {e}")
            say("[upgrade/etcd] Waiting for previous etcd to become available")
            self._wait_previous_etcd()
            say("[upgrade/etcd] Etcd was rolled back and is now available")
            raise Fatal(
                "fatal error when trying to upgrade the etcd cluster, rolled the state back to"
                f" pre-upgrade state: {e}"
            ) from None
        say("[upgrade/etcd] Waiting for etcd to become available")

    def _wait_previous_etcd(self) -> None:
        deadline = time.monotonic() + min(self.timeout, 20)
        while time.monotonic() < deadline:
            if self.mirror("etcd") is not None and self.api.try_get("/version") is not None:
                return
            time.sleep(0.2)


def _write_kubelet_config(api: Api, say: Out, *, backup: bool) -> None:
    cm = api.get(
        CM_PATH + "kubelet-config", "failed to download kubelet configuration from the cluster"
    )
    text = (cm.get("data") or {}).get("kubelet") or ""
    if backup and KUBELET_CONFIG.exists():
        dest = _temp_dir("kubeadm-kubelet-config") / "config.yaml"
        shutil.copy2(KUBELET_CONFIG, dest)
        say(f"[upgrade] Backing up kubelet config file to {dest}")
    say(f'[kubelet-start] Writing kubelet configuration to file "{KUBELET_CONFIG}"')
    KUBELET_CONFIG.parent.mkdir(parents=True, exist_ok=True)
    tmp = KUBELET_CONFIG.with_name(".config.yaml.kubeadm")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, KUBELET_CONFIG)


def _post_upgrade(
    api: Api, say: Out, cm: dict[str, Any], cfg: dict[str, Any], target: policy.Semver
) -> None:
    """upload-config, kubelet-config, bootstrap-token RBAC and the addons."""
    from nodeops.lab.manifests import dump

    say(
        '[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the'
        ' "kube-system" Namespace'
    )
    cfg = {**cfg, "kubernetesVersion": str(target)}
    cm = {**cm, "data": {**(cm.get("data") or {}), "ClusterConfiguration": dump(cfg)}}
    api.put(CM_PATH + "kubeadm-config", cm, "error uploading the kubeadm ClusterConfiguration")
    say(
        '[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the'
        " configuration for the kubelets in the cluster"
    )
    kcm = api.get(CM_PATH + "kubelet-config", "error downloading kubelet configuration")
    api.put(CM_PATH + "kubelet-config", kcm, "error creating kubelet configuration ConfigMap")
    _write_kubelet_config(api, say, backup=True)
    for line in (
        "to get nodes",
        "to post CSRs in order for nodes to get long term certificate credentials",
    ):
        say(f"[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens {line}")
    say(
        "[bootstrap-token] Configured RBAC rules to allow the csrapprover controller"
        " automatically approve CSRs from a Node Bootstrap Token"
    )
    say(
        "[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node"
        " client certificates in the cluster"
    )
    for name, path, tag in (
        (
            "CoreDNS",
            "/apis/apps/v1/namespaces/kube-system/deployments/coredns",
            policy.coredns_version_for(target),
        ),
        ("kube-proxy", "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", str(target)),
    ):
        obj = api.try_get(path)
        if obj is not None:
            containers = obj["spec"]["template"]["spec"]["containers"]
            if _tag(str(containers[0].get("image"))) != tag:
                containers[0]["image"] = _with_tag(str(containers[0].get("image")), tag)
                api.put(path, obj, f"unable to update the {name} addon")
        say(f"[addons] Applied essential addon: {name}")


# ---- commands


def _config_api() -> Api:
    try:
        return Api(ADMIN_CONF)
    except Fatal as e:
        raise Fatal(f"[upgrade/config] FATAL: {e}") from None


def _config(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        return cluster_configuration(api)
    except Fatal as e:
        raise Fatal(f"[upgrade/config] FATAL: {e}") from None


def _kubeadm_semver(version: str) -> policy.Semver:
    return policy.parse_semver(version)


def _node_name() -> str:
    return socket.gethostname()


def plan(opts: Options, version: str, say: Out) -> int:
    """`kubeadm upgrade plan [version]`."""
    _config_lines(say)
    api = _config_api()
    _config(api)
    _preflight(api, say, opts.ignore)
    say("[upgrade] Fetching available versions to upgrade to")
    p = gather_plan_input(api, _kubeadm_semver(version))
    say(policy.render_plan_versions(p), end="")
    say()
    say(policy.render_plan_tables(p), end="")
    return 0


def _confirm(say: Out, stdin: TextIO | None) -> None:
    say("[upgrade/confirm] Are you sure you want to proceed? [y/N]: ", end="")
    answer = ""
    if stdin is not None:
        with contextlib.suppress(OSError, ValueError):
            answer = stdin.readline().strip()
    if answer.lower() not in ("y", "yes"):
        raise Fatal("won't proceed; the user didn't answer (Y|y) in order to continue")


def apply(opts: Options, version: str, say: Out, stdin: TextIO | None) -> int:
    """`kubeadm upgrade apply VERSION`."""
    if not opts.args:
        raise Fatal(
            "[upgrade/version] FATAL: missing one or more required arguments. Required"
            " arguments: [version]"
        )
    target_text = opts.args[0]
    _config_lines(say)
    api = _config_api()
    cm, cfg = _config(api)
    _preflight(api, say, opts.ignore)
    try:
        target = policy.parse_semver(target_text)
    except policy.VersionSyntaxError as e:
        raise Fatal(f"[upgrade/version] FATAL: {e}") from None
    target_text = str(target)
    say(f'[upgrade/version] You have chosen to change the cluster version to "{target_text}"')
    cluster_text = str(api.get("/version", "Unable to fetch cluster version")["gitVersion"])
    say(f"[upgrade/versions] Cluster version: {cluster_text}")
    say(f"[upgrade/versions] kubeadm version: {version}")
    nodes = api.get("/api/v1/nodes", "Unable to fetch kubelet version").get("items") or []
    kubelets = [
        str(n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")) for n in nodes
    ]
    errs = policy.enforce_version_policies(
        target_text,
        target,
        policy.parse_semver(cluster_text),
        _kubeadm_semver(version),
        version,
        kubelets,
        allow_experimental=opts.allow_experimental,
        allow_rc=opts.allow_rc,
    )
    failure = policy.policy_failure(errs, force=opts.force)
    if failure:
        raise Fatal(failure)
    if errs.skippable:
        say(policy.forced_notice(errs), end="")
    if not (opts.yes or opts.force or opts.dry_run):
        _confirm(say, stdin)
    node = _node_name()
    if opts.dry_run:
        say("[upgrade/prepull] Would pull the required images (like 'kubeadm config images pull')")
        say(
            "[upgrade/apply] Upgrading your Static Pod-hosted control plane to version"
            f' "{target_text}" (timeout: {policy.TIMEOUT_TEXT})...'
        )
        for component in ("etcd", *policy.COMPONENTS):
            path = MANIFESTS / f"{component}.yaml"
            if not path.exists():
                continue
            tag = policy.etcd_version_for(target) if component == "etcd" else target_text
            text = new_manifest(path.read_text(), tag)
            if text != path.read_text():
                say(f'[dryrun] Would write file "{path}" with content:')
                say("".join(f"\t{line}\n" for line in text.splitlines()), end="")
        say("[dryrun] Finished dryrunning successfully!")
        return 0
    say("[upgrade/prepull] Pulling images required for setting up a Kubernetes cluster")
    say(
        "[upgrade/prepull] This might take a minute or two, depending on the speed of your"
        " internet connection"
    )
    say(
        "[upgrade/prepull] You can also perform this action in beforehand using 'kubeadm config"
        " images pull'"
    )
    say(
        "[upgrade/apply] Upgrading your Static Pod-hosted control plane to version"
        f' "{target_text}" (timeout: {policy.TIMEOUT_TEXT})...'
    )
    up = StaticPodUpgrade(api, say, node, target_text, renew=opts.certificate_renewal)
    try:
        up.run(target, etcd_upgrade=opts.etcd_upgrade)
    except Fatal as e:
        raise Fatal(f"[upgrade/apply] FATAL: {e}") from None
    _post_upgrade(api, say, cm, cfg, target)
    say()
    say(f'[upgrade/successful] SUCCESS! Your cluster was upgraded to "{target_text}". Enjoy!')
    say()
    say(
        "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with"
        " upgrading your kubelets if you haven't already done so."
    )
    return 0


def node(opts: Options, version: str, say: Out) -> int:
    """`kubeadm upgrade node`: a control plane's static pods at the cluster's version, then
    the kubelet configuration; a worker only the kubelet configuration."""
    control_plane = (MANIFESTS / "kube-apiserver.yaml").exists()
    faultfiles.cut_ssh_session_if("kubeadm-upgrade")
    say("[upgrade] Reading configuration from the cluster...")
    say(f"[upgrade] {FYI}")
    api = Api(ADMIN_CONF if control_plane and ADMIN_CONF.exists() else KUBELET_CONF)
    _, cfg = cluster_configuration(api)
    say("[preflight] Running pre-flight checks")
    if not control_plane:
        say("[preflight] Skipping prepull. Not a control plane node.")
        say("[upgrade] Skipping phase. Not a control plane node.")
        if _take_fault():
            if KUBELET_CONFIG.exists():
                dest = _temp_dir("kubeadm-kubelet-config") / "config.yaml"
                shutil.copy2(KUBELET_CONFIG, dest)
                say(f"[upgrade] Backing up kubelet config file to {dest}")
            raise Fatal(
                "error execution phase kubelet-config: failed to download kubelet configuration"
                " from the cluster: timed out waiting for the condition"
            )
        _write_kubelet_config(api, say, backup=False)
    else:
        target_text = str(cfg.get("kubernetesVersion") or "")
        try:
            target = policy.parse_semver(target_text)
        except policy.VersionSyntaxError as e:
            raise Fatal(f"error execution phase control-plane: {e}") from None
        say("[preflight] Pulling images required for setting up a Kubernetes cluster")
        say(
            "[preflight] This might take a minute or two, depending on the speed of your"
            " internet connection"
        )
        say(
            "[preflight] You can also perform this action in beforehand using 'kubeadm config"
            " images pull'"
        )
        if opts.dry_run:
            say("[upgrade] Would upgrade your Static Pod-hosted control plane instance")
            say("[dryrun] Finished dryrunning successfully!")
            return 0
        say(
            "[upgrade] Upgrading your Static Pod-hosted control plane instance to version"
            f' "{target}"...'
        )
        up = StaticPodUpgrade(api, say, _node_name(), str(target), renew=opts.certificate_renewal)
        try:
            up.run(target, etcd_upgrade=opts.etcd_upgrade)
        except Fatal as e:
            raise Fatal(
                "error execution phase control-plane: couldn't complete the static pod upgrade:"
                f" {e}"
            ) from None
        say("[upgrade] The control plane instance for this node was successfully updated!")
        _write_kubelet_config(api, say, backup=True)
    say("[upgrade] The configuration for this node was successfully updated!")
    say(
        "[upgrade] Now you should go ahead and upgrade the kubelet package using your package"
        " manager."
    )
    return 0


def run(
    argv: Sequence[str], version: str, out: TextIO, err: TextIO, stdin: TextIO | None = None
) -> int:
    """`kubeadm upgrade ARGV...`; the exit code."""
    say = Out(out)
    try:
        opts = parse_options(argv)
        commands: dict[str, Callable[[], int]] = {
            "plan": lambda: plan(opts, version, say),
            "apply": lambda: apply(opts, version, say, stdin),
            "node": lambda: node(opts, version, say),
        }
        if opts.command not in commands:
            raise Fatal(f'unknown command "{opts.command}" for "kubeadm upgrade"')
        return commands[opts.command]()
    except Fatal as e:
        out.flush()
        err.write(f"{e}\n{STACK_HINT}\n")
        err.flush()
        return 1
