"""Defaults operators change, and how a task turns its options into connection settings.

`invoke.yaml` at the top of the repository shows the same defaults; Invoke merges it (and
`-f FILE`, and `NODEOPS_*`/`INVOKE_*` environment variables) over these.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodeops.inventory import Inventory
    from nodeops.transport import SSHOptions

DEFAULTS: dict[str, Any] = {
    "inventory": "inventories/lab.yaml",
    "parallel": 32,
    "connect_timeout": 10,
    "command_timeout": 600,
    "keepalive": 15,
    "accept_new_host_keys": False,
    "drain_timeout": 600,
    "max_unavailable": "1",
    "journal_dir": "~/.local/state/nodeops/journal",
    "dpkg_lock_timeout": 120,
    "ready_timeout": 300,
    "etcd_backup_dir": "~/.local/share/nodeops/etcd-backups",
    "etcd_backup_keep": 7,
    "etcd_restore_timeout": 180,
    "resource_backup_dir": "~/.local/share/nodeops/resource-backups",
}


def setting(config: Any, key: str) -> Any:
    """A nodeops setting from an Invoke config, falling back to the built-in default."""
    section = config.get("nodeops", {}) if config is not None else {}
    return section.get(key, DEFAULTS[key])


def inventory_path(config: Any, given: str | None) -> Path:
    """The inventory a task uses: --inventory, then $NODEOPS_INVENTORY, then the config."""
    return Path(given or os.environ.get("NODEOPS_INVENTORY") or setting(config, "inventory"))


def ssh_options(
    config: Any, inventory: Inventory, *, accept_new_host_keys: bool = False
) -> SSHOptions:
    """Connection settings for a run from the config and the inventory."""
    from nodeops.transport import SSHOptions  # imported here: paramiko costs start-up time

    accept = accept_new_host_keys or bool(setting(config, "accept_new_host_keys"))
    return SSHOptions(
        connect_timeout=float(setting(config, "connect_timeout")),
        command_timeout=float(setting(config, "command_timeout")),
        keepalive_seconds=int(setting(config, "keepalive")),
        known_hosts=inventory.known_hosts,
        accept_new_host_keys=accept,
        # New keys go to the inventory's own known_hosts when it names one.
        record_new_host_keys_to=inventory.known_hosts[0] if inventory.known_hosts else None,
        use_ssh_config=inventory.use_ssh_config,
    )


def open_inventory(config: Any, given: str | None) -> Inventory:
    """Load the inventory a task was pointed at."""
    from nodeops.inventory import load_inventory  # imported here: YAML costs start-up time

    return load_inventory(inventory_path(config, given))
