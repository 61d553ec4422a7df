"""The Kopf shell turns a transient backend failure into a prompt retry, not Kopf's 60 s one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from kubernetes.client.rest import ApiException
from urllib3.exceptions import MaxRetryError

from operators.api.kinds import FEATUREVIEW
from operators.controller import TRANSIENT_RETRY_S, KindController

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "resources" / "featureview.yaml"


def _handle(error: Exception) -> None:
    def reconcile(backends: Any, obj: Any, now: Any) -> Any:
        raise error

    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"].update(namespace="default", uid="u1", generation=1)
    controller = KindController(FEATUREVIEW, reconcile, lambda: None)
    controller.handle(kopf.Body(doc), kopf.Patch())


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError("connection refused"),
        MaxRetryError(None, "/apis", "Connection refused"),  # type: ignore[arg-type]
        ApiException(status=409, reason="Conflict"),
        ApiException(status=503, reason="Service Unavailable"),
        TimeoutError("read timed out"),
    ],
    ids=["refused", "urllib3", "conflict", "unavailable", "timeout"],
)
def test_transient_failures_retry_within_seconds(error: Exception) -> None:
    with pytest.raises(kopf.TemporaryError) as retried:
        _handle(error)
    assert retried.value.delay == TRANSIENT_RETRY_S
    assert retried.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [ApiException(status=422, reason="Unprocessable Entity"), ValueError("a bug")],
    ids=["invalid", "bug"],
)
def test_other_failures_reach_kopf_unchanged(error: Exception) -> None:
    with pytest.raises(type(error)) as raised:
        _handle(error)
    assert raised.value is error
