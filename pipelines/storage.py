"""Every task of a kubeloop pipeline mounts the storage root's claim (issue #13 item 2).

The operator names locations under ``STORAGE_MOUNT_PATH`` when its storage root is
``pvc://<claim>/<dir>`` (operators/backends/storage.py); a task pod without the mount would
read and write its own container filesystem instead. The claim's name is the pipeline parameter
``storage_pvc``, which the KFP cluster backend always sets; kfp.local (the embedded default)
ignores the Kubernetes platform config, so there the parameter keeps its empty default.
"""

# No `from __future__ import annotations`: KFP reads the real annotation types.
from typing import Any

from kfp import kubernetes

from contracts.storage import STORAGE_MOUNT_PATH


def mount_storage(task: Any, storage_pvc: Any) -> Any:
    """``task`` with the storage claim mounted at ``STORAGE_MOUNT_PATH``."""
    return kubernetes.mount_pvc(task, pvc_name=storage_pvc, mount_path=STORAGE_MOUNT_PATH)
