"""Pure parts of localcluster: patches, selectors, schemas, tables, protobuf decoding."""

from __future__ import annotations

from typing import Any

import pytest

from localcluster.errors import ApiError
from localcluster.patch import json_patch, merge_patch, strategic_merge
from localcluster.protobuf import decode
from localcluster.registry import ResourceType
from localcluster.schema import (
    apply_defaults,
    check_crd,
    duplicate_list_items,
    prune,
    validate_custom,
)
from localcluster.selection import labels_match, parse_field_selector, parse_label_selector
from localcluster.tables import human_duration, json_path, row
from tests.support.widgets import crds


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": [1, 2]}
    assert merge_patch(target, {"a": {"b": None, "e": 3}, "d": [3]}) == {
        "a": {"c": 2, "e": 3},
        "d": [3],
    }


def test_json_patch_errors_are_client_errors() -> None:
    with pytest.raises(ApiError) as failed:
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert failed.value.code == 422
    with pytest.raises(ApiError) as bad_path:
        json_patch({"a": 1}, [{"op": "replace", "path": "/missing/x", "value": 2}])
    assert bad_path.value.code == 400
    with pytest.raises(ApiError) as bad_op:
        json_patch({"a": 1}, [{"op": "frobnicate", "path": "/a"}])
    assert bad_op.value.code == 400


def test_strategic_merge_merges_lists_by_key() -> None:
    current = {
        "spec": {
            "containers": [
                {"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "b"},
            ]
        }
    }
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [
                {"name": "a", "image": "2", "env": [{"name": "X", "$patch": "delete"}]},
                {"name": "b", "$patch": "delete"},
            ],
        }
    }
    assert strategic_merge(current, patch) == {
        "spec": {"containers": [{"name": "a", "image": "2", "env": []}]}
    }
    assert strategic_merge(
        {"metadata": {"finalizers": ["a"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
    ) == {"metadata": {"finalizers": []}}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a notin (1,2)", {"a": "3"}, True),
        ("a", {"b": "1"}, False),
        ("!a", {"b": "1"}, True),
        ("a,b=2", {"a": "x", "b": "2"}, True),
        ("example.com/tier=web", {"example.com/tier": "web"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), labels) is expected


@pytest.mark.parametrize("bad", ["a=(", "in (x)", "a notin", "bad key!=1"])
def test_bad_label_selectors_are_400(bad: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_label_selector(bad)
    assert caught.value.code == 400


def test_field_selectors_know_their_fields() -> None:
    assert parse_field_selector("involvedObject.name=x", "/events")
    with pytest.raises(ApiError):
        parse_field_selector("involvedObject.name=x", "/configmaps")


def schema() -> dict:
    return crds()[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_custom_resource_schema_validation() -> None:
    obj: dict[str, Any] = {
        "apiVersion": "x/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 0, "port": 1.5, "unknown": 1},
    }
    dropped = prune(obj, schema(), root=True)
    assert dropped == ["spec.unknown"]
    apply_defaults(obj, schema())
    assert obj["spec"]["color"] == "red"
    fields = {cause["field"] for cause in validate_custom(obj, schema())}
    assert fields == {"spec.size", "spec.port"}


def test_list_sets_and_maps_refuse_repeated_items_as_kube_apiserver_does() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "triggers": {
                        "type": "array",
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "string"},
                    },
                    "conditions": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["type"],
                        "items": {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string"},
                                "tags": {
                                    "type": "array",
                                    "x-kubernetes-list-type": "set",
                                    "items": {"type": "string"},
                                },
                            },
                        },
                    },
                    "plain": {"type": "array", "items": {"type": "string"}},
                },
            }
        },
    }
    spec: dict[str, Any] = {
        "triggers": ["drift", "degraded", "drift", "drift"],
        "conditions": [
            {"type": "Ready", "tags": ["a", "a"]},
            {"type": "Degraded"},
            {"type": "Ready", "tags": ["b"]},
        ],
        "plain": ["same", "same"],  # no list type: repeats allowed
    }
    obj = {"metadata": {"name": "x"}, "spec": spec}
    causes = [(c["field"], c["message"], c["reason"]) for c in duplicate_list_items(obj, schema)]
    assert causes == [
        ("spec.triggers[2]", 'Duplicate value: "drift"', "FieldValueDuplicate"),  # once per value
        (
            "spec.conditions[2]",
            'Duplicate value: map[string]interface {}{"type":"Ready"}',
            "FieldValueDuplicate",
        ),
        ("spec.conditions[0].tags[1]", 'Duplicate value: "a"', "FieldValueDuplicate"),
    ]
    spec["triggers"] = ["drift", "degraded"]
    spec["conditions"] = [{"type": "Ready"}, {"type": "Degraded"}]
    assert duplicate_list_items(obj, schema) == []


def test_crd_checks() -> None:
    crd = crds()[0]
    assert check_crd(crd) == []
    crd["spec"]["versions"][0]["storage"] = False
    crd["metadata"]["name"] = "wrong"
    fields = {cause["field"] for cause in check_crd(crd)}
    assert fields == {"metadata.name", "spec.versions"}
    assert check_crd({"spec": "nonsense"})


def test_json_path_and_ages() -> None:
    obj = {
        "status": {"conditions": [{"type": "A", "status": "F"}, {"type": "Ready", "status": "T"}]},
        "spec": {"xs": [{"n": 1}, {"n": 2}]},
    }
    assert json_path(obj, '.status.conditions[?(@.type=="Ready")].status') == ["T"]
    assert json_path(obj, ".spec.xs[*].n") == [1, 2]
    assert json_path(obj, ".spec.xs[1].n") == [2]
    assert json_path(obj, ".missing.path") == []
    assert [human_duration(s) for s in (5, 150, 3600 * 5 + 60, 86400 * 3 + 3600)] == [
        "5s",
        "2m30s",
        "5h1m",
        "3d1h",
    ]


def test_table_rows_use_printer_columns() -> None:
    rt = ResourceType(
        "g.io",
        "v1",
        "ws",
        "w",
        "W",
        True,
        printer_columns=[{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
    )
    entry = row(rt, {"metadata": {"name": "w1"}, "spec": {"size": 3}}, "None")
    assert entry == {"cells": ["w1", 3]}


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_protobuf_configmap_decodes() -> None:
    meta = _field(1, b"c1") + _field(3, b"ns")
    entry = _field(1, b"k") + _field(2, b"v")
    message = _field(1, meta) + _field(2, entry)
    envelope = (
        b"k8s\x00" + _field(1, _field(1, b"v1") + _field(2, b"ConfigMap")) + _field(2, message)
    )
    assert decode(envelope) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c1", "namespace": "ns"},
        "data": {"k": "v"},
    }
    with pytest.raises(ApiError) as garbage:
        decode(b"k8s\x00\xff\xff")
    assert garbage.value.code == 400
