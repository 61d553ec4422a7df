"""The pipeline backend the operators are configured with (``local`` or ``kfp``).

The types are in `runs.py`, the backends in `kfp_cluster.py` and `kfp_local.py`, the local
worker process in `kfp_local_worker.py`; this module only picks one from the configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts.storage import STORAGE_SECRET_ENV
from operators.backends.kfp_cluster import KfpClusterBackend, MlmdExecutionReader
from operators.backends.kfp_local import KfpLocalBackend
from operators.backends.runs import PipelineBackend, PipelineRunError


def pipeline_backend_from_config(config: Any) -> PipelineBackend:
    """The backend an ``operators.config.OperatorConfig`` asks for (``local`` or ``kfp``)."""
    if config.pipeline_backend == "kfp":
        if not config.kfp_host:
            raise PipelineRunError("pipeline_backend 'kfp' needs kfp_host (KUBELOOP_KFP_HOST)")
        import kfp

        host, _, port = config.kfp_metadata_address.rpartition(":")
        if not host or not port.isdigit():
            raise PipelineRunError(
                f"kfp_metadata_address {config.kfp_metadata_address!r} is not host:port"
            )
        # Task pods share no disk with the operator: the storage root is a claim every task
        # mounts, or object storage every task reaches with the credentials Secret (the image
        # has s3fs/gcsfs and Spark's Hadoop S3A and GCS connectors; pipelines/storage.py).
        storage = config.storage_root
        if storage.scheme == "file":
            raise PipelineRunError(
                f"pipeline_backend 'kfp' needs a pvc://<claim>/<dir>, s3:// or gs:// storage "
                f"root (KUBELOOP_STORAGE), not {storage.uri!r}: KFP task pods do not see the "
                "operator's filesystem"
            )
        if storage.scheme in ("s3", "gs") and not config.storage_secret:
            raise PipelineRunError(
                f"pipeline_backend 'kfp' with the {storage.uri!r} storage root needs the "
                f"credentials Secret every task gets ({STORAGE_SECRET_ENV}, the chart's "
                "storage.credentialsSecret)"
            )
        if storage.scheme in ("s3", "gs") and not config.feast_registry:
            raise PipelineRunError(
                f"pipeline_backend 'kfp' with the {storage.uri!r} storage root needs a shared "
                "Feast registry (KUBELOOP_FEAST_REGISTRY): the Feast repo is a scratch "
                "directory of each task there"
            )
        # Single-user KFP: no user namespace; multi-user setups construct the backend directly.
        return KfpClusterBackend(
            kfp.Client(host=config.kfp_host),
            host=config.kfp_host,
            outputs=MlmdExecutionReader(host, int(port)),
            storage_pvc=storage.claim,
            storage_kind=storage.scheme,
            storage_secret=config.storage_secret or "",
        )
    return KfpLocalBackend(Path(config.state_dir) / "pipeline-runs")
