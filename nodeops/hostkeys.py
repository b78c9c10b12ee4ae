"""Host key trust: refuse unknown and changed keys; accept new ones only when asked."""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import paramiko
from paramiko.hostkeys import InvalidHostKey

from nodeops.errors import HostKeyError

USER_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
SYSTEM_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")

# Threads of one run may record keys for several new hosts at once.
_record_lock = threading.Lock()


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint as OpenSSH prints it: `SHA256:` and unpadded base64."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def load_known_hosts(client: paramiko.SSHClient, extra: Iterable[Path] = ()) -> frozenset[str]:
    """Load the user's, the system's and any extra known_hosts files into a client.

    They are loaded as "system" keys, so paramiko never rewrites them. Returns the keys
    (base64) that a `@revoked` line revokes: those are left out of the loaded keys, so a
    host offering one is unknown, and HostKeyPolicy refuses it. `@cert-authority` lines are
    skipped: paramiko cannot check host certificates, so a host trusted only through a CA
    stays unknown (refused) instead of the whole file being unreadable.
    """
    texts: list[tuple[Path, str]] = []
    for path in (USER_KNOWN_HOSTS, SYSTEM_KNOWN_HOSTS, *extra):
        resolved = path.expanduser()
        if resolved.is_file():
            try:
                texts.append((resolved, resolved.read_text(encoding="utf-8", errors="replace")))
            except OSError as error:
                raise HostKeyError(f"cannot read known_hosts file {resolved}: {error}") from None
    revoked = frozenset(key for _, text in texts for key in _marked(text, "@revoked"))
    for resolved, text in texts:
        plain = [line for line in text.splitlines() if _plain_key(line, revoked)]
        # paramiko loads host keys from a file only: a private temp copy of the plain lines.
        with tempfile.NamedTemporaryFile("w", prefix="nodeops-known-hosts.") as copy:
            copy.write("".join(line + "\n" for line in plain))
            copy.flush()
            try:
                client.load_system_host_keys(copy.name)
            except (OSError, paramiko.SSHException, InvalidHostKey) as error:
                raise HostKeyError(f"cannot read known_hosts file {resolved}: {error}") from None
    return revoked


def _marked(text: str, marker: str) -> Iterator[str]:
    """The keys (base64) of a known_hosts text's lines with that marker."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == marker:
            yield fields[3]


def _plain_key(line: str, revoked: frozenset[str]) -> bool:
    """Whether a known_hosts line is a plain host key entry that is not revoked."""
    fields = line.split()
    if not fields or fields[0].startswith(("#", "@")):
        return False
    return not (len(fields) >= 3 and fields[2] in revoked)


def make_private_dirs(path: Path) -> None:
    """Create a directory and any missing parents, each 0700 whatever the umask.

    mkdir(parents=True) gives parents 0777 & ~umask (world-writable under umask 000); the
    umask itself is left alone, as it is shared by every thread of the run.
    """
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another run: theirs to keep


def known_hosts_name(hostname: str, port: int) -> str:
    """The host as known_hosts names it: `host`, or `[host]:port` off port 22."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def record_host_key(path: Path, host: str, key: paramiko.PKey) -> None:
    """Add one host key line to a known_hosts file: atomically, mode 0600."""
    path = path.expanduser()
    line = f"{host} {key.get_name()} {key.get_base64()}\n"
    with _record_lock:
        make_private_dirs(path.parent)
        existing = path.read_text() if path.exists() else ""
        if line in existing.splitlines(keepends=True):
            return
        if existing and not existing.endswith("\n"):
            existing += "\n"
        handle, temp = tempfile.mkstemp(prefix=".known_hosts.", dir=path.parent)
        try:
            with os.fdopen(handle, "w") as out:
                out.write(existing + line)
            os.chmod(temp, 0o600)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """What to do with a host whose key no known_hosts file has.

    By default: refuse, naming the host and the key's fingerprint, before authenticating,
    so no credential is ever offered to it. With `accept_new`, trust it on first use and
    record it. A *changed* key never reaches this policy: paramiko refuses it itself.
    """

    def __init__(
        self,
        *,
        accept_new: bool = False,
        record_to: Path | None = None,
        revoked: frozenset[str] = frozenset(),
    ) -> None:
        self.accept_new = accept_new
        self.record_to = record_to or USER_KNOWN_HOSTS
        self.revoked = revoked

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        described = f"{key.get_name()} key {fingerprint(key)}"
        if key.get_base64() in self.revoked:
            raise HostKeyError(
                f"{hostname}: the host key ({described}) is REVOKED in known_hosts (@revoked). "
                "Refusing to connect, whatever --accept-new-host-keys says."
            )
        if not self.accept_new:
            raise HostKeyError(
                f"{hostname}: unknown host key ({described}). Refusing to connect. Check the "
                "fingerprint on the node (`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`), then add "
                "it to known_hosts, or pass --accept-new-host-keys to trust keys seen for the "
                "first time."
            )
        record_host_key(self.record_to, hostname, key)
        client.get_host_keys().add(hostname, key.get_name(), key)
