"""Feast apply + materialize on real Feast: SQLite online store, and the real Redis."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from pydantic import ValidationError

from components.feast_apply_materialize.feast_objects import FeastStoreConfig, open_store
from components.feast_apply_materialize.impl import FeastError, apply_and_materialize

REDIS = "127.0.0.1:6379"


def _t(text: str) -> pd.Timestamp:
    return pd.Timestamp(f"2026-01-05T{text}", tz="UTC")


VIEW: dict[str, Any] = {
    "name": "user-activity",
    "entities": [{"name": "user", "joinKey": "user_id", "valueType": "INT64"}],
    "source": {"path": "/unused", "timestampField": "ts"},
    "transformation": {"sql": "SELECT * FROM source"},
    "features": [{"name": "clicks", "dtype": "int64"}, {"name": "device", "dtype": "string"}],
    "ttl": "1d",
}


@pytest.fixture
def offline_store(tmp_path: Path) -> str:
    rows = pd.DataFrame(
        [
            (1, _t("08:00:00"), _t("08:00:00"), 3, "ios"),
            (1, _t("09:00:00"), _t("09:00:00"), 5, "web"),
            (
                1,
                _t("09:00:00"),
                _t("09:00:05"),
                6,
                "android",
            ),  # same event time, created later wins
            (2, _t("07:00:00"), _t("07:00:00"), 1, "ios"),
            (2, _t("13:00:00"), _t("13:00:00"), 9, "web"),  # outside the materialized window
        ],
        columns=["user_id", "event_timestamp", "created_timestamp", "clicks", "device"],
    )
    for column in ("event_timestamp", "created_timestamp"):
        rows[column] = rows[column].astype("datetime64[us, UTC]")
    rows["date"] = rows["event_timestamp"].dt.strftime("%Y-%m-%d")
    path = tmp_path / "offline" / "user_activity"
    rows.to_parquet(path, partition_cols=["date"], index=False)
    return str(path)


def _online(config: FeastStoreConfig, users: list[int]) -> dict[str, list]:
    store = open_store(config)
    features = ["user_activity:clicks", "user_activity:device"]
    return store.get_online_features(
        features=features, entity_rows=[{"user_id": u} for u in users]
    ).to_dict()


def test_sqlite_apply_and_materialize_serves_latest_values(
    offline_store: str, tmp_path: Path
) -> None:
    config = FeastStoreConfig(project="kl_sqlite", repo_path=str(tmp_path / "repo"))
    summary = apply_and_materialize(
        VIEW, offline_store, config, "2026-01-05T00:00:00Z", "2026-01-05T12:00:00Z"
    )
    assert summary.feature_view == "user_activity"
    assert summary.entities == ["user"]
    online = _online(config, [1, 2, 3])
    assert online["clicks"] == [6, 1, None]
    assert online["device"] == ["android", "ios", None]
    # Re-applying the same definition and window is harmless and gives the same values.
    apply_and_materialize(
        VIEW, offline_store, config, "2026-01-05T00:00:00Z", "2026-01-05T12:00:00Z"
    )
    assert _online(config, [1, 2])["clicks"] == [6, 1]
    views = open_store(config).list_feature_views()
    assert [v.name for v in views] == ["user_activity"]
    assert views[0].ttl == pd.Timedelta("1d")


def test_redis_online_store(offline_store: str, tmp_path: Path) -> None:
    project = f"kltest_{uuid.uuid4().hex[:10]}"
    config = FeastStoreConfig(
        project=project,
        repo_path=str(tmp_path / "repo"),
        online_store="redis",
        redis_connection_string=REDIS,
    )
    client = redis.Redis(host="127.0.0.1", port=6379)
    store = None
    try:
        apply_and_materialize(
            VIEW, offline_store, config, "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"
        )
        online = _online(config, [1, 2])
        assert online["clicks"] == [6, 9]
        assert online["device"] == ["android", "web"]
        assert any(True for _ in client.scan_iter(match=f"*{project}".encode()))
    finally:
        store = open_store(config)
        store.teardown()
    assert not any(True for _ in client.scan_iter(match=f"*{project}".encode()))


def test_missing_offline_store_is_named(tmp_path: Path) -> None:
    config = FeastStoreConfig(project="kl_missing", repo_path=str(tmp_path / "repo"))
    missing = str(tmp_path / "nope")
    with pytest.raises(FeastError, match="offline store .*nope.* does not exist"):
        apply_and_materialize(VIEW, missing, config, "2026-01-05", "2026-01-06")


def test_bad_store_and_window_are_named(offline_store: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="redisConnectionString"):
        FeastStoreConfig(project="p", repo_path=str(tmp_path), online_store="redis")
    config = FeastStoreConfig(project="p", repo_path=str(tmp_path / "repo"))
    with pytest.raises(FeastError, match="window start .* is not before end"):
        apply_and_materialize(VIEW, offline_store, config, "2026-01-06", "2026-01-05")
    with pytest.raises(ValueError, match="features.1.dtype"):
        bad = {**VIEW, "features": [VIEW["features"][0], {"name": "x", "dtype": "decimal"}]}
        apply_and_materialize(bad, offline_store, config, "2026-01-05", "2026-01-06")


@pytest.mark.slow
def test_kfp_component_runs_locally(offline_store: str, tmp_path: Path) -> None:
    """The thin KFP component, executed by kfp.local in a subprocess, calls the implementation."""
    from kfp import local

    from components.feast_apply_materialize.component import feast_apply_materialize

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    store = {"project": "kl_kfp", "repoPath": str(tmp_path / "repo")}
    task = feast_apply_materialize(
        feature_view=VIEW,
        offline_path=offline_store,
        store=store,
        start="2026-01-05T00:00:00Z",
        end="2026-01-05T12:00:00Z",
    )
    summary = json.loads(task.output)
    assert summary["feature_view"] == "user_activity"
    assert _online(FeastStoreConfig.model_validate(store), [1])["clicks"] == [6]
