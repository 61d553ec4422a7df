"""Deterministic synthetic event stream for kubeloop demos, tests and benchmarks.

The stream models users looking at items: every event carries raw columns from which the
example FeatureViews compute features, an event timestamp with daily and weekly seasonality,
a created timestamp (when the row reached the warehouse: usually seconds later, sometimes
hours later — the late-arriving rows a point-in-time join must not see too early), and a
binary label driven by latent user/item traits that the features reveal.

Every user has lasting traits — affinity (shows in dwell time and clicks), budget (the price
tier they shop in) and coupon habit (the discounts they get) — so *any* of a user's events
reveals them. That matters because a label's training row holds the user's *previous* event
(point-in-time correct: the label's own row is not visible yet at label time) while serving
sees the current one; both carry the same traits, so a model trained on one scores the other.
A logistic regression on the previous event's dwell, clicks, price and discount reaches AUC
~0.88 (``tests/test_world.py``; it was ~0.82 with twice the per-event scatter and weaker
effects, too close to the 0.80 the demo must show on a few hundred live labels).

Output is produced in fixed-size chunks, each from its own RNG stream derived from
``(seed, chunk index)``, so the result depends only on the config — never on memory — and
10M rows can be written with bounded memory.

A distribution shift can be injected from ``shift_at``: numeric raw columns move by
``shift_sigma`` standard deviations from then on (covariate shift), and with
``shift_relation`` (the default) the world itself changes too: price sensitivity flips —
budget shoppers stop converting, premium shoppers start (``PRICE_EFFECT``). A model trained
before the shift loses ~0.25 AUC on the shifted events; one trained after it recovers.

CLI: ``python -m kubeloop.sampledata.generate --rows N --seed S --out DIR [--shift-at ISO --shift-sigma X]``
writes ``DIR/events/date=YYYY-MM-DD/part-NNNNN.parquet`` and ``DIR/labels/part-NNNNN.parquet``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kubeloop.sampledata import lake

# Fixed so that output is a function of the config only (not of the machine's memory).
CHUNK_ROWS = 250_000
DEVICES = ("ios", "android", "web")
# Numeric raw columns that a shift moves, with the standard deviation of each column
# (approximate, used to express the shift in sigma units).
SHIFTED_COLUMNS: dict[str, float] = {"price": 25.0, "dwell_seconds": 40.0, "discount": 0.1}
# The label's logit per standardized trait. The price effect (of the user's price tier) is
# before and after a shift with `shift_relation`: the relation the shift changes.
AFFINITY_EFFECT = 2.0
PRICE_EFFECT = {"before": -2.0, "after": 1.5}
DISCOUNT_EFFECT = 1.5
QUALITY_EFFECT = 0.3
# Spread of the traits in the raw columns: log price = 3 + 0.45 * budget (+ item and event
# noise), discount = 0.1 + 0.04 * coupon habit (+ event noise).
PRICE_TIER_SCALE = 0.45
# How much one event's columns scatter around the user's traits: what separates the
# previous event (a training row, and what serving fetches from Feast) from the current one.
PRICE_NOISE = 0.1
COUPON_NOISE = 0.25
DWELL_NOISE = 0.15
DISCOUNT_HABIT_SCALE = 0.04


class GeneratorConfig(BaseModel):
    """Everything that determines the generated data."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(gt=0, description="number of events")
    seed: int = 0
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    days: int = Field(default=28, gt=0)
    users: int | None = Field(default=None, gt=0, description="default: rows // 20, at least 10")
    items: int | None = Field(default=None, gt=0, description="default: rows // 50, at least 5")
    label_fraction: float = Field(default=0.1, gt=0, le=1)
    late_fraction: float = Field(default=0.02, ge=0, le=1)
    shift_at: datetime | None = None
    shift_sigma: float = 0.0
    shift_relation: bool = Field(
        default=True,
        description="From shift_at on, the label's relation to price flips as well (not only "
        "the covariates move): a model trained before the shift is then wrong, not just "
        "extrapolating.",
    )
    event_seed: int | None = Field(
        default=None,
        description="seed of the event draws (default: seed). The world — users' affinity, "
        "items' quality and price — always comes from seed, so another event_seed draws new "
        "events from the same world (the traffic a trained model later serves).",
    )

    @model_validator(mode="after")
    def _utc(self) -> GeneratorConfig:
        if self.start.tzinfo is None:
            self.start = self.start.replace(tzinfo=UTC)
        if self.shift_at is not None and self.shift_at.tzinfo is None:
            self.shift_at = self.shift_at.replace(tzinfo=UTC)
        return self

    @property
    def n_users(self) -> int:
        return self.users or max(10, self.rows // 20)

    @property
    def n_items(self) -> int:
        return self.items or max(5, self.rows // 50)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


def _intensity(hours_since_start: np.ndarray, start: datetime) -> np.ndarray:
    """Relative event rate: busy evenings, quiet nights, busier weekends. Max is 1."""
    start_hour = start.hour + start.minute / 60
    hour_of_day = (hours_since_start + start_hour) % 24
    day_index = np.floor((hours_since_start + start_hour) / 24) + start.weekday()
    weekend = (day_index % 7) >= 5
    daily = 0.55 + 0.45 * np.sin(2 * np.pi * (hour_of_day - 14) / 24)
    weekly = np.where(weekend, 1.0, 0.8)
    return daily * weekly


def _chunk_row_counts(config: GeneratorConfig) -> list[int]:
    """Rows per time slice, proportional to the integrated intensity (largest remainder)."""
    n_chunks = max(1, math.ceil(config.rows / CHUNK_ROWS))
    total_hours = config.days * 24
    grid = np.linspace(0, total_hours, 200 * n_chunks, endpoint=False)
    weights = _intensity(grid, config.start).reshape(n_chunks, -1).sum(axis=1)
    exact = weights / weights.sum() * config.rows
    counts = np.floor(exact).astype(int)
    remainder = config.rows - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:remainder]] += 1
    return [int(c) for c in counts]


class _World(NamedTuple):
    """Lasting traits: per user affinity, budget and coupon habit; per item quality and price
    level. Shared by all chunks and by every event seed."""

    affinity: np.ndarray
    budget: np.ndarray
    coupon: np.ndarray
    quality: np.ndarray
    price_level: np.ndarray


def _latent_traits(config: GeneratorConfig) -> _World:
    rng = np.random.default_rng([config.seed, 0xFEED])
    affinity = rng.normal(0, 1, config.n_users)
    quality = rng.normal(0, 1, config.n_items)
    price_level = rng.normal(0, 1, config.n_items)
    # Drawn after the original three so the users' affinity and items' quality stay as they were.
    budget = rng.normal(0, 1, config.n_users)
    coupon = rng.normal(0, 1, config.n_users)
    return _World(affinity, budget, coupon, quality, price_level)


def _sample_times(
    rng: np.random.Generator, n: int, lo_h: float, hi_h: float, start: datetime
) -> np.ndarray:
    """Hours since start, drawn by rejection from the seasonal intensity."""
    out = np.empty(0)
    while out.size < n:
        cand = rng.uniform(lo_h, hi_h, max(2 * (n - out.size), 64))
        keep = rng.uniform(0, 1, cand.size) < _intensity(cand, start)
        out = np.concatenate([out, cand[keep]])
    return np.sort(out[:n])


def _chunk(config: GeneratorConfig, index: int, n: int, lo_h: float, hi_h: float) -> pd.DataFrame:
    event_seed = config.seed if config.event_seed is None else config.event_seed
    rng = np.random.default_rng([event_seed, index])
    world = _latent_traits(config)
    hours = _sample_times(rng, n, lo_h, hi_h, config.start)
    # Microsecond resolution: what Spark and Parquet keep, so every path sees the same instants.
    micros = np.round(hours * 3600e6).astype("int64")
    start_us = int(config.start.timestamp() * 1_000_000)
    event_us = start_us + micros
    # Skewed popularity: low ids are the heavy users and items.
    user_id = (rng.uniform(0, 1, n) ** 2 * config.n_users).astype("int64")
    item_id = (rng.uniform(0, 1, n) ** 3 * config.n_items).astype("int64")
    user_aff = world.affinity[user_id]
    item_q = world.quality[item_id]
    # The price tier is the user's (budget), the item and the day move it a little.
    price_z = (
        world.budget[user_id] + 0.3 * world.price_level[item_id] + rng.normal(0, PRICE_NOISE, n)
    )
    price = np.exp(3.0 + PRICE_TIER_SCALE * price_z)
    coupon = world.coupon[user_id] + rng.normal(0, COUPON_NOISE, n)
    discount = np.clip(0.1 + DISCOUNT_HABIT_SCALE * coupon, 0, 0.5)
    dwell = np.exp(rng.normal(3.0 + 0.5 * user_aff, DWELL_NOISE, n))
    clicks = rng.poisson(np.exp(0.3 + 0.5 * user_aff)).astype("int32")
    quantity = (rng.poisson(0.5, n) + 1).astype("int32")
    device = np.asarray(DEVICES)[rng.choice(3, n, p=[0.4, 0.35, 0.25])]
    hour_of_day = ((hours + config.start.hour) % 24).astype(float)
    evening = np.sin(2 * np.pi * (hour_of_day - 14) / 24)
    after = _after_shift(event_us, config)
    price_effect = np.where(
        after & config.shift_relation, PRICE_EFFECT["after"], PRICE_EFFECT["before"]
    )
    # The traits as the event shows them (before any covariate shift moves the raw columns).
    logit = (
        -0.3
        + AFFINITY_EFFECT * user_aff
        + price_effect * price_z
        + DISCOUNT_EFFECT * coupon
        + QUALITY_EFFECT * item_q
        + 0.2 * evening
    )
    label = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-logit))).astype("int32")
    lag_us = (rng.exponential(30.0, n) * 1e6).astype("int64")
    late = rng.uniform(0, 1, n) < config.late_fraction
    lag_us[late] = (rng.uniform(1, 6, late.sum()) * 3600e6).astype("int64")
    frame = pd.DataFrame(
        {
            "event_timestamp": pd.to_datetime(event_us, unit="us", utc=True),
            "created_timestamp": pd.to_datetime(event_us + lag_us, unit="us", utc=True),
            "user_id": user_id,
            "item_id": item_id,
            "price": price,
            "quantity": quantity,
            "discount": discount,
            "dwell_seconds": dwell,
            "clicks": clicks,
            "device": device,
            "label": label,
        }
    )
    return _apply_shift(frame, config)


def _after_shift(event_us: np.ndarray, config: GeneratorConfig) -> np.ndarray:
    if config.shift_at is None:
        return np.zeros(event_us.shape, dtype=bool)
    return event_us >= int(config.shift_at.timestamp() * 1_000_000)


def _apply_shift(frame: pd.DataFrame, config: GeneratorConfig) -> pd.DataFrame:
    """The covariate part of the shift: raw columns move by `shift_sigma` standard deviations."""
    if config.shift_at is None or config.shift_sigma == 0:
        return frame
    after = frame["event_timestamp"] >= pd.Timestamp(config.shift_at)
    for column, sigma in SHIFTED_COLUMNS.items():
        frame.loc[after, column] = frame.loc[after, column] + config.shift_sigma * sigma
    frame.loc[after, "price"] = frame.loc[after, "price"].clip(lower=0.01)
    frame.loc[after, "discount"] = frame.loc[after, "discount"].clip(0, 0.9)
    return frame


def iter_event_chunks(config: GeneratorConfig) -> Iterator[pd.DataFrame]:
    """Yield the event stream as time-ordered chunks of at most ``CHUNK_ROWS`` rows."""
    counts = _chunk_row_counts(config)
    slice_hours = config.days * 24 / len(counts)
    for index, n in enumerate(counts):
        if n:
            yield _chunk(config, index + 1, n, index * slice_hours, (index + 1) * slice_hours)


def labels_from_events(
    events: pd.DataFrame, config: GeneratorConfig, chunk_index: int = 0
) -> pd.DataFrame:
    """Label rows (user_id, item_id, event_timestamp, label) for a deterministic sample of events.

    The label's timestamp is the event's: the label must be predicted from what was known
    *before* the event's own row landed (its created timestamp is later).
    """
    rng = np.random.default_rng([config.seed, 0x1ABE1, chunk_index])
    keep = rng.uniform(0, 1, len(events)) < config.label_fraction
    columns = ["user_id", "item_id", "event_timestamp", "label"]
    return events.loc[keep, columns].reset_index(drop=True)


def generate_events(config: GeneratorConfig) -> pd.DataFrame:
    """The whole event stream as one DataFrame (use for small sizes only)."""
    return pd.concat(list(iter_event_chunks(config)), ignore_index=True)


def generate_labels(config: GeneratorConfig) -> pd.DataFrame:
    """The whole labels table as one DataFrame (use for small sizes only)."""
    parts = [labels_from_events(c, config, i) for i, c in enumerate(iter_event_chunks(config))]
    return pd.concat(parts, ignore_index=True)


def write_dataset(config: GeneratorConfig, out_dir: str | Path) -> dict[str, int]:
    """Write ``events/date=YYYY-MM-DD/`` and ``labels/`` Parquet parts under ``out_dir``
    (layout in ``lake.py``); returns row counts.

    Memory stays bounded by one chunk. The raw ``label`` column is left out of the events
    table so that features can never be computed from the label itself.
    """
    out = Path(out_dir)
    (out / "events").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    totals = {"events": 0, "labels": 0}
    for index, chunk in enumerate(iter_event_chunks(config)):
        labels = labels_from_events(chunk, config, index)
        events = lake.to_table(chunk, lake.EVENTS_SCHEMA, "events")
        days = chunk["event_timestamp"].dt.strftime("%Y-%m-%d").to_numpy()
        for day in sorted(set(days)):
            folder = lake.partition_dir(out / "events", day)
            lake.write_atomic(
                events.filter(pa.array(days == day)), folder / f"part-{index:05d}.parquet"
            )
        lake.write_atomic(
            lake.to_table(labels, lake.LABELS_SCHEMA, "labels"),
            out / "labels" / f"part-{index:05d}.parquet",
        )
        totals["events"] += len(chunk)
        totals["labels"] += len(labels)
    return totals


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--start", type=_parse_time, default=None)
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--shift-at", type=_parse_time, default=None)
    parser.add_argument("--shift-sigma", type=float, default=0.0)
    args = parser.parse_args(argv)
    fields = {
        "rows": args.rows,
        "seed": args.seed,
        "days": args.days,
        "label_fraction": args.label_fraction,
        "shift_at": args.shift_at,
        "shift_sigma": args.shift_sigma,
    }
    if args.start is not None:
        fields["start"] = args.start
    totals = write_dataset(GeneratorConfig(**fields), args.out)
    print(f"wrote {totals['events']} events and {totals['labels']} labels to {args.out}")


if __name__ == "__main__":
    main()
