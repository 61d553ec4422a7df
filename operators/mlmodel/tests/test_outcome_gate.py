"""The label gate's rule, branch by branch, and its confidence sequence against the mSPRT."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contracts.quality import Comparison
from operators.mlmodel.analysis import Verdict
from operators.mlmodel.outcome_gate import FAIL, INCONCLUSIVE, PASS, decide, judge, radius


def comparison(
    estimate: float | None,
    variance: float | None,
    n: int = 1000,
    n_stable: int | None = None,
    design: str = "paired",
) -> Comparison:
    return Comparison.model_validate(
        {
            "metric": "logLoss",
            "candidate": "2",
            "stable": "1",
            "design": design,
            "n": n,
            "nStable": n if n_stable is None else n_stable,
            "estimate": estimate,
            "variance": variance,
            "method": "paired-mean",
            "since": 0.0,
        }
    )


def msprt(estimate: float, theta: float, variance: float, tau: float) -> float:
    """Johari et al. (2017): the normal-mixture likelihood ratio against effect theta."""
    return math.sqrt(variance / (variance + tau**2)) * math.exp(
        tau**2 * (estimate - theta) ** 2 / (2 * variance * (variance + tau**2))
    )


@pytest.mark.parametrize("variance", [1e-7, 1e-5, 1e-3, 0.1])
@pytest.mark.parametrize(("tau", "alpha"), [(0.01, 0.05), (0.05, 0.1), (0.02, 0.01)])
def test_the_bounds_are_where_the_msprt_reaches_one_over_alpha(
    variance: float, tau: float, alpha: float
) -> None:
    half = radius(variance, tau, alpha)
    assert msprt(0.3 + half, 0.3, variance, tau) == pytest.approx(1 / alpha, rel=1e-9)
    # Always wider than the fixed-n 95% interval it replaces.
    assert half > 1.96 * math.sqrt(variance)


def test_radius_shrinks_with_the_variance_and_is_zero_at_zero() -> None:
    variances = np.logspace(-9, -1, 50)
    widths = radius(variances, 0.02, 0.05)
    assert np.all(np.diff(widths) > 0)
    assert radius(0.0, 0.02, 0.05) == 0.0


MARGIN, MIN_LABELED, ALPHA = 0.02, 500, 0.05


def test_pass_when_enough_labels_and_non_inferior() -> None:
    a = judge(comparison(0.0, 1e-6), MARGIN, MIN_LABELED, ALPHA)
    assert a.verdict == Verdict.PASS
    assert a.figures["low"] is not None and a.figures["low"] > -MARGIN  # type: ignore[operator]
    assert a.figures["n"] == 1000 and "non-inferior" in a.message


def test_a_slightly_worse_candidate_within_the_margin_passes() -> None:
    assert judge(comparison(-0.005, 1e-6), MARGIN, MIN_LABELED, ALPHA).verdict == Verdict.PASS


def test_too_few_labels_is_inconclusive_even_when_the_interval_is_narrow() -> None:
    a = judge(comparison(0.0, 1e-8, n=100), MARGIN, MIN_LABELED, ALPHA)
    assert a.verdict == Verdict.INCONCLUSIVE and "minLabeled 500" in a.message


def test_concurrent_needs_min_labeled_on_both_sides() -> None:
    few_stable = comparison(0.0, 1e-8, n=1000, n_stable=10, design="concurrent")
    assert judge(few_stable, MARGIN, MIN_LABELED, ALPHA).verdict == Verdict.INCONCLUSIVE


def test_fail_when_significantly_worse() -> None:
    a = judge(comparison(-0.05, 1e-5), MARGIN, MIN_LABELED, ALPHA)
    assert a.verdict == Verdict.FAIL
    assert a.figures["high"] is not None and a.figures["high"] < 0  # type: ignore[operator]
    assert "significantly worse" in a.message


def test_fail_does_not_wait_for_min_labeled() -> None:
    assert judge(comparison(-0.5, 1e-4, n=50), MARGIN, MIN_LABELED, ALPHA).verdict == Verdict.FAIL


def test_a_wide_interval_is_inconclusive() -> None:
    a = judge(comparison(-0.01, 1e-3), MARGIN, MIN_LABELED, ALPHA)
    assert a.verdict == Verdict.INCONCLUSIVE and "-margin" in a.message


def test_significantly_worse_but_within_the_margin_passes() -> None:
    # Non-inferiority decides first: worse by less than the margin is what margin allows.
    a = judge(comparison(-0.01, 1e-7), MARGIN, MIN_LABELED, ALPHA)
    assert a.verdict == Verdict.PASS and a.figures["high"] < 0  # type: ignore[operator]


def test_no_estimate_is_inconclusive() -> None:
    a = judge(comparison(None, None, n=3), MARGIN, MIN_LABELED, ALPHA)
    assert a.verdict == Verdict.INCONCLUSIVE and "too few labels" in a.message
    assert a.figures["estimate"] is None


@pytest.mark.parametrize(
    ("margin", "min_labeled", "alpha"),
    [(0.0, 10, 0.05), (math.nan, 10, 0.05), (0.1, 0, 0.05), (0.1, 10, 1.0)],
)
def test_bad_settings_are_refused(margin: float, min_labeled: int, alpha: float) -> None:
    with pytest.raises(ValueError):
        judge(comparison(0.0, 1e-6), margin, min_labeled, alpha)


def test_judge_agrees_with_the_vectorised_rule_the_simulations_use() -> None:
    rng = np.random.default_rng(0)
    codes = {Verdict.PASS: PASS, Verdict.FAIL: FAIL, Verdict.INCONCLUSIVE: INCONCLUSIVE}
    estimates = rng.normal(-0.01, 0.03, 300)
    variances = 10 ** rng.uniform(-7, -3, 300)
    ns = rng.integers(1, 2000, 300)
    half = radius(variances, MARGIN, ALPHA)
    vector = decide(ns, estimates - half, estimates + half, MARGIN, MIN_LABELED)
    scalar = [
        codes[judge(comparison(float(e), float(v), n=int(n)), MARGIN, MIN_LABELED, ALPHA).verdict]
        for e, v, n in zip(estimates, variances, ns, strict=True)
    ]
    assert list(vector) == scalar
    assert {PASS, FAIL, INCONCLUSIVE} <= set(scalar)
