"""The soak's driver: a fresh lab per run, the real CLI as a subprocess, faults, resume, checks.

Each run (see nodeops.lab.soak for its plan and invariants): bring up a lab of cp1 and the
plan's workers at the plan's start version; shape it (the web budget, an operator's cordon,
a sentinel ConfigMap); record the state; start `python -m nodeops upgrade-cluster --to
<minor>`; follow its journal until the plan's node starts the plan's step; then SIGKILL
nodeops, or switch the fault on and clear it after the plan's hold or when nodeops exits;
resume a failed run (the printed `resume with:` line; a killed run by its journal's run id);
record the state again and check the invariants; take the lab down. The runs use short
timeouts (drain, dpkg lock, Ready) so a fault that blocks the upgrade fails it quickly.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nodeops.errors import LabError, NodeopsError
from nodeops.lab import cluster, faults, lifecycle, network, spec
from nodeops.lab.soak import (
    CONTROL_PLANE_NODE,
    CONTROL_PLANE_PODS,
    KILL,
    LONG_HOLD,
    ClusterSnapshot,
    NodeSnapshot,
    RunResult,
    SoakPlan,
    check_all,
    debian_family,
    plan_run,
    run_line,
    run_seed,
    summary,
)

# Short bounds so that a fault which blocks the upgrade fails it within seconds (a drain under
# the sample budget takes ~11 s). On a loaded machine a step may time out without a fault:
# that is one more failure to resume from, and the invariants still hold or not.
TIMEOUTS = {"drain_timeout": "25", "dpkg_lock_timeout": "5", "ready_timeout": "25"}
DRAIN = ("--force", "--delete-emptydir-data")  # the lab runs a bare pod and an emptyDir pod
RUN_TIMEOUT = 600.0  # one nodeops process, at most
POLL = 0.05
KUBECTL = "HOME=/tmp/kubectl-home kubectl --kubeconfig /etc/kubernetes/admin.conf"
SENTINEL = "/api/v1/namespaces/default/configmaps/soak-sentinel"
WEB_PDB = "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web"
# etcd keys that an upgrade legitimately replaces (pods, events, leases).
VOLATILE_KEYS = ("pods", "events", "leases", "masterleases")
ETCDCTL = (
    "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379"
    " --cacert=/etc/kubernetes/pki/etcd/ca.crt"
    " --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt"
    " --key=/etc/kubernetes/pki/etcd/healthcheck-client.key"
)
DEFAULT_WORKDIR = Path("/var/tmp/nodeops-soak")  # noqa: S108 -- root-only; kept for failed runs
BACKUP_ROOT = Path("/var/lib/nodeops-soak")  # etcd snapshots refuse shared temp directories


def step_names() -> list[str]:
    """A node upgrade's step names, from the product itself."""
    from nodeops.upgrade.nodesteps import node_steps

    return [s.name for s in node_steps()]


def plan_for(seed: int) -> SoakPlan:
    """The plan of the run with this seed, against the lab's fault kinds as they are now."""
    return plan_run(seed, faults.KINDS, step_names(), spec.OPERATING_SYSTEMS)


# ---- the lab


@dataclass
class SoakLab:
    """One run's lab, its inventory, the CLI's HOME and where etcd snapshots go."""

    state: Any
    inventory: Path
    home: Path
    backups: Path
    workdir: Path

    @property
    def name(self) -> str:
        """The lab's name."""
        return str(self.state.name)

    @property
    def journal_dir(self) -> Path:
        """Where the CLI writes its journals."""
        return self.home / ".local/state/nodeops/journal"

    def sh(self, node: str, script: str, *, timeout: float = 60) -> str:
        """Run a script inside a node (its namespaces, not SSH: sshd may be a fault's victim)."""
        return cluster._run_in(self.state, node, ["/bin/sh", "-c", script], timeout=timeout)

    def client(self) -> Any:
        """An admin API client."""
        return cluster.admin_client(self.state, timeout=10.0)

    def env(self) -> dict[str, str]:
        """The CLI's environment: private HOME, backups, the soak's short timeouts."""
        env = {**os.environ, "HOME": str(self.home)}
        env["INVOKE_NODEOPS_ETCD_BACKUP_DIR"] = str(self.backups)
        env.update({f"INVOKE_NODEOPS_{k.upper()}": v for k, v in TIMEOUTS.items()})
        env.pop("NODEOPS_INVENTORY", None)
        return env


@contextmanager
def soak_lab(plan: SoakPlan, workdir: Path) -> Iterator[SoakLab]:
    """Bring a lab up for a plan and make it a cluster at the plan's start; ALWAYS take it down."""
    name = network.fresh_name("soak")
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    inventory = workdir / "lab.yaml"
    backups = BACKUP_ROOT / name
    lab_spec = spec.default_spec(name, workers=len(plan.worker_os), worker_os=plan.worker_os)
    try:
        state = lifecycle.up(lab_spec, inventory_path=inventory)
        cluster.build_cluster(state, version=plan.start, timeout=120)
        yield SoakLab(state, inventory, home, backups, workdir)
    finally:
        lifecycle.down(name)
        shutil.rmtree(backups, ignore_errors=True)


def _retry(what: str, call: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (NodeopsError, OSError) as error:
            if time.monotonic() > deadline:
                raise LabError(f"{what}: {error}") from None
        except Exception as error:  # the sim's ApiError is not a NodeopsError
            if time.monotonic() > deadline:
                raise LabError(f"{what}: {error}") from None
        time.sleep(0.5)


def shape(lab: SoakLab, plan: SoakPlan) -> None:
    """The plan's budget, operator's cordon and the sentinel ConfigMap."""
    client = lab.client()
    if plan.budget is None:
        _retry("deleting the web budget", lambda: client.request("DELETE", WEB_PDB))
    elif plan.budget != 2:
        pdb = _retry("reading the web budget", lambda: client.get(WEB_PDB))
        pdb["spec"] = {**pdb["spec"], "minAvailable": plan.budget}
        _retry("relaxing the web budget", lambda: client.request("PUT", WEB_PDB, pdb))
    if plan.precordon:
        lab.sh(CONTROL_PLANE_NODE, f"{KUBECTL} cordon {shlex.quote(plan.precordon)}")
    sentinel = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "soak-sentinel", "namespace": "default"},
        "data": {"seed": str(plan.seed), "token": f"{plan.seed:x}-{plan.fault}-{plan.node}"},
    }
    path = SENTINEL.rsplit("/", 1)[0]
    _retry("writing the sentinel", lambda: client.request("POST", path, sentinel))


# ---- snapshots


def _node_script(pm_apt: bool, control_plane: bool) -> str:
    d = "/etc/kubernetes/manifests"
    lines = [
        f'for f in $(ls -A {d} 2>/dev/null); do [ -f "{d}/$f" ] &&'
        f' printf "manifest\\t%s\\t%s\\n" "$f" "$(sha256sum < "{d}/$f" | cut -d" " -f1)"; done',
    ]
    if pm_apt:
        lines += [
            "dpkg-query -W -f 'package\\t${Package}\\t${Version}\\n' kubeadm kubelet kubectl"
            " 2>/dev/null",
            "apt-mark showhold 2>/dev/null | sed 's/^/held\\t/'",
        ]
    else:
        lines += [
            "rpm -q --qf 'package\\t%{NAME}\\t%{VERSION}\\n' kubeadm kubelet kubectl 2>/dev/null",
            "sed -n 's/^exclude=//p' /etc/yum.repos.d/kubernetes.repo 2>/dev/null"
            " | tr ' ' '\\n' | grep . | sed 's/^/held\\t/'",
        ]
    if control_plane:
        for pod in CONTROL_PLANE_PODS:
            lines.append(
                f"[ -f {d}/{pod}.yaml ] && printf 'image\\t{pod}\\t%s\\n'"
                f" \"$(sed -n 's/.*image: .*:\\(v[0-9][0-9.]*\\).*/\\1/p' {d}/{pod}.yaml"
                ' | head -1)"'
            )
        volatile = "\\|".join(VOLATILE_KEYS)
        lines += [
            f"{ETCDCTL} get /registry/ --prefix --keys-only | grep ."
            f" | grep -v '^/registry/\\({volatile}\\)/' | sed 's/^/key\\t/'",
            "[ -e /etc/kubernetes/tmp/nodeops.lock ] && echo lock",
        ]
    return "\n".join([*lines, "true"])


def parse_node_lines(text: str) -> dict[str, Any]:
    """The tab-separated lines of the node script, grouped."""
    found: dict[str, Any] = {
        "manifest": {}, "package": {}, "held": set(), "image": {}, "key": set(), "lock": False,
    }  # fmt: skip
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "lock":
            found["lock"] = True
        elif kind in ("held", "key"):
            found[kind].add(rest.strip())
        elif kind in ("manifest", "package", "image"):
            name, _, value = rest.partition("\t")
            if kind == "package":
                value = value.strip().split("-", 1)[0]  # 1.30.2-1.1 -> 1.30.2
            found[kind][name] = value.strip()
    return found


def _api_nodes(lab: SoakLab) -> dict[str, dict[str, Any]]:
    items = _retry("listing nodes", lambda: lab.client().get("/api/v1/nodes"))["items"]
    return {n["metadata"]["name"]: n for n in items}


def _ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _kubelet_version(node: dict[str, Any]) -> str:
    return str(node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")).lstrip("v")


def snapshot(lab: SoakLab, plan: SoakPlan) -> ClusterSnapshot:
    """What the invariants look at, read from the nodes' files, etcd and the API."""
    api = _api_nodes(lab)
    nodes: dict[str, NodeSnapshot] = {}
    keys: frozenset[str] = frozenset()
    lock = False
    for name in plan.nodes:
        cp = name == CONTROL_PLANE_NODE
        found = parse_node_lines(lab.sh(name, _node_script(debian_family(plan.os_of(name)), cp)))
        core = {"kubeadm", "kubelet", "kubectl"}
        obj = api.get(name, {})
        nodes[name] = NodeSnapshot(
            name=name,
            unschedulable=bool(obj.get("spec", {}).get("unschedulable")),
            ready=_ready(obj),
            kubelet=_kubelet_version(obj),
            packages={p: found["package"].get(p, "") for p in sorted(core)},
            held=frozenset(found["held"] & core),
            manifests=dict(found["manifest"]),
            images=dict(found["image"]),
        )
        if cp:
            keys, lock = frozenset(found["key"]), bool(found["lock"])
    try:
        sentinel = json.dumps(lab.client().get(SENTINEL).get("data"), sort_keys=True)
    except Exception as error:  # the sim's ApiError: a lost sentinel is a finding, not a crash
        sentinel = f"unreadable: {error}"
    return ClusterSnapshot(nodes=nodes, etcd_keys=keys, sentinel=sentinel, lock=lock)


def wait_settled(lab: SoakLab, plan: SoakPlan, timeout: float = 90.0) -> None:
    """Wait (bounded) until every node is Ready: a cleared kubelet fault heals at a heartbeat."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        api = _api_nodes(lab)
        if all(_ready(api.get(n, {})) for n in plan.nodes):
            return
        time.sleep(1.0)


# ---- running nodeops


@dataclass
class Proc:
    """A running nodeops process and where its output goes."""

    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    def text(self) -> tuple[str, str]:
        """Its stdout and stderr so far."""
        return (
            self.out.read_text(errors="replace"),
            self.err.read_text(errors="replace"),
        )


def start_nodeops(lab: SoakLab, args: list[str], label: str) -> Proc:
    """`python -m nodeops ARGS -i INVENTORY`, output to files in the run's directory."""
    out, err = lab.workdir / f"{label}.out", lab.workdir / f"{label}.err"
    with out.open("wb") as o, err.open("wb") as e:
        popen = subprocess.Popen(
            [sys.executable, "-m", "nodeops", *args, "-i", str(lab.inventory)],
            stdin=subprocess.DEVNULL,
            stdout=o,
            stderr=e,
            env=lab.env(),
            cwd=lab.workdir,
        )
    return Proc(popen, out, err)


def run_nodeops(lab: SoakLab, args: list[str], label: str) -> tuple[int, str, str]:
    """Run nodeops to its end (bounded); exit code, stdout, stderr."""
    proc = start_nodeops(lab, args, label)
    code = _wait_exit(proc.popen, RUN_TIMEOUT)
    out, err = proc.text()
    return code, out, err


def _wait_exit(popen: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
        return -999  # hung: killed by the soak


class JournalFollower:
    """Reads a run's journal as it grows (complete lines only)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path: Path | None = None
        self.offset = 0
        self.events: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        """New events since the last poll."""
        if self.path is None:
            found = sorted(self.directory.glob("*.jsonl")) if self.directory.is_dir() else []
            if not found:
                return []
            self.path = found[0]
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        new = []
        for line in data[:end].splitlines():
            with suppress(ValueError):
                new.append(json.loads(line))
        self.events += new
        return new

    @property
    def run_id(self) -> str | None:
        """The run's id (its journal's name), once the journal exists."""
        return self.path.stem if self.path is not None else None


def _reached(event: dict[str, Any], plan: SoakPlan) -> bool:
    return (
        event.get("event") in ("step-started", "step-finished")
        and event.get("node") == plan.node
        and event.get("step") == plan.step
    )


def wait_trigger(proc: Proc, journal: JournalFollower, plan: SoakPlan) -> bool:
    """Follow the journal until the plan's node starts the plan's step; False if nodeops
    ended (or ran too long) first."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        if any(_reached(e, plan) for e in journal.poll()):
            return True
        if proc.popen.poll() is not None:
            return any(_reached(e, plan) for e in journal.poll())
        time.sleep(POLL)
    return False


REPAIR_DPKG = "--repair-dpkg"
RESUME = re.compile(r"resume with: nodeops (.*--resume \S+)")
AT_TARGET = re.compile(r"every node is at (\d+\.\d+\.\d+)")


def resume_args(stderr: str, run_id: str | None, plan: SoakPlan) -> list[str] | None:
    """The resume command nodeops printed (without `nodeops` and `-i INVENTORY`), or one made
    from the journal's run id when nodeops could print none (it was killed)."""
    found = RESUME.findall(stderr)
    if found:
        words = shlex.split(found[-1])
        if "-i" in words:
            i = words.index("-i")
            del words[i : i + 2]
        return words
    if run_id is None:
        return None
    return ["upgrade-cluster", "--to", plan.to, *DRAIN, "--resume", run_id]


def drive(lab: SoakLab, plan: SoakPlan) -> tuple[str, str | None, str]:
    """Upgrade with the plan's fault, clear it, resume; (outcome, printed target, error)."""
    journal = JournalFollower(lab.journal_dir)
    proc = start_nodeops(lab, ["upgrade-cluster", "--to", plan.to, *DRAIN], "run")
    error = ""
    try:
        triggered = wait_trigger(proc, journal, plan)
        if triggered and plan.delay:
            time.sleep(plan.delay)
        if not triggered:
            code = _wait_exit(proc.popen, RUN_TIMEOUT)
            outcome = "not-triggered" if code == 0 else f"failed({code})-before-trigger"
        elif plan.fault == KILL:
            proc.popen.send_signal(signal.SIGKILL)
            code = proc.popen.wait()
            outcome = "killed" if code == -signal.SIGKILL else f"exited({code})-before-kill"
        else:
            try:
                faults.inject(lab.name, plan.node, plan.fault)
            except (LabError, OSError, subprocess.SubprocessError) as e:
                error = f"inject {plan.fault} failed: {e}"
            deadline = time.monotonic() + (LONG_HOLD if plan.hold is None else plan.hold)
            while proc.popen.poll() is None and time.monotonic() < deadline:
                time.sleep(POLL)
            faults.clear(lab.name, kind="all")
            code = _wait_exit(proc.popen, RUN_TIMEOUT)
            outcome = "tolerated" if code == 0 else f"failed({code})"
    finally:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()
        with suppress(LabError, OSError, subprocess.SubprocessError):
            faults.clear(lab.name, kind="all")
    out, err = proc.text()
    journal.poll()
    printed = AT_TARGET.findall(out)
    if code == 0:
        return outcome, printed[-1] if printed else None, error
    if code == -999:
        return outcome + "+hung", None, error or "nodeops did not end within its bound"
    if outcome.startswith("failed") and outcome != "failed(1)":
        error = error or f"nodeops exited {code}: {err.strip()[-300:]}"
    # The operator's step before a resume: wait for the cluster to heal (a kubelet that
    # could not post its status while the apiserver was away is NotReady for a while).
    wait_settled(lab, plan)
    args = resume_args(err, journal.run_id, plan)
    if args is None:
        # Killed before its journal existed: nothing to resume, so start again.
        args = ["upgrade-cluster", "--to", plan.to, *DRAIN]
        outcome += "+rerun"
    else:
        outcome += "+resumed"
    if REPAIR_DPKG in err and REPAIR_DPKG not in args:
        # The operator follows the message's remedy for an interrupted dpkg.
        args.append(REPAIR_DPKG)
        outcome += "(repair-dpkg)"
    code, out, err = run_nodeops(lab, args, "resume")
    printed = AT_TARGET.findall(out)
    if code != 0:
        tail = " | ".join(line for line in err.strip().splitlines()[-6:])
        error = error or f"the resume exited {code}: {tail}"
        outcome += f"-failed({code})"
    return outcome, printed[-1] if printed else None, error


def run_one(plan: SoakPlan, workdir: Path) -> RunResult:
    """One soak run, start to end; the lab is always taken down."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "plan.txt").write_text(plan.describe() + "\n")
    try:
        with soak_lab(plan, workdir) as lab:
            shape(lab, plan)
            before = snapshot(lab, plan)
            outcome, printed, error = drive(lab, plan)
            wait_settled(lab, plan)
            after = snapshot(lab, plan)
            checks = tuple(check_all(before, after, plan.to, printed))
            _keep_journal(lab)
    except (LabError, NodeopsError, OSError, subprocess.SubprocessError) as e:
        return RunResult(plan, "lab-error", (), time.monotonic() - started, f"lab: {e}")
    return RunResult(plan, outcome, checks, time.monotonic() - started, error)


def _keep_journal(lab: SoakLab) -> None:
    for path in lab.journal_dir.glob("*.jsonl"):
        shutil.copy(path, lab.workdir / path.name)


def _run_seed(seed: int, workdir: Path) -> RunResult:
    plan = plan_for(seed)
    where = workdir / f"seed-{seed}"
    shutil.rmtree(where, ignore_errors=True)
    try:
        return run_one(plan, where)
    except SystemExit:
        # SIGTERM in a worker process: its lab is down by now; take no further run.
        os._exit(143)


def soak(
    runs: int,
    seed: int,
    *,
    workdir: Path = DEFAULT_WORKDIR,
    out: IO[str] = sys.stdout,
    keep: bool = False,
    jobs: int = 1,
) -> list[RunResult]:
    """`runs` runs with seeds seed, seed+1, ... (`jobs` at once, each in its own process and
    lab); a line per run as it ends, then the summary. Failed runs keep their directory."""
    seeds = [run_seed(seed, i) for i in range(runs)]
    kinds = ", ".join((*faults.KINDS, KILL))
    print(f"soak: {runs} run(s), seeds {seed}..{seed + runs - 1}, {jobs} at once; faults: {kinds}",
          file=out, flush=True)  # fmt: skip
    results: list[RunResult] = []

    def done(result: RunResult) -> None:
        results.append(result)
        print(f"[{len(results)}/{runs}] {run_line(result)}", file=out, flush=True)
        print(f"    plan: {result.plan.describe()}", file=out, flush=True)
        if result.ok and not keep:
            shutil.rmtree(workdir / f"seed-{result.plan.seed}", ignore_errors=True)

    if jobs <= 1:
        for s in seeds:
            done(_run_seed(s, workdir))
    else:
        pool = ProcessPoolExecutor(max_workers=jobs)
        try:
            for future in as_completed([pool.submit(_run_seed, s, workdir) for s in seeds]):
                done(future.result())
        finally:
            # On SIGTERM or Ctrl-C: start no other run; the running ones take their lab down.
            pool.shutdown(wait=True, cancel_futures=True)
    results.sort(key=lambda r: r.plan.seed)
    print(summary(results), file=out, flush=True)
    return results


def main(*, runs: int, seed: int | None, jobs: int = 1, keep: bool = False) -> bool:
    """The `invoke soak` task: True when every run kept every invariant."""
    if os.geteuid() != 0:
        raise LabError("the soak builds labs: run it as root")
    if seed is None:
        seed = secrets.randbelow(1_000_000)
    # SIGTERM ends the soak like Ctrl-C does, so that every lab is taken down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    DEFAULT_WORKDIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with private_lab_root(DEFAULT_WORKDIR):
        results = soak(runs, seed, jobs=jobs, keep=keep)
    return all(r.ok for r in results)


@contextmanager
def private_lab_root(workdir: Path) -> Iterator[None]:
    """Keep the soak's labs under their own state root unless the caller chose one."""
    if os.environ.get("NODEOPS_LAB_ROOT"):
        yield
        return
    root = workdir / "labroot"
    root.mkdir(parents=True, exist_ok=True)
    os.environ["NODEOPS_LAB_ROOT"] = str(root)
    try:
        yield
    finally:
        del os.environ["NODEOPS_LAB_ROOT"]
