"""DuckDB and Spark give identical results, row for row, on the same inputs.

Point-in-time join: hypothesis-generated offline stores and labels on a coarse minute grid, so
ties on (event, created) time, exact TTL boundaries, late rows, duplicate labels and feature
rows, NULL values and NULL created/event times, labels with nothing visible (empty windows) and
two feature views come up in most examples; both results in canonical form
(``spec.canonicalize``) must be equal. The two traps found while writing the DuckDB join are
named cases. Backfill: every transformation SQL of ``examples/``, the sample views and the
tests, on the same generated events, both engines, same offline rows.

Size: ``KUBELOOP_DIFF_EXAMPLES`` (default 12, about a minute with Spark's jobs; CI-sized) sets
the number of hypothesis examples; raise it for a longer hunt.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from components.build_training_set.impl import join_duckdb, join_spark, to_canonical_pandas
from components.build_training_set.pit_duckdb import connect
from components.build_training_set.spec import FeatureRequest, LabelSpec
from components.build_training_set.tests.reference import reference_join
from components.spark_feature_backfill.duckdb_backfill import backfill_duckdb
from components.spark_feature_backfill.impl import BackfillError, backfill, run_backfill
from kubeloop.sampledata.feature_views import item_pricing_view, user_activity_view
from kubeloop.sampledata.generate import GeneratorConfig, write_dataset

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("KUBELOOP_DIFF_EXAMPLES", "12"))
LABELS = LabelSpec(
    timestamp_field="event_timestamp", label_field="label", entity_keys=["user_id", "item_id"]
)
BASE = pd.Timestamp("2026-01-05T10:00:00", tz="UTC")


def _t(minute: int | None) -> pd.Timestamp | None:
    return None if minute is None else BASE + pd.Timedelta(minutes=minute)


def _view(name: str, key: str, features: list[tuple[str, str]], ttl: str | None) -> dict:
    return {
        "name": name,
        "entities": [{"name": key.removesuffix("_id"), "joinKey": key, "valueType": "INT64"}],
        "source": {"path": "unused", "timestampField": "event_timestamp"},
        "features": [{"name": n, "dtype": d} for n, d in features],
        "ttl": ttl,
    }


def _write(rows: pd.DataFrame, path: Path) -> str:
    """One Parquet file in a directory (NULL event times have no date partition to go to)."""
    path.mkdir(parents=True)
    rows = rows.copy()
    for column in ("event_timestamp", "created_timestamp"):
        rows[column] = pd.to_datetime(rows[column], utc=True).astype("datetime64[us, UTC]")
    rows.to_parquet(path / "part-00000.parquet", index=False)
    return str(path)


def _both(
    spark: SparkSession, labels: pd.DataFrame, requests: list[FeatureRequest]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    con = connect()
    try:
        via_duckdb = join_duckdb(con, labels, LABELS, requests)
    finally:
        con.close()
    via_spark = to_canonical_pandas(
        join_spark(spark, labels, LABELS, requests), list(labels.columns), LABELS, requests
    )
    return via_duckdb, via_spark


# --- generated point-in-time joins ----------------------------------------------------------

minutes = st.integers(min_value=0, max_value=12)
maybe_minute = st.one_of(minutes, minutes, minutes, minutes, st.none())


@st.composite
def feature_rows(draw: Any, key: str, keys: int) -> pd.DataFrame:
    n = draw(st.integers(min_value=1, max_value=14))
    records = []
    for _ in range(n):
        event = draw(maybe_minute)
        # Mostly on time, some late (created after the event), some NULL.
        delay = draw(st.sampled_from([0, 0, 0, 1, 3, None]))
        created = None if delay is None or event is None else event + delay
        if event is None and delay is not None:
            created = draw(minutes)
        records.append(
            {
                key: draw(st.integers(min_value=1, max_value=keys)),
                "event_timestamp": _t(event),
                "created_timestamp": _t(created),
                "score": draw(st.one_of(st.none(), st.integers(-3, 3))),
                "ratio": draw(st.one_of(st.none(), st.sampled_from([-1.5, 0.0, 0.25, 2.0]))),
                "tag": draw(st.one_of(st.none(), st.sampled_from(["a", "b", "ü"]))),
                "flag": draw(st.one_of(st.none(), st.booleans())),
            }
        )
    if records and draw(st.booleans()):
        records.append(dict(draw(st.sampled_from(records))))  # a duplicated feature row
    frame = pd.DataFrame(records)
    frame["score"] = frame["score"].astype("Int64")
    frame["ratio"] = frame["ratio"].astype("Float64")
    frame["flag"] = frame["flag"].astype("boolean")
    return frame


@st.composite
def label_rows(draw: Any) -> pd.DataFrame:
    n = draw(st.integers(min_value=1, max_value=12))
    records = [
        {
            "user_id": draw(st.integers(1, 4)),  # 4: no feature rows at all
            "item_id": draw(st.integers(1, 3)),
            "event_timestamp": _t(draw(minutes)),
            "label": draw(st.integers(0, 1)),
        }
        for _ in range(n)
    ]
    records += [dict(r) for r in draw(st.lists(st.sampled_from(records), max_size=3))]
    frame = pd.DataFrame(records)
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
    return frame


USER_FEATURES = [("score", "int64"), ("ratio", "float64"), ("tag", "string"), ("flag", "bool")]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(
    labels=label_rows(),
    users=feature_rows("user_id", 3),
    items=feature_rows("item_id", 2),
    user_ttl=st.sampled_from([None, "1m", "2m", "5m"]),
    item_ttl=st.sampled_from([None, "3m"]),
)
def test_duckdb_equals_spark_on_generated_stores(
    spark: SparkSession,
    labels: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    user_ttl: str | None,
    item_ttl: str | None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="kubeloop-diff-") as root:
        requests = [
            FeatureRequest(
                feature_view=_view("users", "user_id", USER_FEATURES, user_ttl),
                offline_path=_write(users, Path(root) / "users"),
            ),
            FeatureRequest(
                feature_view=_view("items", "item_id", [("ratio", "float64")], item_ttl),
                offline_path=_write(
                    items[["item_id", "event_timestamp", "created_timestamp", "ratio"]],
                    Path(root) / "items",
                ),
            ),
        ]
        via_duckdb, via_spark = _both(spark, labels, requests)
    pd.testing.assert_frame_equal(via_duckdb, via_spark)
    assert len(via_duckdb) == len(labels)
    stamps = ["event_timestamp", "created_timestamp"]
    if users[stamps].notna().all().all() and items[stamps].notna().all().all():
        # Without NULL times the written semantics (the brute-force reference) applies too.
        expected = reference_join(
            labels, "event_timestamp", requests, {"users": users, "items": items}
        )
        from components.build_training_set.spec import canonicalize

        expected = canonicalize(expected, list(labels.columns), LABELS, requests)
        pd.testing.assert_frame_equal(via_duckdb, expected)


# --- the two traps, as named cases ----------------------------------------------------------


def _one_view_case(
    spark: SparkSession, rows: list[tuple], ttl: str | None, label_minute: int, tmp: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.DataFrame(
        [(1, _t(e), _t(c), v) for e, c, v in rows],
        columns=["user_id", "event_timestamp", "created_timestamp", "score"],
    )
    frame["score"] = frame["score"].astype("Int64")
    request = FeatureRequest(
        feature_view=_view("users", "user_id", [("score", "int64")], ttl),
        offline_path=_write(frame, tmp / "users"),
    )
    labels = pd.DataFrame(
        {"user_id": [1], "item_id": [1], "event_timestamp": [_t(label_minute)], "label": [1]}
    )
    labels["event_timestamp"] = labels["event_timestamp"].astype("datetime64[us, UTC]")
    return _both(spark, labels, [request])


def test_trap_latest_visible_is_not_greatest_event_time(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A late row (old event, created last) is the latest *visible*; the greatest event wins."""
    rows = [(5, 5, 10), (2, 8, 20)]  # (event minute, created minute, score)
    via_duckdb, via_spark = _one_view_case(spark, rows, None, 9, tmp_path)
    assert via_spark["users__score"].tolist() == [10]
    pd.testing.assert_frame_equal(via_duckdb, via_spark)


@pytest.mark.parametrize(
    ("case", "rows", "ttl", "expected"),
    [
        # Tie on (event, created); Spark orders the NULL value lowest, so 7 wins.
        ("null-value-in-a-tie", [(5, 5, None), (5, 5, 7)], None, 7),
        # Same event time, one created time NULL: the known created time is the greater.
        ("null-created-in-a-tie", [(5, None, 3), (5, 5, 4)], "10m", 4),
        # NULL event time, no TTL: below any real event time, so the 08-minute row wins.
        ("null-event-without-ttl", [(None, 1, 1), (2, 2, 2)], None, 2),
    ],
)
def test_trap_null_inside_the_struct_orders_lowest(
    spark: SparkSession, tmp_path: Path, case: str, rows: list, ttl: str | None, expected: int
) -> None:
    via_duckdb, via_spark = _one_view_case(spark, rows, ttl, 9, tmp_path)
    assert via_spark["users__score"].tolist() == [expected], case
    pd.testing.assert_frame_equal(via_duckdb, via_spark)


def test_exact_ttl_boundary_is_expired_in_both(spark: SparkSession, tmp_path: Path) -> None:
    """TTL 4m, event at minute 5, label at minute 9: 9 - 4 = 5 is not > 5, so expired."""
    via_duckdb, via_spark = _one_view_case(spark, [(5, 5, 1)], "4m", 9, tmp_path)
    assert via_spark["users__score"].isna().all()
    pd.testing.assert_frame_equal(via_duckdb, via_spark)


# --- backfill: every transformation SQL of the examples, the sample views and the tests -----


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("events")
    write_dataset(GeneratorConfig(rows=2000, seed=11, days=3), root)
    return str(root / "events")


def _example_views(events: str) -> list[tuple[str, dict]]:
    views = []
    for path in sorted((REPO / "examples").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "FeatureView":
                spec = doc["spec"]
                view = {
                    key: spec[key]
                    for key in ("entities", "source", "transformation", "features", "ttl")
                    if key in spec
                }
                view["name"] = doc["metadata"]["name"]
                view["source"] = {**spec["source"], "path": events}
                views.append((f"{path.relative_to(REPO)}:{view['name']}", view))
    return views


def _test_views(events: str) -> list[tuple[str, dict]]:
    base = user_activity_view(events)
    sqls = {
        # tests/integration/test_featureview_operator.py GOOD_SQL
        "integration": (
            "SELECT user_id, event_timestamp, created_timestamp, dwell_seconds, "
            "CAST(clicks AS BIGINT) AS clicks FROM source",
            [("dwell_seconds", "float64"), ("clicks", "int64")],
        ),
        # Spark-only spellings sqlglot has to rewrite: date_format, nvl, if, integer division.
        "spark-idioms": (
            "SELECT user_id, event_timestamp, created_timestamp, "
            "nvl(device, 'unknown') AS device, if(clicks > 2, 1.0, 0.0) AS busy, "
            "CAST(date_format(event_timestamp, 'H') AS INT) AS hour, "
            "clicks DIV 2 AS half_clicks FROM source",
            [
                ("device", "string"),
                ("busy", "float64"),
                ("hour", "int32"),
                ("half_clicks", "int64"),
            ],
        ),
        # A windowed aggregate (per-user running count) as FeatureViews often have.
        "window": (
            "SELECT user_id, event_timestamp, created_timestamp, "
            "COUNT(*) OVER (PARTITION BY user_id ORDER BY event_timestamp, item_id, price "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS seen FROM source",
            [("seen", "int64")],
        ),
    }
    views = [
        ("sampledata:user_activity", base),
        ("sampledata:item_pricing", item_pricing_view(events)),
    ]
    for name, (sql, features) in sqls.items():
        view = {**base, "transformation": {"sql": sql}}
        view["features"] = [{"name": n, "dtype": d} for n, d in features]
        views.append((f"tests:{name}", view))
    return views


def _offline(path: str) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    frame["date"] = frame["date"].astype(str)
    keys = [c for c in frame.columns if c != "date"]
    return frame.sort_values(keys, kind="mergesort").reset_index(drop=True)


def test_every_transformation_sql_backfills_the_same_rows(
    spark: SparkSession, events: str, tmp_path: Path
) -> None:
    views = [*_example_views(events), *_test_views(events)]
    assert any(name.startswith("examples/") for name, _ in views)
    window = ("2026-01-05T00:00:00Z", "2026-01-06T12:00:00Z")
    for index, (name, view) in enumerate(views):
        via_spark = str(tmp_path / f"spark-{index}")
        via_duckdb = str(tmp_path / f"duckdb-{index}")
        spark_rows = backfill(spark, view, *window, via_spark)
        duckdb_rows = backfill_duckdb(view, *window, via_duckdb)
        assert duckdb_rows == spark_rows > 0, name
        got, expected = _offline(via_duckdb), _offline(via_spark)
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12, obj=name)


def test_backfill_windows_rerun_the_same_in_both(
    spark: SparkSession, events: str, tmp_path: Path
) -> None:
    """Windows meeting at noon, then the first again: edge days carried over in both engines.
    Source and outputs are file:// URIs, as the operator hands them to the pipeline tasks."""
    view = user_activity_view(f"file://{events}")
    windows = [
        ("2026-01-05T00:00:00Z", "2026-01-06T12:00:00Z"),
        ("2026-01-06T12:00:00Z", "2026-01-08T00:00:00Z"),
        ("2026-01-05T00:00:00Z", "2026-01-06T12:00:00Z"),
    ]
    for window in windows:
        backfill(spark, view, *window, f"file://{tmp_path}/spark")
        backfill_duckdb(view, *window, f"file://{tmp_path}/duckdb")
    pd.testing.assert_frame_equal(
        _offline(str(tmp_path / "duckdb")), _offline(str(tmp_path / "spark"))
    )


def test_untranspilable_sql_names_engine_spark(events: str, tmp_path: Path) -> None:
    view = {
        **user_activity_view(events),
        "transformation": {"sql": "SELECT /*+ BROADCAST(s) */ * FROM source s"},
    }
    with pytest.raises(BackfillError, match=r"cannot run on DuckDB .*set spec.engine: spark"):
        backfill_duckdb(view, "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z", str(tmp_path))
    unknown = {**view, "transformation": {"sql": "SELECT user_id, nope FROM source"}}
    with pytest.raises(BackfillError, match=r"SQL error in transformation.sql .*nope"):
        backfill_duckdb(unknown, "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z", str(tmp_path))


def test_auto_lets_spark_judge_sql_duckdb_rejects(
    spark: SparkSession, events: str, tmp_path: Path
) -> None:
    """DuckDB rejecting the transpiled SQL may be the translation's fault: auto asks Spark."""
    view = {
        **user_activity_view(events),
        "transformation": {"sql": "SELECT user_id, nope FROM source"},
    }
    window = ("2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z")
    with pytest.raises(BackfillError, match=r"^Spark SQL error in transformation.sql: .*nope"):
        run_backfill(view, *window, str(tmp_path / "auto"), engine="auto")
    with pytest.raises(BackfillError, match=r"^SQL error in transformation.sql \(DuckDB"):
        run_backfill(view, *window, str(tmp_path / "duckdb"), engine="duckdb")


def test_hidden_files_are_skipped_by_both(spark: SparkSession, events: str, tmp_path: Path) -> None:
    """A writer's in-progress temp file and a ``_SUCCESS`` marker in the source: Spark skips
    hidden names (Hadoop's rule); DuckDB's globs would read them and fail on the half file."""
    import shutil

    source = tmp_path / "events"
    shutil.copytree(events, source)
    partition = next(p for p in sorted(source.iterdir()) if p.is_dir())
    (partition / ".tmp-0123-part.parquet").write_bytes(b"PAR1 half written")
    (source / "_SUCCESS").write_bytes(b"")
    view = user_activity_view(str(source))
    window = ("2026-01-05T00:00:00Z", "2026-01-06T12:00:00Z")
    spark_rows = backfill(spark, view, *window, str(tmp_path / "spark"))
    duckdb_rows = backfill_duckdb(view, *window, str(tmp_path / "duckdb"))
    assert duckdb_rows == spark_rows > 0
    pd.testing.assert_frame_equal(
        _offline(str(tmp_path / "duckdb")), _offline(str(tmp_path / "spark"))
    )
