"""The demo's view of the cluster: a Kubernetes API client like kubectl, nothing more."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from contracts.kube import ISVC_GROUP, ISVC_PLURAL, ISVC_VERSION
from operators.api.common import GROUP, VERSION

PLURALS = {"FeatureView": "featureviews", "Experiment": "experiments", "MLModel": "mlmodels"}


class DemoKube:
    """Custom objects of group kubeloop.io, read and applied through the API server."""

    def __init__(self, api: client.CustomObjectsApi) -> None:
        self.api = api

    @classmethod
    def from_kubeconfig(cls, path: Path) -> DemoKube:
        api_client = config.new_client_from_config(config_file=str(path))
        return cls(client.CustomObjectsApi(api_client))

    def apply(self, document: Mapping[str, Any]) -> None:
        """Create, or merge-patch the spec of an existing object (as `kubectl apply` would)."""
        kind = str(document["kind"])
        meta = document["metadata"]
        namespace = str(meta.get("namespace", "default"))
        plural = PLURALS[kind]
        try:
            self.api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, document)
        except ApiException as error:
            if error.status != 409:
                raise
            self.api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, meta["name"], {"spec": document["spec"]}
            )

    def annotate(self, kind: str, namespace: str, name: str, key: str, value: str) -> None:
        """Merge-patch one annotation (as `kubectl annotate --overwrite` would)."""
        body = {"metadata": {"annotations": {key: value}}}
        self.api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], name, body
        )

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def inference_services(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's KServe InferenceServices (as `kubectl get inferenceservices`)."""
        found = self.api.list_namespaced_custom_object(
            ISVC_GROUP, ISVC_VERSION, namespace, ISVC_PLURAL
        )
        return list(found.get("items") or [])
