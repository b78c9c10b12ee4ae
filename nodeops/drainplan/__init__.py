"""What a drain will do to each pod: ignored, evicted and where to, lost, blocked, or Pending.

Pure: computed from `kubectl get nodes,pods,poddisruptionbudgets -A -o json` items, with
kubectl drain's filters, the eviction subresource's PodDisruptionBudget checks and the
scheduler's NodeUnschedulable, TaintToleration, NodeAffinity and NodeResourcesFit filters.
Budgets are replayed as a real drain meets them: kubectl retries a refused eviction every 5s,
so a pod is `blocked` only when nothing can free its budget (it allows no disruption even
with every expected pod healthy, or the replacements it waits for stay Pending or are never
made); a pod that waits for a replacement to be Ready is `evicted`, marked `waits`.
"""

from nodeops.drainplan.matching import (
    NO_EXECUTE,
    NO_SCHEDULE,
    PREFER_NO_SCHEDULE,
    SelectorError,
    label_selector_matches,
    matches_node_selector_term,
    matches_required_affinity,
    parse_selector,
    preferred_affinity_score,
    requirement_matches,
    taints_tolerated,
    tolerates,
    toleration_tolerates,
    untolerated_taint,
)
from nodeops.drainplan.plan import (
    DAEMONSET_FATAL,
    EVICTION_REFUSED,
    LOCAL_STORAGE_FATAL,
    ROW_HEADERS,
    UNMANAGED_FATAL,
    UNMANAGED_FATAL_LEGACY,
    DrainOptions,
    DrainPlan,
    DrainPlanError,
    FateKind,
    PdbImpact,
    PodFate,
    Verdict,
    plan_drain,
)
from nodeops.drainplan.quantity import QuantityError, parse_quantity, scheduler_units
from nodeops.drainplan.resources import (
    fits_resources,
    insufficient_resources,
    node_allocatable,
    pod_requests,
    resource_list,
)

__all__ = [
    "DAEMONSET_FATAL",
    "EVICTION_REFUSED",
    "LOCAL_STORAGE_FATAL",
    "NO_EXECUTE",
    "NO_SCHEDULE",
    "PREFER_NO_SCHEDULE",
    "ROW_HEADERS",
    "UNMANAGED_FATAL",
    "UNMANAGED_FATAL_LEGACY",
    "DrainOptions",
    "DrainPlan",
    "DrainPlanError",
    "FateKind",
    "PdbImpact",
    "PodFate",
    "QuantityError",
    "SelectorError",
    "Verdict",
    "fits_resources",
    "insufficient_resources",
    "label_selector_matches",
    "matches_node_selector_term",
    "matches_required_affinity",
    "node_allocatable",
    "parse_quantity",
    "parse_selector",
    "plan_drain",
    "pod_requests",
    "preferred_affinity_score",
    "requirement_matches",
    "resource_list",
    "scheduler_units",
    "taints_tolerated",
    "tolerates",
    "toleration_tolerates",
    "untolerated_taint",
]
