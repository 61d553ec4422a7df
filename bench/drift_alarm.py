"""Drift alarm rules side by side: false alarms on unshifted data, delay on shifted data.

    .venv/bin/python bench/drift_alarm.py [--null-windows 24000] [--runs 60] [--seed 0]

One run, the same simulated window p-values for every rule (the monitor's ``ks`` detector:
10 features, windows of 500 rows against a 5,000-row reference, Bonferroni across features;
``services/monitor/drift/tests/alarm_sim.py`` reproduces its p-values exactly):

* ``window p<0.05``: the rule before alarms (``alarm`` unset, the API default pValue): every
  failing window alarms.
* ``window p<1/N``: the same single-window rule with pValue lowered to match a budget of one
  false alarm per ``N`` windows (what the demo used to do by hand with 0.001).
* ``consecutive 3``: 3 failing evidence windows in a row at pValue 0.05.
* ``cusum ERT=N``: the declared budget, ``expectedRunTime = N`` drift intervals.

False alarms: ``--null-windows`` unshifted windows, a fresh reference every 3,000 (alarms are
counted as onsets, the rule restarting after each, as after a retrain). Delay: ``--runs``
streams per shift size, each with its own reference, windows after the shift until the alarm
(censored at ``--max-windows``). Prints two tables and writes ``bench/results/drift_alarm.json``.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import _repo  # noqa: F401  (puts the repository root on sys.path)
import numpy as np

from services.monitor.drift.alarm import AlarmRule
from services.monitor.drift.tests import alarm_sim as sim

P_VALUE = 0.05
PER_REFERENCE = 3000
BUDGETS = (200.0, 2880.0)  # evidence windows: 2880 = one false alarm a day at 30 s checks
SHIFTS = (0.1, 0.15, 0.2, 0.3, 0.5)


def rules() -> dict[str, tuple[AlarmRule | None, float]]:
    """name -> (alarm rule or None for a single-window rule, the window test's p threshold)."""
    out: dict[str, tuple[AlarmRule | None, float]] = {
        f"window p<{P_VALUE}": (None, P_VALUE),
        "consecutive 3": (sim.rule(consecutive=3), P_VALUE),
    }
    for budget in BUDGETS:
        out[f"window p<1/{budget:g}"] = (None, 1.0 / budget)
        out[f"cusum ERT={budget:g}"] = (sim.rule(budget), P_VALUE)
    return out


def declared(name: str) -> float | None:
    if "ERT=" in name or "1/" in name:
        return float(name.rsplit("=" if "ERT=" in name else "/", 1)[1])
    return None


def false_alarm_table(
    rng: np.random.Generator, windows: int
) -> tuple[list[dict[str, object]], float]:
    started = time.perf_counter()
    chunks = [
        sim.window_p_values(rng, sim.reference(rng), PER_REFERENCE)
        for _ in range(max(1, windows // PER_REFERENCE))
    ]
    total = sum(len(c) for c in chunks)
    rows = []
    for name, (rule, threshold) in rules().items():
        if rule is None:
            alarms = sum(sim.raw_alarms(c, threshold) for c in chunks)
        else:
            alarms = sum(sim.false_alarms(rule, c, threshold) for c in chunks)
        budget = declared(name)
        rows.append(
            {
                "rule": name,
                "windows": total,
                "false_alarms": alarms,
                "per_1000_windows": 1000 * alarms / total,
                "declared_per_1000": None if budget is None else 1000 / budget,
                "measured_run_length": total / alarms if alarms else None,
                "per_day_at_30s": alarms / total * 2880,
            }
        )
    return rows, time.perf_counter() - started


def delay_table(
    rng: np.random.Generator, runs: int, max_windows: int
) -> tuple[list[dict[str, object]], float]:
    started = time.perf_counter()
    rows = []
    for shift in SHIFTS:
        streams = [
            sim.window_p_values(rng, sim.reference(rng), max_windows, shift=shift)
            for _ in range(runs)
        ]
        for name, (rule, threshold) in rules().items():
            found = _delays(rule, threshold, streams)
            detected = [d for d in found if d is not None]
            rows.append(
                {
                    "shift_sigma": shift,
                    "rule": name,
                    "detected": len(detected) / runs,
                    "median_windows": _quantile(found, max_windows, 0.5),
                    "p90_windows": _quantile(found, max_windows, 0.9),
                }
            )
    return rows, time.perf_counter() - started


def _delays(
    rule: AlarmRule | None, threshold: float, streams: list[np.ndarray]
) -> list[int | None]:
    if rule is not None:
        return sim.delays(rule, iter(streams), threshold)
    first: Callable[[np.ndarray], int | None] = lambda s: (  # noqa: E731
        int(np.argmax(s < threshold)) + 1 if (s < threshold).any() else None
    )
    return [first(s) for s in streams]


def _quantile(found: list[int | None], censor: int, q: float) -> float | str:
    """A delay quantile over all runs, a run without an alarm counting as beyond the censor."""
    values = np.array([censor + 1 if d is None else d for d in found], dtype=float)
    value = float(np.quantile(values, q, method="inverted_cdf"))
    return f">{censor}" if value > censor else value


def _ratio_rows(delays: list[dict[str, object]]) -> list[dict[str, object]]:
    """Per shift: the CUSUM's median delay over the single-window rule at the same budget."""
    out = []
    for shift in SHIFTS:
        by_rule = {r["rule"]: r for r in delays if r["shift_sigma"] == shift}
        for budget in BUDGETS:
            cusum = by_rule[f"cusum ERT={budget:g}"]["median_windows"]
            single = by_rule[f"window p<1/{budget:g}"]["median_windows"]
            both = isinstance(cusum, float) and isinstance(single, float)
            out.append(
                {
                    "shift_sigma": shift,
                    "budget_windows": budget,
                    "cusum_median": cusum,
                    "single_window_median": single,
                    "ratio": cusum / single if both else None,  # type: ignore[operator]
                }
            )
    return out


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--null-windows", type=int, default=24_000)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--max-windows", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(_repo.ROOT / "bench/results/drift_alarm.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    alarms, null_s = false_alarm_table(rng, args.null_windows)
    delays, delay_s = delay_table(rng, args.runs, args.max_windows)
    ratios = _ratio_rows(delays)
    print(f"False alarms over {alarms[0]['windows']} unshifted windows ({null_s:.1f} s)")
    print(
        "| rule | false alarms | per 1,000 windows | declared per 1,000 | run length | per day at 30 s |"
    )
    print("|---|---|---|---|---|---|")
    for r in alarms:
        print(f"| {r['rule']} | {r['false_alarms']} | {_fmt(r['per_1000_windows'])} | "
              f"{_fmt(r['declared_per_1000'])} | {_fmt(r['measured_run_length'])} | "
              f"{_fmt(r['per_day_at_30s'])} |")  # fmt: skip
    print(f"\nDelay after a shift of one of 10 features, {args.runs} runs ({delay_s:.1f} s)")
    print("| shift σ | rule | alarmed within max | median windows | p90 windows |")
    print("|---|---|---|---|---|")
    for r in delays:
        print(f"| {r['shift_sigma']} | {r['rule']} | {_fmt(r['detected'])} | "
              f"{_fmt(r['median_windows'])} | {_fmt(r['p90_windows'])} |")  # fmt: skip
    print("\nCUSUM median delay / single-window rule at the same budget")
    for r in ratios:
        print(f"  shift {r['shift_sigma']}σ, budget {r['budget_windows']:g}: "
              f"{_fmt(r['cusum_median'])} vs {_fmt(r['single_window_median'])} "
              f"(ratio {_fmt(r['ratio'])})")  # fmt: skip
    report = {
        "machine": platform.platform(),
        "args": vars(args),
        "false_alarms": alarms,
        "delays": delays,
        "ratios": ratios,
    }
    print(f"\nwrote {_repo.write_json(args.out, report)}")


if __name__ == "__main__":
    main()
