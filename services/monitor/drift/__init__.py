"""Drift detection for the kubeloop monitor.

Every detector follows one interface::

    detector = create_detector("ks", p_value=0.05).fit(reference, feature_names, categorical)
    result = detector.check(window)      # DriftResult; InvalidWindowError for NaN/inf/shape

Two families, selectable per MLModel (``spec.monitoring.drift.detector``):

* Apache-2.0: ``ks``, ``chi2``, ``tabular``, ``psi``, ``prediction`` (scipy) and ``mmd``
  (PyTorch, all permutations in one matrix product).
* Alibi Detect: ``alibi-ks``, ``alibi-chi2``, ``alibi-tabular``, ``alibi-mmd``,
  ``alibi-prediction``. Alibi Detect is under the Business Source License 1.1: free only
  outside production use.

Plus data-quality checks: :class:`NullRateCheck` and :class:`SkewCheck`. The monitor plugs
detectors in through :class:`services.monitor.drift.evaluator.DetectorEvaluator`.
"""

from services.monitor.drift.base import ALIBI_BSL, APACHE, DriftDetector
from services.monitor.drift.errors import (
    DetectorConfigError,
    DriftError,
    InvalidWindowError,
    NotFittedError,
    UnknownDetectorError,
)
from services.monitor.drift.quality import NullRateCheck, SkewCheck, SkewTolerance
from services.monitor.drift.registry import DETECTORS, create_detector, detector_names
from services.monitor.drift.result import DriftResult, NullRateResult, SkewResult

__all__ = [
    "ALIBI_BSL",
    "APACHE",
    "DETECTORS",
    "DetectorConfigError",
    "DriftDetector",
    "DriftError",
    "DriftResult",
    "InvalidWindowError",
    "NotFittedError",
    "NullRateCheck",
    "NullRateResult",
    "SkewCheck",
    "SkewResult",
    "SkewTolerance",
    "UnknownDetectorError",
    "create_detector",
    "detector_names",
]
