"""Feedback ingestion benchmark: labels/s on the monitor's fast ingest port, bounded memory.

Starts the monitor (``python -m services.monitor --ingest-port``), serves ``--calls``
inference calls through it (a quarter mirrored to a shadow version, so a label joins two
predictions), then drives keep-alive connections that POST CloudEvents batches of
``--batch`` labels to ``/v1/models/bench/churn/feedback``: each label has a fresh event id;
most name a served request (joined, or ``relabeled`` once every request has its label),
``--orphan-every``-th names a request never served (it waits ``labelMaturitySeconds``, then
is an orphan). Every answer is sent only after its labels are committed to SQLite.

Same run, same load, as peers: the monitor's aiohttp API port, and a null httptools sink
(parses HTTP, answers 200, does nothing): the ratios say what the work costs. The monitor's
RSS is sampled every second; the join's in-memory sizes (``/healthz`` ``feedback``) are read
at the end. Results go to stdout and ``bench/results/feedback.json``.

    .venv/bin/python bench/feedback.py --seconds 20 --connections 8 --batch 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import _repo  # noqa: F401  (the test harness on the path)
from monitor_ingest import (
    AUTH_HEADER,
    BENCH_TOKEN,
    RAW_SINK,
    call_events,
    get_json,
    measure,
    monitor_command,
    run_peer,
    start_server,
    stop_server,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "feedback.json"
PATH = "/v1/models/bench/churn/feedback"


def label_batches(args: argparse.Namespace, count: int, first_id: int = 0) -> list[bytes]:
    """``count`` HTTP requests, each a batch of ``args.batch`` feedback events with ids from
    ``first_id`` on (a run that cycles through them sends duplicates after one pass)."""
    from contracts import cloudevents as ce

    requests: list[bytes] = []
    label_id = first_id
    for _ in range(count):
        events = []
        for _ in range(args.batch):
            call = label_id % args.calls
            request_id = f"never-{label_id}" if label_id % args.orphan_every == 0 else f"req-{call}"
            events.append(
                {
                    ce.ATTR_SPECVERSION: ce.SPECVERSION,
                    ce.ATTR_TYPE: ce.TYPE_FEEDBACK,
                    ce.ATTR_ID: f"label-{label_id}",
                    ce.ATTR_SOURCE: "bench",
                    "data": {
                        "requestId": request_id,
                        "label": (call * 31 % 100) // 50,
                        "observedAt": 1.7e9 + label_id,
                    },
                }
            )
            label_id += 1
        body = json.dumps(events).encode()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: monitor\r\nContent-Type: {ce.BATCH_CONTENT_TYPE}\r\n"
            f"{AUTH_HEADER}Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


async def send_once(port: int, payloads: list[bytes], connections: int) -> int:
    """Each payload once, over ``connections`` keep-alive connections; returns 2xx answers."""
    answered = [0]

    async def one(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for payload in payloads[offset::connections]:
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            answered[0] += head[9:10] == b"2"
        writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))
    return answered[0]


def put_config(port: int, maturity_s: float) -> None:
    config = {
        "stableVersion": "1",
        "shadowVersion": "2",
        "outcomes": {"labelMaturitySeconds": maturity_s, "windowSize": 5000},
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/bench/churn/config",
        data=json.dumps(config).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {BENCH_TOKEN}"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def as_labels(figures: dict[str, Any], batch: int) -> dict[str, Any]:
    """``measure`` counts answered requests: with ``batch`` labels each."""
    return {
        **figures,
        "labels": figures["events"] * batch,
        "labelsPerSecond": round(figures["eventsPerSecond"] * batch, 1),
        "serverCpuMicrosPerLabel": (
            round(figures["serverCpuMicrosPerEvent"] / batch, 2)
            if figures["serverCpuMicrosPerEvent"]
            else None
        ),
    }


def run_monitor(
    args: argparse.Namespace, batches: list[bytes], other_batches: list[bytes]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        port, ingest_port, command = monitor_command(data_dir)
        server = start_server(command, port)
        try:
            put_config(port, args.maturity)
            calls = [e for i in range(args.calls) for e in call_events(i, args.shadow_every)]
            started = time.perf_counter()
            served = asyncio.run(send_once(ingest_port, calls, args.connections))
            serve_s = time.perf_counter() - started
            # No warm-up pass: it would send the first batches, and the run would repeat them.
            fast_args = argparse.Namespace(**{**vars(args), "warmup": 0.0})
            fast = as_labels(measure(server, ingest_port, batches, fast_args), args.batch)
            health_fast = get_json(port, "/healthz")["feedback"]
            slow_args = argparse.Namespace(**{**vars(fast_args), "seconds": args.seconds / 2})
            slow = as_labels(measure(server, port, other_batches, slow_args), args.batch)
            quality = get_json(port, "/v1/models/bench/churn/quality")
            health = get_json(port, "/healthz")
        finally:
            stop_server(server)
        db_bytes = sum(p.stat().st_size for p in Path(data_dir).glob("monitor.db*"))
    return {
        "predictionsServed": {"events": served, "seconds": round(serve_s, 2)},
        "fastIngestPort": fast,
        "joinSizesAfterFastRun": health_fast,
        "aiohttpPort": slow,
        "joinSizesAtEnd": health["feedback"],
        "quality": {
            "orphans": quality["orphans"],
            "pendingLabels": quality["pendingLabels"],
            "versions": {
                v["version"]: {"labeled": v["labeled"], "auc": v["auc"]["value"]}
                for v in quality["versions"]
            },
        },
        "dbBytesAfterRun": db_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500, help="labels per POST")
    parser.add_argument("--calls", type=int, default=20_000, help="inference calls served")
    parser.add_argument("--shadow-every", type=int, default=4, help="mirror every Nth call")
    parser.add_argument("--orphan-every", type=int, default=10, help="label never served")
    parser.add_argument("--maturity", type=float, default=5.0, help="labelMaturitySeconds")
    parser.add_argument(
        "--target-rate", type=float, default=60_000, help="labels/s to prepare fresh ids for"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    fresh = int(args.seconds * args.target_rate / args.batch)  # batches the fast run may use
    batches = label_batches(args, fresh)
    other = label_batches(args, max(fresh // 2, 20), first_id=fresh * args.batch)
    peer_args = argparse.Namespace(**{**vars(args), "seconds": args.seconds / 4})
    peer = as_labels(run_peer(RAW_SINK, other, peer_args), args.batch)
    monitor = run_monitor(args, batches, other)
    fast, slow = monitor["fastIngestPort"], monitor["aiohttpPort"]
    # The payloads are cycled: a run that sends more labels than it has fresh ids for sends
    # duplicates (cheap to refuse) or, past the monitor's memory of ids, labels it counts
    # again; either way its rate is not the rate of fresh labels.
    for phase, prepared in ((fast, batches), (slow, other)):
        phase["freshLabelIds"] = len(prepared) * args.batch
        phase["idsReused"] = phase["labels"] > phase["freshLabelIds"]
        if phase["idsReused"]:
            print(f"warning: {phase['labels']} labels sent, {phase['freshLabelIds']} fresh ids: "
                  "raise --target-rate", file=sys.stderr)  # fmt: skip
    result = {
        "benchmark": "feedback",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadAverage1mAtEnd": round(os.getloadavg()[0], 2),
        },
        "load": {
            "connections": args.connections,
            "labelsPerPost": args.batch,
            "callsServed": args.calls,
            "shadowEvery": args.shadow_every,
            "orphanEvery": args.orphan_every,
            "labelMaturitySeconds": args.maturity,
            "seconds": args.seconds,
            "freshLabelIds": len(batches) * args.batch,
        },
        "peers": {"nullSinkHttptools": peer},
        "monitor": monitor,
        "ratios": {
            "fastPortToNullSink": round(fast["labelsPerSecond"] / peer["labelsPerSecond"], 3),
            "fastPortToAiohttpPort": round(fast["labelsPerSecond"] / slow["labelsPerSecond"], 3),
        },
    }
    print(json.dumps(result, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
