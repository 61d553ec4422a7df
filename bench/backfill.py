"""Backfill benchmark: rows/s and peak memory of the FeatureView backfill, DuckDB and Spark.

Generates ``--rows`` events with ``kubeloop.sampledata.generate`` (chunked), then backfills the
example ``user_activity`` FeatureView over the whole period into a fresh offline store, once
with DuckDB (``duckdb_backfill.py``, in a fresh process: its start-up is in its time, its peak
RSS is its own) and once with Spark (session start-up reported apart). Peak memory is the
largest resident set, sampled every 100 ms: the DuckDB process; this process plus its children
(the Spark JVM). The generator's own peak is reported separately. The two offline stores are
compared row for row. (Feast has no transformation step to compare: it reads what this writes.)

    python -m bench.backfill --rows 10000000
    python -m bench.backfill --small          # 200k rows
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
from _repo import PeakRss, add_spark_run_arguments

from components.spark_feature_backfill.impl import backfill
from components.spark_feature_backfill.session import spark_session
from kubeloop.sampledata.feature_views import user_activity_view
from kubeloop.sampledata.generate import GeneratorConfig, write_dataset


def _duckdb_child(view: dict, start: str, end: str, out: str, queue: object) -> None:
    t0 = time.perf_counter()
    from components.spark_feature_backfill.duckdb_backfill import backfill_duckdb

    written = backfill_duckdb(view, start, end, out)
    queue.put((written, time.perf_counter() - t0))  # type: ignore[attr-defined]


def _stored(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    frame["date"] = frame["date"].astype(str)
    return frame.sort_values(list(frame.columns), kind="mergesort").reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Spark backfill rows/s and peak memory")
    parser.add_argument("--rows", type=int, default=10_000_000)
    add_spark_run_arguments(parser, small="200k rows")
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args(argv)
    rows = 200_000 if args.small else args.rows
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="kubeloop-bench-backfill-"))
    config = GeneratorConfig(rows=rows, seed=args.seed, days=28)

    with PeakRss() as generator_memory:
        t0 = time.perf_counter()
        write_dataset(config, work / "data")
        generated_s = time.perf_counter() - t0
    print(
        f"generated {rows} events in {generated_s:.1f}s ({rows / generated_s:,.0f} rows/s), "
        f"generator peak RSS {generator_memory.peak / 2**20:,.0f} MiB"
    )

    view = user_activity_view(str(work / "data" / "events"))
    duck_out = work / "offline-duckdb"
    shutil.rmtree(duck_out, ignore_errors=True)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    window = (config.start.isoformat(), config.end.isoformat())
    child = context.Process(target=_duckdb_child, args=(view, *window, str(duck_out), queue))
    t0 = time.perf_counter()
    child.start()
    with PeakRss([child.pid or 0]) as duck_memory:
        duck_written, duck_s = queue.get()
        child.join()
    duck_wall = time.perf_counter() - t0
    print(
        f"duckdb backfill: {duck_written} rows in {duck_s:.1f}s = {duck_written / duck_s:,.0f} "
        f"rows/s ({duck_wall:.1f}s with the process start and imports); peak RSS "
        f"{duck_memory.peak / 2**20:,.0f} MiB"
    )

    t0 = time.perf_counter()
    spark = spark_session(
        args.spark_master, {"spark.driver.memory": args.driver_memory}, app_name="kubeloop-bench"
    )
    spark.range(1).count()
    print(f"spark session start-up (not in the time below): {time.perf_counter() - t0:.1f}s")
    out = work / "offline"
    shutil.rmtree(out, ignore_errors=True)
    with PeakRss() as backfill_memory:
        t0 = time.perf_counter()
        written = backfill(spark, view, config.start, config.end, str(out))
        backfill_s = time.perf_counter() - t0
    print(
        f"backfill: {written} rows in {backfill_s:.1f}s = {written / backfill_s:,.0f} rows/s; "
        f"peak RSS (python + Spark JVM) {backfill_memory.peak / 2**20:,.0f} MiB "
        f"(driver memory {args.driver_memory}, master {args.spark_master})"
    )
    print(
        f"ratio spark / duckdb: {backfill_s / duck_s:.2f}x (duckdb with process start: "
        f"{backfill_s / duck_wall:.2f}x); peak memory duckdb / spark: "
        f"{duck_memory.peak / backfill_memory.peak:.2f}"
    )
    if written != rows or duck_written != rows:
        raise SystemExit(f"wrote {written} (spark) / {duck_written} (duckdb) rows, expected {rows}")
    try:
        # log1p in C vs the JVM may differ in the last bit: equal to 1e-12 relative.
        pd.testing.assert_frame_equal(
            _stored(duck_out), _stored(out), check_exact=False, rtol=1e-12
        )
        identical = True
    except AssertionError as difference:
        print(difference)
        identical = False
    print(f"offline stores identical (duckdb vs spark, floats to 1e-12): {identical}")
    if not identical:
        raise SystemExit("the engines' offline stores differ")
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
