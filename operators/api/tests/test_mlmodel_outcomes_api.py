"""The outcome fields of the MLModel API: primaryMetric, maxLatencyRatio, the optional
disagreement limit, retrain triggers, status.quality and the Quality printer column."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from operators.api import KINDS_BY_NAME
from operators.api.crdgen import build_crd
from operators.api.mlmodel import MLModelSpec, MLModelStatus
from operators.validation import check_spec

MLMODEL = KINDS_BY_NAME["MLModel"]
BASE = {"model": {"name": "m", "version": "2"}}


def crd() -> dict:
    return build_crd(MLMODEL)["spec"]["versions"][0]


def spec(**extra: object) -> dict:
    return {**BASE, **extra}


def test_outcome_defaults() -> None:
    parsed = MLModelSpec.model_validate(
        spec(rollout={"analysis": {"primaryMetric": {"name": "auc"}}})
    )
    metric = parsed.primary_metric
    assert metric is not None and (metric.margin, metric.min_labeled, metric.alpha) == (
        0.02,
        500,
        0.05,
    )
    assert parsed.rollout.shadow.max_disagreement is None  # the gate decides what unset means
    assert parsed.rollout.analysis.max_latency_ratio is None
    plain = MLModelSpec.model_validate(spec(monitoring={"retrain": {"experiment": "e"}}))
    assert plain.monitoring is not None and plain.monitoring.retrain is not None
    assert plain.monitoring.retrain.triggers == ["drift"]  # what retraining always listened to


@pytest.mark.parametrize(
    "body, field",
    [
        ({"rollout": {"analysis": {"primaryMetric": {"name": "f1"}}}}, "primaryMetric.name"),
        ({"rollout": {"analysis": {"primaryMetric": {"name": "auc", "margin": 0}}}}, "margin"),
        ({"rollout": {"analysis": {"primaryMetric": {"name": "auc", "alpha": 0.7}}}}, "alpha"),
        ({"rollout": {"analysis": {"maxLatencyRatio": 0.5}}}, "maxLatencyRatio"),
        (
            {"monitoring": {"retrain": {"experiment": "e", "triggers": ["drift", "drift"]}}},
            "triggers",
        ),
        ({"monitoring": {"retrain": {"experiment": "e", "triggers": []}}}, "triggers"),
        ({"monitoring": {"retrain": {"experiment": "e", "triggers": ["labels"]}}}, "triggers"),
        (
            {"monitoring": {"retrain": {"experiment": "e", "triggers": ["degradation"]}}},
            "degradation needs rollout.analysis.primaryMetric",
        ),
        ({"monitoring": {"outcomes": {"labelMaturity": "8d"}}}, "labelMaturity"),
        ({"monitoring": {"outcomes": {"window": {"maxAge": "31d"}}}}, "window.maxAge"),
        ({"monitoring": {"outcomes": {"window": {"size": 5}}}}, "window.size"),
    ],
)
def test_bad_outcome_settings_name_the_field(body: dict, field: str) -> None:
    check = check_spec(MLMODEL, spec(**body))
    assert not check.valid and field in (check.message or ""), check.message


def test_degradation_trigger_with_a_metric_is_valid_in_model_and_crd() -> None:
    body = spec(
        rollout={"analysis": {"primaryMetric": {"name": "logLoss", "margin": 0.05}}},
        monitoring={"retrain": {"experiment": "e", "triggers": ["drift", "degradation"]}},
    )
    assert check_spec(MLMODEL, body).valid
    validator = jsonschema.Draft4Validator(crd()["schema"]["openAPIV3Schema"])
    doc = {"apiVersion": "kubeloop.io/v1alpha1", "kind": "MLModel", "metadata": {"name": "m"}}
    assert list(validator.iter_errors({**doc, "spec": body})) == []
    bad = spec(rollout={"analysis": {"primaryMetric": {"name": "f1"}}})
    assert list(validator.iter_errors({**doc, "spec": bad})) != []


def test_an_unquoted_on_key_is_why_the_field_is_called_triggers() -> None:
    # YAML 1.1 (PyYAML here, go-yaml v2 in kubectl) reads the key `on` as the boolean true.
    assert yaml.safe_load("on: [drift]") == {True: ["drift"]}
    assert yaml.safe_load("triggers: [drift]") == {"triggers": ["drift"]}


def test_the_quality_column_reads_the_stable_versions_primary_metric() -> None:
    columns = {c["name"]: c["jsonPath"] for c in crd()["additionalPrinterColumns"]}
    assert columns["Metric"] == ".status.stableQuality.metric"
    assert columns["Quality"] == ".status.stableQuality.value"
    status = MLModelStatus.model_validate(
        {
            "stableVersion": "3",
            "stableQuality": {"version": "3", "metric": "auc", "value": 0.81, "labeled": 900},
            "quality": [{"version": "3", "labeled": 900, "logLoss": {"value": 0.4}}],
        }
    )
    assert status.stable_quality is not None and status.stable_quality.value == 0.81
    assert status.to_k8s()["quality"][0]["logLoss"] == {"value": 0.4}
    assert "Degraded" in MLModelStatus.TRACKED_CONDITIONS
