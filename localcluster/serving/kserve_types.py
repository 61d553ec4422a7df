"""An InferenceService body read against KServe's own API types, as its API server reads it.

The ``kserve`` package (0.20, the version ``scripts/kind-up.sh`` installs) ships the OpenAPI
models of KServe's CRDs (``kserve.V1beta1InferenceServiceSpec`` …), and its Kubernetes fields
are the ``kubernetes`` package's models (``V1ResourceRequirements`` …). Each model's
``attribute_map`` names its JSON fields and ``openapi_types`` their types; its constructor
refuses a required field left out (``ValueError: Invalid value for `model_format`, must not be
`None```). On a cluster the API server drops a field the CRD's schema does not know (and
``kubectl --validate=strict`` refuses it) and refuses a missing required one, so a field that
is not in these types would silently do nothing there: the local controller and the contract
tests (``tests/contract/``) refuse both, naming the field.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
}


def _model(type_name: str) -> Any:
    """The kserve model named ``type_name``, else the Kubernetes one (imported on first use:
    importing kserve takes seconds)."""
    kserve_models = importlib.import_module("kserve.models")
    found = getattr(kserve_models, type_name, None)
    if found is None:
        found = getattr(importlib.import_module("kubernetes.client"), type_name, None)
    return found


def problems(value: Any, type_name: str, path: str) -> list[str]:
    """What KServe's API would refuse in ``value`` read as ``type_name``: unknown fields,
    missing required ones and values of the wrong JSON type, each with its path."""
    if value is None:
        return []
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{path}: must be a list"]
        inner = type_name[5:-1]
        return [p for i, item in enumerate(value) for p in problems(item, inner, f"{path}[{i}]")]
    if type_name.startswith("dict("):
        if not isinstance(value, Mapping):
            return [f"{path}: must be an object"]
        inner = type_name[5:-1].split(", ", 1)[1]
        return [p for k, item in value.items() for p in problems(item, inner, f"{path}.{k}")]
    if type_name in _PRIMITIVES:
        wanted = _PRIMITIVES[type_name]
        if not isinstance(value, wanted) or (type_name == "int" and isinstance(value, bool)):
            return [f"{path}: must be {type_name}, got {type(value).__name__}"]
        return []
    model = _model(type_name)
    if model is None:  # "object": anything goes, as in KServe's schema
        return []
    if not isinstance(value, Mapping):
        return [f"{path}: must be an object ({type_name})"]
    by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
    found = [f"{path}.{key}: unknown field" for key in value if key not in by_json]
    for key, item in value.items():
        if key in by_json:
            found += problems(item, model.openapi_types[by_json[key]], f"{path}.{key}")
    kwargs = {by_json[key]: item for key, item in value.items() if key in by_json}
    try:
        model(**kwargs)
    except ValueError as error:  # the generated setters: a required field is None
        found.append(f"{path}: {error}")
    return found


def inference_service_problems(obj: Mapping[str, Any]) -> list[str]:
    """``spec`` and ``metadata`` of an InferenceService against KServe's v1beta1 types (the
    status is the controller's to write)."""
    found = problems(obj.get("metadata") or {}, "V1ObjectMeta", "metadata")
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return [*found, "spec: required"]
    return found + problems(spec, "V1beta1InferenceServiceSpec", "spec")
