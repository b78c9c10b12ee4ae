"""Transport guards that need no network: host key policy, known_hosts, fan-out."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import paramiko
import pytest

from nodeops.cmd import cmd
from nodeops.errors import HostKeyError, TransportError
from nodeops.fanout import Sessions, map_bounded
from nodeops.hostkeys import HostKeyPolicy, fingerprint, known_hosts_name, record_host_key
from nodeops.node import Node
from nodeops.transport import FabricTransport, FakeTransport, SSHOptions

KEY = paramiko.Ed25519Key.from_private_key_file  # keeps the line short below


@pytest.fixture(scope="module")
def host_key(tmp_path_factory: pytest.TempPathFactory) -> paramiko.PKey:
    import subprocess

    path = tmp_path_factory.mktemp("key") / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return KEY(str(path))


def test_fingerprint_matches_openssh(host_key: paramiko.PKey, tmp_path: Path) -> None:
    import subprocess

    pub = tmp_path / "k.pub"
    pub.write_text(f"{host_key.get_name()} {host_key.get_base64()}\n")
    openssh = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True)
    assert fingerprint(host_key) == openssh.stdout.split()[1]


def test_case_01_unknown_key_is_refused_with_host_and_fingerprint(host_key: paramiko.PKey) -> None:
    policy = HostKeyPolicy()
    with pytest.raises(HostKeyError) as error:
        policy.missing_host_key(paramiko.SSHClient(), "[10.0.0.9]:2222", host_key)
    assert "[10.0.0.9]:2222" in str(error.value)
    assert fingerprint(host_key) in str(error.value)


def test_case_01_accept_new_records_atomically_0600(
    host_key: paramiko.PKey, tmp_path: Path
) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    known.parent.mkdir()
    known.write_text("other ssh-ed25519 AAAA")  # no trailing newline: must not be glued on
    client = paramiko.SSHClient()
    HostKeyPolicy(accept_new=True, record_to=known).missing_host_key(client, "n1", host_key)
    HostKeyPolicy(accept_new=True, record_to=known).missing_host_key(client, "n1", host_key)
    lines = known.read_text().splitlines()
    assert lines == ["other ssh-ed25519 AAAA", f"n1 ssh-ed25519 {host_key.get_base64()}"]
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert client.get_host_keys().lookup("n1") is not None
    assert [p.name for p in known.parent.iterdir()] == ["known_hosts"]  # no temp file left


def test_record_is_thread_safe(host_key: paramiko.PKey, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    threads = [
        threading.Thread(target=record_host_key, args=(known, f"n{i}", host_key)) for i in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(known.read_text().splitlines()) == 20


def test_known_hosts_name() -> None:
    assert known_hosts_name("n1", 22) == "n1"
    assert known_hosts_name("10.0.0.1", 2222) == "[10.0.0.1]:2222"


def test_case_03_every_connection_refuses_unknown_keys_and_loads_known_hosts(
    tmp_path: Path,
) -> None:
    # Fabric's Connection installs AutoAddPolicy (trust anything); ours must replace it.
    known = tmp_path / "known_hosts"
    known.write_text(
        "10.0.0.5 ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIGRQ4d6OCKu0JQOKjbF/1tBq/0jZRYm4cmWg5cxoOXnE\n"
    )
    node = Node(name="w1", address="10.0.0.5", user="root", port=22)
    transport = FabricTransport(node, SSHOptions(known_hosts=(known,), use_ssh_config=False))
    connection = transport._make_connection()
    policy = connection.client._policy
    assert isinstance(policy, HostKeyPolicy)
    assert not policy.accept_new
    assert not isinstance(policy, paramiko.AutoAddPolicy)
    assert connection.client.get_host_keys().lookup("10.0.0.5") is None  # not writable copy
    assert connection.client._system_host_keys.lookup("10.0.0.5") is not None


def test_unreachable_node_is_a_transport_error_naming_it() -> None:
    # Port 1 on loopback: nothing listens, so the refusal is immediate.
    node = Node(name="w1", address="127.0.0.1", user="root", port=1)
    transport = FabricTransport(node, SSHOptions(connect_timeout=2, use_ssh_config=False))
    with pytest.raises(TransportError, match=r"w1 \(127\.0\.0\.1:1\): cannot connect"):
        transport.run(cmd("true"))


def test_sessions_reuse_one_transport_per_node_and_isolate_failures() -> None:
    made: list[str] = []
    nodes = [Node(name=f"n{i}", address=f"10.0.0.{i}") for i in range(1, 4)]

    def factory(node: Node, options: SSHOptions) -> FakeTransport:
        made.append(node.name)
        if node.name == "n2":
            return FakeTransport(node, rules=[("true", (0, "", ""))])
        return FakeTransport(node, rules=[("true", (0, "ok\n", ""))])

    def work(transport: FakeTransport) -> str:  # type: ignore[override]
        result = transport.run(cmd("true"))
        if not result.stdout:
            raise TransportError(f"{transport.node.name}: no output")
        return result.stdout

    with Sessions(SSHOptions(), factory=factory) as sessions:  # type: ignore[arg-type]
        first = sessions.each(nodes, work, parallel=2)  # type: ignore[arg-type]
        sessions.each(nodes, work, parallel=2)  # type: ignore[arg-type]
    assert sorted(made) == ["n1", "n2", "n3"]  # one transport per node across both runs
    assert [o.ok for o in first] == [True, False, True]
    assert "n2: no output" in str(first[1].error)


def test_map_bounded_keeps_order_and_bounds() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def work(node: Node) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.01)
        with lock:
            running -= 1
        return node.name

    nodes = [Node(name=f"n{i}", address="127.0.0.1") for i in range(12)]
    assert map_bounded(work, nodes, 3) == [n.name for n in nodes]
    assert peak <= 3
    with pytest.raises(ValueError):
        map_bounded(work, nodes, 0)
