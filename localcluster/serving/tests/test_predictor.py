"""The predictor process: a real KServe ModelServer serving a real MLflow model."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localcluster.serving import constants as c
from localcluster.serving.tests.conftest import (
    EventSink,
    RegisteredModel,
    start_predictor,
    stop_process,
)
from localcluster.serving.tests.logistic_model import LogisticModel

pytestmark = pytest.mark.slow  # one predictor start-up (MLflow + KServe imports) per module

MODEL = LogisticModel()


@pytest.fixture(scope="module")
def predictor(
    registered_model: RegisteredModel,
    event_sink: EventSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    log_path = Path(tmp_path_factory.mktemp("predictor")) / "predictor.log"
    extra = [
        "--model-version",
        "7",
        "--mlmodel",
        "churn",
        "--namespace",
        "team-a",
        "--logger-url",
        event_sink.url,
        "--logger-mode",
        "all",
    ]
    proc, base = start_predictor(registered_model, "logistic", log_path, extra)
    yield base
    stop_process(proc)


def test_v1_feature_dicts_and_lists(predictor: str) -> None:
    body = {"instances": [{"x1": 1.0, "x2": 0.0}, {"x1": 0.0, "x2": 1.0}]}
    by_dict = httpx.post(f"{predictor}/v1/models/logistic:predict", json=body)
    by_list = httpx.post(
        f"{predictor}/v1/models/logistic:predict", json={"instances": [[1.0, 0.0], [0.0, 1.0]]}
    )
    assert by_dict.status_code == 200, by_dict.text
    assert by_list.json() == by_dict.json()
    predictions = by_dict.json()["predictions"]
    assert predictions == pytest.approx([MODEL.expected(1.0, 0.0), MODEL.expected(0.0, 1.0)])


def test_v2_infer_named_tensors_and_matrix(predictor: str) -> None:
    named = {
        "inputs": [
            {"name": "x1", "shape": [2], "datatype": "FP32", "data": [1.0, 0.0]},
            {"name": "x2", "shape": [2], "datatype": "FP32", "data": [0.0, 1.0]},
        ]
    }
    matrix = {
        "inputs": [
            {"name": "features", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 0.0, 0.0, 1.0]}
        ]
    }
    # An input beyond the signature (the entity key a skew check needs) goes to the log only.
    with_entity = {
        "inputs": [
            {"name": "user_id", "shape": [2], "datatype": "INT64", "data": [7, 9]},
            *named["inputs"],
        ]
    }
    for body in (named, matrix, with_entity):
        response = httpx.post(f"{predictor}/v2/models/logistic/infer", json=body)
        assert response.status_code == 200, response.text
        output = response.json()["outputs"][0]
        assert output["name"] == "predict"
        assert output["data"] == pytest.approx([MODEL.expected(1.0, 0.0), MODEL.expected(0.0, 1.0)])


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/v1/models/logistic:predict", b"not json", "line 1 column 1"),
        ("/v1/models/logistic:predict", b'{"rows": []}', "instances"),
        ("/v1/models/logistic:predict", b'{"instances": []}', "non-empty"),
        ("/v1/models/logistic:predict", b'{"instances": [{"x1": 1}]}', "x2"),
        ("/v1/models/logistic:predict", b'{"instances": [[1, 2, 3]]}', "expected 2"),
        ("/v1/models/logistic:predict", b'{"instances": [{"x1": "abc", "x2": 1}]}', "signature"),
        ("/v2/models/logistic/infer", b'{"inputs": 5}', "invalid inference request"),
        (
            "/v2/models/logistic/infer",
            b'{"inputs": [{"name": "x1", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}',
            "shape",
        ),
    ],
)
def test_malformed_payload_is_400_with_message(
    predictor: str, path: str, body: bytes, fragment: str
) -> None:
    response = httpx.post(
        predictor + path, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


def test_cloudevents_for_request_and_response(predictor: str, event_sink: EventSink) -> None:
    request_id = str(uuid.uuid4())
    body = {"instances": [{"x1": 2.0, "x2": 1.0}]}
    headers = {c.REQUEST_ID_HEADER: request_id, c.ROLE_HEADER: "candidate"}
    response = httpx.post(f"{predictor}/v1/models/logistic:predict", json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers[c.REQUEST_ID_HEADER] == request_id

    events = {h[c.CE_TYPE_HEADER]: (h, b) for h, b in event_sink.wait_for(request_id, 2)}
    request_headers, request_body = events[c.CE_TYPE_REQUEST]
    response_headers, response_body = events[c.CE_TYPE_RESPONSE]
    assert json.loads(request_body) == body
    assert json.loads(response_body) == response.json()
    for headers_seen in (request_headers, response_headers):
        assert headers_seen[c.CE_SPECVERSION_HEADER] == "1.0"
        assert headers_seen[c.CE_INFERENCESERVICE_HEADER] == "logistic"
        assert headers_seen[c.CE_NAMESPACE_HEADER] == "team-a"
        assert headers_seen[c.CE_COMPONENT_HEADER] == "predictor"
        assert headers_seen[c.CE_MODEL_VERSION_HEADER] == "7"
        assert headers_seen[c.CE_ROLE_HEADER] == "candidate"
        assert headers_seen[c.CE_MODEL_HEADER] == "churn"
        assert headers_seen[c.CE_ENDPOINT_HEADER] == "default"
        assert json.loads(headers_seen[c.CE_METADATA_HEADER]) == {
            "X-Request-Id": [request_id],
            "X-Kubeloop-Role": ["candidate"],
        }
        assert headers_seen[c.CE_SOURCE_HEADER].startswith("http://localhost:")
    assert c.CE_STATUS_HEADER not in request_headers
    assert response_headers[c.CE_STATUS_HEADER] == "200"
    assert float(response_headers[c.CE_LATENCY_MS_HEADER]) > 0


def test_client_error_logs_the_request_only(predictor: str, event_sink: EventSink) -> None:
    """As KServe's agent: the request event is sent, the failed response is not."""
    request_id = str(uuid.uuid4())
    response = httpx.post(
        f"{predictor}/v1/models/logistic:predict",
        json={"instances": [{"x1": 1.0}]},
        headers={c.REQUEST_ID_HEADER: request_id},
    )
    assert response.status_code == 400
    [(headers, _)] = event_sink.wait_for(request_id, 1)
    assert headers[c.CE_TYPE_HEADER] == c.CE_TYPE_REQUEST
    assert c.CE_ROLE_HEADER not in headers  # no router in front: no role
    # A later successful exchange's two events have arrived: the failed one had its turn.
    later = str(uuid.uuid4())
    ok = httpx.post(
        f"{predictor}/v1/models/logistic:predict",
        json={"instances": [{"x1": 1.0, "x2": 2.0}]},
        headers={c.REQUEST_ID_HEADER: later},
    )
    assert ok.status_code == 200, ok.text
    event_sink.wait_for(later, 2)
    assert len(event_sink.by_id(request_id)) == 1


def test_generated_request_id_is_returned_and_used_as_ce_id(
    predictor: str, event_sink: EventSink
) -> None:
    response = httpx.post(
        f"{predictor}/v1/models/logistic:predict", json={"instances": [[0.5, 0.5]]}
    )
    request_id = response.headers[c.REQUEST_ID_HEADER]
    uuid.UUID(request_id)
    assert len(event_sink.wait_for(request_id, 2)) == 2
