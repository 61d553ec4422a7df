"""Pure parsing: CloudEvents (binary or structured) → envelopes; payloads → features/scores.

Two tiers of bad input, because they must be handled differently:

* :class:`BadEvent` — the envelope is unusable (not a CloudEvent, unknown type, no id or
  version). The event is rejected with a 4xx and counted; nothing about it is recorded.
* :class:`PayloadProblem` — the envelope is fine but the inference payload is not (NaN,
  missing ``instances``, strings where numbers belong, too many rows). The request still
  counts for its version's traffic figures, but its features/scores never enter a window.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.monitor import cloudevents_spec as ce
from services.monitor.config import Limits

try:  # orjson is ~5x faster than json on these small bodies; json stays the fallback.
    import orjson

    _fast_loads: Callable[[bytes], Any] = orjson.loads
    # orjson refuses NaN, Infinity and numbers that overflow a double: what it parsed holds
    # finite numbers only, so their rows need no finiteness check.
    _FAST_IS_FINITE = True
except ImportError:  # pragma: no cover - orjson is in the lock
    _fast_loads = json.loads
    _FAST_IS_FINITE = False

KIND_REQUEST = "request"
KIND_RESPONSE = "response"
_KINDS = {ce.CE_TYPE_REQUEST: KIND_REQUEST, ce.CE_TYPE_RESPONSE: KIND_RESPONSE}
_MAX_NAME = 253
_MAX_ID = 256


class BadEvent(Exception):
    """The CloudEvent itself is unusable; ``reason`` is the counter label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class PayloadProblem(Exception):
    """The inference payload is unusable for windows; the event still counts as traffic."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(slots=True)
class Envelope:
    """One logged request or response, identified; ``data`` is raw bytes or parsed JSON."""

    kind: str
    event_id: str
    namespace: str
    model: str
    version: str
    role: str | None
    inference_service: str
    status: int | None
    latency_ms: float | None
    data: Any
    # Pairs stable with shadow: ``X-Request-Id`` from ``ce-metadata`` when the logger was
    # told to forward it (Istio mirrors it unchanged), else ``ce-id``.
    correlation_id: str = ""


@dataclass(slots=True)
class Features:
    """Finite feature rows of one request (rows with NaN/inf are dropped and reported)."""

    rows: np.ndarray  # shape (n, d), float64
    names: list[str] | None
    dropped_rows: int
    #: Per feature, how many rows held NaN/inf/null there (None: all finite). Counted before
    #: the rows are dropped, so the monitor can report per-feature null rates.
    null_counts: np.ndarray | None = None


@dataclass(slots=True)
class Scores:
    """One score per prediction; ``classes`` set when predictions are class ids."""

    scores: np.ndarray  # shape (n,), float64
    classes: np.ndarray | None  # shape (n,), int64


# --------------------------------------------------------------------------- envelopes


def envelope_from_binary(headers: Mapping[str, str], body: bytes) -> Envelope:
    """Binary mode: attributes are ``ce-*`` headers (case-insensitive mapping expected)."""

    return _envelope(headers.get, body, _BINARY_NAMES)


def envelope_from_structured(event: Any) -> Envelope:
    """Structured mode: one JSON object with attributes and ``data``/``data_base64``."""
    if not isinstance(event, dict):
        raise BadEvent("not_cloudevent", "a structured CloudEvent must be a JSON object")
    if "data_base64" in event:
        encoded = event["data_base64"]
        if not isinstance(encoded, str):
            raise BadEvent("wrong_type", "data_base64 must be a string")
        try:
            data: Any = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadEvent("invalid_base64", f"data_base64 is not base64: {exc}") from None
    else:
        data = event.get("data")
        if isinstance(data, str) and "json" in str(event.get("datacontenttype", "json")):
            data = data.encode()  # JSON sent as a string: parsed like a binary-mode body

    def attr(name: str) -> str | None:
        value = event.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, int | float):
            return str(value)
        # KServe's metadata/annotations extensions are JSON strings; accept objects too.
        if isinstance(value, dict | list):
            return json.dumps(value)
        raise BadEvent("wrong_type", f"attribute {name!r} has type {type(value).__name__}")

    return _envelope(attr, data, _STRUCTURED_NAMES)


def structured_events(body: bytes) -> list[Any]:
    """The events of a structured or batch body (a JSON object or a JSON array of them)."""
    parsed = decode_json(body, BadEvent)
    return parsed if isinstance(parsed, list) else [parsed]


class _Keys:
    """Where each attribute is found: ``ce-``-prefixed headers or plain JSON members."""

    def __init__(self, prefix: str) -> None:
        self.type = prefix + ce.ATTR_TYPE
        self.id = prefix + ce.ATTR_ID
        self.annotations = prefix + ce.ATTR_ANNOTATIONS
        self.metadata = prefix + ce.ATTR_METADATA
        self.isvc = prefix + ce.ATTR_INFERENCESERVICE
        self.version = prefix + ce.ATTR_VERSION
        self.model = prefix + ce.ATTR_MODEL
        self.namespace = prefix + ce.ATTR_NAMESPACE
        self.status = prefix + ce.ATTR_STATUS
        self.roles = tuple(prefix + name for name in ce.ROLE_ATTRS)
        self.latencies = tuple(prefix + name for name in ce.LATENCY_ATTRS)


_STRUCTURED_NAMES = _Keys("")
_BINARY_NAMES = _Keys(ce.BINARY_PREFIX)


def _envelope(get: Callable[[str], str | None], data: Any, keys: _Keys) -> Envelope:
    """``get`` reads one attribute by its key (a header in binary mode, a member otherwise)."""
    ce_type = get(keys.type)
    if ce_type is None:
        raise BadEvent("not_cloudevent", "missing CloudEvents attribute 'type' (ce-type)")
    kind = _KINDS.get(ce_type)
    if kind is None:
        raise BadEvent("unknown_type", f"ce-type {ce_type[:100]!r} is not an inference event")
    event_id = get(keys.id) or ""
    if not event_id or len(event_id) > _MAX_ID:
        raise BadEvent("missing_id", "ce-id must be a non-empty request id of ≤256 chars")
    # Most events carry neither (kubeloop's own attributes say it all): no call, no dict.
    raw = get(keys.annotations)
    annotations = _json_object(raw, "annotations") if raw else _NOTHING
    raw = get(keys.metadata)
    metadata = _json_object(raw, "metadata") if raw else _NOTHING
    isvc = get(keys.isvc) or ""
    version = get(keys.version) or _str_or_none(annotations.get(ce.ANNOTATION_VERSION))
    if not version:
        raise BadEvent(
            "missing_version",
            "no model version: send ce-kubeloopversion or annotation kubeloop.io/model-version",
        )
    model = get(keys.model) or _str_or_none(annotations.get(ce.ANNOTATION_MODEL))
    model = model or _model_from_isvc(isvc, version)
    if not model:
        raise BadEvent(
            "missing_model", "no model: send ce-kubeloopmodel or ce-inferenceservicename"
        )
    namespace = get(keys.namespace) or "default"
    if len(namespace) > _MAX_NAME or len(model) > _MAX_NAME or len(version) > _MAX_NAME:
        raise BadEvent("name_too_long", f"namespace, model and version are ≤{_MAX_NAME} chars")
    role_key, dashed_role_key = keys.roles
    role = get(role_key) or get(dashed_role_key)
    if role in ce.ROLES:
        pass  # the usual spelling: nothing to normalise
    elif role or metadata:
        role = _role(role or None, metadata)
    else:
        role = None
    status: int | None = None
    latency: float | None = None
    if kind == KIND_RESPONSE:
        status = _status(get(keys.status))
        latency_key, dashed_latency_key = keys.latencies
        latency = _latency(get(latency_key) or get(dashed_latency_key) or None)
    # Positional, in field order: keyword arguments cost more per event.
    return Envelope(
        kind,
        event_id,
        namespace,
        model,
        version,
        role,
        isvc,
        status,
        latency,
        data,
        (_request_id(metadata) if metadata else None) or event_id,
    )


#: What an absent ``annotations``/``metadata`` attribute reads as (never written to).
_NOTHING: dict[str, Any] = {}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _model_from_isvc(isvc: str, version: str) -> str:
    """Per-version InferenceServices are named ``<model>-<version>`` or ``<model>-v<version>``."""
    for suffix in (f"-v{version}", f"-{version}"):
        if isvc.endswith(suffix) and len(isvc) > len(suffix):
            return isvc[: -len(suffix)]
    return isvc


def _json_object(raw: str | None, name: str) -> dict[str, Any]:
    if not raw or raw == "{}":
        return {}
    try:
        value = _fast_loads(raw.encode())
    except ValueError:
        raise BadEvent("invalid_json", f"ce-{name} is not JSON") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadEvent("wrong_type", f"ce-{name} must be a JSON object")
    return value


def _role(role: str | None, metadata: dict[str, Any]) -> str | None:
    if role is None:
        for key, values in metadata.items():
            if key.lower() == ce.METADATA_ROLE_HEADER and isinstance(values, list) and values:
                role = str(values[0])
    if role is None:
        return None
    role = role.strip().lower()
    if role not in ce.ROLES:
        raise BadEvent("invalid_role", f"role {role[:40]!r} is not one of {list(ce.ROLES)}")
    return role


def _request_id(metadata: dict[str, Any]) -> str | None:
    if not metadata:
        return None
    for key, values in metadata.items():
        if key.lower() == ce.METADATA_REQUEST_ID_HEADER and isinstance(values, list) and values:
            return str(values[0])[:_MAX_ID] or None
    return None


def _status(raw: str | None) -> int:
    if raw is None:
        return 200  # KServe's logger only logs responses that were 200
    try:
        status = int(raw)
    except ValueError:
        raise BadEvent("invalid_status", f"ce-kubeloopstatus {raw[:20]!r} is no integer") from None
    if not 100 <= status <= 599:
        raise BadEvent("invalid_status", f"ce-kubeloopstatus {status} is no HTTP status")
    return status


def _latency(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        latency = float(raw)
    except ValueError:
        raise BadEvent("invalid_latency", f"latency {raw[:20]!r} is no number") from None
    if not math.isfinite(latency) or latency < 0:
        raise BadEvent("invalid_latency", f"latency {raw[:20]!r} must be finite and ≥ 0")
    return latency


# --------------------------------------------------------------------------- payloads


def decode_json(data: Any, error: type[BadEvent] | type[PayloadProblem]) -> Any:
    """Bytes → JSON; Python's ``json`` is the fallback because it reads NaN/Infinity."""
    return _decode(data, error)[0]


def _decode(data: Any, error: type[BadEvent] | type[PayloadProblem]) -> tuple[Any, bool]:
    """(:func:`decode_json`'s value, whether all its numbers are known to be finite)."""
    # type() first: an isinstance against a union is slow, and bytes is what events carry.
    if type(data) is not bytes and not isinstance(data, bytearray | memoryview):
        return data, False  # parsed already, maybe by json: NaN possible
    raw = bytes(data)
    try:
        return _fast_loads(raw), _FAST_IS_FINITE
    except ValueError:
        pass
    try:
        return json.loads(raw), False
    except (ValueError, UnicodeDecodeError):
        raise error("invalid_json", "payload is not valid JSON") from None


def request_features(data: Any, limits: Limits) -> Features:
    """Feature rows from a v1 ``instances``/``inputs`` or v2 ``inputs`` request payload."""
    body, finite = _decode(data, PayloadProblem)
    if not isinstance(body, dict):
        raise PayloadProblem("wrong_type", "request payload must be a JSON object")
    instances = body.get("instances")
    if instances is None and isinstance(body.get("inputs"), list):
        inputs = body["inputs"]
        if inputs and all(isinstance(item, dict) and "datatype" in item for item in inputs):
            return _finite_rows(*_v2_matrix(inputs, limits), limits)
        instances = inputs
    if instances is None:
        raise PayloadProblem("missing_field", 'request payload has no "instances" or "inputs"')
    if not isinstance(instances, list) or not instances:
        raise PayloadProblem("wrong_type", '"instances" must be a non-empty list')
    if len(instances) > limits.max_rows_per_event:
        raise PayloadProblem(
            "too_many_rows", f"{len(instances)} rows > {limits.max_rows_per_event}"
        )
    if isinstance(instances[0], dict):
        return _finite_rows(*_dict_matrix(instances), limits)
    fast = _plain_number_rows(instances)
    if fast is not None:
        return _finite_rows(fast, None, limits, finite)
    return _finite_rows(_numeric(instances, "instances"), None, limits)


_PLAIN = frozenset((float, int))


def _plain_number_rows(instances: list[Any]) -> np.ndarray | None:
    """The common case (equal-length lists of int/float) without numpy's type probing."""
    first = instances[0]
    if type(first) is not list or not first:
        return None
    width = len(first)
    for row in instances:
        # map(type, …) checks a row's values in C (no bytecode per value); bool is not int here.
        if type(row) is not list or len(row) != width or not _PLAIN.issuperset(map(type, row)):
            return None
    return np.array(instances, dtype=np.float64)


def response_scores(data: Any, limits: Limits) -> Scores:
    """Scores from a v1 ``predictions`` or v2 ``outputs`` response payload."""
    body = decode_json(data, PayloadProblem)
    if not isinstance(body, dict):
        raise PayloadProblem("wrong_type", "response payload must be a JSON object")
    if "predictions" in body:
        plain = _plain_float_scores(body["predictions"], limits)
        if plain is not None:
            return plain
        values = _numeric(body["predictions"], "predictions")
    elif isinstance(body.get("outputs"), list) and body["outputs"]:
        output = body["outputs"][0]
        if not isinstance(output, dict):
            raise PayloadProblem("wrong_type", "outputs[0] must be an object")
        values = _v2_tensor(output, "outputs[0]")
    else:
        raise PayloadProblem("missing_field", 'response payload has no "predictions" or "outputs"')
    if values.shape[0] > limits.max_rows_per_event:
        raise PayloadProblem("too_many_rows", f"{values.shape[0]} predictions > limit")
    if not np.isfinite(values).all():
        raise PayloadProblem("nan", "predictions contain NaN or infinity")
    return _scores_of(values)


def _plain_float_scores(predictions: Any, limits: Limits) -> Scores | None:
    """The common case (a flat list of float scores) without numpy's type probing."""
    if type(predictions) is not list or not predictions:
        return None
    if len(predictions) > limits.max_rows_per_event:
        return None  # the general path reports it
    for value in predictions:
        if type(value) is not float:
            return None
        if not math.isfinite(value):
            raise PayloadProblem("nan", "predictions contain NaN or infinity")
    return Scores(np.array(predictions, dtype=np.float64), None)


def _scores_of(values: np.ndarray) -> Scores:
    if values.ndim == 1:
        classes = values.astype(np.int64) if values.dtype.kind in "iub" else None
        return Scores(values.astype(np.float64), classes)
    if values.ndim != 2:
        raise PayloadProblem("unsupported_shape", f"predictions have {values.ndim} dimensions")
    width = values.shape[1]
    if width == 1:
        return _scores_of(values[:, 0])
    probabilities = values.astype(np.float64)
    if width == 2:  # binary classifier probabilities: the positive class is the score
        return Scores(probabilities[:, 1].copy(), None)
    return Scores(probabilities.max(axis=1), probabilities.argmax(axis=1).astype(np.int64))


def _numeric(values: Any, where: str) -> np.ndarray:
    if not isinstance(values, list) or not values:
        raise PayloadProblem("wrong_type", f'"{where}" must be a non-empty list')
    try:
        array = np.asarray(values)
    except ValueError:
        raise PayloadProblem("ragged", f'"{where}" rows have different lengths') from None
    kind = array.dtype.kind
    if kind == "O" and any(value is None for value in _flat(values)):
        array = _nulls_as_nan(values, where)
        kind = array.dtype.kind
    if kind == "O":
        raise PayloadProblem("wrong_type", f'"{where}" mixes types or has ragged rows')
    if kind not in "biuf":
        raise PayloadProblem("wrong_type", f'"{where}" must hold numbers, got {array.dtype}')
    return array


def _nulls_as_nan(values: Any, where: str) -> np.ndarray:
    """Numbers with JSON nulls read as NaN: a missing feature value is counted per feature
    (and its row dropped) like a NaN, instead of losing the whole event."""
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise PayloadProblem("null_value", f'"{where}" contains null') from None


def _flat(values: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for value in values:
        if isinstance(value, list):
            flat.extend(_flat(value))
        else:
            flat.append(value)
    return flat


def _dict_matrix(instances: list[Any]) -> tuple[np.ndarray, list[str]]:
    names = list(instances[0].keys())
    rows: list[list[Any]] = []
    for index, row in enumerate(instances):
        if not isinstance(row, dict) or row.keys() != instances[0].keys():
            raise PayloadProblem("missing_field", f"instances[{index}] has different features")
        rows.append([row[name] for name in names])
    return _numeric(rows, "instances"), names


def _v2_tensor(tensor: dict[str, Any], where: str) -> np.ndarray:
    if str(tensor.get("datatype", "")).upper() == "BYTES":
        raise PayloadProblem("wrong_type", f"{where} is BYTES; only numeric tensors are watched")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise PayloadProblem("missing_field", f"{where}.shape must be a list of sizes")
    array = _numeric(tensor.get("data"), f"{where}.data")
    if array.size != math.prod(shape):
        raise PayloadProblem("shape_mismatch", f"{where}.data has {array.size} values ≠ {shape}")
    return array.reshape(shape) if shape else array


def _v2_matrix(inputs: list[dict[str, Any]], limits: Limits) -> tuple[np.ndarray, list[str]]:
    columns: list[np.ndarray] = []
    names: list[str] = []
    for index, tensor in enumerate(inputs):
        array = _v2_tensor(tensor, f"inputs[{index}]")
        if array.ndim == 0 or array.ndim > 2:
            raise PayloadProblem("unsupported_shape", f"inputs[{index}] must be 1-D or 2-D")
        matrix = array.reshape(array.shape[0], -1)
        if columns and matrix.shape[0] != columns[0].shape[0]:
            raise PayloadProblem("shape_mismatch", f"inputs[{index}] has a different row count")
        width = matrix.shape[1]
        name = str(tensor.get("name", f"input-{index}"))
        names.extend([name] if width == 1 else [f"{name}[{j}]" for j in range(width)])
        columns.append(matrix)
    if columns[0].shape[0] > limits.max_rows_per_event:
        raise PayloadProblem("too_many_rows", f"{columns[0].shape[0]} rows > limit")
    return np.concatenate(columns, axis=1) if len(columns) > 1 else columns[0], names


def _finite_rows(
    matrix: np.ndarray, names: list[str] | None, limits: Limits, finite: bool = False
) -> Features:
    """The rows without NaN/inf (counted per feature); ``finite``: known to have none."""
    if matrix.ndim == 1:
        matrix = matrix.reshape(-1, 1)
    if matrix.ndim != 2:
        raise PayloadProblem("unsupported_shape", f"instances have {matrix.ndim} dimensions")
    if matrix.shape[1] > limits.max_features:
        raise PayloadProblem("too_many_features", f"{matrix.shape[1]} features > limit")
    if matrix.shape[1] == 0:
        raise PayloadProblem("missing_field", "instances have no features")
    rows = matrix.astype(np.float64, copy=False)
    # A NaN or an infinity anywhere makes the sum non-finite: one reduction instead of a
    # mask and its reduction per event (a sum that overflows takes the exact check below).
    if finite or math.isfinite(np.add.reduce(rows, axis=None)):
        return Features(rows, names, 0)
    finite_values = np.isfinite(rows)
    if finite_values.all():
        return Features(rows, names, 0)
    null_counts = (~finite_values).sum(axis=0)
    finite_rows = finite_values.all(axis=1)
    dropped = int(rows.shape[0] - finite_rows.sum())
    if dropped:
        rows = rows[finite_rows]
    return Features(rows=rows, names=names, dropped_rows=dropped, null_counts=null_counts)
