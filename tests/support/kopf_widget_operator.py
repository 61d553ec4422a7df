"""A small Kopf operator used by the localcluster Kopf test (not collected by pytest)."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf
from kubernetes import client, config

GROUP = "lctest.example.com"
CLIENTS: dict[str, client.CoreV1Api] = {}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/kopf-finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.posting.level = logging.INFO
    settings.posting.loggers = True
    settings.watching.server_timeout = 30
    # The kubernetes package reads $KUBECONFIG at import time; the test sets it later.
    api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    CLIENTS["core"] = client.CoreV1Api(api)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.create(GROUP, "v1", "widgets")
def create_child(
    spec: dict[str, Any], name: str, namespace: str, body: kopf.Body, patch: kopf.Patch, **_: Any
) -> dict[str, str]:
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-child"},
        "data": {"size": str(spec.get("size"))},
    }
    kopf.adopt(child)
    CLIENTS["core"].create_namespaced_config_map(namespace, child)
    patch.status["phase"] = "Ready"
    kopf.info(body, reason="ChildCreated", message=f"created config map {name}-child")
    return {"child": child["metadata"]["name"]}


@kopf.on.update(GROUP, "v1", "widgets", field="spec.size")
def resize(new: Any, name: str, namespace: str, patch: kopf.Patch, **_: Any) -> None:
    CLIENTS["core"].patch_namespaced_config_map(
        f"{name}-child", namespace, {"data": {"size": str(new)}}
    )
    patch.status["observedSize"] = new


@kopf.on.delete(GROUP, "v1", "widgets")
def cleanup(name: str, logger: logging.Logger, **_: Any) -> None:
    logger.info(f"cleaned up after {name}")
