"""The pure preprocess of serving from Feast: entities out of a request, online values (or
defaults) in, counts of what was defaulted."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.feature_serving import FETCHED_AT_INPUT
from localcluster.serving.features import (
    FeatureRequestError,
    FeatureServingSpec,
    Value,
    fill_request,
    request_entities,
    with_features,
)

SPEC = FeatureServingSpec(
    feature_view="customer-activity",
    entity_key="customer_id",
    entity_type="INT64",
    features={"tenure": "int64", "spend": "float64", "plan": "string"},
    defaults={"spend": -1.0},
)


def test_columns_are_the_training_sets() -> None:
    assert SPEC.feast_view == "customer_activity"
    assert SPEC.feature_refs == [
        "customer_activity:tenure",
        "customer_activity:spend",
        "customer_activity:plan",
    ]
    assert SPEC.columns == {
        "customer_activity__tenure": "tenure",
        "customer_activity__spend": "spend",
        "customer_activity__plan": "plan",
    }


def test_v1_rows_get_online_values_and_keep_entity_and_request_features() -> None:
    body = {"instances": [{"customer_id": 7, "hour": 3}, {"customer_id": "8", "hour": 4}]}
    assert request_entities(body, SPEC) == [7, 8]  # "8" is the INT64 entity 8
    online: dict[str, list[Value]] = {
        "tenure": [12, 30],
        "spend": [9.5, 1.25],
        "plan": ["pro", "free"],
    }
    filled, counts = with_features(body, SPEC, online)
    assert filled["instances"] == [
        {
            "customer_id": 7,
            "hour": 3,
            "customer_activity__tenure": 12,
            "customer_activity__spend": 9.5,
            "customer_activity__plan": "pro",
        },
        {
            "customer_id": "8",
            "hour": 4,
            "customer_activity__tenure": 30,
            "customer_activity__spend": 1.25,
            "customer_activity__plan": "free",
        },
    ]
    assert (counts.rows, counts.missing_entities, counts.defaulted) == (2, 0, {})
    assert body["instances"][0] == {"customer_id": 7, "hour": 3}  # the input is not mutated


def test_missing_entity_gets_the_defaults_and_is_counted() -> None:
    body = {"instances": [{"customer_id": 1}, {"customer_id": 404}]}
    online: dict[str, list[Value]] = {
        "tenure": [5, None],
        "spend": [float("nan"), None],
        "plan": ["pro", None],
    }
    filled, counts = with_features(body, SPEC, online)
    known, unknown = filled["instances"]
    # A known entity's null value is defaulted too, without counting the entity as missing.
    assert known["customer_activity__spend"] == -1.0
    assert known["customer_activity__tenure"] == 5
    assert unknown == {
        "customer_id": 404,
        "customer_activity__tenure": 0,  # no declared default: 0 for numbers
        "customer_activity__spend": -1.0,  # the declared default
        "customer_activity__plan": "",  # "" for strings
    }
    assert counts.rows == 2
    assert counts.missing_entities == 1
    assert counts.defaulted == {"spend": 2, "tenure": 1, "plan": 1}


def test_v2_tensors_gain_one_tensor_per_feature() -> None:
    body = {
        "id": "r1",
        "inputs": [
            {"name": "customer_id", "shape": [2, 1], "datatype": "INT64", "data": [[3], [4]]},
            {"name": "hour", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]},
        ],
    }
    assert request_entities(body, SPEC) == [3, 4]
    online: dict[str, list[Value]] = {
        "tenure": [1, None],
        "spend": [2.0, None],
        "plan": ["a", None],
    }
    filled, counts = with_features(body, SPEC, online)
    assert filled["id"] == "r1"
    added = {t["name"]: t for t in filled["inputs"][2:]}
    assert added["customer_activity__tenure"] == {
        "name": "customer_activity__tenure",
        "shape": [2],
        "datatype": "INT64",
        "data": [1, 0],
    }
    assert added["customer_activity__spend"]["datatype"] == "FP64"
    assert added["customer_activity__spend"]["data"] == [2.0, -1.0]
    assert added["customer_activity__plan"]["datatype"] == "BYTES"
    assert counts.missing_entities == 1


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"instances": [{"hour": 1}]}, "lacks the entity input 'customer_id'"),
        ({"instances": [[1, 2]]}, "must hold objects"),
        ({"instances": []}, "non-empty list"),
        ([1, 2], "must be a JSON object"),
        ({"instances": [{"customer_id": 1.5}]}, "must be an integer entity key, got 1.5"),
        ({"instances": [{"customer_id": "abc"}]}, "must be an integer entity key"),
        ({"instances": [{"customer_id": None}]}, "must be a INT64 entity key"),
        (
            {"instances": [{"customer_id": 1, "customer_activity__spend": 3.0}]},
            "['customer_activity__spend'] are filled from FeatureView 'customer-activity'",
        ),
        (
            {"inputs": [{"name": "hour", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
            "inputs lack the entity input 'customer_id'",
        ),
        (
            {"inputs": [{"name": "customer_id", "shape": [2], "datatype": "INT64", "data": [1]}]},
            "must have shape [N] or [N, 1]",
        ),
    ],
)
def test_bad_requests_name_the_input(body: Any, named: str) -> None:
    with pytest.raises(FeatureRequestError) as error:
        request_entities(body, SPEC)
    assert named in str(error.value)


def test_fill_request_looks_up_the_request_entities() -> None:
    seen: list[list[Any]] = []

    def lookup(entities: list[Any]) -> dict[str, list[Any]]:
        seen.append(entities)
        return {"tenure": [1] * len(entities), "spend": [0.5] * len(entities), "plan": ["x"]}

    filled, counts = fill_request({"instances": [{"customer_id": 11}]}, SPEC, lookup)
    assert seen == [[11]]
    assert filled["instances"][0]["customer_activity__plan"] == "x"
    assert counts.rows == 1


def test_rows_are_stamped_with_the_time_the_store_was_read() -> None:
    """The skew check's timestampKey: the clock is read after the lookup (every value in the
    answer was in the store by the stamp), once per request."""
    events: list[str] = []

    def clock() -> float:
        events.append("clock")
        return 1700000000.25

    def lookup(entities: list[Any]) -> dict[str, list[Any]]:
        events.append("lookup")
        return {"tenure": [1] * len(entities), "spend": [0.5] * len(entities), "plan": ["x"] * 2}

    v1 = {"instances": [{"customer_id": 1}, {"customer_id": 2}]}
    filled, _ = fill_request(v1, SPEC, lookup, clock)
    assert events == ["lookup", "clock"]
    assert [row[FETCHED_AT_INPUT] for row in filled["instances"]] == [1700000000.25] * 2
    v2 = {"inputs": [{"name": "customer_id", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}
    filled, _ = fill_request(v2, SPEC, lookup, clock)
    stamp = next(t for t in filled["inputs"] if t["name"] == FETCHED_AT_INPUT)
    assert stamp == {
        "name": FETCHED_AT_INPUT,
        "shape": [2],
        "datatype": "FP64",
        "data": [1700000000.25] * 2,
    }
    # Without a clock (and in with_features without fetched_at) nothing is added.
    assert FETCHED_AT_INPUT not in fill_request(v1, SPEC, lookup)[0]["instances"][0]
    with pytest.raises(FeatureRequestError, match=FETCHED_AT_INPUT):
        request_entities({"instances": [{"customer_id": 1, FETCHED_AT_INPUT: 0.0}]}, SPEC)


def test_an_online_answer_of_the_wrong_length_is_not_blamed_on_the_request() -> None:
    body = {"instances": [{"customer_id": 1}, {"customer_id": 2}]}
    with pytest.raises(ValueError) as error:
        with_features(body, SPEC, {"tenure": [1], "spend": [1.0, 2.0], "plan": ["a", "b"]})
    assert not isinstance(error.value, FeatureRequestError)
    assert "'tenure' for 1/2 rows" in str(error.value)


def test_string_entities_and_spec_checks() -> None:
    spec = FeatureServingSpec("v", "user", "STRING", {"x": "float32"})
    assert request_entities({"instances": [{"user": 17}, {"user": "u"}]}, spec) == ["17", "u"]
    with pytest.raises(ValueError, match="not features"):
        FeatureServingSpec("v", "k", "INT64", {"x": "float64"}, {"y": 1.0})
    with pytest.raises(ValueError, match="is not a int64 value"):
        FeatureServingSpec("v", "k", "INT64", {"x": "int64"}, {"x": 0.5})
    with pytest.raises(ValueError, match="unknown dtype"):
        FeatureServingSpec("v", "k", "INT64", {"x": "decimal"})
    with pytest.raises(ValueError, match="at least one feature"):
        FeatureServingSpec("v", "k", "INT64", {})


async def test_the_cluster_transformer_fills_v1_and_v2_and_maps_errors() -> None:
    """The kserve.Model KServe runs as spec.transformer: its preprocess fills v1 dicts and v2
    InferRequests (KServe's own predict then forwards them), and answers KServe's 400/503."""
    from kserve.errors import InvalidInput, ServerNotReady
    from kserve.protocol.infer_type import InferInput, InferRequest
    from prometheus_client import CollectorRegistry

    from localcluster.serving.feast_transformer import (
        FeatureFiller,
        FeatureServingMetrics,
        FeatureStoreUnavailable,
        _transformer_model,
    )

    def lookup(entities: list[Any]) -> dict[str, list[Value]]:
        if 0 in entities:
            raise FeatureStoreUnavailable("online store down")
        return {"tenure": [3] * len(entities), "spend": [None] * len(entities), "plan": ["p"]}

    filler = FeatureFiller(SPEC, lookup, FeatureServingMetrics(CollectorRegistry()))
    model = _transformer_model("churn", filler)
    v1 = await model.preprocess({"instances": [{"customer_id": 5}]})
    assert v1["instances"][0]["customer_activity__spend"] == -1.0
    request = InferRequest(
        model_name="churn",
        infer_inputs=[InferInput("customer_id", [1], "INT64", data=[5])],
        request_id="r1",
    )
    v2 = await model.preprocess(request)
    assert isinstance(v2, InferRequest)
    assert {i.name: list(i.data) for i in v2.inputs}["customer_activity__tenure"] == [3]
    with pytest.raises(InvalidInput, match="lacks the entity input"):
        await model.preprocess({"instances": [{"x": 1}]})
    with pytest.raises(ServerNotReady, match="online store down"):
        await model.preprocess({"instances": [{"customer_id": 0}]})
