"""The task tree that both `invoke` (through tasks.py) and the `nodeops` command serve."""

from __future__ import annotations

from invoke.collection import Collection

from nodeops.settings import DEFAULTS
from nodeops.tasks import drain, etcd, lab, nodes, staticpods, upgrade, vagrant

ns = Collection()
ns.add_task(nodes.facts)
ns.add_task(nodes.run)
ns.add_task(drain.drain_plan)
ns.add_task(upgrade.plan)
ns.add_task(upgrade.upgrade)
ns.add_task(upgrade.upgrade_cluster)
ns.add_task(upgrade.cordon)
ns.add_task(upgrade.uncordon)
ns.add_task(upgrade.drain)
ns.add_task(staticpods.kubelet_config)
ns.add_task(staticpods.static_pod_path)
ns.add_task(staticpods.static_pods)
ns.add_task(staticpods.static_pod_apply)
ns.add_task(staticpods.static_pod_remove)
for t in (etcd.etcd_backup, etcd.etcd_restore, etcd.backup_resources):
    ns.add_task(t)
ns.add_collection(Collection.from_module(lab, name="lab"))
ns.add_collection(Collection.from_module(vagrant, name="vagrant"))
ns.configure({"nodeops": dict(DEFAULTS)})
