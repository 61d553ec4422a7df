"""The pydantic models are the single source of the CRDs; examples fit both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml

from operators.api import KINDS_BY_NAME
from operators.api.common import ConditionStatus, parse_duration, set_condition
from operators.api.crdgen import build_crd, stale_files
from operators.api.mlmodel import MLModelSpec
from operators.validation import check_spec

ROOT = Path(__file__).resolve().parents[3]
VALID = sorted((ROOT / "examples" / "resources").glob("*.yaml"))
INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))


def _crd_validator(kind: str) -> jsonschema.Draft4Validator:
    schema = build_crd(KINDS_BY_NAME[kind])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # OpenAPI v3.0 schemas use Draft-4 semantics (boolean exclusiveMinimum).
    return jsonschema.Draft4Validator(schema)


def test_committed_crds_match_the_models() -> None:
    assert stale_files(ROOT) == []


def test_generated_crd_is_structural() -> None:
    def walk(node: dict, path: str) -> None:
        assert "$ref" not in node and "anyOf" not in node, path
        if "properties" in node:
            assert node.get("type") == "object", path
            assert "additionalProperties" not in node, path
            for name, sub in node["properties"].items():
                walk(sub, f"{path}.{name}")
        elif "items" in node:
            walk(node["items"], f"{path}[]")
        elif not node.get("x-kubernetes-preserve-unknown-fields"):
            assert "type" in node, path

    for kind in KINDS_BY_NAME.values():
        walk(build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"], kind.kind)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_examples_validate_against_models_and_crds(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        check = check_spec(KINDS_BY_NAME[doc["kind"]], doc["spec"])
        assert check.valid, check.message
        errors = list(_crd_validator(doc["kind"]).iter_errors(doc))
        assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_examples_are_rejected_naming_the_field(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    check = check_spec(KINDS_BY_NAME[doc["kind"]], doc["spec"])
    assert not check.valid
    assert check.field and check.field.startswith("spec.")
    assert check.message and check.field in check.message


def test_random_split_is_rejected_by_the_crd_schema() -> None:
    doc = yaml.safe_load((ROOT / "examples/invalid/experiment-random-split.yaml").read_text())
    errors = list(_crd_validator("Experiment").iter_errors(doc))
    assert any(list(e.absolute_path) == ["spec", "split", "method"] for e in errors)


@pytest.mark.parametrize(
    "steps,ok",
    [
        ([1, 10, 50, 100], True),
        ([5, 100], True),
        ([10, 10, 100], False),
        ([50, 10, 100], False),
        ([1, 10, 50], False),
        ([0, 100], False),
        ([1, 101], False),
    ],
)
def test_rollout_steps_must_increase_to_100(steps: list[int], ok: bool) -> None:
    spec = {"model": {"name": "m", "version": "1"}, "rollout": {"steps": steps}}
    check = check_spec(KINDS_BY_NAME["MLModel"], spec)
    assert check.valid is ok, check.message
    if not ok:
        assert "spec.rollout.steps" in (check.message or "")


def test_out_of_range_steps_rejected_by_crd_schema() -> None:
    validator = _crd_validator("MLModel")
    doc = {
        "apiVersion": "kubeloop.io/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": "m"},
        "spec": {"model": {"name": "m", "version": "1"}, "rollout": {"steps": [0, 150]}},
    }
    paths = {tuple(e.absolute_path) for e in validator.iter_errors(doc)}
    assert ("spec", "rollout", "steps", 0) in paths and ("spec", "rollout", "steps", 1) in paths
    rules = build_crd(KINDS_BY_NAME["MLModel"])["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["spec"]["properties"]["rollout"]["properties"]["steps"]
    assert any("isSorted" in r["rule"] for r in rules["x-kubernetes-validations"])


def test_defaults_fill_in() -> None:
    spec = MLModelSpec.model_validate({"model": {"name": "m", "version": "2"}})
    assert spec.rollout.steps == [1, 10, 50, 100]
    assert spec.to_k8s()["rollout"]["analysis"]["maxErrorRate"] == 0.01


def test_printer_columns_show_what_a_person_wants() -> None:
    names = {
        k: [c["name"] for c in build_crd(v)["spec"]["versions"][0]["additionalPrinterColumns"]]
        for k, v in KINDS_BY_NAME.items()
    }
    assert {"Phase", "Stable", "Candidate", "Stable%", "Canary%", "Drift", "Age"} <= set(
        names["MLModel"]
    )
    assert {"Phase", "Best", "Registered", "Age"} <= set(names["Experiment"])
    assert {"Ready", "Version", "Rows", "Age"} <= set(names["FeatureView"])


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    with pytest.raises(ValueError, match="'1 hour'"):
        parse_duration("1 hour")


def test_condition_transition_time_moves_only_on_status_change() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = t0 + timedelta(minutes=5)
    conds = set_condition([], "Ready", "False", "A", "x", 1, now=t0)
    conds = set_condition(conds, "Ready", "False", "B", "y", 2, now=t1)
    assert conds[0].last_transition_time == t0 and conds[0].reason == "B"
    assert conds[0].observed_generation == 2
    conds = set_condition(conds, "Ready", ConditionStatus.TRUE, "Ok", "", 2, now=t1)
    assert conds[0].last_transition_time == t1 and len(conds) == 1


def test_every_drift_detector_is_selectable_from_an_mlmodel() -> None:
    from operators.api.mlmodel import DetectorName
    from services.monitor.drift import detector_names

    assert sorted(d.value for d in DetectorName) == sorted(detector_names())
