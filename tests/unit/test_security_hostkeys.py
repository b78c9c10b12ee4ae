"""Cases 1-3, host keys, against an in-process SSH server on loopback that records every
authentication request and every command: an unknown or changed key is refused before the
client offers any credential, and every connection nodeops builds checks keys."""

from __future__ import annotations

import ast
import os
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from nodeops.cmd import cmd
from nodeops.errors import HostKeyError
from nodeops.hostkeys import HostKeyPolicy, fingerprint, record_host_key
from nodeops.node import Node
from nodeops.transport import FabricTransport, SSHOptions

ROOT = Path(__file__).resolve().parents[2]


def _keygen(path: Path) -> paramiko.PKey:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def make_keys(where: Path) -> dict[str, Any]:
    """The server's host key, an impostor's host key, and the client's key file."""
    return {
        "host": _keygen(where / "host"),
        "impostor": _keygen(where / "impostor"),
        "client": _keygen(where / "client"),
        "client_file": str(where / "client"),
    }


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Keys for this module's servers and client."""
    return make_keys(tmp_path_factory.mktemp("keys"))


class _Handler(paramiko.ServerInterface):
    """Accepts the client key; records every authentication request and command."""

    def __init__(self, server: RecordingServer) -> None:
        self.server = server

    def get_allowed_auths(self, username: str) -> str:
        self.server.auth.append(("methods?", username))
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        self.server.auth.append(("none", username))
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        self.server.auth.append(("password", password))
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.server.auth.append(("publickey", username))
        return paramiko.AUTH_SUCCESSFUL if key == self.server.client_key else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.server.execs.append(command.decode())

        def finish() -> None:
            time.sleep(0.05)  # after the exec reply has gone out
            answer = self.server.reply(command.decode())
            if answer is None:
                return  # a command that never ends
            out, err, code = answer
            channel.sendall(out.encode())
            channel.sendall_stderr(err.encode())
            channel.send_exit_status(code)
            channel.close()

        threading.Thread(target=finish, daemon=True).start()
        return True


class LoopbackServer:
    """A TCP server on 127.0.0.1 that counts connections and hands each to `handle`."""

    def __init__(self) -> None:
        self.connections = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        """Serve one connection; the plain server just closes it."""
        conn.close()

    def close(self) -> None:
        """Stop accepting and close what is open."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


class RecordingServer(LoopbackServer):
    """An SSH server on 127.0.0.1 with a given host key (the node, or an impostor)."""

    def __init__(self, host_key: paramiko.PKey, client_key: paramiko.PKey) -> None:
        self.host_key = host_key
        self.client_key = client_key
        self.auth: list[tuple[str, str]] = []
        self.execs: list[str] = []
        # What a command prints and its exit code; None: it never ends.
        self.reply: Callable[[str], tuple[str, str, int] | None] = lambda _: ("", "", 0)
        self._transports: list[paramiko.Transport] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        self._transports.append(transport)
        try:
            transport.start_server(server=_Handler(self))
        except (paramiko.SSHException, EOFError, OSError):
            transport.close()

    def close(self) -> None:
        super().close()
        for transport in self._transports:
            transport.close()


@pytest.fixture()
def server(keys: dict[str, Any]) -> Iterator[RecordingServer]:
    running = RecordingServer(keys["host"], keys["client"])
    yield running
    running.close()


def ssh_transport(
    server: RecordingServer, keys: dict[str, Any], known: Path, **options: Any
) -> FabricTransport:
    """A FabricTransport to the server as root with the client key; known_hosts is `known`
    unless options name the files."""
    node = Node(name="w1", address="127.0.0.1", user="root", port=server.port,
                key_file=keys["client_file"])  # fmt: skip
    options.setdefault("known_hosts", (known,))
    settings = SSHOptions(use_ssh_config=False, connect_timeout=10, **options)
    return FabricTransport(node, settings)


def _known_line(port: int, key: paramiko.PKey) -> str:
    return f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n"


def test_case_01_the_server_sees_a_trusted_client_authenticate_and_run(
    server: RecordingServer, keys: dict[str, Any], tmp_path: Path
) -> None:
    # The control: with the right key known, auth and the command do reach this server.
    known = tmp_path / "known_hosts"
    known.write_text(_known_line(server.port, keys["host"]))
    transport = ssh_transport(server, keys, known)
    try:
        assert transport.run(cmd("touch", "/tmp/canary")).exit_code == 0
    finally:
        transport.close()
    assert ("publickey", "root") in server.auth
    assert server.execs == ["touch /tmp/canary"]


def test_case_01_unknown_key_is_refused_before_any_credential_or_command(
    server: RecordingServer, keys: dict[str, Any], tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    transport = ssh_transport(server, keys, known)
    with pytest.raises(HostKeyError) as refused:
        transport.run(cmd("touch", "/tmp/canary"))
    message = str(refused.value)
    assert f"[127.0.0.1]:{server.port}: unknown host key" in message
    assert f"ssh-ed25519 key {fingerprint(keys['host'])}" in message
    assert "Refusing to connect" in message
    assert server.connections == 1  # it did reach the server ...
    assert server.auth == []  # ... and offered no credential
    assert server.execs == []
    assert known.read_text() == ""


def test_case_01_trust_on_first_use_is_opt_in_and_records_0600_atomically(
    server: RecordingServer, keys: dict[str, Any], tmp_path: Path
) -> None:
    record = tmp_path / "new" / "known_hosts"  # neither the file nor its directory exists
    old_umask = os.umask(0)  # the worst umask: the file must still be private
    try:
        opt_in = {"accept_new_host_keys": True, "record_new_host_keys_to": record}
        transport = ssh_transport(server, keys, tmp_path / "none", **opt_in)
        try:
            assert transport.run(cmd("true")).exit_code == 0
        finally:
            transport.close()
    finally:
        os.umask(old_umask)
    assert record.read_text() == _known_line(server.port, keys["host"])
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in record.parent.iterdir()) == ["known_hosts"]
    # The recorded key is trusted from now on without the opt-in.
    again = ssh_transport(server, keys, record)
    try:
        assert again.run(cmd("true")).exit_code == 0
    finally:
        again.close()
    assert server.execs == ["true", "true"]


def test_case_01_a_failed_record_leaves_known_hosts_untouched(
    keys: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("other ssh-ed25519 AAAA\n")
    known.chmod(0o600)

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        record_host_key(known, "n1", keys["host"])
    assert known.read_text() == "other ssh-ed25519 AAAA\n"
    assert [p.name for p in tmp_path.iterdir()] == ["known_hosts"]  # no temp file left


@pytest.fixture()
def impostor(keys: dict[str, Any], tmp_path: Path) -> Iterator[tuple[RecordingServer, Path]]:
    """A server with another host key, and a known_hosts naming the real node's key there."""
    running = RecordingServer(keys["impostor"], keys["client"])
    known = tmp_path / "known_hosts"
    known.write_text(_known_line(running.port, keys["host"]))
    yield running, known
    running.close()


def test_case_02_changed_key_is_refused_before_any_credential_even_with_accept_new(
    keys: dict[str, Any], impostor: tuple[RecordingServer, Path]
) -> None:
    server, known = impostor
    transport = ssh_transport(server, keys, known, accept_new_host_keys=True)
    with pytest.raises(HostKeyError) as refused:
        transport.run(cmd("touch", "/tmp/canary"))
    message = str(refused.value)
    assert "the host key has CHANGED" in message
    assert f"known_hosts has ssh-ed25519 {fingerprint(keys['host'])}" in message
    assert f"the host offered ssh-ed25519 {fingerprint(keys['impostor'])}" in message
    assert server.connections == 1
    assert server.auth == []
    assert server.execs == []
    assert known.read_text() == _known_line(server.port, keys["host"])


def test_case_02_paramiko_raises_bad_host_key_underneath(
    keys: dict[str, Any], impostor: tuple[RecordingServer, Path]
) -> None:
    server, known = impostor
    connection = ssh_transport(server, keys, known)._make_connection()
    with pytest.raises(paramiko.BadHostKeyException):
        connection.open()
    connection.close()
    assert server.auth == []


def _guarded(client: paramiko.SSHClient) -> bool:
    policy = client._policy  # type: ignore[attr-defined]
    return isinstance(policy, HostKeyPolicy) and not policy.accept_new


def test_case_03_every_hop_rejects_unknown_keys_despite_ssh_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ssh_config's StrictHostKeyChecking no (as `vagrant ssh-config` writes) and a ProxyJump
    bastion: the node and the bastion both get the rejecting policy and the known_hosts files."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    bastion_known = tmp_path / "bastion_known_hosts"
    bastion_known.write_text(
        "10.0.0.1 ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIGRQ4d6OCKu0JQOKjbF/1tBq/0jZRYm4cmWg5cxoOXnE\n"
    )
    (home / ".ssh" / "config").write_text(
        "Host 10.0.0.5\n  ProxyJump root@10.0.0.1\n  StrictHostKeyChecking no\n"
        f"Host *\n  UserKnownHostsFile {bastion_known}\n  StrictHostKeyChecking no\n"
    )
    monkeypatch.setenv("HOME", str(home))
    node = Node(name="w1", address="10.0.0.5", user="root")
    connection = FabricTransport(node, SSHOptions(use_ssh_config=True))._make_connection()
    other_key = paramiko.RSAKey.generate(1024)
    hops = [connection]
    while hasattr(hops[-1].gateway, "client"):
        hops.append(hops[-1].gateway)
    assert [hop.host for hop in hops] == ["10.0.0.5", "10.0.0.1"]
    for hop in hops:
        assert _guarded(hop.client), hop.host
        assert not isinstance(hop.client._policy, paramiko.AutoAddPolicy)
        assert hop.client._system_host_keys.lookup("10.0.0.1") is not None  # known_hosts loaded
        with pytest.raises(HostKeyError):  # and the policy really refuses
            hop.client._policy.missing_host_key(hop.client, hop.host, other_key)


def test_case_03_only_the_transport_builds_ssh_clients() -> None:
    """No other module opens SSH (fabric.Connection, SSHClient, paramiko.Transport) or sets
    a host key policy, so the guard in FabricTransport covers every connection."""
    building = {"Connection", "SSHClient", "Transport", "set_missing_host_key_policy"}
    found = []
    for path in sorted(ROOT.glob("nodeops/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else None
                if isinstance(node.func, ast.Name):
                    name = node.func.id
                if name in building:
                    found.append(f"{path.relative_to(ROOT)}:{name}")
    assert found == [
        "nodeops/transport.py:Connection",
        "nodeops/transport.py:set_missing_host_key_policy",
    ]


def test_case_01_cert_authority_lines_do_not_break_known_hosts(
    server: RecordingServer, keys: dict[str, Any], tmp_path: Path
) -> None:
    """Organisations with an SSH CA have `@cert-authority` lines in known_hosts; the plain
    entries around them still count (paramiko alone rejects the whole file)."""
    known = tmp_path / "known_hosts"
    ca = keys["impostor"]
    known.write_text(
        f"@cert-authority *.example.org {ca.get_name()} {ca.get_base64()}\n"
        + _known_line(server.port, keys["host"])
    )
    transport = ssh_transport(server, keys, known)
    try:
        assert transport.run(cmd("true")).exit_code == 0
    finally:
        transport.close()


@pytest.mark.parametrize("accept_new", [False, True])
def test_case_02_a_revoked_key_is_refused_even_when_listed_or_new(
    server: RecordingServer, keys: dict[str, Any], tmp_path: Path, accept_new: bool
) -> None:
    """OpenSSH refuses a key marked `@revoked`, wherever else it is listed and with
    accept-new; so does nodeops, before any credential."""
    host = keys["host"]
    revoked = tmp_path / "ssh_known_hosts"
    revoked.write_text(f"@revoked * {host.get_name()} {host.get_base64()}\n")
    known = tmp_path / "known_hosts"
    known.write_text(_known_line(server.port, host) if not accept_new else "")
    transport = ssh_transport(
        server,
        keys,
        known,
        accept_new_host_keys=accept_new,
        record_new_host_keys_to=known,
        known_hosts=(known, revoked),
    )
    with pytest.raises(HostKeyError, match="REVOKED") as refused:
        transport.run(cmd("true"))
    assert fingerprint(host) in str(refused.value)
    assert server.auth == [] and server.execs == []
    assert known.read_text() == ("" if accept_new else _known_line(server.port, host))
