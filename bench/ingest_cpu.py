"""The monitor's CPU per ingested event, in-process: what the fast listener costs per event
without a network client sharing the machine's cores.

The bench's payloads (``bench/monitor_ingest.py``: request + response per call, 20 features,
every 4th call mirrored to a shadow, the embedded token on every event) are fed to the fast
listener's protocol over a stub transport, ``--connections`` connections with one event in
flight each (the next is sent when the durable 200 is written), through the real service:
SQLite group commit and, unless ``--no-prediction-log``, the prediction log. Reports CPU µs
per event of the event-loop thread (``thread_time``; it makes the group commits in place), of
the store thread (WAL checkpoints, and commits only while another writer holds the lock; read
on that thread) and of the process (``process_time``): on a shared machine these move less
with other load than a rate.
``--profile`` prints cProfile's top functions of the loop thread.

``--valgrind`` counts instructions instead (load-independent: the figure to compare code by
on a shared machine): it runs this script under ``valgrind --tool=callgrind`` twice per
tree, with ``--events`` and with ``--base-events``, and reports the difference per event, so
start-up and imports cancel out; the event loop's thread (the main thread) and the whole
process separately. ``--code DIR`` (repeatable) runs the monitor's code from another
checkout (e.g. ``git worktree add /tmp/old <commit>``) with this script's driver, so old and
new code are measured by the same bench in the same run.

    .venv/bin/python bench/ingest_cpu.py [--events 20000 --connections 32]
    .venv/bin/python bench/ingest_cpu.py --valgrind --code /tmp/old --code . \\
        [--events 6000 --base-events 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _repo  # noqa: F401  (the repository on the path)
from monitor_ingest import BENCH_TOKEN, call_events


class StubTransport(_repo.StubTransport):
    """Counts replies; resolves the waiting sender's future on each."""

    def __init__(self) -> None:
        self.replies = 0
        self.waiter: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        self.replies += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


def bench_payloads(count: int) -> list[bytes]:
    """At least ``count`` events of ``call_events``'s calls, each call with its own request
    id, made from 100 templates (features and scores repeat every 100 calls) by replacing
    the id: building them costs little next to ingesting them (``--valgrind`` counts both)."""
    templates = [call_events(k, 4) for k in range(100)]
    payloads: list[bytes] = []
    index = 0
    while len(payloads) < count:
        template_id, call_id = b"ce-id: req-%d\r\n" % (index % 100), b"ce-id: req-%d\r\n" % index
        payloads += [event.replace(template_id, call_id) for event in templates[index % 100]]
        index += 1
    return payloads


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # Imported here: ``--code`` decides which checkout's monitor this is.
    from services.monitor.config import AuthSettings, ModelConfig, MonitorSettings
    from services.monitor.fast_ingest import IngestProtocol
    from services.monitor.service import MonitorService

    with tempfile.TemporaryDirectory() as data_dir:
        # No compaction pass during the run: it works in another process, and starting
        # that process would show up in this one's counts.
        settings = MonitorSettings(
            data_dir=data_dir, port=0, prediction_log=args.prediction_log,
            drift_interval_s=3600, auth=AuthSettings(token=BENCH_TOKEN),
            prediction_log_compaction_interval_s=3600,
        )  # fmt: skip
        service = MonitorService(settings)
        await service.start()
        try:  # as ``python -m services.monitor`` runs it (older trees have no tune_gc)
            from services.monitor.service import tune_gc
        except ImportError:
            pass
        else:
            tune_gc()
        try:
            service.core.set_config(("bench", "churn"), ModelConfig(window_size=5000))
            service.configured.add(("bench", "churn"))
            payloads = bench_payloads(2 * args.events + args.connections)  # warm-up, run
            connections = []
            for _ in range(args.connections):
                protocol, transport = IngestProtocol(service, set()), StubTransport()
                protocol.connection_made(transport)  # type: ignore[arg-type]
                connections.append((protocol, transport))
            loop = asyncio.get_running_loop()

            async def send(first: int, protocol: Any, transport: StubTransport) -> None:
                for index in range(first, first + args.events, args.connections):
                    transport.waiter = loop.create_future()
                    protocol.data_received(payloads[index])
                    await transport.waiter

            async def phase(offset: int) -> None:
                await asyncio.gather(
                    *(send(offset + k, p, t) for k, (p, t) in enumerate(connections))
                )

            await phase(0)  # warm-up: windows allocated, imports paid
            profile = None
            if args.profile:
                import cProfile

                profile = cProfile.Profile(time.thread_time)  # CPU: GIL waits are not its cost
                profile.enable()
            store_cpu = await loop.run_in_executor(service._store_thread, time.thread_time)
            loop_cpu, cpu, wall = time.thread_time(), time.process_time(), time.perf_counter()
            await phase(args.events)  # fresh request ids
            loop_cpu = time.thread_time() - loop_cpu
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            # The store thread's CPU (SQLite commits, the prediction journal), read on it.
            store_cpu = (
                await loop.run_in_executor(service._store_thread, time.thread_time) - store_cpu
            )
            if profile is not None:
                import pstats

                profile.disable()
                pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)
        finally:
            await service.stop()
    import services.monitor

    return {
        "code": str(Path(services.monitor.__file__).parent.parent.parent),
        "events": args.events,
        "predictionLog": args.prediction_log,
        "loopCpuMicrosPerEvent": round(loop_cpu / args.events * 1e6, 1),
        "storeThreadCpuMicrosPerEvent": round(store_cpu / args.events * 1e6, 1),
        "processCpuMicrosPerEvent": round(cpu / args.events * 1e6, 1),
        "eventsPerSecondWall": round(args.events / wall),
    }


def _callgrind_totals(out_dir: Path) -> tuple[int, int]:
    """(instructions of the main thread, of all threads) from callgrind's per-thread files."""
    main = total = 0
    for path in out_dir.glob("callgrind.out*"):
        match = re.search(r"^(?:totals|summary): (\d+)", path.read_text(), re.MULTILINE)
        count = int(match.group(1)) if match else 0
        total += count
        if path.name.endswith("-01"):  # thread 1: the main thread, where the loop runs
            main += count
    return main, total


def instructions(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Instructions per event for each ``--code`` tree: (run at --events) − (run at
    --base-events), divided by the events between them (each run also warms up with as many)."""
    results = []
    for code in args.code or [str(_repo.ROOT)]:
        counts = {}
        for events in (args.base_events, args.events):
            with tempfile.TemporaryDirectory() as out:
                command = [
                    "valgrind", "--tool=callgrind", "--separate-threads=yes",
                    f"--callgrind-out-file={out}/callgrind.out", sys.executable, __file__,
                    "--events", str(events), "--connections", str(args.connections),
                    "--code", code,
                ]  # fmt: skip
                if not args.prediction_log:
                    command.append("--no-prediction-log")
                subprocess.run(command, check=True, capture_output=True)
                counts[events] = _callgrind_totals(Path(out))
        processed = 2 * (args.events - args.base_events)  # the warm-up phase doubles each run
        loop = (counts[args.events][0] - counts[args.base_events][0]) / processed
        whole = (counts[args.events][1] - counts[args.base_events][1]) / processed
        results.append({
            "code": code, "predictionLog": args.prediction_log, "eventsCounted": processed,
            "loopThreadInstructionsPerEvent": round(loop),
            "processInstructionsPerEvent": round(whole),
        })  # fmt: skip
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=None, help="20000; 6000 with --valgrind")
    parser.add_argument("--base-events", type=int, default=2000, help="with --valgrind")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-prediction-log", dest="prediction_log", action="store_false")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="with --profile: cProfile's order")
    parser.add_argument("--top", type=int, default=30, help="with --profile: functions shown")
    parser.add_argument("--valgrind", action="store_true", help="count instructions instead")
    parser.add_argument("--code", action="append", help="the checkout whose monitor runs")
    args = parser.parse_args()
    if args.valgrind:
        args.events = args.events or 6000
        instructions(args)
        return
    args.events = args.events or 20_000
    if args.code:
        sys.path.insert(0, str(Path(args.code[-1]).resolve()))
    import uvloop  # the monitor's loop (services/monitor/__main__.py)

    uvloop.install()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
