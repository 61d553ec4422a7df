"""Drift detection rules both sides of the monitor config agree on: detector names and the
window sample-size bounds.

- ``DETECTOR_NAMES``: what ``MLModel.spec.monitoring.drift.detector`` may select (the operator's
  API enum offers these) and what the monitor's detector registry
  (``services/monitor/drift/registry.py``) provides; the monitor config rejects any other
  name. ``ks``, ``chi2``, ``tabular``, ``psi``, ``mmd``, ``prediction`` are Apache-2.0;
  ``alibi-*`` run Alibi Detect (BSL-1.1, not for production).
- ``MIN_WINDOW_FLOOR`` / ``DEFAULT_MIN_WINDOW``: the fewest rows a drift check may run on and
  the default below which the monitor skips a check; the operator sends
  ``min(DEFAULT_MIN_WINDOW, window.size)`` so a small window still gets checked.
- ``DETECTORS_WITHOUT_P_VALUE``: detectors that decide on a distance, not a p-value (PSI); a
  sequential alarm (``alarm.expectedRunTimeSeconds``) needs a window p-value, so the config
  refuses the pair.
- ``SCORE_BASELINE_*``: what the prediction-drift check compared the served scores with, as
  the monitor's drift view names it (``checks.prediction.baseline``): the version's validation
  scores saved at training time, or (only when those are absent) its first served window.
- ``MIN_WINDOW_SIZE`` / ``MAX_WINDOW_SIZE``: the monitor keeps at most ``MAX_WINDOW_SIZE``
  rows per version (memory bound); the operator clamps ``spec.monitoring.drift.window.size``
  to it.
"""

from __future__ import annotations

from typing import Final

DETECTOR_NAMES: Final = (
    "alibi-chi2",
    "alibi-ks",
    "alibi-mmd",
    "alibi-prediction",
    "alibi-tabular",
    "chi2",
    "ks",
    "mmd",
    "prediction",
    "psi",
    "tabular",
)
DEFAULT_DETECTOR: Final = "ks"
DETECTORS_WITHOUT_P_VALUE: Final = ("psi",)

SCORE_BASELINE_VALIDATION: Final = "validationScores"
SCORE_BASELINE_FIRST_WINDOW: Final = "firstServedWindow"

MIN_WINDOW_FLOOR: Final = 10
DEFAULT_MIN_WINDOW: Final = 50
MIN_WINDOW_SIZE: Final = 10
DEFAULT_WINDOW_SIZE: Final = 5000
MAX_WINDOW_SIZE: Final = 200_000
