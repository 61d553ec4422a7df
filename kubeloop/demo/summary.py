"""The demo's machine-readable result, `report/summary.json`: did the retrain recover?

Every figure is the monitor's, on the labels the traffic sent to its feedback API joined to
the predictions each version made — what production knows, never the generator's ground
truth:

- ``auc.v1_pre_shift``: v1's AUC on its whole window, asked at the moment of the shift
  (``GET …/quality``: every labeled row then was served before the shift);
- ``auc.v1_post_shift`` and ``auc.v2_post_shift``: each version's AUC on the rows it served
  since v2 first served (``GET …/quality?since=``: shadow and canary, after the shift — the
  same period and the same world for both);
- ``paired_p``: the label gate's paired comparison (``GET …/compare``, design ``paired``, since
  the same moment: v2's shadow scored the very requests v1 answered), the two-sided p-value
  of its DeLong z statistic. Null with the reason when v2 never served.

`build_summary` is pure (the monitor's answers in, a dict out); the fetches are the shell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import httpx

SUMMARY_JSON = "summary.json"


def version_auc(report: Mapping[str, Any] | None, version: str | None) -> tuple[float | None, int]:
    """A version's AUC and labeled rows in a QualityReport (camelCase wire form)."""
    for entry in (report or {}).get("versions") or []:
        if version is not None and entry.get("version") == version:
            value = (entry.get("auc") or {}).get("value")
            return (None if value is None else round(float(value), 4)), int(
                entry.get("labeled") or 0
            )
    return None, 0


def paired_p_value(comparison: Mapping[str, Any] | None) -> float | None:
    """Two-sided p of estimate / sqrt(variance) (the monitor's DeLong paired variance)."""
    if not comparison:
        return None
    estimate, variance = comparison.get("estimate"), comparison.get("variance")
    if not isinstance(estimate, int | float) or not isinstance(variance, int | float):
        return None
    if variance <= 0:
        return 0.0 if estimate != 0 else 1.0
    return math.erfc(abs(estimate) / math.sqrt(variance) / math.sqrt(2))


def skew_summary(checks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """The training-serving skew checks the demo saw (MLModel status.skew, one per checkedAt):
    how many, the worst feature's mismatch fraction over all of them, and the last check."""
    if not checks:
        return None
    ordered = [checks[k] for k in sorted(checks)]

    def worst(check: Mapping[str, Any]) -> float:
        return max((float(v) for v in (check.get("mismatchFraction") or {}).values()), default=0.0)

    # A check with no pairs (every served row newer than the offline store) has no verdict.
    last = next((c for c in reversed(ordered) if c.get("pairs")), ordered[-1])
    return {
        "checks": len(ordered),
        "flagged": sum(1 for c in ordered if c.get("isSkew")),
        "max_mismatch_fraction": max(worst(c) for c in ordered),
        "mean_mismatch_fraction": round(sum(worst(c) for c in ordered) / len(ordered), 6),
        "last": {
            "checked_at": last.get("checkedAt"),
            "pairs": last.get("pairs"),
            "unmatched_served": last.get("unmatchedServed"),
            "mismatch_fraction": dict(last.get("mismatchFraction") or {}),
            "is_skew": bool(last.get("isSkew")),
        },
    }


def build_summary(
    *,
    v1: str | None,
    v2: str | None,
    at_shift: Mapping[str, Any] | None,
    post_shift: Mapping[str, Any] | None,
    comparison: Mapping[str, Any] | None,
    since: float | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`at_shift`: the QualityReport asked at the shift; `post_shift`: the one asked at the end
    with `since` = v2's first serving moment (epoch s); `comparison`: the paired Comparison."""
    reasons: dict[str, str] = {}
    auc_pre, n_pre = version_auc(at_shift, v1)
    auc_v1, n_v1 = version_auc(post_shift, v1)
    auc_v2, n_v2 = version_auc(post_shift, v2)
    if at_shift is None:
        reasons["v1_pre_shift"] = "the demo did not reach the shift (or the monitor did not answer)"
    elif auc_pre is None:
        reasons["v1_pre_shift"] = f"the monitor had {n_pre} labeled rows of v{v1} at the shift"
    if v2 is None:
        reasons["v2"] = "no retrained version was registered"
    elif since is None:
        reasons["v2"] = f"v{v2} never served (it never entered the rollout)"
    for name, value, n, version in (
        ("v1_post_shift", auc_v1, n_v1, v1),
        ("v2_post_shift", auc_v2, n_v2, v2),
    ):
        if value is None:
            reasons[name] = reasons.get("v2") or (
                f"the monitor has {n} labeled rows of v{version} since v{v2} first served"
            )
    p = paired_p_value(comparison)
    if p is None:
        reasons["paired_p"] = reasons.get("v2") or (
            "no comparison from the monitor"
            if not comparison
            else f"the monitor's paired comparison has no estimate ({comparison.get('n')} pairs)"
        )
    drop = None if auc_pre is None or auc_v1 is None else round(auc_pre - auc_v1, 4)
    recovered = None
    if drop is not None and drop > 0 and auc_v2 is not None and auc_v1 is not None:
        recovered = round((auc_v2 - auc_v1) / drop, 3)
    paired = None
    if comparison:
        paired = {k: comparison.get(k) for k in ("n", "estimate", "variance", "method", "since")}
    return {
        "versions": {"v1": v1, "v2": v2},
        "auc": {"v1_pre_shift": auc_pre, "v1_post_shift": auc_v1, "v2_post_shift": auc_v2},
        "labeled": {"v1_pre_shift": n_pre, "v1_post_shift": n_v1, "v2_post_shift": n_v2},
        "drop": drop,
        "recovered_fraction": recovered,
        "paired_p": p,
        "paired": paired,
        "post_shift_since": since,
        "reasons": reasons,
        **(dict(extra) if extra else {}),
    }


def fetch_quality(
    http: httpx.Client, monitor_url: str, namespace: str, model: str, since: float | None = None
) -> dict[str, Any]:
    """The monitor's QualityReport (with `since`: on the rows served since then)."""
    params = {} if since is None else {"since": str(since)}
    answer = http.get(
        f"{monitor_url.rstrip('/')}/v1/models/{namespace}/{model}/quality",
        params=params,
        timeout=10,
    )
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def fetch_comparison(
    http: httpx.Client,
    monitor_url: str,
    namespace: str,
    model: str,
    *,
    candidate: str,
    stable: str,
    since: float,
) -> dict[str, Any]:
    """The monitor's paired AUC comparison of candidate against stable since `since`."""
    answer = http.get(
        f"{monitor_url.rstrip('/')}/v1/models/{namespace}/{model}/compare",
        params={
            "candidate": candidate,
            "stable": stable,
            "metric": "auc",
            "design": "paired",
            "since": str(since),
        },
        timeout=10,
    )
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body
