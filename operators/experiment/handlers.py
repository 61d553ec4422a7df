"""Kopf handlers for the experiment kind: parse and delegate, nothing else."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import kopf

from operators.api.common import GROUP, VERSION
from operators.api.kinds import EXPERIMENT
from operators.backends.pipelines import pipeline_backend_from_config
from operators.config import OperatorConfig
from operators.experiment import service
from operators.featureview.status_patch import write_status
from operators.runtime import PIPELINES, context_of, shared_backend
from operators.runtime import startup as shared_startup
from operators.status import REASON_INVALID_SPEC

EXPERIMENT_BACKENDS = "experiment"
# Kopf fixes a timer's interval when the handler is registered, before startup runs, so this
# one value is read from the environment here; every other setting arrives through the memo.
POLL_S = OperatorConfig.from_env().poll_interval_s


def kubernetes_api_client() -> Any:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig:
        return k8s_config.new_client_from_config(config_file=kubeconfig)
    k8s_config.load_incluster_config()
    return k8s.ApiClient()


@kopf.on.startup()
def build_experiment_backends(settings: kopf.OperatorSettings, memo: kopf.Memo, **kw: Any) -> None:
    if getattr(memo, "context", None) is None:
        shared_startup(settings=settings, memo=memo, **kw)
    context = context_of(memo)
    reader = service.KubeFeatureViews(kubernetes_api_client())
    pipelines = shared_backend(
        context, PIPELINES, lambda: pipeline_backend_from_config(context.config)
    )
    context.backends[EXPERIMENT_BACKENDS] = service.ExperimentBackends.from_config(
        context.config, reader, pipelines
    )


def _backends(memo: kopf.Memo) -> service.ExperimentBackends:
    backends: service.ExperimentBackends = context_of(memo).backends[EXPERIMENT_BACKENDS]
    return backends


@kopf.on.resume(GROUP, VERSION, EXPERIMENT.plural)
@kopf.on.create(GROUP, VERSION, EXPERIMENT.plural)
@kopf.on.update(GROUP, VERSION, EXPERIMENT.plural)
def reconcile_experiment(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    obj = service.ExperimentObject.from_body(body)
    outcome = service.reconcile(_backends(memo), obj, datetime.now(UTC))
    if outcome.problem:
        kopf.warn(body, reason=REASON_INVALID_SPEC, message=outcome.problem)
    write_status(body, patch, outcome.status)


@kopf.timer(GROUP, VERSION, EXPERIMENT.plural, interval=POLL_S, initial_delay=POLL_S)
def follow_trials(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Follows running trials, launches the next ones, registers the best when all finish."""
    obj = service.ExperimentObject.from_body(body)
    write_status(body, patch, service.reconcile(_backends(memo), obj, datetime.now(UTC)).status)


@kopf.on.delete(GROUP, VERSION, EXPERIMENT.plural)
def release_experiment(body: kopf.Body, **_: Any) -> None:
    """Owned children go with ownerReferences; this holds the finalizer until then."""
