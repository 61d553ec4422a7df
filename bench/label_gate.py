"""Label gate: decision time for a window of 5,000 labeled pairs, and the gate's error rates.

    .venv/bin/python bench/label_gate.py [--pairs 5000] [--resamples 1000] [--repeats 3]
                                         [--rollouts 1000] [--margin 0.02] [--alpha 0.05]

1. Decision time: one shadow look at ``--pairs`` labeled pairs (candidate and stable scores of
   the same requests, continuous scores), from the rows to a verdict: the paired AUC difference
   with its DeLong variance (``services/monitor/outcomes/stats.compare_paired``: fast DeLong,
   Sun & Xu 2014) + ``outcome_gate.judge``, against its peer, a paired bootstrap of the AUC
   difference (``--resamples`` resamples of the pairs, vectorised numpy: one (resamples, pairs)
   index matrix, ranks per row) + the same judge; and, for scale, the bootstrap as commonly
   written (a Python loop over ``sklearn.metrics.roc_auc_score``: one run of
   ``--loop-resamples``, scaled to ``--resamples``). Log loss too
   (paired mean vs bootstrap). Median CPU and wall seconds after a warm-up; the ratio to DeLong
   is computed in the same run; the bootstrap's standard error over DeLong's says they agree.
2. The full simulation (``tests/support/gate_simulation.py``; the test suite runs a short
   version): ``--rollouts`` rollouts per row, shadow (paired) then canary 1/10/50/100%
   (concurrent), judged at every interval, for logLoss, AUC and accuracy at candidate effects
   from better by one margin to worse by three, with the strictest counting (one failed check
   rolls back) and the API default (two in a row); plus a fixed-n 95% interval judged at every
   interval (peeking) for contrast. Rates of rollback (and within it, in shadow), promotion and
   undecided (still in analysis after ``max_intervals``), mean labeled requests and intervals
   to the decision.
3. The labels a PASS needs (docs/outcomes.md): with tau = margin the always-valid radius
   reaches the margin at variance c* x margin^2, c* a constant of alpha alone; n = sigma^2 /
   (c* margin^2) with sigma^2 the per-request variance of the comparison (from the simulated
   world: paired pairs; concurrent: candidate labels with stable >> candidate).

Writes ``bench/results/label_gate.json``.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from typing import Any

import _repo  # first: it puts the repository root on sys.path
import numpy as np
from _repo import time_calls
from scipy.optimize import brentq
from scipy.special import expit
from scipy.stats import rankdata

from contracts.quality import Comparison
from operators.mlmodel.outcome_gate import judge
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

RESULTS = _repo.ROOT / "bench" / "results" / "label_gate.json"
EFFECTS = (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0)  # candidate worse by this many margins


def pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The simulation's world without rounding: labels, stable and candidate scores."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    y = (rng.random(n) < expit(-1 + 2 * z)).astype(np.float64)
    stable = expit(-1 + 2 * (z + 0.5 * rng.standard_normal(n)))
    cand = expit(-1 + 2 * (z + 0.55 * rng.standard_normal(n)))
    return y, stable, cand


def _judge(metric: str, n: int, estimate: float, variance: float, args: argparse.Namespace) -> Any:
    comparison = Comparison(
        metric=metric,  # type: ignore[arg-type]
        candidate="2",
        stable="1",
        design="paired",
        n=n,
        n_stable=n,
        estimate=estimate,
        variance=variance,
        method="bench",
        since=0.0,
    )
    return judge(comparison, args.margin, 500, args.alpha)


def bootstrap_auc_difference(y: np.ndarray, cand: np.ndarray, stable: np.ndarray, b: int) -> Any:
    """Paired bootstrap: resample the pairs, AUC difference per resample (vectorised)."""
    rng = np.random.default_rng(1)
    idx = rng.integers(0, y.size, size=(b, y.size))
    labels = y[idx]
    m = labels.sum(axis=1)
    n = y.size - m
    diffs = np.zeros(b)
    for sign, scores in ((1.0, cand), (-1.0, stable)):
        ranks = rankdata(scores[idx], axis=1)
        auc = ((ranks * labels).sum(axis=1) - m * (m + 1) / 2) / (m * n)
        diffs += sign * auc
    return diffs


def bootstrap_loop(y: np.ndarray, cand: np.ndarray, stable: np.ndarray, b: int) -> Any:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    diffs = []
    for _ in range(b):
        i = rng.integers(0, y.size, y.size)
        diffs.append(roc_auc_score(y[i], cand[i]) - roc_auc_score(y[i], stable[i]))
    return np.asarray(diffs)


def decision_times(args: argparse.Namespace) -> list[dict[str, Any]]:
    y, stable, cand = pairs(args.pairs)
    rows: list[dict[str, Any]] = []
    est, var, _ = stats.compare_paired(cand, stable, y, "auc")
    assert est is not None and var is not None
    boot = bootstrap_auc_difference(y, cand, stable, args.resamples)

    def delong_look() -> Any:
        e, v, _ = stats.compare_paired(cand, stable, y, "auc")
        return _judge("auc", y.size, e, v, args)  # type: ignore[arg-type]

    def bootstrap_look() -> Any:
        d = bootstrap_auc_difference(y, cand, stable, args.resamples)
        return _judge("auc", y.size, float(d.mean()), float(d.var(ddof=1)), args)

    def mean_look() -> Any:
        e, v, _ = stats.compare_paired(cand, stable, y, "logLoss")
        return _judge("logLoss", y.size, e, v, args)  # type: ignore[arg-type]

    losses = stats.row_log_loss(stable, y) - stats.row_log_loss(cand, y)

    def mean_bootstrap_look() -> Any:
        idx = np.random.default_rng(1).integers(0, y.size, size=(args.resamples, y.size))
        d = losses[idx].mean(axis=1)
        return _judge("logLoss", y.size, float(d.mean()), float(d.var(ddof=1)), args)

    cases = [
        ("auc", "DeLong (fast, paired)", delong_look, args.repeats, math.sqrt(var)),
        ("auc", f"paired bootstrap x{args.resamples}, numpy", bootstrap_look, args.repeats,
         float(boot.std(ddof=1))),
        ("logLoss", "paired per-request mean", mean_look, args.repeats, None),
        ("logLoss", f"paired bootstrap x{args.resamples}, numpy", mean_bootstrap_look,
         args.repeats, None),
    ]  # fmt: skip
    for metric, method, call, repeats, se in cases:
        wall, cpu = time_calls(call, repeats)
        rows.append({"metric": metric, "method": method, "wall_s": wall, "cpu_s": cpu, "se": se})
    if args.loop_resamples:
        import sklearn.metrics  # noqa: F401  (imported before the clock starts)

        # Run once with fewer resamples and scaled (it is linear in them): the whole loop
        # would take most of the 60 s a benchmark may take here.
        scale = args.resamples / args.loop_resamples
        started, cpu0 = time.perf_counter(), time.process_time()
        loop = bootstrap_loop(y, cand, stable, args.loop_resamples)
        rows.append(
            {
                "metric": "auc",
                "method": f"bootstrap x{args.resamples}, sklearn loop (x{scale:g} of 1 run)",
                "wall_s": (time.perf_counter() - started) * scale,
                "cpu_s": (time.process_time() - cpu0) * scale,
                "se": float(loop.std(ddof=1)),
            }
        )
    for metric in ("auc", "logLoss"):
        peer = next(r for r in rows if r["metric"] == metric)
        for r in rows:
            if r["metric"] == metric:
                r["cpu_ratio_to_analytic"] = r["cpu_s"] / peer["cpu_s"]
                r["se_ratio_to_delong"] = r["se"] / peer["se"] if r["se"] and peer["se"] else None
    return rows


def simulations(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    plans: list[tuple[str, float, dict[str, Any]]] = []
    for metric in ("logLoss", "auc", "accuracy"):
        plans += [(metric, effect, {}) for effect in EFFECTS]
    plans.append(("logLoss", 0.0, {"threshold": 2}))
    plans.append(("logLoss", 0.0, {"bounds": "fixed"}))
    for i, (metric, effect, extra) in enumerate(plans):
        world = make_world() if effect == 0 else worse_world(metric, effect * args.margin)
        setup = Setup(metric=metric, margin=args.margin, alpha=args.alpha, **extra)
        started = time.perf_counter()
        outcome = simulate(world, setup, args.rollouts, np.random.default_rng(100 + i))
        row = {
            "metric": metric,
            "worseByMargins": effect,
            "threshold": setup.threshold,
            "bounds": setup.bounds,
            **outcome.summary(),
            "seconds": time.perf_counter() - started,
        }
        rows.append(row)
        print(
            f"{metric:<9}{effect:>+6.1f}m {setup.bounds:<13} thr {setup.threshold}  "
            f"rolled back {row['rolledBack']:6.1%} (shadow {row['rolledBackInShadow']:6.1%})  "
            f"promoted {row['promoted']:6.1%}  undecided {row['undecided']:5.1%}  "
            f"labels {row['meanLabelsToDecision']:>10,.0f}  intervals "
            f"{row['meanIntervalsToDecision']:6.1f}  ({row['seconds']:.1f} s)",
            flush=True,
        )
    return rows


def c_star(alpha: float) -> float:
    """V / margin^2 at which the radius equals the margin (tau = margin): a constant of alpha."""
    return float(
        brentq(lambda c: c * (1 + c) * (2 * math.log(1 / alpha) + math.log(1 + 1 / c)) - 1, 1e-6, 1)
    )


def labels_needed(args: argparse.Namespace) -> dict[str, Any]:
    world = make_world()
    expected = world.table[None] * 1e6  # expected counts of a million requests: population
    per_request: dict[str, float] = {}
    for metric in ("logLoss", "auc", "accuracy"):
        n, _, var = paired_counts(expected, metric, world.levels)
        per_request[f"paired {metric}"] = float(var[0] * n[0])
        arm = world.marginal("stable")[None] * 1e6
        _, _, _, v = concurrent_counts(arm, arm, metric, world.levels)
        per_request[f"concurrent {metric}"] = float(v[0] * 1e6 / 2)  # one arm's sigma^2
    constants = {str(a): c_star(a) for a in (0.01, 0.05, 0.10)}
    fixed = 1 / 1.959963984540054**2
    c = c_star(args.alpha)
    table = {
        design: {str(m): math.ceil(s2 / (c * m * m)) for m in (0.005, 0.01, 0.02, 0.05)}
        for design, s2 in per_request.items()
    }
    return {"cStar": constants, "cFixedN95": fixed, "sigma2": per_request, "labels": table}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--margin", type=float, default=0.02)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument(
        "--loop-resamples", type=int, default=100, help="sklearn-loop bootstrap; 0: skip it"
    )
    args = parser.parse_args()

    print(f"1. one shadow look at {args.pairs:,} labeled pairs, median of {args.repeats}")
    timings = decision_times(args)
    for r in timings:
        se = f"{r['se_ratio_to_delong']:.3f}" if r.get("se_ratio_to_delong") else "-"
        print(
            f"  {r['metric']:<8}{r['method']:<42} cpu {r['cpu_s'] * 1e3:9.2f} ms  wall "
            f"{r['wall_s'] * 1e3:9.2f} ms  cpu x analytic {r['cpu_ratio_to_analytic']:8.1f}  "
            f"se / DeLong {se}"
        )
    print(f"2. {args.rollouts} rollouts per row, margin {args.margin}, alpha {args.alpha}")
    sims = simulations(args)
    print(
        f"   tolerance: {binomial_upper(args.alpha, args.rollouts)} of {args.rollouts} "
        f"(alpha), {binomial_upper(0.10, args.rollouts)} (beta 10%): 99.9% binomial quantiles"
    )
    needed = labels_needed(args)
    print(f"3. c* (V / margin^2 at PASS with estimate 0): {needed['cStar']}, fixed-n 95%: "
          f"{needed['cFixedN95']:.4f}")  # fmt: skip
    for design, by_margin in needed["labels"].items():
        print(f"  {design:<22} sigma^2 {needed['sigma2'][design]:.4f}  labels {by_margin}")
    report = {
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "args": vars(args),
        "decisionTime": timings,
        "simulation": sims,
        "labelsNeeded": needed,
    }
    print(f"wrote {_repo.write_json(RESULTS, report)}")


if __name__ == "__main__":
    main()
