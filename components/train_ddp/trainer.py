"""One DDP worker. Run it under torchrun: `torchrun ... -m components.train_ddp.trainer --help`.

Every rank reads the whole (small, tabular) training set and trains on its DistributedSampler
shard with a per-rank batch of `batch_size / world_size`, so one process and N processes see
the same global batches and follow the same loss curve. After each epoch rank 0 writes an
atomic checkpoint; on start every rank resumes from the latest one, which is how a worker that
torchrun restarts carries on where the group left off.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, TensorDataset

from components.train_ddp import checkpoint as checkpoints
from components.train_ddp.allocator import keep_freed_memory
from components.train_ddp.config import Backend, Device, TrainConfig, parse_cli_args
from components.train_ddp.data import TabularData, TrainingInputError, load_tabular
from components.train_ddp.local_sharded import ShardedStep, open_sharded_step
from components.train_ddp.network import Standardizer, build_mlp, serving_model
from components.train_ddp.shared_block import all_ranks_local
from components.train_ddp.summary import EpochLoss, TrainingSummary, write_summary
from components.train_ddp.tracking import MlflowTracker, NullTracker, Tracker, save_model_locally

log = logging.getLogger("kubeloop.train_ddp")

# Test hook: the last rank is SIGKILLed after this (1-based) epoch, once per marker file.
CRASH_AFTER_EPOCH_ENV = "KUBELOOP_TRAIN_CRASH_AFTER_EPOCH"
CRASH_MARKER_ENV = "KUBELOOP_TRAIN_CRASH_MARKER"


@dataclass(frozen=True)
class DistContext:
    rank: int
    local_rank: int
    world_size: int
    backend: str
    device: torch.device

    @property
    def is_leader(self) -> bool:
        return self.rank == 0


def resolve_backend(backend: Backend, device: Device, cuda_available: bool) -> tuple[str, str]:
    """(backend, device type): gloo on CPU and nccl on GPU unless told otherwise."""
    device_type = device.value
    if device is Device.AUTO:
        device_type = "cuda" if cuda_available else "cpu"
    if device_type == "cuda" and not cuda_available:
        raise TrainingInputError("device 'cuda' requested but no CUDA device is available")
    chosen = backend.value
    if backend is Backend.AUTO:
        chosen = "nccl" if device_type == "cuda" else "gloo"
    if chosen == "nccl" and device_type != "cuda":
        raise TrainingInputError("backend 'nccl' needs device 'cuda'; use gloo on CPU")
    return chosen, device_type


def init_distributed(config: TrainConfig) -> DistContext:
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise TrainingInputError("the trainer must run under torchrun (RANK/WORLD_SIZE unset)")
    backend, device_type = resolve_backend(config.backend, config.device, torch.cuda.is_available())
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    return DistContext(
        rank=dist.get_rank(),
        local_rank=local_rank,
        world_size=dist.get_world_size(),
        backend=backend,
        device=device,
    )


def per_rank_batch_size(global_batch: int, world_size: int) -> int:
    if global_batch % world_size:
        raise TrainingInputError(
            f"batch_size {global_batch} must be divisible by the world size {world_size}"
        )
    return global_batch // world_size


def epoch_rows(sampler: DistributedSampler[Any], batch: int) -> torch.Tensor:
    """This rank's rows of the epoch in the sampler's order, full batches only, so every
    global batch is exactly the same set of rows at any scale."""
    if sampler.shuffle and sampler.drop_last:
        # DistributedSampler.__iter__'s order in tensor ops: it builds a Python list of every
        # row of the set each epoch (~10 ms at 200k rows, on every rank whatever its share).
        generator = torch.Generator()
        generator.manual_seed(sampler.seed + sampler.epoch)
        permutation = torch.randperm(len(sampler.dataset), generator=generator)  # type: ignore[arg-type]
        indices = permutation[: sampler.total_size][sampler.rank :: sampler.num_replicas]
    else:
        indices = torch.tensor(list(iter(sampler)), dtype=torch.long)
    return indices[: len(indices) - len(indices) % batch]


def all_reduce_mean(total: torch.Tensor, count: torch.Tensor) -> float:
    pair = torch.stack([total.double(), count.double()])
    dist.all_reduce(pair)
    return float(pair[0] / pair[1]) if pair[1] > 0 else float("nan")


@dataclass(frozen=True)
class Throughput:
    samples: int  # global samples trained in this attempt
    seconds: float  # wall time of the training loops
    cpu_seconds: float  # process CPU time of the training loops, summed over all ranks
    # Mean ms per training step per rank, wall and CPU, by phase (STEP_PHASES); None unless asked.
    step_ms: dict[str, dict[str, float]] | None = None

    @property
    def samples_per_sec(self) -> float | None:
        return self.samples / self.seconds if self.seconds > 0 else None


@dataclass
class TrainingState:
    model: nn.Sequential
    optimizer: torch.optim.Optimizer
    standardizer: Standardizer
    completed_epochs: int
    history: list[EpochLoss]
    resumed_after_epoch: int | None


STEP_PHASES = ("data", "forward", "backward", "all_reduce", "optimizer")


Clock = tuple[float, float]  # (wall, process CPU) seconds


def read_clock() -> Clock:
    return time.perf_counter(), time.process_time()


@dataclass
class StepTimes:
    """Seconds per phase of the training steps on this rank, summed over the steps: wall
    time, and the CPU time of the whole process (all its threads) during the phase.

    `backward` is the autograd pass without the gradient all-reduce. `all_reduce` under DDP is
    from the moment DDP hands a gradient bucket to the process group until the reduced bucket
    is back; under the sharded step (local_sharded), its two exchanges and the reduction of
    this rank's slice; waiting for the slower rank included either way. `optimizer` is the
    whole model's step under DDP, this rank's slice under the sharded step. Host clocks: on CUDA the phases are only exact when
    the caller synchronizes (the trainer does, when asked for a breakdown).
    """

    wall: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEP_PHASES, 0.0))
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEP_PHASES, 0.0))
    steps: int = 0
    synchronize: Callable[[], None] = lambda: None

    def now(self) -> Clock:
        return read_clock()

    def add(self, phase: str, started: Clock) -> Clock:
        now = read_clock()
        self.wall[phase] += now[0] - started[0]
        self.cpu[phase] += now[1] - started[1]
        return now

    def mark(self, phase: str, started: Clock) -> Clock:
        self.synchronize()
        return self.add(phase, started)

    def move(self, source: str, target: str, since: tuple[float, float]) -> None:
        """Take what `target` gained since `since` (wall, cpu) out of `source`."""
        self.wall[source] -= self.wall[target] - since[0]
        self.cpu[source] -= self.cpu[target] - since[1]


def timed_allreduce_hook(
    times: StepTimes,
) -> Callable[[Any, dist.GradBucket], torch.futures.Future[torch.Tensor]]:
    """DDP's default all-reduce (mean over ranks), timed from launch to completion."""

    def hook(state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        started = read_clock()
        buffer = bucket.buffer().div_(dist.get_world_size())
        work = dist.all_reduce(buffer, async_op=True)
        assert work is not None

        def done(future: torch.futures.Future[Any]) -> torch.Tensor:
            times.add("all_reduce", started)
            return buffer

        return work.get_future().then(done)

    # DDP checks the hook's annotations as objects; this module's are strings (PEP 563).
    hook.__annotations__ = {
        "bucket": dist.GradBucket,
        "return": torch.futures.Future[torch.Tensor],
    }
    return hook


class TrainStep(Protocol):
    """What a training step does after backward, and how it clears the gradients."""

    def zero_grad(self) -> None: ...
    def step(self, clock: StepTimes) -> None: ...


@dataclass
class OptimizerStep:
    """torch DDP's path: backward already averaged the gradients (DDP's hooks); every rank
    runs the whole optimizer step."""

    optimizer: torch.optim.Optimizer

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, clock: StepTimes) -> None:
        started = clock.now()
        self.optimizer.step()
        clock.mark("optimizer", started)


# Rows gathered at once per rank: one gather per block instead of three small ones per step,
# and a block small enough (1 MiB of 32 float32 features) to stay in a core's L2 cache until
# its batches are trained on. Larger blocks were slower per row (65,536 rows: ~3x).
GATHER_ROWS = 8_192


def epoch_batches(
    tensors: tuple[torch.Tensor, ...], sampler: DistributedSampler[Any], batch: int
) -> Iterator[list[torch.Tensor]]:
    """This rank's batches of the epoch (`epoch_rows` in batches), as views of gathered blocks."""
    indices = epoch_rows(sampler, batch)
    block = max(batch, GATHER_ROWS - GATHER_ROWS % batch)
    for start in range(0, len(indices), block):
        rows = indices[start : start + block].to(tensors[0].device)
        # index_select, not tensor[rows]: advanced indexing walks every element through
        # TensorIterator (~4x slower here on row-major rows).
        gathered = [tensor.index_select(0, rows) for tensor in tensors]
        for offset in range(0, len(rows), batch):
            yield [tensor[offset : offset + batch] for tensor in gathered]


def train_epoch(
    model: nn.Module,
    stepper: TrainStep,
    tensors: tuple[torch.Tensor, torch.Tensor],
    sampler: DistributedSampler[Any],
    batch: int,
    weights: torch.Tensor | None = None,
    times: StepTimes | None = None,
) -> tuple[float, int]:
    """Mean training loss over the epoch's global batches, and the global sample count.
    With `weights` (mean 1 over the set), each row's loss counts by its weight. With `times`,
    each step's phases are timed into it (`all_reduce` by `timed_allreduce_hook` under DDP,
    by the stepper otherwise)."""
    columns = tensors if weights is None else (*tensors, weights)
    losses: list[torch.Tensor] = []
    clock = times or StepTimes()
    model.train()
    started = clock.now()
    for x, y, *row_weights in epoch_batches(columns, sampler, batch):
        started = clock.mark("data", started)  # the block gathers and the loop included
        stepper.zero_grad()
        logits = model(x).squeeze(1)
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, y, weight=row_weights[0] if row_weights else None
        )
        started = clock.mark("forward", started)
        reduced_before = clock.wall["all_reduce"], clock.cpu["all_reduce"]
        loss.backward()
        started = clock.mark("backward", started)
        # Under DDP the all-reduce runs inside backward (its hook); count it once, on its own.
        clock.move("backward", "all_reduce", reduced_before)
        stepper.step(clock)
        losses.append(loss.detach())
        clock.steps += 1
        started = clock.now()
    total = torch.stack(losses).double().sum() * batch if losses else torch.zeros(())
    count = torch.tensor(float(len(losses) * batch), dtype=torch.float64)
    samples = torch.stack([total.double().cpu(), count]).to(tensors[0].device)
    dist.all_reduce(samples)
    mean = float(samples[0] / samples[1]) if samples[1] > 0 else float("nan")
    return mean, int(samples[1])


def validation_loss(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean log loss over the whole validation set; each rank scores a contiguous shard."""
    model.eval()
    with torch.no_grad():
        logits = model(features).squeeze(1)
        total = nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="sum")
    return all_reduce_mean(total, torch.tensor(float(len(labels)), device=features.device))


def shard_rows(tensor: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    return torch.tensor_split(tensor, world_size)[rank]


def build_state(config: TrainConfig, train: TabularData, device: torch.device) -> TrainingState:
    torch.manual_seed(config.seed)  # same initial weights on every rank and at every scale
    # On the device before the optimizer exists, so restored optimizer state lands there too.
    model = build_mlp(len(train.feature_columns), config.hidden_units).to(device)
    # Fused: one kernel over all parameters instead of ~10 small ops per tensor. Every rank
    # repeats the optimizer step, so its fixed cost per step does not shrink with more ranks.
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )
    standardizer = Standardizer.fit(train.features)
    return TrainingState(model, optimizer, standardizer, 0, [], None)


def restore(state: TrainingState, config: TrainConfig) -> TrainingState:
    latest = checkpoints.latest_checkpoint(config.checkpoint_path)
    if latest is None:
        return state
    saved = checkpoints.load_checkpoint(latest)
    if saved["fingerprint"] != config.fingerprint():
        raise TrainingInputError(
            f"checkpoint_dir {config.checkpoint_path} holds checkpoints of another training "
            "configuration; use a fresh checkpoint_dir"
        )
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    completed = int(saved["completed_epochs"])
    log.info("resuming after epoch %d from %s", completed, latest)
    return TrainingState(
        model=state.model,
        optimizer=state.optimizer,
        standardizer=Standardizer.from_dict(saved["standardizer"]),
        completed_epochs=completed,
        history=[EpochLoss(**entry) for entry in saved["history"]],
        resumed_after_epoch=completed,
    )


def checkpoint_state(state: TrainingState, config: TrainConfig) -> dict[str, Any]:
    return {
        "format": 1,
        "fingerprint": config.fingerprint(),
        "completed_epochs": state.completed_epochs,
        # Copies: under the sharded step the parameters are views of one shared block.
        "model": {name: value.clone() for name, value in state.model.state_dict().items()},
        "optimizer": state.optimizer.state_dict(),
        # The sampler's whole state: its permutation is a function of (seed, epoch).
        "sampler": {"seed": config.seed, "next_epoch": state.completed_epochs},
        "standardizer": state.standardizer.to_dict(),
        "history": [entry.model_dump() for entry in state.history],
    }


def maybe_crash_for_test(completed_epochs: int, ctx: DistContext) -> None:
    crash_after = os.environ.get(CRASH_AFTER_EPOCH_ENV)
    marker = os.environ.get(CRASH_MARKER_ENV)
    if not crash_after or not marker or ctx.rank != ctx.world_size - 1:
        return
    if completed_epochs != int(crash_after) or os.path.exists(marker):
        return
    with open(marker, "w") as handle:
        handle.write(f"rank {ctx.rank} exited after epoch {completed_epochs}\n")
    log.warning("test hook: killing rank %d after epoch %d", ctx.rank, completed_epochs)
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def to_device(data: TabularData, standardizer: Standardizer, device: torch.device) -> Any:
    features = torch.from_numpy(standardizer.apply(data.features)).to(device)
    return features, torch.from_numpy(data.labels).to(device)


def run_epochs(
    config: TrainConfig,
    ctx: DistContext,
    state: TrainingState,
    data: tuple[TabularData, TabularData],
    tracker: Tracker,
) -> Throughput:
    """Train the remaining epochs; returns how much was trained in how long."""
    train, validation = data
    train_tensors = to_device(train, state.standardizer, ctx.device)
    train_weights = (
        None if train.weights is None else torch.from_numpy(train.weights).to(ctx.device)
    )
    val_x, val_y = to_device(validation, state.standardizer, ctx.device)
    val_x, val_y = (shard_rows(t, ctx.rank, ctx.world_size) for t in (val_x, val_y))
    sampler: DistributedSampler[Any] = DistributedSampler(
        TensorDataset(train_tensors[1]),
        num_replicas=ctx.world_size,
        rank=ctx.rank,
        shuffle=True,
        seed=config.seed,
        drop_last=True,
    )
    batch = per_rank_batch_size(config.batch_size, ctx.world_size)
    times = StepTimes()
    if ctx.device.type == "cuda" and config.step_breakdown:
        times.synchronize = torch.cuda.synchronize
    model, stepper = training_step(state, config, ctx, times)
    samples, seconds, cpu_seconds = 0, 0.0, 0.0
    try:
        for epoch in range(state.completed_epochs, config.epochs):
            sampler.set_epoch(epoch)
            started = read_clock()
            train_loss, epoch_samples = train_epoch(
                model, stepper, train_tensors, sampler, batch, train_weights, times
            )
            ended = read_clock()
            elapsed = ended[0] - started[0]
            cpu_seconds += ended[1] - started[1]
            samples, seconds = samples + epoch_samples, seconds + elapsed
            val_loss = validation_loss(state.model, val_x, val_y)
            state.history.append(
                EpochLoss(epoch=epoch + 1, train_loss=train_loss, val_loss=val_loss)
            )
            state.completed_epochs = epoch + 1
            if ctx.is_leader:
                rate = epoch_samples / elapsed if elapsed > 0 else 0.0
                end_epoch_on_leader(config, state, stepper, tracker, rate)
            dist.barrier()  # the checkpoint exists before any rank can fail past this epoch
            maybe_crash_for_test(state.completed_epochs, ctx)
    finally:
        if isinstance(stepper, ShardedStep):
            stepper.close()
    cpu_total = torch.tensor([cpu_seconds], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(cpu_total)
    step_ms = mean_step_ms(times, ctx.device) if config.step_breakdown else None
    return Throughput(samples, seconds, float(cpu_total.item()), step_ms)


def end_epoch_on_leader(
    config: TrainConfig, state: TrainingState, stepper: TrainStep, tracker: Tracker, rate: float
) -> None:
    """Checkpoint, log and track the epoch just finished (rank 0, after a collective)."""
    if isinstance(stepper, ShardedStep):
        stepper.export_state()  # every rank is past its last step: the moments are complete
    checkpoints.save_checkpoint(
        config.checkpoint_path, state.completed_epochs, checkpoint_state(state, config)
    )
    last = state.history[-1]
    log.info(
        "epoch %d/%d train_loss=%.6f val_loss=%.6f samples_per_sec=%.0f",
        last.epoch,
        config.epochs,
        last.train_loss,
        last.val_loss,
        rate,
    )
    tracker.log_epoch(last.epoch, {"train_loss": last.train_loss, "val_loss": last.val_loss})


def training_step(
    state: TrainingState, config: TrainConfig, ctx: DistContext, times: StepTimes
) -> tuple[nn.Module, TrainStep]:
    """The model to call and the step after backward. When every rank is a CPU process on
    this machine: the plain model and the sharded step through shared memory (see
    local_sharded). Otherwise torch's DDP with the process group's all-reduce (gloo/nccl),
    timed into `times` when the config asks for a step breakdown."""
    local = (
        config.shared_memory_allreduce
        and ctx.device.type == "cpu"
        and (ctx.world_size == 1 or all_ranks_local())
    )
    if local:
        return state.model, open_sharded_step(state.model, state.optimizer)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    ddp_model = DistributedDataParallel(state.model, device_ids=device_ids)
    if config.step_breakdown:
        ddp_model.register_comm_hook(None, timed_allreduce_hook(times))
    return ddp_model, OptimizerStep(state.optimizer)


def mean_step_ms(times: StepTimes, device: torch.device) -> dict[str, dict[str, float]]:
    """Per clock (wall, cpu) and phase: milliseconds per step, averaged over steps and ranks."""
    values = [times.wall[phase] for phase in STEP_PHASES]
    values += [times.cpu[phase] for phase in STEP_PHASES] + [float(times.steps)]
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    per_step = (1000 * totals[:-1] / max(float(totals[-1]), 1.0)).tolist()
    count = len(STEP_PHASES)
    return {
        "wall": dict(zip(STEP_PHASES, per_step[:count], strict=True)),
        "cpu": dict(zip(STEP_PHASES, per_step[count:], strict=True)),
    }


def write_outputs(
    config: TrainConfig,
    ctx: DistContext,
    state: TrainingState,
    train: TabularData,
    tracker: Tracker,
    throughput: Throughput,
) -> TrainingSummary:
    model = serving_model(state.model, state.standardizer)
    example = pd.DataFrame(train.features[:5], columns=list(train.feature_columns)).fillna(0.0)
    save_model_locally(model, example, config.model_path)
    model_uri = tracker.log_model(model, example)
    summary = TrainingSummary.from_history(
        state.history,
        world_size=ctx.world_size,
        backend=ctx.backend,
        device=ctx.device.type,
        global_batch_size=config.batch_size,
        samples_per_sec=throughput.samples_per_sec,
        samples_trained=throughput.samples,
        train_cpu_seconds=throughput.cpu_seconds,
        step_ms=throughput.step_ms,
        resumed_after_epoch=state.resumed_after_epoch,
        restart_count=int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
        feature_columns=list(train.feature_columns),
        label_column=config.label_column,
        feature_means=state.standardizer.mean.tolist(),
        mlflow_run_id=tracker.run_id,
        model_uri=model_uri,
        model_path=str(config.model_path),
        checkpoint_dir=str(config.checkpoint_path),
    )
    write_summary(summary, config.summary_path)
    tracker.finish(summary.model_dump(mode="json"), status="FINISHED")
    return summary


def start_tracker(config: TrainConfig, ctx: DistContext) -> Tracker:
    if ctx.is_leader and config.mlflow_tracking_uri:
        return MlflowTracker.start(config, ctx.world_size, ctx.backend)
    return NullTracker()


def run(config: TrainConfig) -> None:
    keep_freed_memory()  # before the data: every step's tensors reuse the heap (allocator.py)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    ctx = init_distributed(config)
    try:
        train = load_tabular(
            config.training_set, config.label_column, config.feature_columns, "training_set"
        )
        validation = load_tabular(
            config.validation_set, config.label_column, train.feature_columns, "validation_set"
        )
        per_rank_batch_size(config.batch_size, ctx.world_size)
        state = restore(build_state(config, train, ctx.device), config)
        tracker = start_tracker(config, ctx)
        throughput = run_epochs(config, ctx, state, (train, validation), tracker)
        if ctx.is_leader:
            write_outputs(config, ctx, state, train, tracker, throughput)
    finally:
        dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    rank = os.environ.get("RANK", "?")
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s rank{rank} %(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,
    )
    config = parse_cli_args(argv)
    try:
        run(config)
    except TrainingInputError as error:
        log.error("error: %s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
