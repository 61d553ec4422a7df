"""The registry hands out only storageUris KServe's storage initializer can fetch (issue #13,
item 3): ``mlflow-artifacts:/`` is mapped onto the tracking server's artifact store, local
paths become ``file://``, MLflow's own schemes are refused with the setting to fix.

Where the ``kserve-storage`` package (KServe's storage initializer code, ``kserve_storage``) is
importable, each URI is also put through its own ``Storage.download`` dispatch.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from contracts.kserve_runtime import kserve_can_fetch
from operators.api.mlmodel import ModelRef
from operators.backends.registry import (
    ARTIFACTS_DESTINATION_SETTING,
    MlflowRegistry,
    ModelVersionNotFound,
    StorageUriUnsupported,
)

# What an MLflow 3 tracking server started with --serve-artifacts returns as a model version's
# download URI (a logged model's artifact location under the proxied root).
PROXIED = "mlflow-artifacts:/1/models/m-0a1b/artifacts"


class Client:
    """The two MlflowClient calls resolve() makes for an explicit version."""

    def __init__(self, download_uri: str) -> None:
        self.download_uri = download_uri

    def get_model_version(self, name: str, version: str) -> Any:
        return SimpleNamespace(name=name, version=version, run_id="r", tags={})

    def get_model_version_download_uri(self, name: str, version: str) -> str:
        return self.download_uri


def resolve(download_uri: str, destination: str | None = None) -> str:
    client = Client(download_uri)
    registry = MlflowRegistry(lambda: client, destination)  # type: ignore[arg-type,return-value]
    return registry.resolve(ModelRef(name="churn", version="3")).storage_uri


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("s3://mlflow/artifacts", "s3://mlflow/artifacts/1/models/m-0a1b/artifacts"),
        ("gs://bucket/root/", "gs://bucket/root/1/models/m-0a1b/artifacts"),
        ("pvc://mlflow-artifacts", "pvc://mlflow-artifacts/1/models/m-0a1b/artifacts"),
    ],
)
def test_proxied_artifacts_map_onto_the_artifact_store(destination: str, expected: str) -> None:
    # Before the mapping the registry handed out PROXIED itself, which no KServe fetches.
    uri = resolve(PROXIED, destination)
    assert uri == expected and kserve_can_fetch(uri)
    with_host = PROXIED.replace("mlflow-artifacts:/", "mlflow-artifacts://mlflow.deps:5000/")
    assert resolve(with_host, destination) == expected


def test_embedded_default_paths_are_file_uris_and_kserve_schemes_are_kept() -> None:
    assert resolve("/state/mlflow/artifacts/m/model") == "file:///state/mlflow/artifacts/m/model"
    for uri in ("file:///a/model", "s3://b/m", "gs://b/m", "https://h/m.tar.gz"):
        assert resolve(uri) == uri


@pytest.mark.parametrize(
    ("download_uri", "destination", "names"),
    [
        (PROXIED, None, ARTIFACTS_DESTINATION_SETTING),
        (PROXIED, "/mlartifacts", ARTIFACTS_DESTINATION_SETTING),
        ("models:/churn/3", None, "models:/churn/3"),
        ("dbfs:/models/x", None, "dbfs:/models/x"),
    ],
)
def test_uris_kserve_cannot_fetch_are_refused_with_the_fix(
    download_uri: str, destination: str | None, names: str
) -> None:
    with pytest.raises(StorageUriUnsupported, match=names) as raised:
        resolve(download_uri, destination)
    # A kind of "no servable version": the MLModel reports it instead of retrying a crash.
    assert isinstance(raised.value, ModelVersionNotFound)


def test_the_setting_is_read_from_the_environment() -> None:
    from operators.config import OperatorConfig

    env = {ARTIFACTS_DESTINATION_SETTING: "s3://mlflow/artifacts"}
    assert OperatorConfig.from_env(env).mlflow_artifacts_destination == "s3://mlflow/artifacts"


# ---- KServe's own storage code ---------------------------------------------------------------


def _storage() -> Any:
    module = pytest.importorskip(
        "kserve_storage",
        reason="kserve-storage (KServe's storage initializer package) is not installed",
    )
    return module.Storage


HANDLERS = ("_download_s3", "_download_gcs", "_download_from_uri", "_download_hdfs")


@pytest.mark.parametrize(
    ("destination", "handler"),
    [
        ("s3://mlflow/artifacts", "_download_s3"),
        ("gs://bucket/root", "_download_gcs"),
        ("https://artifacts.example.com/root", "_download_from_uri"),
    ],
)
def test_kserve_storage_dispatches_every_uri_the_registry_hands_out(
    destination: str, handler: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    storage = _storage()
    chosen: list[str] = []
    for name in HANDLERS:  # record the handler KServe picks instead of reaching the network

        def fake(uri: str, out_dir: str, *_: Any, _name: str = name) -> str:
            chosen.append(_name)
            return out_dir

        monkeypatch.setattr(storage, name, staticmethod(fake))
    monkeypatch.setattr(storage, "_configure_global_ca_bundle", staticmethod(lambda: None))
    storage.download(resolve(PROXIED, destination), out_dir=str(tmp_path / "out"))
    assert chosen == [handler]
    with pytest.raises(Exception, match="Cannot recognize storage type"):
        storage.download(PROXIED, out_dir=str(tmp_path / "out"))  # what was handed out before


def test_kserve_storage_fetches_the_embedded_default_model(tmp_path: Path) -> None:
    """A model registered in the embedded SQLite store: KServe's Storage.download accepts the
    registry's file:// URI and lays the model out as /mnt/models would be. (It symlinks local
    files, which MLflow's loader refuses as outside the model directory, so on a cluster the
    kind path uses pvc://, which KServe 0.20 mounts at /mnt/models directly; the local
    stand-in loads the file:// URI itself.)"""
    storage = _storage()
    from localcluster.serving.tests.logistic_model import register_logistic_model

    tracking_uri, _ = register_logistic_model(tmp_path / "mlflow")
    registry = MlflowRegistry.from_uri(tracking_uri)
    uri = registry.resolve(ModelRef(name="logistic", version="1")).storage_uri
    assert uri.startswith("file://")
    model_dir = storage.download(uri, out_dir=str(tmp_path / "mnt-models"))
    assert (Path(model_dir) / "MLmodel").exists()
