"""Local stand-in for KServe's and Istio's controllers.

Realizes each ``serving.kserve.io/v1beta1`` InferenceService as a supervised predictor process
and each kubeloop-managed ``networking.istio.io/v1beta1`` VirtualService as a router port.
The loop is level-triggered: watch events (and a 1 s tick for probes and restart backoff) wake
it; every pass lists all objects, asks the pure planner (``plan.py``) for actions and applies them.

Run: ``python -m localcluster.serving.controller (--kubeconfig PATH | --server URL [--token T])
--state-dir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from localcluster.serving import constants as c
from localcluster.serving.kubeapi import KubeApi
from localcluster.serving.plan import (
    REFUSALS,
    Action,
    PatchStatus,
    ReconfigureRouter,
    RestartPredictor,
    RunningRouter,
    StartPredictor,
    StartRouter,
    StopPredictor,
    StopRouter,
    plan,
    plan_routers,
)
from localcluster.serving.router import (
    Router,
    RouterServer,
    new_client_session,
    run_event_loop,
    serve,
)
from localcluster.serving.supervisor import PredictorSupervisor, free_port
from localcluster.serving.upstream import UpstreamPool

log = logging.getLogger(__name__)

TICK_S = 1.0


class ClusterApi(Protocol):
    """The few API calls the controller makes (KubeApi implements them)."""

    async def list(self, group: str, version: str, plural: str) -> list[dict[str, Any]]: ...

    async def patch_status(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
    ) -> None: ...


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RouterHost:
    """Runs one Router per VirtualService on its own port, sharing an upstream pool."""

    def __init__(self, session: UpstreamPool, host: str = "127.0.0.1") -> None:
        self.session = session
        self.host = host
        self._routers: dict[str, tuple[Router, RouterServer, int]] = {}

    def running(self) -> dict[str, RunningRouter]:
        return {
            key: RunningRouter(key=key, port=port, table=router.table)
            for key, (router, _, port) in self._routers.items()
        }

    async def start(self, action: StartRouter) -> None:
        port = action.port or free_port()
        router = Router(self.session, action.table)
        runner = await serve(router, self.host, port)
        self._routers[action.key] = (router, runner, port)

    def reconfigure(self, action: ReconfigureRouter) -> None:
        self._routers[action.key][0].reconfigure(action.table)

    async def stop(self, key: str) -> None:
        entry = self._routers.pop(key, None)
        if entry is not None:
            await entry[1].cleanup()

    async def close(self) -> None:
        for key in list(self._routers):
            await self.stop(key)


def _log_refusal(action: PatchStatus) -> None:
    """Log an object the stand-in refuses, once (a status is patched only when it changes)."""
    for condition in action.status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("reason") in REFUSALS:
            log.warning(
                "%s %s/%s refused (%s): %s",
                action.plural,
                action.namespace,
                action.name,
                condition["reason"],
                condition.get("message", ""),
            )


class ServingController:
    """The I/O shell around ``plan``/``plan_routers``."""

    def __init__(
        self, api: ClusterApi, supervisor: PredictorSupervisor, routers: RouterHost
    ) -> None:
        self.api = api
        self.supervisor = supervisor
        self.routers = routers
        self.wakeup = asyncio.Event()
        supervisor.on_exit = self.wakeup.set

    async def reconcile_once(self) -> list[Action]:
        isvcs = await self.api.list(c.ISVC_GROUP, c.ISVC_VERSION, c.ISVC_PLURAL)
        virtualservices = await self.api.list(c.VS_GROUP, c.VS_VERSION, c.VS_PLURAL)
        # A VirtualService routes only for a host that has a Service (as in a mesh).
        services = await self.api.list("", "v1", "services")
        await self.supervisor.observe()
        stamp = now_iso()
        actions = plan(isvcs, self.supervisor.views(), time.monotonic(), stamp)
        actions += plan_routers(
            virtualservices, self.supervisor.views(), self.routers.running(), stamp, services
        )
        for action in actions:
            await self._apply(action)
        return actions

    async def _apply(self, action: Action) -> None:
        if isinstance(action, StartPredictor):
            await self.supervisor.start(action.spec)
        elif isinstance(action, StopPredictor):
            self.supervisor.stop(action.key)
        elif isinstance(action, RestartPredictor):
            await self.supervisor.restart(action.key)
        elif isinstance(action, StartRouter):
            await self.routers.start(action)
        elif isinstance(action, ReconfigureRouter):
            self.routers.reconfigure(action)
        elif isinstance(action, StopRouter):
            await self.routers.stop(action.key)
        elif isinstance(action, PatchStatus):
            _log_refusal(action)
            await self.api.patch_status(
                action.group,
                action.version,
                action.plural,
                action.namespace,
                action.name,
                action.status,
            )

    async def run(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except (httpx.HTTPError, OSError) as exc:
                log.warning("reconcile pass failed, retrying: %s", exc)
            except Exception:
                # A stand-in controller must keep its predictors supervised whatever one pass hit.
                log.exception("reconcile pass crashed, retrying")
            self.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), TICK_S)

    async def watch_forever(self, api: KubeApi, group: str, version: str, plural: str) -> None:
        """Turn watch events into wake-ups; reconnect on any stream end or error."""
        while True:
            try:
                async for _ in api.watch(group, version, plural):
                    self.wakeup.set()
            except (httpx.HTTPError, OSError, ValueError) as exc:
                log.debug("watch on %s ended: %s", plural, exc)
            await asyncio.sleep(1.0)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localcluster.serving.controller")
    parser.add_argument("--kubeconfig", default="")
    parser.add_argument("--context", default=None)
    parser.add_argument(
        "--server", default="", help="API server base URL (instead of --kubeconfig)"
    )
    parser.add_argument("--token", default=None)
    parser.add_argument("--insecure", action="store_true", help="skip TLS verification")
    parser.add_argument("--state-dir", default=".kubeloop/serving", help="predictor logs go here")
    return parser.parse_args(argv)


def make_api(args: argparse.Namespace) -> KubeApi:
    if args.server:
        return KubeApi(args.server, token=args.token, verify=not args.insecure)
    if args.kubeconfig:
        return KubeApi.from_kubeconfig(args.kubeconfig, args.context)
    raise SystemExit("give --kubeconfig PATH or --server URL")


async def run_controller(args: argparse.Namespace) -> None:
    main_task = asyncio.current_task()
    assert main_task is not None
    # SIGTERM (kubectl-style stop, process managers) cleans up like Ctrl-C: predictors stopped.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    api = make_api(args)
    async with httpx.AsyncClient() as probe_http, new_client_session() as session:
        supervisor = PredictorSupervisor(Path(args.state_dir) / "logs", probe_http)
        routers = RouterHost(session)
        controller = ServingController(api, supervisor, routers)
        watches = [
            asyncio.create_task(
                controller.watch_forever(api, c.ISVC_GROUP, c.ISVC_VERSION, c.ISVC_PLURAL)
            ),
            asyncio.create_task(
                controller.watch_forever(api, c.VS_GROUP, c.VS_VERSION, c.VS_PLURAL)
            ),
            asyncio.create_task(controller.watch_forever(api, "", "v1", "services")),
        ]
        try:
            await controller.run()
        finally:
            for task in watches:
                task.cancel()
            await routers.close()
            await supervisor.close()
            await api.close()


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API call otherwise
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        run_event_loop(run_controller(args))


if __name__ == "__main__":
    main()
