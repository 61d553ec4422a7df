"""Pure translation between inference protocol payloads and pyfunc inputs/outputs.

Every malformed payload raises ``kserve.errors.InvalidInput`` (answered 400 by the model
server) with a message naming the offending field, so clients get a 4xx, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse


def v1_instances_to_frame(body: Any, columns: Sequence[str] | None) -> pd.DataFrame:
    """v1 ``{"instances": [...]}``: each instance a feature dict, or a list in column order."""
    if isinstance(body, (bytes, str)):
        # KServe hands over the raw body when the content type is not JSON (e.g. curl's default).
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise InvalidInput(f"request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput(f"request body must be a JSON object, got {type(body).__name__}")
    instances = body.get("instances", body.get("inputs"))
    if instances is None:
        raise InvalidInput('request body needs an "instances" list')
    if not isinstance(instances, list) or not instances:
        raise InvalidInput('"instances" must be a non-empty list')
    if all(isinstance(row, dict) for row in instances):
        return _dict_rows(instances, columns)
    if all(isinstance(row, list) for row in instances):
        return _list_rows(instances, columns)
    raise InvalidInput('"instances" must be all feature objects or all lists of values')


def _dict_rows(rows: list[dict[str, Any]], columns: Sequence[str] | None) -> pd.DataFrame:
    if columns:
        for index, row in enumerate(rows):
            missing = [name for name in columns if name not in row]
            if missing:
                raise InvalidInput(f"instances[{index}] lacks feature(s) {missing}")
        rows = [{name: row[name] for name in columns} for row in rows]
    _check_scalars(rows[0].values(), "instances[0]")
    return pd.DataFrame.from_records(rows)


def _list_rows(rows: list[list[Any]], columns: Sequence[str] | None) -> pd.DataFrame:
    width = len(columns) if columns else len(rows[0])
    for index, row in enumerate(rows):
        if len(row) != width:
            raise InvalidInput(f"instances[{index}] has {len(row)} values, expected {width}")
        _check_scalars(row, f"instances[{index}]")
    return pd.DataFrame(rows, columns=list(columns) if columns else None)


def _check_scalars(values: Any, where: str) -> None:
    for value in values:
        if not (value is None or isinstance(value, (int, float, str, bool))):
            raise InvalidInput(f"{where} holds a non-scalar value {value!r}")


def v2_request_to_frame(request: InferRequest, columns: Sequence[str] | None) -> pd.DataFrame:
    """v2 tensors: one 2-D input [N, F] (columns from the signature), or one 1-D input per feature."""
    inputs = request.inputs
    if not inputs:
        raise InvalidInput('"inputs" must hold at least one tensor')
    try:
        arrays = [(tensor.name, tensor.as_numpy()) for tensor in inputs]
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"input tensor data does not match its shape/datatype: {exc}") from exc
    if len(arrays) == 1 and arrays[0][1].ndim == 2:
        matrix = arrays[0][1]
        names = list(columns) if columns and len(columns) == matrix.shape[1] else None
        return pd.DataFrame(matrix, columns=names)
    lengths = {array.shape[0] if array.ndim else 1 for _, array in arrays}
    if len(lengths) != 1:
        raise InvalidInput(f"input tensors disagree on the batch size: {sorted(lengths)}")
    frame: dict[str, np.ndarray] = {}
    for name, array in arrays:
        if array.ndim > 2 or (array.ndim == 2 and array.shape[1] != 1):
            raise InvalidInput(
                f"input {name!r} must have shape [N] or [N, 1], got {list(array.shape)}"
            )
        frame[name] = array.reshape(-1)
    if columns and set(columns) <= frame.keys():
        # Like v1 feature objects: inputs beyond the signature (an entity key sent for the
        # monitor's skew check) reach the payload log, not the model.
        return pd.DataFrame({name: frame[name] for name in columns})
    return pd.DataFrame(frame)


def predictions_to_list(predictions: Any) -> list[Any]:
    """pyfunc output (ndarray, Series, DataFrame, list) → JSON-able list, one item per row."""
    if isinstance(predictions, pd.DataFrame):
        if predictions.shape[1] == 1:
            return predictions.iloc[:, 0].tolist()
        return predictions.to_dict(orient="records")
    if isinstance(predictions, (pd.Series, np.ndarray)):
        return predictions.tolist()
    if isinstance(predictions, list):
        return predictions
    raise TypeError(f"model returned an unsupported prediction type {type(predictions).__name__}")


def predictions_to_v2(model_name: str, request_id: str, predictions: Any) -> InferResponse:
    """pyfunc output → a v2 response with one ``predict`` tensor."""
    if isinstance(predictions, (pd.DataFrame, pd.Series)):
        array = predictions.to_numpy()
    else:
        array = np.asarray(predictions)
    if array.dtype == object:
        output = InferOutput(
            name="predict", shape=list(array.shape), datatype="BYTES", data=array.tolist()
        )
    else:
        output = InferOutput(name="predict", shape=list(array.shape), datatype="FP64")
        output.set_data_from_numpy(array.astype(np.float64), binary_data=False)
    return InferResponse(response_id=request_id, model_name=model_name, infer_outputs=[output])
