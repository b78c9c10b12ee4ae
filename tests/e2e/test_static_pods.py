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
from nodeops import staticpods
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


def _journals(lab: Lab) -> list[Path]:
    return sorted((lab.home / ".local/state/nodeops/journal").glob("*"))


def _refused_alike(lab: Lab, node: str, cases: list[tuple[list[str], str]]) -> None:
    """Each apply exits 2 with one error naming the problem; the node's files (sha256) and
    the journals stay as they were (a refusal comes before any change)."""
    before, journals = lab.files(node), _journals(lab)
    for args, message in cases:
        run = lab.nodeops("static-pod-apply", "--node", node, *args)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert message in run.stderr, (args, run.stderr)
        assert run.stderr.count("error:") == 1, run.stderr
        assert lab.files(node) == before, args
    assert _journals(lab) == journals


def test_case_24_invalid_render_leaves_the_node_byte_identical(built: Lab, tmp_path: Path) -> None:
    """Case 24: bad YAML, kind Deployment, two documents, a wrong name: refused by
    safe_load plus Pod validation; nothing written; the existing file's sha256 unchanged."""
    ok = built.nodeops("static-pod-apply", "--node", "worker2", *GENERIC)
    assert ok.returncode == 0, ok.stderr
    assert f"{DIR}/probe.yaml" in built.files("worker2")
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: NAME}\nspec:\n  containers:\n"
    pod += "  - {name: c, image: busybox:1.36}\n"
    templates = {
        "bad-yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: {{ name }}\nspec: [\n",
        "deployment": pod.replace("kind: Pod", "kind: Deployment").replace("NAME", "{{ name }}"),
        "two-documents": pod.replace("NAME", "{{ name }}") + "---\n" + pod.replace("NAME", "x"),
        "wrong-name": pod.replace("NAME", "Probe_1"),
    }
    paths = {}
    for name, text in templates.items():
        paths[name] = tmp_path / f"{name}.yaml.j2"
        paths[name].write_text(text)
    # More refusals (names, namespaces, unknown keys) are unit-tested.
    _refused_alike(
        built,
        "worker2",
        [
            (["--template", str(paths["bad-yaml"]), "--set", "name=probe"], "not valid YAML"),
            (["--template", str(paths["deployment"]), "--set", "name=probe"], "must be 'Pod'"),
            (
                ["--template", str(paths["two-documents"]), "--set", "name=probe"],
                "2 YAML documents",
            ),
            (["--template", str(paths["wrong-name"])], "'Probe_1' is not a DNS-1123 subdomain"),
            ([*GENERIC[:2], "--set", "name=kube-apiserver", *GENERIC[4:]], "kubeadm's own"),
        ],
    )


def test_case_27_template_injection_changes_nothing_on_the_node(built: Lab) -> None:
    """Case 27 on the lab: a value with a newline and a key, `{{7*7}}`, a missing variable:
    refused or emitted as one JSON value; no extra key reaches the node."""
    before = built.files("worker2")
    _refused_alike(
        built,
        "worker2",
        [
            (["--template", "generic", "--set", "name=probe"], "missing value(s) image"),
            ([*GENERIC[:4], "--set", "image=img\n    hostNetwork: true"], "holds whitespace"),
        ],
    )
    # A template expression in a value stays text: the dry run shows it literally.
    dry = built.nodeops(
        "static-pod-apply", "--node", "worker2", *GENERIC[:4], "--set", "image={{7*7}}",
        "--dry-run",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert '+    image: "{{7*7}}"' in dry.stdout and "49" not in dry.stdout
    assert '-    image: "busybox:1.36"' in dry.stdout
    args = built.nodeops(
        "static-pod-apply", "--node", "worker2", *GENERIC, "--set",
        'args=["a\\n    hostNetwork: true"]', "--dry-run",
    )  # fmt: skip
    assert args.returncode == 0, args.stderr
    assert '+    args: ["a\\n    hostNetwork: true"]' in args.stdout
    assert "hostNetwork: true" not in args.stdout.replace('"a\\n    hostNetwork: true"', "")
    assert built.files("worker2") == before


def test_case_26_stray_files_and_an_unresolved_path_are_refused(built: Lab) -> None:
    """Case 26: `*.bak`, `x~`, `#x#` in the directory, or a kubelet config that is missing or
    names no staticPodPath: the preflight refuses and names them; nothing changes."""
    built.sh("worker2", f"touch {DIR}/probe.yaml.bak {DIR}/x~ {DIR}/'#x#'")
    try:
        _refused_alike(
            built,
            "worker2",
            [([*GENERIC[:4], "--set", "image=busybox:1.37"], "#x#, probe.yaml.bak, x~")],
        )
    finally:
        built.sh("worker2", f"rm -f {DIR}/probe.yaml.bak {DIR}/x~ {DIR}/'#x#'")
    kept = "/root/kubelet-config.yaml"
    built.sh("worker2", f"cp -p {CONFIG} {kept} && sed -i '/^staticPodPath:/d' {CONFIG}")
    try:
        _refused_alike(
            built, "worker2", [(list(GENERIC), "no staticPodPath: this kubelet runs no file-based")]
        )
        built.sh("worker2", f"rm {CONFIG}")
        _refused_alike(built, "worker2", [(list(GENERIC), f"the config file {CONFIG} does not")])
    finally:
        built.sh("worker2", f"cp -p {kept} {CONFIG} && rm {kept}")
    # What nodeops keeps (replaced and removed manifests) lives only in its own run
    # directories under /etc/kubernetes/tmp, never beside the manifests.
    replaced = built.nodeops("static-pod-apply", "--node", "worker2", *GENERIC[:4], "--set",
                             "image=busybox:1.37")  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert built.sh("worker2", f"ls -A {DIR}").stdout.split() == ["probe.yaml"]
    tmp = built.sh("worker2", "ls -A /etc/kubernetes/tmp").stdout.split()
    assert tmp and all(re.fullmatch(r"nodeops-[0-9TZ]+-[0-9a-f]+(-failed)?", n) for n in tmp), tmp
    back = built.nodeops("static-pod-apply", "--node", "worker2", *GENERIC)
    assert back.returncode == 0, back.stderr


BIG = 1024 * 1024


def _big_template(tmp_path: Path) -> Path:
    path = tmp_path / "big.yaml.j2"
    path.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ name }}\n  namespace: kube-system\n"
        f'  annotations:\n    blob: "{"x" * BIG}"\n'
        "spec:\n  containers:\n  - name: c\n    image: {{ image }}\n"
    )
    return path


def test_case_25_a_1mb_manifest_is_never_seen_partial(built: Lab, tmp_path: Path) -> None:
    """Case 25: a 1 MB manifest is uploaded to a temp file outside the directory, then
    `mv -T`: a watcher on the node sees only the whole file; an upload cut short (the
    connection dropped mid-stream) and a SIGKILLed nodeops leave nothing partial and no
    temp file; the manifest is 0600 root:root."""
    template = _big_template(tmp_path)
    args = ["--node", "worker1", "--template", str(template), "--set", "name=big"]
    args += ["--set", "image=busybox:1.36"]
    # A watcher: every distinct sha256 that big.yaml shows while nodeops works.
    watch = (
        f"rm -f /tmp/watch.stop; while [ ! -e /tmp/watch.stop ]; do sha256sum {DIR}/big.yaml"
        " 2>/dev/null; sleep 0.01; done | sort -u > /tmp/watch.seen"
    )
    watcher = subprocess.Popen(nodeops_lab.ssh_argv(built.state.name, "worker1", [watch]))
    try:
        run = built.nodeops("static-pod-apply", *args)
    finally:
        built.sh("worker1", "touch /tmp/watch.stop")
        watcher.wait(timeout=30)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "big-worker1 Running" in run.stdout
    whole = built.sh("worker1", f"sha256sum {DIR}/big.yaml").stdout.split()[0]
    seen = {
        line.split()[0]
        for line in built.sh("worker1", "cat /tmp/watch.seen").stdout.split("\n")
        if line
    }
    assert seen == {whole}, seen
    stat = built.sh("worker1", f"stat -c '%a %U:%G %s' {DIR}/big.yaml").stdout.split()
    assert stat[:2] == ["600", "root:root"] and int(stat[2]) > BIG
    assert not [n for n in built.sh("worker1", "ls -A /etc/kubernetes/tmp").stdout.split()
                if not n.startswith("nodeops-2")]  # fmt: skip

    # The same install command, its upload cut at half: nothing installed, nothing left.
    text = built.sh("worker1", f"cat {DIR}/big.yaml").stdout
    new = text.replace("busybox:1.36", "busybox:1.37")
    plan = staticpods.plan_install(
        text, new, path=f"{DIR}/big.yaml", stamp="20260101T000000Z-c0ffee"
    )
    command = staticpods.install_command(plan).render(as_root=True)
    cut = subprocess.run(
        nodeops_lab.ssh_argv(built.state.name, "worker1", [command]),
        input=new[: len(new) // 2], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cut.returncode != 0 and "cut short" in cut.stderr, cut.stderr
    assert built.sh("worker1", f"sha256sum {DIR}/big.yaml").stdout.split()[0] == whole
    assert "nodeops-big.yaml." not in built.sh("worker1", "ls -A /etc/kubernetes/tmp").stdout

    # nodeops killed with SIGKILL while it replaces the manifest: whatever the moment, the
    # directory holds the whole old or the whole new file, and no temp file stays behind.
    env = {**os.environ, "HOME": str(built.home)}
    env.pop("NODEOPS_INVENTORY", None)
    killed = subprocess.Popen(
        [sys.executable, "-m", "nodeops", "static-pod-apply", *args[:-1], "image=busybox:1.38",
         "-i", str(built.inventory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    time.sleep(1.5)
    killed.kill()
    killed.wait(timeout=30)
    newest = _wait(
        "the node's shell to finish or clean up",
        lambda: "nodeops-big.yaml." not in built.sh("worker1", "ls -A /etc/kubernetes/tmp").stdout,
    )
    assert newest
    text_now = built.sh("worker1", f"cat {DIR}/big.yaml").stdout
    assert text_now in (text, text.replace("busybox:1.36", "busybox:1.38"))
    assert built.sh("worker1", f"ls -A {DIR}").stdout.split() == ["big.yaml"]
    removed = built.nodeops("static-pod-remove", "--node", "worker1", "--name", "big")
    assert removed.returncode == 0, removed.stderr


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
