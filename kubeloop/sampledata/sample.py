"""The sample data `kubeloop data` and `kubeloop demo` write: one generator config, history
ending at the current hour, so the README tour and the demo train on the same kind of data.

examples/resources/ reads it where `kubeloop data` writes it by default (`.kubeloop/data`,
relative to the directory `kubeloop up` was started from): `events/` is the FeatureView's
source, `labels/` the Experiment's labels.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the generator imports numpy, pandas, pyarrow: not for every CLI call
    from kubeloop.sampledata.generate import GeneratorConfig

DEFAULT_OUT = Path(".kubeloop") / "data"
# Small enough that the tour's backfill and two trials take minutes on 2 cores.
SAMPLE_ROWS = 20_000
SAMPLE_DAYS = 21
# Share of events with a label: enough to train on.
SAMPLE_LABEL_FRACTION = 0.5


def data_start(now: datetime, days: int) -> datetime:
    """History ends at the current hour, so a retrain window that `ends now` holds data."""
    return now.replace(minute=0, second=0, microsecond=0, tzinfo=UTC) - timedelta(days=days)


def sample_config(
    now: datetime,
    rows: int = SAMPLE_ROWS,
    seed: int = 0,
    days: int = SAMPLE_DAYS,
    label_fraction: float = SAMPLE_LABEL_FRACTION,
) -> GeneratorConfig:
    from kubeloop.sampledata.generate import GeneratorConfig

    return GeneratorConfig(
        rows=rows,
        seed=seed,
        start=data_start(now, days),
        days=days,
        label_fraction=label_fraction,
    )


def write_sample_data(config: GeneratorConfig, out_dir: Path) -> dict[str, int]:
    """Write `out_dir/{events,labels}`, replacing the files an earlier run left there (a
    smaller rerun must not leave a mix of two datasets); returns row counts."""
    from kubeloop.sampledata import lake
    from kubeloop.sampledata.generate import write_dataset

    # The traffic's appended production goes too: it belonged to the earlier world.
    lake.clear(out_dir / "events", out_dir / "labels")
    return write_dataset(config, out_dir)
