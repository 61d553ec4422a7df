"""The FeatureView operator end to end on the embedded default: the real operator process
against the local control plane, backfills as real kfp.local runs (Spark local[*], Feast with
a SQLite online store) over a small generated event stream.

All FeatureViews are created when the module starts so their runs overlap; each test then
waits for the outcome it is about. The restart test goes first: it needs a run in flight.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kubeloop.sampledata.generate import GeneratorConfig, write_dataset
from operators.api.featureview import BackfillWindow
from operators.featureview.backfill import run_name
from tests.support.kube import condition
from tests.support.localcluster import RunningCluster
from tests.support.specs import feature_view_spec
from tests.support.stack import OperatorHarness

# Generous: Spark and kfp.local processes on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PLURAL, KIND = "featureviews", "FeatureView"
RUN_TIMEOUT_S = 480.0  # a loaded 2-core machine; never a timing assertion
START, END = "2026-01-05T00:00:00Z", "2026-01-08T00:00:00Z"


def view_spec(source: str, sql: str, features: list[dict[str, str]]) -> dict:
    return feature_view_spec(source, sql, features, {"start": START, "end": END})


GOOD_SQL = (
    "SELECT user_id, event_timestamp, created_timestamp, dwell_seconds, "
    "CAST(clicks AS BIGINT) AS clicks FROM source"
)
GOOD_FEATURES = [
    {"name": "dwell_seconds", "dtype": "float64"},
    {"name": "clicks", "dtype": "int64"},
]


@pytest.fixture(scope="module")
def harness(
    localcluster_module: RunningCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorHarness]:
    root = tmp_path_factory.mktemp("featureview")
    write_dataset(GeneratorConfig(rows=4000, days=3, seed=3), root / "data")
    events = str(root / "data" / "events")
    harness = OperatorHarness(localcluster_module.kubeconfig, root)
    harness.start()
    try:
        harness.create(PLURAL, KIND, "activity", view_spec(events, GOOD_SQL, GOOD_FEATURES))
        harness.create(
            PLURAL, KIND, "nosource", view_spec(str(root / "absent"), GOOD_SQL, GOOD_FEATURES)
        )
        harness.create(
            PLURAL,
            KIND,
            "badsql",
            view_spec(events, "SELECT user_id, FROM source WHERE", GOOD_FEATURES),
        )
        harness.create(
            PLURAL,
            KIND,
            "nofeature",
            view_spec(events, GOOD_SQL, [*GOOD_FEATURES, {"name": "basket", "dtype": "float64"}]),
        )
        yield harness
    finally:
        harness.close()


def _finished(status: dict) -> bool:
    return (status.get("lastBackfill") or {}).get("state") in ("SUCCEEDED", "FAILED")


def test_backfill_survives_restart_and_gets_ready(harness: OperatorHarness) -> None:
    launched = harness.wait_status(
        PLURAL,
        "activity",
        lambda s: (s.get("lastBackfill") or {}).get("state") in ("PENDING", "RUNNING"),
        "the backfill run launched",
        RUN_TIMEOUT_S,
    )
    run = launched["lastBackfill"]["run"]
    assert harness.run_names("activity-") == [run]

    # The operator restarts while the run is in flight: it must find the run, not relaunch.
    harness.stop()
    harness.start()
    status = harness.wait_status(
        PLURAL, "activity", _finished, "the backfill finished", RUN_TIMEOUT_S
    )
    last = status["lastBackfill"]
    assert last["state"] == "SUCCEEDED", last
    assert harness.run_names("activity-") == [run]  # one run for this (version, window)
    assert last["run"] == run and last["runUrl"].startswith("file://")
    assert last["rows"] > 0
    assert last["window"] == {"start": "2026-01-05T00:00:00Z", "end": "2026-01-08T00:00:00Z"}
    freshness = status["freshness"]
    assert datetime.fromisoformat(freshness["offline"]) == datetime.fromisoformat(END)
    assert freshness["online"] == freshness["offline"] and freshness["observedAt"]
    generation = harness.get(PLURAL, "activity")["metadata"]["generation"]
    for type_ in ("Backfilled", "Materialized", "Ready"):
        cond = condition(status, type_)
        assert cond["status"] == "True", (type_, cond)
        assert cond["observedGeneration"] == generation
    assert str(last["rows"]) in condition(status, "Backfilled")["message"]
    # Handed to the tasks as a file:// URI on the embedded default (components/uris.py).
    assert status["offlinePath"].startswith("file:///"), status["offlinePath"]
    offline = Path(status["offlinePath"].removeprefix("file://"))
    assert status["offlinePath"].endswith(f"/default/activity/{status['version']}")
    assert sorted(p.name for p in offline.glob("date=*")) == [
        "date=2026-01-05",
        "date=2026-01-06",
        "date=2026-01-07",
    ]
    # Feast's online store was materialized by the same run.
    assert (harness.state_dir / "feast" / "online_store.db").is_file()


def test_missing_source_is_reported_and_nothing_launched(harness: OperatorHarness) -> None:
    status = harness.wait_status(
        PLURAL,
        "nosource",
        lambda s: condition(s, "Backfilled").get("reason") == "SourceNotFound",
        "SourceNotFound",
        RUN_TIMEOUT_S,
    )
    backfilled = condition(status, "Backfilled")
    assert backfilled["status"] == "False"
    assert "absent" in backfilled["message"] and "source.path" in backfilled["message"]
    assert condition(status, "Ready")["status"] == "False"
    assert "lastBackfill" not in status
    assert harness.run_names("nosource-") == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("badsql", "Spark SQL error in transformation.sql"),
        ("nofeature", "transformation.sql output lacks declared column(s) ['basket']"),
    ],
)
def test_failed_backfill_names_the_problem(
    harness: OperatorHarness, name: str, expected: str
) -> None:
    status = harness.wait_status(PLURAL, name, _finished, "the backfill finished", RUN_TIMEOUT_S)
    assert status["lastBackfill"]["state"] == "FAILED"
    backfilled = condition(status, "Backfilled")
    assert backfilled["status"] == "False" and backfilled["reason"] == "BackfillFailed"
    assert expected in backfilled["message"].splitlines()[0], backfilled["message"]
    assert "log tail:" in backfilled["message"]
    assert condition(status, "Ready")["status"] == "False"
    assert len(harness.run_names(f"{name}-")) == 1
    assert harness.alive(), harness.logs()


def test_schedule_launches_an_incremental_backfill(harness: OperatorHarness) -> None:
    """Last in the module, so its minutely runs overlap nothing else: the initial window ends
    at a minute m, the next cron tick pins [m, tick) as its own run, and every later tick the
    next. Under load a run outlasts a minute, so the operator pins the next increment in the
    pass that sees one finish: progress is read from the freshness marks, which persist."""
    source = _partitioned_copy(harness.workdir / "data" / "events", harness.workdir / "lake")
    spec = view_spec(str(source), GOOD_SQL, GOOD_FEATURES)
    spec["backfill"] = {"start": START, "schedule": "* * * * *"}
    harness.create(PLURAL, KIND, "minutely", spec)

    def increment_pinned(status: dict) -> bool:
        window = (status.get("lastBackfill") or {}).get("window") or {}
        return window.get("start") not in (None, START)

    status = harness.wait_status(
        PLURAL, "minutely", increment_pinned, "an incremental backfill", RUN_TIMEOUT_S
    )
    # The first increment starts where the initial run ended; that run succeeded, so the
    # marks stand at its end and the view is Ready while the increment runs.
    start = datetime.fromisoformat(status["lastBackfill"]["window"]["start"])
    assert start.second == 0
    assert datetime.fromisoformat(status["freshness"]["offline"]) == start
    assert datetime.fromisoformat(status["freshness"]["online"]) == start
    assert condition(status, "Ready")["status"] == "True"
    origin = datetime.fromisoformat(START)
    initial = run_name("minutely", status["version"], BackfillWindow(start=origin, end=start))
    assert initial in harness.run_names("minutely-")

    # The application appends an event now, as to its data lake: the increment whose window
    # holds its time is pinned after that time has passed, so it reads the new file.
    appended_at = _append_event(source, user_id=NEW_USER)
    caught_up = harness.wait_status(
        PLURAL,
        "minutely",
        lambda s: (
            datetime.fromisoformat((s.get("freshness") or {}).get("online") or START) > appended_at
        ),
        "an increment past the appended event",
        RUN_TIMEOUT_S,
    )
    assert datetime.fromisoformat(caught_up["freshness"]["offline"]) > appended_at
    assert condition(caught_up, "Materialized")["status"] == "True"
    assert len(harness.run_names("minutely-")) >= 3  # the initial run and the increments
    offline = pd.read_parquet(caught_up["offlinePath"])
    # The generated events end in January: the appended event is the only later row.
    (row,) = offline[
        pd.to_datetime(offline["event_timestamp"], utc=True) >= pd.Timestamp("2026-02-01", tz="UTC")
    ].itertuples()
    assert row.user_id == NEW_USER and row.dwell_seconds == 42.0 and row.clicks == 7


NEW_USER = 987_654_321  # no generated user has this id


def _partitioned_copy(events: Path, lake: Path) -> Path:
    """The generated events as an application's date-partitioned lake (`date=YYYY-MM-DD/`)."""
    frame = pd.read_parquet(events)
    for day, rows in frame.groupby(frame["event_timestamp"].dt.strftime("%Y-%m-%d")):
        target = lake / f"date={day}"
        target.mkdir(parents=True)
        table = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
        pq.write_table(table, target / "part-0.parquet", coerce_timestamps="us")
    return lake


def _append_event(lake: Path, user_id: int) -> datetime:
    """One new event at the current time, written as a new file of today's partition."""
    template = next(lake.glob("date=*/part-0.parquet"))
    schema = pq.read_schema(template).remove_metadata()
    row = pd.read_parquet(template).head(1).reset_index(drop=True)
    now = pd.Timestamp.now(tz="UTC")
    row = row.assign(
        event_timestamp=now, created_timestamp=now, user_id=user_id, dwell_seconds=42.0, clicks=7
    )
    target = lake / f"date={now.strftime('%Y-%m-%d')}"
    target.mkdir(exist_ok=True)
    table = pa.Table.from_pandas(row, preserve_index=False).select(schema.names).cast(schema)
    pq.write_table(table, target / f"app-{now.value}.parquet", coerce_timestamps="us")
    return now.to_pydatetime()
