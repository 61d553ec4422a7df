"""Point-in-time join benchmark: kubeloop's DuckDB and Spark joins vs Feast, in one run.

Same data, same run: an offline store of ``--feature-rows`` rows × ``--features`` float
features keyed by ``user_id`` (date-partitioned Parquet, ~2% late-arriving rows), and
``--labels`` label rows. Timed:

* ``duckdb``: ``join_duckdb`` (running max + ASOF JOIN, ``pit_duckdb.py``) to canonical pandas,
  in a fresh process (so its peak memory is its own), cold and then warm;
* ``spark``: ``join_spark`` (sort-based as-of join) collected to canonical pandas, cold (first
  join in the session) and warm (again);
* ``feast``: ``join_feast`` — Feast's ``get_historical_features`` (file offline store) plus
  the fix-ups that make it exact (``pit_feast.py``);
* ``feast-raw`` (unless ``--skip-feast-raw``): Feast's own ``get_historical_features`` over the
  offline store as-is (its own semantics; not compared row for row).

Cold start is reported separately: Spark's session start-up (and the JVM's memory then), DuckDB's
``import duckdb`` + connect in a fresh interpreter. Peak memory: the JVM's RSS and the DuckDB
process's RSS, sampled every 100 ms. Prints the same-run ratios and checks that the three
results are identical row for row.

    python -m bench.pit_join            # the issue's sizes: 1M labels x 10 features over 10M rows
    python -m bench.pit_join --small    # 20k labels over 200k rows
    python -m bench.pit_join --labels 200000 --feature-rows 2000000 --skip-feast-raw
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from _repo import PeakRss, add_spark_run_arguments

from components.build_training_set.impl import (
    join_duckdb,
    join_feast,
    join_spark,
    to_canonical_pandas,
)
from components.build_training_set.pit_duckdb import connect
from components.build_training_set.spec import FeatureRequest, LabelSpec
from components.engines import DEFAULT_MEMORY_BUDGET_MB
from components.feast_apply_materialize.feast_objects import (
    FeastStoreConfig,
    feast_feature_view,
    open_store,
)
from components.spark_feature_backfill.session import spark_session

START = pd.Timestamp("2026-01-05", tz="UTC")
DAYS = 28
CHUNK = 1_000_000
LABELS = LabelSpec(timestamp_field="event_timestamp", label_field="label", entity_keys=["user_id"])


def write_offline_store(path: Path, rows: int, features: int, users: int, seed: int) -> None:
    """Chunked, so 10M rows need ~one chunk of memory."""
    span_us = DAYS * 86400 * 1_000_000
    start_us = START.value // 1000
    for index, first in enumerate(range(0, rows, CHUNK)):
        n = min(CHUNK, rows - first)
        rng = np.random.default_rng([seed, index])
        event = (
            start_us
            + (first + np.arange(n)) * (span_us // rows)
            + rng.integers(0, span_us // rows, n)
        )
        lag = (rng.exponential(30.0, n) * 1e6).astype("int64")
        late = rng.uniform(0, 1, n) < 0.02
        lag[late] = (rng.uniform(1, 6, late.sum()) * 3600e6).astype("int64")
        columns = {
            "user_id": rng.integers(0, users, n),
            # Microseconds: Spark cannot read Parquet nanosecond timestamps.
            "event_timestamp": pd.to_datetime(event, unit="us", utc=True).astype(
                "datetime64[us, UTC]"
            ),
            "created_timestamp": pd.to_datetime(event + lag, unit="us", utc=True).astype(
                "datetime64[us, UTC]"
            ),
        }
        columns.update({f"f{i}": rng.normal(i, 1.0, n) for i in range(features)})
        frame = pd.DataFrame(columns)
        frame["date"] = frame["event_timestamp"].dt.strftime("%Y-%m-%d")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_to_dataset(
            table,
            path,
            partition_cols=["date"],
            basename_template=f"part-{index:05d}-{{i}}.parquet",
        )


def make_labels(rows: int, users: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 0x1ABE1])
    # Labels in the second half of the period, so most have history.
    span_us = DAYS * 86400 * 1_000_000
    ts = START.value // 1000 + span_us // 2 + rng.integers(0, span_us // 2, rows)
    labels = pd.DataFrame(
        {
            "user_id": rng.integers(0, users, rows),
            "event_timestamp": pd.to_datetime(ts, unit="us", utc=True).astype(
                "datetime64[us, UTC]"
            ),
            "label": rng.integers(0, 2, rows).astype("int32"),
        }
    )
    return labels


def feature_view(features: int, ttl: str) -> dict:
    return {
        "name": "bench_user",
        "entities": [{"name": "user", "joinKey": "user_id", "valueType": "INT64"}],
        "source": {"path": "unused", "timestampField": "event_timestamp"},
        "transformation": {"sql": "SELECT * FROM source"},
        "features": [{"name": f"f{i}", "dtype": "float64"} for i in range(features)],
        "ttl": ttl,
    }


def feast_raw(labels: pd.DataFrame, request: FeatureRequest, work: Path) -> pd.DataFrame:
    """Feast's own get_historical_features over the offline store as-is."""
    store = open_store(FeastStoreConfig(project="kubeloop_bench", repo_path=str(work / "raw_repo")))
    entities, view = feast_feature_view(request.feature_view, request.offline_path)
    store.apply([*entities, view])
    refs = [f"{request.view}:{f}" for f in request.features]
    return store.get_historical_features(
        entity_df=labels, features=refs, full_feature_names=True
    ).to_df()


def _duckdb_child(
    labels_path: str, request_json: str, out_path: str, memory_mb: int, queue: object
) -> None:
    """In a fresh process: cold join, warm join, canonical result to Parquet."""
    request = FeatureRequest.model_validate(json.loads(request_json))
    labels = pd.read_parquet(labels_path)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        con = connect(memory_limit_mb=memory_mb)
        joined = join_duckdb(con, labels, LABELS, [request])
        con.close()
        times.append(time.perf_counter() - t0)
    joined.to_parquet(out_path, index=False)
    queue.put(times)  # type: ignore[attr-defined]


def _feast_child(labels_path: str, request_json: str, work: str, queue: object) -> None:
    """In a fresh process: the Feast path, its canonical result to Parquet."""
    request = FeatureRequest.model_validate(json.loads(request_json))
    labels = pd.read_parquet(labels_path)
    t0 = time.perf_counter()
    joined = join_feast(labels, LABELS, [request], Path(work) / "feast")
    elapsed = time.perf_counter() - t0
    joined.to_parquet(Path(work) / "feast.parquet", index=False)
    queue.put(elapsed)  # type: ignore[attr-defined]


def duckdb_cold_start() -> float:
    """``import duckdb`` + connect + a query, in a fresh interpreter (what a pipeline step pays)."""
    code = (
        "import time; t=time.perf_counter(); import duckdb; "
        "duckdb.connect().execute('select 1').fetchall(); print(time.perf_counter()-t)"
    )
    return float(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )


def jvm_pids() -> list[int]:
    return [p.pid for p in psutil.Process().children(recursive=True) if "java" in p.name()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Spark as-of join vs Feast get_historical_features"
    )
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--feature-rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--users", type=int, default=None, help="default: feature rows / 100")
    parser.add_argument("--ttl", default="7d")
    add_spark_run_arguments(parser, small="20k labels over 200k rows")
    parser.add_argument("--skip-feast-raw", action="store_true")
    parser.add_argument(
        "--duckdb-memory-mb",
        type=int,
        default=DEFAULT_MEMORY_BUDGET_MB,
        help="DuckDB's memory_limit (default: the training-set step's memory budget)",
    )
    args = parser.parse_args(argv)
    if args.small:
        args.labels, args.feature_rows = 20_000, 200_000
    users = args.users or max(10, args.feature_rows // 100)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="kubeloop-bench-pit-"))
    offline = work / "offline"
    shutil.rmtree(offline, ignore_errors=True)
    print(
        f"sizes: labels={args.labels} feature_rows={args.feature_rows} features={args.features} users={users}"
    )
    t0 = time.perf_counter()
    write_offline_store(offline, args.feature_rows, args.features, users, args.seed)
    labels = make_labels(args.labels, users, args.seed)
    print(f"data generated in {time.perf_counter() - t0:.1f}s")
    request = FeatureRequest(
        feature_view=feature_view(args.features, args.ttl), offline_path=str(offline)
    )

    timings: dict[str, float] = {}
    print(f"duckdb cold start (import + connect, fresh interpreter): {duckdb_cold_start():.2f}s")
    labels_path = work / "labels.parquet"
    labels.to_parquet(labels_path, index=False)
    # The request as the child processes (DuckDB, Feast) rebuild it.
    request_json = json.dumps(
        {"featureView": feature_view(args.features, args.ttl), "offlinePath": str(offline)}
    )
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(
        target=_duckdb_child,
        args=(
            str(labels_path),
            request_json,
            str(work / "duckdb.parquet"),
            args.duckdb_memory_mb,
            queue,
        ),
    )
    child.start()
    with PeakRss([child.pid or 0]) as duck_peak:
        duck_times = queue.get()
        child.join()
    timings["duckdb"], timings["duckdb-warm"] = duck_times
    via_duckdb = pd.read_parquet(work / "duckdb.parquet")
    print(
        f"duckdb join (memory_limit {args.duckdb_memory_mb} MB): {timings['duckdb']:.1f}s (warm {timings['duckdb-warm']:.1f}s), "
        f"peak process RSS {duck_peak.peak / 2**20:.0f} MiB"
    )

    # Feast's dask merge peaks near 17-20 GiB at 1M / 10M: beside the Spark JVM (5-6 GiB, alive
    # until the interpreter exits, spark.stop() or not) the 23 GiB machine ran out (OOM kills,
    # 2026-12-06). So Feast runs before Spark starts, in a process of its own (an OOM kill there
    # loses only Feast's figure).
    feast = context.Process(
        target=_feast_child,
        args=(str(labels_path), request_json, str(work), queue),
    )
    feast.start()
    with PeakRss([feast.pid or 0]) as feast_peak:
        feast.join()
    via_feast = None
    if feast.exitcode == 0:
        timings["feast"] = queue.get()
        via_feast = pd.read_parquet(work / "feast.parquet")
        print(
            f"feast path (get_historical_features + fix-ups): {timings['feast']:.1f}s, "
            f"peak process RSS {feast_peak.peak / 2**20:.0f} MiB"
        )
    else:
        print(
            f"feast path: no figure, its process ended with {feast.exitcode} "
            f"(-9: killed, out of memory?) at peak RSS {feast_peak.peak / 2**20:.0f} MiB"
        )

    t0 = time.perf_counter()
    spark = spark_session(
        args.spark_master, {"spark.driver.memory": "8g"}, app_name="kubeloop-bench"
    )
    spark.range(1).count()
    jvm = jvm_pids()
    jvm_start = sum(psutil.Process(p).memory_info().rss for p in jvm)
    print(
        f"spark session start-up (not timed below): {time.perf_counter() - t0:.1f}s, "
        f"JVM RSS then {jvm_start / 2**20:.0f} MiB"
    )

    with PeakRss(jvm) as spark_peak:
        for name in ("spark", "spark-warm"):
            t0 = time.perf_counter()
            labels_df = spark.createDataFrame(labels)
            via_spark = to_canonical_pandas(
                join_spark(spark, labels_df, LABELS, [request]),
                list(labels.columns),
                LABELS,
                [request],
            )
            timings[name] = time.perf_counter() - t0
    print(
        f"spark as-of join: {timings['spark']:.1f}s (warm {timings['spark-warm']:.1f}s), "
        f"peak JVM RSS {spark_peak.peak / 2**20:.0f} MiB"
    )

    if not args.skip_feast_raw:
        t0 = time.perf_counter()
        raw = feast_raw(labels, request, work)
        timings["feast-raw"] = time.perf_counter() - t0
        print(
            f"feast get_historical_features as-is: {timings['feast-raw']:.1f}s ({len(raw)} rows back of {len(labels)})"
        )

    identical = via_feast is None or via_spark.equals(via_feast)
    duck_identical = via_duckdb.equals(via_spark)
    print(
        f"results identical (spark vs feast path): {identical if via_feast is not None else '-'}; "
        f"(duckdb vs spark): {duck_identical}; rows={len(via_spark)}; "
        f"non-null={int(via_spark[request.output_columns[0]].notna().sum())}"
    )
    print(
        f"ratio spark / duckdb: {timings['spark'] / timings['duckdb']:.2f}x "
        f"(warm {timings['spark-warm'] / timings['duckdb-warm']:.2f}x); "
        f"peak memory duckdb / spark JVM: {duck_peak.peak / max(spark_peak.peak, 1):.2f}"
    )
    if "feast" in timings:
        print(
            f"ratio feast-path / duckdb: {timings['feast'] / timings['duckdb']:.2f}x; "
            f"feast-path / spark: {timings['feast'] / timings['spark']:.2f}x"
        )
    if "feast-raw" in timings:
        print(f"ratio feast-raw / spark: {timings['feast-raw'] / timings['spark']:.2f}x")
    if not identical or not duck_identical:
        raise SystemExit("the engines' results differ")
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
