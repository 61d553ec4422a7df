"""What KServe's model serving path accepts from kubeloop: the runtime and the storage URIs.

- ``RUNTIME_NAME`` (``kubeloop-mlflow``): the ClusterServingRuntime shipped in
  ``helm/kubeloop/templates/servingruntime.yaml`` and ``manifests/runtime/``. It runs the
  kubeloop image (torch and the MLflow pyfunc loader from ``requirements.lock``) with
  ``python -m localcluster.serving.predictor``: a ``kserve.ModelServer`` speaking the v1 and v2
  protocols, serving the model under the MLModel's name (the ``kubeloop.io/mlmodel``
  annotation, :mod:`contracts.kube`) so every version answers ``/v2/models/<mlmodel>/infer``
  and a route needs no rewrite. KServe fills ``{{...}}`` in a runtime's container from the
  InferenceService's ``metadata`` with Go's text/template (``ReplacePlaceholders`` in KServe's
  ``pkg/controller/v1beta1/inferenceservice/utils/utils.go``), hence ``index .Annotations``.
- ``MODEL_DIR``: where KServe's storage initializer puts the model (``/mnt/models``, KServe's
  ``MODEL_MOUNT_DIRS``).
- ``STORAGE_PREFIXES``: the ``storageUri`` schemes KServe 0.20's default storage initializer
  downloads. Source: ``kserve_storage.Storage.download`` (PyPI ``kserve-storage`` 0.20.0,
  ``kserve_storage/kserve_storage.py``: ``gs://``, ``s3://``, ``hdfs://``, ``webhdfs://``,
  ``hf://``, ``file://`` or an existing local path, and ``http(s)://``; anything else raises
  "Cannot recognize storage type"), plus ``pvc://``, which KServe's webhook turns into a volume
  mounted under ``/mnt/pvc`` before the initializer runs (KServe docs, "Storage Containers",
  https://kserve.github.io/website/docs/model-serving/storage/storage-containers and the
  default ``ClusterStorageContainer``'s ``supportedUriFormats``). MLflow's own schemes
  (``models:/``, ``runs:/``, ``mlflow-artifacts:/``) are not among them.
"""

from __future__ import annotations

from typing import Final

RUNTIME_NAME: Final = "kubeloop-mlflow"
MODEL_DIR: Final = "/mnt/models"
RUNTIME_HTTP_PORT: Final = 8080

STORAGE_PREFIXES: Final = (
    "s3://",
    "gs://",
    "pvc://",
    "https://",
    "http://",
    "hdfs://",
    "webhdfs://",
    "hf://",
    "file://",
)


def kserve_can_fetch(uri: str) -> bool:
    """True when KServe's storage initializer knows ``uri``'s scheme (or it is an absolute local
    path, which the initializer copies when it exists in its container)."""
    return uri.startswith(STORAGE_PREFIXES) or uri.startswith("/")
