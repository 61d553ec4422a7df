"""MLflow model-version tags that carry a version's lineage, and the drift reference artifact.

Written by ``components/register_model`` when it registers a run's model (each tag only when
its value is non-empty); read by the MLModel operator (``operators/backends/registry.py``
resolves ``follow: latest-passing`` by ``EVALUATION``; ``operators/mlmodel`` copies the lineage
tags into ``status.lineage``) and by whoever inspects a version in MLflow. Every tag is
``kubeloop.io/<key>`` so it cannot collide with MLflow's own or a user's tags.

``EVAL_METRIC_PREFIX`` prefixes every metric ``components/evaluate`` logs on the training run
(``eval_<window>_<metric>``: ``eval_validation_auc``…); the MLModel operator reads a version's
offline validation figure from its run (``VALIDATION_METRICS``, by primary metric name) to
judge whether the served version has degraded (accuracy at the 0.5 threshold the monitor's
quality figures use).

``REFERENCE_ARTIFACT`` is where register_model uploads a run's training-feature sample (the
drift detector's reference), relative to the run's artifact root; the operator points the
monitor at it. ``SCORE_REFERENCE_ARTIFACT`` is where ``components/evaluate`` saves the model's
scores on the validation window (one ``SCORE_REFERENCE_COLUMN`` column): the prediction-drift
baseline of the version, tagged ``SCORE_REFERENCE`` on the version by register_model.

Champion/challenger (docs/architecture.md "Champion/challenger"): ``CHAMPION_ALIAS`` is the
registered-model alias the MLModel operator moves to the version it serves as stable (MLflow's
own aliases, the ``@champion`` of https://mlflow.org/docs/latest/ml/model-registry/);
``components/evaluate`` scores ``models:/<name>@champion`` next to the candidate. A version registered as passing carries the
two paired-bootstrap comparisons as JSON: ``VS_CHAMPION`` (absent when there was no champion
yet) and ``VS_BASELINE`` (the best heuristic baseline).
"""

from __future__ import annotations

from typing import Final

from contracts.kube import PREFIX

TAG_PREFIX: Final = PREFIX  # every tag below starts with it

FEATURE_VIEW_VERSIONS: Final = "kubeloop.io/feature-view-versions"  # JSON {view: version}
DATA_WINDOW: Final = "kubeloop.io/data-window"  # JSON {start, end} (ISO 8601)
CODE_VERSION: Final = "kubeloop.io/code-version"  # git:<sha> or kubeloop==<version>
KFP_RUN_ID: Final = "kubeloop.io/kfp-run-id"
KFP_RUN_NAME: Final = "kubeloop.io/kfp-run-name"
EXPERIMENT: Final = "kubeloop.io/experiment"
TRIAL: Final = "kubeloop.io/trial"
EVALUATION: Final = "kubeloop.io/evaluation"  # EVALUATION_PASSED when the objective was met
RETRAIN_REASON: Final = "kubeloop.io/retrain-reason"
DRIFT_REPORT: Final = "kubeloop.io/drift-report"  # URL of the drift report that caused it
RETRAIN_REQUESTED_AT: Final = "kubeloop.io/retrain-requested-at"
TRAINING_SET_ENGINE: Final = "kubeloop.io/training-set-engine"  # duckdb | spark (spec.engine)
REFERENCE: Final = "kubeloop.io/reference"  # runs:/ URI of REFERENCE_ARTIFACT
SCORE_REFERENCE: Final = "kubeloop.io/score-reference"  # runs:/ URI of SCORE_REFERENCE_ARTIFACT
FEATURE_COLUMNS: Final = "kubeloop.io/feature-columns"  # JSON list
LOGGED_MODEL_ID: Final = "kubeloop.io/logged-model-id"  # MLflow 3 logged model of the version
# JSON {reference, version?, metric, window, candidate, referenceValue, improvement, low, high,
# confidence, resamples, seed, minImprovement, passed} (components/evaluate Comparison).
VS_CHAMPION: Final = "kubeloop.io/vs-champion"
VS_BASELINE: Final = "kubeloop.io/vs-baseline"

# Registered-model alias on the version an MLModel serves as stable (its production model).
CHAMPION_ALIAS: Final = "champion"

EVALUATION_PASSED: Final = "passed"

EVAL_METRIC_PREFIX: Final = "eval_"
# MLModel primaryMetric name -> the run metric holding its figure on the validation window.
VALIDATION_METRICS: Final = {
    "auc": f"{EVAL_METRIC_PREFIX}validation_auc",
    "logLoss": f"{EVAL_METRIC_PREFIX}validation_logloss",
    "accuracy": f"{EVAL_METRIC_PREFIX}validation_accuracy",
}

REFERENCE_DIR: Final = "reference"
REFERENCE_FILE: Final = "features.parquet"
REFERENCE_ARTIFACT: Final = f"{REFERENCE_DIR}/{REFERENCE_FILE}"
SCORE_REFERENCE_FILE: Final = "validation_scores.parquet"
SCORE_REFERENCE_ARTIFACT: Final = f"{REFERENCE_DIR}/{SCORE_REFERENCE_FILE}"
SCORE_REFERENCE_COLUMN: Final = "validation_score"
