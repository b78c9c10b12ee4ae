"""kubeadm-shaped files for the lab cluster: static pod manifests, kubelet config, ConfigMaps.

Shapes follow what kubeadm 1.29 writes (cmd/kubeadm/app/phases/controlplane, etcd, kubelet;
compare /work/shared/fixtures/manifests/v1.29.0-*.yaml). YAML is dumped with sorted keys, as
kubeadm's sigs.k8s.io/yaml does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

REGISTRY = "registry.k8s.io"
#: kubeadm 1.29's etcd image. The process that runs is Debian's etcd 3.4 (/usr/bin/etcd).
ETCD_IMAGE = f"{REGISTRY}/etcd:3.5.10-0"
PAUSE_IMAGE = f"{REGISTRY}/pause:3.9"
SERVICE_SUBNET = "10.96.0.0/12"
POD_SUBNET = "192.168.0.0/16"
DNS_IP = "10.96.0.10"
RUNTIME_ENDPOINT = "unix:///var/run/containerd/containerd.sock"
PKI = "/etc/kubernetes/pki"
MANIFESTS = "/etc/kubernetes/manifests"

_CA_VOLUMES = (
    ("ca-certs", "/etc/ssl/certs"),
    ("etc-ca-certificates", "/etc/ca-certificates"),
    ("etc-pki", "/etc/pki"),
)
_SHARE_VOLUMES = (
    ("usr-local-share-ca-certificates", "/usr/local/share/ca-certificates"),
    ("usr-share-ca-certificates", "/usr/share/ca-certificates"),
)


def dump(doc: Any) -> str:
    """YAML as kubeadm writes it (sorted keys, block style)."""
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=True)


def _probe(host: str, path: str, port: int, scheme: str, *, failures: int = 8) -> dict[str, Any]:
    return {
        "failureThreshold": failures,
        "httpGet": {"host": host, "path": path, "port": port, "scheme": scheme},
        "initialDelaySeconds": 10,
        "periodSeconds": 10,
        "timeoutSeconds": 15,
    }


def _static_pod(
    name: str,
    container: dict[str, Any],
    volumes: list[tuple[str, str, str, bool]],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A control-plane static pod; volumes are (name, path, hostPath type, readOnly)."""
    container = dict(container)
    container["imagePullPolicy"] = "IfNotPresent"
    container["name"] = name
    container["volumeMounts"] = [
        {"mountPath": path, "name": vname, **({"readOnly": True} if ro else {})}
        for vname, path, _, ro in volumes
    ]
    meta: dict[str, Any] = {
        "creationTimestamp": None,
        "labels": {"component": name, "tier": "control-plane"},
        "name": name,
        "namespace": "kube-system",
    }
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "containers": [container],
            "hostNetwork": True,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [
                {"hostPath": {"path": path, "type": kind}, "name": vname}
                for vname, path, kind, _ in sorted(volumes)
            ],
        },
        "status": {},
    }


def peer_url(address: str) -> str:
    """An etcd member's peer URL as kubeadm advertises it."""
    return f"https://{address}:2380"


def etcd_manifest(
    node: str,
    address: str,
    *,
    data_dir: str = "/var/lib/etcd",
    members: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """/etc/kubernetes/manifests/etcd.yaml for a local (stacked) etcd member.

    Without `members` the member starts a new single-member cluster (`kubeadm init`). With
    `members`, the (name, address) of every member already in the cluster, it joins them as
    `kubeadm join --control-plane` writes it: --initial-cluster lists them and this member
    (etcd wants itself in the list) and --initial-cluster-state=existing.
    """
    initial = [f"{n}={peer_url(a)}" for n, a in members if n != node]
    initial.append(f"{node}={peer_url(address)}")
    state = ["--initial-cluster-state=existing"] if members else []
    command = [
        "etcd",
        f"--advertise-client-urls=https://{address}:2379",
        f"--cert-file={PKI}/etcd/server.crt",
        "--client-cert-auth=true",
        f"--data-dir={data_dir}",
        "--experimental-initial-corrupt-check=true",
        "--experimental-watch-progress-notify-interval=5s",
        f"--initial-advertise-peer-urls={peer_url(address)}",
        f"--initial-cluster={','.join(initial)}",
        *state,
        f"--key-file={PKI}/etcd/server.key",
        f"--listen-client-urls=https://127.0.0.1:2379,https://{address}:2379",
        "--listen-metrics-urls=http://127.0.0.1:2381",
        f"--listen-peer-urls=https://{address}:2380",
        f"--name={node}",
        f"--peer-cert-file={PKI}/etcd/peer.crt",
        "--peer-client-cert-auth=true",
        f"--peer-key-file={PKI}/etcd/peer.key",
        f"--peer-trusted-ca-file={PKI}/etcd/ca.crt",
        "--snapshot-count=10000",
        f"--trusted-ca-file={PKI}/etcd/ca.crt",
    ]
    startup = _probe("127.0.0.1", "/health?serializable=false", 2381, "HTTP", failures=24)
    container = {
        "command": command,
        "image": ETCD_IMAGE,
        "livenessProbe": _probe(
            "127.0.0.1", "/health?exclude=NOSPACE&serializable=true", 2381, "HTTP"
        ),
        "resources": {"requests": {"cpu": "25m", "memory": "100Mi"}},
        "startupProbe": startup,
    }
    volumes = [
        ("etcd-data", data_dir, "DirectoryOrCreate", False),
        ("etcd-certs", f"{PKI}/etcd", "DirectoryOrCreate", False),
    ]
    return _static_pod(
        "etcd",
        container,
        volumes,
        {"kubeadm.kubernetes.io/etcd.advertise-client-urls": f"https://{address}:2379"},
    )


def apiserver_manifest(address: str, version: str) -> dict[str, Any]:
    """/etc/kubernetes/manifests/kube-apiserver.yaml."""
    command = [
        "kube-apiserver",
        f"--advertise-address={address}",
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        f"--client-ca-file={PKI}/ca.crt",
        "--enable-admission-plugins=NodeRestriction",
        "--enable-bootstrap-token-auth=true",
        f"--etcd-cafile={PKI}/etcd/ca.crt",
        f"--etcd-certfile={PKI}/apiserver-etcd-client.crt",
        f"--etcd-keyfile={PKI}/apiserver-etcd-client.key",
        "--etcd-servers=https://127.0.0.1:2379",
        f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        f"--proxy-client-cert-file={PKI}/front-proxy-client.crt",
        f"--proxy-client-key-file={PKI}/front-proxy-client.key",
        "--requestheader-allowed-names=front-proxy-client",
        f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        "--secure-port=6443",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={PKI}/sa.pub",
        f"--service-account-signing-key-file={PKI}/sa.key",
        f"--service-cluster-ip-range={SERVICE_SUBNET}",
        f"--tls-cert-file={PKI}/apiserver.crt",
        f"--tls-private-key-file={PKI}/apiserver.key",
    ]
    readiness = {
        "failureThreshold": 3,
        "httpGet": {"host": address, "path": "/readyz", "port": 6443, "scheme": "HTTPS"},
        "periodSeconds": 1,
        "timeoutSeconds": 15,
    }
    container = {
        "command": command,
        "image": f"{REGISTRY}/kube-apiserver:{version}",
        "livenessProbe": _probe(address, "/livez", 6443, "HTTPS"),
        "readinessProbe": readiness,
        "resources": {"requests": {"cpu": "250m"}},
        "startupProbe": _probe(address, "/livez", 6443, "HTTPS", failures=24),
    }
    volumes = [
        *((n, p, "DirectoryOrCreate", True) for n, p in _CA_VOLUMES),
        ("k8s-certs", PKI, "DirectoryOrCreate", True),
        *((n, p, "DirectoryOrCreate", True) for n, p in _SHARE_VOLUMES),
    ]
    return _static_pod(
        "kube-apiserver",
        container,
        volumes,
        {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": f"{address}:6443"},
    )


def controller_manager_manifest(version: str) -> dict[str, Any]:
    """/etc/kubernetes/manifests/kube-controller-manager.yaml."""
    conf = "/etc/kubernetes/controller-manager.conf"
    command = [
        "kube-controller-manager",
        "--allocate-node-cidrs=true",
        f"--authentication-kubeconfig={conf}",
        f"--authorization-kubeconfig={conf}",
        "--bind-address=127.0.0.1",
        f"--client-ca-file={PKI}/ca.crt",
        f"--cluster-cidr={POD_SUBNET}",
        "--cluster-name=kubernetes",
        f"--cluster-signing-cert-file={PKI}/ca.crt",
        f"--cluster-signing-key-file={PKI}/ca.key",
        "--controllers=*,bootstrapsigner,tokencleaner",
        f"--kubeconfig={conf}",
        "--leader-elect=true",
        f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
        f"--root-ca-file={PKI}/ca.crt",
        f"--service-account-private-key-file={PKI}/sa.key",
        f"--service-cluster-ip-range={SERVICE_SUBNET}",
        "--use-service-account-credentials=true",
    ]
    container = {
        "command": command,
        "image": f"{REGISTRY}/kube-controller-manager:{version}",
        "livenessProbe": _probe("127.0.0.1", "/healthz", 10257, "HTTPS"),
        "resources": {"requests": {"cpu": "200m"}},
        "startupProbe": _probe("127.0.0.1", "/healthz", 10257, "HTTPS", failures=24),
    }
    volumes = [
        *((n, p, "DirectoryOrCreate", True) for n, p in _CA_VOLUMES),
        (
            "flexvolume-dir",
            "/usr/libexec/kubernetes/kubelet-plugins/volume/exec",
            "DirectoryOrCreate",
            False,
        ),
        ("k8s-certs", PKI, "DirectoryOrCreate", True),
        ("kubeconfig", conf, "FileOrCreate", True),
        *((n, p, "DirectoryOrCreate", True) for n, p in _SHARE_VOLUMES),
    ]
    return _static_pod("kube-controller-manager", container, volumes)


def scheduler_manifest(version: str) -> dict[str, Any]:
    """/etc/kubernetes/manifests/kube-scheduler.yaml."""
    conf = "/etc/kubernetes/scheduler.conf"
    command = [
        "kube-scheduler",
        f"--authentication-kubeconfig={conf}",
        f"--authorization-kubeconfig={conf}",
        "--bind-address=127.0.0.1",
        f"--kubeconfig={conf}",
        "--leader-elect=true",
    ]
    container = {
        "command": command,
        "image": f"{REGISTRY}/kube-scheduler:{version}",
        "livenessProbe": _probe("127.0.0.1", "/healthz", 10259, "HTTPS"),
        "resources": {"requests": {"cpu": "100m"}},
        "startupProbe": _probe("127.0.0.1", "/healthz", 10259, "HTTPS", failures=24),
    }
    return _static_pod("kube-scheduler", container, [("kubeconfig", conf, "FileOrCreate", True)])


def control_plane_manifests(
    node: str, address: str, version: str, *, etcd_members: Sequence[tuple[str, str]] = ()
) -> dict[str, str]:
    """File name -> YAML text of the four kubeadm static pods; `etcd_members` as for
    etcd_manifest (empty on the first control plane)."""
    return {
        "etcd.yaml": dump(etcd_manifest(node, address, members=etcd_members)),
        "kube-apiserver.yaml": dump(apiserver_manifest(address, version)),
        "kube-controller-manager.yaml": dump(controller_manager_manifest(version)),
        "kube-scheduler.yaml": dump(scheduler_manifest(version)),
    }


def kubelet_configuration() -> dict[str, Any]:
    """The KubeletConfiguration kubeadm 1.29 writes to /var/lib/kubelet/config.yaml."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"cacheTTL": "0s", "enabled": True},
            "x509": {"clientCAFile": f"{PKI}/ca.crt"},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"},
        },
        "cgroupDriver": "systemd",
        "clusterDNS": [DNS_IP],
        "clusterDomain": "cluster.local",
        "containerRuntimeEndpoint": "",
        "cpuManagerReconcilePeriod": "0s",
        "evictionPressureTransitionPeriod": "0s",
        "fileCheckFrequency": "0s",
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "httpCheckFrequency": "0s",
        "imageMaximumGCAge": "0s",
        "imageMinimumGCAge": "0s",
        "kind": "KubeletConfiguration",
        "logging": {
            "flushFrequency": 0,
            "options": {"json": {"infoBufferSize": "0"}},
            "verbosity": 0,
        },
        "memorySwap": {},
        "nodeStatusReportFrequency": "0s",
        "nodeStatusUpdateFrequency": "0s",
        "resolvConf": "/run/systemd/resolve/resolv.conf",
        "rotateCertificates": True,
        "runtimeRequestTimeout": "0s",
        "shutdownGracePeriod": "0s",
        "shutdownGracePeriodCriticalPods": "0s",
        "staticPodPath": MANIFESTS,
        "streamingConnectionIdleTimeout": "0s",
        "syncFrequency": "0s",
        "volumeStatsAggPeriod": "0s",
    }


def kubeadm_flags_env() -> str:
    """/var/lib/kubelet/kubeadm-flags.env as kubeadm 1.29 writes it for containerd."""
    return (
        f'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint={RUNTIME_ENDPOINT}'
        f' --pod-infra-container-image={PAUSE_IMAGE}"\n'
    )


def cluster_configuration(version: str, address: str) -> dict[str, Any]:
    """kubeadm's ClusterConfiguration, as stored in the kubeadm-config ConfigMap."""
    return {
        "apiServer": {
            "extraArgs": {"authorization-mode": "Node,RBAC"},
            "timeoutForControlPlane": "4m0s",
        },
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "certificatesDir": PKI,
        "clusterName": "kubernetes",
        "controlPlaneEndpoint": f"{address}:6443",
        "controllerManager": {},
        "dns": {},
        "etcd": {"local": {"dataDir": "/var/lib/etcd"}},
        "imageRepository": REGISTRY,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": version,
        "networking": {
            "dnsDomain": "cluster.local",
            "podSubnet": POD_SUBNET,
            "serviceSubnet": SERVICE_SUBNET,
        },
        "scheduler": {},
    }


def cluster_info_kubeconfig(ca_data_b64: str, server: str) -> dict[str, Any]:
    """The kubeconfig in kube-public/cluster-info (CA and server only)."""
    return {
        "apiVersion": "v1",
        "clusters": [
            {"cluster": {"certificate-authority-data": ca_data_b64, "server": server}, "name": ""}
        ],
        "contexts": None,
        "current-context": "",
        "kind": "Config",
        "preferences": {},
        "users": None,
    }


def _deployment(name: str, image: str, replicas: int, **pod_spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
    }
    mounts = pod_spec.pop("volumeMounts", None)
    if mounts:
        container["volumeMounts"] = mounts
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], **pod_spec},
            },
        },
    }


def sample_workloads() -> list[tuple[str, dict[str, Any]]]:
    """(collection path, object) of the workloads a drain has to deal with, in creation order:
    a Deployment behind a PodDisruptionBudget, a DaemonSet, a bare pod, and a Deployment whose
    pods hold emptyDir data."""
    web = _deployment("web", "registry.k8s.io/nginx-slim:0.27", 3)
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }
    agent_labels = {"app": "node-agent"}
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "node-agent", "namespace": "default", "labels": agent_labels},
        "spec": {
            "selector": {"matchLabels": agent_labels},
            "template": {
                "metadata": {"labels": agent_labels},
                "spec": {
                    "containers": [{"name": "node-agent", "image": PAUSE_IMAGE}],
                    "tolerations": [
                        {
                            "key": "node-role.kubernetes.io/control-plane",
                            "operator": "Exists",
                            "effect": "NoSchedule",
                        }
                    ],
                },
            },
        },
    }
    standalone = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "standalone", "namespace": "default", "labels": {"app": "standalone"}},
        "spec": {
            "containers": [
                {"name": "standalone", "image": "busybox:1.36", "command": ["sleep", "infinity"]}
            ]
        },
    }
    cache = _deployment(
        "cache",
        "redis:7.2",
        1,
        volumes=[{"name": "data", "emptyDir": {}}],
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
    )
    return [
        ("/apis/apps/v1/namespaces/default/deployments", web),
        ("/apis/policy/v1/namespaces/default/poddisruptionbudgets", pdb),
        ("/apis/apps/v1/namespaces/default/daemonsets", daemonset),
        ("/api/v1/namespaces/default/pods", standalone),
        ("/apis/apps/v1/namespaces/default/deployments", cache),
    ]


#: CoreDNS image kubeadm 1.29 deploys.
COREDNS_IMAGE = f"{REGISTRY}/coredns/coredns:v1.11.1"


def addons(version: str) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, object) of kubeadm's addons: kube-proxy (a DaemonSet on every node)
    and CoreDNS (a Deployment of 2), as `kubeadm init` creates them (Service and RBAC left out)."""
    proxy_labels = {"k8s-app": "kube-proxy"}
    kube_proxy = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": proxy_labels},
        "spec": {
            "selector": {"matchLabels": proxy_labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": proxy_labels},
                "spec": {
                    "containers": [
                        {
                            "name": "kube-proxy",
                            "image": f"{REGISTRY}/kube-proxy:{version}",
                            "command": [
                                "/usr/local/bin/kube-proxy",
                                "--config=/var/lib/kube-proxy/config.conf",
                                "--hostname-override=$(NODE_NAME)",
                            ],
                            "securityContext": {"privileged": True},
                        }
                    ],
                    "hostNetwork": True,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "kube-proxy",
                    "tolerations": [{"operator": "Exists"}],
                },
            },
        },
    }
    dns_labels = {"k8s-app": "kube-dns"}
    coredns = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": dns_labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": dns_labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": dns_labels},
                "spec": {
                    "containers": [
                        {
                            "name": "coredns",
                            "image": COREDNS_IMAGE,
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "resources": {
                                "limits": {"memory": "170Mi"},
                                "requests": {"cpu": "100m", "memory": "70Mi"},
                            },
                        }
                    ],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                    ],
                },
            },
        },
    }
    return [
        ("/apis/apps/v1/namespaces/kube-system/daemonsets", kube_proxy),
        ("/apis/apps/v1/namespaces/kube-system/deployments", coredns),
    ]
