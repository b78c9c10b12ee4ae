"""Static pod operations over FakeTransport: exact commands, dry runs, refusals, restores."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

from nodeops import staticpodops
from nodeops.cmd import Cmd
from nodeops.fanout import Sessions
from nodeops.journal import read as read_journal
from nodeops.kube import ADMIN_KUBECONFIG
from nodeops.kubeletconfig import kubelet_config_probe, read_files_probe
from nodeops.node import Node
from nodeops.staticpodops import (
    StaticPodFailed,
    StaticPodRefused,
    Waiter,
    node_pods_command,
)
from nodeops.staticpods import (
    InvalidPod,
    TemplateError,
    install_command,
    plan_install,
    remove_command,
)
from nodeops.tasks import staticpods as tasks
from nodeops.transport import FakeTransport

NODE = Node("worker1", "10.0.0.12", roles=frozenset({"worker"}))
CP = Node("cp1", "10.0.0.11", roles=frozenset({"control-plane"}))
CONFIG = "/var/lib/kubelet/config.yaml"
DIR = "/etc/kubernetes/manifests"
STAMP = "20260101T000000Z-abcd"

PS = (
    "    PID COMMAND\n"
    "      1 /sbin/init\n"
    f"    811 /usr/bin/kubelet --kubeconfig=/etc/kubernetes/kubelet.conf --config={CONFIG}\n"
)
KUBELET_CONFIG = (
    f"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: {DIR}\n"
)
SCHEDULER = """\
apiVersion: v1
kind: Pod
metadata:
  labels: {component: kube-scheduler, tier: control-plane}
  name: kube-scheduler
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-scheduler
    - --kubeconfig=/etc/kubernetes/scheduler.conf
    - --leader-elect=true
    image: registry.k8s.io/kube-scheduler:v1.29.3
    name: kube-scheduler
    volumeMounts:
    - {mountPath: /etc/kubernetes/scheduler.conf, name: kubeconfig, readOnly: true}
  hostNetwork: true
  volumes:
  - hostPath: {path: /etc/kubernetes/scheduler.conf, type: FileOrCreate}
    name: kubeconfig
"""
WRITES = ("mktemp", "mv -T", "cp -p", "chmod", "chown", "rm -f")


def probes(**sections: tuple[str, int]) -> str:
    """Stdout of a probe script: each section between its marker lines."""
    out = ""
    for name, (text, rc) in sections.items():
        out += f"\n@@nodeops-probe {name}@@\n{text}\n@@nodeops-rc {name} {rc}@@\n"
    return out


def shown(files: dict[str, str]) -> str:
    return "".join(f"==> {path} <==\n{text}\n" for path, text in files.items())


def listing(names: list[str]) -> str:
    lines = ["total 8", "drwxr-xr-x 2 0 0 4096 1700000000 .", "drwxr-xr-x 4 0 0 4096 1700000000 .."]
    lines += [f"-rw------- 1 0 0 100 1700000000 {name}" for name in names]
    return "\n".join(lines)


def dir_output(files: dict[str, str], extra: dict[str, str] | None = None, dev: str = "42 42"):
    paths = {f"{DIR}/{name}": text for name, text in files.items()}
    return probes(
        static_pod_dir=(listing(sorted(files)), 0),
        static_pod_files=(shown({**paths, **(extra or {})}), 0),
        filesystems=(dev.replace(" ", "\n"), 0),
    )


def node_rules(files: dict[str, str], **kwargs: Any) -> list[tuple[str, Any]]:
    return [
        ("kubelet_ps", (0, probes(kubelet_ps=(PS, 0), kubelet_unit=("", 1)), "")),
        ("kubelet_files", (0, probes(kubelet_files=(shown({CONFIG: KUBELET_CONFIG}), 0)), "")),
        ("static_pod_dir", (0, dir_output(files, **kwargs), "")),
        ("mktemp", (0, "", "")),
        ("mv -T --", (0, "", "")),
    ]


def pod_list(*pods: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(pods)})


def mirror(name: str, *, phase: str = "Running", hash_: str = "h1", running: bool = True):
    return {
        "metadata": {
            "name": name,
            "namespace": "kube-system",
            "annotations": {"kubernetes.io/config.mirror": hash_},
        },
        "spec": {"containers": [{"name": "c"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"ready": running, "state": {"running": {}} if running else {"waiting": {}}}
            ],
        },
    }


class Api:
    """kubectl answers in turn: the last answer repeats."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)

    def __call__(self, _: Cmd) -> tuple[int, str, str]:
        text = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return 0, text, ""


def no_wait() -> Waiter:
    """A waiter whose clock jumps a second per poll, so timeouts pass at once."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += 1.0

    return Waiter(clock=lambda: now[0], sleep=sleep, poll=1.0)


def writes(transport: FakeTransport) -> list[Cmd]:
    return [c for c in transport.sent if any(w in c.render(as_root=True) for w in WRITES)]


def read_dir(t: FakeTransport, extra: tuple[str, ...] = ()) -> staticpodops.StaticPodDir:
    finding = staticpodops.read_kubelet_config(t)
    path = staticpodops.static_pod_path(finding, t.node.name)
    return staticpodops.read_static_pod_dir(t, path, extra)


# --- reading -------------------------------------------------------------------------------


def test_kubelet_config_is_two_read_only_round_trips() -> None:
    t = FakeTransport(NODE, node_rules({}))
    finding = staticpodops.read_kubelet_config(t)
    assert t.sent == [kubelet_config_probe(), read_files_probe([CONFIG])]
    assert finding.config_path is not None
    assert (finding.config_path.value, finding.config_path.source) == (
        CONFIG,
        "process flags of pid 811",
    )
    assert finding.static_pod_path is not None
    assert finding.static_pod_path.value == DIR
    assert finding.static_pod_path.source == f"config file {CONFIG}"
    assert not writes(t)


def test_unresolved_static_pod_path_is_refused() -> None:
    rules = node_rules({})
    rules[1] = ("kubelet_files", (0, probes(kubelet_files=("", 0)), ""))  # no config file
    t = FakeTransport(NODE, rules)
    finding = staticpodops.read_kubelet_config(t)
    with pytest.raises(StaticPodRefused, match="staticPodPath is unresolved"):
        staticpodops.static_pod_path(finding, NODE.name)


def test_directory_read_finds_manifests_stray_files_and_pod_names() -> None:
    files = {"kube-scheduler.yaml": SCHEDULER, "x.yaml.bak": SCHEDULER, "#x#": "junk"}
    t = FakeTransport(NODE, node_rules(files))
    pod_dir = read_dir(t)
    assert pod_dir.stray == ["#x#", "x.yaml.bak"]
    scheduler = pod_dir.manifest("kube-scheduler.yaml")
    assert scheduler is not None
    assert (scheduler.pod_name, scheduler.namespace) == ("kube-scheduler", "kube-system")
    assert scheduler.text == SCHEDULER
    assert pod_dir.same_filesystem is True
    assert len(t.sent) == 3 and not writes(t)


def test_mirror_pods_are_read_with_the_admin_kubeconfig() -> None:
    command = node_pods_command("worker1", "kube-system", "probe-worker1")
    assert command.sudo
    assert command.render(as_root=True) == (
        f"kubectl --kubeconfig={ADMIN_KUBECONFIG} get pods --namespace kube-system"
        " --field-selector=spec.nodeName=worker1,metadata.name=probe-worker1 -o json"
    )
    plain = {"metadata": {"name": "web-1", "namespace": "default"}, "status": {}}
    pods = staticpodops.parse_mirror_pods(pod_list(mirror("probe-worker1"), plain))
    assert list(pods) == [("kube-system", "probe-worker1")]
    assert pods[("kube-system", "probe-worker1")].running


# --- planning: refusals leave the node untouched ---------------------------------------------


GENERIC = {"name": "probe", "image": "busybox:1.36"}


def plan(files: dict[str, str], sets: dict[str, str], template: str = "generic", **kw: Any):
    t = FakeTransport(NODE, node_rules(files, **kw.pop("rules", {})))
    extra = kw.pop("extra", ())
    pod_dir = read_dir(t, extra)
    result = staticpodops.plan_apply(NODE.name, template, sets, pod_dir, stamp=STAMP, **kw)
    assert not writes(t)
    return result


def test_stray_files_are_refused_by_name_unless_allowed() -> None:
    files = {"old.yaml~": "x", "probe.yaml.bak": "y"}
    with pytest.raises(StaticPodRefused, match=r"old\.yaml~, probe\.yaml\.bak"):
        plan(files, GENERIC)
    assert plan(files, GENERIC, allow_stray_files=True).manifest.action == "create"


@pytest.mark.parametrize(
    ("sets", "error", "match"),
    [
        ({**GENERIC, "image": "img\n    hostNetwork: true"}, InvalidPod, "holds whitespace"),
        ({**GENERIC, "name": 'x"\nkind: Deployment'}, InvalidPod, "DNS-1123"),
        ({**GENERIC, "namespace": "x\nkind: Deployment"}, InvalidPod, "DNS-1123 label"),
        ({"name": "probe"}, TemplateError, "missing value.*image"),
        ({**GENERIC, "colour": "red"}, TemplateError, "unknown --set key"),
        ({**GENERIC, "port": "eighty"}, TemplateError, "not a number"),
        ({**GENERIC, "name": "etcd"}, StaticPodRefused, "kubeadm's own"),
    ],
)
def test_bad_values_are_refused_before_any_write(
    sets: dict[str, str], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        plan({}, sets)


def test_template_expressions_in_values_stay_literal() -> None:
    result = plan({}, {**GENERIC, "image": "{{7*7}}"})
    assert yaml.safe_load(result.manifest.new_text)["spec"]["containers"][0]["image"] == "{{7*7}}"


def test_a_local_template_that_renders_no_pod_is_refused(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml.j2"
    bad_yaml.write_text("apiVersion: v1\nkind: Pod\nmetadata: [\n")
    deployment = tmp_path / "deploy.yaml.j2"
    deployment.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: {{ name }}}\n")
    with pytest.raises(InvalidPod, match="not valid YAML"):
        plan({}, {}, template=str(bad_yaml))
    with pytest.raises(InvalidPod, match="must be 'Pod'"):
        plan({}, {"name": "x"}, template=str(deployment))
    with pytest.raises(TemplateError, match="'name' is undefined"):
        plan({}, {}, template=str(deployment))


def test_another_file_declaring_the_same_pod_is_refused() -> None:
    other = "apiVersion: v1\nkind: Pod\nmetadata: {name: probe}\nspec:\n  containers:\n"
    other += "  - {name: c, image: nginx}\n"
    with pytest.raises(StaticPodRefused, match=r"other\.yaml .*already declares pod probe"):
        plan({"other.yaml": other}, GENERIC)


def test_a_temp_dir_on_another_filesystem_is_refused() -> None:
    with pytest.raises(StaticPodRefused, match="not on the filesystem"):
        plan({}, GENERIC, rules={"dev": "41 42"})


def test_the_scheduler_template_needs_the_nodes_own_scheduler() -> None:
    with pytest.raises(StaticPodRefused, match=r"no kube-scheduler\.yaml"):
        plan({}, {"name": "my-scheduler"}, template="scheduler")


def test_parse_sets() -> None:
    assert staticpodops.parse_sets(["a=b=c", "env.X="]) == {"a": "b=c", "env.X": ""}
    with pytest.raises(StaticPodRefused, match="key=value"):
        staticpodops.parse_sets(["novalue"])
    with pytest.raises(StaticPodRefused, match="twice"):
        staticpodops.parse_sets(["a=1", "a=2"])
    with pytest.raises(StaticPodRefused, match="unknown template"):
        staticpodops.check_template("nope")


# --- applying ------------------------------------------------------------------------------


def test_create_writes_once_then_waits_for_the_mirror_pod() -> None:
    p = plan({}, GENERIC)
    assert p.manifest.action == "create" and p.mirror == "probe-worker1"
    assert '+    image: "busybox:1.36"' in p.diff()
    node_t = FakeTransport(NODE, node_rules({}))
    api = FakeTransport(
        CP, [("get pods", Api(pod_list(), pod_list(), pod_list(mirror("probe-worker1"))))]
    )
    outcome = staticpodops.apply(node_t, api, p, timeout=10, waiter=no_wait())
    assert node_t.sent == [install_command(p.manifest)]
    assert outcome.mirror is not None and outcome.mirror.running
    assert len(api.sent) == 3
    assert all(c == node_pods_command("worker1", "kube-system", "probe-worker1") for c in api.sent)


def test_scheduler_configuration_is_installed_before_the_manifest() -> None:
    config = "/etc/kubernetes/my-scheduler-config.yaml"
    p = plan(
        {"kube-scheduler.yaml": SCHEDULER},
        {"name": "my-scheduler"},
        template="scheduler",
        extra=(config,),
    )
    assert [i.path for i in p.installs] == [config, f"{DIR}/my-scheduler.yaml"]
    assert "schedulerName: my-scheduler" in p.installs[0].new_text
    node_t = FakeTransport(NODE, node_rules({}))
    api = FakeTransport(
        CP, [("get pods", Api(pod_list(), pod_list(mirror("my-scheduler-worker1"))))]
    )
    staticpodops.apply(node_t, api, p, timeout=10, waiter=no_wait())
    assert node_t.sent == [install_command(p.installs[0]), install_command(p.installs[1])]


def test_replace_that_never_comes_up_restores_the_previous_manifest() -> None:
    old = plan({}, {**GENERIC, "image": "busybox:1.35"}).manifest.new_text
    p = plan({"probe.yaml": old}, GENERIC)
    assert p.manifest.action == "replace"
    assert '-    image: "busybox:1.35"' in p.diff() and '+    image: "busybox:1.36"' in p.diff()
    node_t = FakeTransport(NODE, node_rules({}))
    # The old pod stays: its hash never changes.
    api = FakeTransport(CP, [("get pods", Api(pod_list(mirror("probe-worker1", hash_="old"))))])
    with pytest.raises(StaticPodFailed) as caught:
        staticpodops.apply(node_t, api, p, timeout=3, waiter=no_wait())
    back = plan_install(p.manifest.new_text, old, path=p.manifest.path, stamp=f"{STAMP}-failed")
    assert node_t.sent == [install_command(p.manifest), install_command(back)]
    message = str(caught.value)
    assert "not Running within 3 s" in message and "previous manifest's pod" in message
    assert f"/etc/kubernetes/tmp/nodeops-{STAMP}" in message  # where the replaced file is kept
    assert "restored the previous state of /etc/kubernetes/manifests/probe.yaml" in message


def test_create_that_never_comes_up_moves_the_new_manifest_out() -> None:
    p = plan({}, GENERIC)
    node_t = FakeTransport(NODE, node_rules({}))
    api = FakeTransport(CP, [("get pods", Api(pod_list()))])
    with pytest.raises(StaticPodFailed, match="no mirror pod"):
        staticpodops.apply(node_t, api, p, timeout=2, waiter=no_wait())
    undo = remove_command(p.manifest.path, stamp=f"{STAMP}-failed", keep_out_of=DIR)
    assert node_t.sent == [install_command(p.manifest), undo]


def test_a_failed_write_changes_nothing_else_and_says_so() -> None:
    p = plan({}, GENERIC)
    node_t = FakeTransport(NODE, [("mktemp", (3, "", "appeared since it was read"))])
    api = FakeTransport(CP, [("get pods", Api(pod_list()))])
    with pytest.raises(StaticPodFailed, match="nothing was written"):
        staticpodops.apply(node_t, api, p, timeout=2, waiter=no_wait())
    assert node_t.sent == [install_command(p.manifest)]


# --- removing ------------------------------------------------------------------------------


def test_remove_moves_the_manifest_out_and_waits_until_the_mirror_is_gone() -> None:
    manifest = plan({}, GENERIC).manifest.new_text
    t = FakeTransport(NODE, node_rules({"probe.yaml": manifest}))
    pod_dir = read_dir(t)
    p = staticpodops.plan_remove(NODE.name, "probe-worker1", pod_dir, stamp=STAMP)
    assert p.paths == (f"{DIR}/probe.yaml",)
    assert p.kept(p.paths[0]) == f"/etc/kubernetes/tmp/nodeops-{STAMP}/probe.yaml"
    node_t = FakeTransport(NODE, node_rules({}))
    api = FakeTransport(CP, [("get pods", Api(pod_list(mirror("probe-worker1")), pod_list()))])
    staticpodops.remove(node_t, api, p, timeout=5, waiter=no_wait())
    assert node_t.sent == [remove_command(f"{DIR}/probe.yaml", stamp=STAMP, keep_out_of=DIR)]


def test_remove_of_a_second_scheduler_also_moves_its_configuration() -> None:
    config = "/etc/kubernetes/my-scheduler-config.yaml"
    p = plan(
        {"kube-scheduler.yaml": SCHEDULER}, {"name": "my-scheduler"}, "scheduler", extra=(config,)
    )
    files = {"kube-scheduler.yaml": SCHEDULER, "my-scheduler.yaml": p.manifest.new_text}
    pod_dir = read_dir(FakeTransport(NODE, node_rules(files)))
    removal = staticpodops.plan_remove(NODE.name, "my-scheduler", pod_dir, stamp=STAMP)
    assert removal.paths == (f"{DIR}/my-scheduler.yaml", config)


def test_remove_refuses_unknown_and_kubeadm_pods() -> None:
    pod_dir = read_dir(FakeTransport(NODE, node_rules({"kube-scheduler.yaml": SCHEDULER})))
    with pytest.raises(StaticPodRefused, match=r"no manifest .* named ghost.*kube-scheduler"):
        staticpodops.plan_remove(NODE.name, "ghost", pod_dir, stamp=STAMP)
    with pytest.raises(StaticPodRefused, match="kubeadm's own"):
        staticpodops.plan_remove(NODE.name, "kube-scheduler", pod_dir, stamp=STAMP)


def test_remove_whose_mirror_stays_names_the_way_back() -> None:
    manifest = plan({}, GENERIC).manifest.new_text
    pod_dir = read_dir(FakeTransport(NODE, node_rules({"probe.yaml": manifest})))
    p = staticpodops.plan_remove(NODE.name, "probe", pod_dir, stamp=STAMP)
    node_t = FakeTransport(NODE, node_rules({}))
    api = FakeTransport(CP, [("get pods", Api(pod_list(mirror("probe-worker1"))))])
    with pytest.raises(StaticPodFailed, match=r"still exists .* To put it back: sudo mv -T"):
        staticpodops.remove(node_t, api, p, timeout=2, waiter=no_wait())


# --- the tasks, over fake sessions ---------------------------------------------------------


@pytest.fixture()
def fake_sessions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[[dict[str, str]], dict[str, FakeTransport]]]:
    """Point the tasks at FakeTransports; returns a function setting the node's files."""
    made: dict[str, FakeTransport] = {}
    files: dict[str, str] = {}

    def factory(node: Node, _: object) -> FakeTransport:
        if node.name == "cp1":
            rules: list[tuple[str, Any]] = [("get pods", Api(pod_list(mirror("probe-worker1"))))]
        else:
            rules = node_rules(files)
        made[node.name] = FakeTransport(node, rules)
        return made[node.name]

    monkeypatch.setattr(tasks, "Sessions", lambda options: Sessions(options, factory=factory))

    def setup(node_files: dict[str, str]) -> dict[str, FakeTransport]:
        files.update(node_files)
        return made

    yield setup


def context(tmp_path: Path) -> tuple[Context, str]:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "nodes": {
                    "cp1": {"address": "10.0.0.11", "roles": ["control-plane"]},
                    "worker1": {"address": "10.0.0.12", "roles": ["worker"]},
                }
            }
        )
    )
    config = Config(overrides={"nodeops": {"journal_dir": str(tmp_path / "journal")}})
    return Context(config=config), str(inventory)


def test_dry_run_task_prints_the_diff_and_sends_only_reads(
    fake_sessions: Callable[[dict[str, str]], dict[str, FakeTransport]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = fake_sessions({})
    c, inventory = context(tmp_path)
    tasks.static_pod_apply(
        c,
        node="worker1",
        inventory=inventory,
        template="generic",
        set=["name=probe", "image=busybox:1.36"],
        dry_run=True,
    )
    out = capsys.readouterr().out
    assert "+++ /etc/kubernetes/manifests/probe.yaml (new)" in out
    assert "nothing was written" in out
    assert not writes(made["worker1"]) and len(made["worker1"].sent) == 3
    assert "cp1" not in made or not made["cp1"].sent
    assert not (tmp_path / "journal").exists()  # a dry run changes nothing, so no journal


def test_apply_task_journals_every_command(
    fake_sessions: Callable[[dict[str, str]], dict[str, FakeTransport]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = fake_sessions({})
    c, inventory = context(tmp_path)
    # The cp1 fake answers with a Running mirror pod at once: no old pod to replace.
    tasks.static_pod_apply(
        c,
        node="worker1",
        inventory=inventory,
        template="generic",
        set=["name=probe", "image=busybox:1.36"],
        timeout="5",
    )
    assert "probe-worker1 Running, 1/1 ready" in capsys.readouterr().out
    (journal,) = (tmp_path / "journal").glob("*-static-pod-apply-*.jsonl")
    events = read_journal(journal)
    commands = [e["command"] for e in events if e["event"] == "command"]
    assert [c for c in commands if "mktemp" in c] == [
        install_command(plan({}, GENERIC).manifest).display(as_root=True)
    ]
    assert len(commands) == 1 + len(made["cp1"].sent)  # the write plus every kubectl read
    assert events[-1]["event"] == "run-finished" and events[-1]["status"] == "succeeded"


def test_task_refusals_exit_2_with_one_error(
    fake_sessions: Callable[[dict[str, str]], dict[str, FakeTransport]], tmp_path: Path
) -> None:
    made = fake_sessions({"keep.bak": "x"})
    c, inventory = context(tmp_path)
    with pytest.raises(Exit) as caught:
        tasks.static_pod_apply(
            c,
            node="worker1",
            inventory=inventory,
            template="generic",
            set=["name=probe", "image=busybox"],
        )
    assert caught.value.code == 2
    assert "keep.bak" in str(caught.value.message)
    assert not writes(made["worker1"])
    with pytest.raises(Exit, match="unknown template"):
        tasks.static_pod_apply(c, node="worker1", inventory=inventory, template="nope")
    with pytest.raises(Exit, match="--node"):
        tasks.static_pod_remove(c, inventory=inventory, name="x")


def test_bad_values_are_refused_before_connecting(
    fake_sessions: Callable[[dict[str, str]], dict[str, FakeTransport]], tmp_path: Path
) -> None:
    made = fake_sessions({})
    c, inventory = context(tmp_path)
    for sets, message in (
        (["name=probe"], "missing value"),
        (["name=probe", "image=a b"], "holds whitespace"),
        (["name=probe", "image=x", "port=99999"], "not a port number"),
    ):
        with pytest.raises(Exit, match=message):
            tasks.static_pod_apply(
                c, node="worker1", inventory=inventory, template="generic", set=sets
            )
    assert made == {}  # no connection was opened


def test_api_errors_while_waiting_are_retried_then_reported() -> None:
    p = plan({}, GENERIC)
    node_t = FakeTransport(NODE, node_rules({}))
    api = FakeTransport(CP, [("get pods", (1, "", "The connection to the server was refused"))])
    with pytest.raises(StaticPodFailed, match=r"last API error: .*connection to the server"):
        staticpodops.apply(node_t, api, p, timeout=3, waiter=no_wait())
    assert len(api.sent) > 1  # polled again after the first error
    assert node_t.sent[-1] == remove_command(
        p.manifest.path, stamp=f"{STAMP}-failed", keep_out_of=DIR
    )


def test_a_connection_lost_while_writing_says_what_may_be_in_place() -> None:
    from nodeops.errors import TransportError

    old = plan({}, {**GENERIC, "image": "busybox:1.35"}).manifest.new_text
    p = plan({"probe.yaml": old}, GENERIC)

    def cut(_: Cmd) -> tuple[int, str, str]:
        raise TransportError("worker1: the SSH connection failed")

    node_t = FakeTransport(NODE, [("mktemp", cut)])
    api = FakeTransport(CP, [("get pods", Api(pod_list(mirror("probe-worker1"))))])
    with pytest.raises(StaticPodFailed) as caught:
        staticpodops.apply(node_t, api, p, timeout=3, waiter=no_wait())
    message = str(caught.value)
    assert "may or may not hold the new text" in message
    assert (
        f"sudo mv -T -- /etc/kubernetes/tmp/nodeops-{STAMP}/probe.yaml {DIR}/probe.yaml" in message
    )


def test_the_lab_scheduler_reads_the_configuration_nodeops_writes(tmp_path: Path) -> None:
    from nodeops.lab.sim.scheduler import read_config
    from nodeops.staticpods import second_scheduler_values

    values = second_scheduler_values(SCHEDULER, "my-scheduler")
    path = tmp_path / "my-scheduler-config.yaml"
    path.write_text(values["scheduler_config"])
    assert read_config(str(path)) == ("/etc/kubernetes/scheduler.conf", frozenset({"my-scheduler"}))
    assert f"--config={values['scheduler_config_path']}" in values["command"]
    assert not any(a.startswith("--kubeconfig") for a in values["command"])
