"""The one custom-object helper of the tests: create, read, patch and wait on kubeloop
resources (and the serving kinds) through the API server, as kubectl would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config

from contracts.kube import GROUP, VERSION
from tests.support.waiting import wait_for

NS = "default"
KSERVE = ("serving.kserve.io", "v1beta1", "inferenceservices")
ISTIO = ("networking.istio.io", "v1beta1", "virtualservices")


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


class CustomObjects:
    """kubeloop.io objects in one namespace; `.custom` and `.core` are the raw clients."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str = NS,
        context: Callable[[], str] | None = None,
        interval_s: float = 0.3,
    ) -> None:
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.namespace = namespace
        self.context = context  # what a timed-out wait prints (process logs)
        self.interval_s = interval_s  # how often wait_status polls

    def body(self, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }

    def create(self, plural: str, kind: str, name: str, spec: dict[str, Any]) -> None:
        self.create_body(plural, self.body(kind, name, spec))

    def create_body(self, plural: str, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body)

    def get(self, plural: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name
        )
        return found

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return dict(self.get(plural, name).get("status") or {})

    def patch(self, plural: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name, patch
        )

    def annotate(self, plural: str, name: str, annotations: dict[str, str]) -> None:
        self.patch(plural, name, {"metadata": {"annotations": annotations}})

    def wait_status(
        self,
        plural: str,
        name: str,
        check: Callable[[dict[str, Any]], bool],
        what: str,
        timeout_s: float = 90,
    ) -> dict[str, Any]:
        """Poll the object's status until `check(status)`; returns that status."""

        def probe() -> dict[str, Any] | None:
            status = self.status(plural, name)
            return status if check(status) else None

        return wait_for(probe, timeout_s, f"{name}: {what}", self.interval_s, self.context)

    # --- the serving kinds (KServe, Istio) and events ----------------------------------------
    def read(self, group: str, version: str, plural: str, name: str) -> dict[str, Any] | None:
        """Any namespaced custom object, or None when there is none."""
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                group, version, self.namespace, plural, name
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def isvc(self, name: str) -> dict[str, Any] | None:
        return self.read(*KSERVE, name)

    def virtual_service(self, name: str) -> dict[str, Any]:
        found = self.read(*ISTIO, name)
        assert found is not None, f"no VirtualService {name}"
        return found

    def mark_ready(self, isvc_name: str, url: str | None = None) -> None:
        """Play KServe's part: wait for the InferenceService, then mark it Ready."""
        found = wait_for(
            lambda: self.isvc(isvc_name), 60, f"InferenceService {isvc_name}", context=self.context
        )
        status: dict[str, Any] = {"observedGeneration": found["metadata"]["generation"]}
        if url:
            status["url"] = url
        status["conditions"] = [{"type": "Ready", "status": "True"}]
        self.custom.patch_namespaced_custom_object_status(
            *KSERVE[:2], self.namespace, KSERVE[2], isvc_name, {"status": status}
        )

    def events_for(self, name: str) -> list[Any]:
        listed = self.core.list_namespaced_event(self.namespace)
        return [e for e in listed.items if e.involved_object and e.involved_object.name == name]
