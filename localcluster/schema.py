"""CRD rules and custom-resource validation against `openAPIV3Schema`.

Validation uses the `jsonschema` library (Draft 4, the dialect OpenAPI v3.0 schemas are based
on); the Kubernetes extensions are translated first: `nullable`, `x-kubernetes-int-or-string`,
`x-kubernetes-preserve-unknown-fields`. Pruning and defaulting are structural walks done here.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import jsonschema

from .errors import Cause

JSON_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
ROOT_KEEP = {"apiVersion", "kind", "metadata"}


def check_crd(crd: dict[str, Any]) -> list[Cause]:
    """The rules kube-apiserver enforces on a CRD before accepting it."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [Cause("spec", "Required value", "FieldValueRequired")]
    causes: list[Cause] = []
    group = spec.get("group")
    raw_names = spec.get("names")
    names: dict[str, Any] = raw_names if isinstance(raw_names, dict) else {}
    plural = names.get("plural")
    if not isinstance(group, str) or "." not in group:
        causes.append(
            Cause(
                "spec.group", f"Invalid value: {group!r}: should be a domain with at least one dot"
            )
        )
    for key in ("plural", "kind"):
        if not isinstance(names.get(key), str) or not names.get(key):
            causes.append(Cause(f"spec.names.{key}", "Required value", "FieldValueRequired"))
    if isinstance(plural, str) and plural != plural.lower():
        causes.append(Cause("spec.names.plural", f"Invalid value: {plural!r}: must be lowercase"))
    expected = f"{plural}.{group}"
    name = (crd.get("metadata") or {}).get("name")
    if name != expected:
        causes.append(
            Cause(
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            Cause(
                "spec.scope",
                f'Unsupported value: {spec.get("scope")!r}: supported values: "Cluster", "Namespaced"',
                "FieldValueNotSupported",
            )
        )
    causes.extend(_check_versions(spec.get("versions")))
    return causes


def _check_versions(versions: Any) -> list[Cause]:
    if not isinstance(versions, list) or not versions:
        return [
            Cause(
                "spec.versions",
                "Required value: must have exactly one version marked as storage version",
                "FieldValueRequired",
            )
        ]
    causes: list[Cause] = []
    if sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
        causes.append(
            Cause(
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    for index, version in enumerate(versions):
        where = f"spec.versions[{index}]"
        if not isinstance(version, dict) or not version.get("name"):
            causes.append(Cause(f"{where}.name", "Required value", "FieldValueRequired"))
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, dict):
            causes.append(
                Cause(
                    f"{where}.schema.openAPIV3Schema",
                    "Required value: schemas are required",
                    "FieldValueRequired",
                )
            )
            continue
        if schema.get("type") != "object":
            causes.append(
                Cause(
                    f"{where}.schema.openAPIV3Schema.type",
                    'Required value: must be "object" at the root',
                )
            )
        causes.extend(structural_problems(schema, f"{where}.schema.openAPIV3Schema"))
        for col_index, column in enumerate(version.get("additionalPrinterColumns") or []):
            if not isinstance(column, dict) or not column.get("name") or not column.get("jsonPath"):
                causes.append(
                    Cause(
                        f"{where}.additionalPrinterColumns[{col_index}]",
                        "Required value: name and jsonPath",
                        "FieldValueRequired",
                    )
                )
    return causes


def structural_problems(schema: Any, where: str) -> list[Cause]:
    """A structural schema specifies a type at every level (unless int-or-string/preserve)."""
    if not isinstance(schema, dict):
        return [Cause(where, "Invalid value: must be an object")]
    causes: list[Cause] = []
    typ = schema.get("type")
    exempt = schema.get("x-kubernetes-int-or-string") or schema.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if typ is None and not exempt:
        causes.append(
            Cause(
                f"{where}.type",
                "Required value: must not be empty for specified object fields",
                "FieldValueRequired",
            )
        )
    elif typ is not None and typ not in JSON_TYPES:
        causes.append(
            Cause(f"{where}.type", f"Unsupported value: {typ!r}", "FieldValueNotSupported")
        )
    if "properties" in schema and isinstance(schema.get("additionalProperties"), dict):
        causes.append(
            Cause(
                f"{where}.additionalProperties",
                "Forbidden: additionalProperties and properties are mutual exclusive",
                "FieldValueForbidden",
            )
        )
    for key, sub in (schema.get("properties") or {}).items():
        causes.extend(structural_problems(sub, f"{where}.properties[{key}]"))
    if isinstance(schema.get("items"), dict):
        causes.extend(structural_problems(schema["items"], f"{where}.items"))
    if isinstance(schema.get("additionalProperties"), dict):
        causes.extend(
            structural_problems(schema["additionalProperties"], f"{where}.additionalProperties")
        )
    return causes


def _to_json_schema(schema: dict[str, Any], root: bool = False) -> dict[str, Any]:
    """Translate Kubernetes OpenAPI extensions into plain JSON Schema (Draft 4)."""
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-") or key in (
            "nullable",
            "default",
            "example",
            "externalDocs",
            "format",
            "description",
        ):
            continue
        if key == "properties":
            props = {
                k: _to_json_schema(v) for k, v in value.items() if not (root and k == "metadata")
            }
            result[key] = props
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            result[key] = _to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            result[key] = [_to_json_schema(v) for v in value]
        else:
            result[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
        result.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    return result


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(_to_json_schema(json.loads(schema_json), root=True))


def _path_text(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _cause_for(error: jsonschema.ValidationError) -> Cause:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else ""
        return Cause(_path_text([*path, missing]), "Required value", "FieldValueRequired")
    field = _path_text(path) or "<root>"
    shown = json.dumps(error.instance) if not isinstance(error.instance, dict | list) else "..."
    if error.validator == "enum":
        allowed = ", ".join(json.dumps(v) for v in error.validator_value)
        return Cause(
            field,
            f"Unsupported value: {shown}: supported values: {allowed}",
            "FieldValueNotSupported",
        )
    if error.validator == "type":
        wanted = error.validator_value
        if isinstance(wanted, list):
            wanted = wanted[0]
        return Cause(field, f"Invalid value: {shown}: {field} in body must be of type {wanted}")
    return Cause(field, f"Invalid value: {shown}: {field} in body {_describe(error)}")


def _describe(error: jsonschema.ValidationError) -> str:
    limit = error.validator_value
    return {
        "pattern": f"should match '{limit}'",
        "minimum": f"should be greater than or equal to {limit}",
        "maximum": f"should be less than or equal to {limit}",
        "minLength": f"should be at least {limit} chars long",
        "maxLength": f"may not be longer than {limit}",
        "minItems": f"should have at least {limit} items",
        "maxItems": f"must have at most {limit} items",
        "minProperties": f"should have at least {limit} properties",
        "maxProperties": f"must have at most {limit} properties",
        "multipleOf": f"should be a multiple of {limit}",
        "uniqueItems": "shouldn't contain duplicates",
    }.get(str(error.validator), error.message)


def validate_custom(obj: dict[str, Any], schema: dict[str, Any]) -> list[Cause]:
    """Every schema violation as a cause naming its field."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    body = {k: v for k, v in obj.items() if k != "metadata"}
    errors = sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    return [_cause_for(e) for e in errors]


def duplicate_list_items(obj: Any, schema: dict[str, Any], path: str = "") -> list[Cause]:
    """Items repeated in a list of `x-kubernetes-list-type: set`, and items whose
    `x-kubernetes-list-map-keys` repeat in a list of type `map`: one cause per repeated value,
    at its second appearance, as kube-apiserver's `listtype.ValidateListSetsAndMaps` reports
    them (apiextensions-apiserver, pkg/apiserver/schema/listtype/validation.go)."""
    causes: list[Cause] = []
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if isinstance(sub, dict) and (path or key != "metadata"):  # metadata: not ours
                causes += duplicate_list_items(value, sub, _join(path, key))
    elif isinstance(obj, list):
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            causes += _repeated(path, obj, [json.dumps(item) for item in obj])
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            identities = [
                {k: item[k] for k in keys if k in item} if isinstance(item, dict) else {}
                for item in obj
            ]
            causes += _repeated(path, identities, [_go_map(key) for key in identities])
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(obj):
                causes += duplicate_list_items(item, schema["items"], f"{path}[{index}]")
    return causes


def _repeated(path: str, identities: list[Any], shown: list[str]) -> list[Cause]:
    seen: dict[str, int] = {}
    causes = []
    for index, identity in enumerate(identities):
        key = json.dumps(identity, sort_keys=True)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 2:
            message = f"Duplicate value: {shown[index]}"
            causes.append(Cause(f"{path}[{index}]", message, "FieldValueDuplicate"))
    return causes


def _go_map(key: dict[str, Any]) -> str:
    """How Go prints the map[string]interface{} that kube-apiserver reports for a map key."""
    items = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in key.items())
    return f"map[string]interface {{}}{{{items}}}"


def prune(obj: Any, schema: dict[str, Any], path: str = "", root: bool = False) -> list[str]:
    """Drop fields the schema does not declare, in place; returns their paths."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        if isinstance(obj, dict) and "properties" in schema:
            dropped: list[str] = []
            for key, sub in schema["properties"].items():
                if key in obj:
                    dropped += prune(obj[key], sub, _join(path, key))
            return dropped
        return []
    dropped = []
    if isinstance(obj, dict) and (schema.get("type") == "object" or "properties" in schema):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key in list(obj.keys()):
            if root and key in ROOT_KEEP:
                continue
            if props is not None and key in props:
                dropped += prune(obj[key], props[key], _join(path, key))
            elif isinstance(extra, dict):
                dropped += prune(obj[key], extra, _join(path, key))
            elif extra is True:
                continue
            else:
                del obj[key]
                dropped.append(_join(path, key))
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            dropped += prune(item, schema["items"], f"{path}[{index}]")
    return dropped


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def apply_defaults(obj: Any, schema: dict[str, Any]) -> None:
    """Set `default` values for absent properties of objects that exist, in place."""
    if isinstance(obj, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                apply_defaults(obj[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in obj.items():
                if key not in (schema.get("properties") or {}):
                    apply_defaults(value, extra)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(item, schema["items"])
