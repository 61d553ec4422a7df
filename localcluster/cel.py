"""CEL validation rules (`x-kubernetes-validations`) of custom resources, via `cel-python`.

kube-apiserver compiles every rule of a CRD when the CRD is written (a rule that does not
compile rejects the CRD) and evaluates them on every create and update of a custom resource,
after pruning and defaulting, with `self` bound to the value at the rule's schema node and
`oldSelf` to the old value there. A rule whose node is absent is skipped; a transition rule
(one naming `oldSelf`) is skipped on create and where no old value correlates (objects by
property, maps by key, `x-kubernetes-list-type: map` lists by their keys). Like 1.32 with
validation ratcheting, a rule without `oldSelf` is skipped where the value is unchanged.

The Kubernetes list library (`isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf`) and
the cheap part of the strings library are registered as functions; `url`, `quantity`, `ip`,
`cidr` and `format` are not. cel-python has no type checker, so "compilation" catches syntax
errors and calls to unknown functions, not type errors.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import celpy
import lark
from celpy import celtypes

from .errors import Cause

VALIDATIONS = "x-kubernetes-validations"
REASON_TYPES = {
    "FieldValueInvalid": "FieldValueInvalid",
    "FieldValueForbidden": "FieldValueForbidden",
    "FieldValueRequired": "FieldValueRequired",
    "FieldValueDuplicate": "FieldValueDuplicate",
}
OLD_SELF = re.compile(r"\boldSelf\b")
# Functions and macros CEL itself provides (cel-python implements them); anything else a rule
# calls must be one of ours, or the rule does not compile.
BUILTIN_FUNCTIONS = {
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "has",
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "duration",
    "timestamp",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
}


# ---- the Kubernetes extension library ---------------------------------------------------------


def _is_sorted(items: Any) -> celtypes.BoolType:
    values = list(items)
    return celtypes.BoolType(all(a <= b for a, b in zip(values, values[1:], strict=False)))


def _sum(items: Any) -> Any:
    values = list(items)
    if not values:
        return celtypes.IntType(0)
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def _min(items: Any) -> Any:
    values = list(items)
    if not values:
        raise ValueError("min called on an empty list")
    return min(values)


def _max(items: Any) -> Any:
    values = list(items)
    if not values:
        raise ValueError("max called on an empty list")
    return max(values)


def _index_of(target: Any, item: Any) -> celtypes.IntType:
    if isinstance(target, str):
        return celtypes.IntType(str(target).find(str(item)))
    for index, value in enumerate(target):
        if value == item:
            return celtypes.IntType(index)
    return celtypes.IntType(-1)


def _last_index_of(target: Any, item: Any) -> celtypes.IntType:
    if isinstance(target, str):
        return celtypes.IntType(str(target).rfind(str(item)))
    found = -1
    for index, value in enumerate(target):
        if value == item:
            found = index
    return celtypes.IntType(found)


def _split(text: Any, separator: Any) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(p) for p in str(text).split(str(separator))])


def _join(items: Any, separator: Any = "") -> celtypes.StringType:
    return celtypes.StringType(str(separator).join(str(v) for v in items))


def _substring(text: Any, start: Any, end: Any = None) -> celtypes.StringType:
    value = str(text)
    return celtypes.StringType(value[int(start) :] if end is None else value[int(start) : int(end)])


EXTENSIONS: dict[str, Callable[..., Any]] = {
    "isSorted": _is_sorted,
    "sum": _sum,
    "min": _min,
    "max": _max,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "lowerAscii": lambda s: celtypes.StringType(str(s).lower()),
    "upperAscii": lambda s: celtypes.StringType(str(s).upper()),
    "trim": lambda s: celtypes.StringType(str(s).strip()),
    "replace": lambda s, old, new: celtypes.StringType(str(s).replace(str(old), str(new))),
    "charAt": lambda s, i: celtypes.StringType(str(s)[int(i) : int(i) + 1]),
    "split": _split,
    "join": _join,
    "substring": _substring,
}
KNOWN_FUNCTIONS = BUILTIN_FUNCTIONS | set(EXTENSIONS)


# ---- compiling --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledRule:
    rule: str
    message: str
    message_expression: Any  # a cel-python runner or None
    field_path: str
    reason: str
    program: Any  # a cel-python runner
    transition: bool


@dataclass(frozen=True)
class CompileProblem:
    where: str  # field path of the rule inside the CRD
    rule: str
    error: str


class RuleSet:
    """The compiled rules of one openAPIV3Schema, keyed by their schema node."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.by_node: dict[int, list[CompiledRule]] = {}
        self.problems: list[CompileProblem] = []
        self._environment = celpy.Environment()
        self._compile_node(schema, "")
        self.empty = not self.by_node

    def _compile_node(self, node: Any, where: str) -> None:
        if not isinstance(node, dict):
            return
        compiled: list[CompiledRule] = []
        for index, raw in enumerate(node.get(VALIDATIONS) or []):
            rule_where = f"{where}{VALIDATIONS}[{index}]"
            rule = self._compile_rule(raw, rule_where)
            if rule is not None:
                compiled.append(rule)
        if compiled:
            self.by_node[id(node)] = compiled
        for key, sub in (node.get("properties") or {}).items():
            self._compile_node(sub, f"{where}properties[{key}].")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                self._compile_node(node[key], f"{where}{key}.")

    def _compile_rule(self, raw: Any, where: str) -> CompiledRule | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("rule"), str) or not raw["rule"]:
            self.problems.append(CompileProblem(f"{where}.rule", "", "Required value"))
            return None
        text = raw["rule"]
        program = self._program(text, f"{where}.rule")
        message_expression = None
        if isinstance(raw.get("messageExpression"), str) and raw["messageExpression"]:
            message_expression = self._program(
                raw["messageExpression"], f"{where}.messageExpression"
            )
        reason = raw.get("reason") or "FieldValueInvalid"
        if reason not in REASON_TYPES:
            self.problems.append(
                CompileProblem(f"{where}.reason", text, f"unsupported reason {reason!r}")
            )
        if program is None:
            return None
        return CompiledRule(
            rule=text,
            message=str(raw.get("message") or ""),
            message_expression=message_expression,
            field_path=str(raw.get("fieldPath") or ""),
            reason=REASON_TYPES.get(reason, "FieldValueInvalid"),
            program=program,
            transition=bool(OLD_SELF.search(text)),
        )

    def _program(self, text: str, where: str) -> Any:
        try:
            ast = self._environment.compile(text)
        except Exception as error:  # cel-python raises parser errors of several classes
            self.problems.append(CompileProblem(where, text, _syntax_error(error)))
            return None
        unknown = sorted(_called_functions(ast) - KNOWN_FUNCTIONS)
        if unknown:
            names = ", ".join(unknown)
            self.problems.append(
                CompileProblem(where, text, f"undeclared reference to function(s): {names}")
            )
            return None
        return self._environment.program(ast, functions=EXTENSIONS)

    def rules_at(self, node: dict[str, Any]) -> list[CompiledRule]:
        return self.by_node.get(id(node), [])


def _syntax_error(error: Exception) -> str:
    """cel-python's message is the source with a caret; say where, as cel-go does."""
    line, column = getattr(error, "line", None), getattr(error, "column", None)
    if line is None or column is None:
        return " ".join(str(error).split())
    return f"ERROR: <input>:{line}:{column}: Syntax error"


def _called_functions(ast: lark.Tree) -> set[str]:
    names: set[str] = set()
    for tree in ast.iter_subtrees():
        if tree.data == "member_dot_arg" and len(tree.children) >= 2:
            token = tree.children[1]
        elif tree.data == "ident_arg" and tree.children:
            token = tree.children[0]
        else:
            continue
        if isinstance(token, lark.Token):
            names.add(str(token.value))
    return names


@functools.lru_cache(maxsize=256)
def rules_for(schema_json: str) -> RuleSet:
    """Compiled once per distinct schema (so once per CRD version), then reused."""
    return RuleSet(json.loads(schema_json))


# Registry schemas are long-lived dicts, so one lookup by identity spares serializing the
# schema on every write; the entry keeps the dict alive so its id cannot be reused.
_BY_IDENTITY: dict[int, tuple[dict[str, Any], RuleSet | None]] = {}


def _rules_of(schema: dict[str, Any]) -> RuleSet | None:
    entry = _BY_IDENTITY.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    text = json.dumps(schema, sort_keys=True)
    rules = rules_for(text) if VALIDATIONS in text else None
    if rules is not None and rules.empty:
        rules = None
    if len(_BY_IDENTITY) > 1024:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[id(schema)] = (schema, rules)
    return rules


def compile_problems(crd: dict[str, Any]) -> list[Cause]:
    """The rules of a CRD that do not compile, as causes naming each rule (CRD admission)."""
    causes: list[Cause] = []
    for index, version in enumerate((crd.get("spec") or {}).get("versions") or []):
        schema = ((version or {}).get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, dict) or VALIDATIONS not in json.dumps(schema):
            continue
        rules = rules_for(json.dumps(schema, sort_keys=True))
        prefix = f"spec.versions[{index}].schema.openAPIV3Schema."
        for problem in rules.problems:
            shown = json.dumps(problem.rule)
            causes.append(
                Cause(
                    prefix + problem.where,
                    f"Invalid value: {shown}: compilation failed: {problem.error}",
                )
            )
    return causes


# ---- evaluating -------------------------------------------------------------------------------


@dataclass
class Node:
    """One value in the object with its schema node, path and correlated old value."""

    schema: dict[str, Any]
    value: Any
    path: str
    old: Any
    has_old: bool


def evaluate(
    obj: dict[str, Any], old: dict[str, Any] | None, schema: dict[str, Any]
) -> list[Cause]:
    """Every failing rule of `obj` as a cause, the way kube-apiserver words it."""
    rules = _rules_of(schema)
    if rules is None:
        return []
    body = {k: v for k, v in obj.items() if k != "metadata"}
    old_body = {k: v for k, v in (old or {}).items() if k != "metadata"}
    causes: list[Cause] = []
    for node in _walk(Node(rules.schema, body, "", old_body, old is not None)):
        for rule in rules.rules_at(node.schema):
            cause = _check(rule, node)
            if cause is not None:
                causes.append(cause)
    return causes


def _walk(node: Node) -> Iterator[Node]:
    yield node
    schema, value = node.schema, node.value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub_value in value.items():
            sub_schema = props.get(key) if key in props else extra
            if not isinstance(sub_schema, dict):
                continue
            has_old = node.has_old and isinstance(node.old, dict) and key in node.old
            old = node.old.get(key) if has_old else None
            path = f"{node.path}.{key}" if node.path else key
            yield from _walk(Node(sub_schema, sub_value, path, old, has_old))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        old_by_key = _old_list_items(schema, node)
        for index, item in enumerate(value):
            key = _list_key(schema, item)
            has_old = key is not None and key in old_by_key
            old = old_by_key.get(key) if key is not None else None
            yield from _walk(Node(schema["items"], item, f"{node.path}[{index}]", old, has_old))


def _list_key(schema: dict[str, Any], item: Any) -> str | None:
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") != "map" or not keys or not isinstance(item, dict):
        return None
    return json.dumps([item.get(k) for k in keys])


def _old_list_items(schema: dict[str, Any], node: Node) -> dict[str, Any]:
    if not node.has_old or not isinstance(node.old, list):
        return {}
    found = {}
    for item in node.old:
        key = _list_key(schema, item)
        if key is not None:
            found[key] = item
    return found


def _check(rule: CompiledRule, node: Node) -> Cause | None:
    if rule.transition and not node.has_old:
        return None
    if not rule.transition and node.has_old and node.old == node.value:
        return None  # validation ratcheting: an unchanged value is not re-judged
    activation = {"self": celpy.json_to_cel(node.value)}
    if rule.transition:
        activation["oldSelf"] = celpy.json_to_cel(node.old)
    path = _field_path(node.path, rule.field_path)
    shown = json.dumps(_type_name(node.schema, node.value))
    try:
        result = rule.program.evaluate(activation)
    except Exception as error:  # evaluation errors (no such key, bad index, ...) reject too
        return Cause(path, f"Invalid value: {shown}: rule evaluation error: {error}")
    if isinstance(result, celpy.CELEvalError):
        return Cause(path, f"Invalid value: {shown}: rule evaluation error: {result.args[0]}")
    if isinstance(result, celtypes.BoolType) and bool(result):
        return None
    if not isinstance(result, celtypes.BoolType):
        return Cause(path, f"Invalid value: {shown}: rule evaluation error: must return a bool")
    message = _message(rule, activation)
    if rule.reason == "FieldValueForbidden":
        return Cause(path, f"Forbidden: {message}", rule.reason)
    if rule.reason == "FieldValueRequired":
        return Cause(path, f"Required value: {message}", rule.reason)
    if rule.reason == "FieldValueDuplicate":
        return Cause(path, f"Duplicate value: {shown}", rule.reason)
    return Cause(path, f"Invalid value: {shown}: {message}", rule.reason)


def _message(rule: CompiledRule, activation: dict[str, Any]) -> str:
    if rule.message_expression is not None:
        try:
            text = rule.message_expression.evaluate(activation)
        except Exception:  # a failing messageExpression falls back to the message
            text = None
        if isinstance(text, str) and text.strip():
            return str(text)
    return rule.message or f"failed rule: {rule.rule.strip()}"


def _field_path(path: str, field_path: str) -> str:
    if not field_path:
        return path or "<nil>"
    suffix = field_path if field_path.startswith(("[", ".")) else f".{field_path}"
    return f"{path}{suffix}" if path else suffix.lstrip(".")


def _type_name(schema: dict[str, Any], value: Any) -> str:
    declared = schema.get("type")
    if isinstance(declared, str):
        return declared
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number"
    )
