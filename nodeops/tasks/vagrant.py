"""The Vagrant lab of real VMs (the Vagrantfile at the top of the repository)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from invoke.tasks import task

from nodeops.errors import InventoryError
from nodeops.tasks.common import reported

#: The repository: where the Vagrantfile is and `vagrant ssh-config` runs.
PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = PROJECT_DIR / "inventories" / "vagrant.yaml"
SSH_CONFIG_TIMEOUT = 300  # seconds; vagrant asks the provider about every machine


@task(
    help={
        "ssh_config": "A file holding `vagrant ssh-config` output (default: run `vagrant "
        "ssh-config` in the repository).",
        "output": "Where to write the inventory (default: inventories/vagrant.yaml).",
        "forwarded": "Reach every node where ssh-config says (e.g. 127.0.0.1:2222) instead of "
        "its private network address.",
    },
)
@reported
def inventory(
    c: Any,
    ssh_config: str | None = None,
    output: str | None = None,
    forwarded: bool = False,
) -> None:
    """Write the nodeops inventory of the Vagrant VMs from `vagrant ssh-config`.

    Each node gets its user, key and roles (cp*/control* machines: control-plane and etcd;
    the others: worker) from ssh-config, and the private network address the Vagrantfile
    gives it (port 22) — NODEOPS_NET_PREFIX as for `vagrant up` — or, with --forwarded or
    for machines the Vagrantfile does not list, the address and port ssh-config reports.

    Vagrant turns host key checking off; nodeops does not. The inventory names
    inventories/vagrant.known_hosts: run the first command with --accept-new-host-keys
    (trust on first use, recorded 0600), e.g.
    `nodeops facts --all --inventory inventories/vagrant.yaml --accept-new-host-keys`.
    """
    from nodeops import vagrant  # imported here: YAML costs start-up time

    text = _read_ssh_config(ssh_config)
    hosts = vagrant.parse_ssh_config(text)
    prefix = os.environ.get("NODEOPS_NET_PREFIX") or vagrant.DEFAULT_NET_PREFIX
    private = {} if forwarded else vagrant.private_addresses(prefix)
    nodes = vagrant.to_nodes(hosts, private=private, key_exists=os.path.isfile)
    target = Path(output).absolute() if output else DEFAULT_OUTPUT
    rendered = vagrant.render_inventory(
        nodes, inventory_dir=str(target.parent), project_dir=str(PROJECT_DIR)
    )
    _write(target, rendered)
    for host, node in zip(hosts, nodes, strict=True):
        where = "private network" if node.private else "ssh-config"
        print(f"{node.name}: {node.user or '-'}@{node.address}:{node.port} ({where})", end="")
        print(f" roles {','.join(node.roles)} key {node.key or '-'}")
        if node.key is not None and not os.path.isfile(node.key):
            print(f"  warning: key {node.key} does not exist (yet)")
        if host.proxy is not None:
            print(f"  warning: Vagrant reaches {node.name} through a proxy ({host.proxy});")
            print("  the inventory does not: nodeops must reach that address directly")
    print(f"inventory: {target}")
    known_hosts = target.parent / vagrant.KNOWN_HOSTS
    if known_hosts.exists():
        print(f"{known_hosts} exists; if the VMs were re-created, delete it and accept again")
    print(f"first contact: nodeops facts --all --inventory {_shown(target)} --accept-new-host-keys")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read_ssh_config(given: str | None) -> str:
    if given is not None:
        try:
            return Path(given).read_text(encoding="utf-8")
        except OSError as error:
            raise InventoryError(f"cannot read {given}: {error.strerror or error}") from None
        except UnicodeDecodeError:
            raise InventoryError(f"{given} is not UTF-8 text") from None
    program = shutil.which("vagrant")
    if program is None:
        raise InventoryError(
            "vagrant is not installed (no `vagrant` on PATH): install Vagrant and a provider"
            " (libvirt or VirtualBox) and run `vagrant up`, or pass --ssh-config FILE with"
            " saved `vagrant ssh-config` output"
        )
    try:
        done = subprocess.run(
            [program, "ssh-config"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=SSH_CONFIG_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InventoryError(
            f"`vagrant ssh-config` did not answer in {SSH_CONFIG_TIMEOUT} s"
        ) from None
    except OSError as error:
        raise InventoryError(f"cannot run {program}: {error.strerror or error}") from None
    if done.returncode != 0:
        detail = " ".join(done.stderr.split())[-600:] or f"exit code {done.returncode}"
        raise InventoryError(
            f"`vagrant ssh-config` failed in {PROJECT_DIR} (are the VMs up? `vagrant status`):"
            f" {detail}"
        )
    return done.stdout


def _write(target: Path, text: str) -> None:
    """Write the inventory atomically, never over a file this task did not write."""
    from nodeops import vagrant

    if target.exists():
        try:
            with target.open(encoding="utf-8") as handle:
                first = handle.readline().rstrip("\n")
        except (OSError, UnicodeDecodeError):
            first = ""
        if first != vagrant.HEADER:
            raise InventoryError(
                f"{target} exists and was not written by `invoke vagrant.inventory`; move it"
                " away or pass --output elsewhere"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
