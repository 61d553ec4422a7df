"""Status writes as proper JSON merge patches (RFC 7386), shared by the FeatureView and
Experiment shells.

Kopf sends `patch.status` as a merge patch, which merges nested objects: a key the new status
no longer has (the previous run's `rows`, say) would survive unless it is sent as null. Only
what changed is sent, so a timer that observes nothing new writes nothing.
"""

from __future__ import annotations

from typing import Any

import kopf

from operators.api.common import StatusBase


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns `old` into `new` (lists are replaced whole)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif before != value:
            patch[key] = value
    return patch


def write_status(body: kopf.Body, patch: kopf.Patch, status: StatusBase) -> dict[str, Any]:
    """Patch the object's status to `status`; returns what was sent."""
    diff = merge_patch(dict(body.get("status") or {}), status.to_k8s())
    for key, value in diff.items():
        patch.status[key] = value
    return diff
