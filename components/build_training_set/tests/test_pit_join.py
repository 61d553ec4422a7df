"""Point-in-time join: brute-force reference == Feast path == Spark path, on the hard cases."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from components.build_training_set.impl import join_feast, join_spark, to_canonical_pandas
from components.build_training_set.spec import FeatureRequest, LabelSpec, canonicalize
from components.build_training_set.tests.reference import reference_join
from kubeloop.sampledata.generate import GeneratorConfig, generate_events, labels_from_events

LABELS = LabelSpec(
    timestamp_field="event_timestamp", label_field="label", entity_keys=["user_id", "item_id"]
)


def _t(hhmmss: str) -> pd.Timestamp:
    return pd.Timestamp(f"2026-01-05T{hhmmss}", tz="UTC")


def _write_offline(rows: pd.DataFrame, path: Path) -> str:
    """Date-partitioned Parquet, the layout the backfill writes."""
    rows = rows.copy()
    for column in ("event_timestamp", "created_timestamp"):
        rows[column] = pd.to_datetime(rows[column], utc=True).astype("datetime64[us, UTC]")
    rows["date"] = rows["event_timestamp"].dt.strftime("%Y-%m-%d")
    rows.to_parquet(path, partition_cols=["date"], index=False)
    return str(path)


def _view(name: str, key: str, features: list[tuple[str, str]], ttl: str | None) -> dict:
    return {
        "name": name,
        "entities": [{"name": key.removesuffix("_id"), "joinKey": key, "valueType": "INT64"}],
        "source": {"path": "unused", "timestampField": "event_timestamp"},
        "transformation": {"sql": "SELECT * FROM source"},
        "features": [{"name": n, "dtype": d} for n, d in features],
        "ttl": ttl,
    }


def _hard_case_rows() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    u = [  # user_id, event, created, score, tag
        (1, "10:00:00", "10:00:00", 1, "a"),
        (1, "10:30:00", "10:30:00", 2, "b"),
        (1, "10:30:00", "10:31:00", 3, "c"),  # same event time, created later: wins once visible
        (2, "09:30:00", "09:30:00", 10, "d"),
        (2, "09:50:00", "10:20:00", 20, None),  # late-arriving: invisible until 10:20
        (3, "09:00:00", "09:00:00", 5, "e"),
        (3, "09:30:00", "09:30:00", 6, "f"),
        (3, "09:10:00", "09:40:00", 7, "g"),  # late and older: never beats 09:30
        (4, "15:00:00", "15:00:00", 40, "h"),  # only in the future of every label
        (5, "08:00:00", "08:00:00", 50, "i"),  # event == created == label time
    ]
    user_rows = pd.DataFrame(
        [(k, _t(e), _t(c), s, tag) for k, e, c, s, tag in u],
        columns=["user_id", "event_timestamp", "created_timestamp", "score", "tag"],
    )
    item_rows = pd.DataFrame(
        [(7, _t("06:00:00"), _t("06:00:00"), 1.5), (7, _t("10:15:00"), _t("10:20:00"), 2.5)],
        columns=["item_id", "event_timestamp", "created_timestamp", "price"],
    )
    lb = [  # user_id, item_id, ts, label
        (1, 7, "10:30:00", 0),
        (1, 7, "10:30:00", 1),  # duplicate keys + time: both rows must stay
        (1, 7, "10:31:00", 0),
        (1, 7, "11:29:59", 1),
        (1, 7, "11:31:00", 0),  # 10:30 row is > 1h old: TTL expired
        (2, 7, "10:00:00", 1),
        (2, 7, "10:19:59", 0),
        (2, 7, "10:20:00", 1),
        (3, 7, "09:45:00", 0),
        (4, 8, "10:00:00", 1),  # features exist only later; item 8 has none
        (5, 7, "08:00:00", 0),
        (99, 7, "10:00:00", 1),  # unknown user
    ]
    labels = pd.DataFrame(
        [(u_, i, _t(t), lab) for u_, i, t, lab in lb],
        columns=["user_id", "item_id", "event_timestamp", "label"],
    )
    return labels, user_rows, item_rows


@pytest.fixture(scope="module")
def hard_case(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[pd.DataFrame, list[FeatureRequest], dict]:
    root = tmp_path_factory.mktemp("hard")
    labels, user_rows, item_rows = _hard_case_rows()
    requests = [
        FeatureRequest(
            feature_view=_view(
                "user_stats", "user_id", [("score", "int64"), ("tag", "string")], "1h"
            ),
            offline_path=_write_offline(user_rows, root / "user_stats"),
        ),
        FeatureRequest(
            feature_view=_view("item_stats", "item_id", [("price", "float64")], None),
            offline_path=_write_offline(item_rows, root / "item_stats"),
        ),
    ]
    return labels, requests, {"user_stats": user_rows, "item_stats": item_rows}


def _expected(labels: pd.DataFrame, requests: list[FeatureRequest], offline: dict) -> pd.DataFrame:
    return canonicalize(
        reference_join(labels, "event_timestamp", requests, offline),
        list(labels.columns),
        LABELS,
        requests,
    )


def test_reference_gives_the_hand_computed_answers(hard_case) -> None:
    labels, requests, offline = hard_case
    got = _expected(labels, requests, offline)
    score = {
        (r.user_id, r.event_timestamp.strftime("%H:%M:%S"), r.label): r.user_stats__score
        for r in got.itertuples()
    }
    assert score[(1, "10:30:00", 0)] == 2 and score[(1, "10:30:00", 1)] == 2
    assert score[(1, "10:31:00", 0)] == 3
    assert score[(1, "11:29:59", 1)] == 3
    assert score[(1, "11:31:00", 0)] is pd.NA
    assert score[(2, "10:00:00", 1)] == 10 and score[(2, "10:19:59", 0)] == 10
    assert score[(2, "10:20:00", 1)] == 20
    assert score[(3, "09:45:00", 0)] == 6
    assert score[(4, "10:00:00", 1)] is pd.NA
    assert score[(5, "08:00:00", 0)] == 50
    assert score[(99, "10:00:00", 1)] is pd.NA
    assert len(got) == len(labels)


def test_feast_path_equals_reference_on_hard_cases(hard_case, tmp_path: Path) -> None:
    labels, requests, offline = hard_case
    got = join_feast(labels, LABELS, requests, tmp_path)
    pd.testing.assert_frame_equal(got, _expected(labels, requests, offline))


def test_spark_path_equals_reference_on_hard_cases(hard_case, spark: SparkSession) -> None:
    labels, requests, offline = hard_case
    joined = join_spark(spark, labels, LABELS, requests)
    got = to_canonical_pandas(joined, list(labels.columns), LABELS, requests)
    pd.testing.assert_frame_equal(got, _expected(labels, requests, offline))


@pytest.fixture(scope="module")
def generated(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[pd.DataFrame, list[FeatureRequest], dict]:
    """Generated stream (late rows, skewed keys) plus injected duplicates and equal timestamps."""
    root = tmp_path_factory.mktemp("generated")
    config = GeneratorConfig(
        rows=6000, seed=7, days=3, users=80, items=30, label_fraction=0.1, late_fraction=0.05
    )
    events = generate_events(config)
    labels = labels_from_events(events, config)
    # Hard cases on top: duplicate label rows, and labels exactly at a feature row's event time.
    labels = pd.concat(
        [labels, labels.iloc[:25], events.iloc[100:140][list(labels.columns)]], ignore_index=True
    )
    users = events[
        ["user_id", "event_timestamp", "created_timestamp", "dwell_seconds", "clicks", "device"]
    ].copy()
    users["clicks"] = users["clicks"].astype("int64")
    users.loc[users.index % 17 == 0, "device"] = None  # null feature values
    items = events[["item_id", "event_timestamp", "created_timestamp", "price"]].copy()
    requests = [
        FeatureRequest(
            feature_view=_view(
                "user_activity",
                "user_id",
                [("dwell_seconds", "float64"), ("clicks", "int64"), ("device", "string")],
                "6h",
            ),
            offline_path=_write_offline(users, root / "user_activity"),
        ),
        FeatureRequest(
            feature_view=_view("item_pricing", "item_id", [("price", "float64")], "1d"),
            offline_path=_write_offline(items, root / "item_pricing"),
        ),
    ]
    return labels, requests, {"user_activity": users, "item_pricing": items}


@pytest.mark.slow
def test_both_paths_equal_reference_on_generated_data(
    generated, spark: SparkSession, tmp_path: Path
) -> None:
    labels, requests, offline = generated
    expected = _expected(labels, requests, offline)
    via_feast = join_feast(labels, LABELS, requests, tmp_path)
    via_spark = to_canonical_pandas(
        join_spark(spark, labels, LABELS, requests), list(labels.columns), LABELS, requests
    )
    pd.testing.assert_frame_equal(via_feast, expected)
    pd.testing.assert_frame_equal(via_spark, expected)
    assert len(expected) == len(labels)
    # The data exercises what it is meant to: late rows hidden, missing values, TTL expiry.
    assert expected["user_activity__clicks"].isna().any()
    assert (
        expected["user_activity__device"].isna().sum()
        > expected["user_activity__clicks"].isna().sum()
    )


def test_no_feature_value_from_after_the_label_time(generated, spark: SparkSession) -> None:
    """Tag each feature row with its own times; every joined row's tag must be visible at label time."""
    labels, requests, offline = generated
    users = offline["user_activity"].copy()
    users["e_us"] = users["event_timestamp"].astype("datetime64[us, UTC]").astype("int64")
    users["c_us"] = users["created_timestamp"].astype("datetime64[us, UTC]").astype("int64")
    root = Path(requests[0].offline_path).parent / "tagged"
    view = _view("tagged", "user_id", [("e_us", "int64"), ("c_us", "int64")], None)
    request = FeatureRequest(feature_view=view, offline_path=_write_offline(users, root))
    joined = to_canonical_pandas(
        join_spark(spark, labels, LABELS, [request]), list(labels.columns), LABELS, [request]
    )
    label_us = joined["event_timestamp"].astype("int64")
    found = joined["tagged__e_us"].notna()
    assert found.sum() > len(joined) // 2
    assert (joined.loc[found, "tagged__e_us"] <= label_us[found]).all()
    assert (joined.loc[found, "tagged__c_us"] <= label_us[found]).all()
