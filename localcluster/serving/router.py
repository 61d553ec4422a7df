"""A local stand-in for an Istio VirtualService: an aiohttp reverse proxy on its own port.

Each request takes a snapshot of the current route table, so ``reconfigure`` swaps the table
atomically and in-flight requests finish against the destinations they started with. The mirror
copy is fire-and-forget on a bounded number of in-flight copies: when the shadow is slow, copies
are dropped (and counted) rather than piling up or delaying the primary.

Run: ``python -m localcluster.serving.router --port P --virtualservice vs.yaml
[--resolve HOST=URL ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import uuid
from collections import Counter
from collections.abc import Coroutine, Sequence
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter

from contracts import mesh_metrics as mesh
from localcluster.serving import constants as c
from localcluster.serving.routing import (
    Destination,
    RouteTable,
    bucket_for,
    choose_destination,
    route_table_from_spec,
    should_mirror,
    static_resolver,
)

log = logging.getLogger(__name__)

STATS_PATH = "/_kubeloop/router/stats"
# Hop-by-hop headers (RFC 9110 §7.6.1) and ones aiohttp recomputes.
_DROP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


def new_client_session(limit: int = 256) -> aiohttp.ClientSession:
    """One keep-alive session shared by every router (and every route table version)."""
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=30, force_close=False)
    return aiohttp.ClientSession(
        connector=connector, auto_decompress=False, timeout=aiohttp.ClientTimeout(total=60)
    )


def _forward_headers(
    headers: Any, request_id: str, role: str, extra: dict[str, str] | None = None
) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict(
        (k, v) for k, v in headers.items() if k.lower() not in _DROP_HEADERS
    )
    out.update(extra or {})
    out[c.REQUEST_ID_HEADER] = request_id
    out[c.ROLE_HEADER] = role
    return out


class Router:
    """Proxies every request to one destination of the current route table."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        table: RouteTable | None = None,
        rng: random.Random | None = None,
        max_mirror_in_flight: int = 64,
    ) -> None:
        self.session = session
        self.table = table or RouteTable()
        self.rng = rng or random.Random()
        self.max_mirror_in_flight = max_mirror_in_flight
        self.stats: Counter[str] = Counter()
        self._mirror_tasks: set[asyncio.Task[None]] = set()
        # What Istio's sidecars export (contracts/mesh_metrics.py): KServe's logger never logs
        # a failed response, so the operator's error figures come from this counter. One
        # registry per router: no process-global metric state.
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests_total = PromCounter(
            mesh.REQUESTS_TOTAL.removesuffix("_total"),
            "Requests by destination workload and response code (Istio's metric).",
            mesh.LABELS,
            registry=self.registry,
        )

    def reconfigure(self, table: RouteTable) -> None:
        self.table = table

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_get(STATS_PATH, self._stats)
        app.router.add_get(mesh.ROUTER_METRICS_PATH, self._metrics)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response({"counts": dict(self.stats), "table": self.table.model_dump()})

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _count(self, destination: Destination, status: int, reporter: str) -> None:
        workload, namespace = mesh.predictor_workload(destination.host)
        self.requests_total.labels(reporter, workload, namespace, workload, str(status)).inc()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        table = self.table  # snapshot: a concurrent reconfigure does not affect this request
        request_id = request.headers.get(c.REQUEST_ID_HEADER) or str(uuid.uuid4())
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        extra: dict[str, str] = {}
        assignment = table.assignment
        if assignment is not None and assignment.header not in headers:
            # What an edge filter would do on a real mesh: the bucket header from the key.
            bucket = bucket_for(assignment, headers, body)
            if bucket is not None:
                extra[assignment.header] = headers[assignment.header] = bucket
            else:
                self.stats["assignment_key_missing"] += 1
        route = table.route_for(headers)
        if route is None:
            self.stats["no_match"] += 1
            return _error(404, "no route matches the request", request_id)
        destination = choose_destination(route, self.rng)
        if route.mirror is not None and should_mirror(route, self.rng):
            self._start_mirror(route.mirror, request, body, request_id, extra)
        if destination is None:
            self.stats["no_route"] += 1
            return _error(503, "no destination has a positive weight", request_id)
        if destination.url is None:
            self.stats[f"unavailable:{destination.role}"] += 1
            return _error(503, f"upstream {destination.host} is not available", request_id)
        self.stats[f"requests:{destination.role}"] += 1
        return await self._forward(destination, request, body, request_id, extra)

    async def _forward(
        self,
        destination: Destination,
        request: web.Request,
        body: bytes,
        request_id: str,
        extra: dict[str, str],
    ) -> web.Response:
        assert destination.url is not None
        headers = _forward_headers(request.headers, request_id, destination.role, extra)
        try:
            async with self.session.request(
                request.method, destination.url + request.path_qs, data=body, headers=headers
            ) as upstream:
                payload = await upstream.read()
                out = CIMultiDict(
                    (k, v) for k, v in upstream.headers.items() if k.lower() not in _DROP_HEADERS
                )
                out.setdefault(c.REQUEST_ID_HEADER, request_id)
                self._count(destination, upstream.status, mesh.REPORTER_DESTINATION)
                return web.Response(status=upstream.status, body=payload, headers=out)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.stats[f"upstream_errors:{destination.role}"] += 1
            # Never reached the workload: on a mesh only the caller's sidecar reports it.
            self._count(destination, 503, "source")
            return _error(503, f"upstream {destination.host} failed: {exc}", request_id)

    def _start_mirror(
        self,
        mirror: Destination,
        request: web.Request,
        body: bytes,
        request_id: str,
        extra: dict[str, str],
    ) -> None:
        if len(self._mirror_tasks) >= self.max_mirror_in_flight:
            self.stats["mirror_dropped"] += 1
            return
        headers = _forward_headers(request.headers, request_id, mirror.role, extra)
        task = asyncio.create_task(
            self._mirror(mirror, request.method, request.path_qs, body, headers)
        )
        self._mirror_tasks.add(task)
        task.add_done_callback(self._mirror_tasks.discard)

    async def _mirror(
        self, mirror: Destination, method: str, path_qs: str, body: bytes, headers: CIMultiDict[str]
    ) -> None:
        assert mirror.url is not None
        try:
            async with self.session.request(
                method, mirror.url + path_qs, data=body, headers=headers
            ) as resp:
                await resp.read()  # the shadow's answer is discarded
                self._count(mirror, resp.status, mesh.REPORTER_DESTINATION)
            self.stats["mirror_sent"] += 1
        except (aiohttp.ClientError, TimeoutError, OSError):
            self.stats["mirror_failed"] += 1

    async def drain_mirrors(self) -> None:
        """Wait for in-flight mirror copies (tests and shutdown)."""
        if self._mirror_tasks:
            await asyncio.gather(*list(self._mirror_tasks), return_exceptions=True)


def _error(status: int, message: str, request_id: str) -> web.Response:
    return web.json_response(
        {"error": message}, status=status, headers={c.REQUEST_ID_HEADER: request_id}
    )


async def serve(router: Router, host: str, port: int) -> web.AppRunner:
    """Start serving ``router`` on host:port; the caller owns ``runner.cleanup()``."""
    runner = web.AppRunner(router.make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when available (it ships with KServe): a cheaper loop for a proxy."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localcluster.serving.router")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--virtualservice", required=True, help="YAML file of a VirtualService")
    parser.add_argument(
        "--resolve", action="append", default=[], help="HOST=URL mapping a destination host"
    )
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace, virtualservice: dict[str, Any]) -> None:
    mapping = dict(item.split("=", 1) for item in args.resolve)
    annotations = (virtualservice.get("metadata") or {}).get("annotations")
    table = route_table_from_spec(
        virtualservice.get("spec", {}), static_resolver(mapping), annotations
    )
    async with new_client_session() as session:
        runner = await serve(Router(session, table), args.host, args.port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING)
    with open(args.virtualservice) as handle:
        virtualservice = yaml.safe_load(handle)
    with contextlib.suppress(KeyboardInterrupt):
        run_event_loop(_run(args, virtualservice))


if __name__ == "__main__":
    main()
