"""Pure parsing of KServe logger CloudEvents and inference payloads."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from services.monitor.config import Limits
from services.monitor.parsing import (
    BadEvent,
    PayloadProblem,
    envelope_from_structured,
    request_features,
    response_scores,
)
from services.monitor.tests.events import binary_headers, envelope, structured_event

LIMITS = Limits(max_rows_per_event=100, max_features=8)


def test_binary_envelope_reads_kserve_and_kubeloop_attributes() -> None:
    headers = binary_headers("response", "req-1", "2", role="shadow", status=503, latency_ms=12.5)
    env = envelope(headers, {"predictions": [0.3]})
    assert (env.kind, env.event_id, env.namespace) == ("response", "req-1", "team-a")
    # No ce-kubeloopmodel: the MLModel name comes from the per-version InferenceService name.
    assert (env.model, env.version, env.role) == ("churn", "2", "shadow")
    assert (env.status, env.latency_ms) == (503, 12.5)


def test_annotations_metadata_and_dashed_spellings_are_fallbacks() -> None:
    headers = binary_headers("response", "req-1", "7")
    del headers["ce-kubeloopversion"]
    headers["ce-inferenceservicename"] = "some-isvc"
    headers["ce-annotations"] = json.dumps(
        {"kubeloop.io/mlmodel": "fraud", "kubeloop.io/model-version": "7"}
    )
    headers["ce-metadata"] = json.dumps({"X-Kubeloop-Role": ["candidate"]})
    headers["ce-kubeloop-latency-ms"] = "4.25"
    env = envelope(headers, {"predictions": [1]})
    assert (env.model, env.version, env.role, env.latency_ms) == ("fraud", "7", "candidate", 4.25)
    assert env.status == 200  # KServe only logs 200 responses and sends no status


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ce-type": "dev.example.other"}, "unknown_type"),
        ({"ce-id": ""}, "missing_id"),
        ({"ce-kubeloopversion": ""}, "missing_version"),
        ({"ce-kubelooprole": "primary"}, "invalid_role"),
        ({"ce-kubeloopstatus": "abc"}, "invalid_status"),
        ({"ce-kubeloopstatus": "999"}, "invalid_status"),
        ({"ce-kubelooplatencyms": "nan"}, "invalid_latency"),
        ({"ce-kubelooplatencyms": "-3"}, "invalid_latency"),
        ({"ce-metadata": "{not json"}, "invalid_json"),
        ({"ce-annotations": "[1, 2]"}, "wrong_type"),
    ],
)
def test_bad_envelopes_are_refused_with_a_reason(change: dict[str, str], reason: str) -> None:
    headers = {**binary_headers("response", "req-1", "1"), **change}
    with pytest.raises(BadEvent) as caught:
        envelope(headers, {"predictions": [0.1]})
    assert caught.value.reason == reason


def test_missing_type_is_not_a_cloudevent() -> None:
    headers = binary_headers("request", "req-1", "1")
    del headers["ce-type"]
    with pytest.raises(BadEvent) as caught:
        envelope(headers, {})
    assert caught.value.reason == "not_cloudevent"


def test_structured_mode_with_data_and_data_base64() -> None:
    headers = binary_headers("request", "req-9", "3", role="stable")
    plain = envelope_from_structured(structured_event(headers, {"instances": [[1, 2]]}))
    assert (plain.kind, plain.event_id, plain.version, plain.role) == (
        "request",
        "req-9",
        "3",
        "stable",
    )
    assert plain.data == {"instances": [[1, 2]]}
    encoded = structured_event(headers, None)
    del encoded["data"]
    encoded["data_base64"] = base64.b64encode(b'{"instances": [[1, 2]]}').decode()
    assert envelope_from_structured(encoded).data == b'{"instances": [[1, 2]]}'
    with pytest.raises(BadEvent, match="base64"):
        envelope_from_structured({**encoded, "data_base64": "***"})
    with pytest.raises(BadEvent):
        envelope_from_structured(["not", "an", "object"])


def test_v1_list_and_dict_instances() -> None:
    rows = request_features(b'{"instances": [[1, 2.5], [3, 4]]}', LIMITS)
    np.testing.assert_array_equal(rows.rows, np.array([[1, 2.5], [3, 4]]))
    named = request_features({"instances": [{"age": 30, "income": 2.0}]}, LIMITS)
    assert named.names == ["age", "income"]
    np.testing.assert_array_equal(named.rows, [[30, 2.0]])
    assert request_features({"inputs": [[1, 2]]}, LIMITS).rows.shape == (1, 2)


def test_v2_inputs_single_tensor_and_columns() -> None:
    single = {
        "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]
    }
    np.testing.assert_array_equal(request_features(single, LIMITS).rows, [[1, 2, 3], [4, 5, 6]])
    columns = {
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "INT64", "data": [30, 40]},
            {"name": "income", "shape": [2, 1], "datatype": "FP64", "data": [[1.5], [2.5]]},
        ]
    }
    parsed = request_features(columns, LIMITS)
    assert parsed.names == ["age", "income"]
    np.testing.assert_array_equal(parsed.rows, [[30, 1.5], [40, 2.5]])


def test_nan_rows_are_dropped_not_kept() -> None:
    parsed = request_features(b'{"instances": [[1, NaN], [3, 4], [Infinity, 1]]}', LIMITS)
    np.testing.assert_array_equal(parsed.rows, [[3, 4]])
    assert parsed.dropped_rows == 2
    assert parsed.null_counts is not None and parsed.null_counts.tolist() == [1, 1]


def test_finite_rows_whose_sum_overflows_are_kept() -> None:
    # The finiteness check sums the rows first; a sum that overflows must not drop rows.
    parsed = request_features(b'{"instances": [[1e308, 1e308], [-1e308, 2]]}', LIMITS)
    assert parsed.rows.shape == (2, 2) and parsed.dropped_rows == 0
    assert parsed.null_counts is None


@pytest.mark.parametrize(
    ("instances", "outcome"),
    [
        ([[1, True]], [[1.0, 1.0]]),  # bool: read by the general path, as before
        ([[1, "2"]], "wrong_type"),  # a string is never coerced to a number
        ([[1.5, None]], []),  # null: the row is dropped and counted
        ([[1, [2]]], "ragged"),
        ([[1, 2], [3]], "ragged"),
        ([[1, 2], 3], "ragged"),
    ],
)
def test_only_plain_numbers_take_the_fast_path(instances: list[object], outcome: object) -> None:
    body = json.dumps({"instances": instances}).encode()
    if isinstance(outcome, str):
        with pytest.raises(PayloadProblem) as raised:
            request_features(body, LIMITS)
        assert raised.value.reason == outcome
    else:
        assert request_features(body, LIMITS).rows.tolist() == outcome


def test_role_spelling_is_normalised_and_metadata_is_a_fallback() -> None:
    headers = binary_headers("request", "req-1", "2", role=" Shadow ")
    assert envelope(headers, {"instances": [[1.0]]}).role == "shadow"
    del headers["ce-kubelooprole"]
    headers["ce-kubeloop-role"] = "candidate"
    assert envelope(headers, {"instances": [[1.0]]}).role == "candidate"
    del headers["ce-kubeloop-role"]
    headers["ce-metadata"] = json.dumps({"X-Kubeloop-Role": ["stable"], "X-Request-Id": ["r9"]})
    env = envelope(headers, {"instances": [[1.0]]})
    assert (env.role, env.correlation_id) == ("stable", "r9")
    del headers["ce-metadata"]
    assert envelope(headers, {"instances": [[1.0]]}).role is None


def test_null_values_count_per_feature_like_nan() -> None:
    parsed = request_features(b'{"instances": [[1, null], [3, 4], [null, null]]}', LIMITS)
    np.testing.assert_array_equal(parsed.rows, [[3, 4]])
    assert parsed.dropped_rows == 2
    assert parsed.null_counts is not None and parsed.null_counts.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{oops", "invalid_json"),
        (b"[1, 2]", "wrong_type"),
        (b'{"data": [1]}', "missing_field"),
        (b'{"instances": []}', "wrong_type"),
        (b'{"instances": [["a", "b"]]}', "wrong_type"),
        (b'{"instances": [[1, null], ["a", null]]}', "null_value"),
        (b'{"instances": [[1, 2], [3]]}', "ragged"),
        (b'{"instances": [{"a": 1}, {"b": 2}]}', "missing_field"),
        (b'{"instances": [[1, 2, 3, 4, 5, 6, 7, 8, 9]]}', "too_many_features"),
        (json.dumps({"instances": [[1]] * 101}).encode(), "too_many_rows"),
        (b'{"instances": [[[1, 2], [3, 4]]]}', "unsupported_shape"),
        (
            b'{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}]}',
            "shape_mismatch",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}',
            "wrong_type",
        ),
    ],
)
def test_bad_request_payloads_name_their_reason(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadProblem) as caught:
        request_features(body, LIMITS)
    assert caught.value.reason == reason


def test_scores_from_v1_and_v2_responses() -> None:
    scalar = response_scores({"predictions": [0.2, 0.9]}, LIMITS)
    np.testing.assert_allclose(scalar.scores, [0.2, 0.9])
    assert scalar.classes is None
    binary = response_scores({"predictions": [[0.8, 0.2], [0.1, 0.9]]}, LIMITS)
    np.testing.assert_allclose(binary.scores, [0.2, 0.9])  # the positive class
    multi = response_scores({"predictions": [[0.1, 0.7, 0.2]]}, LIMITS)
    assert multi.classes is not None and multi.classes.tolist() == [1]
    labels = response_scores({"predictions": [0, 2, 1]}, LIMITS)
    assert labels.classes is not None and labels.classes.tolist() == [0, 2, 1]
    v2 = {"outputs": [{"name": "p", "shape": [2, 1], "datatype": "FP32", "data": [0.4, 0.6]}]}
    np.testing.assert_allclose(response_scores(v2, LIMITS).scores, [0.4, 0.6])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"predictions": [0.1, NaN]}', "nan"),
        (b'{"error": "boom"}', "missing_field"),
        (b'{"predictions": ["yes"]}', "wrong_type"),
    ],
)
def test_bad_response_payloads(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadProblem) as caught:
        response_scores(body, LIMITS)
    assert caught.value.reason == reason


def test_structured_data_sent_as_a_json_string_is_parsed() -> None:
    event = structured_event(binary_headers("request", "s", "1"), '{"instances": [[1, 2]]}')
    env = envelope_from_structured(event)
    assert request_features(env.data, LIMITS).rows.tolist() == [[1.0, 2.0]]
