"""Pure translation between inference protocol payloads and pyfunc inputs/outputs.

Every malformed payload raises ``kserve.errors.InvalidInput`` (answered 400 by the model
server) with a message naming the offending field or column, so clients get a 4xx, never a 500.

Requests are read as KServe's own model server reads them, then fitted to the MLflow signature:

- v1 (``kserve/protocol/rest/v1_endpoints.py`` → ``DataPlane.decode`` parses the body with
  orjson; ``kserve/utils/utils.py:get_predict_input`` picks ``inputs`` when present, else
  ``instances``). Each item is a list of values in signature order, or an object of feature →
  value, or of feature → list of values (one row per element: ``pd.DataFrame(instance)`` per item,
  concatenated, as ``get_predict_input`` does); documented in KServe's
  ``docs/concepts/architecture/data-plane/v1-protocol.md``.
- v2 (``kserve/protocol/rest/v2_endpoints.py`` → ``InferRequest``): each tensor is decoded by
  ``kserve/protocol/infer_type.py:InferInput.as_numpy``, i.e. ``np.array(data, dtype)`` with the
  dtype of its declared datatype (``kserve/utils/numpy_codec.py:to_np_dtype``). One [N, F] tensor
  is a matrix in signature order; otherwise one [N] or [N, 1] tensor per column, by name (the
  ``content_type: pd`` parameter of KServe's MLflow example reads the same way).

Then each column is cast to the dtype the signature declares (``conform_to_signature``). MLflow's
own check (``mlflow/models/utils.py:_enforce_mlflow_datatype``) only widens (int → long,
float → double, small ints → double) and refuses "float64 to float32"; JSON numbers are doubles,
so that refusal turned away every v1 request and every v2 ``FP64`` tensor for a float32 model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

_SCALARS = (int, float, str, bool)


@dataclass(frozen=True)
class Column:
    """One input column of the model signature; ``dtype`` set where it is numeric."""

    name: str
    dtype: np.dtype[Any] | None = None
    required: bool = True


def signature_columns(schema: Any) -> list[Column] | None:
    """The named inputs of an MLflow input ``Schema`` (None without a named signature)."""
    if schema is None or not schema.has_input_names():
        return None
    from mlflow.types import DataType

    numeric = (DataType.integer, DataType.long, DataType.float, DataType.double)
    return [
        Column(
            name=str(spec.name),
            dtype=np.dtype(spec.type.to_numpy()) if spec.type in numeric else None,
            required=bool(getattr(spec, "required", True)),
        )
        for spec in schema.inputs
    ]


def _names(columns: Sequence[Column] | None) -> list[str]:
    return [column.name for column in columns or ()]


def v1_instances_to_frame(body: Any, columns: Sequence[Column] | None) -> pd.DataFrame:
    """v1 ``{"instances": [...]}`` or ``{"inputs": [...]}`` → a frame fitted to the signature."""
    if isinstance(body, (bytes, str)):
        # KServe hands over the raw body when the content type is not JSON (e.g. curl's default).
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise InvalidInput(f"request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput(f"request body must be a JSON object, got {type(body).__name__}")
    # As kserve/utils/utils.py:get_predict_input: "inputs" when present, else "instances".
    key = "inputs" if "inputs" in body else "instances"
    instances = body.get(key)
    if instances is None:
        raise InvalidInput('request body needs an "instances" (or "inputs") list')
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(f'"{key}" must be a non-empty list')
    if all(isinstance(item, dict) for item in instances):
        frame = _object_items(instances, columns, key)
    elif all(isinstance(item, list) for item in instances):
        frame = _list_rows(instances, columns, key)
    else:
        raise InvalidInput(f'"{key}" must be all feature objects or all lists of values')
    return conform_to_signature(frame, columns)


def _object_items(
    items: list[dict[str, Any]], columns: Sequence[Column] | None, key: str
) -> pd.DataFrame:
    """Feature objects: each value a scalar (one row), or a list of scalars (one row each).

    Same rows as get_predict_input's ``pd.DataFrame(item)`` per item (a scalar beside lists is
    repeated), built as one frame: a batch of 100 records costs one DataFrame, not 100.
    """
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"{key}[{index}]"
        if columns:
            item = _select(item, columns, where)
        lengths = {len(value) for value in item.values() if isinstance(value, list)}
        if len(lengths) > 1:
            raise InvalidInput(f"{where}: feature lists differ in length {sorted(lengths)}")
        for name, value in item.items():
            _check_scalars(value if isinstance(value, list) else [value], f"{where}[{name!r}]")
        if not lengths:
            rows.append(item)
            continue
        for position in range(lengths.pop()):
            rows.append({n: v[position] if isinstance(v, list) else v for n, v in item.items()})
    if not rows:
        raise InvalidInput(f'"{key}" holds no rows (every feature list is empty)')
    frame = pd.DataFrame.from_records(rows)
    # Signature order; an optional column no item sent stays absent, as MLflow expects.
    return frame[[n for n in _names(columns) if n in frame.columns]] if columns else frame


def _list_rows(rows: list[list[Any]], columns: Sequence[Column] | None, key: str) -> pd.DataFrame:
    names = _names(columns) or None
    width = len(names) if names else len(rows[0])
    for index, row in enumerate(rows):
        if len(row) != width:
            raise InvalidInput(f"{key}[{index}] has {len(row)} values, expected {width}")
        for position, value in enumerate(row):
            label = names[position] if names else position
            _check_scalars([value], f"{key}[{index}][{label!r}]")
    return pd.DataFrame(rows, columns=names)


def _check_scalars(values: list[Any], where: str) -> None:
    for value in values:
        if not (value is None or isinstance(value, _SCALARS)):
            raise InvalidInput(f"{where} holds a non-scalar value {value!r}")


def _select(named: dict[str, Any], columns: Sequence[Column], where: str) -> dict[str, Any]:
    """The signature's columns in its order; inputs beyond it are dropped (MLflow ignores extra
    columns too), unless one is missing: then the message names both, a typo being likely."""
    missing = [c.name for c in columns if c.required and c.name not in named]
    if missing:
        known = set(_names(columns))
        unknown = [name for name in named if name not in known]
        extra = f"; unknown feature(s) {unknown}" if unknown else ""
        raise InvalidInput(
            f"{where} lacks feature(s) {missing}{extra} (the model signature's inputs: "
            f"{_names(columns)})"
        )
    return {c.name: named[c.name] for c in columns if c.name in named}


def v2_request_to_frame(request: InferRequest, columns: Sequence[Column] | None) -> pd.DataFrame:
    """v2 tensors: one 2-D input [N, F] in signature order, or one [N] / [N, 1] input per column."""
    inputs = request.inputs
    if not inputs:
        raise InvalidInput('"inputs" must hold at least one tensor')
    try:
        arrays = [(tensor.name, tensor.as_numpy()) for tensor in inputs]
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"input tensor data does not match its shape/datatype: {exc}") from exc
    if len(arrays) == 1 and arrays[0][1].ndim == 2:
        return conform_to_signature(_matrix(*arrays[0], columns), columns)
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
    if columns:
        # Like v1 feature objects: inputs beyond the signature (an entity key sent for the
        # monitor's skew check) reach the payload log, not the model.
        frame = _select(frame, columns, '"inputs"')
    return conform_to_signature(pd.DataFrame(frame), columns)


def _matrix(name: str, matrix: np.ndarray, columns: Sequence[Column] | None) -> pd.DataFrame:
    names = _names(columns)
    if names and matrix.shape[1] != len(names):
        raise InvalidInput(
            f"input {name!r} has {matrix.shape[1]} columns, the model signature has "
            f"{len(names)}: {names}"
        )
    return pd.DataFrame(matrix, columns=names or None)


def conform_to_signature(frame: pd.DataFrame, columns: Sequence[Column] | None) -> pd.DataFrame:
    """Cast each numeric signature column to its declared dtype, or raise naming the column.

    Allowed: any widening MLflow allows; **float64 → float32**, the documented narrowing every
    KServe user relies on: a JSON number is a double, and KServe itself narrows the JSON data of
    an ``FP32`` tensor with ``np.array(data, dtype=np.float32)`` (``InferInput.as_numpy``); so a
    v1 number or an ``FP64`` tensor gets the same float32 an ``FP32`` tensor would (values beyond
    float32's range are refused, not turned into inf); and other numeric casts only where every
    value survives them exactly (ints to float32 up to 2**24, integral floats to ints, int64 to
    int32 in range). Strings, booleans and objects for a numeric column are refused.
    Non-numeric signature columns are left to MLflow's own enforcement.
    """
    for column in columns or ():
        if column.dtype is not None and column.name in frame.columns:
            frame[column.name] = _conform_column(column, frame[column.name])
    return frame


def _conform_column(column: Column, values: pd.Series) -> pd.Series:
    target = column.dtype
    assert target is not None
    if values.dtype == object:
        # As MLflow's _enforce_mlflow_datatype: let pandas find a numeric dtype first.
        values = values.infer_objects()
        if values.dtype == object and values.isna().all():
            values = values.astype(np.float64)
    if values.dtype.kind not in "iuf":
        bad = next((v for v in values if not _is_number(v)), values.iloc[0])
        raise InvalidInput(
            f"input {column.name!r} must be a number for the model signature ({target}), "
            f"got {type(bad).__name__} {bad!r}"
        )
    if values.dtype == target:
        return values
    with np.errstate(over="ignore", invalid="ignore"):
        cast = values.to_numpy().astype(target)
    source = values.to_numpy()
    if source.dtype.kind == "f" and target.kind == "f":
        overflow = np.isinf(cast) & np.isfinite(source)
        if overflow.any():
            raise InvalidInput(
                f"input {column.name!r} holds {source[overflow][0].item()!r}, beyond the range of "
                f"the model signature's {target}"
            )
    elif not _exact(source, cast, target):
        lost = source[_inexact_mask(source, cast, target)][0]
        shown = "a null" if pd.isna(lost) else repr(lost.item())
        raise InvalidInput(
            f"input {column.name!r} holds {shown}, which the model signature's {target} "
            "cannot represent exactly"
        )
    return pd.Series(cast, index=values.index, name=values.name)


def _is_number(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    return value is None or isinstance(value, (int, float, np.integer, np.floating))


def _inexact_mask(source: np.ndarray, cast: np.ndarray, target: np.dtype[Any]) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        if target.kind in "iu":
            info = np.iinfo(target)
            if source.dtype.kind == "f":
                in_range = np.isfinite(source) & (source >= info.min) & (source <= info.max)
            else:
                in_range = (source >= info.min) & (source <= info.max)
            return ~in_range | (cast.astype(source.dtype) != source)
        # int → float: the value must come back unchanged.
        return cast.astype(source.dtype) != source


def _exact(source: np.ndarray, cast: np.ndarray, target: np.dtype[Any]) -> bool:
    return not bool(_inexact_mask(source, cast, target).any())


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
