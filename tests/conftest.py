"""Suite-wide ordering: the longest lab modules first, so that parallel workers
(`./dev test` runs whole files per worker) end together instead of one waiting on the other."""

from __future__ import annotations

import pytest

# The lab modules that take longest (each upgrades a lab through several minors).
LONGEST_FIRST = (
    "test_upgrade_faults.py",
    "test_upgrade.py",
    "test_upgrade_multi_cp.py",
    "test_soak.py",
    "test_drain_plan.py",
    "test_static_pods.py",
    "test_etcd_backup.py",
)


def _rank(item: pytest.Item) -> int:
    name = item.path.name
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Stable sort: within a module the tests keep their file order (they share one lab)."""
    items.sort(key=_rank)
