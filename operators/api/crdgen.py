"""Generate the CustomResourceDefinitions from the pydantic models.

The models are the one source of truth; `crds/` (and the copies kustomize and Helm need) are
written from here by `kubeloop crds` and a test proves the committed files match.

Kubernetes wants a *structural* OpenAPI v3 schema: every node typed, no $ref, no anyOf for
optionality, no `additionalProperties` beside `properties`, OpenAPI-3.0 style exclusive bounds.
pydantic emits JSON Schema 2020-12, so we inline and translate.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema, to_jsonable_python

from operators.api.common import CATEGORY, GROUP, VERSION, PrinterColumn, ResourceKind
from operators.api.kinds import ALL_KINDS

# Where the generated CRDs live: the canonical folder plus the copies that kustomize (which
# cannot load files outside its root) and Helm (which installs its chart's crds/) need.
CRD_DIRS = ("crds", "manifests/crd/bases", "helm/kubeloop/crds")
_DROP_KEYS = {"title", "$defs", "discriminator"}


class _DefaultsFromFactories(GenerateJsonSchema):
    """Also emit defaults of `default_factory` fields, so the API server applies them."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        factory = schema.get("default_factory")
        if factory is None:
            return super().default_schema(schema)
        json_schema = self.generate_inner(schema["schema"])
        value = factory()  # type: ignore[call-arg]
        # A nested model defaults to {}: the API server then fills in its own fields' defaults.
        json_schema["default"] = {} if isinstance(value, BaseModel) else to_jsonable_python(value)
        return json_schema


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _structural({**target, **extra}, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:
            merged = {**branches[0], **{k: v for k, v in node.items() if k != "anyOf"}}
            if merged.get("default", ...) is None:
                merged.pop("default")
            return _structural(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _structural(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = _json_type(out["enum"][0])
    if "properties" in out:
        out.pop("additionalProperties", None)
        out.setdefault("type", "object")
    return out


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _mark_conditions(schema: dict[str, Any]) -> None:
    """conditions is a list-map keyed by type, exactly as metav1.Condition lists are."""
    conditions = schema.get("properties", {}).get("conditions")
    if conditions:
        conditions["x-kubernetes-list-type"] = "map"
        conditions["x-kubernetes-list-map-keys"] = ["type"]


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, schema_generator=_DefaultsFromFactories)
    return _structural(raw, raw.get("$defs", {}))


def _printer_column(column: PrinterColumn) -> dict[str, Any]:
    return {
        "name": column.name,
        "type": column.type,
        "jsonPath": column.json_path,
        **({"description": column.description} if column.description else {}),
        **({"priority": column.priority} if column.priority else {}),
    }


def _openapi_schema(kind: ResourceKind) -> dict[str, Any]:
    spec_schema = model_schema(kind.spec_model)
    spec_schema["description"] = f"Desired state of the {kind.kind}."
    status_schema = model_schema(kind.status_model)
    status_schema["description"] = f"Observed state of the {kind.kind}, written by its operator."
    _mark_conditions(status_schema)
    return {
        "type": "object",
        "description": (kind.spec_model.__doc__ or kind.kind).strip(),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }


def build_crd(kind: ResourceKind) -> dict[str, Any]:
    version = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": [_printer_column(c) for c in kind.printer_columns],
        "schema": {"openAPIV3Schema": _openapi_schema(kind)},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {
                "app.kubernetes.io/name": "kubeloop",
                "app.kubernetes.io/part-of": "kubeloop",
            },
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": kind.short_names,
                "categories": [CATEGORY],
            },
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": [version],
        },
    }


def render(crd: dict[str, Any]) -> str:
    header = "# Generated by `kubeloop crds` from operators/api. Do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=100)


def crd_file_name(kind: ResourceKind) -> str:
    return f"{GROUP}_{kind.plural}.yaml"


def generated_files() -> dict[str, str]:
    """file name -> YAML text, for every kind."""
    return {crd_file_name(kind): render(build_crd(kind)) for kind in ALL_KINDS}


def write_crds(root: Path) -> list[Path]:
    written = []
    for folder in CRD_DIRS:
        target = root / folder
        target.mkdir(parents=True, exist_ok=True)
        for name, text in generated_files().items():
            path = target / name
            path.write_text(text)
            written.append(path)
    return written


def stale_files(root: Path) -> list[str]:
    """Paths whose committed content differs from what the models generate now."""
    stale = []
    for folder in CRD_DIRS:
        for name, text in generated_files().items():
            path = root / folder / name
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(root)))
    return stale
