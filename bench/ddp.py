"""DDP training throughput: samples/s at 1 and N processes, and the scaling efficiency.

    .venv/bin/python bench/ddp.py --rounds 3           # CPU: 1 proc vs 2 (gloo, shared memory)
    .venv/bin/python bench/ddp.py --backend nccl --device cuda --procs 1,2

Each configuration is a real `torchrun --standalone` run through `components.train_ddp.impl
.train` on the same synthetic data, same global batch and same seed. samples/s is the
trainer's own figure (training loop only: no start-up, validation or checkpointing), summed
over all ranks. Speedup = sps(N) / sps(1); efficiency = speedup / N. On a machine that other
work shares, wall figures understate scaling, so the CPU cost is reported too: samples per
CPU-second of the training loops over all ranks, and cpu_efficiency = that figure at N over
the figure at 1 (1.0: DDP adds no work per sample; with N free cores, efficiency tends to it).

On CPU each N runs twice: under torch's DDP with the process group's all-reduce (gloo), and
with the trainer's default when all ranks are local CPU processes, the sharded step through
shared memory (components/train_ddp/local_sharded.py); 1 process runs the trainer's default
(the sharded step with nothing to share). Unless --no-breakdown, every
run also reports milliseconds per step per rank by phase (data, forward, backward, all-reduce,
optimizer; wall and process CPU) from the trainer's step breakdown. Targets run in interleaved
rounds (--rounds) and the ratios are per round against that round's 1 process, then the median.
Also printed: the ratio of medians (each target's median samples/s over the rounds ÷ 1
process's). On a host whose speed drifts within a round, pairing the rounds does not cancel
the drift and a per-round ratio carries the noise of both runs; each target's median does not.
Before each CPU round a probe measures the parallel ceiling: the trainer's own one-rank loop
(`train_epoch`, sharded step of one rank) run as N independent processes at the per-rank batch,
together, over one such process at the global batch — the speedup of an exchange that costs
nothing, at this moment on this machine. Each target's speedup is also printed as a share of it
("of ceiling"): what the exchanges cost, apart from what the machine gives two busy cores.
For the sharded step, "optimizer xF of its share" is a rank's Adam time per step over 1/N of
one process's: Adam writes the lines the other ranks read, so F reads the host's cross-core
state during the run itself (1.3-1.6 in the rounds where lines moved cheaply, 1.9-4.5 in the
slow state that `bench/ddp_crosscore.py` probes; docs/benchmarks.md).
Ratios only mean something against the peer measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.train_ddp.impl import train

RESULTS_DIR = Path(__file__).resolve().parent / "results"
STEP_PROBE = Path(__file__).resolve().parent / "ddp_step_probe.py"  # one process of the ceiling


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
    args: argparse.Namespace, data: tuple[Path, Path], target: tuple[int, bool], workdir: Path
) -> dict[str, Any]:
    nproc, shared = target
    started, load = time.perf_counter(), os.getloadavg()[0]
    summary = train(
        data[0],
        data[1],
        "label",
        workdir / f"{label(target)}-{started}",
        epochs=args.epochs,
        batch_size=args.batch_size,
        hidden_units=[int(units) for units in args.hidden.split(",") if units],
        nproc_per_node=nproc,
        backend=args.backend,
        device=args.device,
        num_threads=args.threads_per_proc,
        step_breakdown=args.breakdown,
        shared_memory_allreduce=shared,
        max_restarts=0,
    )
    return {
        "target": label(target),
        "nproc": nproc,
        "sharded": shared,
        "samples_per_sec": summary.samples_per_sec,
        # Samples per CPU-second of the training loops (all ranks): what the work costs,
        # independent of how many cores other processes left free during the run.
        "samples_per_cpu_sec": summary.samples_trained / summary.train_cpu_seconds,
        "final_train_loss": summary.final_train_loss,
        "step_ms": summary.step_ms,
        "wall_s": round(time.perf_counter() - started, 2),
        "load_average_1m_before": load,
        "backend": summary.backend,
        "device": summary.device,
    }


def step_rates(batch: int, count: int, args: argparse.Namespace, seconds: float) -> list[float]:
    """Samples/s of `count` step probes at `batch`, run together from the same moment."""
    start_at = time.time() + 5.0  # past every probe's imports and warm-up
    command = [sys.executable, str(STEP_PROBE), str(batch), str(args.features)]
    command += [str(start_at), str(seconds), args.hidden]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    outputs = [proc.communicate()[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"step probe failed: {[proc.returncode for proc in procs]}")
    return [float(output) for output in outputs]


def parallel_ceiling(nproc: int, args: argparse.Namespace, seconds: float = 3.0) -> float:
    """What N independent trainer loops at the per-rank batch get together ÷ what one loop
    at the global batch gets, now: the bound on any N-rank data-parallel speedup of this
    training step at this moment, with an exchange that costs nothing.

    2.0 for 2 ranks when the machine runs two of them as fast as one and the smaller batch
    costs the same per sample; more where the smaller batch is cheaper per sample (a smaller
    working set); less while other work holds part of a core, while the host slows two busy
    vCPUs together, or where the per-step costs that do not shrink with the batch weigh.
    DDP's speedup is read against it."""
    together = sum(step_rates(args.batch_size // nproc, nproc, args, seconds))
    return together / step_rates(args.batch_size, 1, args, seconds)[0]


def label(target: tuple[int, bool]) -> str:
    nproc, shared = target
    if nproc == 1:
        return "1 proc"
    return f"{nproc} procs, " + (
        "shared-memory sharded step" if shared else "DDP, process-group all-reduce"
    )


def targets(args: argparse.Namespace) -> list[tuple[int, bool]]:
    """One process (the trainer's default), then each N: (CPU) sharded, then under DDP."""
    counts = sorted({int(count) for count in args.procs.split(",")} - {1})
    # The sharded step (the default) first, nearest the round's ceiling probe.
    variants = [True, False] if args.device == "cpu" else [False]
    return [(1, args.device == "cpu")] + [(n, shared) for n in counts for shared in variants]


def round_ratios(
    results: list[dict[str, Any]], ceiling: dict[int, float]
) -> dict[str, dict[str, float]]:
    """Per target: wall speedup, efficiency and CPU efficiency against this round's 1 proc,
    and (CPU) the speedup as a share of this round's parallel ceiling at its N."""
    base = next(result for result in results if result["nproc"] == 1)
    ratios = {}
    for result in results:
        speedup = result["samples_per_sec"] / base["samples_per_sec"]
        ratios[result["target"]] = {
            "speedup": speedup,
            "efficiency": speedup / result["nproc"],
            "cpu_efficiency": result["samples_per_cpu_sec"] / base["samples_per_cpu_sec"],
        }
        if result["nproc"] in ceiling:
            ratios[result["target"]]["of_ceiling"] = speedup / ceiling[result["nproc"]]
        if result["nproc"] > 1 and result["sharded"] and result["step_ms"] and base["step_ms"]:
            # Each rank's Adam covers 1/N of the model: its time over 1/N of one process's.
            share = base["step_ms"]["wall"]["optimizer"] / result["nproc"]
            ratios[result["target"]]["optimizer_over_share"] = (
                result["step_ms"]["wall"]["optimizer"] / share
            )
    return ratios


def ratio_of_median_rates(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """Per target: its median samples/s over the rounds ÷ the 1-process target's median."""
    medians = {
        name: statistics.median(
            result["samples_per_sec"]
            for entry in rounds
            for result in entry["results"]
            if result["target"] == name
        )
        for name in rounds[0]["ratios"]
    }
    base = next(
        medians[result["target"]] for result in rounds[0]["results"] if result["nproc"] == 1
    )
    return {name: rate / base for name, rate in medians.items()}


def share_columns(ratio: dict[str, float]) -> str:
    """The speedup's share of the ceiling and (sharded step) Adam's time over its share."""
    shown = f"{ratio['of_ceiling']:.0%} of ceiling  " if "of_ceiling" in ratio else ""
    if "optimizer_over_share" in ratio:
        shown += f"optimizer x{ratio['optimizer_over_share']:.2f} of its share  "
    return shown


def print_round(index: int, results: list[dict[str, Any]], ratios: dict[str, Any]) -> None:
    for result in results:
        ratio = ratios[result["target"]]
        print(
            f"round {index} {result['target']} ({result['backend']}/{result['device']}, "
            f"load {result['load_average_1m_before']:.1f}): "
            f"{result['samples_per_sec']:,.0f} samples/s  speedup x{ratio['speedup']:.2f}  "
            f"efficiency {ratio['efficiency']:.0%}  "
            f"{result['samples_per_cpu_sec']:,.0f} samples/CPU-s  "
            f"CPU efficiency {ratio['cpu_efficiency']:.0%}  "
            + share_columns(ratio)
            + f"(wall {result['wall_s']} s)"
        )
        for clock, phases in (result["step_ms"] or {}).items():
            shown = "  ".join(f"{phase} {ms:.3f}" for phase, ms in phases.items())
            print(f"    {clock} ms per step per rank: {shown}  (sum {sum(phases.values()):.3f})")


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
    parser.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="skip the per-step phase timing (a timed all-reduce hook replaces DDP's own)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    load_at_start = os.getloadavg()[0]
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kubeloop-bench-ddp-") as scratch:
        workdir = Path(scratch)
        data = write_data(workdir, args.rows, args.features)
        # Rounds interleave the targets, so a burst of other work on the machine hits one
        # round's ratio rather than one target's every figure.
        for index in range(1, args.rounds + 1):
            counts = sorted({t[0] for t in targets(args)} - {1})
            # CPU only: what N independent one-rank trainer loops get at this moment.
            ceiling = {n: parallel_ceiling(n, args) for n in counts} if args.device == "cpu" else {}
            for count, bound in ceiling.items():
                print(f"round {index} parallel ceiling at {count} procs (step probe): x{bound:.2f}")
            results = [measure(args, data, target, workdir) for target in targets(args)]
            ratios = round_ratios(results, ceiling)
            print_round(index, results, ratios)
            rounds.append({"results": results, "ratios": ratios, "parallel_ceiling": ceiling})
    medians = {
        name: {
            key: statistics.median(entry["ratios"][name][key] for entry in rounds)
            for key in rounds[0]["ratios"][name]
        }
        for name in rounds[0]["ratios"]
    }
    rates = ratio_of_median_rates(rounds)
    for name, ratio in medians.items():
        print(
            f"median over {args.rounds} round(s): {name}: speedup x{ratio['speedup']:.2f}  "
            f"CPU efficiency {ratio['cpu_efficiency']:.0%}  "
            + share_columns(ratio)
            + f"(ratio of median samples/s: x{rates[name]:.2f})"
        )
    report = {
        "benchmark": "ddp",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            # Other work on the machine skews the figures; the load says how much.
            "load_average_1m_at_start": load_at_start,
            "load_average_1m_at_end": os.getloadavg()[0],
        },
        "config": {key: str(value) for key, value in vars(args).items()},
        "rounds": rounds,
        "median_ratios": medians,
        "ratio_of_median_rates": rates,
    }
    out = args.out or RESULTS_DIR / f"ddp-{args.device}-{args.backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
