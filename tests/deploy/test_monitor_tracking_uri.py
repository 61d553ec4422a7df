"""The monitor Deployment gets the MLflow tracking URI (issue #13 item 5).

Drift references are MLflow ``runs:/`` / ``models:/`` URIs; the monitor resolves them with
``MLFLOW_TRACKING_URI`` (``services/monitor/__main__.py``). Both renderings must hand it the
same URI the operator gets, from the operator's ConfigMap.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.test_helm_chart import default_render, find
from tests.deploy.test_manifests import by_kind, kustomize


def _tracking_uri(docs: list[dict[str, Any]], monitor: dict[str, Any]) -> str:
    container = monitor["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container.get("env", [])}
    assert "MLFLOW_TRACKING_URI" in env, "monitor container has no MLFLOW_TRACKING_URI"
    ref = env["MLFLOW_TRACKING_URI"]["valueFrom"]["configMapKeyRef"]
    config_maps = by_kind(docs, "ConfigMap")
    assert ref["name"] in config_maps, f"ConfigMap {ref['name']} is not rendered"
    value: str = config_maps[ref["name"]]["data"][ref["key"]]
    return value


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_monitor_gets_the_operators_tracking_uri(source: str) -> None:
    if source == "helm":
        docs = list(default_render())
        monitor = find(docs, "Deployment", "kubeloop-monitor")
    else:
        docs = kustomize("default")
        monitor = by_kind(docs, "Deployment")["kubeloop-monitor"]
    assert _tracking_uri(docs, monitor) == "http://mlflow.kubeloop-deps.svc.cluster.local:5000"
