"""The kubeadm upgrade docs typed by hand over SSH on the lab: 1.29 to 1.30 on the Ubuntu control
plane (`kubeadm upgrade plan`, `kubeadm upgrade apply`) and on the Rocky worker (`kubeadm
upgrade node`), with each version-policy mistake refused the way kubeadm refuses it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from nodeops.facts.binaries import parse_kubeadm_version
from nodeops.lab.sim import kubeadm_policy as policy
from tests.e2e.labkit import KUBECTL, ClusterLab, running_cluster, wait

pytestmark = pytest.mark.lab

FROM, TO = "1.29.3", "1.30.2"
STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher\n"


class Lab(ClusterLab):
    def versions(self) -> dict[str, str]:
        nodes = self.kubectl_json("get nodes")["items"]
        return {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes}


@pytest.fixture(scope="module")
def lab(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """cp1 (ubuntu-22.04), worker1 (ubuntu-24.04), worker2 (rocky-9) at 1.29.3."""
    with running_cluster(
        fresh_lab_name(), tmp_path_factory.mktemp("kubeadm"), version=FROM, timeout=60
    ) as built:
        yield Lab(built.state, built.inventory, built.home)


@pytest.fixture(scope="module")
def cp_kubeadm(lab: Lab) -> str:
    """The docs' first steps on cp1: switch the repo to v1.30, update, unhold, install kubeadm
    1.30.x, hold. The original manifests' text is returned."""
    lab.sh(
        "cp1",
        "sed -i 's#/v1.29/#/v1.30/#' /etc/apt/sources.list.d/kubernetes.list"
        " && apt-get update"
        f" && apt-mark unhold kubeadm && apt-get install -y kubeadm='{TO}-*'"
        " && apt-mark hold kubeadm",
    )
    assert parse_kubeadm_version(lab.sh("cp1", "kubeadm version").stdout) == f"v{TO}"
    return lab.sh("cp1", "cat /etc/kubernetes/manifests/*.yaml").stdout


def test_plan_shows_the_cluster_as_it_is(lab: Lab, cp_kubeadm: str) -> None:
    done = lab.sh("cp1", "kubeadm upgrade plan")
    lines = done.stdout.splitlines()
    assert lines[:10] == [
        "[upgrade/config] Making sure the configuration is correct:",
        "[upgrade/config] Reading configuration from the cluster...",
        "[upgrade/config] FYI: You can look at this config file with"
        " 'kubectl -n kube-system get cm kubeadm-config -o yaml'",
        "[preflight] Running pre-flight checks.",
        "[upgrade] Running cluster health checks",
        "[upgrade] Fetching available versions to upgrade to",
        f"[upgrade/versions] Cluster version: v{FROM}",
        f"[upgrade/versions] kubeadm version: v{TO}",
        f"[upgrade/versions] Target version: v{TO}",
        f"[upgrade/versions] Latest version in the v1.29 series: v{TO}",
    ]
    suggested, rows = policy.parse_plan(done.stdout)
    assert suggested == f"v{TO}"
    table = {r.component: (r.current, r.target) for r in rows}
    assert table["kubelet"] == (f"3 x v{FROM}", f"v{TO}")
    assert table["kube-apiserver"] == (f"v{FROM}", f"v{TO}")
    assert table["kube-proxy"] == (f"v{FROM}", f"v{TO}")
    assert table["etcd"] == ("3.5.10-0", "3.5.12-0")
    assert table["CoreDNS"] == ("v1.11.1", "v1.11.1")


def test_each_version_mistake_is_refused(lab: Lab, cp_kubeadm: str) -> None:
    skip = lab.sh("cp1", "kubeadm upgrade apply v1.31.0 -y", check=False)
    assert skip.returncode == 1
    assert skip.stderr == (
        "[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n"
        "\n"
        '\t- Specified version to upgrade to "v1.31.0" is too high; kubeadm can upgrade only 1'
        " minor version at a time\n"
        '\t- Specified version to upgrade to "v1.31.0" is at least one minor release higher than'
        " the kubeadm minor release (31 > 30). Such an upgrade is not supported\n"
        "\n"
        "Please fix the misalignments highlighted above and try upgrading again\n" + STACK_HINT
    )
    assert skip.stdout.splitlines()[-3:] == [
        '[upgrade/version] You have chosen to change the cluster version to "v1.31.0"',
        f"[upgrade/versions] Cluster version: v{FROM}",
        f"[upgrade/versions] kubeadm version: v{TO}",
    ]
    newer = lab.sh("cp1", "kubeadm upgrade apply v1.30.3 --yes", check=False)
    assert newer.returncode == 1
    assert newer.stderr == (
        "[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n"
        '\t- Specified version to upgrade to "v1.30.3" is higher than the kubeadm version'
        f' "v{TO}". Upgrade kubeadm first using the tool you used to install kubeadm\n\n'
        "Can be bypassed if you pass the --force flag\n" + STACK_HINT
    )
    # no -y and no terminal: kubeadm asks, reads nothing, and does not proceed
    asked = lab.sh("cp1", f"kubeadm upgrade apply v{TO}", check=False)
    assert asked.returncode == 1
    assert "[upgrade/confirm] Are you sure you want to proceed? [y/N]: " in asked.stdout
    assert asked.stderr.startswith("won't proceed; the user didn't answer (Y|y)")
    dry = lab.sh("cp1", f"kubeadm upgrade apply v{TO} --dry-run")
    assert dry.stdout.endswith("[dryrun] Finished dryrunning successfully!\n")
    assert f"kube-apiserver:v{TO}" in dry.stdout
    # none of it changed a manifest or left a backup
    assert lab.sh("cp1", "cat /etc/kubernetes/manifests/*.yaml").stdout == cp_kubeadm
    assert lab.sh("cp1", "ls -A /etc/kubernetes/tmp 2>/dev/null; true").stdout == ""


def _drain(lab: Lab, node: str) -> None:
    """Drain a node as the kubeadm docs do."""
    done = lab.sh(
        "cp1",
        f"{KUBECTL} drain {node} --ignore-daemonsets --delete-emptydir-data --force --timeout=60s",
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_docs_upgrade_the_control_plane_and_a_rocky_worker(lab: Lab, cp_kubeadm: str) -> None:
    started = time.monotonic()
    apply = lab.sh("cp1", f"kubeadm upgrade apply v{TO} -y")
    apply_seconds = time.monotonic() - started
    out = apply.stdout
    assert out.endswith(
        f'[upgrade/successful] SUCCESS! Your cluster was upgraded to "v{TO}". Enjoy!\n\n'
        "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with"
        " upgrading your kubelets if you haven't already done so.\n"
    )
    for component in ("etcd", *policy.COMPONENTS):
        assert f'[upgrade/staticpods] Component "{component}" upgraded successfully!' in out
    m = re.search(r"backed up old manifest to \"(/etc/kubernetes/tmp/kubeadm-backup-manifests-"
                  r"\d{4}(?:-\d\d){5})/etcd.yaml\"", out)  # fmt: skip
    assert m is not None, out
    backups = lab.sh("cp1", f"ls {m.group(1)} /etc/kubernetes/tmp").stdout
    assert "kube-apiserver.yaml\nkube-controller-manager.yaml\nkube-scheduler.yaml" in backups
    assert "kubeadm-backup-etcd-" in backups
    images = lab.sh("cp1", "grep -h 'image:' /etc/kubernetes/manifests/*.yaml").stdout.split()
    assert images[1::2] == [
        "registry.k8s.io/etcd:3.5.12-0",
        f"registry.k8s.io/kube-apiserver:v{TO}",
        f"registry.k8s.io/kube-controller-manager:v{TO}",
        f"registry.k8s.io/kube-scheduler:v{TO}",
    ]
    # the API is the new one; kubeadm-config says so; the kubelets are still 1.29
    assert lab.kubectl_json("version")["serverVersion"]["gitVersion"] == f"v{TO}"
    cm = lab.kubectl_json("get cm -n kube-system kubeadm-config")
    assert yaml.safe_load(cm["data"]["ClusterConfiguration"])["kubernetesVersion"] == f"v{TO}"
    assert set(lab.versions().values()) == {f"v{FROM}"}
    proxy = lab.kubectl_json("get ds -n kube-system kube-proxy")
    assert proxy["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":v{TO}")

    # the rest of the control-plane node: drain, kubelet and kubectl, restart, uncordon
    _drain(lab, "cp1")
    lab.sh(
        "cp1",
        f"apt-mark unhold kubelet kubectl && apt-get install -y kubelet='{TO}-*' kubectl='{TO}-*'"
        " && apt-mark hold kubelet kubectl"
        " && systemctl daemon-reload && systemctl restart kubelet",
    )
    wait("cp1 at the new version", lambda: lab.versions()["cp1"] == f"v{TO}")
    lab.sh("cp1", f"{KUBECTL} uncordon cp1")

    # the Rocky worker: repo switch, kubeadm, `kubeadm upgrade node`, drain, kubelet
    lab.sh(
        "worker2",
        "sed -i 's#/v1.29/#/v1.30/#g' /etc/yum.repos.d/kubernetes.repo"
        f" && yum install -y 'kubeadm-{TO}-*' --disableexcludes=kubernetes",
    )
    node = lab.sh("worker2", "kubeadm upgrade node")
    real = (Path(__file__).resolve().parents[3] / "shared/fixtures/outputs").joinpath(
        "kubeadm-upgrade-node.worker.txt"
    )
    if real.exists():
        # the fixture predates kubeadm 1.28, which writes `-o yaml` (as the 1.28 plan fixtures)
        assert node.stdout == real.read_text().replace("-oyaml'", "-o yaml'")
    assert "kubeadm-config" in node.stdout
    _drain(lab, "worker2")
    lab.sh(
        "worker2",
        f"yum install -y 'kubelet-{TO}-*' 'kubectl-{TO}-*' --disableexcludes=kubernetes"
        " && systemctl daemon-reload && systemctl restart kubelet",
    )
    wait("worker2 at the new version", lambda: lab.versions()["worker2"] == f"v{TO}")
    lab.sh("cp1", f"{KUBECTL} uncordon worker2")

    got = lab.sh("cp1", f"{KUBECTL} get nodes").stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in got[1:]}
    assert rows["cp1"][1] == "Ready" and rows["cp1"][-1] == f"v{TO}"
    assert rows["worker2"][1] == "Ready" and rows["worker2"][-1] == f"v{TO}"
    assert rows["worker1"][-1] == f"v{FROM}"
    print(f"kubeadm upgrade apply: {apply_seconds:.1f} s")

    # a second plan offers nothing; a second apply changes no manifest
    assert "Awesome, you're up-to-date! Enjoy!" in lab.sh("cp1", "kubeadm upgrade plan").stdout
    before = lab.sh("cp1", "cat /etc/kubernetes/manifests/*.yaml").stdout
    again = lab.sh("cp1", f"kubeadm upgrade apply v{TO} -y").stdout
    assert "Current and new manifests of kube-apiserver are equal, skipping upgrade" in again
    assert lab.sh("cp1", "cat /etc/kubernetes/manifests/*.yaml").stdout == before
    # `kubeadm upgrade node` on the control plane: its static pods at the cluster's version.
    # kubeadm names its backup directories by the second and refuses one that exists, as
    # upstream's CreateTimestampDirForKubeadm does: a second run waits for the next second.
    time.sleep(1.1)
    node_cp = lab.sh("cp1", "kubeadm upgrade node").stdout
    assert (
        f'[upgrade] Upgrading your Static Pod-hosted control plane instance to version "v{TO}"...'
    ) in node_cp
    assert "[upgrade] The control plane instance for this node was successfully updated!" in node_cp
    assert lab.sh("cp1", "cat /etc/kubernetes/manifests/*.yaml").stdout == before
