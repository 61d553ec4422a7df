"""The skew check's pure core: settings from the FeatureView, status and events from a verdict."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.monitor_config import ModelConfig, SkewConfig
from operators.api.mlmodel import MLModelStatus, Skew
from operators.backends.monitor import VersionSkew, parse_drift
from operators.mlmodel import skew as core
from operators.mlmodel.rollout import EventType

VIEW = {
    "metadata": {"name": "user-activity"},
    "spec": {
        "entities": [{"name": "user", "joinKey": "user_id"}],
        "source": {"path": "/data/events", "timestampField": "event_timestamp"},
        "features": [{"name": "price", "dtype": "float64"}, {"name": "clicks", "dtype": "int64"}],
        "ttl": "7d",
    },
    "status": {"offlinePath": "/state/offline/default/user-activity/0ea9c0ae"},
}


def test_settings_map_model_columns_onto_the_offline_store() -> None:
    settings = core.skew_settings(Skew(feature_view="user-activity", max_rows=500), VIEW)
    assert settings == SkewConfig(
        entity_key="user_id",
        offline="/state/offline/default/user-activity/0ea9c0ae",
        offline_timestamp="event_timestamp",
        columns={"user_activity__price": "price", "user_activity__clicks": "clicks"},
        ttl_seconds=7 * 86400,
        max_mismatch_fraction=0.01,
        max_rows=500,
    )
    body = ModelConfig(
        stable_version="1",
        candidate_version=None,
        shadow_version=None,
        score_tolerance=0.1,
        skew=settings,
    ).to_json()
    assert body["skew"]["entityKey"] == "user_id" and body["skew"]["ttlSeconds"] == 604800


def test_settings_say_why_not_yet() -> None:
    skew = Skew(feature_view="user-activity")
    assert "not found" in str(core.skew_settings(skew, None))
    unbackfilled = {**VIEW, "status": {}}
    assert "not backfilled" in str(core.skew_settings(skew, unbackfilled))
    two_keys = {**VIEW, "spec": {**VIEW["spec"], "entities": [{"joinKey": "a"}, {"joinKey": "b"}]}}  # type: ignore[dict-item]
    assert "one join key" in str(core.skew_settings(skew, two_keys))


def test_verdict_becomes_status_and_events_only_on_flips() -> None:
    checked = datetime(2026, 11, 21, 19, 0, tzinfo=UTC)
    skewed = VersionSkew(
        is_skew=True,
        pairs=200,
        unmatched_served=3,
        mismatch_fraction={"user_activity__price": 0.4, "user_activity__clicks": 0.0},
        skewed_features=["user_activity__price"],
        checked_at=checked,
    )
    status, events = core.with_skew(MLModelStatus(), "1", skewed)
    assert status.skew is not None and status.skew.is_skew and status.skew.pairs == 200
    assert [(e.type, e.reason) for e in events] == [(EventType.WARNING, "SkewDetected")]
    assert "user_activity__price: 40.0% of 200 rows" in events[0].message
    again, events = core.with_skew(status, "1", skewed)
    assert events == [] and again.skew == status.skew
    no_verdict, events = core.with_skew(status, "1", VersionSkew(message="no entity rows yet"))
    assert no_verdict.skew == status.skew and events == []  # the last verdict stands
    agree = VersionSkew(is_skew=False, pairs=200, checked_at=checked)
    cleared, events = core.with_skew(status, "1", agree)
    assert cleared.skew is not None and not cleared.skew.is_skew
    assert [e.reason for e in events] == ["SkewCleared"]


def test_monitor_answer_carries_the_skew_check() -> None:
    body = {
        "versions": {
            "1": {
                "isDrift": False,
                "checks": {
                    "skew": {
                        "isSkew": True,
                        "pairs": 10,
                        "unmatchedServed": 1,
                        "mismatchFraction": {"a": 0.5},
                        "skewedFeatures": ["a"],
                        "checkedAt": 1_763_751_600.0,
                    }
                },
            },
            "2": {"isDrift": False},
        }
    }
    checks = parse_drift("http://monitor:8080", body)
    skew = checks["1"].skew
    assert skew is not None and skew.is_skew and skew.pairs == 10 and skew.skewed_features == ["a"]
    assert skew.checked_at == datetime.fromtimestamp(1_763_751_600.0, UTC)
    assert checks["2"].skew is None
