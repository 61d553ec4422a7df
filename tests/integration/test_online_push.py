"""The traffic's push to a FeatureView's online store (kubeloop/sampledata/online.py) on real
Feast (SQLite, tmp_path): the view's SQL computes the pushed features as the backfill does,
each entity's newest event wins, and a later materialization of older rows does not put them
back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.feast_apply_materialize.feast_objects import FeastStoreConfig, open_store
from components.feast_apply_materialize.impl import apply_and_materialize
from kubeloop.sampledata.online import OnlinePush
from tests.support.specs import feature_view_spec

SPEC = feature_view_spec(
    "/unused",
    "SELECT user_id, event_timestamp, created_timestamp, "
    "CAST(clicks AS DOUBLE) AS clicks, price FROM source",
    ["clicks", "price"],
    {"start": "2026-01-01T00:00:00Z"},
)


def _t(text: str) -> pd.Timestamp:
    return pd.Timestamp(f"2026-01-05T{text}", tz="UTC")


def _events(rows: list[tuple[int, str, int, float]]) -> pd.DataFrame:
    """Raw source rows, as the traffic serves them (int clicks, extra columns)."""
    frame = pd.DataFrame(rows, columns=["user_id", "event_timestamp", "clicks", "price"])
    frame["event_timestamp"] = frame["event_timestamp"].map(_t)
    frame["device"] = "web"
    return frame


@pytest.fixture
def store(tmp_path: Path) -> tuple[FeastStoreConfig, Path]:
    """The view applied and materialized from an offline store holding users 1 and 2 at 08:00."""
    offline = tmp_path / "offline" / "user_activity"
    frame = pd.DataFrame(
        {
            "user_id": [1, 2],
            "event_timestamp": [_t("08:00:00")] * 2,
            "clicks": [1.0, 2.0],
            "price": [10.0, 20.0],
        }
    )
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
    frame["created_timestamp"] = frame["event_timestamp"]
    frame["date"] = "2026-01-05"
    frame.to_parquet(offline, partition_cols=["date"], index=False)
    config = FeastStoreConfig(repo_path=str(tmp_path / "feast"))
    _materialize(config, offline)
    return config, offline


def _materialize(config: FeastStoreConfig, offline: Path) -> None:
    view = {**SPEC, "name": "user-activity"}
    apply_and_materialize(
        view, str(offline), config, "2026-01-05T00:00:00Z", "2026-01-05T12:00:00Z"
    )


def _online(config: FeastStoreConfig) -> dict[int, tuple[Any, Any]]:
    answer = (
        open_store(config)
        .get_online_features(
            features=["user_activity:clicks", "user_activity:price"],
            entity_rows=[{"user_id": u} for u in (1, 2, 3)],
        )
        .to_dict()
    )
    return {u: (answer["clicks"][i], answer["price"][i]) for i, u in enumerate(answer["user_id"])}


def test_push_serves_the_newest_event_and_a_materialization_never_regresses_it(
    store: tuple[FeastStoreConfig, Path],
) -> None:
    config, offline = store
    assert _online(config) == {1: (1.0, 10.0), 2: (2.0, 20.0), 3: (None, None)}
    # Without the guard, Feast's SQLite store takes whatever is written last: a
    # materialization of the lake as it was before a push puts the older row back.
    open_store(config).write_to_online_store(
        "user_activity",
        pd.DataFrame(
            {
                "user_id": [2],
                "event_timestamp": [_t("09:30:00")],
                "created_timestamp": [_t("09:30:00")],
                "clicks": [9.0],
                "price": [9.0],
            }
        ),
    )
    _materialize(config, offline)
    assert _online(config)[2] == (2.0, 20.0)

    push = OnlinePush("user-activity", SPEC, config)
    # User 1 twice in one batch (the newer event wins, whatever the order), user 3 is new.
    written = push(
        _events([(1, "09:01:00", 7, 71.0), (1, "09:00:00", 5, 50.0), (3, "09:00:00", 3, 3.5)])
    )
    assert written == 2
    assert _online(config) == {1: (7.0, 71.0), 2: (2.0, 20.0), 3: (3.0, 3.5)}
    # The scheduled backfill materializes the lake as it was before the push: the older
    # 08:00 rows no longer overwrite the pushed ones; a newer write still does.
    _materialize(config, offline)
    assert _online(config) == {1: (7.0, 71.0), 2: (2.0, 20.0), 3: (3.0, 3.5)}
    assert push(_events([(1, "09:02:00", 4, 40.0)])) == 1
    assert _online(config)[1] == (4.0, 40.0)
    assert push(_events([])) == 0


def test_pushed_values_are_the_views_sql_and_types() -> None:
    push = OnlinePush("user-activity", SPEC, FeastStoreConfig(repo_path="/unused"))
    rows = push.features(_events([(1, "09:00:00", 5, 50.0)]))
    assert list(rows.columns) == ["user_id", "event_timestamp", "clicks", "price"]
    assert rows["clicks"].dtype == "float64" and rows["user_id"].dtype == "int64"
    with pytest.raises(ValueError, match="one join key"):
        two = {**SPEC, "entities": [*SPEC["entities"], {"name": "item", "joinKey": "item_id"}]}
        OnlinePush("v", two, FeastStoreConfig(repo_path="/unused"))
