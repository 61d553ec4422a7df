"""The Degraded test's false-alarm rate and power over longer runs than the suite's
(``tests/support/degraded_simulation.py``: the operator's rule judged at every pass).

Cases (validation 0.80, margin 0.02, alpha 0.05, windows of 500 labels, 250 new per pass):
accuracy at validation, at the boundary validation - margin, and worse by 2 and 3 margins;
for each, the share of sequences ever called Degraded within ``--passes`` and the median pass
of the first alarm, for the sequential rule and for peeking at the window's fixed 95% interval
(the rule it replaced).

    .venv/bin/python bench/degraded_alarm.py [--sequences 2000 --passes 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import _repo
import numpy as np

from tests.support.degraded_simulation import World, first_alarms

RESULTS = _repo.ROOT / "bench" / "results" / "degraded_alarm.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=2000)
    parser.add_argument("--passes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    cases = {"atValidation": 0.80, "atBoundary": 0.78, "worseBy2Margins": 0.76,
             "worseBy3Margins": 0.74}  # fmt: skip
    result: dict[str, object] = {}
    for name, accuracy in cases.items():
        world = World(accuracy=accuracy, passes=args.passes)
        row = {}
        for rule, peek in (("sequential", False), ("peekFixed95", True)):
            alarms = first_alarms(world, args.sequences, rng, peek=peek)
            fired = alarms[alarms >= 0]
            row[rule] = {
                "alarmRate": round(float(fired.size / args.sequences), 4),
                "medianFirstAlarmPass": float(np.median(fired)) if fired.size else None,
            }
        result[name] = {"accuracy": accuracy, **row}
        print(name, json.dumps(row), flush=True)
    report = {
        "benchmark": "degraded_alarm",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "sequences": args.sequences,
        "passes": args.passes,
        "world": {
            "validation": 0.80,
            "margin": 0.02,
            "alpha": 0.05,
            "window": 500,
            "perPass": 250,
        },  # fmt: skip
        "cases": result,
    }
    _repo.write_json(args.output, report)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
