"""The multi-node path against a real Kubernetes API (the embedded control plane).

No Kubeflow Trainer controller runs here, so the test plays its part: it waits for the
TrainJob the component created and writes the terminal condition into its status.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from components.train_ddp.config import TrainConfig, parse_cli_args
from components.train_ddp.impl import TrainingFailedError, train
from components.train_ddp.tests.conftest import LABEL, TabularSets
from components.train_ddp.trainjob import (
    GROUP,
    PLURAL,
    VERSION,
    ClusterOptions,
    create_trainjob,
    run_trainjob,
    trainjob_manifest,
)
from tests.support.localcluster import start_cluster

TRAINJOB_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "trainjob", "kind": "TrainJob"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def custom_objects() -> Iterator[client.CustomObjectsApi]:
    with tempfile.TemporaryDirectory(prefix="train-ddp-kube-") as scratch:
        cluster = start_cluster(Path(scratch))
        try:
            api_client = config.new_client_from_config(str(cluster.kubeconfig))
            client.ApiextensionsV1Api(api_client).create_custom_resource_definition(TRAINJOB_CRD)
            yield client.CustomObjectsApi(api_client)
        finally:
            cluster.background.stop()


def _finish_when_created(
    api: client.CustomObjectsApi, namespace: str, condition: dict[str, str]
) -> threading.Thread:
    """Stand-in for the Trainer controller: mark the first TrainJob in namespace finished."""

    def finish() -> None:
        for _ in range(200):
            jobs = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
            if jobs:
                name = jobs[0]["metadata"]["name"]
                status = {"status": {"conditions": [{**condition, "status": "True"}]}}
                api.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, name, status
                )
                return
            time.sleep(0.1)

    thread = threading.Thread(target=finish, daemon=True)
    thread.start()
    return thread


def _failing_trainjobs(
    api: client.CustomObjectsApi, name: str, message: str
) -> tuple[str, threading.Thread]:
    """A new namespace whose first TrainJob the stand-in controller marks Failed (message)."""
    namespace = _namespace(api, name)
    controller = _finish_when_created(api, namespace, {"type": "Failed", "message": message})
    return namespace, controller


def _options(namespace: str, **more: float) -> ClusterOptions:
    return ClusterOptions(image="kubeloop:test", namespace=namespace, poll_s=0.1, **more)


def _manifest(namespace: str) -> dict[str, Any]:
    config = TrainConfig(
        training_set="/shared/train.parquet",
        validation_set="/shared/validation.parquet",
        label_column=LABEL,
        output_dir="/shared/out",
        run_name=namespace,
    )
    return trainjob_manifest(
        config, nodes=2, nproc_per_node=2, max_restarts=1, options=_options(namespace)
    )


def _namespace(api: client.CustomObjectsApi, name: str) -> str:
    core = client.CoreV1Api(api.api_client)
    core.create_namespace({"metadata": {"name": name}})
    return name


def test_trainjob_is_created_once_and_waited_for(custom_objects: client.CustomObjectsApi) -> None:
    namespace = _namespace(custom_objects, "tj-complete")
    manifest = _manifest(namespace)
    controller = _finish_when_created(custom_objects, namespace, {"type": "Complete"})
    run_trainjob(custom_objects, manifest, _options(namespace))
    controller.join(timeout=5)
    # A retried step creates the same name again: AlreadyExists is tolerated, not duplicated.
    create_trainjob(custom_objects, manifest)
    jobs = custom_objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    assert [job["metadata"]["name"] for job in jobs["items"]] == [manifest["metadata"]["name"]]
    stored = jobs["items"][0]["spec"]["trainer"]
    assert stored["numNodes"] == 2 and parse_cli_args(stored["args"]).output_dir == "/shared/out"


def test_failed_trainjob_raises_with_its_message(
    custom_objects: client.CustomObjectsApi,
) -> None:
    namespace, controller = _failing_trainjobs(custom_objects, "tj-failed", "pod node-1 OOMKilled")
    with pytest.raises(TrainingFailedError, match="OOMKilled"):
        run_trainjob(custom_objects, _manifest(namespace), _options(namespace))
    controller.join(timeout=5)


def test_unfinished_trainjob_times_out(custom_objects: client.CustomObjectsApi) -> None:
    namespace = _namespace(custom_objects, "tj-timeout")
    with pytest.raises(TrainingFailedError, match="did not finish"):
        run_trainjob(custom_objects, _manifest(namespace), _options(namespace, timeout_s=0.5))


def test_train_with_two_nodes_goes_through_a_trainjob(
    custom_objects: client.CustomObjectsApi, tabular_sets: TabularSets, tmp_path: Path
) -> None:
    namespace, controller = _failing_trainjobs(custom_objects, "tj-train", "no nodes in this test")
    with pytest.raises(TrainingFailedError, match="no nodes in this test"):
        train(
            tabular_sets.training,
            tabular_sets.validation,
            LABEL,
            tmp_path / "out",
            batch_size=64,
            nodes=2,
            nproc_per_node=2,
            cluster=_options(namespace),
            kubernetes_api=custom_objects,
        )
    controller.join(timeout=5)
    (job,) = custom_objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
        "items"
    ]
    args = parse_cli_args(job["spec"]["trainer"]["args"])
    assert args.training_set == str(tabular_sets.training)
    assert args.feature_columns == ("amount", "age_days", "clicks", "noise")
    assert job["spec"]["trainer"]["numProcPerNode"] == 2


def test_missing_namespace_is_an_api_error(custom_objects: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException):
        create_trainjob(custom_objects, _manifest("no-such-namespace"))
