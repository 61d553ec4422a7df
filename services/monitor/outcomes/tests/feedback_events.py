"""Builders for feedback CloudEvents and the inference calls they label (test helpers)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from contracts import cloudevents as ce
from services.monitor.tests.events import binary_headers

BASE = "/v1/models/team-a/churn"
FEEDBACK = BASE + "/feedback"


def feedback_headers(event_id: str, **extra: str) -> dict[str, str]:
    return {
        ce.SPECVERSION_HEADER: ce.SPECVERSION,
        ce.TYPE_HEADER: ce.TYPE_FEEDBACK,
        ce.ID_HEADER: event_id,
        ce.SOURCE_HEADER: "urn:test:app",
        "content-type": "application/json",
        **extra,
    }


def structured(event_id: str, data: Any, **attrs: Any) -> dict[str, Any]:
    return {
        ce.ATTR_SPECVERSION: ce.SPECVERSION,
        ce.ATTR_TYPE: ce.TYPE_FEEDBACK,
        ce.ATTR_ID: event_id,
        ce.ATTR_SOURCE: "urn:test:app",
        "datacontenttype": "application/json",
        "data": data,
        **attrs,
    }


async def post_binary(
    http: aiohttp.ClientSession, url: str, event_id: str, data: Any
) -> tuple[int, dict[str, Any]]:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    async with http.post(url + FEEDBACK, data=body, headers=feedback_headers(event_id)) as r:
        return r.status, await r.json()


async def post_batch(
    http: aiohttp.ClientSession, url: str, events: list[Any], path: str = FEEDBACK
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": ce.BATCH_CONTENT_TYPE}
    async with http.post(url + path, data=json.dumps(events), headers=headers) as r:
        return r.status, await r.json()


async def post_structured(
    http: aiohttp.ClientSession, url: str, event: Any
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": ce.STRUCTURED_CONTENT_TYPE}
    async with http.post(url + FEEDBACK, data=json.dumps(event), headers=headers) as r:
        return r.status, await r.json()


async def serve(
    http: aiohttp.ClientSession,
    url: str,
    request_id: str,
    version: str,
    score: float | list[float],
    *,
    role: str | None = None,
    instances: list[Any] | None = None,
) -> None:
    """One answered inference call as the logger reports it (request + response events)."""
    scores = score if isinstance(score, list) else [score]
    rows = instances or [[1.0, 2.0]] * len(scores)
    for kind, body in (("request", {"instances": rows}), ("response", {"predictions": scores})):
        headers = binary_headers(kind, request_id, version, role=role,
                                 status=200 if kind == "response" else None)  # fmt: skip
        async with http.post(url + "/", data=json.dumps(body), headers=headers) as r:
            assert r.status == 200, await r.text()
