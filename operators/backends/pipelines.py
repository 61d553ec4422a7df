"""The pipeline backend the operators are configured with (``local`` or ``kfp``).

The types are in `runs.py`, the backends in `kfp_cluster.py` and `kfp_local.py`, the local
worker process in `kfp_local_worker.py`; this module only picks one from the configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
        # Task pods share no disk with the operator: the storage root must be a claim every
        # task mounts. s3:// and gs:// would need the Hadoop S3/GCS connector in the image,
        # which it does not have yet (issue #13 item 2).
        storage = config.storage_root
        if not storage.is_pvc:
            raise PipelineRunError(
                f"pipeline_backend 'kfp' needs a pvc://<claim>/<dir> storage root "
                f"(KUBELOOP_STORAGE), not {storage.uri!r}: KFP task pods do not see the "
                "operator's filesystem, and object storage is not supported on KFP yet"
            )
        # Single-user KFP: no user namespace; multi-user setups construct the backend directly.
        return KfpClusterBackend(
            kfp.Client(host=config.kfp_host),
            host=config.kfp_host,
            outputs=MlmdExecutionReader(host, int(port)),
            storage_pvc=storage.claim,
        )
    return KfpLocalBackend(Path(config.state_dir) / "pipeline-runs")
