"""Every task of a kubeloop pipeline sees the storage root (issue #13 item 2).

The operator names locations under the root (contracts/storage_root.py); a task pod that
cannot reach them would read and write its own container filesystem instead. What a task needs
depends on the root's scheme, and KFP's platform config is fixed at compile time (a claim mount
with an empty claim name fails the pod), so each pipeline is compiled once per kind of root
(``STORAGE_KINDS``; pipelines/compile.py):

- ``pvc``: the claim is mounted at ``STORAGE_MOUNT_PATH`` (kfp-kubernetes ``mount_pvc``), its
  name the pipeline parameter ``storage_pvc``.
- ``s3``: the credentials Secret's keys become the task's environment (``use_secret_as_env``):
  the key pair required, the endpoint and region optional (contracts/storage.py).
- ``gs``: the Secret is mounted at ``STORAGE_CREDENTIALS_MOUNT_PATH`` (``use_secret_as_volume``)
  and ``GOOGLE_APPLICATION_CREDENTIALS`` names its key file.

The Secret's name is the pipeline parameter ``storage_secret``. The KFP cluster backend always
sets the parameter its kind needs; kfp.local (the embedded default) ignores the Kubernetes
platform config, so there both keep their empty defaults.
"""

# No `from __future__ import annotations`: KFP reads the real annotation types.
from collections.abc import Callable
from typing import Any

from kfp import kubernetes

from contracts.storage import (
    GOOGLE_CREDENTIALS_ENV,
    GOOGLE_CREDENTIALS_FILE,
    S3_OPTIONAL_KEYS,
    S3_REQUIRED_KEYS,
    STORAGE_CREDENTIALS_MOUNT_PATH,
    STORAGE_MOUNT_PATH,
)

PVC, S3, GS = "pvc", "s3", "gs"
# The kinds of storage root a pipeline is compiled for; pvc is the default package.
STORAGE_KINDS = (PVC, S3, GS)


def mount_storage(task: Any, storage_pvc: Any) -> Any:
    """``task`` with the storage claim mounted at ``STORAGE_MOUNT_PATH``."""
    return kubernetes.mount_pvc(task, pvc_name=storage_pvc, mount_path=STORAGE_MOUNT_PATH)


def s3_credentials(task: Any, storage_secret: Any) -> Any:
    """``task`` with the Secret's S3 keys as its environment (endpoint and region optional:
    AWS itself needs neither)."""
    required = {key: key for key in S3_REQUIRED_KEYS}
    kubernetes.use_secret_as_env(task, secret_name=storage_secret, secret_key_to_env=required)
    optional = {key: key for key in S3_OPTIONAL_KEYS}
    return kubernetes.use_secret_as_env(
        task, secret_name=storage_secret, secret_key_to_env=optional, optional=True
    )


def gcs_credentials(task: Any, storage_secret: Any) -> Any:
    """``task`` with the Secret's service-account key mounted and named for google-auth."""
    kubernetes.use_secret_as_volume(
        task, secret_name=storage_secret, mount_path=STORAGE_CREDENTIALS_MOUNT_PATH
    )
    return task.set_env_variable(GOOGLE_CREDENTIALS_ENV, GOOGLE_CREDENTIALS_FILE)


def storage_attacher(kind: str) -> Callable[[Any, Any, Any], Any]:
    """``attach(task, storage_pvc, storage_secret)`` for a root of ``kind``."""
    if kind == PVC:
        return lambda task, storage_pvc, storage_secret: mount_storage(task, storage_pvc)
    if kind == S3:
        return lambda task, storage_pvc, storage_secret: s3_credentials(task, storage_secret)
    if kind == GS:
        return lambda task, storage_pvc, storage_secret: gcs_credentials(task, storage_secret)
    raise ValueError(f"storage kind {kind!r} is not one of {', '.join(STORAGE_KINDS)}")
