"""The label gate: judges the monitor's candidate-against-stable Comparison at every interval.

Pure (no I/O, time never read). The operator asks the monitor for a
:class:`contracts.quality.Comparison` each analysis interval (shadow: paired since the shadow
started; canary: concurrent since the canary started) and calls :func:`judge`. Because the
same growing sample is judged again and again, a fixed-n 95% interval would be crossed by
chance far more often than 5% of the time; the gate uses an ALWAYS-VALID confidence sequence
instead, whose coverage holds simultaneously at every look:

    radius(V) = sqrt( V (V + tau^2) / tau^2 * (2 ln(1/alpha) + ln((V + tau^2) / V)) )

with V the variance of the estimate and tau the scale of the normal mixture. It is the set of
effects the mixture sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis &
Walsh ("Peeking at A/B tests", KDD 2017; "Always valid inference", Operations Research 2022)
does not reject at level alpha, i.e. the normal-mixture boundary of Robbins (1970) and Howard,
Ramdas, McAuliffe & Sekhon ("Time-uniform, nonparametric, nonasymptotic confidence sequences",
Annals of Statistics 2021) written in terms of the estimate's variance. Ville's
inequality makes P(the true effect ever leaves the sequence) <= alpha for Gaussian estimates
of known variance; with the DeLong / sample variances plugged in it holds asymptotically
(Bibaut, Kallus & Lindon, "Near-optimal, near-calibrated, non-parametric sequential tests and
confidence sequences", arXiv:2212.14411: normal-mixture SPRTs on non-parametric data keep
their type-I error asymptotically, indexed by a burn-in), which the simulation tests check
(``operators/mlmodel/tests/test_outcome_gate_simulation.py``). tau = margin: the mixture is
tightest for effects of about that size, the size the gate has to resolve.

Rule (docs/outcomes.md, "When a step passes, fails or stays inconclusive"):

- PASS when at least ``min_labeled`` labeled requests (each side) and low > -margin: the
  candidate is non-inferior within ``margin``;
- else FAIL when high < 0: the candidate is significantly worse;
- else INCONCLUSIVE (including: no estimate yet).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from contracts.quality import Comparison
from operators.mlmodel.analysis import Assessment, Verdict

#: Codes of :func:`decide` (vectorised verdicts for the simulations).
INCONCLUSIVE, PASS, FAIL = 0, 1, 2


def radius(variance: Any, tau: float, alpha: float) -> Any:
    """Half-width of the normal-mixture confidence sequence at the estimate's variance.

    Works on floats and numpy arrays. A zero variance gives a zero radius (the limit).
    """
    v = np.asarray(variance, dtype=np.float64)
    t2 = tau * tau
    safe = np.where(v > 0, v, 1.0)
    width = np.sqrt(
        safe * (safe + t2) / t2 * (2 * math.log(1 / alpha) + np.log((safe + t2) / safe))
    )
    out = np.where(v > 0, width, 0.0)
    return float(out) if out.ndim == 0 else out


def decide(n: Any, low: Any, high: Any, margin: float, min_labeled: int) -> Any:
    """The rule on arrays: ``n`` is the smaller side's labeled count; NaN bounds (no
    estimate) are inconclusive. Returns INCONCLUSIVE / PASS / FAIL codes."""
    n, low, high = np.asarray(n), np.asarray(low), np.asarray(high)
    passed = (n >= min_labeled) & (low > -margin)
    failed = ~passed & (high < 0)
    return np.where(passed, PASS, np.where(failed, FAIL, INCONCLUSIVE))


def _validate(margin: float, min_labeled: int, alpha: float) -> None:
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a positive number, got {margin}")
    if min_labeled < 1:
        raise ValueError(f"minLabeled must be at least 1, got {min_labeled}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def judge(comparison: Comparison, margin: float, min_labeled: int, alpha: float) -> Assessment:
    """PASS / FAIL / INCONCLUSIVE for one look at the comparison (see the module docstring).

    Figures: estimate, low, high (the always-valid bounds), n, nStable, margin, metric,
    design, method.
    """
    _validate(margin, min_labeled, alpha)
    n = min(comparison.n, comparison.n_stable)
    figures: dict[str, float | int | str | None] = {
        "metric": comparison.metric,
        "design": comparison.design,
        "method": comparison.method,
        "n": comparison.n,
        "nStable": comparison.n_stable,
        "margin": margin,
        "estimate": None,
        "low": None,
        "high": None,
    }
    what = f"{comparison.metric} ({comparison.design}, {_sample(comparison)})"
    if comparison.estimate is None or comparison.variance is None:
        return Assessment(
            Verdict.INCONCLUSIVE, f"inconclusive: {what}: too few labels to compare", figures
        )
    half = radius(comparison.variance, margin, alpha)
    low, high = comparison.estimate - half, comparison.estimate + half
    figures.update(estimate=round(comparison.estimate, 6), low=round(low, 6), high=round(high, 6))
    shown = (
        f"{what}: candidate vs stable {comparison.estimate:+.4f} (higher is better), always-valid "
        f"{1 - alpha:.0%} interval [{low:+.4f}, {high:+.4f}]"
    )
    code = int(decide(n, low, high, margin, min_labeled))
    if code == PASS:
        return Assessment(Verdict.PASS, f"{shown} > -margin {margin:g}: non-inferior", figures)
    if code == FAIL:
        return Assessment(Verdict.FAIL, f"{shown} < 0: significantly worse", figures)
    if n < min_labeled:
        reason = f"{n} labeled < minLabeled {min_labeled}"
    else:
        reason = f"the interval still reaches below -margin {margin:g}"
    return Assessment(Verdict.INCONCLUSIVE, f"inconclusive: {shown}; {reason}", figures)


def _sample(comparison: Comparison) -> str:
    if comparison.design == "paired":
        return f"{comparison.n} labeled pairs"
    return f"{comparison.n} candidate / {comparison.n_stable} stable labeled"
