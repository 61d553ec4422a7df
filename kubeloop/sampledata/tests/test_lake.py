"""Appending production to the sample data lake: the generator's schema, date partitions,
whole files only (a concurrent reader never sees a partial one)."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from kubeloop.sampledata import lake
from kubeloop.sampledata.generate import GeneratorConfig, generate_events, write_dataset


def _events(rows: int = 400, days: int = 2) -> pd.DataFrame:
    return generate_events(GeneratorConfig(rows=rows, seed=11, days=days))


def test_appended_files_have_the_generators_schema(tmp_path: Path) -> None:
    write_dataset(GeneratorConfig(rows=500, seed=2, days=2), tmp_path)
    events = _events()
    # As the traffic holds them: plain Python rows, the label still on them.
    frame = pd.DataFrame(events.to_dict("records"))
    written = lake.append_events(frame, tmp_path / "events", "traffic")
    label_file = lake.append_labels(
        events[["user_id", "item_id", "event_timestamp", "label"]], tmp_path / "labels", "traffic"
    )
    history = next((tmp_path / "events").glob("date=*/part-*.parquet"))
    assert pq.read_schema(written[0]).remove_metadata() == pq.read_schema(history).remove_metadata()
    assert pq.read_schema(written[0]).remove_metadata() == lake.EVENTS_SCHEMA
    history_labels = tmp_path / "labels" / "part-00000.parquet"
    assert label_file is not None
    assert (
        pq.read_schema(label_file).remove_metadata()
        == pq.read_schema(history_labels).remove_metadata()
    )
    # One dataset, as Spark and pyarrow read the folder: history and production together.
    table = pads.dataset(tmp_path / "events", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 500 + len(events)


def test_events_land_in_the_partition_of_their_utc_date(tmp_path: Path) -> None:
    events = _events(days=3)
    written = lake.append_events(events, tmp_path, "traffic")
    assert len(written) == 3
    for path in written:
        day = path.parent.name.removeprefix(f"{lake.PARTITION_KEY}=")
        stored = pd.read_parquet(path)["event_timestamp"].dt.strftime("%Y-%m-%d")
        assert set(stored) == {day}
        assert path.name.startswith("traffic-")
    assert sum(pq.read_metadata(p).num_rows for p in written) == len(events)
    # A second append never overwrites the first: unique names.
    again = lake.append_events(events, tmp_path, "traffic")
    assert not set(again) & set(written)


def test_rows_that_do_not_fit_name_the_column(tmp_path: Path) -> None:
    events = _events().drop(columns=["dwell_seconds"])
    with pytest.raises(lake.LakeWriteError, match="dwell_seconds"):
        lake.append_events(events, tmp_path, "traffic")
    bad = _events().assign(clicks="many")
    with pytest.raises(lake.LakeWriteError, match="'clicks'"):
        lake.append_events(bad, tmp_path, "traffic")
    assert not list(tmp_path.rglob("*.parquet"))


def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_write(table, where, **_: object) -> None:  # noqa: ANN001
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(lake.pq, "write_table", half_write)
    with pytest.raises(OSError, match="disk full"):
        lake.append_events(_events(), tmp_path, "traffic")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_concurrent_reader_only_ever_sees_whole_files(tmp_path: Path) -> None:
    """Readers (Spark, pyarrow) skip hidden names; the rename makes a file appear whole."""
    events = _events(rows=2000, days=1)
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        while not done.is_set():
            try:
                seen.append(pads.dataset(tmp_path, format="parquet").count_rows())
            except FileNotFoundError:
                continue  # a file listed as temporary was renamed meanwhile: list again
            except Exception as error:  # noqa: BLE001 - any other failure is the bug
                errors.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(20):
        lake.append_events(events, tmp_path, "traffic")
    done.set()
    reader.join()
    assert errors == []
    assert all(count % len(events) == 0 for count in seen), sorted(set(seen))
    assert pads.dataset(tmp_path, format="parquet").count_rows() == 20 * len(events)


def test_clear_removes_history_and_production(tmp_path: Path) -> None:
    write_dataset(GeneratorConfig(rows=300, seed=2, days=2), tmp_path)
    lake.append_events(_events(), tmp_path / "events", "traffic")
    lake.clear(tmp_path / "events", tmp_path / "labels")
    assert list(tmp_path.rglob("*.parquet")) == []
    assert list((tmp_path / "events").iterdir()) == []
