"""The label gate's error rates, shown by simulating 1,000 rollouts per case.

Each rollout goes through shadow (paired comparison of the same requests) then canary steps
1/10/50/100% (concurrent comparison, traffic split by weight), and ``outcome_gate`` judges it
at EVERY interval, as the operator does (``tests/support/gate_simulation.py`` describes the
world and the rollout). Strictest counting: ONE failed check rolls back (the API default needs
two in a row, which can only roll back less).

Declared: alpha = 5% (an identical candidate is rolled back in at most alpha of rollouts) and
beta = 10% (a candidate worse by 2 x margin is promoted in at most beta). Tolerance: the
assertion allows the count a true rate of exactly alpha (beta) stays under with probability
99.9% (binomial quantile: 71 of 1,000 for 5%, 130 for 10%), so a gate that meets its
declaration fails this test about once in a thousand seeds, and the seeds are fixed. The full
figures (more effect sizes, AUC, the operator's threshold) are in ``bench/label_gate.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from services.monitor.outcomes import stats
from tests.support.gate_simulation import (
    Setup,
    binomial_upper,
    concurrent_counts,
    make_world,
    paired_counts,
    simulate,
    worse_world,
)

ROLLOUTS = 1000
ALPHA, BETA = 0.05, 0.10
METRICS = [("logLoss", 0.02), ("auc", 0.02)]


@pytest.mark.parametrize(("metric", "margin"), METRICS)
def test_an_identical_candidate_is_rolled_back_in_at_most_alpha(metric: str, margin: float) -> None:
    setup = Setup(metric=metric, margin=margin, alpha=ALPHA)
    outcome = simulate(make_world(), setup, ROLLOUTS, np.random.default_rng(11))
    assert outcome.rolled_back.sum() <= binomial_upper(ALPHA, ROLLOUTS), outcome.summary()
    # ... and the gate is not merely timid: nearly every identical candidate is promoted.
    assert outcome.promoted.mean() >= 0.9, outcome.summary()


@pytest.mark.parametrize(("metric", "margin"), METRICS)
def test_a_candidate_worse_by_twice_the_margin_is_promoted_in_at_most_beta(
    metric: str, margin: float
) -> None:
    setup = Setup(metric=metric, margin=margin, alpha=ALPHA)
    world = worse_world(metric, 2 * margin)
    outcome = simulate(world, setup, ROLLOUTS, np.random.default_rng(12))
    assert outcome.promoted.sum() <= binomial_upper(BETA, ROLLOUTS), outcome.summary()
    assert outcome.rolled_back.mean() >= 0.9, outcome.summary()


def test_peeking_at_a_fixed_n_interval_would_break_alpha() -> None:
    """The simulation can tell a bad gate: a fixed-n 95% interval judged at every interval
    rolls back an identical candidate far more often than 5%."""
    setup = Setup(metric="logLoss", margin=0.02, bounds="fixed")
    outcome = simulate(make_world(), setup, ROLLOUTS, np.random.default_rng(13))
    assert outcome.rolled_back.sum() > binomial_upper(ALPHA, ROLLOUTS), outcome.summary()


def test_the_worlds_effects_are_exact() -> None:
    same = make_world()
    for metric in ("auc", "logLoss", "accuracy"):
        stable, candidate = same.population(metric)
        assert candidate == pytest.approx(stable, abs=1e-12)
    stable, candidate = worse_world("auc", 0.04).population("auc")
    assert stable - candidate == pytest.approx(0.04, abs=1e-9)


def expand(counts: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, ...]:
    """(2, S, S) joint counts -> rows of (label, stable score, candidate score)."""
    y, i, j = np.nonzero(counts)
    reps = counts[y, i, j]
    return np.repeat(y, reps), np.repeat(levels[i], reps), np.repeat(levels[j], reps)


@pytest.mark.parametrize("metric", ["auc", "logLoss", "accuracy"])
def test_count_formulas_are_the_monitors_figures_on_the_rows(metric: str) -> None:
    """The simulation draws cell counts instead of rows; on the expanded rows the monitor's
    own functions must give the same estimate and variance."""
    world = worse_world("logLoss", 0.03)
    rng = np.random.default_rng(14)
    s = world.levels.size
    joint = rng.multinomial(700, world.table.reshape(-1)).reshape(2, s, s)
    n, est, var = paired_counts(joint[None], metric, world.levels)
    y, stable_scores, cand_scores = expand(joint, world.levels)
    e, v, _ = stats.compare_paired(cand_scores, stable_scores, y, metric)
    assert n[0] == 700 and est[0] == pytest.approx(e, abs=1e-12)
    assert var[0] == pytest.approx(v, rel=1e-9)

    cand = rng.multinomial(300, world.marginal("candidate").reshape(-1)).reshape(2, s)
    stab = rng.multinomial(2000, world.marginal("stable").reshape(-1)).reshape(2, s)
    nc, ns, est, var = concurrent_counts(cand[None], stab[None], metric, world.levels)
    yc, lc = np.nonzero(cand)
    ys, ls = np.nonzero(stab)
    e, v, _ = stats.compare_concurrent(
        np.repeat(world.levels[lc], cand[yc, lc]),
        np.repeat(yc, cand[yc, lc]),
        np.repeat(world.levels[ls], stab[ys, ls]),
        np.repeat(ys, stab[ys, ls]),
        metric,
    )
    assert (nc[0], ns[0]) == (300, 2000)
    assert est[0] == pytest.approx(e, abs=1e-12) and var[0] == pytest.approx(v, rel=1e-9)
