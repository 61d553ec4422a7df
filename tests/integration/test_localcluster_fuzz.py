"""Random paths, methods and bodies never make the embedded control plane answer 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.localcluster import RunningCluster
from tests.support.widgets import GROUP, crds

SEGMENTS = st.sampled_from(
    [
        "api",
        "apis",
        "v1",
        "v2",
        "namespaces",
        "default",
        "kube-system",
        "configmaps",
        "secrets",
        "events",
        "status",
        "watch",
        "widgets",
        "gadgets",
        GROUP,
        "apps",
        "deployments",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        f"widgets.{GROUP}",
        "w1",
        "x",
        "",
        "openapi",
        "v3",
        "..",
        "%20",
        "finalize",
        "scale",
    ]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
OBJECT_KEYS = st.sampled_from(
    ["apiVersion", "kind", "metadata", "spec", "status", "data", "items", "op", "path", "value"]
)
META = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(["w1", "x", "Bad_Name", ""]), JSON_VALUES),
        "namespace": st.one_of(st.sampled_from(["default", "missing"]), JSON_VALUES),
        "labels": JSON_VALUES,
        "annotations": JSON_VALUES,
        "finalizers": JSON_VALUES,
        "ownerReferences": JSON_VALUES,
        "resourceVersion": JSON_VALUES,
        "generateName": JSON_VALUES,
    },
)
BODIES = st.one_of(
    st.binary(max_size=64),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"metadata": META},
        optional={k: JSON_VALUES for k in ("apiVersion", "kind", "spec", "status", "data")},
    ).map(lambda v: json.dumps(v).encode()),
    st.lists(st.dictionaries(OBJECT_KEYS, JSON_VALUES, max_size=4), max_size=3).map(
        lambda v: json.dumps(v).encode()
    ),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/yaml",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
        "text/plain",
        "application/vnd.kubernetes.protobuf",
    ]
)
QUERIES = st.dictionaries(
    st.sampled_from(
        [
            "watch",
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "timeoutSeconds",
            "propagationPolicy",
            "dryRun",
            "fieldValidation",
        ]
    ),
    st.text(max_size=12),
    max_size=3,
)


@pytest.fixture(scope="module")
def http(localcluster_module: RunningCluster) -> Iterator[httpx.Client]:
    with localcluster_module.http_client(timeout=10) as session:
        for crd in crds():
            session.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
        session.post(
            f"/apis/{GROUP}/v1/namespaces/default/widgets",
            json={
                "apiVersion": f"{GROUP}/v1",
                "kind": "Widget",
                "metadata": {"name": "w1"},
                "spec": {"size": 1},
            },
        )
        yield session


@pytest.mark.slow
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    segments=st.lists(SEGMENTS, min_size=0, max_size=7),
    body=BODIES,
    content_type=CONTENT_TYPES,
    query=QUERIES,
)
@example(  # empty segments: "////api" (once crashed the test client, not the server)
    method="GET", segments=["", "", "", "api"], body=b"", content_type="application/json", query={}
)
def test_random_requests_never_500(
    http: httpx.Client,
    method: str,
    segments: list[str],
    body: bytes,
    content_type: str,
    query: dict[str, Any],
) -> None:
    if query.get("watch") is not None or method == "GET":
        query["timeoutSeconds"] = "0"  # a watch that happens to be valid ends at once
    # An absolute URL: httpx refuses a relative one whose path starts with "//" (empty
    # segments), and such paths are exactly the odd input the server must answer with a 4xx.
    response = http.request(
        method,
        str(http.base_url).rstrip("/") + "/" + "/".join(segments),
        content=body,
        headers={"Content-Type": content_type},
        params=query,
    )
    assert response.status_code < 500, (
        f"{method} /{'/'.join(segments)} {query} {body[:200]!r} -> {response.status_code} {response.text[:500]}"
    )
