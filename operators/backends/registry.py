"""MLflow model registry adapter: an MLModel's `spec.model` → one concrete model version.

The client is built at operator startup from the configured tracking URI (a tracking server in
a cluster, a SQLite store on the embedded default) and passed in; nothing here is global.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict

from contracts.kserve_runtime import STORAGE_PREFIXES, kserve_can_fetch
from contracts.mlflow_tags import (
    CHAMPION_ALIAS,
    EVALUATION_PASSED,
    REFERENCE_ARTIFACT,
    REFERENCE_DIR,
    SCORE_REFERENCE_ARTIFACT,
    VALIDATION_METRICS,
)
from contracts.mlflow_tags import EVALUATION as EVALUATION_TAG
from operators.api.mlmodel import ModelRef

if TYPE_CHECKING:
    # mlflow takes many seconds to import; the operator imports it when it first connects.
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# EVALUATION_TAG=EVALUATION_PASSED is set on a model version by the training side when its
# evaluation passed the objective; `follow: latest-passing` serves the newest version carrying
# it. REFERENCE_ARTIFACT is the run's drift reference, SCORE_REFERENCE_ARTIFACT the model's
# validation scores saved by the evaluate component (contracts/mlflow_tags.py).


#: Seconds before a run without the asked validation metric is asked again.
VALIDATION_RETRY_S = 300.0


class ModelVersionNotFound(LookupError):
    """The registry has no version matching `spec.model`; the message names what was asked."""


class StorageUriUnsupported(ModelVersionNotFound):
    """A model's artifact location that KServe's storage initializer cannot fetch; the message
    names the URI and the operator setting that maps it. A kind of "not found" (no servable
    version) so the MLModel shows it in its Ready condition instead of retrying an exception."""


MLFLOW_ARTIFACTS_SCHEME = "mlflow-artifacts"
ARTIFACTS_DESTINATION_SETTING = "KUBELOOP_MLFLOW_ARTIFACTS_DESTINATION"


def kserve_storage_uri(uri: str, artifacts_destination: str | None = None) -> str:
    """The ``storageUri`` for a model version's MLflow download URI (pure).

    - ``mlflow-artifacts:/<path>`` (or ``mlflow-artifacts://<host>/<path>``): a tracking server
      started with ``--serve-artifacts`` proxies these to its ``--artifacts-destination``,
      ``<path>`` relative to it (MLflow docs, "Tracking Server", artifact proxy:
      https://mlflow.org/docs/latest/ml/tracking/server). KServe's storage initializer cannot
      talk to the tracking server, so the URI becomes ``<artifacts_destination>/<path>``: the
      same store the server writes, by a scheme the initializer knows (``s3://bucket/root``,
      ``gs://``, or ``pvc://<claim>/<dir>`` for the kind PVC ``manifests/dev-deps/mlflow.yaml``
      mounts at ``/mlartifacts``).
    - A local absolute path (the embedded default's SQLite store keeps artifacts under the
      state directory) becomes ``file://<path>``, which the initializer and MLflow both load.
    - A URI with a scheme the initializer knows (``s3://``, ``gs://``, ``file://`` …) is kept.
    - Anything else (``models:/``, ``runs:/``, ``dbfs:/``, or ``mlflow-artifacts:`` with no
      destination configured) raises :class:`StorageUriUnsupported` naming the setting.
    """
    if uri.startswith(f"{MLFLOW_ARTIFACTS_SCHEME}:"):
        if not artifacts_destination:
            raise StorageUriUnsupported(
                f"model artifact URI {uri!r} is served by the MLflow tracking server, which "
                f"KServe's storage initializer cannot reach; set {ARTIFACTS_DESTINATION_SETTING} "
                "to the server's --artifacts-destination as s3://, gs:// or pvc://<claim>/<dir>"
            )
        path = urlparse(uri).path.lstrip("/")
        mapped = f"{artifacts_destination.rstrip('/')}/{path}"
        if not mapped.startswith(STORAGE_PREFIXES):
            raise StorageUriUnsupported(
                f"{ARTIFACTS_DESTINATION_SETTING}={artifacts_destination!r} has no scheme KServe's "
                f"storage initializer supports ({', '.join(STORAGE_PREFIXES)})"
            )
        return mapped
    if uri.startswith("/"):
        return f"file://{uri}"
    if kserve_can_fetch(uri):
        return uri
    raise StorageUriUnsupported(
        f"model artifact URI {uri!r} has no scheme KServe's storage initializer supports "
        f"({', '.join(STORAGE_PREFIXES)})"
    )


class ResolvedVersion(BaseModel):
    """One registered model version, with what serving and lineage need from it."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    storage_uri: str
    run_id: str | None = None
    tags: dict[str, str] = {}


class ModelRegistry(Protocol):
    def resolve(self, ref: ModelRef) -> ResolvedVersion: ...

    def run_id_of(self, name: str, version: str) -> str | None: ...

    def reference_uri(self, run_id: str | None) -> str | None: ...

    def validation_metric(self, name: str, version: str, metric: str) -> float | None: ...

    def score_reference_uri(self, run_id: str | None) -> str | None: ...

    def mark_champion(self, name: str, version: str) -> None: ...


def describe_ref(ref: ModelRef) -> str:
    if ref.version is not None:
        return f"model {ref.name!r} version {ref.version}"
    if ref.alias is not None:
        return f"model {ref.name!r} alias {ref.alias!r}"
    return f"model {ref.name!r} (latest version with {EVALUATION_TAG}={EVALUATION_PASSED})"


def _is_missing(error: Exception) -> bool:
    code = getattr(error, "error_code", None)
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class MlflowRegistry:
    """Resolves model references against an MLflow tracking/registry server or store.

    Built at startup, connected on first use: opening a fresh SQLite store runs MLflow's
    schema migrations, which must not hold up the operator's startup (and every handler).
    """

    def __init__(
        self, connect: Callable[[], MlflowClient], artifacts_destination: str | None = None
    ) -> None:
        self._connect = connect
        # The tracking server's --artifacts-destination as KServe can fetch it (None: the
        # embedded default, whose artifacts are local paths).
        self._artifacts_destination = artifacts_destination
        self._client: MlflowClient | None = None
        self._lock = threading.Lock()
        # A version's run and a run's artifact root never change: asked once each.
        self._run_ids: dict[tuple[str, str], str | None] = {}
        self._references: dict[str, str | None] = {}
        self._validation: dict[tuple[str, str], float] = {}
        self._validation_missing: dict[tuple[str, str], float] = {}  # -> when last asked
        self._score_references: dict[str, str | None] = {}
        self._champions: dict[str, str] = {}  # registered model -> version last marked

    @classmethod
    def from_uri(
        cls, tracking_uri: str, artifacts_destination: str | None = None
    ) -> MlflowRegistry:
        def connect() -> MlflowClient:
            from mlflow import MlflowClient

            return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

        return cls(connect, artifacts_destination)

    @property
    def client(self) -> MlflowClient:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def resolve(self, ref: ModelRef) -> ResolvedVersion:
        from mlflow.exceptions import MlflowException

        try:
            found = self._find(ref)
        except MlflowException as error:
            if _is_missing(error):
                raise ModelVersionNotFound(f"{describe_ref(ref)} not found in MLflow") from None
            raise
        if found is None:
            raise ModelVersionNotFound(f"{describe_ref(ref)} not found in MLflow")
        return self._resolved(found)

    def _find(self, ref: ModelRef) -> ModelVersion | None:
        if ref.version is not None:
            return self.client.get_model_version(ref.name, ref.version)
        if ref.alias is not None:
            return self.client.get_model_version_by_alias(ref.name, ref.alias)
        return self._latest_passing(ref.name)

    def _latest_passing(self, name: str) -> ModelVersion | None:
        escaped = name.replace("'", "\\'")
        versions = self.client.search_model_versions(f"name = '{escaped}'")
        if not versions:
            raise ModelVersionNotFound(f"model {name!r} has no registered versions in MLflow")
        passing = [v for v in versions if (v.tags or {}).get(EVALUATION_TAG) == EVALUATION_PASSED]
        return max(passing, key=lambda v: int(v.version), default=None)

    def _resolved(self, found: ModelVersion) -> ResolvedVersion:
        # The artifact location, not a models:/ URI, in a scheme KServe's storage initializer
        # fetches without talking to the registry; the local predictor loads it the same way.
        download_uri = self.client.get_model_version_download_uri(found.name, str(found.version))
        storage_uri = kserve_storage_uri(download_uri, self._artifacts_destination)
        return ResolvedVersion(
            name=found.name,
            version=str(found.version),
            storage_uri=storage_uri,
            run_id=found.run_id or None,
            tags=dict(found.tags or {}),
        )

    def mark_champion(self, name: str, version: str) -> None:
        """Move the registered model's CHAMPION_ALIAS to ``version`` (the MLModel's stable
        version): what the training pipeline's evaluate step scores as the champion every
        candidate must beat (docs/architecture.md "Champion/challenger"). Asked once per
        change (the timer runs every few seconds); after a restart, once more."""
        if self._champions.get(name) == version:
            return
        self.client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        self._champions[name] = version

    def run_id_of(self, name: str, version: str) -> str | None:
        """The run that produced a model version (cached); None when it has none."""
        key = (name, version)
        if key not in self._run_ids:
            found = self.client.get_model_version(name, version)
            self._run_ids[key] = found.run_id or None
        return self._run_ids[key]

    def reference_uri(self, run_id: str | None) -> str | None:
        """URI of the run's training reference snapshot (cached per run); None without a run."""
        from mlflow.exceptions import MlflowException

        if not run_id:
            return None
        if run_id not in self._references:
            try:
                root = self.client.get_run(run_id).info.artifact_uri
            except MlflowException as error:
                if not _is_missing(error):
                    raise
                root = None
            self._references[run_id] = f"{root.rstrip('/')}/{REFERENCE_ARTIFACT}" if root else None
        return self._references[run_id]

    def validation_metric(self, name: str, version: str, metric: str) -> float | None:
        """The version's offline figure for a primary metric (`auc`, `logLoss`): the metric
        `components/evaluate` logged on its run for the validation window. None when the run,
        the metric or a mapping for it (accuracy) is missing. A found figure is cached (a
        finished run's metrics do not change); a missing one is asked again after
        `VALIDATION_RETRY_S` (the timer runs every few seconds; a run's metrics rarely
        appear later)."""
        key = VALIDATION_METRICS.get(metric)
        run_id = self.run_id_of(name, version) if key else None
        if key is None or run_id is None:
            return None
        cached = (run_id, key)
        if cached in self._validation:
            return self._validation[cached]
        asked = self._validation_missing.get(cached)
        if asked is not None and time.monotonic() - asked < VALIDATION_RETRY_S:
            return None
        value = self._run_metric(run_id, key)
        if value is None:
            self._validation_missing[cached] = time.monotonic()
            return None
        self._validation_missing.pop(cached, None)
        self._validation[cached] = value
        return value

    def _run_metric(self, run_id: str, key: str) -> float | None:
        from mlflow.exceptions import MlflowException

        try:
            value = self.client.get_run(run_id).data.metrics.get(key)
        except MlflowException as error:
            if not _is_missing(error):
                raise
            return None
        return None if value is None else float(value)

    def score_reference_uri(self, run_id: str | None) -> str | None:
        """URI of the run's validation scores (cached per run); None when the run has none
        (trained before they were saved, or evaluated without the run): the monitor then
        falls back to the version's first served window and says so."""
        from mlflow.exceptions import MlflowException

        if not run_id:
            return None
        if run_id not in self._score_references:
            root = self.reference_uri(run_id)
            try:
                saved = {item.path for item in self.client.list_artifacts(run_id, REFERENCE_DIR)}
            except MlflowException as error:
                if not _is_missing(error):
                    raise
                saved = set()
            found = root is not None and SCORE_REFERENCE_ARTIFACT in saved
            base = root.removesuffix(REFERENCE_ARTIFACT) if root else ""
            self._score_references[run_id] = f"{base}{SCORE_REFERENCE_ARTIFACT}" if found else None
        return self._score_references[run_id]
