"""Break 2 of issue #13: pipeline steps passed pod-local paths between pods. The offline store
and training sets lived under the operator pod's /tmp/kubeloop emptyDir; KFP task pods were told
to read and write there with no shared volume in the IR.

Now one storage root (KUBELOOP_STORAGE) names every location; on KFP it is a claim that every
task of the compiled pipelines mounts. These tests fail on the code before the change: the
compiled IR had no platform spec, the operator config had no storage root, and the locations
the operator handed to tasks were under its own state directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from contracts.storage import STORAGE_MOUNT_PATH, STORAGE_PVC_PARAMETER
from contracts.storage_root import StorageError, parse_storage
from operators.backends.kfp_cluster import KfpClusterBackend
from operators.backends.runs import PipelineRunError
from operators.config import OperatorConfig
from pipelines.compile import checked_in, checked_in_platform, pipeline_functions
from tests.deploy.test_helm_chart import find, render
from tests.deploy.test_manifests import kustomize

# The operator pod's own state directory on a cluster (its /tmp emptyDir).
OPERATOR_STATE_DIR = "/tmp/kubeloop"


def _executors(spec: dict[str, Any]) -> set[str]:
    return set(spec["deploymentSpec"]["executors"])


@pytest.mark.parametrize("name", sorted(pipeline_functions()))
def test_every_task_mounts_the_storage_claim(name: str) -> None:
    spec = checked_in(name)
    assert STORAGE_PVC_PARAMETER in spec["root"]["inputDefinitions"]["parameters"]
    mounts = checked_in_platform(name)["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(mounts) == _executors(spec), "a task without the storage mount"
    for executor, config in mounts.items():
        (mount,) = config["pvcMount"]
        assert mount["mountPath"] == STORAGE_MOUNT_PATH, executor
        # The claim is the pipeline parameter (inside a condition sub-DAG, its channel).
        source = mount["pvcNameParameter"]["componentInputParameter"]
        assert source.removeprefix("pipelinechannel--") == STORAGE_PVC_PARAMETER, executor


def _chart_config(values: dict[str, Any] | None = None) -> OperatorConfig:
    """The operator's config as the chart's ConfigMap sets it."""
    configmap = find(render(values), "ConfigMap", "kubeloop-operator-config")
    return OperatorConfig.from_env({k: str(v) for k, v in configmap["data"].items()})


def _kustomize_config() -> OperatorConfig:
    configmap = next(
        d
        for d in kustomize("default")
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("kubeloop-operator-config")
    )
    return OperatorConfig.from_env({k: str(v) for k, v in configmap["data"].items()})


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_cluster_locations_are_on_the_claim_not_the_operator_disk(source: str) -> None:
    from operators.experiment.service import ExperimentBackends
    from operators.featureview.service import FeatureViewBackends

    config = _chart_config() if source == "helm" else _kustomize_config()
    assert config.pipeline_backend == "kfp"
    storage = config.storage_root
    assert storage.is_pvc and storage.claim == "kubeloop-storage"
    views = FeatureViewBackends.from_config(config, pipelines=None)  # type: ignore[arg-type]
    experiments = ExperimentBackends.from_config(config, reader=None, pipelines=None)  # type: ignore[arg-type]
    # Pipeline data as file:// URIs on the mount; the Feast repo, a local directory, as a path.
    for location in (views.offline_root, experiments.training_root):
        assert location.startswith(f"file://{STORAGE_MOUNT_PATH}/"), location
    assert views.feast_repo.startswith(STORAGE_MOUNT_PATH + "/"), views.feast_repo
    for location in (views.offline_root, views.feast_repo, experiments.training_root):
        assert OPERATOR_STATE_DIR not in location, location


def test_the_chart_creates_the_claim_where_kfp_runs_its_tasks() -> None:
    objects = render()
    claim = find(objects, "PersistentVolumeClaim", "kubeloop-storage")
    assert claim["metadata"]["namespace"] == "kubeflow"
    bring_your_own = render({"storage": {"claim": {"create": False}}})
    assert not [d for d in bring_your_own if d["kind"] == "PersistentVolumeClaim"]
    (kustomized,) = kustomize("storage")
    assert kustomized["metadata"]["name"] == "kubeloop-storage"
    assert kustomized["metadata"]["namespace"] == "kubeflow"


class RecordingClient:
    """The kfp.Client calls KfpClusterBackend.submit makes, recording the run's parameters."""

    def __init__(self) -> None:
        self.params: dict[str, Any] | None = None

    def create_experiment(self, name: str, namespace: str | None = None) -> Any:
        return SimpleNamespace(experiment_id="e1")

    def list_runs(self, **_: Any) -> Any:
        return SimpleNamespace(runs=[])

    def get_pipeline_id(self, name: str) -> str:
        return "p1"

    def list_pipeline_versions(self, *_: Any, **__: Any) -> Any:
        return SimpleNamespace(pipeline_versions=[SimpleNamespace(pipeline_version_id="v1")])

    def run_pipeline(self, params: dict[str, Any], **_: Any) -> Any:
        self.params = params
        return SimpleNamespace(run_id="r1")


BACKFILL_PARAMS = {
    "feature_view": {},
    "start": "2026-01-01T00:00:00Z",
    "end": "2026-01-02T00:00:00Z",
    "offline_path": f"{STORAGE_MOUNT_PATH}/kubeloop/offline/default/fv/v1",
    "store": {},
}


def test_runs_are_submitted_with_the_claim_to_mount() -> None:
    client = RecordingClient()
    backend = KfpClusterBackend(client, host="http://kfp", storage_pvc="kubeloop-storage")
    backend.submit("feature_backfill", "fv-1", BACKFILL_PARAMS)
    assert client.params is not None
    assert client.params[STORAGE_PVC_PARAMETER] == "kubeloop-storage"
    without = KfpClusterBackend(RecordingClient(), host="http://kfp")
    with pytest.raises(PipelineRunError, match="pvc://<claim>/<dir> storage root"):
        without.submit("feature_backfill", "fv-1", BACKFILL_PARAMS)


def test_kfp_refuses_a_storage_root_its_tasks_cannot_see(tmp_path: Any) -> None:
    from operators.backends.pipelines import pipeline_backend_from_config

    for storage in (None, "file:///tmp/kubeloop"):
        env = {"KUBELOOP_PIPELINE_BACKEND": "kfp", "KUBELOOP_KFP_HOST": "http://kfp:8888"}
        if storage:
            env["KUBELOOP_STORAGE"] = storage
        with pytest.raises(PipelineRunError, match="needs a pvc://<claim>/<dir>, s3:// or gs://"):
            pipeline_backend_from_config(OperatorConfig.from_env(env))


def test_embedded_default_is_a_file_root_at_the_state_dir(tmp_path: Any) -> None:
    config = OperatorConfig(state_dir=tmp_path)
    assert config.storage_root.uri == tmp_path.resolve().as_uri()
    assert config.storage_root.location("offline") == str(tmp_path.resolve() / "offline")


def test_pipelines_are_handed_uris_on_the_embedded_default(tmp_path: Any) -> None:
    """Tasks read and write pipeline data through fsspec by URI (components/uris.py): the
    embedded default hands them file:// URIs, as a cluster hands them its storage's."""
    from operators.experiment.service import ExperimentBackends
    from operators.featureview.definition import LocalPaths
    from operators.featureview.service import FeatureViewBackends

    config = OperatorConfig(state_dir=tmp_path)
    views = FeatureViewBackends.from_config(config, pipelines=None)  # type: ignore[arg-type]
    experiments = ExperimentBackends.from_config(config, reader=None, pipelines=None)  # type: ignore[arg-type]
    root = tmp_path.resolve()
    assert views.offline_root == f"file://{root}/offline"
    assert experiments.training_root == f"file://{root}/training-sets"
    embedded = LocalPaths(resolve_relative=True)
    assert embedded.task_uri("data/events") == f"file://{Path('data/events').resolve()}"
    assert embedded.task_uri("/data/events") == "file:///data/events"
    assert embedded.task_uri("s3://bucket/events") == "s3://bucket/events"
    cluster = LocalPaths(resolve_relative=False)
    assert cluster.task_uri("data/events") == "data/events"  # the pod's working directory
    assert cluster.task_uri(f"{STORAGE_MOUNT_PATH}/x") == f"file://{STORAGE_MOUNT_PATH}/x"
    assert parse_storage("s3://b/root").data_uri("offline") == "s3://b/root/offline"
    assert (
        parse_storage("pvc://c/k").data_uri("offline") == f"file://{STORAGE_MOUNT_PATH}/k/offline"
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("/tmp/kubeloop", "scheme '(none)'"),
        ("file://relative/dir", "absolute path"),
        ("pvc:///kubeloop", "needs a claim name"),
        ("pvc://Bad_Claim/x", "not a valid PersistentVolumeClaim name"),
        ("pvc://claim/../up", "may not contain '..'"),
        ("hdfs://nn/x", "is not one of"),
    ],
)
def test_bad_storage_roots_are_refused_naming_the_value(uri: str, message: str) -> None:
    with pytest.raises(StorageError, match=re.escape(message)):
        parse_storage(uri)
    with pytest.raises(ValueError, match="storage"):
        OperatorConfig.from_env({"KUBELOOP_STORAGE": uri})


def test_pvc_locations_are_under_the_mount() -> None:
    storage = parse_storage("pvc://kubeloop-storage/kubeloop")
    assert (
        storage.location("offline", "ns/fv/v1") == f"{STORAGE_MOUNT_PATH}/kubeloop/offline/ns/fv/v1"
    )
    assert parse_storage("s3://b/root").location("offline") == "s3://b/root/offline"
    with pytest.raises(StorageError, match="leaves the storage root"):
        storage.location("../etc")


def test_the_operator_reads_no_pipeline_data_from_its_own_disk_on_a_cluster(
    tmp_path: Any,
) -> None:
    """The demo's labels and events sit on the claim, which the operator does not mount: on a
    cluster it neither checks them (the KFP step does, and fails naming them) nor sizes them to
    pick an engine. The embedded default, whose runs share its disk, still checks them."""
    from operators.api.experiment import ExperimentSpec
    from operators.api.featureview import FeatureViewSpec
    from operators.experiment.service import BadInputs, ExperimentBackends, check_labels
    from operators.featureview.service import FeatureViewBackends, backfill_engine

    demo = kustomize("kind-e2e/demo")
    experiment = ExperimentSpec.model_validate(
        next(d for d in demo if d["kind"] == "Experiment")["spec"]
    )
    view = FeatureViewSpec.model_validate(
        next(d for d in demo if d["kind"] == "FeatureView")["spec"]
    )
    assert experiment.labels.source.startswith(STORAGE_MOUNT_PATH)

    cluster = _chart_config()
    check_labels(ExperimentBackends.from_config(cluster, reader=None, pipelines=None), experiment)  # type: ignore[arg-type]
    engine, why = backfill_engine(FeatureViewBackends.from_config(cluster, pipelines=None), view)  # type: ignore[arg-type]
    assert engine == "spark" and "not on a local file system" in why

    embedded = OperatorConfig(state_dir=tmp_path)
    with pytest.raises(BadInputs, match="does not exist"):
        check_labels(
            ExperimentBackends.from_config(embedded, reader=None, pipelines=None),  # type: ignore[arg-type]
            experiment,
        )
