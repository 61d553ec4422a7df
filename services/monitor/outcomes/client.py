"""Send labels to the monitor: ``send_feedback(url, namespace, model, labels)``.

Standard library only, so an application can vendor this file. Labels go out as CloudEvents
batches (``application/cloudevents-batch+json``) of at most ``batch_size`` events. Each
label gets its event id once, before the first attempt (yours, from ``"id"``, or a new
UUID), so retrying a batch after a timeout or a 5xx never counts a label twice: the monitor
acknowledges a repeated id as a duplicate.

    from services.monitor.outcomes.client import send_feedback

    send_feedback(
        "http://monitor:8080", "team-a", "churn",
        [{"requestId": "3f9c…", "label": 1, "observedAt": 1700000123.0},
         {"entity": "user-17", "servedAt": "2024-05-01T10:00:00Z", "label": 0}],
    )  # -> {"accepted": 2, "duplicates": 0, "rejected": []}
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from contracts import cloudevents as ce
from contracts.auth import MONITOR_TOKEN_FILE_ENV
from services.monitor.auth.tokens import read_token

SOURCE = "urn:kubeloop:feedback-client"
_ID_KEY = "id"  # a label's own event id, when the caller keeps one


class FeedbackRefused(RuntimeError):
    """The monitor refused a whole batch (4xx other than per-event problems)."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"{status}: {body.get('error')}: {body.get('message')}")
        self.status = status
        self.body = body


def feedback_event(label: Mapping[str, Any], source: str = SOURCE) -> dict[str, Any]:
    """One structured-mode feedback CloudEvent for a label dict."""
    data = {k: v for k, v in label.items() if k != _ID_KEY}
    return {
        ce.ATTR_SPECVERSION: ce.SPECVERSION,
        ce.ATTR_TYPE: ce.TYPE_FEEDBACK,
        ce.ATTR_ID: str(label.get(_ID_KEY) or uuid.uuid4()),
        ce.ATTR_SOURCE: source,
        "datacontenttype": "application/json",
        "data": data,
    }


def send_feedback(
    url: str,
    namespace: str,
    model: str,
    labels: Iterable[Mapping[str, Any]],
    *,
    batch_size: int = 1000,
    timeout_s: float = 10.0,
    retries: int = 3,
    source: str = SOURCE,
    token: str | None = None,
) -> dict[str, Any]:
    """POST the labels; returns the summed ``accepted``, ``duplicates`` and the
    ``rejected`` events (``index`` into ``labels``, ``field``, ``error``, ``message``).

    Connection errors, 429 and 5xx are retried (``retries`` times, backing off); a batch the
    monitor refuses whole (413, 404 unknown model, …) raises :class:`FeedbackRefused`.

    ``token``: the bearer token (a ServiceAccount token whose user may ``create``
    ``mlmodels/feedback`` in ``namespace``, or the embedded token); default: the file named by
    ``$KUBELOOP_MONITOR_TOKEN_FILE``. A 401/403 raises :class:`FeedbackRefused`.
    """
    token = token or read_token(os.environ.get(MONITOR_TOKEN_FILE_ENV))
    endpoint = f"{url.rstrip('/')}/v1/models/{namespace}/{model}/feedback"
    events = [feedback_event(label, source) for label in labels]
    total: dict[str, Any] = {"accepted": 0, "duplicates": 0, "rejected": []}
    for start in range(0, len(events), batch_size):
        batch = events[start : start + batch_size]
        status, body = _post(endpoint, json.dumps(batch).encode(), timeout_s, retries, token)
        if status == 400 and body.get("accepted") == 0 and "rejected" in body:
            pass  # every event of the batch had a problem: reported below, per event
        elif status >= 300:
            raise FeedbackRefused(status, body)
        total["accepted"] += int(body.get("accepted", 0))
        total["duplicates"] += int(body.get("duplicates", 0))
        for problem in body.get("rejected", []):
            total["rejected"].append({**problem, "index": start + int(problem["index"])})
    return total


def _post(
    endpoint: str, payload: bytes, timeout_s: float, retries: int, token: str | None
) -> tuple[int, Any]:
    headers = {"Content-Type": ce.BATCH_CONTENT_TYPE}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for attempt in range(retries + 1):
        request = urllib.request.Request(endpoint, data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
            if error.code != 429 and error.code < 500 or attempt == retries:
                return error.code, body
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            if attempt == retries:
                raise
        time.sleep(min(0.2 * 2**attempt, 5.0))
    raise AssertionError("unreachable")
