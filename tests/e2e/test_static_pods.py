"""Static pod tasks on the lab through the real CLI: kubelet-config, static-pod-path,
static-pods, static-pod-apply (second scheduler, generic, dry run, refusals, restore on
timeout) and static-pod-remove, over real SSH."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeops import lab as nodeops_lab
from nodeops.lab import cluster

pytestmark = pytest.mark.lab

VERSION = "1.29.3"
DIR = "/etc/kubernetes/manifests"
KUBECTL = "HOME=/tmp/kubectl-home kubectl --kubeconfig /etc/kubernetes/admin.conf"
CONFIG = "/var/lib/kubelet/config.yaml"
DROPIN = "drop-in /usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"


class Lab:
    """A lab made a cluster, and the CLI pointed at it with a private HOME."""

    def __init__(self, state: nodeops_lab.LabState, inventory: Path, home: Path) -> None:
        self.state = state
        self.inventory = inventory
        self.home = home

    def sh(self, node: str, script: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            nodeops_lab.ssh_argv(self.state.name, node, [script]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{node}: {script!r} exited {done.returncode}: {done.stderr}")
        return done

    def nodeops(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.home)}
        env.pop("NODEOPS_INVENTORY", None)
        return subprocess.run(
            [sys.executable, "-m", "nodeops", *args, "-i", str(self.inventory)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            stdin=subprocess.DEVNULL,
        )

    def kubectl_json(self, args: str) -> Any:
        return json.loads(self.sh("cp1", f"{KUBECTL} {args} -o json").stdout)

    def files(self, node: str) -> dict[str, str]:
        """sha256 of every file in the manifest dir and of /etc/kubernetes/*.yaml."""
        out = self.sh(
            node,
            f"find {DIR} /etc/kubernetes -maxdepth 1 -type f -exec sha256sum {{}} +",
        ).stdout
        return {line.split()[1]: line.split()[0] for line in out.splitlines()}

    def mirror(self, node: str, name: str) -> dict[str, Any] | None:
        pods = self.kubectl_json(f"get pods -A --field-selector spec.nodeName={node}")["items"]
        return next((p for p in pods if p["metadata"]["name"] == name), None)


def _wait(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def built(
    lab_root: Path, fresh_lab_name: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """A lab of cp1 (ubuntu-22.04), worker1 (ubuntu-24.04), worker2 (rocky-9) made a cluster."""
    name = fresh_lab_name()
    spec = nodeops_lab.default_spec(name, workers=2)
    inventory = tmp_path_factory.mktemp("static-pods-inventory") / "lab.yaml"
    home = tmp_path_factory.mktemp("static-pods-home")
    try:
        state = nodeops_lab.up(spec, inventory_path=inventory)
        cluster.build_cluster(state, version=VERSION, timeout=60)
        yield Lab(state, inventory, home)
    finally:
        nodeops_lab.down(name)


@pytest.mark.parametrize("node", ["cp1", "worker2"])
def test_kubelet_config_and_static_pod_path_with_their_sources(built: Lab, node: str) -> None:
    run = built.nodeops("kubelet-config", "--node", node, "--json")
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["node"] == node
    assert got["config_path"]["value"] == CONFIG
    # The lab's kubelet runs as `python -m nodeops.lab.sim.kubelet`, so `ps` shows no kubelet
    # binary and the flags come from the unit (on a real node: "process flags of pid N").
    assert got["config_path"]["source"] in {DROPIN} or got["config_path"]["source"].startswith(
        "process flags of pid"
    )
    assert got["static_pod_path"] == {"value": DIR, "source": f"config file {CONFIG}"}
    assert got["conflicts"] == []
    if node == "cp1":
        text = built.nodeops("kubelet-config", "--node", node)
        assert f"staticPodPath: {DIR}  (config file {CONFIG})" in text.stdout
    else:
        path = built.nodeops("static-pod-path", "--node", node)
        assert path.returncode == 0, path.stderr
        assert path.stdout == f"{DIR}\tconfig file {CONFIG}\n"


def _pod(name: str, scheduler: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "schedulerName": scheduler,
                "containers": [{"name": "c", "image": "nginx:1.25"}],
            },
        }
    )


def test_second_scheduler_schedules_its_pods_until_removed(built: Lab) -> None:
    before = built.files("cp1")
    dry = built.nodeops(
        "static-pod-apply", "--node", "cp1", "--template", "scheduler",
        "--set", "name=my-scheduler", "--dry-run",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert f"+++ {DIR}/my-scheduler.yaml (new)" in dry.stdout
    assert "+- schedulerName: my-scheduler" in dry.stdout
    assert "nothing was written" in dry.stdout
    assert built.files("cp1") == before  # the dry run wrote nothing
    assert built.sh("cp1", "test -e /etc/kubernetes/tmp", check=False).returncode == 1

    started = time.monotonic()
    run = built.nodeops(
        "static-pod-apply", "--node", "cp1", "--template", "scheduler",
        "--set", "name=my-scheduler",
    )  # fmt: skip
    wall = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    reported = re.search(r"my-scheduler-cp1 Running, \d/1 ready after ([\d.]+) s", run.stdout)
    assert reported, run.stdout
    print(f"\nscheduler apply-to-Running: {float(reported.group(1)):.2f} s (CLI {wall:.2f} s)")
    assert built.mirror("cp1", "my-scheduler-cp1")["status"]["phase"] == "Running"
    modes = built.sh(
        "cp1", f"stat -c '%a %U' {DIR}/my-scheduler.yaml /etc/kubernetes/my-scheduler-config.yaml"
    ).stdout
    assert modes.split("\n")[:2] == ["600 root", "600 root"]
    assert built.sh("cp1", f"ls -A {DIR}").stdout.split() == [
        "etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml",
        "kube-scheduler.yaml", "my-scheduler.yaml",
    ]  # fmt: skip

    again = built.nodeops(
        "static-pod-apply", "--node", "cp1", "--template", "scheduler",
        "--set", "name=my-scheduler",
    )  # fmt: skip
    assert again.returncode == 0 and "unchanged" in again.stdout, again.stdout + again.stderr
    listed = built.nodeops("static-pods", "--node", "cp1")
    assert re.search(
        r"my-scheduler\.yaml\s+kube-system\s+my-scheduler-cp1\s+Running", listed.stdout
    )

    script = f"echo {shlex.quote(_pod('by-mine', 'my-scheduler'))} | {KUBECTL} create -f -"
    built.sh("cp1", script)
    try:
        bound = _wait(
            "my-scheduler to bind the pod",
            lambda: built.kubectl_json("get pod by-mine")["spec"].get("nodeName"),
        )
        assert bound in {"worker1", "worker2"}

        removed = built.nodeops("static-pod-remove", "--node", "cp1", "--name", "my-scheduler")
        assert removed.returncode == 0, removed.stderr
        assert built.mirror("cp1", "my-scheduler-cp1") is None
        kept = re.search(r"manifest kept at (\S+)", removed.stdout)
        assert kept and kept.group(1).startswith("/etc/kubernetes/tmp/nodeops-")
        assert built.sh("cp1", f"test -s {kept.group(1)}", check=False).returncode == 0
        assert built.files("cp1") == before  # the config file went with the manifest
        _wait(
            "the second scheduler's process to end",
            lambda: "my-scheduler" not in built.sh("cp1", "ps -eo args").stdout,
        )
        built.sh(
            "cp1", f"echo {shlex.quote(_pod('orphan', 'my-scheduler'))} | {KUBECTL} create -f -"
        )
        time.sleep(1.5)  # several passes of the default scheduler (one each 0.3 s)
        orphan = built.kubectl_json("get pod orphan")
        assert orphan["status"].get("phase") == "Pending"
        assert not orphan["spec"].get("nodeName")
    finally:
        built.sh("cp1", f"{KUBECTL} delete pod by-mine orphan --ignore-not-found --wait=false")


GENERIC = ("--template", "generic", "--set", "name=probe", "--set", "image=busybox:1.36")


def test_generic_static_pod_on_a_worker_appears_and_is_removed(built: Lab) -> None:
    run = built.nodeops(
        "static-pod-apply", "--node", "worker1", *GENERIC, "--set", 'args=["sleep","3600"]'
    )
    assert run.returncode == 0, run.stderr
    assert f"+++ {DIR}/probe.yaml (new)" in run.stdout
    pod = built.mirror("worker1", "probe-worker1")
    assert pod and pod["status"]["phase"] == "Running"
    assert pod["metadata"]["annotations"]["kubernetes.io/config.source"] == "file"
    written = built.files("worker1")[f"{DIR}/probe.yaml"]

    removed = built.nodeops("static-pod-remove", "--node", "worker1", "--name", "probe-worker1")
    assert removed.returncode == 0, removed.stderr
    assert built.mirror("worker1", "probe-worker1") is None
    kept = re.search(r"manifest kept at (\S+)", removed.stdout)
    assert kept
    copy = built.sh("worker1", f"sha256sum {kept.group(1)}").stdout.split()[0]
    assert copy == written
    assert built.sh("worker1", f"ls -A {DIR}").stdout.strip() == ""
    journals = list((built.home / ".local/state/nodeops/journal").glob("*static-pod-remove*"))
    assert journals and "mv -T" in journals[-1].read_text()


def test_bad_templates_and_values_leave_the_node_byte_identical(built: Lab, tmp_path: Path) -> None:
    ok = built.nodeops("static-pod-apply", "--node", "worker2", *GENERIC)
    assert ok.returncode == 0, ok.stderr
    before = built.files("worker2")
    assert f"{DIR}/probe.yaml" in before
    bad_yaml = tmp_path / "bad-yaml.yaml.j2"
    bad_yaml.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: {{ name }}\nspec: [\n")
    deployment = tmp_path / "deployment.yaml.j2"
    deployment.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ name }}\n"
        "spec:\n  containers:\n  - {name: c, image: nginx}\n"
    )
    # More refusals (names, namespaces, kubeadm's pods, unknown keys) are unit-tested.
    cases = [
        (["--template", str(bad_yaml), "--set", "name=probe"], "not valid YAML"),
        (["--template", str(deployment), "--set", "name=probe"], "must be 'Pod'"),
        (["--template", "generic", "--set", "name=probe"], "missing value(s) image"),
        ([*GENERIC[:4], "--set", "image=img\n    hostNetwork: true"], "holds whitespace"),
    ]
    for args, message in cases:
        run = built.nodeops("static-pod-apply", "--node", "worker2", *args)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert message in run.stderr, (args, run.stderr)
        assert run.stderr.count("error:") == 1, run.stderr
        assert built.files("worker2") == before, args

    # A template expression in a value stays text: the dry run shows it literally.
    dry = built.nodeops(
        "static-pod-apply", "--node", "worker2", *GENERIC[:4], "--set", "image={{7*7}}",
        "--dry-run",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert '+    image: "{{7*7}}"' in dry.stdout and "49" not in dry.stdout
    assert '-    image: "busybox:1.36"' in dry.stdout
    assert built.files("worker2") == before


def test_stray_files_are_refused(built: Lab) -> None:
    built.sh("worker2", f"touch {DIR}/probe.yaml.bak {DIR}/'#x#'")
    try:
        before = built.files("worker2")
        run = built.nodeops("static-pod-apply", "--node", "worker2", *GENERIC[:4], "--set",
                            "image=busybox:1.37")  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert "#x#, probe.yaml.bak" in run.stderr and "--allow-stray-files" in run.stderr
        assert built.files("worker2") == before
    finally:
        built.sh("worker2", f"rm -f {DIR}/probe.yaml.bak {DIR}/'#x#'")


def test_a_pod_that_does_not_come_up_in_time_is_restored(built: Lab) -> None:
    first = built.nodeops("static-pod-apply", "--node", "worker2", *GENERIC)  # or unchanged
    assert first.returncode == 0, first.stderr
    before = built.files("worker2")
    assert f"{DIR}/probe.yaml" in before
    pid = built.sh("worker2", "pgrep -x kubelet").stdout.split()[0]
    built.sh("worker2", f"kill -STOP {pid}")  # a kubelet that does not pick the change up
    try:
        run = built.nodeops("static-pod-apply", "--node", "worker2", *GENERIC[:4], "--set",
                            "image=busybox:1.38", "--timeout", "2")  # fmt: skip
    finally:
        built.sh("worker2", f"kill -CONT {pid}")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "was not Running within 2 s" in run.stderr
    assert f"restored the previous state of {DIR}/probe.yaml" in run.stderr
    assert "journal:" in run.stderr
    assert built.files("worker2") == before
    kept = re.search(r"kept in (/etc/kubernetes/tmp/nodeops-\S+-failed)", run.stderr)
    assert kept
    assert "busybox:1.38" in built.sh("worker2", f"cat {kept.group(1)}/probe.yaml").stdout
    time.sleep(0.5)
    pod = built.mirror("worker2", "probe-worker2")
    assert pod and pod["spec"]["containers"][0]["image"] == "busybox:1.36"
    removed = built.nodeops("static-pod-remove", "--node", "worker2", "--name", "probe")
    assert removed.returncode == 0, removed.stderr
