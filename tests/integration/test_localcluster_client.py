"""The `kubernetes` Python client against the embedded control plane (issue 2 acceptance)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.support.localcluster import RunningCluster
from tests.support.widgets import GROUP, crds, install_crds, widget

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def widget_events(api: client.CustomObjectsApi, ns: str, since: str) -> list[dict[str, Any]]:
    """The Widget watch events in `ns` after resourceVersion `since` (a 1 s watch)."""
    stream = watch.Watch().stream(
        api.list_namespaced_custom_object,
        GROUP,
        "v1",
        ns,
        "widgets",
        resource_version=since,
        timeout_seconds=1,
    )
    return list(stream)


@pytest.fixture(scope="module")
def api_client(localcluster_module: RunningCluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(localcluster_module.kubeconfig))
    install_crds(api)
    yield api
    api.close()


@pytest.fixture(scope="module")
def http(localcluster_module: RunningCluster) -> Iterator[httpx.Client]:
    with localcluster_module.http_client(timeout=30) as session:
        yield session


@pytest.fixture
def ns(api_client: client.ApiClient, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("_", "-")[:50].strip("-").lower()
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name}})
    return name


def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def create_widget(api_client: client.ApiClient, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    return custom(api_client).create_namespaced_custom_object(
        GROUP, "v1", ns, "widgets", widget(name, ns, **spec)
    )


def error_body(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body)


def test_stale_update_conflicts(api_client: client.ApiClient, ns: str) -> None:
    first = create_widget(api_client, ns, "w1")
    stale = json.loads(json.dumps(first))
    first["spec"]["size"] = 4
    custom(api_client).replace_namespaced_custom_object(GROUP, "v1", ns, "widgets", "w1", first)
    stale["spec"]["size"] = 5
    with pytest.raises(ApiException) as caught:
        custom(api_client).replace_namespaced_custom_object(GROUP, "v1", ns, "widgets", "w1", stale)
    assert caught.value.status == 409
    body = error_body(caught.value)
    assert body["kind"] == "Status" and body["reason"] == "Conflict"
    assert body["details"]["name"] == "w1"
    with pytest.raises(ApiException) as again:
        create_widget(api_client, ns, "w1")
    assert again.value.status == 409 and error_body(again.value)["reason"] == "AlreadyExists"


def test_put_without_resource_version_is_invalid(api_client: client.ApiClient, ns: str) -> None:
    obj = create_widget(api_client, ns, "w1")
    del obj["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as caught:
        custom(api_client).replace_namespaced_custom_object(GROUP, "v1", ns, "widgets", "w1", obj)
    assert caught.value.status == 422
    assert error_body(caught.value)["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_schema_violations_name_every_field(api_client: client.ApiClient, ns: str) -> None:
    bad = widget("w1", ns, size="big", color="green", code="ABC")
    bad["spec"]["note"] = None
    with pytest.raises(ApiException) as caught:
        custom(api_client).create_namespaced_custom_object(GROUP, "v1", ns, "widgets", bad)
    assert caught.value.status == 422
    body = error_body(caught.value)
    assert body["reason"] == "Invalid"
    fields = {cause["field"] for cause in body["details"]["causes"]}
    assert fields == {"spec.size", "spec.color", "spec.code"}
    missing = widget("w2", ns)
    del missing["spec"]["size"]
    with pytest.raises(ApiException) as required:
        custom(api_client).create_namespaced_custom_object(GROUP, "v1", ns, "widgets", missing)
    assert error_body(required.value)["details"]["causes"][0]["field"] == "spec.size"


def test_int_or_string_pruning_and_preserved_fields(api_client: client.ApiClient, ns: str) -> None:
    obj = widget("w1", ns, port="http", extra={"anything": {"goes": [1, 2]}})
    obj["spec"]["dropped"] = True
    obj["toplevel"] = "gone"
    created = custom(api_client).create_namespaced_custom_object(GROUP, "v1", ns, "widgets", obj)
    assert created["spec"] == {
        "size": 3,
        "color": "red",
        "port": "http",
        "extra": {"anything": {"goes": [1, 2]}},
    }
    assert "toplevel" not in created
    numbered = create_widget(api_client, ns, "w2", port=8080)
    assert numbered["spec"]["port"] == 8080


def test_no_op_write_keeps_resource_version(api_client: client.ApiClient, ns: str) -> None:
    obj = create_widget(api_client, ns, "w1")
    same = custom(api_client).patch_namespaced_custom_object(
        GROUP, "v1", ns, "widgets", "w1", {"spec": {"size": 3}}
    )
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    changed = custom(api_client).patch_namespaced_custom_object(
        GROUP, "v1", ns, "widgets", "w1", {"spec": {"size": 4}}
    )
    assert int(changed["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    assert changed["metadata"]["generation"] == 2


def test_status_subresource_split(api_client: client.ApiClient, ns: str) -> None:
    create_widget(api_client, ns, "w1")
    api = custom(api_client)
    main = api.patch_namespaced_custom_object(
        GROUP, "v1", ns, "widgets", "w1", {"status": {"phase": "Ignored"}}
    )
    assert "status" not in main
    status = api.patch_namespaced_custom_object_status(
        GROUP,
        "v1",
        ns,
        "widgets",
        "w1",
        {"status": {"phase": "Ready"}, "metadata": {"labels": {"x": "y"}}, "spec": {"size": 9}},
    )
    assert status["status"] == {"phase": "Ready"}
    assert "labels" not in status["metadata"] and status["spec"]["size"] == 3
    assert status["metadata"]["generation"] == 1


def test_watch_resumes_exactly(api_client: client.ApiClient, ns: str) -> None:
    api = custom(api_client)
    first = create_widget(api_client, ns, "w1")
    since = first["metadata"]["resourceVersion"]
    second = create_widget(api_client, ns, "w2")
    patched = api.patch_namespaced_custom_object(
        GROUP, "v1", ns, "widgets", "w1", {"spec": {"size": 5}}
    )
    api.delete_namespaced_custom_object(GROUP, "v1", ns, "widgets", "w2")
    events = widget_events(api, ns, since)
    seen = [
        (e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"])
        for e in events
    ]
    assert seen[:2] == [
        ("ADDED", "w2", second["metadata"]["resourceVersion"]),
        ("MODIFIED", "w1", patched["metadata"]["resourceVersion"]),
    ]
    assert seen[2][:2] == ("DELETED", "w2") and len(seen) == 3
    replay = list(
        watch.Watch().stream(
            api.list_namespaced_custom_object, GROUP, "v1", ns, "widgets", timeout_seconds=1
        )
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in replay] == [("ADDED", "w1")]


def test_compacted_resource_version_is_gone(
    api_client: client.ApiClient, ns: str, localcluster_module: RunningCluster
) -> None:
    api = custom(api_client)
    old = create_widget(api_client, ns, "w1")["metadata"]["resourceVersion"]
    create_widget(api_client, ns, "w2")
    listed = api.list_namespaced_custom_object(GROUP, "v1", ns, "widgets", limit=1)
    token = listed["metadata"]["continue"]
    create_widget(api_client, ns, "w3")  # history moves on past the list's snapshot
    localcluster_module.compact()
    with pytest.raises(ApiException) as caught:
        list(
            watch.Watch().stream(
                api.list_namespaced_custom_object,
                GROUP,
                "v1",
                ns,
                "widgets",
                resource_version=old,
                timeout_seconds=1,
            )
        )
    assert caught.value.status == 410
    with pytest.raises(ApiException) as expired:
        api.list_namespaced_custom_object(GROUP, "v1", ns, "widgets", limit=1, _continue=token)
    assert expired.value.status == 410


def test_label_and_field_selectors(api_client: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api_client)
    for name, labels in {
        "a": {"tier": "web", "env": "prod"},
        "b": {"tier": "db"},
        "c": {"env": "dev"},
    }.items():
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(**kwargs: Any) -> list[str]:
        return [i.metadata.name for i in core.list_namespaced_config_map(ns, **kwargs).items]

    assert names(label_selector="tier=web") == ["a"]
    assert names(label_selector="tier==db") == ["b"]
    assert names(label_selector="tier!=web") == ["b", "c"]
    assert names(label_selector="tier in (web,db)") == ["a", "b"]
    assert names(label_selector="tier notin (web)") == ["b", "c"]
    assert names(label_selector="env") == ["a", "c"]
    assert names(label_selector="!env") == ["b"]
    assert names(label_selector="env,tier") == ["a"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector=f"metadata.namespace={ns},metadata.name!=a") == ["b", "c"]
    with pytest.raises(ApiException) as caught:
        names(field_selector="spec.nothing=1")
    assert caught.value.status == 400
    for event, about in (("e1", "a"), ("e2", "b")):
        involved = {"kind": "ConfigMap", "name": about, "namespace": ns}
        body = {"metadata": {"name": event}, "involvedObject": involved, "reason": "R"}
        core.create_namespaced_event(ns, {**body, "message": "m"})
    events = core.list_namespaced_event(
        ns, field_selector="involvedObject.name=a,involvedObject.kind=ConfigMap"
    )
    assert [e.metadata.name for e in events.items] == ["e1"]


def test_pagination(api_client: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api_client)
    for index in range(7):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm-{index}"}})
    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(ns, limit=3, _continue=token)
        seen += [i.metadata.name for i in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    assert seen == [f"cm-{i}" for i in range(7)] and pages == 3


def test_owner_references_are_collected(api_client: client.ApiClient, ns: str) -> None:
    api = custom(api_client)
    core = client.CoreV1Api(api_client)

    def child(name: str, owner: dict[str, Any], block: bool = False) -> None:
        ref = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "blockOwnerDeletion": block,
        }
        core.create_namespaced_config_map(
            ns, {"metadata": {"name": name, "ownerReferences": [ref]}}
        )

    background, foreground, orphan = (
        create_widget(api_client, ns, n) for n in ("bg", "fg", "orphan")
    )
    child("bg-child", background)
    child("fg-child", foreground, block=True)
    child("orphan-child", orphan)
    api.delete_namespaced_custom_object(
        GROUP, "v1", ns, "widgets", "orphan", propagation_policy="Orphan"
    )
    api.delete_namespaced_custom_object(
        GROUP, "v1", ns, "widgets", "bg", propagation_policy="Background"
    )
    api.delete_namespaced_custom_object(
        GROUP, "v1", ns, "widgets", "fg", propagation_policy="Foreground"
    )
    remaining = watch_until(
        core, ns, lambda names: "bg-child" not in names and "fg-child" not in names
    )
    assert remaining == {"orphan-child"}
    kept = core.read_namespaced_config_map("orphan-child", ns)
    assert not kept.metadata.owner_references
    assert api.list_namespaced_custom_object(GROUP, "v1", ns, "widgets")["items"] == []


def watch_until(core: client.CoreV1Api, ns: str, done: Any) -> set[str]:
    """Follow config maps by watch until `done(names)`; fails if the stream ends first."""
    listed = core.list_namespaced_config_map(ns)
    names = {i.metadata.name for i in listed.items}
    if done(names):
        return names
    for event in watch.Watch().stream(
        core.list_namespaced_config_map,
        ns,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=10,
    ):
        name = event["object"].metadata.name
        if event["type"] == "DELETED":
            names.discard(name)
        else:
            names.add(name)
        if done(names):
            return names
    raise AssertionError(f"condition not reached; config maps left: {sorted(names)}")


def test_crd_deletion_removes_its_objects(api_client: client.ApiClient, http: httpx.Client) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    crd = crds()[1]
    crd["metadata"]["name"] = f"doodads.{GROUP}"
    crd["spec"]["names"] = {"plural": "doodads", "singular": "doodad", "kind": "Doodad"}
    ext.create_custom_resource_definition(crd)
    api = custom(api_client)
    api.create_cluster_custom_object(
        GROUP,
        "v1",
        "doodads",
        {"apiVersion": f"{GROUP}/v1", "kind": "Doodad", "metadata": {"name": "d1"}, "anything": 1},
    )
    assert api.get_cluster_custom_object(GROUP, "v1", "doodads", "d1")["anything"] == 1
    ext.delete_custom_resource_definition(f"doodads.{GROUP}")
    for _ in watch.Watch().stream(
        ext.list_custom_resource_definition,
        field_selector=f"metadata.name=doodads.{GROUP}",
        timeout_seconds=10,
    ):
        if (
            http.get(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/doodads.{GROUP}"
            ).status_code
            == 404
        ):
            break
    assert http.get(f"/apis/{GROUP}/v1/doodads").status_code == 404
    ext.create_custom_resource_definition(crd)
    assert api.list_cluster_custom_object(GROUP, "v1", "doodads")["items"] == []
    ext.delete_custom_resource_definition(f"doodads.{GROUP}")


def test_crd_rules(api_client: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    wrong_name = crds()[0]
    wrong_name["metadata"]["name"] = "widgets.other.example.com"
    with pytest.raises(ApiException) as caught:
        ext.create_custom_resource_definition(wrong_name)
    assert caught.value.status == 422
    not_structural = crds()[0]
    not_structural["metadata"]["name"] = f"things.{GROUP}"
    not_structural["spec"]["names"] = {"plural": "things", "kind": "Thing"}
    del not_structural["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["size"]["type"]
    with pytest.raises(ApiException) as structural:
        ext.create_custom_resource_definition(not_structural)
    assert structural.value.status == 422
    assert "type" in error_body(structural.value)["details"]["causes"][0]["field"]
    established = ext.read_custom_resource_definition(f"widgets.{GROUP}")
    conditions = {c.type: c.status for c in established.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}


def test_tables_and_discovery(http: httpx.Client, api_client: client.ApiClient, ns: str) -> None:
    create_widget(api_client, ns, "w1", size=4)
    table = http.get(f"/apis/{GROUP}/v1/namespaces/{ns}/widgets", headers={"Accept": TABLE}).json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Size",
        "Color",
        "Ready",
        "Age",
    ]
    cells = table["rows"][0]["cells"]
    assert cells[:3] == ["w1", 4, "red"] and cells[4].endswith("s")
    builtin = http.get(f"/api/v1/namespaces/{ns}/configmaps", headers={"Accept": TABLE}).json()
    assert [c["name"] for c in builtin["columnDefinitions"]] == ["Name", "Age"]
    resources = http.get(f"/apis/{GROUP}/v1").json()["resources"]
    names = {r["name"]: r for r in resources}
    assert names["widgets"]["shortNames"] == ["wdg"] and names["widgets"]["namespaced"] is True
    assert "widgets/status" in names and names["gadgets"]["namespaced"] is False
    assert http.get("/version").json()["minor"] == "32"
    index = http.get("/openapi/v3").json()["paths"]
    document = http.get(index[f"apis/{GROUP}/v1"]["serverRelativeURL"]).json()
    patch_ops = [p["patch"] for p in document["paths"].values() if "patch" in p]
    assert all(
        "application/strategic-merge-patch+json" not in op["requestBody"]["content"]
        for op in patch_ops
    )
    assert any(param["name"] == "fieldValidation" for param in patch_ops[0]["parameters"])


def test_patch_types(http: httpx.Client, api_client: client.ApiClient, ns: str) -> None:
    create_widget(api_client, ns, "w1")
    url = f"/apis/{GROUP}/v1/namespaces/{ns}/widgets/w1"

    def patch(content_type: str, body: Any) -> httpx.Response:
        return http.patch(url, content=json.dumps(body), headers={"Content-Type": content_type})

    assert patch("application/strategic-merge-patch+json", {"spec": {"size": 2}}).status_code == 415
    assert patch("application/apply-patch+yaml", {"spec": {"size": 2}}).status_code == 415
    ops = [
        {"op": "add", "path": "/metadata/labels", "value": {"a": "1"}},
        {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/b"},
        {"op": "move", "from": "/metadata/labels/b", "path": "/metadata/labels/c"},
        {"op": "remove", "path": "/metadata/labels/a"},
        {"op": "replace", "path": "/spec/size", "value": 8},
        {"op": "test", "path": "/spec/size", "value": 8},
    ]
    result = patch("application/json-patch+json", ops)
    assert result.status_code == 200, result.text
    assert result.json()["metadata"]["labels"] == {"c": "1"} and result.json()["spec"]["size"] == 8
    assert (
        patch(
            "application/json-patch+json", [{"op": "test", "path": "/spec/size", "value": 1}]
        ).status_code
        == 422
    )
    assert (
        patch("application/json-patch+json", [{"op": "remove", "path": "/nope/x"}]).status_code
        == 400
    )
    assert patch("application/merge-patch+json", {"metadata": {"labels": {"c": None}}}).json()[
        "metadata"
    ].get("labels") in (None, {})


def test_bad_input_is_rejected_cleanly(
    http: httpx.Client, localcluster_module: RunningCluster, ns: str
) -> None:
    base = f"/api/v1/namespaces/{ns}/configmaps"
    assert (
        httpx.get(
            localcluster_module.url + base, verify=str(localcluster_module.ca_path)
        ).status_code
        == 401
    )
    assert (
        http.post(
            base, content=b"{not json", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        http.post(base, content=b"a: [b", headers={"Content-Type": "application/yaml"}).status_code
        == 400
    )
    assert http.get("/api/v1/namespaces/x/nothings").status_code == 404
    assert http.get("/apis/nope.example.com/v1/things").status_code == 404
    big = {"metadata": {"name": "big"}, "data": {"x": "y" * (3 * 1024 * 1024 + 10)}}
    assert http.post(base, json=big).status_code == 413
    assert http.post(base, json={"metadata": {"name": "Bad_Name"}}).status_code == 422
    assert (
        http.post(base, json={"metadata": {"name": "ok", "labels": {"bad key!": "v"}}}).status_code
        == 422
    )
    huge = {"metadata": {"name": "ok", "annotations": {"a": "x" * (256 * 1024 + 1)}}}
    response = http.post(base, json=huge)
    assert (
        response.status_code == 422
        and response.json()["details"]["causes"][0]["field"] == "metadata.annotations"
    )
    assert (
        http.post(base, json={"metadata": {"generateName": "gen-"}})
        .json()["metadata"]["name"]
        .startswith("gen-")
    )
    assert (
        http.post(
            "/api/v1/namespaces/missing/configmaps", json={"metadata": {"name": "x"}}
        ).status_code
        == 404
    )


def test_initial_events_end_with_a_bookmark(
    http: httpx.Client, api_client: client.ApiClient, ns: str
) -> None:
    created = create_widget(api_client, ns, "w1")
    query = "watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"
    with http.stream("GET", f"/apis/{GROUP}/v1/namespaces/{ns}/widgets?{query}") as stream:
        events = [json.loads(line) for line in stream.iter_lines() if line]
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    bookmark = events[1]["object"]["metadata"]
    assert bookmark["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(bookmark["resourceVersion"]) >= int(created["metadata"]["resourceVersion"])


def test_cluster_scoped_custom_resources(api_client: client.ApiClient) -> None:
    api = custom(api_client)
    body = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Gadget",
        "metadata": {"name": "g1"},
        "free": {"form": True},
    }
    created = api.create_cluster_custom_object(GROUP, "v1", "gadgets", body)
    assert "namespace" not in created["metadata"] and created["free"] == {"form": True}
    assert [
        i["metadata"]["name"]
        for i in api.list_cluster_custom_object(GROUP, "v1", "gadgets")["items"]
    ] == ["g1"]
    api.delete_cluster_custom_object(GROUP, "v1", "gadgets", "g1")


def test_finalizers_hold_deletion(api_client: client.ApiClient, ns: str) -> None:
    api = custom(api_client)
    obj = widget("w1", ns)
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    created = api.create_namespaced_custom_object(GROUP, "v1", ns, "widgets", obj)
    api.delete_namespaced_custom_object(GROUP, "v1", ns, "widgets", "w1")
    held = api.get_namespaced_custom_object(GROUP, "v1", ns, "widgets", "w1")
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["generation"] == created["metadata"]["generation"] + 1
    with pytest.raises(ApiException) as caught:
        api.patch_namespaced_custom_object(
            GROUP,
            "v1",
            ns,
            "widgets",
            "w1",
            {"metadata": {"finalizers": ["example.com/hold", "more"]}},
        )
    assert caught.value.status == 422
    since = held["metadata"]["resourceVersion"]
    released = api.patch_namespaced_custom_object(
        GROUP, "v1", ns, "widgets", "w1", {"metadata": {"finalizers": None}}
    )
    events = widget_events(api, ns, since)
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in events] == [
        ("DELETED", released["metadata"]["resourceVersion"])
    ]
