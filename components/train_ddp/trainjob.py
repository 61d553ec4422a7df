"""Multi-node training on a cluster: a Kubeflow Trainer `TrainJob` (trainer.kubeflow.org/v1alpha1).

The component creates the TrainJob and waits for it. The referenced runtime (by default the
`torch-distributed` ClusterTrainingRuntime) injects the `PET_*` variables (nnodes, nproc per
node, node rank, master address/port) that torchrun reads, so the command carries only what is
ours. Every path in the trainer's flags (training/validation sets, output and checkpoint dirs)
must be on storage all nodes see — a shared volume the runtime mounts, for instance.

`trainjob_manifest` and `trainjob_outcome` are pure; `run_trainjob` is the small I/O shell.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from components.train_ddp.config import TrainConfig
from contracts.kube import MANAGED_BY_LABEL, MANAGED_BY_VALUE

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
PLURAL = "trainjobs"
KIND = "TrainJob"
DEFAULT_RUNTIME = "torch-distributed"
TRAINER_MODULE = "components.train_ddp.trainer"


class TrainingFailedError(RuntimeError):
    """Training ran and failed; the message carries the reason (and the log tail locally)."""


class ClusterOptions(BaseModel):
    """Where and how a multi-node TrainJob runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(min_length=1, description="Image with kubeloop and torch installed.")
    namespace: str = Field(default="default", min_length=1)
    runtime_name: str = DEFAULT_RUNTIME
    runtime_kind: str = "ClusterTrainingRuntime"
    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = Field(default=None, ge=0)
    timeout_s: float = Field(default=6 * 3600, gt=0)
    poll_s: float = Field(default=10.0, gt=0)


def trainjob_name(config: TrainConfig, prefix: str = "kubeloop-train") -> str:
    """Deterministic, RFC 1035, <= 63 chars: a retried component finds its own job."""
    digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:10]
    stem = re.sub(r"[^a-z0-9-]+", "-", (config.run_name or prefix).lower()).strip("-")
    stem = stem if stem and stem[0].isalpha() else f"t-{stem}".rstrip("-")
    return f"{stem[: 63 - len(digest) - 1].rstrip('-')}-{digest}"


def resources_per_node(options: ClusterOptions) -> dict[str, dict[str, str]] | None:
    amounts: dict[str, str] = {}
    if options.cpu:
        amounts["cpu"] = options.cpu
    if options.memory:
        amounts["memory"] = options.memory
    if options.gpu:
        amounts["nvidia.com/gpu"] = str(options.gpu)
    if not amounts:
        return None
    return {"requests": dict(amounts), "limits": dict(amounts)}


def trainjob_manifest(
    config: TrainConfig,
    *,
    nodes: int,
    nproc_per_node: int,
    max_restarts: int,
    options: ClusterOptions,
    name: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    trainer: dict[str, Any] = {
        "image": options.image,
        "command": ["torchrun", f"--max-restarts={max_restarts}", "-m", TRAINER_MODULE],
        "args": config.to_cli_args(),
        # See impl.RESTART_SAFE_ENV: restarted workers must not read stale peer addresses.
        "env": [{"name": "TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "value": "1"}],
        "numNodes": nodes,
        "numProcPerNode": nproc_per_node,
    }
    resources = resources_per_node(options)
    if resources:
        trainer["resourcesPerNode"] = resources
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": name or trainjob_name(config),
            "namespace": options.namespace,
            "labels": {
                MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                "app.kubernetes.io/component": "train-ddp",
                **(labels or {}),
            },
        },
        "spec": {
            "runtimeRef": {
                "name": options.runtime_name,
                "apiGroup": GROUP,
                "kind": options.runtime_kind,
            },
            "trainer": trainer,
        },
    }


def trainjob_outcome(trainjob: dict[str, Any]) -> tuple[str, str] | None:
    """("Complete"|"Failed", message) once the job has finished, else None."""
    for condition in trainjob.get("status", {}).get("conditions", []) or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            message = condition.get("message") or condition.get("reason") or ""
            return str(condition["type"]), str(message)
    return None


class CustomObjects(Protocol):
    """The part of kubernetes.client.CustomObjectsApi used here."""

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]
    ) -> Any: ...

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> Any: ...


def create_trainjob(api: CustomObjects, manifest: dict[str, Any]) -> None:
    """Create, tolerating AlreadyExists: a retried step waits on the job it made before."""
    from kubernetes.client.exceptions import ApiException

    namespace = manifest["metadata"]["namespace"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    except ApiException as error:
        if error.status != 409:
            raise


def wait_for_trainjob(
    api: CustomObjects,
    namespace: str,
    name: str,
    *,
    timeout_s: float,
    poll_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll until Complete (returns its message) or Failed/timeout (raises)."""
    deadline = clock() + timeout_s
    while True:
        trainjob = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        outcome = trainjob_outcome(trainjob)
        if outcome is not None:
            state, message = outcome
            if state == "Failed":
                raise TrainingFailedError(f"TrainJob {namespace}/{name} failed: {message}")
            return message
        if clock() >= deadline:
            raise TrainingFailedError(
                f"TrainJob {namespace}/{name} did not finish within {timeout_s:.0f}s"
            )
        sleep(poll_s)


def run_trainjob(api: CustomObjects, manifest: dict[str, Any], options: ClusterOptions) -> None:
    create_trainjob(api, manifest)
    wait_for_trainjob(
        api,
        manifest["metadata"]["namespace"],
        manifest["metadata"]["name"],
        timeout_s=options.timeout_s,
        poll_s=options.poll_s,
    )
