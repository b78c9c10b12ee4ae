"""The naive floor: Fabric's ThreadingGroup runs each read on every node, one read at a time.

Usage: python fabric_naive.py HOSTS.json COMMANDS.json. HOSTS.json is
{"user", "key", "known_hosts", "hosts": [address, ...]}; COMMANDS.json a list of [name,
shell command] pairs. Host keys come from the lab's known_hosts; an unknown key is refused.
"""

from __future__ import annotations

import json
import sys

import paramiko
from fabric import ThreadingGroup


def main(hosts_file: str, commands_file: str) -> int:
    """Run every command on every host; exit 1 unless each host answered each command."""
    with open(hosts_file, encoding="utf-8") as f:
        spec = json.load(f)
    with open(commands_file, encoding="utf-8") as f:
        commands = [command for _, command in json.load(f)]
    group = ThreadingGroup(
        *spec["hosts"],
        user=spec["user"],
        connect_kwargs={
            "key_filename": spec["key"],
            "look_for_keys": False,
            "allow_agent": False,
        },
        connect_timeout=30,
    )
    for connection in group:
        # Fabric trusts any new host key by default; the lab's known_hosts decides here.
        connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        connection.client.load_host_keys(spec["known_hosts"])
    answers = 0
    try:
        for command in commands:
            results = group.run(command, hide=True, warn=True, in_stream=False)
            answers += len(results)
    finally:
        group.close()
    expected = len(spec["hosts"]) * len(commands)
    print(f"answers {answers}/{expected}")
    return 0 if answers == expected else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
