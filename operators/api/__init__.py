"""kubeloop API types (kubeloop.io/v1alpha1): the single source of truth for the CRD schemas."""

from operators.api.common import (
    API_VERSION,
    FINALIZER,
    GROUP,
    VERSION,
    Condition,
    ConditionStatus,
    ResourceKind,
)
from operators.api.experiment import EXPERIMENT, ExperimentSpec, ExperimentStatus
from operators.api.featureview import FEATUREVIEW, FeatureViewSpec, FeatureViewStatus
from operators.api.kinds import ALL_KINDS, KINDS_BY_NAME
from operators.api.mlmodel import MLMODEL, MLModelSpec, MLModelStatus

__all__ = [
    "ALL_KINDS",
    "API_VERSION",
    "EXPERIMENT",
    "FEATUREVIEW",
    "FINALIZER",
    "GROUP",
    "KINDS_BY_NAME",
    "MLMODEL",
    "VERSION",
    "Condition",
    "ConditionStatus",
    "ExperimentSpec",
    "ExperimentStatus",
    "FeatureViewSpec",
    "FeatureViewStatus",
    "MLModelSpec",
    "MLModelStatus",
    "ResourceKind",
]
