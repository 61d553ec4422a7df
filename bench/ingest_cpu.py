"""The monitor's CPU per ingested event, in-process: what the fast listener costs per event
without a network client sharing the machine's cores.

The bench's payloads (``bench/monitor_ingest.py``: request + response per call, 20 features,
every 4th call mirrored to a shadow, the embedded token on every event) are fed to the fast
listener's protocol over a stub transport, ``--connections`` connections with one event in
flight each (the next is sent when the durable 200 is written), through the real service:
SQLite group commit and, unless ``--no-prediction-log``, the prediction log. Reports CPU µs
per event of the event-loop thread (``thread_time``), of the store thread (SQLite commits and
the prediction journal, read on that thread) and of the process (``process_time``): on a shared machine these move less with other load than a rate.
``--profile`` prints cProfile's top functions of the loop thread.

    .venv/bin/python bench/ingest_cpu.py [--events 20000 --connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from typing import Any

import _repo  # noqa: F401  (the repository on the path)
from monitor_ingest import BENCH_TOKEN, call_events

from services.monitor.config import AuthSettings, ModelConfig, MonitorSettings
from services.monitor.fast_ingest import IngestProtocol
from services.monitor.service import MonitorService


class StubTransport:
    """Counts replies; resolves the waiting sender's future on each."""

    def __init__(self) -> None:
        self.replies = 0
        self.waiter: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        self.replies += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = MonitorSettings(
            data_dir=data_dir, port=0, prediction_log=args.prediction_log,
            drift_interval_s=3600, auth=AuthSettings(token=BENCH_TOKEN),
        )  # fmt: skip
        service = MonitorService(settings)
        await service.start()
        try:
            service.core.set_config(("bench", "churn"), ModelConfig(window_size=5000))
            service.configured.add(("bench", "churn"))
            calls = args.events // 2 + 100
            payloads = [e for i in range(2 * calls) for e in call_events(i, 4)]
            connections = []
            for _ in range(args.connections):
                protocol, transport = IngestProtocol(service, set()), StubTransport()
                protocol.connection_made(transport)  # type: ignore[arg-type]
                connections.append((protocol, transport))
            loop = asyncio.get_running_loop()

            async def send(first: int, protocol: IngestProtocol, transport: StubTransport) -> None:
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

                profile = cProfile.Profile()
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
                pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        finally:
            await service.stop()
    return {
        "events": args.events,
        "predictionLog": args.prediction_log,
        "loopCpuMicrosPerEvent": round(loop_cpu / args.events * 1e6, 1),
        "storeThreadCpuMicrosPerEvent": round(store_cpu / args.events * 1e6, 1),
        "processCpuMicrosPerEvent": round(cpu / args.events * 1e6, 1),
        "eventsPerSecondWall": round(args.events / wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-prediction-log", dest="prediction_log", action="store_false")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    import uvloop  # the monitor's loop (services/monitor/__main__.py)

    uvloop.install()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
