"""Tests for nodeops.staticpods: safe rendering, Pod validation, second scheduler, install."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodeops import staticpods
from nodeops.kubeletconfig import DirEntry
from nodeops.staticpods import (
    CREATE,
    REPLACE,
    UNCHANGED,
    InstallPlan,
    InvalidPod,
    TemplateError,
    generic_values,
    install_command,
    install_input,
    manifest_path,
    plan_install,
    remove_command,
    render,
    second_scheduler_values,
    stray_files,
    validate_pod,
    web_values,
    yaml_value,
)

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "manifests"

SCHEDULER_1_29 = """\
apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-scheduler
    tier: control-plane
  name: kube-scheduler
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-scheduler
    - --authentication-kubeconfig=/etc/kubernetes/scheduler.conf
    - --authorization-kubeconfig=/etc/kubernetes/scheduler.conf
    - --bind-address=127.0.0.1
    - --kubeconfig=/etc/kubernetes/scheduler.conf
    - --leader-elect=true
    image: registry.k8s.io/kube-scheduler:v1.29.0
    livenessProbe:
      httpGet: {host: 127.0.0.1, path: /healthz, port: 10259, scheme: HTTPS}
    name: kube-scheduler
    volumeMounts:
    - {mountPath: /etc/kubernetes/scheduler.conf, name: kubeconfig, readOnly: true}
  hostNetwork: true
  priorityClassName: system-node-critical
  volumes:
  - hostPath: {path: /etc/kubernetes/scheduler.conf, type: FileOrCreate}
    name: kubeconfig
"""


def manifest(name: str) -> str:
    """A shared manifest fixture, read in place; skips the test when ../shared is absent."""
    path = MANIFESTS / name
    if not path.is_file():
        pytest.skip(f"shared fixture not found: {path}")
    return path.read_text(encoding="utf-8")


def container(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["containers"][0]  # type: ignore[no-any-return]


# --- templates -----------------------------------------------------------------------------


def test_templates_live_in_the_package_and_templates_dir_points_there() -> None:
    for name in staticpods.TEMPLATES:
        assert (staticpods.TEMPLATE_DIR / f"{name}.yaml.j2").is_file()
    assert (ROOT / "templates" / "staticpods").resolve() == staticpods.TEMPLATE_DIR


def test_web_template() -> None:
    pod = validate_pod(render("web", web_values("static-web", "nginx:1.25", port=8080)))
    assert pod["metadata"] == {
        "name": "static-web",
        "namespace": "default",
        "labels": {"role": "myrole"},
    }
    assert container(pod)["image"] == "nginx:1.25"
    assert container(pod)["ports"][0]["containerPort"] == 8080


def test_generic_template() -> None:
    values = generic_values(
        "haproxy",
        "haproxy:2.8.0",
        command=["haproxy"],
        args=["-f", "/usr/local/etc/haproxy/haproxy.cfg"],
        env={"A": "1", "B": "two words"},
        ports=[8443, {"container_port": 9000, "name": "stats", "protocol": "TCP"}],
        resources={"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}},
        host_paths=[
            {
                "name": "haproxyconf",
                "host_path": "/etc/haproxy/haproxy.cfg",
                "mount_path": "/usr/local/etc/haproxy/haproxy.cfg",
                "type": "FileOrCreate",
            }
        ],
        host_network=True,
    )
    pod = validate_pod(render("generic", values))
    c = container(pod)
    assert pod["spec"]["hostNetwork"] is True
    assert c["command"] == ["haproxy"]
    assert c["args"] == ["-f", "/usr/local/etc/haproxy/haproxy.cfg"]
    assert c["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "two words"}]
    assert c["ports"][1] == {"containerPort": 9000, "protocol": "TCP", "name": "stats"}
    assert c["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert c["volumeMounts"] == [
        {"name": "haproxyconf", "mountPath": "/usr/local/etc/haproxy/haproxy.cfg", "readOnly": True}
    ]
    assert pod["spec"]["volumes"][0]["hostPath"] == {
        "path": "/etc/haproxy/haproxy.cfg",
        "type": "FileOrCreate",
    }


def test_minimal_generic_pod_has_no_host_access() -> None:
    pod = validate_pod(render("generic", generic_values("one", "busybox:1.36")))
    assert pod["spec"]["hostNetwork"] is False
    assert set(container(pod)) == {"name", "image", "imagePullPolicy"}
    assert "volumes" not in pod["spec"]


# --- injection and strictness --------------------------------------------------------------

INJECTION = "img\n    hostNetwork: true"


def test_injected_newline_in_a_value_stays_one_value() -> None:
    values = generic_values("one", "busybox", env={"X": INJECTION}, args=[INJECTION])
    pod = validate_pod(render("generic", values))
    assert pod["spec"]["hostNetwork"] is False
    assert container(pod)["env"] == [{"name": "X", "value": INJECTION}]
    assert container(pod)["args"] == [INJECTION]
    assert "hostNetwork" not in container(pod)


def test_injected_image_is_rejected_and_nothing_is_rendered() -> None:
    with pytest.raises(InvalidPod, match="image"):
        render("web", web_values("web", INJECTION))


def test_template_syntax_in_a_value_is_not_evaluated() -> None:
    pod = validate_pod(
        render("generic", generic_values("one", "busybox", args=["{{7*7}}", "{% x %}"]))
    )
    assert container(pod)["args"] == ["{{7*7}}", "{% x %}"]


def test_yaml_metacharacters_in_values_round_trip() -> None:
    hostile = [
        "a: b",
        "- x",
        "*alias",
        "&anchor",
        "!!python/object",
        "'q'",
        '"d"',
        "#c",
        "{}",
        "\u2028x\x85y\ufeff",
        "\t\x00",
    ]
    pod = validate_pod(render("generic", generic_values("one", "busybox", args=hostile)))
    assert container(pod)["args"] == hostile


def test_missing_variable_is_an_error() -> None:
    values = web_values()
    del values["port"]
    with pytest.raises(TemplateError, match="port"):
        render("web", values)


def test_unknown_template_and_unrenderable_values() -> None:
    with pytest.raises(TemplateError, match="unknown static pod template"):
        render("../../etc/passwd", {})
    with pytest.raises(TemplateError):
        yaml_value(float("nan"))
    with pytest.raises(TemplateError):
        yaml_value(object())
    with pytest.raises(TemplateError):
        yaml_value("\ud800")
    assert yaml.safe_load(yaml_value("\u2028")) == "\u2028"


def test_bad_name_is_rejected() -> None:
    with pytest.raises(InvalidPod, match=r"metadata\.name"):
        render("web", web_values("Bad_Name"))


# --- validation ----------------------------------------------------------------------------

VALID = (
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n"
    "  - name: c\n    image: i\n"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [\n", "not valid YAML"),
        (VALID.replace("kind: Pod", "kind: Deployment"), "kind"),
        (VALID.replace("apiVersion: v1", "apiVersion: apps/v1"), "apiVersion"),
        (VALID + "---\n" + VALID, "2 YAML documents"),
        (VALID + "---\n", "2 YAML documents"),
        ("", "0 YAML documents"),
        ("- a\n", "not a mapping"),
        (VALID.replace("name: p", "name: P_p"), r"metadata\.name"),
        (VALID.replace("name: p", "name: " + "a" * 254), r"metadata\.name"),
        (VALID.replace("  name: p\n", "  name: p\n  namespace: Kube.System\n"), "namespace"),
        (VALID.replace("    image: i\n", ""), "image: required"),
        (VALID.replace("  - name: c", "  - name: c.d"), "DNS-1123 label"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n",
            "at least one",
        ),
        (VALID + "  hostNetwork: 'true'\n", "hostNetwork"),
        (
            VALID.replace(
                "spec:\n  containers:\n  - name: c\n    image: i\n",
                "spec:\n  containers:\n  - name: c\n    image: i\n  - name: c\n    image: j\n",
            ),
            "duplicate",
        ),
    ],
)
def test_invalid_pods_are_rejected_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(InvalidPod, match=message):
        validate_pod(text)


def test_valid_pod_and_fixtures_validate() -> None:
    assert validate_pod(VALID)["metadata"]["name"] == "p"
    pod = validate_pod(manifest("extra-static-pod.haproxy.yaml"))
    assert pod["spec"]["hostNetwork"] is True
    for name in sorted(p.name for p in MANIFESTS.glob("v1.*.yaml")):
        validate_pod(manifest(name))
    with pytest.raises(InvalidPod, match="YAML documents"):
        validate_pod(manifest("my-scheduler.k8s-docs-multi-doc.yaml"))


# --- second scheduler ----------------------------------------------------------------------


def _scheduler(text: str, name: str = "my-scheduler") -> tuple[dict[str, Any], dict[str, Any]]:
    values = second_scheduler_values(text, name)
    return values, validate_pod(render("second-scheduler", values))


@pytest.mark.parametrize(
    ("version", "image", "expect_name_flag", "ports"),
    [
        ("v1.8.1", "gcr.io/google_containers/kube-scheduler-amd64:v1.8.1", True, ["--port=10261"]),
        (
            "v1.16.2",
            "registry.aliyuncs.com/google_containers/kube-scheduler:v1.16.2",
            True,
            ["--port=10261", "--secure-port=10269"],
        ),
        (
            "v1.22.17",
            "registry.k8s.io/kube-scheduler:v1.22.17",
            False,
            ["--port=0", "--secure-port=10269"],
        ),
        ("v1.29.0", "registry.k8s.io/kube-scheduler:v1.29.0", False, ["--secure-port=10269"]),
    ],
)
def test_second_scheduler_from_real_manifests(
    version: str, image: str, expect_name_flag: bool, ports: list[str]
) -> None:
    original = validate_pod(manifest(f"{version}-kube-scheduler.yaml"))
    values, pod = _scheduler(manifest(f"{version}-kube-scheduler.yaml"))
    c = container(pod)
    assert pod["metadata"]["name"] == "my-scheduler"
    assert pod["metadata"]["labels"]["component"] == "my-scheduler"
    assert c["name"] == "my-scheduler"
    assert c["image"] == image == container(original)["image"]
    command = c["command"]
    assert command[0] == "kube-scheduler"
    assert "--leader-elect=false" in command
    assert not any(a.startswith("--leader-elect=true") for a in command)
    assert [a for a in command if a.startswith(("--port", "--secure-port"))] == ports
    assert ("--scheduler-name=my-scheduler" in command) is expect_name_flag
    assert pod["spec"]["hostNetwork"] is True
    probe_port = c["livenessProbe"]["httpGet"]["port"]
    assert probe_port in {10261, 10269}
    if expect_name_flag:
        assert values["scheduler_config"] is None
    else:
        config = yaml.safe_load(values["scheduler_config"])
        assert config["profiles"] == [{"schedulerName": "my-scheduler"}]
        assert config["leaderElection"] == {"leaderElect": False}
        assert config["clientConnection"]["kubeconfig"] == "/etc/kubernetes/scheduler.conf"
        path = values["scheduler_config_path"]
        assert f"--config={path}" in command
        assert not any(a.startswith("--kubeconfig") for a in command)
        assert {"mountPath": path, "name": "scheduler-config", "readOnly": True} in c[
            "volumeMounts"
        ]
    # Everything else of the original stays: volumes, resources, priority class.
    assert original["spec"]["volumes"][0] in pod["spec"]["volumes"]
    assert c["resources"] == container(original)["resources"]
    assert pod["spec"].get("priorityClassName") == original["spec"].get("priorityClassName")


def test_second_scheduler_config_api_versions() -> None:
    for minor, api in [(22, "v1beta2"), (23, "v1beta3"), (24, "v1beta3"), (25, "v1"), (30, "v1")]:
        values = second_scheduler_values(SCHEDULER_1_29, "second", version=(1, minor))
        assert yaml.safe_load(values["scheduler_config"])["apiVersion"].endswith("/" + api)


def test_second_scheduler_of_an_old_custom_scheduler() -> None:
    _, pod = _scheduler(manifest("my-custom-scheduler.static-pod.v1.11.yaml"), "third")
    command = container(pod)["command"]
    assert "--scheduler-name=third" in command
    assert not any("my-custom-scheduler" in a for a in command)  # its name and lock dropped
    assert "--leader-elect=false" in command


def test_second_scheduler_inline_sample() -> None:
    values, pod = _scheduler(SCHEDULER_1_29, "second")
    assert container(pod)["livenessProbe"]["httpGet"]["port"] == 10269
    assert values["dropped"] == []


def test_second_scheduler_refusals() -> None:
    with pytest.raises(TemplateError, match="DNS-1123"):
        second_scheduler_values(SCHEDULER_1_29, "My_Scheduler")
    with pytest.raises(TemplateError, match="version"):
        second_scheduler_values(SCHEDULER_1_29.replace(":v1.29.0", "@sha256:abc"), "s")
    with pytest.raises(TemplateError, match="--config"):
        second_scheduler_values(
            SCHEDULER_1_29.replace("- --leader-elect=true", "- --config=/etc/s.yaml"), "s"
        )
    with pytest.raises(TemplateError, match="manifest"):
        second_scheduler_values("kind: Deployment\n", "s")


def test_second_scheduler_values_cannot_inject() -> None:
    values = second_scheduler_values(SCHEDULER_1_29, "second")
    values["command"] = [*values["command"], INJECTION]
    pod = validate_pod(render("second-scheduler", values))
    assert container(pod)["command"][-1] == INJECTION


CASE_27_VALUES = ("img\n    hostNetwork: true", "{{7*7}}", "{% raw %}x", "a: b\n- c")


@pytest.mark.parametrize("value", CASE_27_VALUES)
def test_case_27_values_are_emitted_as_json_and_add_no_keys(value: str) -> None:
    """Case 27: a hostile value lands as one JSON scalar (tojson) wherever it goes: the
    pod has exactly the keys of a harmless render, and template syntax stays text."""
    plain = validate_pod(
        render("generic", generic_values("one", "busybox", env={"X": "x"}, args=["a"]))
    )
    values = generic_values("one", "busybox", env={"X": value}, args=[value], command=[value])
    text = render("generic", values)
    pod = validate_pod(text)
    assert text.count(json.dumps(value, ensure_ascii=False)) == 3  # env, args, command
    assert container(pod)["env"] == [{"name": "X", "value": value}]
    assert container(pod)["args"] == [value] and container(pod)["command"] == [value]
    assert set(pod) == set(plain) and set(pod["spec"]) == set(plain["spec"])
    assert set(container(pod)) == set(container(plain)) | {"command"}
    assert pod["spec"]["hostNetwork"] is False and "49" not in text
    # The second scheduler built from the real kubeadm v1.29.0 manifest: same story.
    values = second_scheduler_values(manifest("v1.29.0-kube-scheduler.yaml"), "second")
    values["command"] = [*values["command"], value]
    scheduler = validate_pod(render("second-scheduler", values))
    assert container(scheduler)["command"][-1] == value


def test_case_27_an_image_that_would_inject_is_refused() -> None:
    """Case 27: the image value with a newline is refused before anything is rendered."""
    with pytest.raises(InvalidPod, match="image"):
        render("web", web_values("web", CASE_27_VALUES[0]))


def test_case_27_a_missing_variable_raises(tmp_path: Path) -> None:
    """Case 27: StrictUndefined: a variable the values do not give is an error, never empty;
    in the built-in templates and in an operator's own template file."""
    values = generic_values("one", "busybox")
    del values["image"]
    with pytest.raises(TemplateError, match="image"):
        render("generic", values)
    local = tmp_path / "own.yaml.j2"
    local.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: {{ name }}}\n"
        "spec:\n  containers:\n  - {name: c, image: {{ image }}}\n"
    )
    with pytest.raises(TemplateError, match="image"):
        staticpods.render_file(local, {"name": "own"})
    pod = validate_pod(staticpods.render_file(local, {"name": "own", "image": "{{7*7}}"}))
    assert container(pod)["image"] == "{{7*7}}"


# --- the static pod directory --------------------------------------------------------------


def test_stray_files() -> None:
    listing: list[DirEntry | str] = [
        "kube-apiserver.yaml",
        "etcd.yaml",
        "my.json",
        "kube-apiserver.yaml.bak",
        "etcd.yaml~",
        "#etcd.yaml#",
        ".etcd.yaml.swp",
        ".hidden",
        "kube-scheduler.yaml.orig",
        "kube-scheduler.yaml.dpkg-old",
        "notes.txt",
        "x.yml.20240101",
        DirEntry("backup", "d", "drwx------"),
        DirEntry("link.yaml", "l", "lrwxrwxrwx", target="/x"),
    ]
    assert stray_files(listing) == sorted(
        [
            "kube-apiserver.yaml.bak",
            "etcd.yaml~",
            "#etcd.yaml#",
            "kube-scheduler.yaml.orig",
            "kube-scheduler.yaml.dpkg-old",
            "notes.txt",
            "x.yml.20240101",
        ]
    )


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", ".hidden", "..", "", "Upper", "a..b"])
def test_manifest_path_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(ValueError):
        manifest_path("/etc/kubernetes/manifests", name)


def test_manifest_path() -> None:
    assert manifest_path("/etc/kubernetes/manifests/", "my-scheduler") == (
        "/etc/kubernetes/manifests/my-scheduler.yaml"
    )
    with pytest.raises(ValueError):
        manifest_path("relative", "x")


# --- plan, install, remove -----------------------------------------------------------------

PATH = "/etc/kubernetes/manifests/web.yaml"


def test_plan_install() -> None:
    assert plan_install(VALID, VALID, path=PATH, stamp="1").action == UNCHANGED
    create = plan_install(None, VALID, path=PATH, stamp="1")
    assert (create.action, create.backup_path) == (CREATE, None)
    replace = plan_install(
        VALID, VALID.replace("image: i", "image: j"), path=PATH, stamp="20260101T000000Z"
    )
    assert replace.action == REPLACE
    assert replace.backup_path == "/etc/kubernetes/tmp/nodeops-20260101T000000Z/web.yaml"
    assert "-    image: i\n+    image: j\n" in replace.diff
    assert replace.old_sha256 == hashlib.sha256(VALID.encode()).hexdigest()
    with pytest.raises(ValueError, match="inside"):
        plan_install(VALID, "x", path=PATH, stamp="1", backup_root="/etc/kubernetes/manifests")
    with pytest.raises(ValueError):
        plan_install(None, "x", path=PATH, stamp="1; rm -rf /")
    with pytest.raises(ValueError, match="unchanged"):
        install_command(plan_install(VALID, VALID, path=PATH, stamp="1"))


def test_second_scheduler_config_install_outside_the_manifest_dir(node: dict[str, Path]) -> None:
    values = second_scheduler_values(SCHEDULER_1_29, "second", config_dir=str(node["tmp"].parent))
    path = values["scheduler_config_path"]
    plan = plan_install(
        "old\n",
        values["scheduler_config"],
        path=path,
        stamp="s",
        backup_root=str(node["tmp"]),
        keep_out_of=str(node["manifests"]),
    )
    assert plan.action == REPLACE
    with pytest.raises(ValueError, match="inside"):
        plan_install("old\n", "new\n", path=path, stamp="s", backup_root=str(node["tmp"]))
    Path(path).write_text("old\n")
    result = _install(plan, str(node["tmp"]))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(Path(path).read_text())["profiles"] == [{"schedulerName": "second"}]


def _sh(command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", command], input=stdin, capture_output=True, text=True, check=False
    )


def _install(
    plan: InstallPlan, tmp: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """install_command through a real sh, fed the plan's text (or `stdin`) on its stdin."""
    command = install_command(plan, tmp_dir=tmp, owner=_owner()).render(as_root=True)
    return _sh(command, install_input(plan) if stdin is None else stdin)


@pytest.fixture
def node(tmp_path: Path) -> dict[str, Path]:
    """A pretend /etc/kubernetes under tmp_path: manifests/ and tmp/."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    return {"manifests": manifests, "tmp": tmp_path / "tmp"}


def _owner() -> str:
    return f"{os.getuid()}:{os.getgid()}"


HOSTILE_TEXT = VALID + "# $(touch /tmp/pwned) `id` 'q' \"d\" \\ %s %n\n"


def test_install_create_then_replace_through_sh(node: dict[str, Path]) -> None:
    target = node["manifests"] / "web.yaml"
    tmp = str(node["tmp"])
    create = plan_install(None, HOSTILE_TEXT, path=str(target), stamp="s1", backup_root=tmp)
    result = _install(create, tmp)
    assert result.returncode == 0, result.stderr
    assert target.read_text() == HOSTILE_TEXT
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(node["tmp"]) == []  # the temp file was renamed away
    assert os.listdir(node["manifests"]) == ["web.yaml"]

    new = HOSTILE_TEXT.replace("image: i", "image: j")
    replace = plan_install(target.read_text(), new, path=str(target), stamp="s2", backup_root=tmp)
    result = _install(replace, tmp)
    assert result.returncode == 0, result.stderr
    assert target.read_text() == new
    assert replace.backup_path is not None
    assert Path(replace.backup_path).read_text() == HOSTILE_TEXT
    assert os.listdir(node["manifests"]) == ["web.yaml"]  # no backup in the manifest dir
    assert sorted(os.listdir(node["tmp"])) == ["nodeops-s2"]


def test_install_refuses_a_file_changed_since_it_was_read(node: dict[str, Path]) -> None:
    target = node["manifests"] / "web.yaml"
    target.write_text("old\n")
    tmp = str(node["tmp"])
    plan = plan_install("older\n", VALID, path=str(target), stamp="s", backup_root=tmp)
    result = _install(plan, tmp)
    assert result.returncode == 3
    assert "changed since it was read" in result.stderr
    assert target.read_text() == "old\n"
    create = plan_install(None, VALID, path=str(target), stamp="s", backup_root=tmp)
    result = _install(create, tmp)
    assert result.returncode == 3
    assert target.read_text() == "old\n"


def test_failed_install_removes_its_temp_file(node: dict[str, Path]) -> None:
    target = node["manifests"] / "gone" / "web.yaml"  # its directory does not exist: mv fails
    tmp = str(node["tmp"])
    plan = plan_install(None, VALID, path=str(target), stamp="s", backup_root=tmp)
    result = _install(plan, tmp)
    assert result.returncode != 0
    assert not target.exists()
    assert os.listdir(node["tmp"]) == []


def test_case_25_a_1mb_manifest_goes_on_stdin_and_a_cut_upload_installs_nothing(
    node: dict[str, Path],
) -> None:
    """Case 25: 1 MB is uploaded on stdin (a command line of that size fails to run at all);
    an upload cut short (the connection dropped: stdin ends early) leaves neither the
    target nor a temp file; the complete one lands 0600 through a temp file and `mv -T`."""
    target = node["manifests"] / "big.yaml"
    tmp = str(node["tmp"])
    text = VALID + "# " + "x" * (1024 * 1024) + "\n"
    create = plan_install(None, text, path=str(target), stamp="s1", backup_root=tmp)
    command = install_command(create, tmp_dir=tmp, owner=_owner()).render(as_root=True)
    assert len(command) < 4096, "the manifest must not travel in the command line"
    cut = _install(create, tmp, stdin=text[: len(text) // 2])
    assert cut.returncode != 0
    assert "cut short" in cut.stderr
    assert not target.exists() and os.listdir(node["manifests"]) == []
    assert os.listdir(node["tmp"]) == []  # the partial temp file was removed
    whole = _install(create, tmp)
    assert whole.returncode == 0, whole.stderr
    assert target.read_text() == text
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(node["tmp"]) == []
    # A cut replace leaves the old file byte-identical.
    new = text.replace("image: i", "image: j")
    replace = plan_install(text, new, path=str(target), stamp="s2", backup_root=tmp)
    cut = _install(replace, tmp, stdin=new[:1000])
    assert cut.returncode != 0 and target.read_text() == text
    assert os.listdir(node["manifests"]) == ["big.yaml"]


def test_install_command_is_privileged_and_refuses_tmp_inside_the_dir() -> None:
    plan = plan_install(None, VALID, path=PATH, stamp="s")
    command = install_command(plan)
    assert command.sudo
    text = command.render(as_root=True)
    assert "mv -T" in text and "chown root:root" in text and "chmod 0600" in text
    assert "mktemp -- /etc/kubernetes/tmp/nodeops-web.yaml.XXXXXX" in text
    with pytest.raises(ValueError, match="inside"):
        install_command(plan, tmp_dir="/etc/kubernetes/manifests/.tmp")


def test_remove_moves_the_manifest_to_the_backup_dir(node: dict[str, Path]) -> None:
    target = node["manifests"] / "web.yaml"
    target.write_text(VALID)
    command = remove_command(str(target), stamp="s3", backup_root=str(node["tmp"]))
    assert command.sudo
    assert " rm " not in command.render(as_root=True)
    result = _sh(command.render(as_root=True))
    assert result.returncode == 0, result.stderr
    assert not target.exists()
    assert (node["tmp"] / "nodeops-s3" / "web.yaml").read_text() == VALID
    again = _sh(command.render(as_root=True))  # already gone: nothing to do
    assert again.returncode == 0
    with pytest.raises(ValueError, match="inside"):
        remove_command(str(target), stamp="s", backup_root=str(node["manifests"]))
