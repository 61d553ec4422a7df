"""Experiment: a point-in-time training set, time-based splits, a trial search, DDP training."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from operators.api.common import (
    AGE_COLUMN,
    ENGINE_DESCRIPTION,
    IDENTIFIER_PATTERN,
    K8S_NAME_PATTERN,
    PHASE_COLUMN,
    READY_COLUMN,
    REASON_COLUMN,
    ApiModel,
    Duration,
    Engine,
    PrinterColumn,
    ResourceKind,
    StatusBase,
    parse_duration,
)


class FeatureRef(ApiModel):
    feature_view: str = Field(pattern=K8S_NAME_PATTERN, description="FeatureView name.")
    names: list[str] = Field(
        default_factory=list,
        description="Features to use, each once; empty means all of them.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @field_validator("names")
    @classmethod
    def _each_name_once(cls, names: list[str]) -> list[str]:
        # The API server refuses a repeated name (list-type set); this says so to the
        # operator's own parse too, for objects stored before the schema said it.
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"each feature name at most once, repeated: {repeated}")
        return names


class PredictionLogLabels(ApiModel):
    """Train on the features exactly as served: the prediction log joined with the labels."""

    path: str = Field(
        min_length=1, description="Root of the prediction log (the monitor's prediction-log URI)."
    )
    model: str = Field(
        pattern=K8S_NAME_PATTERN, description="MLModel (this namespace) whose predictions to use."
    )
    request_id_field: str = Field(
        default="request_id",
        pattern=IDENTIFIER_PATTERN,
        description="Column of the label events holding the request id the prediction was "
        "logged under.",
    )
    row_field: str | None = Field(
        default=None,
        pattern=IDENTIFIER_PATTERN,
        description="Column holding the row within a multi-row call; default: row 0.",
    )


class Labels(ApiModel):
    source: str = Field(min_length=1, description="Path of the label events (Parquet).")
    timestamp_field: str = Field(pattern=IDENTIFIER_PATTERN)
    label_field: str = Field(pattern=IDENTIFIER_PATTERN)
    entity_keys: list[str] = Field(min_length=1)
    prediction_log: PredictionLogLabels | None = Field(
        default=None,
        description="Take the features from the prediction log (as served) instead of a "
        "point-in-time join of the FeatureViews; the features' names select the served columns.",
    )


class Split(ApiModel):
    """Time-based only: training data never comes from after validation or test data."""

    method: Literal["time"] = Field(
        default="time", description="Only time-based splits; random splits leak the future."
    )
    train_until: datetime | None = Field(
        default=None, description="End of training data; default: end - test - validation."
    )
    validation: Duration = Field(description="Length of the validation window.")
    test: Duration = Field(description="Length of the test window, after validation.")
    train_window: Duration | None = Field(
        default=None,
        description="Sliding training window, e.g. 7d: only labels in the last window before "
        "the training end are trained on, so a retrain after a shift learns the world as it "
        "is now. Default: all labels before the training end.",
    )
    recency_half_life: Duration | None = Field(
        default=None,
        description="Weight training rows by recency: a row this much older than the training "
        "end counts half as much (sample weights, mean 1). Default: equal weights.",
    )

    @model_validator(mode="after")
    def _positive_durations(self) -> Split:
        for field, value in (
            ("validation", self.validation),
            ("test", self.test),
            ("trainWindow", self.train_window),
            ("recencyHalfLife", self.recency_half_life),
        ):
            if value is not None and parse_duration(value) <= timedelta(0):
                raise ValueError(f"split.{field}: {value!r} must be a positive duration")
        return self


class Backend(StrEnum):
    AUTO = "auto"
    GLOO = "gloo"
    NCCL = "nccl"


class Resources(ApiModel):
    cpu: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    memory: str | None = Field(default=None, pattern=r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$")
    gpu: int | None = Field(default=None, ge=0, le=64)


class Trainer(ApiModel):
    module: str = Field(
        default="components.train_ddp.trainer",
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
        description="Python module run by torchrun.",
    )
    nproc_per_node: int = Field(default=1, ge=1, le=64)
    nodes: int = Field(default=1, ge=1, le=64)
    backend: Backend = Backend.AUTO
    epochs: int = Field(default=5, ge=1, le=10000)
    batch_size: int = Field(default=256, ge=1, description="Global batch size.")
    resources: Resources | None = None


class SearchAlgorithm(StrEnum):
    GRID = "grid"
    RANDOM = "random"


class ParameterType(StrEnum):
    FLOAT = "float"
    INT = "int"
    CATEGORICAL = "categorical"


class Scale(StrEnum):
    LINEAR = "linear"
    LOG = "log"


class SearchParameter(ApiModel):
    name: str = Field(pattern=IDENTIFIER_PATTERN)
    type: ParameterType = ParameterType.FLOAT
    values: list[float] | None = Field(default=None, description="Grid values (numeric).")
    choices: list[str] | None = Field(default=None, description="Categorical values.")
    min: float | None = None
    max: float | None = None
    scale: Scale = Scale.LINEAR

    @model_validator(mode="after")
    def _has_domain(self) -> SearchParameter:
        if self.type == ParameterType.CATEGORICAL:
            if not self.choices:
                raise ValueError(f"parameter {self.name}: categorical needs choices")
        elif not self.values and (self.min is None or self.max is None):
            raise ValueError(f"parameter {self.name}: give values, or min and max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"parameter {self.name}: min is greater than max")
        if self.scale == Scale.LOG and self.min is not None and self.min <= 0:
            raise ValueError(f"parameter {self.name}: log scale needs min > 0")
        return self


class Search(ApiModel):
    algorithm: SearchAlgorithm = SearchAlgorithm.GRID
    parameters: list[SearchParameter] = Field(default_factory=list)
    max_trials: int = Field(default=4, ge=1, le=1000)
    parallel_trials: int = Field(default=1, ge=1, le=100)
    seed: int = Field(default=0, ge=0)


class Goal(StrEnum):
    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


class Objective(ApiModel):
    metric: Literal["auc", "logloss", "ece"] = "auc"
    goal: Goal = Goal.MAXIMIZE
    threshold: float | None = Field(
        default=None, description="The best trial is registered only if it passes this."
    )
    min_improvement: float = Field(
        default=0.0,
        ge=0.0,
        description="Champion/challenger: how much better (in the metric's units, point "
        "estimate on the test window) the best trial must be than the champion (the version "
        "an MLModel serves as stable, alias `champion` of register.model) and than the best "
        "heuristic baseline; each improvement's paired bootstrap interval must also lie above "
        "zero. No champion yet: only the baseline.",
    )


class Register(ApiModel):
    model: str = Field(min_length=1, description="MLflow registered model name.")


class ExperimentSpec(ApiModel):
    """Train on a point-in-time training set, search trials, register the best in MLflow."""

    features: list[FeatureRef] = Field(min_length=1)
    labels: Labels
    split: Split
    trainer: Trainer = Field(default_factory=Trainer)
    search: Search = Field(default_factory=Search)
    objective: Objective = Field(default_factory=Objective)
    # `register` would shadow BaseModel.register (an ABC method), hence the alias.
    registration: Register = Field(alias="register")
    engine: Engine = Field(
        default=Engine.AUTO,
        description="Training-set (point-in-time join) engine. " + ENGINE_DESCRIPTION,
    )

    @model_validator(mode="after")
    def _objective_goal_matches_metric(self) -> ExperimentSpec:
        expected = Goal.MAXIMIZE if self.objective.metric == "auc" else Goal.MINIMIZE
        if self.objective.goal != expected:
            raise ValueError(
                f"objective.goal: metric {self.objective.metric} must be {expected.value}d"
            )
        return self


class ExperimentPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrialState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Comparison(ApiModel):
    """The candidate against one reference model on the same test rows (paired bootstrap);
    the same fields as the version's MLflow tags kubeloop.io/vs-champion and vs-baseline."""

    reference: str = Field(description="`champion` or the heuristic baseline's name.")
    version: str | None = Field(default=None, description="The champion's registered version.")
    metric: str
    window: str
    rows: int = Field(ge=0)
    candidate: float | None = None
    reference_value: float | None = None
    improvement: float | None = Field(
        default=None, description="Candidate minus reference, oriented: positive is better."
    )
    low: float | None = None
    high: float | None = None
    confidence: float
    resamples: int
    seed: int
    min_improvement: float
    passed: bool
    reason: str


class Trial(ApiModel):
    name: str
    params: dict[str, str] = Field(default_factory=dict)
    run: str | None = None
    run_url: str | None = None
    mlflow_run_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    # Champion/challenger figures of the trial's evaluation (kept for rejected trials too).
    vs_champion: Comparison | None = None
    vs_baseline: Comparison | None = None
    state: TrialState = TrialState.PENDING
    message: str | None = None


class BestTrial(ApiModel):
    trial: str
    metric: str
    value: float
    baseline: float | None = None
    vs_champion: Comparison | None = Field(
        default=None, description="Against the champion; absent when there was none yet."
    )
    vs_baseline: Comparison | None = None


class DataWindow(ApiModel):
    start: datetime | None = None
    end: datetime


class RetrainRecord(ApiModel):
    requested_at: datetime | None = None
    reason: str | None = None
    report_url: str | None = None
    started_at: datetime | None = None
    round: int | None = None
    request_id: str | None = Field(
        default=None, description="Digest of the handled annotation value: one round per request."
    )


class ExperimentStatus(StatusBase):
    TRACKED_CONDITIONS: ClassVar[tuple[str, ...]] = ("Ready", "Trained", "Registered")

    phase: ExperimentPhase | None = None
    round: int | None = Field(default=None, ge=0)
    round_generation: int | None = Field(
        default=None,
        description="metadata.generation the current round was planned for; a later spec "
        "edit starts a new round once this one is done.",
    )
    data_window: DataWindow | None = None
    trials: list[Trial] = Field(default_factory=list)
    best: BestTrial | None = None
    registered_version: str | None = None
    last_retrain: RetrainRecord | None = None
    engine: str | None = Field(
        default=None, description="The engine that built the last training set, and why."
    )


EXPERIMENT = ResourceKind(
    kind="Experiment",
    short_names=["exp"],
    spec_model=ExperimentSpec,
    status_model=ExperimentStatus,
    printer_columns=[
        PHASE_COLUMN,
        READY_COLUMN,
        PrinterColumn(name="Best", type="string", json_path=".status.best.trial"),
        PrinterColumn(name="Score", type="number", json_path=".status.best.value"),
        PrinterColumn(name="Registered", type="string", json_path=".status.registeredVersion"),
        REASON_COLUMN,
        AGE_COLUMN,
    ],
)
