"""Backfill benchmark: rows/s and peak memory of the Spark FeatureView backfill.

Generates ``--rows`` events with ``kubeloop.sampledata.generate`` (chunked), then backfills the
example ``user_activity`` FeatureView over the whole period into a fresh offline store.
Peak memory is the largest resident set of this process plus its children (the Spark JVM),
sampled every 100 ms; the generator's own peak is reported separately.

    python -m bench.backfill --rows 10000000
    python -m bench.backfill --small          # 200k rows
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil
from _repo import add_spark_run_arguments

from components.spark_feature_backfill.impl import backfill
from components.spark_feature_backfill.session import spark_session
from kubeloop.sampledata.feature_views import user_activity_view
from kubeloop.sampledata.generate import GeneratorConfig, write_dataset


class PeakRss:
    """Samples the RSS of this process and all its descendants in a background thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


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

    spark = spark_session(
        args.spark_master, {"spark.driver.memory": args.driver_memory}, app_name="kubeloop-bench"
    )
    spark.range(1).count()
    view = user_activity_view(str(work / "data" / "events"))
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
    if written != rows:
        raise SystemExit(f"wrote {written} rows, expected {rows}")
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
