"""A real Kopf operator against the embedded control plane (issue 2 acceptance)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
from kopf.testing import KopfRunner
from kubernetes import client, config, watch

from tests.support.localcluster import RunningCluster
from tests.support.widgets import GROUP, PRESERVE_UNKNOWN, crd, install_crds, widget

OPERATOR = Path(__file__).resolve().parents[1] / "support" / "kopf_widget_operator.py"


def peering_crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    """Kopf's peering CRDs, as its documentation publishes them."""
    schema = {"type": "object", "properties": {"status": PRESERVE_UNKNOWN}}
    return crd("kopf.dev", kind, plural, scope, schema, {"singular": kind.lower()})


@pytest.fixture
def cluster_api(
    localcluster: RunningCluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[client.ApiClient]:
    monkeypatch.setenv("KUBECONFIG", str(localcluster.kubeconfig))
    api = config.new_client_from_config(config_file=str(localcluster.kubeconfig))
    install_crds(api)
    yield api
    api.close()


def watch_until(
    list_fn: Callable[..., Any],
    condition: Callable[[dict[str, Any] | None], bool],
    *args: Any,
    **kwargs: Any,
) -> None:
    """Watch until `condition(obj)` holds for the named object (None once deleted)."""
    listed = list_fn(*args, **kwargs)
    items = listed["items"] if isinstance(listed, dict) else [i.to_dict() for i in listed.items]
    if condition(items[0] if items else None):
        return
    rv = (
        listed["metadata"]["resourceVersion"]
        if isinstance(listed, dict)
        else listed.metadata.resource_version
    )
    for event in watch.Watch().stream(
        list_fn, *args, resource_version=rv, timeout_seconds=30, **kwargs
    ):
        obj = event["object"] if isinstance(event["object"], dict) else event["raw_object"]
        if condition(None if event["type"] == "DELETED" else obj):
            return
    raise AssertionError("the operator did not reach the expected state in 30 s")


def exercise_operator(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    custom.create_namespaced_custom_object(
        GROUP, "v1", "default", "widgets", widget("w1", "default", size=2)
    )
    selector = {"field_selector": "metadata.name=w1"}
    watch_until(
        custom.list_namespaced_custom_object,
        lambda o: bool(o and (o.get("status") or {}).get("phase") == "Ready"),
        GROUP,
        "v1",
        "default",
        "widgets",
        **selector,
    )
    child = core.read_namespaced_config_map("w1-child", "default")
    owner = child.metadata.owner_references[0]
    assert owner.kind == "Widget" and owner.name == "w1" and child.data == {"size": "2"}
    obj = custom.get_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w1")
    assert obj["status"]["create_child"] == {"child": "w1-child"}
    assert f"{GROUP}/kopf-finalizer" in obj["metadata"]["finalizers"]
    custom.patch_namespaced_custom_object(
        GROUP, "v1", "default", "widgets", "w1", {"spec": {"size": 5}}
    )
    watch_until(
        custom.list_namespaced_custom_object,
        lambda o: bool(o and (o.get("status") or {}).get("observedSize") == 5),
        GROUP,
        "v1",
        "default",
        "widgets",
        **selector,
    )
    assert core.read_namespaced_config_map("w1-child", "default").data == {"size": "5"}
    custom.delete_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w1")
    watch_until(
        custom.list_namespaced_custom_object,
        lambda o: o is None,
        GROUP,
        "v1",
        "default",
        "widgets",
        **selector,
    )
    watch_until(
        core.list_namespaced_config_map,
        lambda o: o is None,
        "default",
        field_selector="metadata.name=w1-child",
    )
    wait_for_event(core, "w1", "created config map w1-child")


def wait_for_event(core: client.CoreV1Api, name: str, message: str) -> None:
    """Kopf posts its k8s events from a background queue; follow them until ours arrives."""
    selector = f"involvedObject.name={name}"
    listed = core.list_namespaced_event("default", field_selector=selector)
    if any(e.message == message for e in listed.items):
        return
    stream = watch.Watch().stream(
        core.list_namespaced_event,
        "default",
        field_selector=selector,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=30,
    )
    for event in stream:
        if event["object"].message == message:
            return
    raise AssertionError(f"no event {message!r} for {name}")


def isolated_registry() -> kopf.OperatorRegistry:
    """A registry of this test operator's handlers only.

    Other test modules in the same pytest worker may have imported kubeloop's operators, whose
    handlers sit in Kopf's process-wide default registry; they must not run here.
    """
    return kopf.OperatorRegistry()


def check_log(runner: KopfRunner) -> None:
    assert runner.exception is None, runner.exception
    assert runner.exit_code == 0
    output = runner.output
    assert "cleaned up after w1" in output
    assert "inconsistencies" not in output
    assert "[ERROR" not in output and "Traceback" not in output, output


def test_kopf_standalone(cluster_api: client.ApiClient) -> None:
    args = ["run", "--standalone", "--all-namespaces", "--verbose", str(OPERATOR)]
    with KopfRunner(args, timeout=60, registry=isolated_registry()) as runner:
        exercise_operator(cluster_api)
    check_log(runner)


def test_kopf_with_peering(cluster_api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(cluster_api)
    ext.create_custom_resource_definition(
        peering_crd("ClusterKopfPeering", "clusterkopfpeerings", "Cluster")
    )
    ext.create_custom_resource_definition(peering_crd("KopfPeering", "kopfpeerings", "Namespaced"))
    custom = client.CustomObjectsApi(cluster_api)
    peering = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": "lctest"},
    }
    custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering)
    args = ["run", "--peering=lctest", "--all-namespaces", "--verbose", str(OPERATOR)]
    with KopfRunner(args, timeout=60, registry=isolated_registry()) as runner:
        exercise_operator(cluster_api)
        peers = custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", "lctest")
        assert peers.get("status"), "the operator did not register itself in the peering object"
    check_log(runner)
