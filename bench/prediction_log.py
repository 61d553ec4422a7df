"""Prediction-log benchmark: does the log keep up with the monitor's ingest rate?

Three parts, one run:

1. **Live**: the monitor (``python -m services.monitor --ingest-port …``, prediction log on,
   compaction every ``--compaction-interval`` s) driven at a paced ``--rate`` events/s
   (default 15,000: the fast port's rate in ``docs/benchmarks.md``) for ``--seconds``, the
   load of ``bench/monitor_ingest.py`` (request + response per call, every 4th call mirrored
   to a shadow). Every second it prints the rate reached, the SQLite journal backlog and the
   prediction log's backlog (journaled calls not yet in Parquet); "no growing backlog" means
   the backlog left after each compaction does not grow from one compaction to the next.
   At the end the monitor is stopped and the Parquet rows are counted against the calls.
2. **Peer**: the same load against the same monitor with ``--no-prediction-log``, run for
   half of ``--peer-seconds`` before the live part and half after it (other load on a shared
   machine drifts; bracketing evens it out): the ratio of the rates is what the log costs
   the ingest path.
3. **Capacity**: compaction alone, in-process, on ``--capacity-calls`` synthetic journal rows
   (20 features each): calls compacted per second of compaction against the calls per second
   the monitor journals at ``--rate``; the ratio is the log's headroom on this machine.

    .venv/bin/python bench/prediction_log.py [--rate 15000 --seconds 60 --peer-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import _repo
import numpy as np
import psutil
from monitor_ingest import (
    call_events,
    monitor_command,
    put_config,
    start_server,
    stop_server,
)

RESULTS = _repo.ROOT / "bench" / "results" / "prediction_log.json"


def health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


async def paced_drive(
    port: int, payloads: list[bytes], rate: float, seconds: float, connections: int
) -> tuple[list[int], list[int]]:
    """Each connection sends at rate/connections, one event in flight (the reply waits for
    the commit); returns events sent (offered) and answered 2xx, per elapsed second."""
    offered = [0] * (int(seconds) + 2)
    answered = [0] * (int(seconds) + 2)
    started = time.perf_counter()
    interval = connections / rate

    async def one(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        index, sent = offset, 0
        while True:
            now = time.perf_counter() - started
            if now >= seconds:
                break
            ahead = sent * interval - now
            if ahead > 0:
                await asyncio.sleep(ahead)
            writer.write(payloads[index % len(payloads)])
            offered[int(time.perf_counter() - started)] += 1
            index += connections
            sent += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if head[9:10] == b"2":
                answered[int(time.perf_counter() - started)] += 1
        writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))
    return offered[: int(seconds)], answered[: int(seconds)]


def cpu_seconds(process: psutil.Process) -> tuple[float, float]:
    """CPU (user + system) of the monitor process, and of its children (the compaction
    worker, started by the first pass) so far."""
    own = process.cpu_times()
    children = 0.0
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            children += times.user + times.system
    return own.user + own.system, children


async def sample_health(
    port: int, seconds: float, samples: list[dict[str, Any]], process: psutil.Process
) -> None:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        h = await loop.run_in_executor(None, health, port)
        log = h.get("predictionLog") or {}
        sample = {
            "t": round(time.perf_counter() - started, 1),
            "compactorCpu": cpu_seconds(process)[1],
            "events": sum(h["events"].values()),
            "journalBacklog": h["journalBacklog"],
            "logBacklog": log.get("backlog"),
            "lastCompactionAt": (log.get("lastCompaction") or {}).get("at"),
            "lastCompactionSeconds": (log.get("lastCompaction") or {}).get("seconds"),
            "lastCompactionCalls": (log.get("lastCompaction") or {}).get("calls"),
        }
        samples.append(sample)
        rate = sample["events"] - samples[-2]["events"] if len(samples) > 1 else 0
        print(
            f"  t={sample['t']:5.1f}s  events/s={rate:6d}  journal backlog="
            f"{sample['journalBacklog']:6d}  log backlog={sample['logBacklog']}  "
            f"last compaction={sample['lastCompactionCalls']} calls in "
            f"{sample['lastCompactionSeconds']} s",
            flush=True,
        )
        await asyncio.sleep(1.0)


def after_compactions(samples: list[dict[str, Any]]) -> list[int]:
    """The log backlog sampled just after each compaction (what a compaction left behind)."""
    out: list[int] = []
    last_at = None
    for sample in samples:
        at = sample["lastCompactionAt"]
        if at is not None and at != last_at and sample["logBacklog"] is not None:
            out.append(sample["logBacklog"])
        last_at = at
    return out


def steady_compactor_cpu(samples: list[dict[str, Any]]) -> float | None:
    """The compaction worker's CPU per event between the first and the last compaction seen:
    without the worker's start (its imports, ~1-2 s of CPU, are paid once per process)."""
    done = [s for s in samples if s["lastCompactionAt"] is not None]
    firsts = {s["lastCompactionAt"]: s for s in reversed(done)}  # first sample after each pass
    passes = sorted(firsts.values(), key=lambda s: s["t"])
    if len(passes) < 2 or passes[-1]["events"] <= passes[0]["events"]:
        return None
    cpu = passes[-1]["compactorCpu"] - passes[0]["compactorCpu"]
    return round(cpu / (passes[-1]["events"] - passes[0]["events"]) * 1e6, 1)


def backlog_at(samples: list[dict[str, Any]], seconds: tuple[int, ...]) -> dict[str, Any]:
    """The log backlog sampled nearest each of ``seconds`` into the run."""
    out: dict[str, Any] = {}
    for second in seconds:
        if samples:
            nearest = min(samples, key=lambda sample: abs(sample["t"] - second))
            out[f"{second}s"] = nearest["logBacklog"]
    return out


def live(args: argparse.Namespace, payloads: list[bytes], with_log: bool) -> dict[str, Any]:
    seconds = args.seconds if with_log else args.peer_seconds / 2
    with tempfile.TemporaryDirectory() as data_dir:
        port, ingest_port, command = monitor_command(data_dir)
        command += ["--drift-interval", "3600"]
        if with_log:
            command += ["--prediction-log-compaction-interval", str(args.compaction_interval)]
        else:
            command += ["--no-prediction-log"]
        server = start_server(command, port)
        samples: list[dict[str, Any]] = []
        process = psutil.Process(server.pid)
        try:
            put_config(port, args.window_size)

            async def run() -> tuple[list[int], list[int]]:
                sampler = asyncio.create_task(sample_health(port, seconds, samples, process))
                try:
                    return await paced_drive(
                        ingest_port, payloads, args.rate, seconds, args.connections
                    )
                finally:
                    await sampler

            print(f"{'monitor + prediction log' if with_log else 'peer: no prediction log'}:")
            cpu_before = cpu_seconds(process)
            offered, per_second = asyncio.run(run())
            cpu_after = cpu_seconds(process)
            end = health(port)
        finally:
            stop_server(server)  # SIGTERM: a final flush and compaction
        answered = sum(per_second)
        own, children = (after - before for after, before in zip(cpu_after, cpu_before,
                                                                  strict=True))  # fmt: skip
        result: dict[str, Any] = {
            "seconds": seconds,
            "targetEventsPerSecond": args.rate,
            "eventsOffered": sum(offered),
            "eventsOfferedPerSecond": round(sum(offered) / seconds, 1),
            "eventsAnswered": answered,
            "eventsPerSecond": round(answered / seconds, 1),
            "eventsPerSecondEach": per_second,
            # The monitor's CPU per acknowledged event; the compaction worker's apart.
            "monitorCpuMicrosPerEvent": round(own / max(answered, 1) * 1e6, 1),
            "compactorCpuMicrosPerEvent": round(children / max(answered, 1) * 1e6, 1),
            "journalBacklogMax": max((s["journalBacklog"] for s in samples), default=None),
            "journalDropped": end["journalDropped"],
        }
        if with_log:
            import pyarrow.dataset as ds

            kept = after_compactions(samples)
            result["logBacklogAt"] = backlog_at(samples, (0, 30, 60))
            result["compactorSteadyCpuMicrosPerEvent"] = steady_compactor_cpu(samples)
            dataset = ds.dataset(Path(data_dir) / "predictions", partitioning="hive")
            result.update(
                {
                    "compactionInterval": args.compaction_interval,
                    "logBacklogEverySecond": [s["logBacklog"] for s in samples],
                    "logBacklogAfterEachCompaction": kept,
                    "logBacklogMax": max((s["logBacklog"] or 0 for s in samples), default=0),
                    "compactionSeconds": sorted(
                        {
                            (s["lastCompactionAt"], s["lastCompactionSeconds"])
                            for s in samples
                            if s["lastCompactionAt"]
                        }
                    ),  # fmt: skip
                    "parquetRowsAfterStop": dataset.count_rows(),
                    "parquetBytes": sum(
                        p.stat().st_size
                        for p in (Path(data_dir) / "predictions").rglob("*")
                        if p.is_file()
                    ),  # fmt: skip
                }
            )
            result["compactionSeconds"] = [s for _, s in result["compactionSeconds"]]
    return result


def capacity(calls: int, rate: float, shadow_every: int) -> dict[str, Any]:
    """Compaction alone on ``calls`` journal rows, and the journal insert cost per call."""
    import fsspec.core  # noqa: F401  (imports are paid once per process, not per pass)
    import pyarrow.parquet  # noqa: F401

    from services.monitor.core import ServedPrediction
    from services.monitor.predlog import PredictionLog
    from services.monitor.store import MonitorStore

    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(20)]
    predictions = [
        ServedPrediction(
            "bench", "churn", "1", "stable", f"req-{i}", f"req-{i}", 1_764_806_400.0 + i / 7500,
            200, 7.5, names, rng.random((1, 20)), (), rng.random(1), None,
        )
        for i in range(calls)
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        store = MonitorStore(Path(work) / "monitor.db")
        log = PredictionLog(str(Path(work) / "predictions"), Path(work) / "monitor.db", 30)
        log.open(store.db)
        started = time.process_time()
        # 16 calls per commit: what the live part's 32 connections (one event in flight each,
        # a call is two events) give the group commit.
        for start in range(0, calls, 16):
            batch = predictions[start : start + 16]
            store.write_batch([], [], [functools.partial(log.write, predictions=batch)])
        journal_cpu = time.process_time() - started
        wall = time.perf_counter()
        cpu = time.process_time()
        done = log.compact(now=1_764_806_400.0 + calls / 7500, replay_margin_s=30)
        compact_cpu = time.process_time() - cpu
        compact_wall = time.perf_counter() - wall
        store.close()
    # Calls the monitor journals at `rate` events/s: every call is 2 events (request and
    # response), a mirrored one is a call of the shadow version too (2 more events).
    events_per_call = 2.0
    calls_needed = rate / events_per_call
    return {
        "calls": done.rows,
        "files": done.files,
        "journalInsertMicrosPerCall": round(journal_cpu / calls * 1e6, 1),
        "compactionCpuMicrosPerCall": round(compact_cpu / calls * 1e6, 1),
        "compactionCallsPerSecondWall": round(calls / compact_wall),
        "callsPerSecondAtRate": calls_needed,
        "headroom": round(calls / compact_wall / calls_needed, 2),
        "shadowEvery": shadow_every,
    }


def print_summary(result: dict[str, Any], runs: list[tuple[str, dict[str, Any] | None]]) -> None:
    machine = result["machine"]
    print(f"\nload average (1 min): {machine['loadAverage1mAtStart']} at the start, "
          f"{machine['loadAverage1mAtEnd']} at the end; {machine['cpus']} CPUs")  # fmt: skip
    print(f"{'':16} {'offered/s':>10} {'acked/s':>9} {'backlog at 0/30/60 s':>24} "
          f"{'CPU us/event: monitor':>22} {'+ compactor (steady)':>21}")  # fmt: skip
    for label, run in runs:
        if run is None:
            continue
        backlog = "/".join(str(v) for v in (run.get("logBacklogAt") or {}).values()) or "-"
        print(f"{label:16} {run['eventsOfferedPerSecond']:>10,.0f} {run['eventsPerSecond']:>9,.0f}"
              f" {backlog:>24} {run['monitorCpuMicrosPerEvent']:>22}"
              f" {run['compactorCpuMicrosPerEvent']:>10} ({run.get('compactorSteadyCpuMicrosPerEvent')})"
              )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=15_000.0, help="target events/s")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--peer-seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--compaction-interval", type=float, default=10.0)
    parser.add_argument("--window-size", type=int, default=5000)
    parser.add_argument("--shadow-every", type=int, default=4)
    parser.add_argument("--calls", type=int, default=50_000, help="distinct calls cycled")
    parser.add_argument("--capacity-calls", type=int, default=200_000)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    # Unique ids per call (cycling would make replays of ids the log drops as duplicates).
    calls = int(args.rate * max(args.seconds, args.peer_seconds) / 2) + 1000
    payloads = [event for i in range(calls) for event in call_events(i, args.shadow_every)]
    load_before = os.getloadavg()[0]
    before = None if args.skip_peer else live(args, payloads, with_log=False)
    with_log = live(args, payloads, with_log=True)
    after = None if args.skip_peer else live(args, payloads, with_log=False)
    peer = None
    if before is not None and after is not None:
        answered = before["eventsAnswered"] + after["eventsAnswered"]
        peer = {
            "before": before,
            "after": after,
            "eventsPerSecond": round(answered / (before["seconds"] + after["seconds"]), 1),
            "monitorCpuMicrosPerEvent": round(
                (
                    before["monitorCpuMicrosPerEvent"] * before["eventsAnswered"]
                    + after["monitorCpuMicrosPerEvent"] * after["eventsAnswered"]
                )
                / max(answered, 1),
                1,
            ),  # fmt: skip
        }
    cap = capacity(args.capacity_calls, args.rate, args.shadow_every)
    kept = with_log["logBacklogAfterEachCompaction"]
    result = {
        "benchmark": "prediction_log",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadAverage1mAtStart": round(load_before, 2),
            "loadAverage1mAtEnd": round(os.getloadavg()[0], 2),
        },
        "load": {
            "targetEventsPerSecond": args.rate,
            "connections": args.connections,
            "shadowEvery": args.shadow_every,
            "featuresPerRequest": 20,
        },
        "withPredictionLog": with_log,
        "peerWithoutPredictionLog": peer,
        "compactionCapacity": cap,
        "verdict": {
            "backlogGrows": len(kept) >= 3 and kept[-1] > 2 * max(kept[0], 1) + args.rate,
            "rateRatioLogToNoLog": (
                round(with_log["eventsPerSecond"] / peer["eventsPerSecond"], 3) if peer else None
            ),
            "compactionHeadroomAtTargetRate": cap["headroom"],
            "monitorCpuRatioLogToNoLog": (
                round(with_log["monitorCpuMicrosPerEvent"] / peer["monitorCpuMicrosPerEvent"], 3)
                if peer
                else None
            ),
            # What one core of its own would sustain at the measured CPU per event (the
            # monitor's event loop is one thread; the compaction worker is another process).
            "eventsPerMonitorCpuSecond": round(1e6 / with_log["monitorCpuMicrosPerEvent"]),
        },
    }
    print(json.dumps({k: v for k, v in result.items() if k != "withPredictionLog"}, indent=2))
    print_summary(result, [("no log, before", before), ("prediction log", with_log),
                           ("no log, after", after)])  # fmt: skip
    _repo.write_json(args.output, result)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
