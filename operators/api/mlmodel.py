"""MLModel: one registered model served by KServe, promoted by a gated shadow/canary ramp."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from contracts.drift import DEFAULT_DETECTOR, DETECTOR_NAMES, DETECTORS_WITHOUT_P_VALUE
from contracts.quality import Metric
from operators.api.common import (
    AGE_COLUMN,
    K8S_NAME_PATTERN,
    PHASE_COLUMN,
    REASON_COLUMN,
    ApiModel,
    Duration,
    PrinterColumn,
    ResourceKind,
    StatusBase,
    parse_duration,
)

Percent = Annotated[int, Field(ge=1, le=100)]


class ModelRef(ApiModel):
    """Which MLflow model version to serve: exactly one of version, alias, follow."""

    name: str = Field(min_length=1, description="MLflow registered model name.")
    version: str | None = Field(default=None, pattern=r"^[0-9]+$")
    alias: str | None = Field(default=None, min_length=1)
    follow: Literal["latest-passing"] | None = Field(
        default=None, description="Serve the newest version whose evaluation passed."
    )

    @model_validator(mode="after")
    def _exactly_one_selector(self) -> ModelRef:
        chosen = [n for n in ("version", "alias", "follow") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError(
                f"model: set exactly one of version, alias, follow (got {chosen or 'none'})"
            )
        return self


class ServingResources(ApiModel):
    cpu: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    memory: str | None = Field(default=None, pattern=r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$")


class FeatureServing(ApiModel):
    """Serve from Feast: requests carry the FeatureView's join key (and any request-time
    features); a KServe transformer fills in the FeatureView's features from its online store
    (the same definitions the training set was built from), so the model gets the columns it
    was trained on. The served features reach the prediction log, and the training-serving
    skew check runs against the FeatureView's offline store unless skewCheck is false."""

    feature_view: str = Field(
        pattern=K8S_NAME_PATTERN,
        description="FeatureView (same namespace, one join key) whose online store fills requests.",
    )
    features: list[str] = Field(
        default_factory=list, max_length=1024, description="Features to fill; empty: all of them."
    )
    defaults: dict[str, float] = Field(
        default_factory=dict,
        max_length=1024,
        description="Value served for a numeric feature when the entity is not in the online "
        "store (or its value is null or expired); unset: 0 (false for booleans, '' for "
        "strings). Such rows are answered, never refused, and counted "
        "(kubeloop_feature_serving_missing_entities_total).",
    )
    skew_check: bool = Field(
        default=True,
        description="Run the training-serving skew check (monitoring.skew's defaults) when "
        "monitoring.skew is unset.",
    )

    @model_validator(mode="after")
    def _defaults_are_features(self) -> FeatureServing:
        unknown = sorted(set(self.defaults) - set(self.features)) if self.features else []
        if unknown:
            raise ValueError(f"features.defaults: {unknown} are not in features {self.features}")
        return self


class Serving(ApiModel):
    runtime: str | None = Field(default=None, description="KServe ServingRuntime; auto if unset.")
    model_format: str = Field(default="mlflow")
    resources: ServingResources | None = None
    min_replicas: int = Field(default=1, ge=0, le=100)
    features: FeatureServing | None = Field(
        default=None, description="Fill requests from a FeatureView's online store (Feast)."
    )


# The shadow gate's disagreement limit when the spec sets none and no primary metric judges
# the candidate on outcomes (the behaviour before outcome gates existed).
DEFAULT_MAX_DISAGREEMENT = 0.05


class Shadow(ApiModel):
    duration: Duration = Field(default="10m", description="Minimum time in shadow.")
    mirror_percent: Percent = 100
    min_requests: int = Field(default=100, ge=1)
    max_disagreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "Share of paired requests whose scores may differ by more than tolerance. Unset: "
            "0.05 without analysis.primaryMetric; with one, disagreement is not judged (a "
            "retrain is expected to disagree with the version it replaces)."
        ),
    )
    tolerance: float = Field(
        default=0.1, ge=0, le=1, description="Score difference that counts as disagreement."
    )


class PrimaryMetric(ApiModel):
    """The outcome the candidate is judged on once labels arrive (monitor feedback API).

    Shadow compares candidate and stable on the same requests (paired); canary compares them
    on concurrently served requests. A step passes when the candidate is non-inferior within
    `margin` on at least `minLabeled` labeled requests, fails when it is significantly worse,
    and is inconclusive otherwise (an always-valid confidence sequence at level `alpha`, so
    judging every interval does not inflate the error rates; see docs/outcomes.md).
    """

    name: Metric = Field(
        description="auc and accuracy: higher is better; logLoss: lower is better."
    )
    margin: float = Field(
        default=0.02,
        gt=0,
        le=1,
        description=(
            "Non-inferiority margin in the metric's units: how much worse than stable a "
            "candidate may be and still pass; also how far below its offline validation "
            "figure the stable version may fall before it is Degraded."
        ),
    )
    min_labeled: int = Field(
        default=500,
        ge=10,
        le=10_000_000,
        description="Labeled requests (pairs in shadow, candidate requests in canary) a pass "
        "needs; also what the Degraded check needs on the stable version.",
    )
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="Error rate of the sequential tests: a candidate as good as stable is "
        "rolled back by the metric in at most this share of rollouts, and a stable version "
        "that holds its validation figure (within margin) is called Degraded with at most "
        "this probability over its whole time as stable.",
    )


class Analysis(ApiModel):
    interval: Duration = "1m"
    min_requests: int = Field(default=50, ge=1)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_latency_p99_ms: float = Field(default=500, gt=0)
    max_latency_ratio: float | None = Field(
        default=None,
        gt=1,
        le=100,
        description="Canary: the candidate's p99 latency may be at most this multiple of "
        "stable's in the same interval. Unset: only maxLatencyP99Ms applies.",
    )
    primary_metric: PrimaryMetric | None = Field(
        default=None,
        description="Judge shadow and canary on outcomes (labels) as well as the guardrails.",
    )
    threshold: int = Field(default=2, ge=1, description="Failed checks before rollback.")
    significance: float = Field(
        default=0.05, gt=0, lt=1, description="Level of the test against stable's error rate."
    )
    ready_timeout: Duration = Field(
        default="10m",
        description="A candidate whose InferenceService is not Ready this long after it "
        "entered shadow is rolled back (Failed when autoRollback is off).",
    )


class Assignment(ApiModel):
    """How the canary split assigns requests to versions (``spec.rollout.assignment``)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.by == 'request' ? !has(self.key) : has(self.key)",
                    "message": "key is required with by: header or entity, and only then",
                }
            ]
        }
    }

    by: Literal["request", "header", "entity"] = Field(
        default="request",
        description=(
            "request: each request drawn at random by the weights. header / entity: by a hash "
            "of the request header or the request input (entity key) named in key, so one "
            "user sees one version within a step (and stays on the candidate as it grows)."
        ),
    )
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="The header name (by: header) or request input name (by: entity).",
    )

    @model_validator(mode="after")
    def _key_with_by(self) -> Assignment:
        if self.by == "request" and self.key is not None:
            raise ValueError("assignment.key: only with by: header or entity")
        if self.by != "request" and self.key is None:
            raise ValueError(f"assignment.key: required with by: {self.by}")
        return self


class Rollout(ApiModel):
    shadow: Shadow = Field(default_factory=Shadow)
    steps: list[Percent] = Field(
        default_factory=lambda: [1, 10, 50, 100],
        min_length=1,
        max_length=20,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(s, self.indexOf(s) == self.lastIndexOf(s)) && self.isSorted()",
                    "message": "steps must be strictly increasing",
                },
                {"rule": "self[size(self) - 1] == 100", "message": "the last step must be 100"},
            ]
        },
    )
    analysis: Analysis = Field(default_factory=Analysis)
    assignment: Assignment = Field(default_factory=Assignment)
    auto_rollback: bool = True
    require_approval: bool = Field(
        default=False,
        description=(
            "Wait for the kubeloop.io/approve annotation before canary: the candidate's version "
            "number approves only that candidate; true approves whatever waits (a retrain "
            "too); retrain or an RFC 3339 timestamp approve only a retrain, never a canary."
        ),
    )

    @field_validator("steps")
    @classmethod
    def _steps_increase_to_100(cls, steps: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError(f"must be strictly increasing, got {steps}")
        if steps[-1] != 100:
            raise ValueError(f"the last step must be 100, got {steps}")
        return steps


# The detector names are the contract's (the monitor's registry provides the same set).
DetectorName = StrEnum(  # type: ignore[misc]
    "DetectorName", {name.upper().replace("-", "_"): name for name in DETECTOR_NAMES}
)


class DriftWindow(ApiModel):
    size: int = Field(default=500, ge=10, le=1_000_000)
    max_age: Duration = "1h"


class DriftAlarm(ApiModel):
    """When the per-window checks become an alarm (Drift condition, retrain request).

    Only windows that share no rows and are at least one monitor drift interval apart count as
    evidence. `consecutive`: that many evidence windows in a row must fail the per-window test
    (pValue). `expectedRunTime` or `falseAlarmsPerDay`: the declared false-alarm budget, kept by
    a CUSUM on the windows' p-values calibrated to it (docs/architecture.md, drift). Given
    together with `consecutive`, both must hold.
    """

    consecutive: int = Field(
        default=1, ge=1, le=1000, description="Failing evidence windows in a row."
    )
    expected_run_time: Duration | None = Field(
        default=None,
        description="Expected time between false alarms on data that has not drifted (7d).",
    )
    false_alarms_per_day: float | None = Field(
        default=None, gt=0, le=86400, description="The same budget as a rate: 86400 s / rate."
    )

    @model_validator(mode="after")
    def _one_budget(self) -> DriftAlarm:
        if self.expected_run_time is not None and self.false_alarms_per_day is not None:
            raise ValueError("set expectedRunTime or falseAlarmsPerDay, not both")
        if self.expected_run_time is not None and parse_duration(self.expected_run_time) <= (
            timedelta(0)
        ):
            raise ValueError("expectedRunTime must be longer than 0s")
        return self

    def expected_run_time_seconds(self) -> float | None:
        """The declared budget in seconds (None: no sequential rule, `consecutive` only)."""
        if self.false_alarms_per_day is not None:
            return 86400.0 / self.false_alarms_per_day
        if self.expected_run_time is not None:
            return parse_duration(self.expected_run_time).total_seconds()
        return None


class Drift(ApiModel):
    detector: DetectorName = Field(
        default=DetectorName(DEFAULT_DETECTOR),
        description="ks, chi2, tabular, psi, mmd, prediction are Apache-2.0; alibi-* are BSL.",
    )
    p_value: float = Field(
        default=0.05, gt=0, lt=1, description="Per-window test level (after correction)."
    )
    window: DriftWindow = Field(default_factory=DriftWindow)
    features: list[str] = Field(default_factory=list, description="Empty means all.")
    alarm: DriftAlarm | None = Field(
        default=None,
        description=(
            "Unset: every checked window decides alone, so pValue is the false-alarm rate "
            "per check. Set: a declared false-alarm budget (see DriftAlarm)."
        ),
    )

    @model_validator(mode="after")
    def _budget_needs_p_values(self) -> Drift:
        budget = self.alarm is not None and self.alarm.expected_run_time_seconds() is not None
        if budget and str(self.detector) in DETECTORS_WITHOUT_P_VALUE:
            raise ValueError(
                f"alarm.expectedRunTime/falseAlarmsPerDay need a detector with p-values; "
                f"{self.detector} decides on a distance (use alarm.consecutive)"
            )
        return self


RetrainTrigger = Literal["drift", "degradation"]


def _drift_only() -> list[RetrainTrigger]:
    """What requested a retrain before degradation could."""
    return ["drift"]


class Retrain(ApiModel):
    """Request a retrain on drift or degradation: annotate the Experiment (retrain-requested)."""

    experiment: str = Field(
        pattern=K8S_NAME_PATTERN, description="Experiment (same namespace) that retrains."
    )
    cooldown: Duration = Field(default="6h", description="Minimum time between two requests.")
    max_per_day: int = Field(
        default=3, ge=0, le=100, description="Requests in any rolling 24h; 0 turns retraining off."
    )
    # Not `on:` as issue 12 sketched it: YAML 1.1 parsers (go-yaml v2 in kubectl, PyYAML) read
    # an unquoted `on` key as the boolean true, so the field would reach the API server as
    # "true" and be pruned (kubernetes/kubernetes#34146, ghodss/yaml#77).
    triggers: list[RetrainTrigger] = Field(
        default_factory=_drift_only,
        min_length=1,
        max_length=2,
        description=(
            "What requests a retrain: drift (the stable version's drift alarm), degradation "
            "(its Degraded condition; needs rollout.analysis.primaryMetric), or both."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @field_validator("triggers")
    @classmethod
    def _each_trigger_once(cls, triggers: list[str]) -> list[str]:
        if len(set(triggers)) != len(triggers):
            raise ValueError(f"each trigger at most once, got {triggers}")
        return triggers

    require_approval: bool = Field(
        default=False,
        description=(
            "Wait for the kubeloop.io/approve annotation on the MLModel, given after the last "
            "request: the value retrain (or an RFC 3339 timestamp, the time it was given) "
            "approves only a retrain; true approves whatever waits; a version number approves "
            "only that canary candidate, never a retrain. Change the value to approve again."
        ),
    )


class Skew(ApiModel):
    """Training-serving skew: the served features of each entity against the values the
    FeatureView's offline store held for it at serving time. Requests must carry the
    FeatureView's join key as an input."""

    feature_view: str = Field(
        pattern=K8S_NAME_PATTERN,
        description="FeatureView (same namespace) whose offline store the model was trained on.",
    )
    max_mismatch_fraction: float = Field(
        default=0.01, ge=0, lt=1, description="Share of disagreeing rows that counts as skew."
    )
    max_rows: int = Field(default=1000, ge=10, le=100_000, description="Served rows compared.")


class OutcomesWindow(ApiModel):
    size: int = Field(
        default=5000, ge=10, le=200_000, description="Labeled requests kept per version."
    )
    max_age: Duration = Field(default="24h", description="Labeled requests older than this go.")

    @field_validator("max_age")
    @classmethod
    def _at_most_30_days(cls, value: str) -> str:
        return _at_most(value, timedelta(days=30))


class Outcomes(ApiModel):
    """How labels sent to the monitor's feedback API are joined to the predictions it logged,
    and the window each version's quality (status.quality) is computed over."""

    label_maturity: Duration = Field(
        default="10m",
        description="A label whose prediction has not arrived waits this long, then counts "
        "as an orphan.",
    )
    window: OutcomesWindow = Field(default_factory=OutcomesWindow)
    entity_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Request input naming the entity: labels may then name the entity and "
        "servedAt instead of the request id.",
    )

    @field_validator("label_maturity")
    @classmethod
    def _at_most_7_days(cls, value: str) -> str:
        return _at_most(value, timedelta(days=7))


def _at_most(value: str, limit: timedelta) -> str:
    """Durations the CRD schema cannot bound: the monitor's limit, checked here (InvalidSpec)."""
    if parse_duration(value) > limit:
        raise ValueError(f"at most {limit.days}d, got {value}")
    return value


class Monitoring(ApiModel):
    drift: Drift | None = None
    skew: Skew | None = None
    retrain: Retrain | None = None
    outcomes: Outcomes | None = Field(
        default=None, description="Label join and quality windows; unset: the monitor's defaults."
    )


class MLModelSpec(ApiModel):
    """Serve an MLflow model with KServe; promote new versions through shadow and canary."""

    model: ModelRef
    serving: Serving = Field(default_factory=Serving)
    rollout: Rollout = Field(default_factory=Rollout)
    monitoring: Monitoring | None = None

    @model_validator(mode="after")
    def _degradation_needs_a_metric(self) -> MLModelSpec:
        retrain = self.monitoring.retrain if self.monitoring else None
        if (
            retrain is not None
            and "degradation" in retrain.triggers
            and self.rollout.analysis.primary_metric is None
        ):
            raise ValueError(
                "monitoring.retrain.triggers: degradation needs "
                "rollout.analysis.primaryMetric (the metric that degrades)"
            )
        return self

    @property
    def primary_metric(self) -> PrimaryMetric | None:
        return self.rollout.analysis.primary_metric

    @property
    def skew(self) -> Skew | None:
        """monitoring.skew; else, serving from Feast, the skew check against the same
        FeatureView with its defaults (serving.features.skewCheck turns that off)."""
        if self.monitoring is not None and self.monitoring.skew is not None:
            return self.monitoring.skew
        features = self.serving.features
        if features is not None and features.skew_check:
            return Skew(feature_view=features.feature_view)
        return None


class RolloutPhase(StrEnum):
    PENDING = "Pending"
    SHADOW = "Shadow"
    CANARY = "Canary"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


class Traffic(ApiModel):
    stable: int = Field(default=100, ge=0, le=100)
    candidate: int = Field(default=0, ge=0, le=100)
    mirror: int = Field(default=0, ge=0, le=100)


class AnalysisFigures(ApiModel):
    at: datetime | None = None
    outcome: str | None = None
    requests: int | None = None
    errors: int | None = None
    error_rate: float | None = None
    stable_error_rate: float | None = None
    latency_p99_ms: float | None = None
    paired: int | None = None
    disagreement: float | None = None
    stable_latency_p99_ms: float | None = None
    latency_ratio: float | None = None
    metric: str | None = Field(default=None, description="The primary metric judged.")
    labeled: int | None = Field(
        default=None, description="Labeled pairs (shadow) or candidate requests (canary)."
    )
    estimate: float | None = Field(
        default=None, description="Candidate minus stable, oriented so higher is better."
    )
    low: float | None = Field(default=None, description="Confidence sequence, lower bound.")
    high: float | None = Field(default=None, description="Confidence sequence, upper bound.")
    message: str | None = None


class MetricInterval(ApiModel):
    """A quality figure with its 95% interval (None where undefined: one class, no labels)."""

    value: float | None = None
    low: float | None = None
    high: float | None = None


class QualityWindow(ApiModel):
    start: datetime | None = Field(default=None, description="Oldest labeled request.")
    end: datetime | None = Field(default=None, description="Newest labeled request.")


class VersionQualityStatus(ApiModel):
    """One version's quality on the labels joined to its served predictions (the monitor)."""

    version: str
    role: str | None = None
    labeled: int = 0
    positives: int | None = None
    auc: MetricInterval | None = None
    accuracy: MetricInterval | None = None
    log_loss: MetricInterval | None = None
    brier: MetricInterval | None = None
    ece: MetricInterval | None = None
    window: QualityWindow | None = None
    label_delay_p50_seconds: float | None = None


class SequentialQuality(ApiModel):
    """The Degraded test's running state: the stable version's primary metric pooled over
    disjoint monitor windows (inverse-variance weights) and its always-valid interval at
    `primaryMetric.alpha` (docs/outcomes.md, "Degraded")."""

    windows: int = Field(default=0, description="Disjoint windows pooled so far.")
    labeled: int = Field(default=0, description="Labeled requests in those windows.")
    through: float | None = Field(
        default=None, description="Served time (epoch s) of the newest request pooled."
    )
    estimate: float | None = None
    variance: float | None = None
    low: float | None = Field(default=None, description="Always-valid lower bound.")
    high: float | None = Field(default=None, description="Always-valid upper bound.")


class StableQuality(ApiModel):
    """The stable version's primary metric (auc when none is set) and its offline validation
    figure: what the Quality printer column and the Degraded condition read."""

    version: str
    metric: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    labeled: int = 0
    validation: float | None = Field(
        default=None, description="The figure on the validation window at training (MLflow)."
    )
    sequential: SequentialQuality | None = Field(
        default=None, description="The Degraded test over this version's labeled windows."
    )


class DriftAlarmFigures(ApiModel):
    """The monitor's alarm rule at the last check (its drift view's ``alarm``): ``window``
    (each window decides), ``consecutive`` or ``cusum`` (monitoring.drift.alarm)."""

    rule: str | None = None
    window_drift: bool | None = Field(default=None, description="The last window's own verdict.")
    statistic: float | None = Field(default=None, description="CUSUM statistic.")
    threshold: float | None = Field(default=None, description="CUSUM alarm threshold.")
    expected_run_time_seconds: float | None = None
    consecutive: int | None = Field(default=None, description="Failing evidence windows in a row.")
    required_consecutive: int | None = None
    evidence_windows: int | None = Field(default=None, description="Windows counted so far.")


class DriftStatus(ApiModel):
    """The monitor's last drift check of the stable version."""

    version: str | None = Field(default=None, description="Model version that was checked.")
    detector: str | None = None
    p_values: dict[str, float] = Field(
        default_factory=dict, description="Per feature p-value of the last check."
    )
    is_drift: bool = False
    window: int | None = Field(default=None, description="Rows in the checked window.")
    checked_at: datetime | None = None
    report_url: str | None = Field(default=None, description="Absolute URL of the drift report.")
    alarm: DriftAlarmFigures | None = Field(
        default=None, description="How the last verdict was reached (the alarm rule's figures)."
    )
    prediction_baseline: str | None = Field(
        default=None,
        description="What the served scores were compared with: validationScores (saved at "
        "training) or firstServedWindow (fallback when the version has none).",
    )
    prediction_baseline_note: str | None = Field(
        default=None, description="Why the fallback baseline is used, when it is."
    )


class ApprovalSeen(ApiModel):
    """A kubeloop.io/approve value and when the operator first saw it (when it was given)."""

    value: str
    at: datetime


class SkewStatus(ApiModel):
    """The monitor's last skew check of the stable version."""

    is_skew: bool = False
    pairs: int | None = Field(default=None, description="Served rows paired with offline rows.")
    unmatched_served: int | None = Field(default=None, description="Served rows with no pair.")
    mismatch_fraction: dict[str, float] = Field(default_factory=dict)
    skewed_features: list[str] = Field(default_factory=list)
    checked_at: datetime | None = None
    message: str | None = None


class RetrainStatus(ApiModel):
    requested_at: datetime | None = Field(default=None, description="Time of the last request.")
    reason: str | None = Field(
        default=None, description="The drift or degradation alarm of the last request."
    )
    report_url: str | None = None
    version: str | None = Field(
        default=None, description="Stable version when the last request was made."
    )
    decision: str | None = Field(
        default=None,
        description=(
            "The last decision on an alarm: request, or outstanding / wait-cooldown / "
            "budget-exhausted / wait-approval / experiment-missing with why."
        ),
    )
    history: list[datetime] = Field(
        default_factory=list, description="Times of recent requests (cooldown, maxPerDay)."
    )
    approval_seen: ApprovalSeen | None = None


class Lineage(ApiModel):
    model_version: str | None = None
    feature_view_versions: dict[str, str] = Field(default_factory=dict)
    data_window: str | None = None
    mlflow_run_id: str | None = None
    code_version: str | None = None
    experiment: str | None = None
    trial: str | None = None
    drift_report: str | None = None


class MLModelStatus(StatusBase):
    TRACKED_CONDITIONS: ClassVar[tuple[str, ...]] = ("Ready", "Serving", "Drift", "Degraded")

    phase: RolloutPhase | None = None
    stable_version: str | None = None
    candidate_version: str | None = None
    traffic: Traffic | None = None
    step_index: int | None = Field(default=None, ge=0)
    failed_checks: int | None = Field(default=None, ge=0)
    iterations: int | None = Field(default=None, ge=0)
    phase_started_at: datetime | None = None
    url: str | None = None
    analysis: AnalysisFigures | None = None
    drift: DriftStatus | None = None
    skew: SkewStatus | None = None
    quality: list[VersionQualityStatus] = Field(
        default_factory=list, description="Per version in play, from the monitor's labels."
    )
    stable_quality: StableQuality | None = None
    last_retrain: RetrainStatus | None = None
    lineage: Lineage | None = None
    message: str | None = None


MLMODEL = ResourceKind(
    kind="MLModel",
    short_names=["mlm"],
    spec_model=MLModelSpec,
    status_model=MLModelStatus,
    printer_columns=[
        PHASE_COLUMN,
        PrinterColumn(name="Stable", type="string", json_path=".status.stableVersion"),
        PrinterColumn(name="Candidate", type="string", json_path=".status.candidateVersion"),
        PrinterColumn(name="Stable%", type="integer", json_path=".status.traffic.stable"),
        PrinterColumn(name="Canary%", type="integer", json_path=".status.traffic.candidate"),
        PrinterColumn(name="Mirror%", type="integer", json_path=".status.traffic.mirror"),
        PrinterColumn(name="Drift", type="boolean", json_path=".status.drift.isDrift"),
        # A column's JSONPath cannot look up the entry of status.quality whose version equals
        # status.stableVersion, nor pick the metric named in the spec: stableQuality holds it.
        PrinterColumn(name="Metric", type="string", json_path=".status.stableQuality.metric"),
        PrinterColumn(name="Quality", type="number", json_path=".status.stableQuality.value"),
        REASON_COLUMN,
        AGE_COLUMN,
    ],
)
