"""DDP training throughput: samples/s at 1 and N processes, and the scaling efficiency.

    .venv/bin/python bench/ddp.py                      # CPU, gloo, 1 vs 2 processes
    .venv/bin/python bench/ddp.py --backend nccl --device cuda --procs 1,2

Each configuration is a real `torchrun --standalone` run through `components.train_ddp.impl
.train` on the same synthetic data, same global batch and same seed. samples/s is the
trainer's own figure (training loop only: no start-up, validation or checkpointing), summed
over all ranks. Speedup = sps(N) / sps(1); efficiency = speedup / N. On a machine that other
work shares, wall figures understate scaling, so the CPU cost is reported too: samples per
CPU-second of the training loops over all ranks, and cpu_efficiency = that figure at N over
the figure at 1 (1.0: DDP adds no work per sample; with N free cores, efficiency tends to it).
Ratios only mean something against the peer measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.train_ddp.impl import train

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def synthetic_table(rows: int, features: int, seed: int) -> pd.DataFrame:
    # One true model for both tables; only the rows differ by seed.
    weights = np.random.default_rng(0).normal(size=features) / np.sqrt(features)
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, features)).astype(np.float32)
    logits = values @ weights + 0.5 * np.sin(values[:, 0] * 2)
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    frame = pd.DataFrame(values, columns=[f"f{index}" for index in range(features)])
    return frame.assign(label=labels)


def write_data(directory: Path, rows: int, features: int) -> tuple[Path, Path]:
    training, validation = directory / "train.parquet", directory / "validation.parquet"
    synthetic_table(rows, features, seed=1).to_parquet(training)
    synthetic_table(max(rows // 10, 1000), features, seed=2).to_parquet(validation)
    return training, validation


def measure(
    args: argparse.Namespace, data: tuple[Path, Path], nproc: int, workdir: Path
) -> dict[str, Any]:
    started = time.perf_counter()
    summary = train(
        data[0],
        data[1],
        "label",
        workdir / f"nproc-{nproc}",
        epochs=args.epochs,
        batch_size=args.batch_size,
        hidden_units=[int(units) for units in args.hidden.split(",") if units],
        nproc_per_node=nproc,
        backend=args.backend,
        device=args.device,
        num_threads=args.threads_per_proc,
        max_restarts=0,
    )
    return {
        "nproc": nproc,
        "samples_per_sec": summary.samples_per_sec,
        # Samples per CPU-second of the training loops (all ranks): what the work costs,
        # independent of how many cores other processes left free during the run.
        "samples_per_cpu_sec": summary.samples_trained / summary.train_cpu_seconds,
        "final_train_loss": summary.final_train_loss,
        "wall_s": round(time.perf_counter() - started, 2),
        "backend": summary.backend,
        "device": summary.device,
    }


def scaling(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wall speedup/efficiency, and the CPU cost ratio (1.0: no extra work per sample)."""
    base = next(result for result in results if result["nproc"] == 1)
    return [
        {
            "nproc": result["nproc"],
            "speedup": result["samples_per_sec"] / base["samples_per_sec"],
            "efficiency": result["samples_per_sec"] / base["samples_per_sec"] / result["nproc"],
            "cpu_efficiency": result["samples_per_cpu_sec"] / base["samples_per_cpu_sec"],
        }
        for result in results
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024, help="global batch")
    parser.add_argument("--hidden", default="256,128")
    parser.add_argument("--procs", default="1,2")
    parser.add_argument("--backend", default="gloo", choices=["auto", "gloo", "nccl"])
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--threads-per-proc", type=int, default=1, help="torch threads per rank (CPU)"
    )
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    procs = sorted({int(count) for count in args.procs.split(",")} | {1})
    with tempfile.TemporaryDirectory(prefix="kubeloop-bench-ddp-") as scratch:
        workdir = Path(scratch)
        data = write_data(workdir, args.rows, args.features)
        results = [measure(args, data, nproc, workdir) for nproc in procs]
    ratios = scaling(results)
    for result, ratio in zip(results, ratios, strict=True):
        print(
            f"nproc={result['nproc']} {result['backend']}/{result['device']}: "
            f"{result['samples_per_sec']:,.0f} samples/s  speedup x{ratio['speedup']:.2f}  "
            f"efficiency {ratio['efficiency']:.0%}  "
            f"{result['samples_per_cpu_sec']:,.0f} samples/CPU-s  "
            f"CPU efficiency {ratio['cpu_efficiency']:.0%}  (wall {result['wall_s']} s)"
        )
    report = {
        "benchmark": "ddp",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            # Other work on the machine skews the figures; the load says how much.
            "load_average_1m_at_end": os.getloadavg()[0],
        },
        "config": {key: str(value) for key, value in vars(args).items()},
        "results": results,
        "scaling": ratios,
    }
    out = args.out or RESULTS_DIR / f"ddp-{args.device}-{args.backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
