"""CloudEvents ingestion, shared by the aiohttp route and the fast ingest listener.

``handle_ingest`` takes the parts of an HTTP request and returns the status and JSON body to
answer; it never raises for anything a client sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from services.monitor import cloudevents_spec as ce
from services.monitor.parsing import (
    BadEvent,
    Envelope,
    envelope_from_binary,
    envelope_from_structured,
    structured_events,
)

if TYPE_CHECKING:
    from services.monitor.service import MonitorService

log = logging.getLogger(__name__)

ACCEPTED = b'{"accepted":1}'
Reply = tuple[int, bytes]
NOT_DURABLE = (
    503,
    b'{"error":"journal_unavailable","message":"the event could not be committed; retry"}',
)


_NAMESPACE_HEADER = ce.BINARY_PREFIX + ce.ATTR_NAMESPACE


def error_body(reason: str, message: str, **extra: Any) -> bytes:
    return json.dumps({"error": reason, "message": message, **extra}).encode()


def handle_ingest(
    service: MonitorService,
    headers: Mapping[str, str],
    content_type: str,
    body: bytes | None,
    configured_only: bool = False,
) -> Reply:
    """One HTTP POST of CloudEvents; ``body`` None means it exceeded the size limit.

    ``headers`` must answer ``get`` for lowercase names (aiohttp's mapping does any case).
    ``configured_only``: the sender is trusted by the NetworkPolicy alone (no token), so only
    events of a model/version the monitor was configured for are kept; the others are
    counted (``dropped_unconfigured``) and dropped.
    """
    namespace = (headers.get(_NAMESPACE_HEADER) or "")[:253]
    if body is None:
        message = f"body exceeds {service.settings.limits.max_body_bytes} bytes"
        service.reject(namespace, "", BadEvent("oversized", message))
        return 413, error_body("oversized", message)
    if service.journal_full:  # refused before it counts anywhere, so a retry is not a duplicate
        message = "the monitor's journal is behind; retry"
        return 503, error_body("overloaded", message)
    if content_type in (ce.STRUCTURED_CONTENT_TYPE, ce.BATCH_CONTENT_TYPE):
        return _structured(service, body, namespace, configured_only)
    try:
        env = envelope_from_binary(headers, body)
    except BadEvent as error:
        service.reject(namespace, "", error)
        return 400, error_body(error.reason, error.message)
    return _accept_one(service, env, configured_only)


def needs_commit(status: int) -> bool:
    """A 200 means at least one event was journaled: the reply waits for its commit."""
    return status == 200


async def acknowledged(service: MonitorService, reply: Reply) -> Reply:
    """``reply`` once what it acknowledges is durable; a 503 when the commit failed."""
    if needs_commit(reply[0]) and not await service.durable():
        return NOT_DURABLE
    return reply


def is_configured(service: MonitorService, env: Envelope) -> bool:
    """The event's model has a config and, when it names versions, the event's is one."""
    state = service.core.models.get((env.namespace, env.model))
    if state is None or (env.namespace, env.model) not in service.configured:
        return False
    config = state.config
    named = {config.stable_version, config.candidate_version, config.shadow_version} - {None}
    return not named or env.version in named


def _accept_one(service: MonitorService, env: Envelope, configured_only: bool = False) -> Reply:
    if configured_only and not is_configured(service, env):
        # Not in any window or counter keyed by the sender's names (they are attacker-chosen):
        # one integer, exported as a metric.
        service.auth.dropped_unconfigured += 1
        message = "events are only taken for models and versions the monitor is configured for"
        return 403, error_body("unconfigured_model", message)
    try:
        problem = service.accept(env)
    except BadEvent as error:
        service.reject(env.namespace, env.model, error)
        return 400, error_body(error.reason, error.message)
    except Exception as exc:  # never a 500 for what a client sent; the trace is logged
        log.exception("could not process event %s", env.event_id)
        service.reject(env.namespace, env.model, BadEvent("unprocessable", str(exc)[:200]))
        return 422, error_body("unprocessable", f"event could not be processed: {exc}")
    if problem is None:
        return 200, ACCEPTED
    return 200, json.dumps({"accepted": 1, "payloadProblem": problem}).encode()


def _structured(
    service: MonitorService, body: bytes, namespace: str, configured_only: bool = False
) -> Reply:
    try:
        events = structured_events(body)
    except BadEvent as error:
        service.reject(namespace, "", error)
        return 400, error_body(error.reason, error.message)
    accepted = 0
    rejected: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        try:
            env = envelope_from_structured(event)
        except BadEvent as error:
            service.reject(namespace, "", error)
            rejected.append({"index": index, "error": error.reason, "message": error.message})
            continue
        status, reply = _accept_one(service, env, configured_only)
        if status >= 400:
            rejected.append({"index": index, **json.loads(reply)})
            continue
        accepted += 1
        if reply != ACCEPTED:
            problems.append({"index": index, **json.loads(reply)})
    if accepted == 0:
        first = rejected[0] if rejected else {"error": "empty", "message": "no events in body"}
        reply_body = {"accepted": 0, "rejected": rejected, **first}
        return 400, json.dumps(reply_body).encode()
    reply_body = {"accepted": accepted, "rejected": rejected, "problems": problems}
    return 200, json.dumps(reply_body).encode()
