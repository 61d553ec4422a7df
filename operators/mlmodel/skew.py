"""Pure core of the training-serving skew check: its settings from the FeatureView, its status.

The monitor pairs each served row (by the FeatureView's join key, at serving time) with the
offline store's row for the same entity as of that time; `monitoring.py` pushes the settings
built here and turns the monitor's verdict into `status.skew` and events. No I/O here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from components.spark_feature_backfill.definition import CREATED_TIMESTAMP, training_column
from contracts.feature_serving import FETCHED_AT_INPUT
from contracts.monitor_config import SkewConfig
from operators.api.common import parse_duration
from operators.api.mlmodel import MLModelStatus, Skew, SkewStatus
from operators.mlmodel.rollout import Event, EventType

if TYPE_CHECKING:  # the monitor client's parsed answer; read here, never fetched
    from operators.backends.monitor import VersionSkew

REASON_SKEW_DETECTED = "SkewDetected"
REASON_SKEW_CLEARED = "SkewCleared"


def skew_settings(
    skew: Skew,
    feature_view: dict[str, Any] | None,
    only: list[str] | None = None,
    from_feast: bool = False,
) -> SkewConfig | str:
    """The monitor's skew settings, or why there are none yet (the reason is logged).
    ``only``: compare just these features (the ones serving fills from Feast).

    ``from_feast`` (serving fills this view from its online store): each served row is paired
    at the time the transformer read the store (its ``FETCHED_AT_INPUT``), not when the log
    reached the monitor, with the offline row *known* latest by then (created timestamp):
    a training row sees a lake row only once it is created (``build_training_set``), and
    neither can the online store before the row is written there. By event time the check
    would pair a row served a second ago, which no store knew yet, and read skew on every
    busy entity.

    Raises pydantic's ValidationError for settings the monitor would refuse."""
    if feature_view is None:
        return f"FeatureView {skew.feature_view!r} not found"
    spec = feature_view.get("spec") or {}
    offline = (feature_view.get("status") or {}).get("offlinePath")
    if not offline:
        return f"FeatureView {skew.feature_view!r} has no offline store yet (not backfilled)"
    keys = [e.get("joinKey") for e in spec.get("entities") or []]
    if len(keys) != 1 or not keys[0]:
        return f"FeatureView {skew.feature_view!r}: the skew check pairs rows on one join key, got {keys}"
    features = [f.get("name") for f in spec.get("features") or [] if f.get("name")]
    if only:
        features = [f for f in features if f in only]
    if not features:
        return f"FeatureView {skew.feature_view!r} has none of the features {only}"
    event_ts = str((spec.get("source") or {}).get("timestampField") or "event_timestamp")
    return SkewConfig(
        entity_key=str(keys[0]),
        timestamp_key=FETCHED_AT_INPUT if from_feast else None,
        offline=str(offline),
        # The offline store always has the created column (the event time where the source
        # has none: spark_feature_backfill).
        offline_timestamp=CREATED_TIMESTAMP if from_feast else event_ts,
        columns={training_column(skew.feature_view, f): f for f in features},
        ttl_seconds=parse_duration(str(spec.get("ttl") or "30d")).total_seconds(),
        max_mismatch_fraction=skew.max_mismatch_fraction,
        max_rows=skew.max_rows,
        offline_complete_until=_offline_fresh(feature_view) if _scheduled(spec) else None,
    )


def _scheduled(spec: dict[str, Any]) -> bool:
    """Incremental backfills will bring rows newer than today's freshness, so a row served
    after it waits for them. A view backfilled once is as complete as it will be: holding
    its rows back would hold them forever, so they are compared with what is there."""
    return bool((spec.get("backfill") or {}).get("schedule"))


def _offline_fresh(feature_view: dict[str, Any]) -> float | None:
    """status.freshness.offline (epoch s): every row created before it is in the offline
    store. A row served later may pair with one the next backfill brings: not compared yet."""
    text = ((feature_view.get("status") or {}).get("freshness") or {}).get("offline")
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def skew_status(check: VersionSkew) -> SkewStatus:
    return SkewStatus(
        is_skew=bool(check.is_skew),
        pairs=check.pairs,
        unmatched_served=check.unmatched_served,
        mismatch_fraction=dict(check.mismatch_fraction),
        skewed_features=list(check.skewed_features),
        checked_at=check.checked_at,
        message=check.message,
    )


def with_skew(
    status: MLModelStatus, version: str, check: VersionSkew | None
) -> tuple[MLModelStatus, list[Event]]:
    """status.skew from the stable version's check; an event only when the verdict flips.
    A check without a verdict (no served entity rows yet) keeps the last one."""
    if check is None or check.is_skew is None:
        return status, []
    was = bool(status.skew and status.skew.is_skew)
    events = []
    if check.is_skew and not was:
        worst = max(check.mismatch_fraction.items(), key=lambda kv: kv[1], default=("-", 0.0))
        message = (
            f"training-serving skew on version {version}: {', '.join(check.skewed_features)} "
            f"(worst {worst[0]}: {worst[1]:.1%} of {check.pairs} rows disagree with the "
            "offline store)"
        )
        events.append(Event(EventType.WARNING, REASON_SKEW_DETECTED, message))
    elif was and not check.is_skew:
        message = f"served features of version {version} agree with the offline store again"
        events.append(Event(EventType.NORMAL, REASON_SKEW_CLEARED, message))
    return status.model_copy(update={"skew": skew_status(check)}), events
