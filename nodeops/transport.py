"""Transport: how commands reach nodes. FabricTransport over SSH; FakeTransport for unit tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paramiko

from nodeops.cmd import Cmd, scrub
from nodeops.errors import HostKeyError, TransportError
from nodeops.hostkeys import HostKeyPolicy, fingerprint, load_known_hosts
from nodeops.node import Node
from nodeops.result import Result


class Transport(Protocol):
    """A connection to one node, reused for every command of a run."""

    node: Node

    def run(
        self, command: Cmd, *, timeout: float | None = None, stdin: str | None = None
    ) -> Result:
        """Run a command and return its result; a non-zero exit is a Result, not an error."""
        ...

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        ...


Responder = Callable[[Cmd], tuple[int, str, str]]


@dataclass
class FakeTransport:
    """A scripted transport: answers commands from rules, records every command sent.

    `rules` are (needle, (exit_code, stdout, stderr)) pairs: the first rule whose needle
    occurs in the command's rendered text answers it. An unmatched command is an error, so
    a test notices any command it did not expect.
    """

    node: Node
    rules: Sequence[tuple[str, tuple[int, str, str]] | tuple[str, Responder]] = ()
    sent: list[Cmd] = field(default_factory=list)
    closed: bool = False

    def run(
        self, command: Cmd, *, timeout: float | None = None, stdin: str | None = None
    ) -> Result:
        self.sent.append(command)
        text = command.render(as_root=True)
        for needle, answer in self.rules:
            if needle in text:
                code, out, err = answer(command) if callable(answer) else answer
                return Result(
                    node=self.node.name,
                    command=command.display(as_root=True),
                    exit_code=code,
                    stdout=scrub(out, command.secrets),
                    stderr=scrub(err, command.secrets),
                )
        raise AssertionError(f"FakeTransport for {self.node.name}: unexpected command {command}")

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True)
class SSHOptions:
    """How nodeops connects: timeouts, keepalive, host key trust, ssh_config."""

    connect_timeout: float = 10.0
    command_timeout: float = 600.0
    keepalive_seconds: int = 15
    known_hosts: tuple[Path, ...] = ()
    accept_new_host_keys: bool = False
    record_new_host_keys_to: Path | None = None
    use_ssh_config: bool = True


# How long one wait for output lasts before the deadline and the exit status are checked again.
_POLL_SECONDS = 0.2


class FabricTransport:
    """One SSH connection to one node (Fabric for ssh_config and ProxyJump, paramiko underneath).

    Connects on first use and keeps the connection for every later command. Host keys are
    checked against known_hosts: Fabric's own default would trust any key.
    """

    def __init__(self, node: Node, options: SSHOptions) -> None:
        self.node = node
        self.options = options
        self._connection: Any = None
        self._lock = threading.Lock()

    @property
    def as_root(self) -> bool:
        """Whether commands already run as root, so `sudo` is not needed."""
        user = self.node.user
        if user is None and self._connection is not None:
            user = self._connection.user
        return user == "root"

    def _make_connection(self) -> Any:
        import fabric  # imported here: Fabric and Invoke together cost ~100 ms of start-up

        overrides: dict[str, Any] = {"load_ssh_configs": self.options.use_ssh_config}
        config = fabric.Config(overrides=overrides)
        connect_kwargs: dict[str, Any] = {
            "banner_timeout": self.options.connect_timeout,
            "auth_timeout": self.options.connect_timeout,
            "channel_timeout": self.options.connect_timeout,
        }
        if self.node.key_file:
            connect_kwargs["key_filename"] = [self.node.key_file]
            # Only the inventory's key: an agent full of keys can exhaust MaxAuthTries first.
            connect_kwargs["look_for_keys"] = False
            connect_kwargs["allow_agent"] = False
        connection = fabric.Connection(
            host=self.node.address,
            user=self.node.user,
            port=self.node.port,
            config=config,
            connect_timeout=int(self.options.connect_timeout),
            connect_kwargs=connect_kwargs,
        )
        hop: Any = connection
        while isinstance(hop, fabric.Connection):
            # Every hop, the ProxyJump bastions included, checks its host key.
            self._guard(hop)
            hop = hop.gateway
        return connection

    def _guard(self, connection: Any) -> None:
        client: paramiko.SSHClient = connection.client
        ssh_config = connection.ssh_config if self.options.use_ssh_config else {}
        files = [*self.options.known_hosts]
        for key in ("userknownhostsfile", "globalknownhostsfile"):
            for path in str(ssh_config.get(key, "")).split():
                files.append(Path(path).expanduser())
        revoked = load_known_hosts(client, files)
        client.set_missing_host_key_policy(
            HostKeyPolicy(
                accept_new=self.options.accept_new_host_keys,
                record_to=self.options.record_new_host_keys_to,
                revoked=revoked,
            )
        )

    def connect(self) -> None:
        """Open the connection now (it is otherwise opened by the first command)."""
        with self._lock:
            if self._connection is not None and self._connection.is_connected:
                return
            connection = self._make_connection()
            where = f"{self.node.name} ({self.node.address}:{connection.port})"
            try:
                connection.open()
            except HostKeyError:
                connection.close()
                raise
            except paramiko.BadHostKeyException as error:
                connection.close()
                raise HostKeyError(
                    f"{where}: the host key has CHANGED: known_hosts has "
                    f"{error.expected_key.get_name()} {fingerprint(error.expected_key)}, the "
                    f"host offered {error.key.get_name()} {fingerprint(error.key)}. Refusing to "
                    "connect: this can be a man-in-the-middle attack. If the node was "
                    "reinstalled, remove its old key from known_hosts after checking the new one."
                ) from None
            except paramiko.AuthenticationException as error:
                connection.close()
                raise TransportError(f"{where}: authentication failed: {error}") from None
            except (OSError, paramiko.SSHException, EOFError) as error:
                connection.close()
                reason = str(error) or type(error).__name__
                raise TransportError(f"{where}: cannot connect: {reason}") from None
            transport = connection.client.get_transport()
            if transport is not None:
                transport.set_keepalive(self.options.keepalive_seconds)
                sock = transport.sock
                if isinstance(sock, socket.socket):
                    # Nagle's algorithm plus delayed ACKs cost ~40 ms per round trip.
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connection = connection

    def run(
        self, command: Cmd, *, timeout: float | None = None, stdin: str | None = None
    ) -> Result:
        self.connect()
        shown = command.display(as_root=self.as_root)
        text = command.render(as_root=self.as_root)
        limit = self.options.command_timeout if timeout is None else timeout
        started = time.monotonic()
        transport = self._connection.client.get_transport()
        if transport is None or not transport.is_active():
            self.close()
            raise TransportError(f"{self.node.name}: the SSH connection was lost before `{shown}`")
        try:
            channel = transport.open_session(timeout=self.options.connect_timeout)
            channel.settimeout(_POLL_SECONDS)
            channel.exec_command(text)
            if stdin is not None:
                channel.sendall(stdin.encode())
            channel.shutdown_write()
            stdout, stderr, code = _collect(channel, started + limit)
        except TimeoutError:
            self.close()
            raise TransportError(
                f"{self.node.name}: `{shown}` did not finish within {limit:g} s; the connection "
                "was closed, and the command may still be running on the node"
            ) from None
        except (OSError, paramiko.SSHException, EOFError) as error:
            self.close()
            raise TransportError(
                f"{self.node.name}: the SSH connection failed during `{shown}`: {error}"
            ) from None
        if code == -1 and not transport.is_active():
            # No exit status and the connection is gone: the session was cut, not the command
            # killed by a signal. Whether the command finished on the node is unknown.
            self.close()
            raise TransportError(
                f"{self.node.name}: the SSH connection was lost during `{shown}`; the command"
                " may still be running on the node"
            )
        secrets = command.secrets
        return Result(
            node=self.node.name,
            command=shown,
            exit_code=code,
            stdout=scrub(stdout.decode(errors="replace"), secrets),
            stderr=scrub(stderr.decode(errors="replace"), secrets),
            seconds=time.monotonic() - started,
        )

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _collect(channel: paramiko.Channel, deadline: float) -> tuple[bytes, bytes, int]:
    """Read a channel's stdout and stderr to the end; TimeoutError past the deadline."""
    out: list[bytes] = []
    err: list[bytes] = []
    stdout_open = True
    while stdout_open:
        while channel.recv_stderr_ready():
            err.append(channel.recv_stderr(65536))
        try:
            chunk = channel.recv(65536)
        except TimeoutError:
            if time.monotonic() > deadline:
                channel.close()
                raise
            continue
        if chunk:
            out.append(chunk)
        else:
            stdout_open = False
    if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
        channel.close()
        raise TimeoutError
    while channel.recv_stderr_ready():
        err.append(channel.recv_stderr(65536))
    code = channel.recv_exit_status()
    channel.close()
    # -1: the server sent no exit status (the session was killed by a signal).
    return b"".join(out), b"".join(err), code
