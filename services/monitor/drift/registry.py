"""Detectors by name, as ``MLModel.spec.monitoring.drift.detector`` selects them."""

from __future__ import annotations

from typing import Any

from services.monitor.drift.alibi_detectors import (
    AlibiChiSquareDetector,
    AlibiKSDetector,
    AlibiMMDDetector,
    AlibiPredictionDetector,
    AlibiTabularDetector,
)
from services.monitor.drift.base import DriftDetector
from services.monitor.drift.errors import DetectorConfigError, UnknownDetectorError
from services.monitor.drift.mmd import MMDDetector
from services.monitor.drift.scipy_detectors import (
    ChiSquareDetector,
    KSDetector,
    PredictionKSDetector,
    PSIDetector,
    TabularDetector,
)

DETECTORS: dict[str, type[DriftDetector]] = {
    cls.name: cls
    for cls in (
        KSDetector,
        ChiSquareDetector,
        TabularDetector,
        PSIDetector,
        PredictionKSDetector,
        MMDDetector,
        AlibiKSDetector,
        AlibiChiSquareDetector,
        AlibiTabularDetector,
        AlibiMMDDetector,
        AlibiPredictionDetector,
    )
}


def detector_names() -> list[str]:
    return sorted(DETECTORS)


def create_detector(
    name: str, p_value: float = 0.05, correction: str = "bonferroni", **options: Any
) -> DriftDetector:
    """A fresh, unfitted detector. Options are the detector's own (``bins``, ``threshold``,
    ``n_permutations``, ``device``); an option the detector lacks is an error naming it."""
    try:
        cls = DETECTORS[name]
    except (KeyError, TypeError):
        raise UnknownDetectorError(name, detector_names()) from None
    try:
        return cls(p_value=p_value, correction=correction, **options)
    except TypeError as error:
        raise DetectorConfigError(
            f"detector {name!r}: bad options {sorted(options)}: {error}"
        ) from None
