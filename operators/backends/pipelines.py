"""The pipeline backend the operators are configured with (``local`` or ``kfp``).

The types are in `runs.py`, the backends in `kfp_cluster.py` and `kfp_local.py`, the local
worker process in `kfp_local_worker.py`; this module picks one from the configuration and
re-exports them for callers that import the backend as a whole.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from operators.backends.kfp_cluster import (
    KfpClusterBackend,
    display_name_filter,
    kfp_run_url,
    kfp_status,
    map_kfp_state,
    pipeline_version_name,
)
from operators.backends.kfp_local import KfpLocalBackend, LocalState
from operators.backends.kfp_local_worker import (
    evaluate_cel_condition,
    main,
    resolve_condition_channel,
    run_local_worker,
)
from operators.backends.runs import (
    PipelineBackend,
    PipelineRunError,
    RunRef,
    RunState,
    RunStatus,
    build_arguments,
    check_run_name,
    default_packages,
    failure_message,
    load_spec,
    log_tail,
)

__all__ = [
    "KfpClusterBackend",
    "KfpLocalBackend",
    "LocalState",
    "PipelineBackend",
    "PipelineRunError",
    "RunRef",
    "RunState",
    "RunStatus",
    "build_arguments",
    "check_run_name",
    "default_packages",
    "display_name_filter",
    "evaluate_cel_condition",
    "failure_message",
    "kfp_run_url",
    "kfp_status",
    "load_spec",
    "log_tail",
    "main",
    "map_kfp_state",
    "pipeline_backend_from_config",
    "pipeline_version_name",
    "resolve_condition_channel",
    "run_local_worker",
]


def pipeline_backend_from_config(config: Any) -> PipelineBackend:
    """The backend an ``operators.config.OperatorConfig`` asks for (``local`` or ``kfp``)."""
    if config.pipeline_backend == "kfp":
        if not config.kfp_host:
            raise PipelineRunError("pipeline_backend 'kfp' needs kfp_host (KUBELOOP_KFP_HOST)")
        import kfp

        # Single-user KFP: no user namespace; multi-user setups construct the backend directly.
        return KfpClusterBackend(kfp.Client(host=config.kfp_host), host=config.kfp_host)
    return KfpLocalBackend(Path(config.state_dir) / "pipeline-runs")


if __name__ == "__main__":
    sys.exit(main())
