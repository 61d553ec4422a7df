"""Local router overhead: the kubeloop router vs calling the upstream directly vs nginx.

Same load, same run: a trivial aiohttp echo upstream (three ports: stable, candidate, shadow —
the real model would hide the proxy's cost), and in front of it
  * ``direct``: no proxy, the stable port;
  * ``router``: ``python -m localcluster.serving.router`` realizing a VirtualService with a
    90/10 split and a 100 % mirror to the shadow;
  * ``nginx``: Debian nginx, one worker, ``split_clients`` 90/10 + ``mirror`` to the shadow,
    keep-alive upstreams (skipped, and said so, when nginx is not installed).
Targets are measured in interleaved rounds so that background load hits them alike: a latency
phase (one client, so no queueing) and a throughput phase (``--concurrency`` clients). Prints
p50/p99 latency, requests/s, the latency each proxy adds over ``direct``, throughput ratios
and CPU per request of the proxy (of the echo upstream for ``direct``); writes ``bench/results/router.json``.

    .venv/bin/python bench/router.py --latency-requests 500 --requests 3000 --concurrency 16 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from _repo import write_json  # first: puts the test harness on the path

from tests.support.processes import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "router.json"
BODY = json.dumps({"instances": [[0.1 * i for i in range(20)]]}).encode()
PATH = "/v1/models/bench:predict"


# --- the upstream (runs in its own process: `bench/router.py --serve-upstream P1,P2,P3`) ------


async def serve_upstream(ports: list[int]) -> None:
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b'{"predictions": [0.5]}', content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


# --- processes ----------------------------------------------------------------------------


def wait_http(port: int, timeout_s: float = 60.0) -> None:
    def answers() -> bool:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", data=b"{}")
            urllib.request.urlopen(request, timeout=2).read()
        except OSError:
            return False
        return True

    wait_for(answers, timeout_s, f"an answer on port {port}", interval_s=0.2)


def start(command: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_http(port)
    except AssertionError:
        proc.kill()
        raise RuntimeError(f"{command[:3]} did not start: {log.read_text()[-2000:]}") from None
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def virtualservice_yaml(stable: int, candidate: int, shadow: int, mirror: bool) -> str:
    mirror_lines = (
        f"    mirror: {{host: 127.0.0.1, port: {{number: {shadow}}}}}\n    mirrorPercentage: {{value: 100.0}}\n"
        if mirror
        else ""
    )
    return f"""apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {{name: bench, labels: {{app.kubernetes.io/managed-by: kubeloop}}}}
spec:
  hosts: [bench]
  http:
  - route:
    - destination: {{host: 127.0.0.1, port: {{number: {stable}}}}}
      weight: 90
    - destination: {{host: 127.0.0.1, port: {{number: {candidate}}}}}
      weight: 10
{mirror_lines}"""


def nginx_conf(tmp: Path, port: int, stable: int, candidate: int, shadow: int, mirror: bool) -> str:
    mirror_lines = "      mirror /_mirror;\n      mirror_request_body on;\n" if mirror else ""
    temp_paths = "\n".join(
        f"  {name}_temp_path {tmp / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
daemon off;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp_paths}
  upstream stable {{ server 127.0.0.1:{stable}; keepalive 64; }}
  upstream candidate {{ server 127.0.0.1:{candidate}; keepalive 64; }}
  upstream shadow {{ server 127.0.0.1:{shadow}; keepalive 64; }}
  map $http_x_request_id $req_id {{ "" $request_id; default $http_x_request_id; }}
  split_clients "$req_id" $backend {{ 90% stable; * candidate; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
{mirror_lines}      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Request-Id $req_id;
      proxy_pass http://$backend;
    }}
    location = /_mirror {{
      internal;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Request-Id $req_id;
      proxy_pass http://shadow$request_uri;
    }}
  }}
}}
"""


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


# --- load ---------------------------------------------------------------------------------


async def drive(port: int, requests: int, concurrency: int) -> tuple[list[float], float]:
    """Closed loop: ``concurrency`` keep-alive clients, ``requests`` POSTs in all."""
    latencies: list[float] = []
    remaining = requests
    url = f"http://127.0.0.1:{port}{PATH}"
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"port {port} answered {response.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(latencies: list[float], seconds: float, cpu_s: float) -> dict[str, Any]:
    return {
        "requests": len(latencies),
        "p50_ms": quantile(latencies, 0.50) * 1000,
        "p99_ms": quantile(latencies, 0.99) * 1000,
        "rps": len(latencies) / seconds,
        "server_cpu_us_per_request": cpu_s / len(latencies) * 1e6,
    }


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        process = psutil.Process(pid)
        for proc in [process, *process.children(recursive=True)]:
            times = proc.cpu_times()
            total += times.user + times.system
    return total


async def measure_phase(
    targets: dict[str, tuple[int, list[int]]], requests: int, concurrency: int, rounds: int
) -> dict[str, Any]:
    """Interleaved rounds over the targets so background load hits them alike."""
    samples: dict[str, list[float]] = {name: [] for name in targets}
    wall: dict[str, float] = dict.fromkeys(targets, 0.0)
    cpu: dict[str, float] = dict.fromkeys(targets, 0.0)
    for _ in range(rounds):
        for name, (port, pids) in targets.items():
            before = cpu_seconds(pids)
            latencies, seconds = await drive(port, requests, concurrency)
            cpu[name] += cpu_seconds(pids) - before
            samples[name] += latencies
            wall[name] += seconds
    return {name: summarize(samples[name], wall[name], cpu[name]) for name in targets}


async def measure(
    targets: dict[str, tuple[int, list[int]]], args: argparse.Namespace
) -> dict[str, Any]:
    for port, _ in targets.values():  # warm-up: connections, caches
        await drive(port, args.warmup, args.concurrency)
    # Added latency is read one request at a time (no queueing in the numbers); throughput
    # with `concurrency` clients keeping every server busy.
    return {
        "latency": await measure_phase(targets, args.latency_requests, 1, args.rounds),
        "throughput": await measure_phase(targets, args.requests, args.concurrency, args.rounds),
    }


def compare(results: dict[str, Any]) -> dict[str, Any]:
    latency, throughput = results["latency"], results["throughput"]
    out: dict[str, Any] = {}
    for name in ("router", "nginx"):
        if name in latency:
            out[f"{name}_added_p50_ms"] = latency[name]["p50_ms"] - latency["direct"]["p50_ms"]
            out[f"{name}_added_p99_ms"] = latency[name]["p99_ms"] - latency["direct"]["p99_ms"]
            out[f"{name}_throughput_vs_direct"] = (
                throughput[name]["rps"] / throughput["direct"]["rps"]
            )
    if "nginx" in latency:
        out["router_throughput_vs_nginx"] = throughput["router"]["rps"] / throughput["nginx"]["rps"]
        out["router_cpu_per_request_vs_nginx"] = (
            throughput["router"]["server_cpu_us_per_request"]
            / throughput["nginx"]["server_cpu_us_per_request"]
        )
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    stable, candidate, shadow, router_port, nginx_port = (free_port() for _ in range(5))
    nginx = find_nginx()
    with tempfile.TemporaryDirectory(prefix="bench-router-") as tmp_name:
        tmp = Path(tmp_name)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            upstream = start(
                [sys.executable, __file__, "--serve-upstream", f"{stable},{candidate},{shadow}"],
                stable,
                tmp / "upstream.log",
            )
            procs.append(upstream)
            (tmp / "vs.yaml").write_text(
                virtualservice_yaml(stable, candidate, shadow, not args.no_mirror)
            )
            router = start(
                [sys.executable, "-m", "localcluster.serving.router", "--port", str(router_port),
                 "--virtualservice", str(tmp / "vs.yaml")],
                router_port,
                tmp / "router.log",
            )  # fmt: skip
            procs.append(router)
            targets: dict[str, tuple[int, list[int]]] = {
                # For "direct" the CPU column is the echo upstream's own cost: a unit to compare with.
                "direct": (stable, [upstream.pid]),
                "router": (router_port, [router.pid]),
            }
            if nginx:
                (tmp / "nginx.conf").write_text(
                    nginx_conf(tmp, nginx_port, stable, candidate, shadow, not args.no_mirror)
                )
                server = start(
                    [nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
                    nginx_port,
                    tmp / "nginx.log",
                )
                procs.append(server)
                targets["nginx"] = (nginx_port, [server.pid])
            results = asyncio.run(measure(targets, args))
        finally:
            for proc in reversed(procs):
                stop(proc)
    return {
        "results": results,
        "comparison": compare(results),
        "nginx": nginx or "not installed (apt-get install nginx) — nginx peer skipped",
        "load": {"requests_per_round": args.requests, "latency_requests_per_round": args.latency_requests,
                 "rounds": args.rounds, "concurrency": args.concurrency,
                 "split": "90/10", "mirror_percent": 0 if args.no_mirror else 100, "body_bytes": len(BODY)},
        "machine": {"cpus": psutil.cpu_count(), "load_avg_1m": psutil.getloadavg()[0],
                    "python": platform.python_version()},
    }  # fmt: skip


def print_report(report: dict[str, Any]) -> None:
    print(f"nginx: {report['nginx']}")
    load = report["load"]
    for phase, clients in (("latency", 1), ("throughput", load["concurrency"])):
        print(f"\n{phase} phase ({clients} client(s) in a closed loop)")
        print(f"{'target':<8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'CPU µs/req':>11}")
        for name, row in report["results"][phase].items():
            print(
                f"{name:<8} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['rps']:8.0f}"
                f" {row['server_cpu_us_per_request']:11.0f}"
            )
    print("CPU µs/req: the proxy process; for direct, the echo upstream itself\n")
    for key, value in report["comparison"].items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"load average (1 min) at the end: {report['machine']['load_avg_1m']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per target per round")
    parser.add_argument(
        "--latency-requests", type=int, default=500, help="per target per round, 1 client"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--no-mirror", action="store_true", help="split only, no shadow copy")
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON report goes")
    parser.add_argument("--serve-upstream", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        asyncio.run(serve_upstream([int(p) for p in args.serve_upstream.split(",")]))
        return
    report = run(args)
    print_report(report)
    write_json(args.out, report)


if __name__ == "__main__":
    main()
