"""Quality figures off the event loop: how much ingest keeps of its rate while a 100,000-row
window's figures are computed on the loop, on a thread, or in a process.

The event loop ingests the bench's logged calls (``MonitorCore.ingest`` on parsed events,
the monitor's per-event Python work) as fast as it can, yielding between chunks, while a
task computes ``figures.version_quality`` over a ``--rows`` window ``--repeats`` times in
each mode; the ingest rate during the computations is compared with the rate alone, in the
same run. A process first receives the window's columns (pickled), a thread shares them but
needs the GIL for the Python parts of the statistics.

    .venv/bin/python bench/quality_offloop.py [--rows 100000 --repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _repo
import numpy as np

from contracts.cloudevents import (
    ID_HEADER,
    MODEL_HEADER,
    NAMESPACE_HEADER,
    ROLE_HEADER,
    TYPE_HEADER,
    TYPE_REQUEST,
    TYPE_RESPONSE,
    VERSION_HEADER,
)
from services.monitor.core import MonitorCore
from services.monitor.outcomes import figures
from services.monitor.outcomes.join import VersionRows
from services.monitor.parsing import envelope_from_binary

RESULTS = _repo.ROOT / "bench" / "results" / "quality_offloop.json"


def envelopes(count: int) -> list[Any]:
    """Request and response envelopes of ``count`` calls (20 features, like the other benches)."""
    out = []
    for i in range(count):
        for event_type, body in (
            (TYPE_REQUEST, json.dumps({"instances": [[(i * 7 + j) % 10 / 10 for j in range(20)]]})),
            (TYPE_RESPONSE, json.dumps({"predictions": [(i % 100) / 100]})),
        ):
            headers = {
                TYPE_HEADER: event_type,
                ID_HEADER: f"r{i}",
                NAMESPACE_HEADER: "bench",
                MODEL_HEADER: "churn",
                VERSION_HEADER: "1",
                ROLE_HEADER: "stable",
            }
            out.append(envelope_from_binary(headers, body.encode()))
    return out


def window(rows: int) -> VersionRows:
    rng = np.random.default_rng(0)
    scores = rng.random(rows)
    labels = (rng.random(rows) < scores).astype(np.int64)
    served = np.arange(rows, dtype=np.float64)
    return VersionRows([], served, scores, labels, rng.random(rows), served)


def compute(rows: VersionRows) -> float:
    quality = figures.version_quality("1", "stable", rows, 0.5)
    assert quality.auc is not None and quality.auc.value is not None
    return float(quality.auc.value)


async def ingest_while(
    events: list[Any], busy: Callable[[], asyncio.Future[Any]] | None
) -> dict[str, float]:
    """Ingest until ``busy`` finishes (or for 2 s without it); events/s on the loop."""
    core = MonitorCore()
    task = asyncio.ensure_future(busy()) if busy is not None else None
    started, done, index, clock = time.perf_counter(), 0, 0, 0.0
    worst_gap, last = 0.0, time.perf_counter()
    while (task is not None and not task.done()) or (task is None and done < 2 * 10_000_000):
        for _ in range(64):
            core.ingest(events[index], clock)
            index = (index + 1) % len(events)
            clock += 1e-4
        done += 64
        now = time.perf_counter()
        worst_gap, last = max(worst_gap, now - last), now
        if task is None and now - started >= 2.0:
            break
        await asyncio.sleep(0)
    if task is not None:
        await task
    seconds = time.perf_counter() - started
    return {"eventsPerSecond": round(done / seconds), "seconds": round(seconds, 2),
            "longestStallMs": round(worst_gap * 1000, 1)}  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, Any]:
    events = envelopes(20_000)
    rows = window(args.rows)
    loop = asyncio.get_running_loop()
    compute(window(1000))  # imports paid before any mode is timed

    def repeated(executor: Executor | None) -> Callable[[], asyncio.Future[Any]]:
        async def go() -> None:
            for _ in range(args.repeats):
                if executor is None:
                    compute(rows)
                    await asyncio.sleep(0)
                else:
                    await loop.run_in_executor(executor, compute, rows)

        return lambda: asyncio.ensure_future(go())

    thread = ThreadPoolExecutor(1)
    process = ProcessPoolExecutor(1)
    await loop.run_in_executor(process, compute, window(1000))  # start and import first
    result: dict[str, Any] = {}
    for round_ in range(args.rounds):  # interleaved: other load on a shared machine drifts
        for mode, executor in (("alone", None), ("onLoop", None), ("thread", thread),
                               ("process", process)):  # fmt: skip
            busy = None if mode == "alone" else repeated(executor)
            measured = await ingest_while(events, busy)
            result.setdefault(mode, []).append(measured)
            print(f"round {round_}: {mode:8s} {measured}", flush=True)
    thread.shutdown()
    process.shutdown()
    alone = np.mean([m["eventsPerSecond"] for m in result["alone"]])
    result["ratioToAlone"] = {
        mode: round(float(np.mean([m["eventsPerSecond"] for m in result[mode]]) / alone), 3)
        for mode in ("onLoop", "thread", "process")
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    result = asyncio.run(run(args))
    report = {
        "benchmark": "quality_offloop",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadAverage1mAtStart": round(load, 2),
            "loadAverage1mAtEnd": round(os.getloadavg()[0], 2),
        },  # fmt: skip
        "rows": args.rows,
        "repeats": args.repeats,
        **result,
    }
    print(json.dumps(report["ratioToAlone"], indent=2))
    _repo.write_json(args.output, report)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
