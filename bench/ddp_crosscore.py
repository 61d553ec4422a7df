"""What moving data between two cores costs on this host, in the sharded step's own terms.

    .venv/bin/python bench/ddp_crosscore.py --runs 6

Under the sharded step (components/train_ddp/local_sharded.py) each rank runs fused Adam over
its half of the parameters in a block both ranks share, and the other rank reads that half in
its next forward. Each run here is a fresh 2-rank group (`torchrun --standalone`, the
trainer's shared block and pipes) that repeats, for --seconds:

    exchange; the peer reads my half (case "peer read"), or a private buffer of the same size
    (case "private read"); both write 3 MB elsewhere (activations: my half leaves L2);
    exchange; I run fused Adam over my half, timed.

The cases alternate every 50 steps, so both meet the same moments. Per rank, it prints the
median Adam time in each case and their ratio: ~1.0 when handing lines between the cores is
cheap; 2-3 while the host is in the slow state of docs/benchmarks.md ("DDP: load balancing,
garbage collection, and where the cross-core cost lives"). It also prints the "peer read"
median per second, since that state comes and goes within seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.optim.adam import adam

from components.train_ddp.allocator import keep_freed_memory
from components.train_ddp.local_sharded import adam_hyperparameters
from components.train_ddp.network import build_mlp
from components.train_ddp.shared_block import open_shared_block

CASES = ("peer read", "private read")
SWITCH_STEPS = 50  # steps of one case before the other
EVICT_BYTES = 3 * 2**20  # written between the read and Adam: more than a core's L2


def half_numel(features: int, hidden: str) -> int:
    """Half the parameters of the model `bench/ddp.py` trains (one rank's slice)."""
    model = build_mlp(features, [int(units) for units in hidden.split(",") if units])
    return sum(param.numel() for param in model.parameters()) // 2


def worker(args: argparse.Namespace) -> None:
    keep_freed_memory()  # as the trainer's workers do
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    numel = half_numel(args.features, args.hidden)
    block, pipes = open_shared_block(2 * numel * 4)
    halves = block[: 2 * numel].view(2, numel)  # halves[r]: rank r's parameters
    grad, exp_avg, exp_avg_sq = block[2 * numel :].view(2, 3, numel)[rank]  # this rank's only
    grad.normal_()
    mine, theirs = halves[rank], halves[1 - rank]
    private, read_into = torch.randn(numel), torch.empty(numel)
    evict = torch.zeros(EVICT_BYTES // 4)
    step = torch.tensor(0.0)
    # The sharded step's own hyperparameters, from a torch Adam as the trainer builds one.
    hyper = adam_hyperparameters(torch.optim.Adam([mine], lr=1e-3))
    times: dict[str, list[float]] = {case: [] for case in CASES}
    per_second: dict[int, list[float]] = {}
    started = time.perf_counter()
    steps = 0
    while True:
        if steps % SWITCH_STEPS == 0:
            # Both ranks stop at the same step: rank 0's clock decides.
            done = torch.tensor([float(time.perf_counter() - started > args.seconds)])
            dist.broadcast(done, src=0)
            if done.item():
                break
        case = CASES[(steps // SWITCH_STEPS) % 2]
        pipes.exchange()
        torch.mul(theirs if case == "peer read" else private, 1.0, out=read_into)
        evict.add_(1.0)
        pipes.exchange()
        before = time.perf_counter()
        adam([mine], [grad], [exp_avg], [exp_avg_sq], [], [step], fused=True, **hyper)
        micros = (time.perf_counter() - before) * 1e6
        times[case].append(micros)
        if case == "peer read":
            per_second.setdefault(int(before - started), []).append(micros)
        steps += 1
    pipes.close()
    dist.destroy_process_group()
    result = {
        "rank": rank,
        "median_us": {case: statistics.median(values) for case, values in times.items()},
        "peer_read_median_us_per_second": [
            statistics.median(values) for _, values in sorted(per_second.items())
        ],
    }
    (args.out / f"rank{rank}.json").write_text(json.dumps(result))


def run_group(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        __file__, "--worker", "--out", str(out), "--seconds", str(args.seconds),
        "--features", str(args.features), "--hidden", args.hidden,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=3, help="fresh 2-rank groups, one after another"
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="per group")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--hidden", default="256,128")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    numel = half_numel(args.features, args.hidden)
    print(f"one rank's half: {numel:,} float32 ({numel * 4 / 1000:.0f} KB); {args.runs} group(s)")
    ratios = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="kubeloop-crosscore-") as scratch:
            results = run_group(args, Path(scratch))
        for result in results:
            medians = result["median_us"]
            ratio = medians["peer read"] / medians["private read"]
            ratios.append(ratio)
            timeline = " ".join(f"{us:.0f}" for us in result["peer_read_median_us_per_second"])
            print(
                f"run {run} rank {result['rank']}: Adam after the peer read my half "
                f"{medians['peer read']:.0f} us, after a private read "
                f"{medians['private read']:.0f} us: x{ratio:.2f}  "
                f"(peer read, per second: {timeline} us)"
            )
    print(f"median over {len(ratios)} rank-runs: x{statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
