"""Snapshot builders (exact argv, quoting), status/save parsers on real outputs, metadata."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeops.cmd import Cmd
from nodeops.etcd import (
    CERT_HINT,
    EtcdctlArgs,
    SnapshotError,
    SnapshotMeta,
    SnapshotStatus,
    assess_snapshot,
    client_pair_check,
    explain_etcdctl_error,
    make_private_dir,
    parse_sha256sum,
    parse_snapshot_save,
    parse_snapshot_status,
    sha256,
    snapshot_save,
    snapshot_status,
    tools_for,
    trial_restore,
)
from nodeops.etcd.snapshot import check_node_path, parse_size

OUTPUTS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "outputs"

ARGS = EtcdctlArgs(
    endpoint="https://127.0.0.1:2379",
    cacert="/etc/kubernetes/pki/etcd/ca.crt",
    cert="/etc/kubernetes/pki/etcd/healthcheck-client.crt",
    key="/etc/kubernetes/pki/etcd/healthcheck-client.key",
    pair="healthcheck-client",
)
SNAP = "/var/lib/nodeops/etcd/etcd-cp1-20261127T044500Z.db"


def output(name: str) -> str:
    path = OUTPUTS / name
    if not path.is_file():
        pytest.skip(f"fixture {path} is absent (shared fixtures not checked out)")
    return path.read_text()


# --- status --------------------------------------------------------------------------------

INLINE_STATUS = {
    "json": ('{"hash":3474280699,"revision":3,"totalKey":3,"totalSize":24576}\n', True),
    "table": (
        "+----------+----------+------------+------------+\n"
        "|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n"
        "+----------+----------+------------+------------+\n"
        "| cf1550fb |        3 |          3 | 25 kB      |\n"
        "+----------+----------+------------+------------+\n",
        False,
    ),
    "simple": ("cf1550fb, 3, 3, 25 kB\n", False),
}


@pytest.mark.parametrize("form", sorted(INLINE_STATUS))
def test_status_inline_forms_agree(form: str) -> None:
    text, exact = INLINE_STATUS[form]
    status = parse_snapshot_status(text)
    assert status.hash == 0xCF1550FB == 3474280699
    assert (status.revision, status.total_keys) == (3, 3)
    assert status.size_exact is exact
    assert status.total_size == (24576 if exact else 25000)
    assert status.plausible


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("etcdutl-snapshot-status.json.txt", (0xCF1550FB, 3, 3, 24576)),
        ("etcdutl-snapshot-status.table.txt", (0xCF1550FB, 3, 3, 25000)),
        ("etcdutl-snapshot-status.simple.txt", (0xCF1550FB, 3, 3, 25000)),
        ("etcdctl-snapshot-status.table.k8s-docs.txt", (0xFE01CF57, 10, 7, 2_100_000)),
    ],
)
def test_status_fixtures(name: str, expected: tuple[int, int, int, int]) -> None:
    status = parse_snapshot_status(output(name))
    assert (status.hash, status.revision, status.total_keys, status.total_size) == expected


def test_status_skips_log_lines_and_warnings() -> None:
    text = (
        '{"level":"warn","ts":1,"msg":"deprecated","revision":"x"}\n'
        "Deprecated: Use `etcdutl snapshot status` instead.\n\n"
        '{"hash":1,"revision":42,"totalKey":9,"totalSize":2048}\n'
    )
    assert parse_snapshot_status(text) == SnapshotStatus(1, 42, 9, 2048, True)


@pytest.mark.parametrize(
    "text", ["", "Error: snapshot file integrity check failed\n", "| a | b |\n", "{}\n"]
)
def test_status_garbage_is_an_error(text: str) -> None:
    with pytest.raises(SnapshotError):
        parse_snapshot_status(text)


def test_zero_revision_is_not_plausible() -> None:
    status = parse_snapshot_status('{"hash":0,"revision":0,"totalKey":0,"totalSize":20480}')
    assert not status.plausible


def test_sizes() -> None:
    assert parse_size("25 kB") == 25_000
    assert parse_size("2.1 MB") == 2_100_000
    assert parse_size("512 B") == 512
    assert parse_size("1.0 GiB") == 2**30
    with pytest.raises(ValueError):
        parse_size("many")


# --- save ----------------------------------------------------------------------------------


def test_save_success_fixture_with_json_logs() -> None:
    outcome = parse_snapshot_save(output("etcdctl-snapshot-save.v3.5-json-logs.txt"), 0)
    assert outcome.saved
    assert outcome.path == "/opt/cluster_backup.db"


def test_save_hung_partial_fixture_is_a_failure() -> None:
    outcome = parse_snapshot_save(output("etcdctl-snapshot-save.v3.4.3-hung-partial.txt"), 124)
    assert not outcome.saved
    assert outcome.partial_path == "snapshot.db.part"
    assert "timed out" in outcome.reason


def test_save_inline_forms() -> None:
    assert parse_snapshot_save("Snapshot saved at /x/s.db\n", 0).path == "/x/s.db"
    # A success line with a non-zero exit is not trusted.
    assert not parse_snapshot_save("Snapshot saved at /x/s.db\n", 1).saved
    partial = parse_snapshot_save(
        '{"level":"info","msg":"created temporary db file","path":"/x/s.db.part"}\n', None
    )
    assert (partial.saved, partial.partial_path) == (False, "/x/s.db.part")
    assert "temporary file" in partial.reason


def test_context_deadline_exceeded_gets_the_certificate_hint() -> None:
    text = (
        '{"level":"warn","msg":"retrying of unary invoker failed"}\n'
        "Error: context deadline exceeded\n"
    )
    outcome = parse_snapshot_save(text, 1)
    assert not outcome.saved
    assert CERT_HINT in outcome.reason
    assert "--trusted-ca-file" in CERT_HINT and "healthcheck-client" in CERT_HINT
    assert explain_etcdctl_error("dial tcp 127.0.0.1:2379: connect: connection refused")
    assert explain_etcdctl_error("all good") is None


def test_sha256sum_output() -> None:
    digest = "a" * 64
    assert parse_sha256sum(f"{digest}  /var/lib/x.db\n") == digest
    assert parse_sha256sum(f"\\{digest}  /var/lib/x\\nname.db\n") == digest
    with pytest.raises(SnapshotError):
        parse_sha256sum("sha256sum: /x: No such file or directory\n")


# --- builders: exact argv ------------------------------------------------------------------


def test_snapshot_save_argv() -> None:
    command = snapshot_save(ARGS, SNAP, timeout_seconds=120)
    assert command.sudo
    assert command.render(as_root=True) == (
        "umask 077 && timeout --kill-after=10 120 etcdctl --endpoints=https://127.0.0.1:2379 "
        "--dial-timeout=5s --cacert=/etc/kubernetes/pki/etcd/ca.crt "
        "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
        "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key snapshot save " + SNAP + " "
        f"; rc=$?; [ $rc -eq 0 ] || rm -f -- {SNAP}.part ; exit $rc"
    )
    old = EtcdctlArgs(endpoint="http://127.0.0.1:2379", api_v3_env=True)
    assert old.global_flags() == ("--endpoints=http://127.0.0.1:2379", "--dial-timeout=5s")
    assert snapshot_save(old, SNAP).render(as_root=True) == (
        "umask 077 && timeout --kill-after=10 300 env ETCDCTL_API=3 etcdctl "
        f"--endpoints=http://127.0.0.1:2379 --dial-timeout=5s snapshot save {SNAP} "
        f"; rc=$?; [ $rc -eq 0 ] || rm -f -- {SNAP}.part ; exit $rc"
    )


def test_status_and_trial_restore_pick_the_tool_by_version() -> None:
    assert snapshot_status(tools_for((3, 5, 10)), SNAP).render(as_root=True) == (
        f"etcdutl snapshot status {SNAP} --write-out=json"
    )
    assert snapshot_status(tools_for((3, 4, 23)), SNAP, json=False).render(as_root=True) == (
        f"etcdctl snapshot status {SNAP} --write-out=table"
    )
    assert snapshot_status(tools_for((3, 3, 15)), SNAP).render(as_root=True) == (
        f"env ETCDCTL_API=3 etcdctl snapshot status {SNAP} --write-out=json"
    )
    assert snapshot_status(ARGS, SNAP).render(as_root=True).startswith("etcdctl snapshot status")
    check = "/var/lib/nodeops/etcd/check"
    assert trial_restore(tools_for((3, 5, 10)), SNAP, check).render(as_root=True) == (
        f"rm -rf -- {check}/restore-check && etcdutl snapshot restore {SNAP} "
        f"--data-dir={check}/restore-check ; rc=$?; rm -rf -- {check}/restore-check ; exit $rc"
    )


def test_small_builders() -> None:
    assert make_private_dir("/var/lib/nodeops/etcd").render() == (
        "sudo -n -- sh -c 'install -d -m 0700 -- /var/lib/nodeops/etcd'"
    )
    assert sha256(SNAP).render(as_root=True) == f"sha256sum -- {SNAP}"
    assert client_pair_check(ARGS).render(as_root=True) == (
        "test -r /etc/kubernetes/pki/etcd/ca.crt && "
        "test -r /etc/kubernetes/pki/etcd/healthcheck-client.crt && "
        "test -r /etc/kubernetes/pki/etcd/healthcheck-client.key"
    )


@pytest.mark.parametrize(
    "bad",
    ["relative/x.db", "-rf", "/tmp/x.db", "/var/tmp/e/x.db", "/dev/shm/x", "/", "/tmp"],
)
def test_node_paths_must_be_absolute_and_not_shared_tmp(bad: str) -> None:
    with pytest.raises(ValueError):
        snapshot_save(ARGS, bad)
    with pytest.raises(ValueError):
        make_private_dir(bad)
    with pytest.raises(ValueError):
        check_node_path(bad)


ECHO = [sys.executable, "-c", "import json,sys; print(json.dumps(sys.argv[1:]))"]
hostile = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=30,
)


def _argv_through_sh(command: Cmd, program: str) -> list[str]:
    # Replace the program by an argv printer, then let a real shell parse the line.
    printer = " ".join(shlex.quote(word) for word in ECHO)
    line = re.sub(
        rf"(^| ){program} ",
        lambda m: f"{m.group(1)}{printer} ",
        command.render(as_root=True),
        count=1,
    )
    out = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@settings(max_examples=30, deadline=None)
@given(hostile)
def test_hostile_paths_stay_data(name: str) -> None:
    path = "/var/lib/nodeops/" + name.replace("/", "_")
    got = _argv_through_sh(snapshot_status(tools_for((3, 5, 10)), path), "etcdutl")
    assert got == ["snapshot", "status", check_node_path(path), "--write-out=json"]
    args = EtcdctlArgs(endpoint="https://127.0.0.1:2379", cacert=path, cert=path, key=path)
    got = _argv_through_sh(snapshot_save(args, path).with_sudo(), "etcdctl")
    assert f"--cacert={path}" in got and got[-1] == check_node_path(path)
    assert got[-3:-1] == ["snapshot", "save"]


def test_hostile_path_in_sudo_wrapper_creates_nothing(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    path = f"/var/lib/x'; touch {canary}; echo '$(touch {canary})`touch {canary}`.db"
    line = sha256(path).render().replace("sudo -n -- ", "", 1)
    subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, check=False)
    assert not canary.exists()


# --- metadata and verdicts -----------------------------------------------------------------


def meta(**changes: object) -> SnapshotMeta:
    base = SnapshotMeta(
        file="etcd-cp1-20261127T044500Z.db",
        node="cp1",
        taken_at="2026-11-27T04:45:00Z",
        sha256="ab" * 32,
        size=24576,
        revision=3,
        total_keys=3,
        hash=3474280699,
        etcd_version="3.5.10",
        cluster_version="v1.29.0",
        member="cp1",
    )
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


def test_meta_json_round_trip() -> None:
    original = meta()
    text = original.to_json()
    assert json.loads(text)["sha256"] == "ab" * 32
    assert SnapshotMeta.from_json(text) == original
    invalid = original.marked_invalid("sha256 mismatch")
    again = SnapshotMeta.from_json(invalid.to_json())
    assert again == invalid and not again.valid and again.problems == ("sha256 mismatch",)
    extra = json.loads(text) | {"future_field": 1}
    assert SnapshotMeta.from_json(json.dumps(extra)) == original


@pytest.mark.parametrize("text", ["[]", "not json", '{"file": "x"}'])
def test_meta_bad_json(text: str) -> None:
    with pytest.raises(SnapshotError):
        SnapshotMeta.from_json(text)


GOOD = SnapshotStatus(1, 10, 7, 2_100_000, False)


def test_assess_snapshot() -> None:
    ok = assess_snapshot(
        expected_sha256="ab" * 32, actual_sha256="AB" * 32, status=GOOD, trial_restore_ok=True
    )
    assert ok.valid and ok.problems == ()
    bad = assess_snapshot(
        expected_sha256="ab" * 32,
        actual_sha256="cd" * 32,
        status=SnapshotStatus(0, 0, 0, 0, True),
        trial_restore_ok=False,
        trial_restore_error="snapshot file integrity check failed",
    )
    assert not bad.valid
    assert len(bad.problems) == 3
    assert "sha256 mismatch" in bad.problems[0]
    assert "revision 0" in bad.problems[1]
    assert "integrity" in bad.problems[2]
    failed = assess_snapshot(
        expected_sha256=None, actual_sha256=None, status=None, status_error="invalid database"
    )
    assert not failed.valid
    assert any("no trial restore" in p for p in failed.problems)
    lenient = assess_snapshot(
        expected_sha256=None, actual_sha256=None, status=GOOD, require_trial_restore=False
    )
    assert lenient.valid
