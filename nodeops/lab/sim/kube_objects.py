"""Small helpers on Kubernetes objects (plain JSON dicts) shared by the simulated components."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]


def now() -> datetime.datetime:
    """The current time in UTC, truncated to seconds as metav1.Time serialises it."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def rfc3339(moment: datetime.datetime | None = None) -> str:
    """metav1.Time's JSON form, e.g. 2024-01-02T03:04:05Z."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime.datetime | None:
    """Parse an RFC 3339 timestamp; None for empty input."""
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_uid() -> str:
    """A fresh object UID."""
    return str(uuid.uuid4())


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration, as kubectl's AGE column shows it."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        rest = secs % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None) -> str:
    """translateTimestampSince: human duration since `timestamp`, `<unknown>` when unset."""
    moment = parse_time(timestamp)
    if moment is None:
        return "<unknown>"
    return human_duration((datetime.datetime.now(datetime.UTC) - moment).total_seconds())


def meta(obj: Mapping[str, Any]) -> Obj:
    """The object's metadata (empty dict when absent)."""
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def labels(obj: Mapping[str, Any]) -> dict[str, str]:
    """The object's labels."""
    return dict(meta(obj).get("labels") or {})


def condition(obj: Mapping[str, Any], kind: str) -> Obj | None:
    """The status condition of type `kind`, if any."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def condition_true(obj: Mapping[str, Any], kind: str) -> bool:
    """Whether condition `kind` has status True."""
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == "True"


def set_condition(obj: Obj, cond: Obj) -> bool:
    """Set a status condition, keeping lastTransitionTime when the status is unchanged.

    Returns whether anything changed.
    """
    status = obj.setdefault("status", {})
    conds = status.setdefault("conditions", [])
    for i, old in enumerate(conds):
        if old.get("type") == cond["type"]:
            new = {**old, **cond}
            if old.get("status") == cond.get("status") and "lastTransitionTime" in old:
                new["lastTransitionTime"] = old["lastTransitionTime"]
            if new == old:
                return False
            conds[i] = new
            return True
    conds.append({"lastTransitionTime": rfc3339(), **cond})
    return True


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """podutil.IsPodReady: the Ready condition is True."""
    return condition_true(pod, "Ready")


def pod_active(pod: Mapping[str, Any]) -> bool:
    """Not terminal and not being deleted (controller.IsPodActive)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not meta(pod).get("deletionTimestamp")


def controller_ref(obj: Mapping[str, Any]) -> Obj | None:
    """The owner reference with controller: true, if any."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    """A controller owner reference to `owner`, as controllers set it."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta(owner)["name"],
        "uid": meta(owner)["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def node_ready_status(node: Mapping[str, Any]) -> str:
    """The node's Ready condition status: True, False or Unknown (Unknown when absent)."""
    cond = condition(node, "Ready")
    return str(cond.get("status", "Unknown")) if cond else "Unknown"
