"""HTTP shell of the monitor (aiohttp): CloudEvents in, JSON figures and metrics out.

Every client mistake is answered with a 4xx and a message naming the problem; ingestion
never lets a malformed event reach the windows.
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from contracts.auth import MONITOR_AUDIENCE
from contracts.quality import DESIGNS, METRICS
from services.monitor.auth.core import classify
from services.monitor.config import ModelConfig
from services.monitor.core import ModelKey
from services.monitor.ingest import acknowledged, handle_ingest
from services.monitor.parsing import BadEvent
from services.monitor.service import MonitorService

log = logging.getLogger(__name__)

SERVICE_KEY: web.AppKey[MonitorService] = web.AppKey("monitor", MonitorService)
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_MAX_LATENCY_SAMPLE = 10_000


def build_app(service: MonitorService) -> web.Application:
    app = web.Application(
        client_max_size=service.settings.limits.max_body_bytes, middlewares=[authorize]
    )
    app[SERVICE_KEY] = service
    app.add_routes(
        [
            web.post("/", ingest),
            web.post("/v1/events", ingest),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics),
            web.get("/v1/models", list_models),
            web.put("/v1/models/{namespace}/{name}/config", put_config),
            web.get("/v1/models/{namespace}/{name}/config", get_config),
            web.get("/v1/models/{namespace}/{name}/figures", figures),
            web.get("/v1/models/{namespace}/{name}/counts", counts),
            web.get("/v1/models/{namespace}/{name}/drift", drift),
            web.post("/v1/models/{namespace}/{name}/drift/evaluate", evaluate_model_drift),
            web.get("/v1/models/{namespace}/{name}/drift/report", drift_report),
            web.get("/v1/reports/{report_id}", report_snapshot),
            web.post("/v1/drift/evaluate", evaluate_drift),
            web.get("/v1/bad-input", bad_input),
            web.post("/v1/models/{namespace}/{name}/feedback", feedback),
            web.get("/v1/models/{namespace}/{name}/quality", quality),
            web.get("/v1/models/{namespace}/{name}/quality/report", quality_report),
            web.get("/v1/models/{namespace}/{name}/compare", compare),
            *service.extra_routes,
        ]
    )
    return app


def _error(status: int, reason: str, message: str) -> web.Response:
    return web.json_response({"error": reason, "message": message}, status=status)


@web.middleware
async def authorize(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every route is classified and checked before its handler runs (services/monitor/auth);
    a refusal changes nothing (the body is not even read)."""
    auth = request.app[SERVICE_KEY].auth
    access = classify(request.method, request.path)
    header = request.headers.get("Authorization")
    verdict = await auth.check(access, header, request.remote or "")
    if not verdict.allowed:
        headers = {"WWW-Authenticate": f'Bearer realm="{MONITOR_AUDIENCE}"'}
        if verdict.status != 401:
            headers = {}
        return web.json_response(
            {"error": verdict.reason, "message": verdict.message},
            status=verdict.status,
            headers=headers,
        )
    return await handler(request)


# ----------------------------------------------------------------------------- ingestion


async def ingest(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    body: bytes | None
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        body = None
    anonymous = service.auth.is_anonymous_ingest(request.headers.get("Authorization"))
    answer = handle_ingest(
        service, request.headers, request.content_type, body, configured_only=anonymous
    )
    # The 200 waits for the group commit: an acknowledged event survives a kill -9.
    status, reply = await acknowledged(service, answer)
    return web.Response(status=status, body=reply, content_type="application/json")


async def feedback(request: web.Request) -> web.Response:
    """Labels (feedback CloudEvents); answered once they are committed."""
    service = request.app[SERVICE_KEY]
    body: bytes | None
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        body = None
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    status, reply = await service.outcomes.handle(
        namespace, name, request.headers, request.content_type, body
    )
    return web.Response(status=status, body=reply, content_type="application/json")


# ----------------------------------------------------------------------------- queries


def _model_key(request: web.Request) -> ModelKey:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    for label, value in (("namespace", namespace), ("name", name)):
        if not _NAME.match(value):
            raise _http_error(
                web.HTTPBadRequest,
                "invalid_name",
                f"{label} {value[:60]!r} is not a Kubernetes name",
            )
    return namespace, name


def _time_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            value = datetime.fromisoformat(raw).timestamp()
        except ValueError:
            raise _bad_param(name, raw, "unix seconds or RFC 3339") from None
    if not math.isfinite(value):
        raise _bad_param(name, raw, "a finite time")
    return value


def _bad_param(name: str, raw: str, expected: str) -> web.HTTPException:
    message = f"{name}={raw[:40]!r} must be {expected}"
    return _http_error(web.HTTPBadRequest, "invalid_parameter", message)


def _http_error(kind: type[web.HTTPException], reason: str, message: str) -> web.HTTPException:
    text = json.dumps({"error": reason, "message": message})
    return kind(text=text, content_type="application/json")


def _int_param(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_param(name, raw, "an integer") from None
    if not 0 <= value <= maximum:
        raise _bad_param(name, raw, f"between 0 and {maximum}")
    return value


def _filter_version(request: web.Request, result: dict[str, Any]) -> dict[str, Any]:
    version = request.query.get("version")
    if version is not None:
        if version not in result["versions"]:
            message = f"no data for version {version[:60]!r}"
            raise _http_error(web.HTTPNotFound, "unknown_version", message)
        result["versions"] = {version: result["versions"][version]}
    return result


async def figures(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    key = _model_key(request)
    since, until = _time_param(request, "since"), _time_param(request, "until")
    try:
        result = service.core.figures(key, since, until, service.clock())
    except KeyError as error:
        return _error(404, "unknown_model", str(error.args[0]))
    return web.json_response(_filter_version(request, result))


async def counts(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    key = _model_key(request)
    since, until = _time_param(request, "since"), _time_param(request, "until")
    sample = _int_param(request, "latencySample", 0, _MAX_LATENCY_SAMPLE)
    try:
        result = service.core.counts(key, since, until, service.clock(), sample)
    except KeyError as error:
        return _error(404, "unknown_model", str(error.args[0]))
    result["versions"] = {
        version: {**entry, "latencyHistogram": _finite_edges(entry["latencyHistogram"])}
        for version, entry in result["versions"].items()
    }
    return web.json_response(_filter_version(request, result))


def _finite_edges(histogram: dict[str, Any]) -> dict[str, Any]:
    # JSON has no infinity: the open last bucket is written as null.
    edges = [None if math.isinf(edge) else edge for edge in histogram["leMs"]]
    return {"leMs": edges, "counts": histogram["counts"]}


async def quality(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    since = _time_param(request, "since")  # a period's figures: the rows served since
    try:
        report = await service.outcomes.quality(_model_key(request), since)
    except KeyError as error:
        return _error(404, "unknown_model", str(error.args[0]))
    return web.json_response(report.model_dump(by_alias=True, mode="json"))


async def quality_report(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    try:
        page = await service.outcomes.report_html(_model_key(request), page=True)
    except KeyError as error:
        return _error(404, "unknown_model", str(error.args[0]))
    return web.Response(text=page, content_type="text/html")


async def compare(request: web.Request) -> web.Response:
    """``?candidate=V&stable=V&metric=auc|logLoss|accuracy&design=paired|concurrent&since=``"""
    service = request.app[SERVICE_KEY]
    key = _model_key(request)
    query = request.query
    for name in ("candidate", "stable"):
        value = query.get(name, "")
        if not value or len(value) > 128:
            raise _bad_param(name, value, "a model version (1 to 128 characters)")
    metric, design = query.get("metric", "auc"), query.get("design", "concurrent")
    if metric not in METRICS:
        raise _bad_param("metric", metric, " | ".join(METRICS))
    if design not in DESIGNS:
        raise _bad_param("design", design, " | ".join(DESIGNS))
    since = _time_param(request, "since")
    try:
        result = await service.outcomes.compare(
            key,
            query["candidate"],
            query["stable"],
            metric,  # type: ignore[arg-type]  # checked against METRICS above
            design,  # type: ignore[arg-type]  # checked against DESIGNS above
            since if since is not None else 0.0,
        )
    except KeyError as error:
        return _error(404, "unknown_model", str(error.args[0]))
    return web.json_response(result.model_dump(by_alias=True, mode="json"))


async def put_config(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    key = _model_key(request)
    try:
        config = ModelConfig.model_validate_json(await request.read())
    except ValidationError as error:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in error.errors()
        ]
        first = details[0] if details else {"field": "", "message": "invalid"}
        return web.json_response(
            {
                "error": "invalid_config",
                "message": f"{first['field']}: {first['message']}",
                "details": details,
            },
            status=400,
        )
    try:
        await service.put_config(key, config)
    except BadEvent as error:
        return _error(400, error.reason, error.message)
    return web.json_response(config.model_dump(by_alias=True))


async def get_config(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    state = service.core.models.get(_model_key(request))
    config = state.config if state is not None else ModelConfig()
    return web.json_response(config.model_dump(by_alias=True))


async def list_models(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    models = [
        {
            "namespace": namespace,
            "model": model,
            "versions": {
                version: {"role": window.role, "lastEventAt": window.last_event_ts or None}
                for version, window in state.versions.items()
            },
        }
        for (namespace, model), state in sorted(service.core.models.items())
    ]
    return web.json_response({"models": models})


async def drift(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    state = service.core.models.get(_model_key(request))
    if state is None:
        return _error(404, "unknown_model", "no events or config for this model")
    body = {
        "results": state.drift,
        "alarmState": state.alarm_state,
        "versions": service.drift_versions(_model_key(request)),
    }
    return web.json_response(body)


async def evaluate_model_drift(request: web.Request) -> web.Response:
    """Evaluate one model now (the operator and tests need not wait for the loop)."""
    service = request.app[SERVICE_KEY]
    key = _model_key(request)
    if key not in service.core.models:
        return _error(404, "unknown_model", "no events or config for this model")
    done = await service.evaluate_drift(only=key)
    return web.json_response(
        {
            "evaluations": done,
            "failures": service.drift_failures,
            "versions": service.drift_versions(key),
        }
    )


async def drift_report(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    key = _model_key(request)
    version = request.query.get("version")
    if not version:
        return _error(400, "missing_parameter", "version=<model version> is required")
    try:
        page = await service.live_report(key, version)
    except KeyError as error:
        return _error(404, "unknown_version", str(error.args[0]))
    return web.Response(text=page, content_type="text/html")


async def report_snapshot(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    report_id = request.match_info["report_id"]
    page = await service.report_snapshot(report_id) if len(report_id) <= 64 else None
    if page is None:
        return _error(404, "unknown_report", f"no drift report {report_id[:64]!r}")
    return web.Response(text=page, content_type="text/html")


async def evaluate_drift(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    done = await service.evaluate_drift()
    return web.json_response({"evaluations": done, "failures": service.drift_failures})


async def bad_input(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    report = service.core.bad_input_report()
    totals: dict[str, int] = {}
    for entry in report:
        totals[entry["reason"]] = totals.get(entry["reason"], 0) + entry["count"]
    return web.json_response({"totals": totals, "entries": report})


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    core = service.core
    return web.json_response(
        {
            "ready": service.ready,
            "events": core.events_total,
            "pendingCalls": len(core.pending),
            "pendingShadow": len(core.shadow_pending),
            "journalBacklog": service.journal_backlog,
            "journalDropped": service.journal_dropped,
            "feedback": service.outcomes.sizes(),
            "predictionLog": (
                service.prediction_log.status() if service.prediction_log is not None else None
            ),
            "models": len(core.models),
        }
    )


async def readyz(request: web.Request) -> web.Response:
    ready = request.app[SERVICE_KEY].ready
    return web.json_response({"ready": ready}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    await service.outcomes.refresh()  # quality figures, computed off the loop
    body = generate_latest(service.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
