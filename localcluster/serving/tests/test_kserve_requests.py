"""Contract: the requests in KServe's own documentation, sent to a predictor serving a float32 model.

The model is what kubeloop trains: an ``mlflow.pytorch`` model (Linear + Sigmoid) whose signature
was inferred from a float32 DataFrame, so every input column is ``float`` (float32). JSON numbers
are doubles, so a predictor that only passes MLflow's schema enforcement through refuses all of
these v1 bodies ("Can not safely convert float64 to float32").

Each request below is copied from a KServe documentation page (kserve/website, cited per case);
only the feature names and the number of features are adapted to this model's signature
(``FEATURES``), as any user has to. Where a value had to change kind (a string feature of the
documented model), the comment says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from kserve.errors import InvalidInput

from localcluster.serving import payloads
from localcluster.serving.tests.conftest import RegisteredModel, start_predictor, stop_process

pytestmark = pytest.mark.slow  # one predictor start-up (MLflow + KServe + torch imports)

FEATURES = ["user_activity__price", "user_activity__clicks", "user_activity__dwell"]
PRICE, CLICKS, DWELL = FEATURES
WEIGHTS = np.array([0.5, -0.25, 0.125], dtype=np.float32)
BIAS = np.float32(0.1)
NAME = "churn-torch"

V1 = f"/v1/models/{NAME}:predict"
V2 = f"/v2/models/{NAME}/infer"

# Sources (kserve/website, docs/…):
V1_PROTOCOL = "concepts/architecture/data-plane/v1-protocol.md (Request Format, Examples)"
FIRST_ISVC = "getting-started/predictive-first-isvc.md (5. Perform inference, iris-input.json)"
LIGHTGBM = "model-serving/predictive-inference/frameworks/lightgbm/lightgbm.md"
AUTOGLUON = "model-serving/predictive-inference/frameworks/autogluon/autogluon.md (Tabular REST)"
MLFLOW = "model-serving/predictive-inference/frameworks/mlflow/mlflow.md (mlflow-input.json)"


def expected(rows: list[list[float]]) -> list[float]:
    """What the model computes: sigmoid(x·w + b) in float32, on inputs narrowed to float32."""
    x = np.asarray(rows, dtype=np.float32)
    return (1.0 / (1.0 + np.exp(-(x @ WEIGHTS + BIAS)))).astype(np.float32).tolist()


def log_float32_torch_model(root: Path) -> RegisteredModel:
    """Log and register the model as the training component does (pytorch flavor, pickled)."""
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature
    from torch import nn

    linear = nn.Linear(len(FEATURES), 1)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(WEIGHTS).reshape(1, -1))
        linear.bias.fill_(float(BIAS))
    module = nn.Sequential(linear, nn.Sigmoid())
    example = pd.DataFrame(np.zeros((2, len(FEATURES)), dtype=np.float32), columns=FEATURES)
    signature = infer_signature(example, np.zeros((2, 1), dtype=np.float32))
    assert all(t.name == "float" for t in signature.inputs.input_types()), signature
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        experiment_id = mlflow.create_experiment(
            "kserve-requests", artifact_location=(root / "artifacts").as_uri()
        )
        with mlflow.start_run(experiment_id=experiment_id), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pytorch.log_model(
                module,
                name="model",
                signature=signature,
                pip_requirements=["torch"],
                serialization_format="pickle",
                registered_model_name=NAME,
            )
    finally:
        mlflow.set_tracking_uri(previous)
    return RegisteredModel(tracking_uri, f"models:/{NAME}/{info.registered_model_version}")


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = log_float32_torch_model(tmp_path_factory.mktemp("torch-mlflow"))
    log_path = Path(tmp_path_factory.mktemp("torch-predictor")) / "predictor.log"
    proc, base = start_predictor(model, NAME, log_path, [])
    yield base
    stop_process(proc)


MLFLOW_WINE = {
    "parameters": {"content_type": "pd"},
    "inputs": [
        {"name": PRICE, "shape": [1], "datatype": "FP32", "data": [7.4]},
        {"name": CLICKS, "shape": [1], "datatype": "FP32", "data": [0.7000]},
        {"name": DWELL, "shape": [1], "datatype": "FP32", "data": [0]},
    ],
}


def with_datatype(body: dict[str, Any], datatype: str) -> dict[str, Any]:
    """The same v2 body with every tensor declared ``datatype``."""
    return {**body, "inputs": [{**t, "datatype": datatype} for t in body["inputs"]]}


def v1_rows(key: str, rows: list[list[float]]) -> tuple[str, dict[str, Any], list[list[float]]]:
    """A v1 body of rows in signature order: (path, body, the rows the model sees)."""
    return V1, {key: rows}, rows


# (case id, source, path, body, the rows in FEATURES order the model should see)
DOCUMENTED: list[tuple[str, str, str, dict[str, Any], list[list[float]]]] = [
    (
        "v1-instances-rows",
        V1_PROTOCOL + ": Request with `instances` (3 features, as ours)",
        *v1_rows("instances", [[1.0, 2.0, 5.0], [5.0, 6.0, 5.0]]),
    ),
    (
        "v1-inputs-rows",
        V1_PROTOCOL + ": Request with `inputs` (3 features, as ours)",
        *v1_rows("inputs", [[1.0, 2.0, 5.0], [5.0, 6.0, 5.0]]),
    ),
    (
        "v1-instances-feature-lists",
        V1_PROTOCOL + ': {"instances": [{"feature_0": [value_1, value_2, ...], ...}, ...]}',
        V1,
        {
            "instances": [
                {PRICE: [1.0, 5.0], CLICKS: [2.0, 6.0], DWELL: [5.0, 5.0]},
                {PRICE: [0.5], CLICKS: [1.5], DWELL: [2.5]},
            ]
        },
        [[1.0, 2.0, 5.0], [5.0, 6.0, 5.0], [0.5, 1.5, 2.5]],
    ),
    (
        "v1-inputs-feature-lists",
        LIGHTGBM + ": iris-input.json (V1), sepal_length/sepal_width/petal_length renamed",
        V1,
        {"inputs": [{PRICE: [5.1], CLICKS: [3.5], DWELL: [1.4]}]},
        [[5.1, 3.5, 1.4]],
    ),
    (
        "v1-instances-iris",
        FIRST_ISVC + ": 4 iris features, the last dropped",
        *v1_rows("instances", [[6.8, 2.8, 4.8], [6.0, 3.4, 4.5]]),
    ),
    (
        "v1-instances-records-ints",
        AUTOGLUON + " v1: PassengerId/Pclass renamed; Sex (a string there) is a number here",
        V1,
        {
            "instances": [
                {PRICE: 1, CLICKS: 3, DWELL: 0},
                {PRICE: 2, CLICKS: 1, DWELL: 1},
            ]
        },
        [[1.0, 3.0, 0.0], [2.0, 1.0, 1.0]],
    ),
    (
        "v1-instances-records-floats",
        "issue 11's first request: feature objects of JSON doubles",
        V1,
        {"instances": [{PRICE: 1.0, CLICKS: 2.5, DWELL: 0.3}]},
        [[1.0, 2.5, 0.3]],
    ),
    (
        "v2-fp32-matrix",
        LIGHTGBM + ": iris-input-v2.json, input-0 of shape [2, 4] → [2, 3]",
        V2,
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "data": [[6.8, 2.8, 4.8], [6.0, 3.4, 4.5]],
                }
            ]
        },
        [[6.8, 2.8, 4.8], [6.0, 3.4, 4.5]],
    ),
    (
        "v2-fp32-named-pd",
        MLFLOW + ": fixed acidity/volatile acidity/citric acid renamed, 3 of 11 tensors",
        V2,
        MLFLOW_WINE,
        [[7.4, 0.7, 0.0]],
    ),
    (
        "v2-fp64-named-pd",
        MLFLOW + ": the same tensors declared FP64, as a client keeping JSON doubles sends them",
        V2,
        with_datatype(MLFLOW_WINE, "FP64"),
        [[7.4, 0.7, 0.0]],
    ),
    (
        "v2-int64-named",
        AUTOGLUON + " v2: PassengerId/Pclass INT64 renamed; Sex (BYTES there) is FP64 here",
        V2,
        {
            "inputs": [
                {"name": PRICE, "shape": [2], "datatype": "INT64", "data": [1, 2]},
                {"name": CLICKS, "shape": [2], "datatype": "INT64", "data": [3, 1]},
                {"name": DWELL, "shape": [2], "datatype": "FP64", "data": [0.5, 1.5]},
            ]
        },
        [[1.0, 3.0, 0.5], [2.0, 1.0, 1.5]],
    ),
]


@pytest.mark.parametrize(
    ("source", "path", "body", "rows"),
    [pytest.param(*case[1:], id=case[0]) for case in DOCUMENTED],
)
def test_documented_request_answers_200(
    predictor: str, source: str, path: str, body: dict[str, Any], rows: list[list[float]]
) -> None:
    response = httpx.post(predictor + path, json=body, timeout=30.0)
    assert response.status_code == 200, f"{source}: {response.text}"
    if path == V1:
        predictions = response.json()["predictions"]
    else:
        output = response.json()["outputs"][0]
        assert output["name"] == "predict"
        predictions = output["data"]
    assert predictions == pytest.approx(expected(rows), rel=1e-6), source


def one_row_tensors(*typed: tuple[str, Any]) -> dict[str, Any]:
    """A v2 body of one [1] tensor per feature, in FEATURES order: (datatype, value) each."""
    return {
        "inputs": [
            {"name": name, "shape": [1], "datatype": datatype, "data": [value]}
            for name, (datatype, value) in zip(FEATURES, typed, strict=False)
        ]
    }


# (case id, path, body, fragments the 400's message must contain)
REFUSED: list[tuple[str, str, dict[str, Any], list[str]]] = [
    (
        "v1-missing-column",
        V1,
        {"instances": [{PRICE: 1.0, CLICKS: 2.0}]},
        [DWELL],
    ),
    (
        "v1-unknown-column",  # a misspelt feature: reported as unknown, and its column as missing
        V1,
        {"instances": [{PRICE: 1.0, CLICKS: 2.0, "user_activity__dwel": 3.0}]},
        [DWELL, "user_activity__dwel"],
    ),
    (
        "v1-string-for-float",  # AUTOGLUON v1 as written: "Sex": "male"
        V1,
        {"instances": [{PRICE: 1, CLICKS: 3, DWELL: "male"}]},
        [DWELL, "male"],
    ),
    (
        "v1-nested-object",  # LIGHTGBM's local request writes each value as {0: value}
        V1,
        {"inputs": [{PRICE: {"0": 3.5}, CLICKS: {"0": 1.4}, DWELL: {"0": 0.2}}]},
        [PRICE],
    ),
    (
        "v1-string-in-row",
        V1,
        {"instances": [[1.0, "2.0", 5.0]]},
        [CLICKS],
    ),
    (
        "v2-bytes-for-float",  # AUTOGLUON v2 as written: Sex as BYTES
        V2,
        one_row_tensors(("INT64", 1), ("INT64", 3), ("BYTES", "male")),
        [DWELL],
    ),
    ("v2-missing-column", V2, one_row_tensors(("FP32", 1.0), ("FP32", 2.0)), [DWELL]),
    (
        "v2-fp64-beyond-float32",
        V2,
        one_row_tensors(("FP64", 1e39), ("FP64", 2.0), ("FP64", 3.0)),
        [PRICE],
    ),
    (
        "v2-int64-not-exact-in-float32",
        V2,
        one_row_tensors(("INT64", 16777217), ("INT64", 2), ("INT64", 3)),
        [PRICE],
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "fragments"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED],
)
def test_refused_request_is_400_naming_the_column(
    predictor: str, path: str, body: dict[str, Any], fragments: list[str]
) -> None:
    response = httpx.post(predictor + path, json=body, timeout=30.0)
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message, message


# The casts themselves, in-process (no predictor): which dtype each signature type ends up with.
FLOAT32, DOUBLE, INT32, LONG = (np.dtype(t) for t in ("float32", "float64", "int32", "int64"))


@pytest.mark.parametrize(
    ("target", "values", "result"),
    [
        pytest.param(
            FLOAT32, np.array([0.1, 1e38]), [np.float32(0.1), np.float32(1e38)], id="f64-f32"
        ),
        pytest.param(FLOAT32, np.array([-(2**24), 2**24]), [-(2.0**24), 2.0**24], id="i64-f32"),
        pytest.param(DOUBLE, np.array([0.5], dtype=np.float32), [0.5], id="f32-f64"),
        pytest.param(DOUBLE, np.array([2**53]), [2.0**53], id="i64-f64"),
        pytest.param(INT32, np.array([3.0, -7.0]), [3, -7], id="integral-f64-i32"),
        pytest.param(LONG, np.array([1, 2], dtype=np.int8), [1, 2], id="i8-i64"),
        pytest.param(FLOAT32, np.array([1.0, np.nan]), [1.0, np.nan], id="null-stays-nan"),
    ],
)
def test_lossless_or_documented_casts(
    target: np.dtype[Any], values: np.ndarray, result: list[float]
) -> None:
    frame = pd.DataFrame({"x": values})
    fitted = payloads.conform_to_signature(frame, [payloads.Column("x", target)])
    assert fitted["x"].dtype == target
    assert fitted["x"].tolist() == pytest.approx(result, nan_ok=True)


@pytest.mark.parametrize(
    ("target", "values", "fragment"),
    [
        pytest.param(FLOAT32, np.array([1e39]), "beyond the range", id="f64-overflows-f32"),
        pytest.param(FLOAT32, np.array([2**24 + 1]), "exactly", id="i64-inexact-f32"),
        pytest.param(DOUBLE, np.array([2**53 + 1]), "exactly", id="i64-inexact-f64"),
        pytest.param(INT32, np.array([2.5]), "exactly", id="fraction-i32"),
        pytest.param(INT32, np.array([2**31]), "exactly", id="i64-out-of-i32"),
        pytest.param(LONG, np.array([1.0, np.nan]), "a null", id="null-in-int"),
        pytest.param(DOUBLE, np.array([True, False]), "bool", id="bool-for-double"),
        pytest.param(DOUBLE, np.array(["1.5"], dtype=object), "str", id="string-for-double"),
    ],
)
def test_lossy_casts_are_refused_naming_the_column(
    target: np.dtype[Any], values: np.ndarray, fragment: str
) -> None:
    frame = pd.DataFrame({"x": values})
    with pytest.raises(InvalidInput) as refused:
        payloads.conform_to_signature(frame, [payloads.Column("x", target)])
    assert "'x'" in str(refused.value) and fragment in str(refused.value)
