"""``spec.rollout.assignment``: request-level by default; a key with header/entity, only then;
the CRD carries the same rule as a CEL validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from operators.api.crdgen import build_crd
from operators.api.mlmodel import MLMODEL, Assignment, Rollout


def test_default_is_request_level() -> None:
    assert Rollout().assignment == Assignment(by="request", key=None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"by": "header"}, "required with by: header"),
        ({"by": "entity"}, "required with by: entity"),
        ({"key": "x-user-id"}, "only with by: header or entity"),
        ({"by": "cookie", "key": "sid"}, "by"),
        ({"by": "header", "key": "x user"}, "key"),
    ],
)
def test_invalid_assignments_name_the_field(raw: dict, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Assignment.model_validate(raw)


def test_valid_assignments() -> None:
    assert Assignment.model_validate({"by": "header", "key": "x-user-id"}).key == "x-user-id"
    assert Assignment.model_validate({"by": "entity", "key": "user_id"}).by == "entity"


def test_crd_validates_the_key_rule() -> None:
    crd = build_crd(MLMODEL)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rollout = schema["properties"]["spec"]["properties"]["rollout"]["properties"]
    rules = rollout["assignment"]["x-kubernetes-validations"]
    assert [r["rule"] for r in rules] == ["self.by == 'request' ? !has(self.key) : has(self.key)"]
