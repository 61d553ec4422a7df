"""Benchmark the embedded control plane against kmock's KubernetesEmulator.

Both servers run as child processes and get the same client workload from this process:
create / merge-patch / get throughput with N concurrent clients, full-list throughput, watch
delivery latency with 10 watchers (from sending a write to each watcher receiving its event),
and the server's peak RSS after holding `--rss-objects` objects. localcluster acknowledges a
write only after it is fsynced to SQLite; kmock keeps objects in memory only.

    .venv/bin/python bench/controlplane.py [--objects 2000] [--rss-objects 100000]

Prints a table with ratios (localcluster / kmock) and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

RESULTS = Path(__file__).with_name("results")
NS = "default"
WATCH_NS = "bench-watch"


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    ssl_context: ssl.SSLContext | bool
    pid: int
    needs_namespaces: bool = (
        True  # kmock accepts objects in any namespace (and 500s on creating one)
    )


@contextlib.contextmanager
def spawn_localcluster(
    data_dir: str,
) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any], ssl.SSLContext]]:
    """`python -m localcluster` on a free port over `data_dir`, until ready: (process, its
    kubeconfig, an SSL context trusting its CA)."""
    command = [
        sys.executable, "-m", "localcluster", "--data-dir", data_dir, "--port", "0",
        "--log-level", "WARNING",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and "ready" in process.stdout.readline()
        config = yaml.safe_load(Path(data_dir, "kubeconfig").read_text())
        context = ssl.create_default_context(cafile=str(Path(data_dir, "serving.crt")))
        yield process, config, context
    finally:
        process.terminate()
        process.wait(timeout=60)


@contextlib.contextmanager
def start_localcluster() -> Iterator[Target]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-localcluster-") as data_dir,
        spawn_localcluster(data_dir) as (process, config, context),
    ):
        yield Target(
            "localcluster",
            config["clusters"][0]["cluster"]["server"],
            {"Authorization": f"Bearer {config['users'][0]['user']['token']}"},
            context,
            process.pid,
        )


@contextlib.contextmanager
def start_kmock() -> Iterator[Target]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-kmock"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        assert line and line[0] == "ready", line
        yield Target("kmock", line[1], {}, False, process.pid, needs_namespaces=False)
    finally:
        process.terminate()
        process.wait(timeout=60)


async def serve_kmock() -> None:
    import kmock  # only the child process needs it

    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
        emulator.resources["v1/configmaps"] = kmock.ResourceInfo(kind="ConfigMap", namespaced=True)
        emulator.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False)
        print("ready", str(server.url).rstrip("/"), flush=True)
        await asyncio.Event().wait()


def configmap(name: str, namespace: str = NS) -> dict[str, Any]:
    # The namespace is in the body too: kmock filters watch events by the body's namespace.
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"bench": "yes"}},
        "data": {"payload": "x" * 200, "name": name},
    }


@dataclass
class Phase:
    done: int
    per_s: float


async def run_parallel(count: int, concurrency: int, request: Any, budget_s: float) -> Phase:
    """`count` calls of `request(i)` from `concurrency` workers, stopping after `budget_s`."""
    indexes = iter(range(count))
    started = time.perf_counter()
    done = 0

    async def worker() -> None:
        nonlocal done
        for index in indexes:
            if time.perf_counter() - started > budget_s:
                return
            await request(index)
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Phase(done, done / (time.perf_counter() - started))


async def expect(response: aiohttp.ClientResponse, *codes: int) -> Any:
    body = await response.read()
    if response.status not in codes:
        raise RuntimeError(f"{response.method} {response.url} -> {response.status}: {body[:300]!r}")
    return json.loads(body)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def metered(pid: int, phase: Any) -> tuple[Phase, float]:
    """Run a phase; also return the server's CPU microseconds per completed request."""
    before = cpu_seconds(pid)
    result = await phase
    return result, 1e6 * (cpu_seconds(pid) - before) / max(result.done, 1)


async def throughput(
    session: aiohttp.ClientSession, target: Target, objects: int, concurrency: int, budget_s: float
) -> dict[str, float]:
    base = target.url
    collection = f"{base}/api/v1/namespaces/{NS}/configmaps"

    async def create(i: int) -> None:
        async with session.post(collection, json=configmap(f"cm-{i}")) as response:
            await expect(response, 200, 201)

    async def patch(i: int) -> None:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with session.patch(
            f"{collection}/cm-{i}", data=json.dumps({"data": {"patched": str(i)}}), headers=headers
        ) as response:
            await expect(response, 200)

    async def get(i: int) -> None:
        async with session.get(f"{collection}/cm-{i}") as response:
            await expect(response, 200)

    async def list_all(_: int) -> None:
        async with session.get(collection) as response:
            listed = await expect(response, 200)
            assert len(listed["items"]) >= created.done

    pid = target.pid
    created, create_cpu = await metered(pid, run_parallel(objects, concurrency, create, budget_s))
    patched, patch_cpu = await metered(
        pid, run_parallel(created.done, concurrency, patch, budget_s)
    )
    got, get_cpu = await metered(pid, run_parallel(created.done, concurrency, get, budget_s))
    listed = await run_parallel(max(5, 20000 // max(created.done, 1)), 2, list_all, budget_s)
    return {
        "create_per_s": created.per_s,
        "create_cpu_us": create_cpu,
        "patch_per_s": patched.per_s,
        "patch_cpu_us": patch_cpu,
        "get_per_s": got.per_s,
        "get_cpu_us": get_cpu,
        "list_per_s": listed.per_s,
        "list_objects_per_s": listed.per_s * created.done,
        "objects": created.done,
    }


async def watch_latency(
    session: aiohttp.ClientSession, target: Target, watchers: int, events: int
) -> dict[str, float]:
    base = target.url
    if target.needs_namespaces:
        namespace = {"metadata": {"name": WATCH_NS}}
        async with session.post(f"{base}/api/v1/namespaces", json=namespace) as response:
            await expect(response, 201, 409)
    sent: dict[str, float] = {}
    received: list[float] = []
    ready = asyncio.Semaphore(0)

    async def watcher() -> None:
        url = f"{base}/api/v1/namespaces/{WATCH_NS}/configmaps?watch=true&timeoutSeconds=300"
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
            ready.release()
            seen = 0
            async for line in response.content:
                if not line.strip():
                    continue
                arrived = time.perf_counter()
                event = json.loads(line)
                name = event["object"]["metadata"]["name"]
                if event["type"] == "ADDED" and name in sent:
                    received.append(arrived - sent[name])
                    seen += 1
                    if seen == events:
                        return

    tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
    for _ in range(watchers):
        await ready.acquire()
    await asyncio.sleep(0.5)  # let every watch register server-side before the first write
    for index in range(events):
        name = f"watched-{index}"
        sent[name] = time.perf_counter()
        async with session.post(
            f"{base}/api/v1/namespaces/{WATCH_NS}/configmaps", json=configmap(name, WATCH_NS)
        ) as response:
            await expect(response, 200, 201)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    ordered = sorted(received)
    return {
        "watch_events": len(ordered),
        "watch_p50_ms": 1000 * statistics.median(ordered),
        "watch_p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
    }


def rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


async def fill(
    session: aiohttp.ClientSession,
    base: str,
    start: int,
    total: int,
    concurrency: int,
    budget_s: float,
) -> Phase:
    collection = f"{base}/api/v1/namespaces/{NS}/configmaps"

    async def create(i: int) -> None:
        async with session.post(collection, json=configmap(f"cm-{start + i}")) as response:
            await expect(response, 200, 201)

    return await run_parallel(max(total - start, 0), concurrency, create, budget_s)


async def workload(target: Target, args: argparse.Namespace) -> dict[str, float]:
    connector = aiohttp.TCPConnector(
        ssl=target.ssl_context, limit=args.concurrency + args.watchers + 4
    )
    async with aiohttp.ClientSession(headers=target.headers, connector=connector) as session:
        result = await throughput(
            session, target, args.objects, args.concurrency, args.phase_budget
        )
        result.update(await watch_latency(session, target, args.watchers, args.watch_events))
        start = int(result["objects"])
        filled = await fill(
            session, target.url, start, args.rss_objects, args.concurrency, args.fill_budget
        )
        result["fill_create_per_s"] = filled.per_s
        result["rss_objects"] = start + filled.done
        result.update(rss_mb(target.pid))
    return result


async def prefill(data_dir: Path, total: int) -> None:
    """Write `total` config maps straight into a localcluster data dir (no HTTP)."""
    from localcluster import objects
    from localcluster.store import Store

    store = Store(data_dir)
    store.open()
    for start in range(0, total, 1000):
        batch = []
        for index in range(start, min(start + 1000, total)):
            obj = configmap(f"pre-{index}")
            obj["metadata"].update(
                uid=objects.new_uid(), creationTimestamp=objects.now_rfc3339(), generation=1
            )
            batch.append(("ADDED", "/configmaps", obj))
        await store.commit(batch)
    store.close()


async def store_commit_rate(total: int = 5000, concurrency: int = 64) -> float:
    """Durable (fsynced) writes per second of localcluster's storage layer alone, no HTTP."""
    from localcluster import objects
    from localcluster.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-store-") as data_dir:
        store = Store(Path(data_dir))
        store.open()

        async def write(index: int) -> None:
            obj = configmap(f"direct-{index}")
            obj["metadata"].update(uid=objects.new_uid(), creationTimestamp=objects.now_rfc3339())
            await store.commit([("ADDED", "/configmaps", obj)])

        phase = await run_parallel(total, concurrency, write, 120)
        store.close()
        return phase.per_s


def localcluster_rss_at(total: int) -> dict[str, float]:
    """Peak RSS of a localcluster serving `total` objects: start on a prefilled dir, list all."""
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as data_dir:
        asyncio.run(prefill(Path(data_dir), total))
        with spawn_localcluster(data_dir) as (process, config, context):
            headers = {"Authorization": f"Bearer {config['users'][0]['user']['token']}"}
            url = (
                config["clusters"][0]["cluster"]["server"]
                + "/api/v1/namespaces/default/configmaps?limit=500"
            )

            async def list_all() -> int:
                count, token = 0, ""
                async with aiohttp.ClientSession(
                    headers=headers, connector=aiohttp.TCPConnector(ssl=context)
                ) as session:
                    while True:
                        async with session.get(
                            url + (f"&continue={token}" if token else "")
                        ) as response:
                            page = await expect(response, 200)
                        count += len(page["items"])
                        token = page["metadata"].get("continue", "")
                        if not token:
                            return count

            listed = asyncio.run(list_all())
            return {
                "prefilled_objects": listed,
                **{f"prefilled_{k}": v for k, v in rss_mb(process.pid).items()},
            }


def report(results: dict[str, dict[str, float]]) -> list[str]:
    ours, peer = results["localcluster"], results["kmock"]
    lines = [f"{'metric':<20}{'localcluster':>14}{'kmock':>14}{'ratio':>10}"]
    for key in ours:
        if key in ("watch_events",):
            continue
        if key not in peer:
            lines.append(f"{key:<20}{ours[key]:>14.1f}{'-':>14}{'-':>10}")
            continue
        ratio = ours[key] / peer[key] if peer[key] else float("nan")
        lines.append(f"{key:<20}{ours[key]:>14.1f}{peer[key]:>14.1f}{ratio:>10.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--objects", type=int, default=2000, help="objects for create/patch/get/list"
    )
    parser.add_argument(
        "--rss-objects", type=int, default=100000, help="objects held when RSS is read"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument("--watch-events", type=int, default=200)
    parser.add_argument(
        "--phase-budget", type=float, default=30, help="seconds per throughput phase"
    )
    parser.add_argument(
        "--fill-budget", type=float, default=600, help="seconds to fill for the RSS figure"
    )
    parser.add_argument("--only", choices=["localcluster", "kmock"], help="run one server only")
    parser.add_argument("--serve-kmock", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_kmock:
        asyncio.run(serve_kmock())
        return
    results = {}
    starters = {"localcluster": start_localcluster, "kmock": start_kmock}
    for name, start in starters.items():
        if args.only and name != args.only:
            continue
        with start() as target:
            results[target.name] = asyncio.run(workload(target, args))
            print(f"{target.name}: {json.dumps(results[target.name])}", flush=True)
    if args.only != "kmock":
        results["localcluster"].update(localcluster_rss_at(args.rss_objects))
        results["localcluster"]["store_durable_writes_per_s"] = asyncio.run(store_commit_rate())
        print(
            f"localcluster at {args.rss_objects} objects: {json.dumps(results['localcluster'])}",
            flush=True,
        )
    if len(results) < 2:
        return
    lines = report(results)
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"controlplane-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    meta = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
        "args": vars(args),
    }
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
