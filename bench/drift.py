"""Drift detector compute time per window (1,000 rows x 20 features), every detector.

    .venv/bin/python bench/drift.py [--repeats 5] [--device cpu|cuda] [--permutations 100]

Prints a table (median wall and CPU seconds per window, and the CPU-time ratio to the scipy
``ks`` detector measured in the same run) and writes ``bench/results/drift_<device>.json``.
The reference is 5,000 rows for the univariate tests; MMD's cost grows with
(reference + window)^2, so both MMD detectors get a 1,000-row reference (``--mmd-reference-rows``).
``--device cuda`` runs MMD on the GPU as well as on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from _repo import time_calls

from services.monitor.drift import NullRateCheck, SkewCheck, create_detector

FEATURES = 20
WINDOW_ROWS = 1000
CATEGORICAL = {f"f{i}" for i in range(15, 20)}  # tabular/chi2 runs see 5 categorical features
RESULTS = Path(__file__).parent / "results"


@dataclass
class Timing:
    detector: str
    license: str
    setting: str
    fit_s: float
    wall_s: float
    cpu_s: float
    ratio_to_ks: float = 0.0


def data(rng: np.random.Generator, rows: int, categorical: bool) -> np.ndarray:
    matrix = rng.standard_normal((rows, FEATURES))
    if categorical:
        matrix[:, 15:] = np.searchsorted([-1.0, 0.0, 1.0], matrix[:, 15:])
    return matrix


def bench_detector(
    name: str, args: argparse.Namespace, device: str = "cpu", **options: object
) -> Timing:
    rng = np.random.default_rng(0)
    mixed = name in ("tabular", "alibi-tabular", "chi2", "alibi-chi2", "psi")
    kernel = name in ("mmd", "alibi-mmd")
    reference_rows = args.mmd_reference_rows if kernel else args.reference_rows
    reference = data(rng, reference_rows, mixed)
    window = data(rng, WINDOW_ROWS, mixed)
    if kernel:
        options = {"n_permutations": args.permutations, "device": device, **options}
    detector = create_detector(name, **options)  # type: ignore[arg-type]
    names = [f"f{i}" for i in range(FEATURES)]
    if name == "prediction":  # drift of the model's score: one column of 1,000 scores
        reference, window, names = reference[:, :1], window[:, :1], ["score"]
    started = time.perf_counter()
    detector.fit(reference, names, CATEGORICAL if mixed else set())
    fit_s = time.perf_counter() - started
    wall, cpu = time_calls(lambda: detector.check(window), args.repeats)
    setting = (
        f"ref {reference_rows}"
        + (", 1 score column" if name == "prediction" else "")
        + (f", {args.permutations} perms, {device}" if kernel else "")
    )
    return Timing(name, detector.license, setting, fit_s, wall, cpu)


def bench_quality(args: argparse.Namespace) -> list[Timing]:
    rng = np.random.default_rng(1)
    names = [f"f{i}" for i in range(FEATURES)]
    reference, window = data(rng, args.reference_rows, False), data(rng, WINDOW_ROWS, False)
    null_check = NullRateCheck().fit(reference, names)
    skew = SkewCheck(names)
    offline = window + rng.normal(0, 1e-4, window.shape)
    timings = []
    for label, call in (
        ("null-rate", lambda: null_check.check(window)),
        ("skew", lambda: skew.check(window, offline)),
    ):
        wall, cpu = time_calls(call, args.repeats)
        timings.append(
            Timing(label, "Apache-2.0", "1,000 pairs" if label == "skew" else "", 0.0, wall, cpu)
        )
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--reference-rows", type=int, default=5000)
    parser.add_argument("--mmd-reference-rows", type=int, default=1000)
    parser.add_argument("--torch-threads", type=int, default=0, help="0: torch's default")
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)

    names = ["ks", "chi2", "tabular", "psi", "prediction", "mmd",
             "alibi-ks", "alibi-chi2", "alibi-tabular", "alibi-mmd"]  # fmt: skip
    timings = [bench_detector(n, args) for n in names]
    if args.device == "cuda":
        timings += [bench_detector(n, args, device="cuda") for n in ("mmd", "alibi-mmd")]
    timings += bench_quality(args)
    peer = next(t for t in timings if t.detector == "ks")
    for t in timings:
        # CPU time: on a shared CI box wall time mostly measures the neighbours.
        t.ratio_to_ks = t.cpu_s / peer.cpu_s

    print(f"per window of {WINDOW_ROWS} rows x {FEATURES} features, median of {args.repeats}")
    print(
        f"{'detector':<16}{'setting':<28}{'fit s':>8}{'wall ms':>10}{'cpu ms':>10}{'cpu x ks':>10}"
    )
    for t in timings:
        print(f"{t.detector:<16}{t.setting:<28}{t.fit_s:>8.2f}{t.wall_s * 1e3:>10.1f}"
              f"{t.cpu_s * 1e3:>10.1f}{t.ratio_to_ks:>10.2f}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"drift_{args.device}.json"
    out.write_text(
        json.dumps(
            {
                "window_rows": WINDOW_ROWS,
                "features": FEATURES,
                "repeats": args.repeats,
                "host": {
                    "machine": platform.machine(),
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                },  # fmt: skip
                "timings": [asdict(t) for t in timings],
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
