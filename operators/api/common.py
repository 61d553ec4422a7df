"""Types shared by the three kubeloop resources: base model config, durations, conditions.

The pydantic models in this package are the single source of truth for the CRD schemas
(`kubeloop crds` generates `crds/` from them). Python attribute names are snake_case; the
Kubernetes field names are their camelCase aliases, as in every Kubernetes API.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

# The group, finalizer and annotations are wire contracts (contracts/kube.py), re-exported.
from contracts.kube import ANNOTATION_APPROVE as ANNOTATION_APPROVE
from contracts.kube import ANNOTATION_PAUSE as ANNOTATION_PAUSE
from contracts.kube import ANNOTATION_RETRAIN as ANNOTATION_RETRAIN
from contracts.kube import API_VERSION as API_VERSION
from contracts.kube import FINALIZER as FINALIZER
from contracts.kube import GROUP
from contracts.kube import VERSION as VERSION

CATEGORY = "kubeloop"

DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

# A duration such as "90s", "5m", "1h30m" or "30d" (Go-style, plus days, which ML people use).
Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]
# Kubernetes object names (RFC 1123 subdomain, as kube-apiserver requires for most kinds).
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Column / feature names usable in Spark SQL, Feast and Parquet without quoting.
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


def parse_duration(value: str) -> timedelta:
    """'1h30m' -> timedelta(hours=1, minutes=30). Raises ValueError naming the value."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"invalid duration {value!r}: use e.g. 30s, 5m, 1h30m, 7d")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))
    return timedelta(seconds=seconds)


class Engine(StrEnum):
    """Where a backfill or a point-in-time join runs; both engines give identical results
    (components/engines.py). auto: DuckDB while the input fits one node, Spark beyond."""

    AUTO = "auto"
    DUCKDB = "duckdb"
    SPARK = "spark"


ENGINE_DESCRIPTION = (
    "auto | duckdb | spark. auto: DuckDB on a local Spark master while the input fits the "
    "single-node memory budget, Spark otherwise. The SQL is Spark SQL either way (transpiled "
    "for DuckDB); SQL DuckDB cannot run needs spark."
)


class ApiModel(BaseModel):
    """Base for every spec/status model: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )

    def to_k8s(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """The standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9]*$", max_length=316)
    status: ConditionStatus
    reason: str = Field(default="Unknown", pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class PrinterColumn(BaseModel):
    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0


def condition_column(
    name: str, condition: str, field: str = "status", priority: int = 0
) -> PrinterColumn:
    """A column showing one field (status, reason) of one condition."""
    json_path = f'.status.conditions[?(@.type=="{condition}")].{field}'
    return PrinterColumn(name=name, type="string", json_path=json_path, priority=priority)


# Columns every kind shows: Ready first, the reason behind it in wide output, Age last.
PHASE_COLUMN = PrinterColumn(name="Phase", type="string", json_path=".status.phase")
READY_COLUMN = condition_column("Ready", "Ready")
REASON_COLUMN = condition_column("Reason", "Ready", field="reason", priority=1)
AGE_COLUMN = PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")


class ResourceKind(BaseModel):
    """What the CRD generator and the operators need to know about one kind."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: str
    short_names: list[str]
    spec_model: type[ApiModel]
    status_model: type[ApiModel]
    printer_columns: list[PrinterColumn]
    namespaced: bool = True
    singular: str = ""
    plural: str = ""

    @model_validator(mode="after")
    def _names(self) -> ResourceKind:
        # Kubernetes' convention, which every kubeloop kind follows: the lowercased kind, +s.
        self.singular = self.singular or self.kind.lower()
        self.plural = self.plural or f"{self.singular}s"
        return self

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


class StatusBase(ApiModel):
    """Fields every kubeloop status carries.

    Unknown fields are ignored rather than rejected: status is ours, and an operator upgrade
    must be able to read what an older version wrote.
    """

    model_config = ConfigDict(extra="ignore")

    TRACKED_CONDITIONS: ClassVar[tuple[str, ...]] = ("Ready",)

    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = Field(default_factory=list)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus | str,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime | None = None,
) -> list[Condition]:
    """Return conditions with `type_` set. lastTransitionTime moves only when status changes."""
    now = now or now_utc()
    status = ConditionStatus(status)

    def updated(previous: Condition | None) -> Condition:
        transition = now
        if previous is not None and previous.status == status:
            transition = previous.last_transition_time or now
        return Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=transition,
            observed_generation=generation,
        )

    if not any(cond.type == type_ for cond in conditions):
        return [*conditions, updated(None)]
    return [updated(cond) if cond.type == type_ else cond for cond in conditions]


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def describe_validation_error(error: ValidationError, root: str = "spec") -> str:
    """Turn a pydantic error into one line per problem, each naming the Kubernetes field path."""
    lines = []
    for item in error.errors():
        path = root
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = item["msg"]
        if item.get("type") == "extra_forbidden":
            message = "unknown field"
        lines.append(f"{path}: {message}")
    return "; ".join(lines)


def first_invalid_field(error: ValidationError, root: str = "spec") -> str:
    item = error.errors()[0]
    path = root
    for part in item["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def retrain_request_id(value: str) -> str:
    """The handle on one retrain request (the value of ANNOTATION_RETRAIN): the Experiment
    records it in status.lastRetrain.requestId when it starts the request's round, and the
    MLModel compares against it to tell a request still outstanding from one handled."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]
