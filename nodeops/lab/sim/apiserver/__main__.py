"""`python -m nodeops.lab.sim.apiserver` with kube-apiserver's flags (as kubeadm writes them)."""

from __future__ import annotations

import ipaddress
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from nodeops.lab.sim.apiserver import errors
from nodeops.lab.sim.apiserver.etcd import Etcd, EtcdError
from nodeops.lab.sim.apiserver.registry import Registry
from nodeops.lab.sim.apiserver.resources import require
from nodeops.lab.sim.apiserver.server import ApiServer, make_context
from nodeops.lab.sim.apiserver.storage import Store
from nodeops.lab.sim.apiserver.version import component_version, version_info
from nodeops.lab.sim.kube_flags import parse_flags

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _log(message: str) -> None:
    # klog's header shape, so logs read like the real component's.
    stamp = time.strftime("%m%d %H:%M:%S", time.gmtime())
    print(f"I{stamp}.000000 {threading.get_native_id():>7} apiserver] {message}", file=sys.stderr)


def bootstrap(store: Store, service_ip: str) -> None:
    """Create the system namespaces and the `kubernetes` service, as upstream does at start."""
    registry = Registry(store)
    namespaces = require("", "v1", "namespaces")
    for name in SYSTEM_NAMESPACES:
        try:
            registry.create(namespaces, None, {"metadata": {"name": name}}, dry_run=False)
        except errors.ApiError as err:
            if err.code != 409:
                raise
    service = {
        "metadata": {
            "name": "kubernetes",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "clusterIP": service_ip,
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    }
    try:
        registry.create(require("", "v1", "services"), "default", service, dry_run=False)
    except errors.ApiError as err:
        if err.code != 409:
            raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT."""
    flags = parse_flags(sys.argv[1:] if argv is None else argv)
    version = component_version()
    if "version" in flags:
        print(f"Kubernetes {version}")
        return 0
    started = time.monotonic()
    etcd = Etcd(
        flags.get("etcd-servers", "http://127.0.0.1:2379").split(",")[0],
        ca=flags.get("etcd-cafile", ""),
        cert=flags.get("etcd-certfile", ""),
        key=flags.get("etcd-keyfile", ""),
    )
    while True:
        try:
            etcd.revision()
            break
        except EtcdError as exc:
            _log(f"waiting for etcd: {exc}")
            time.sleep(0.5)
    store = Store(etcd)
    network = ipaddress.ip_network(
        flags.get("service-cluster-ip-range", "10.96.0.0/12").split(",")[0]
    )
    bootstrap(store, str(network.network_address + 1))
    bind = flags.get("bind-address", "0.0.0.0")  # noqa: S104 - kube-apiserver's default
    port = int(flags.get("secure-port", "6443"))
    context = make_context(
        flags["tls-cert-file"], flags["tls-private-key-file"], flags.get("client-ca-file")
    )
    advertise = flags.get("advertise-address", "127.0.0.1" if bind == "0.0.0.0" else bind)  # noqa: S104
    server = ApiServer(
        (bind, port),
        context=context,
        store=store,
        version=version_info(version),
        advertise=advertise,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        server.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _log(f"Serving securely on {bind}:{port} ({version}) after {time.monotonic() - started:.3f}s")
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    server.cache.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
