"""Monitor ingestion benchmark: sustained KServe-logger CloudEvents/s with bounded memory.

Starts the monitor (``python -m services.monitor``) and, as the peer, a null CloudEvents sink
(aiohttp answering 200 without doing anything) as subprocesses, drives each with the same
keep-alive HTTP load (binary-mode request+response events, 20 features, shadow mirror on a
fraction of calls), samples the server's RSS every second and prints the monitor's rate as
a ratio of the null sink's. Results go to stdout and ``bench/results/monitor_ingest.json``.

    .venv/bin/python bench/monitor_ingest.py --seconds 20 --connections 16
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _repo  # noqa: F401  (the test harness on the path)
import psutil

from tests.support.processes import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "monitor_ingest.json"
FEATURES = 20


#: The monitor runs as shipped, with authentication on: every event carries the embedded token
#: (``--token-file``), so the figures include the token check.
BENCH_TOKEN = "bench-monitor-token"
AUTH_HEADER = f"Authorization: Bearer {BENCH_TOKEN}\r\n"


def event_bytes(kind: str, request_id: str, version: str, role: str, body: bytes) -> bytes:
    ce_type = f"org.kubeflow.serving.inference.{kind}"
    extra = "ce-kubeloopstatus: 200\r\nce-kubelooplatencyms: 7.5\r\n" if kind == "response" else ""
    head = (
        "POST / HTTP/1.1\r\nHost: monitor\r\nContent-Type: application/json\r\n"
        f"{AUTH_HEADER}Content-Length: {len(body)}\r\nce-specversion: 1.0\r\nce-type: {ce_type}\r\n"
        f"ce-id: {request_id}\r\nce-source: http://bench/\r\nce-namespace: bench\r\n"
        f"ce-inferenceservicename: churn-{version}\r\nce-kubeloopmodel: churn\r\n"
        f"ce-kubeloopversion: {version}\r\nce-kubelooprole: {role}\r\n{extra}\r\n"
    )
    return head.encode() + body


def call_events(index: int, shadow_every: int) -> list[bytes]:
    """The 2 (or 4, when mirrored) events one inference call produces."""
    request_id = f"req-{index}"
    features = [round(((index * 7 + j * 13) % 100) / 10.0, 2) for j in range(FEATURES)]
    request = json.dumps({"instances": [features]}).encode()
    score = ((index * 31) % 100) / 100.0
    events = [
        event_bytes("request", request_id, "1", "stable", request),
        event_bytes("response", request_id, "1", "stable", b'{"predictions": [%.2f]}' % score),
    ]
    if shadow_every and index % shadow_every == 0:
        shadow_score = min(1.0, score + 0.05)
        events += [
            event_bytes("request", request_id, "2", "shadow", request),
            event_bytes(
                "response", request_id, "2", "shadow", b'{"predictions": [%.2f]}' % shadow_score
            ),
        ]
    return events


async def drive(port: int, payloads: list[bytes], seconds: float, connections: int) -> int:
    """Keep-alive connections, one event in flight each; returns events answered 2xx."""
    deadline = time.perf_counter() + seconds
    answered = [0]
    failures = [0]

    async def one_connection(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        index = offset
        while time.perf_counter() < deadline:
            writer.write(payloads[index % len(payloads)])
            index += connections
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if head[9:10] == b"2":
                answered[0] += 1
            else:
                failures[0] += 1
        writer.close()

    await asyncio.gather(*(one_connection(i) for i in range(connections)))
    if failures[0]:
        print(f"  warning: {failures[0]} events answered non-2xx", file=sys.stderr)
    return answered[0]


def wait_ready(port: int, timeout_s: float = 60.0) -> None:
    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    wait_for(healthy, timeout_s, f"the server on port {port}", interval_s=0.1)


def monitor_command(data_dir: str) -> tuple[int, int, list[str]]:
    """The monitor on two free ports (API, fast ingest): (port, ingest port, argv)."""
    port, ingest_port = free_port(), free_port()
    token_file = Path(data_dir) / "bench-token"
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    token_file.write_text(BENCH_TOKEN)
    command = [
        sys.executable, "-m", "services.monitor", "--port", str(port),
        "--ingest-port", str(ingest_port), "--data-dir", data_dir,
        "--token-file", str(token_file),
    ]  # fmt: skip
    return port, ingest_port, command


def get_json(port: int, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {BENCH_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def start_server(command: list[str], ready_port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_ready(ready_port)
    except Exception:
        server.kill()
        raise
    return server


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=60)


@contextlib.contextmanager
def configured_monitor(
    command: list[str], port: int, window_size: int
) -> Iterator[subprocess.Popen[bytes]]:
    """The monitor started, its bench model configured; stopped on the way out."""
    server = start_server(command, port)
    try:
        put_config(port, window_size)
        yield server
    finally:
        stop_server(server)


def measure(
    server: subprocess.Popen[bytes], port: int, payloads: list[bytes], args: argparse.Namespace
) -> dict[str, Any]:
    """Drive ``port`` for ``args.seconds``; server CPU and RSS come from its process."""
    process = psutil.Process(server.pid)
    asyncio.run(drive(port, payloads, args.warmup, args.connections))
    rss_samples: list[float] = []
    cpu_before = process.cpu_times()

    async def sample_rss() -> None:
        while True:
            rss_samples.append(process.memory_info().rss / 2**20)
            await asyncio.sleep(1.0)

    async def run() -> int:
        sampler = asyncio.create_task(sample_rss())
        try:
            return await drive(port, payloads, args.seconds, args.connections)
        finally:
            sampler.cancel()

    started = time.perf_counter()
    events = asyncio.run(run())
    elapsed = time.perf_counter() - started
    cpu_after = process.cpu_times()
    cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    cpu_us = cpu_s / events * 1e6 if events else None
    return {
        "events": events,
        "seconds": round(elapsed, 2),
        "eventsPerSecond": round(events / elapsed, 1),
        "serverCpuCores": round(cpu_s / elapsed, 2),
        "serverCpuMicrosPerEvent": round(cpu_us, 1) if cpu_us else None,
        # What one fully available core would sustain at that CPU cost per event.
        "eventsPerCpuSecond": round(1e6 / cpu_us) if cpu_us else None,
        "rssMiBFirstSecond": round(rss_samples[0], 1) if rss_samples else None,
        "rssMiBLast": round(rss_samples[-1], 1) if rss_samples else None,
        "rssMiBMax": round(max(rss_samples), 1) if rss_samples else None,
        "rssMiBEvery5s": [round(sample, 1) for sample in rss_samples[::5]],
    }


NULL_SINK = """
import sys
from aiohttp import web
async def sink(request):
    await request.read()
    return web.Response(body=b'{"accepted":1}', content_type="application/json")
async def health(request):
    return web.json_response({"ready": True})
app = web.Application()
app.add_routes([web.post("/", sink), web.get("/healthz", health)])
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


RAW_SINK = """
import sys, asyncio, httptools
RESP = (b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: 14"
        b"\\r\\n\\r\\n{\\"accepted\\":1}")
class Sink(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.parser, self.body = transport, httptools.HttpRequestParser(self), []
    def data_received(self, data):
        self.parser.feed_data(data)
    def on_body(self, body):
        self.body.append(body)
    def on_message_complete(self):
        b"".join(self.body); self.body = []
        self.transport.write(RESP)
async def main():
    server = await asyncio.get_running_loop().create_server(Sink, "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
asyncio.run(main())
"""


def run_peer(code: str, payloads: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    server = start_server([sys.executable, "-c", code, str(port)], port)
    try:
        return measure(server, port, payloads, args)
    finally:
        stop_server(server)


def put_config(port: int, window_size: int) -> None:
    config = json.dumps({"windowSize": window_size, "shadowVersion": "2"}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/bench/churn/config",
        data=config,
        method="PUT",
        headers={"Authorization": f"Bearer {BENCH_TOKEN}"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def run_monitor(payloads: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        port, ingest_port, command = monitor_command(data_dir)
        with configured_monitor(command, port, args.window_size) as server:
            fast = measure(server, ingest_port, payloads, args)
            aiohttp_route = measure(server, port, payloads, args)
        # kill -9 recovery is tested; here a clean restart shows what the journal brings back.
        server = start_server(command, port)
        try:
            figures = get_json(port, "/v1/models/bench/churn/figures")["versions"]
        finally:
            stop_server(server)
        db_bytes = sum(p.stat().st_size for p in Path(data_dir).glob("monitor.db*"))
    return {
        "fastIngestPort": fast,
        "aiohttpPort": aiohttp_route,
        "windowAfterRestart": {
            version: {"requests": f["requests"], "pairedRequests": f["pairedRequests"]}
            for version, f in figures.items()
        },
        "dbBytesAfterRun": db_bytes,
    }


def core_cost(calls: int, shadow_every: int) -> dict[str, Any]:
    """CPU per event of parsing + windows + journal row, in-process (no HTTP, no threads)."""
    from services.monitor.core import MonitorCore
    from services.monitor.parsing import envelope_from_binary
    from services.monitor.store import event_row

    events = []
    for raw in (event for i in range(calls) for event in call_events(i, shadow_every)):
        head, body = raw.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        events.append((headers, body))
    core = MonitorCore()
    started = time.process_time()
    for headers, body in events:
        envelope = envelope_from_binary(headers, body)
        core.ingest(envelope, time.time())
        event_row(envelope, 0.0)
    cpu_us = (time.process_time() - started) / len(events) * 1e6
    return {"events": len(events), "cpuMicrosPerEvent": round(cpu_us, 1)}


def run_long(args: argparse.Namespace) -> None:
    payloads = [event for i in range(args.calls) for event in call_events(i, args.shadow_every)]
    with tempfile.TemporaryDirectory() as data_dir:
        port, ingest_port, command = monitor_command(data_dir)
        with configured_monitor(command, port, args.window_size) as server:
            fast = measure(server, ingest_port, payloads, args)
            health = get_json(port, "/healthz")
    result = {
        "benchmark": "monitor_ingest_long",
        "machine": {"cpus": os.cpu_count(), "loadAverage1mAtEnd": round(os.getloadavg()[0], 2)},
        "load": {"connections": args.connections, "seconds": args.seconds},
        "fastIngestPort": fast,
        "healthAtEnd": health,
    }
    print(json.dumps(result, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--window-size", type=int, default=5000)
    parser.add_argument("--shadow-every", type=int, default=4, help="mirror every Nth call")
    parser.add_argument("--calls", type=int, default=50_000, help="distinct calls cycled")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--monitor-only",
        action="store_true",
        help="only the fast ingest port, no peers (for long memory-boundedness runs)",
    )
    args = parser.parse_args()
    if args.monitor_only:
        run_long(args)
        return

    payloads = [event for i in range(args.calls) for event in call_events(i, args.shadow_every)]
    peers = {
        "nullSinkHttptools": run_peer(RAW_SINK, payloads, args),
        "nullSinkAiohttp": run_peer(NULL_SINK, payloads, args),
    }
    monitor = run_monitor(payloads, args)
    monitor["coreOnly"] = core_cost(min(args.calls, 20_000), args.shadow_every)
    fast, slow = monitor["fastIngestPort"], monitor["aiohttpPort"]
    result = {
        "benchmark": "monitor_ingest",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadAverage1mAtEnd": round(os.getloadavg()[0], 2),
        },
        "load": {
            "connections": args.connections,
            "inFlightPerConnection": 1,
            "featuresPerRequest": FEATURES,
            "shadowEvery": args.shadow_every,
            "windowSize": args.window_size,
            "seconds": args.seconds,
        },
        "peers": peers,
        "monitor": monitor,
        "ratios": {
            "fastIngestToHttptoolsNullSink": round(
                fast["eventsPerSecond"] / peers["nullSinkHttptools"]["eventsPerSecond"], 3
            ),
            "aiohttpPortToAiohttpNullSink": round(
                slow["eventsPerSecond"] / peers["nullSinkAiohttp"]["eventsPerSecond"], 3
            ),
        },
    }
    print(json.dumps(result, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
