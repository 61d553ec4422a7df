"""Simulated label-gated rollouts: shadow (paired) then canary steps (concurrent), judged by
``operators.mlmodel.outcome_gate`` at EVERY interval, thousands of rollouts at once.

Used by ``operators/mlmodel/tests/test_outcome_gate_simulation.py`` (short) and
``bench/label_gate.py`` (full).

The world. A request has a latent z ~ N(0, 1) and a label y ~ Bernoulli(sigmoid(a + b z)).
Each model sees z through its own independent noise, z + sigma * e, and scores
sigmoid(a + b (z + sigma e)), rounded to the midpoint of one of ``levels`` equal-width score
bins (real models' scores are often rounded too; ties are handled by every figure). So each
labeled request falls in one cell (label, stable's level, candidate's level) of a finite table
whose probabilities are computed exactly (a 4,001-point grid over z, normal CDFs for the noise):
:class:`World`. The same sigma gives an identical candidate (the table is symmetric in the two
models, so every population figure is exactly equal); a larger candidate sigma gives a worse
one, and :func:`worse_world` finds the sigma at which the candidate is worse by exactly
``delta`` in the chosen metric (bisection on the exact population figure).

Why counts and not rows: every figure the monitor computes (mean per-request difference and
its variance, Welch, DeLong with ties) is a function of how many labeled requests fell in each
cell, so drawing the counts (multinomial) IS drawing the rows, exactly, at O(cells) instead of
O(rows) per look. ``test_outcome_gate_simulation.py`` checks the count formulas against
``services.monitor.outcomes.stats.compare_paired`` / ``compare_concurrent`` on the expanded rows.

The rollout, per interval, as the operator does it (``operators/mlmodel/rollout.py``):
shadow: ``shadow_pairs`` new labeled pairs; the comparison is paired, since shadow start.
A PASS ends the shadow (canary at the first step). Canary: ``canary_labeled`` new labeled
requests split by the step's weight (binomial: request-level random split); the comparison is
concurrent since canary start. A PASS advances the step; a PASS at the last step promotes.
A FAIL counts a failed check; ``threshold`` failed checks in a row within a step (reset on a
pass) roll back. INCONCLUSIVE holds. After ``max_intervals`` a rollout still in analysis is
"undecided".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.special import expit, logit, ndtr

from operators.mlmodel.outcome_gate import FAIL, PASS, decide, radius

GRID = np.linspace(-8.0, 8.0, 4001)
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class World:
    """Exact cell probabilities ``table[y, stable level, candidate level]``."""

    levels: np.ndarray
    table: np.ndarray
    sigma_stable: float
    sigma_candidate: float

    def marginal(self, arm: str) -> np.ndarray:
        """(2, S) probabilities of (label, level) for one model."""
        return self.table.sum(axis=2) if arm == "stable" else self.table.sum(axis=1)

    def population(self, metric: str, threshold: float = 0.5) -> tuple[float, float]:
        """The metric's exact population value for (stable, candidate)."""
        values = []
        for arm in ("stable", "candidate"):
            p = self.marginal(arm)
            if metric == "auc":
                values.append(float(_auc_from_counts(p[None])[0]))
            else:
                values.append(float((p * row_values(metric, self.levels, threshold)).sum()))
        return values[0], values[1]


def _level_probabilities(sigma: float, levels: int, a: float, b: float) -> np.ndarray:
    """P(model's score lands in each level | z), shape (grid, levels)."""
    edges = np.linspace(0.0, 1.0, levels + 1)
    with np.errstate(divide="ignore"):
        cuts = (logit(edges) - a) / b  # latent value at each score edge: -inf ... +inf
    cdf = ndtr((cuts[None, :] - GRID[:, None]) / sigma)
    return np.diff(cdf, axis=1)


def make_world(
    sigma_stable: float = 0.5,
    sigma_candidate: float = 0.5,
    *,
    levels: int = 20,
    a: float = -1.0,
    b: float = 2.0,
) -> World:
    weights = np.exp(-0.5 * GRID**2)
    weights /= weights.sum()
    positive = expit(a + b * GRID)
    label = np.stack([weights * (1 - positive), weights * positive])  # (2, grid)
    stable = _level_probabilities(sigma_stable, levels, a, b)
    candidate = _level_probabilities(sigma_candidate, levels, a, b)
    table = np.einsum("yg,gi,gj->yij", label, stable, candidate)
    table /= table.sum()
    mids = (np.arange(levels) + 0.5) / levels
    return World(mids, table, sigma_stable, sigma_candidate)


@lru_cache(maxsize=64)  # the tests and the bench ask for the same worlds again and again
def worse_world(metric: str, delta: float, sigma_stable: float = 0.5, **kw: float) -> World:
    """A world whose candidate is worse than stable by ``delta`` (AUC, accuracy: lower by
    delta; logLoss: higher by delta; a negative delta: better), by bisection on the
    candidate's noise."""

    def shortfall(sigma: float) -> float:
        stable, candidate = make_world(sigma_stable, sigma, **kw).population(metric)  # type: ignore[arg-type]
        return candidate - stable if metric == "logLoss" else stable - candidate

    # The shortfall grows with the candidate's noise; a negative delta (a better candidate)
    # lies below the stable's noise.
    low, high = (sigma_stable, sigma_stable + 0.1) if delta >= 0 else (1e-3, sigma_stable)
    while shortfall(high) < delta:
        low, high = high, high * 2
    for _ in range(40):  # the bracket shrinks to ~1e-12 of its width
        mid = (low + high) / 2
        low, high = (mid, high) if shortfall(mid) < delta else (low, mid)
    return make_world(sigma_stable, (low + high) / 2, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- figures from counts


def row_values(metric: str, levels: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(2, S): the per-request figure of a label and a score level, oriented higher-is-better
    for the paired gains (accuracy: correct; logLoss: the loss itself, a cost)."""
    if metric == "accuracy":
        predicted = levels >= threshold
        return np.stack([~predicted, predicted]).astype(np.float64)
    return np.stack([-np.log(1 - levels), -np.log(levels)])


def _gain(metric: str, levels: np.ndarray, threshold: float) -> np.ndarray:
    values = row_values(metric, levels, threshold)
    return -values if metric == "logLoss" else values


def _mean_var(counts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n, mean and sample variance of rows given as counts over cells (last axes)."""
    axes = tuple(range(1, counts.ndim))
    n = counts.sum(axis=axes).astype(np.float64)
    total = (counts * values).sum(axis=axes)
    squares = (counts * values**2).sum(axis=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        var = (squares - n * mean**2) / (n - 1)
    return n, mean, np.maximum(var, 0.0)


def _structural(counts: np.ndarray) -> tuple[np.ndarray, ...]:
    """DeLong's structural components per level from (R, 2, S) counts (ties count half)."""
    neg, pos = counts[:, 0, :].astype(np.float64), counts[:, 1, :].astype(np.float64)
    n, m = neg.sum(axis=1, keepdims=True), pos.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        v10 = (np.cumsum(neg, axis=1) - neg / 2) / n  # a positive at this level
        v01 = (m - np.cumsum(pos, axis=1) + pos / 2) / m  # a negative at this level
        auc = (pos * v10).sum(axis=1) / m[:, 0]
    return pos, neg, m[:, 0], n[:, 0], v10, v01, auc


def _auc_from_counts(counts: np.ndarray) -> np.ndarray:
    return _structural(counts)[-1]


def delong_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, 2, S) counts -> labeled n, AUC, DeLong variance (NaN with < 2 of a class)."""
    pos, neg, m, n, v10, v01, auc = _structural(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        s10 = (pos * (v10 - auc[:, None]) ** 2).sum(axis=1) / (m - 1)
        s01 = (neg * (v01 - auc[:, None]) ** 2).sum(axis=1) / (n - 1)
        var = s10 / m + s01 / n
    bad = (m < 2) | (n < 2)
    return m + n, np.where(bad, np.nan, auc), np.where(bad, np.nan, var)


def paired_counts(
    counts: np.ndarray, metric: str, levels: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, 2, S, S) joint counts [label, stable level, candidate level] -> n, estimate,
    variance of candidate − stable (higher is better), as ``compare_paired``."""
    if metric != "auc":
        gain = _gain(metric, levels, threshold)
        d = gain[:, None, :] - gain[:, :, None]  # [y, i, j]: candidate j − stable i
        n, mean, var = _mean_var(counts, d)
        bad = n < 2
        return n, np.where(bad, np.nan, mean), np.where(bad, np.nan, var / n)
    stable = _structural(counts.sum(axis=3))
    cand = _structural(counts.sum(axis=2))
    m, n = stable[2], stable[3]
    ds10 = stable[4] - stable[6][:, None]
    dc10 = cand[4] - cand[6][:, None]
    ds01 = stable[5] - stable[6][:, None]
    dc01 = cand[5] - cand[6][:, None]
    c = counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Per positive: V10 of candidate minus V10 of stable; its variance over positives
        # is var_c + var_s − 2 cov, the paired DeLong term.
        diff10 = dc10[:, None, :] - ds10[:, :, None]  # [r, i, j]
        diff01 = dc01[:, None, :] - ds01[:, :, None]
        s10 = (c[:, 1] * diff10**2).sum(axis=(1, 2)) / (m - 1)
        s01 = (c[:, 0] * diff01**2).sum(axis=(1, 2)) / (n - 1)
        var = s10 / m + s01 / n
    bad = (m < 2) | (n < 2)
    estimate = cand[6] - stable[6]
    return m + n, np.where(bad, np.nan, estimate), np.where(bad, np.nan, var)


def concurrent_counts(
    cand: np.ndarray, stable: np.ndarray, metric: str, levels: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(R, 2, S) counts per arm -> n_c, n_s, estimate, variance, as ``compare_concurrent``."""
    if metric == "auc":
        nc, ac, vc = delong_counts(cand)
        ns, as_, vs = delong_counts(stable)
        return nc, ns, ac - as_, vc + vs
    gain = _gain(metric, levels, threshold)
    nc, mc, vc = _mean_var(cand, gain)
    ns, ms, vs = _mean_var(stable, gain)
    bad = (nc < 2) | (ns < 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = vc / nc + vs / ns
    return nc, ns, np.where(bad, np.nan, mc - ms), np.where(bad, np.nan, var)


# ---------------------------------------------------------------- rollouts


@dataclass(frozen=True)
class Setup:
    metric: str = "logLoss"
    margin: float = 0.02
    alpha: float = 0.05
    min_labeled: int = 500
    shadow_pairs: int = 200  # new labeled pairs per interval in shadow
    canary_labeled: int = 20_000  # new labeled requests per interval in canary, both versions
    steps: tuple[int, ...] = (1, 10, 50, 100)
    threshold: int = 1  # failed checks in a row (within a step) that roll back
    max_intervals: int = 300
    bounds: str = "always-valid"  # or "fixed": a fixed-n 95% interval at every look (peeking)
    threshold_score: float = 0.5


@dataclass
class Outcomes:
    rolled_back: np.ndarray
    promoted: np.ndarray
    rolled_back_in_shadow: np.ndarray
    intervals: np.ndarray  # intervals to the decision (max_intervals when undecided)
    labels: np.ndarray  # labeled requests seen until the decision
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def undecided(self) -> np.ndarray:
        return ~(self.rolled_back | self.promoted)

    def summary(self) -> dict[str, float]:
        decided = ~self.undecided
        return {
            "rollouts": int(self.promoted.size),
            "rolledBack": float(self.rolled_back.mean()),
            "rolledBackInShadow": float(self.rolled_back_in_shadow.mean()),
            "promoted": float(self.promoted.mean()),
            "undecided": float(self.undecided.mean()),
            "meanIntervalsToDecision": float(self.intervals[decided].mean())
            if decided.any()
            else math.nan,
            "meanLabelsToDecision": float(self.labels[decided].mean())
            if decided.any()
            else math.nan,
        }


def _verdicts(
    n: np.ndarray, estimate: np.ndarray, variance: np.ndarray, setup: Setup
) -> np.ndarray:
    if setup.bounds == "fixed":
        half = _Z95 * np.sqrt(variance)
    else:
        half = radius(np.nan_to_num(variance, nan=1.0), setup.margin, setup.alpha)
    low, high = estimate - half, estimate + half  # NaN estimate: no decision
    return decide(
        n,
        np.nan_to_num(low, nan=-np.inf),
        np.nan_to_num(high, nan=np.inf),
        setup.margin,
        setup.min_labeled,
    )


def simulate(world: World, setup: Setup, rollouts: int, rng: np.random.Generator) -> Outcomes:
    """``rollouts`` independent rollouts of the world's candidate, judged at every interval."""
    r, s = rollouts, world.levels.size
    joint = world.table.reshape(-1)
    cand_p, stable_p = world.marginal("candidate").reshape(-1), world.marginal("stable").reshape(-1)
    shadow = np.zeros((r, 2 * s * s), dtype=np.int64)
    cand = np.zeros((r, 2 * s), dtype=np.int64)
    stable = np.zeros((r, 2 * s), dtype=np.int64)
    phase = np.zeros(r, dtype=np.int8)  # 0 shadow, 1 canary, 2 promoted, 3 rolled back
    step = np.zeros(r, dtype=np.int64)
    failed = np.zeros(r, dtype=np.int64)
    in_shadow_back = np.zeros(r, dtype=bool)
    intervals = np.full(r, setup.max_intervals, dtype=np.int64)
    labels = np.zeros(r, dtype=np.int64)
    weights = np.asarray(setup.steps, dtype=np.float64) / 100.0
    for t in range(1, setup.max_intervals + 1):
        verdict = np.zeros(r, dtype=np.int64)
        sh = np.flatnonzero(phase == 0)
        if sh.size:
            shadow[sh] += rng.multinomial(setup.shadow_pairs, joint, size=sh.size)
            labels[sh] += setup.shadow_pairs
            n, est, var = paired_counts(
                shadow[sh].reshape(-1, 2, s, s), setup.metric, world.levels, setup.threshold_score
            )
            verdict[sh] = _verdicts(n, est, var, setup)
        ca = np.flatnonzero(phase == 1)
        if ca.size:
            k = rng.binomial(setup.canary_labeled, weights[step[ca]])
            cand[ca] += rng.multinomial(k, cand_p)
            stable[ca] += rng.multinomial(setup.canary_labeled - k, stable_p)
            labels[ca] += setup.canary_labeled
            nc, ns, est, var = concurrent_counts(
                cand[ca].reshape(-1, 2, s),
                stable[ca].reshape(-1, 2, s),
                setup.metric,
                world.levels,
                setup.threshold_score,
            )
            verdict[ca] = _verdicts(np.minimum(nc, ns), est, var, setup)
        active = phase <= 1
        failed = np.where(active & (verdict == FAIL), failed + 1, failed)
        failed = np.where(active & (verdict == PASS), 0, failed)
        back = active & (failed >= setup.threshold)
        in_shadow_back |= back & (phase == 0)
        passed = active & (verdict == PASS) & ~back
        promote = passed & (phase == 1) & (step + 1 >= len(setup.steps))
        step = np.where(passed & (phase == 1) & ~promote, step + 1, step)
        phase = np.where(passed & (phase == 0), 1, phase).astype(np.int8)
        phase[promote] = 2
        phase[back] = 3
        intervals[back | promote] = t
        if not (phase <= 1).any():
            break
    return Outcomes(phase == 3, phase == 2, in_shadow_back, intervals, labels)


def binomial_upper(count_rate: float, rollouts: int, quantile: float = 0.999) -> int:
    """The count a rate of exactly ``count_rate`` stays at or under with probability
    ``quantile``: the tolerance of a simulated error-rate assertion."""
    from scipy.stats import binom

    return int(binom.ppf(quantile, rollouts, count_rate))
