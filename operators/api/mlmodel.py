"""MLModel: one registered model served by KServe, promoted by a gated shadow/canary ramp."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from operators.api.common import (
    K8S_NAME_PATTERN,
    ApiModel,
    Duration,
    PrinterColumn,
    ResourceKind,
    StatusBase,
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


class Serving(ApiModel):
    runtime: str | None = Field(default=None, description="KServe ServingRuntime; auto if unset.")
    model_format: str = Field(default="mlflow")
    resources: ServingResources | None = None
    min_replicas: int = Field(default=1, ge=0, le=100)


class Shadow(ApiModel):
    duration: Duration = Field(default="10m", description="Minimum time in shadow.")
    mirror_percent: Percent = 100
    min_requests: int = Field(default=100, ge=1)
    max_disagreement: float = Field(default=0.05, ge=0, le=1)
    tolerance: float = Field(
        default=0.1, ge=0, le=1, description="Score difference that counts as disagreement."
    )


class Analysis(ApiModel):
    interval: Duration = "1m"
    min_requests: int = Field(default=50, ge=1)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_latency_p99_ms: float = Field(default=500, gt=0)
    threshold: int = Field(default=2, ge=1, description="Failed checks before rollback.")
    significance: float = Field(
        default=0.05, gt=0, lt=1, description="Level of the test against stable's error rate."
    )


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
    auto_rollback: bool = True
    require_approval: bool = Field(
        default=False, description="Wait for the kubeloop.io/approve annotation before canary."
    )

    @field_validator("steps")
    @classmethod
    def _steps_increase_to_100(cls, steps: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError(f"must be strictly increasing, got {steps}")
        if steps[-1] != 100:
            raise ValueError(f"the last step must be 100, got {steps}")
        return steps


class DetectorName(StrEnum):
    ALIBI_KS = "alibi-ks"
    ALIBI_CHI2 = "alibi-chi2"
    ALIBI_TABULAR = "alibi-tabular"
    ALIBI_MMD = "alibi-mmd"
    ALIBI_PREDICTION = "alibi-prediction"
    KS = "ks"
    CHI2 = "chi2"
    TABULAR = "tabular"
    PSI = "psi"
    MMD = "mmd"
    PREDICTION = "prediction"


class DriftWindow(ApiModel):
    size: int = Field(default=500, ge=10, le=1_000_000)
    max_age: Duration = "1h"


class Drift(ApiModel):
    detector: DetectorName = Field(
        default=DetectorName.KS,
        description="ks, chi2, tabular, psi, mmd, prediction are Apache-2.0; alibi-* are BSL.",
    )
    p_value: float = Field(default=0.05, gt=0, lt=1)
    window: DriftWindow = Field(default_factory=DriftWindow)
    features: list[str] = Field(default_factory=list, description="Empty means all.")


class Retrain(ApiModel):
    experiment: str = Field(pattern=K8S_NAME_PATTERN)
    cooldown: Duration = "6h"
    max_per_day: int = Field(default=3, ge=0, le=100)
    require_approval: bool = False


class Monitoring(ApiModel):
    drift: Drift | None = None
    retrain: Retrain | None = None


class MLModelSpec(ApiModel):
    """Serve an MLflow model with KServe; promote new versions through shadow and canary."""

    model: ModelRef
    serving: Serving = Field(default_factory=Serving)
    rollout: Rollout = Field(default_factory=Rollout)
    monitoring: Monitoring | None = None


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
    message: str | None = None


class DriftStatus(ApiModel):
    detector: str | None = None
    p_values: dict[str, float] = Field(default_factory=dict)
    is_drift: bool = False
    window: int | None = None
    checked_at: datetime | None = None
    report_url: str | None = None


class RetrainStatus(ApiModel):
    requested_at: datetime | None = None
    reason: str | None = None
    report_url: str | None = None
    decision: str | None = None
    history: list[datetime] = Field(default_factory=list)


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
    TRACKED_CONDITIONS: ClassVar[tuple[str, ...]] = ("Ready", "Serving", "Drift")

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
    last_retrain: RetrainStatus | None = None
    lineage: Lineage | None = None
    message: str | None = None


MLMODEL = ResourceKind(
    kind="MLModel",
    plural="mlmodels",
    singular="mlmodel",
    short_names=["mlm"],
    spec_model=MLModelSpec,
    status_model=MLModelStatus,
    printer_columns=[
        PrinterColumn(name="Phase", type="string", json_path=".status.phase"),
        PrinterColumn(name="Stable", type="string", json_path=".status.stableVersion"),
        PrinterColumn(name="Candidate", type="string", json_path=".status.candidateVersion"),
        PrinterColumn(name="Stable%", type="integer", json_path=".status.traffic.stable"),
        PrinterColumn(name="Canary%", type="integer", json_path=".status.traffic.candidate"),
        PrinterColumn(name="Mirror%", type="integer", json_path=".status.traffic.mirror"),
        PrinterColumn(name="Drift", type="boolean", json_path=".status.drift.isDrift"),
        PrinterColumn(
            name="Reason",
            type="string",
            json_path='.status.conditions[?(@.type=="Ready")].reason',
            priority=1,
        ),
        PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp"),
    ],
)
