"""Puts the repository root on `sys.path`, so a benchmark run as `python bench/<name>.py` can
import the test harness (`tests/support/`, which is not installed). Import it first. Also the
small helpers several benchmarks share."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_json(path: str | Path, report: object) -> Path:
    """Write a benchmark's JSON report (creating its folder); returns the path."""
    import json

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def add_spark_run_arguments(parser: argparse.ArgumentParser, small: str) -> None:
    """The options every Spark benchmark takes: a small run, the master, a seed, a work dir."""
    parser.add_argument("--small", action="store_true", help=small)
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None)


class PeakRss:
    """Peak resident memory of some processes and all their descendants (default: this
    process), sampled every ``interval`` seconds on a thread. Use as a context manager."""

    def __init__(self, pids: list[int] | None = None, interval: float = 0.1) -> None:
        import threading

        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        roots = [psutil.Process(pid) for pid in (self._pids or [None])]
        while not self._stop.is_set():
            seen: dict[int, int] = {}
            for root in roots:
                try:
                    family = [root, *root.children(recursive=True)]
                except psutil.Error:
                    continue
                for process in family:
                    try:
                        seen[process.pid] = process.memory_info().rss
                    except psutil.Error:
                        continue
            self.peak = max(self.peak, sum(seen.values()))
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def time_calls(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``call`` after one warm-up call."""
    call()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


class StubTransport:
    """An ``asyncio.Transport`` stand-in for in-process protocol benches: open, never closes,
    drops what is written (subclasses keep or count it)."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...
