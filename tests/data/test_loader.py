from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reelrec.data import DatasetName, load_dataset, parse_date_option
from reelrec.errors import ConfigError
from tests.data.test_generic import canonical_events


@pytest.mark.parametrize("bad", ["2022-05-01", "202205", "20220230", "yesterday", "2022050a"])
def test_bad_start_fails(kuairand_dir: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="--start"):
        load_dataset(DatasetName.kuairand, kuairand_dir, bad, None)


def test_bad_end_fails(kuairand_dir: Path) -> None:
    with pytest.raises(ConfigError, match="--end '20221301'"):
        load_dataset("kuairand", kuairand_dir, None, "20221301")


def test_start_after_end_fails(kuairand_dir: Path) -> None:
    with pytest.raises(ConfigError, match="--start 20220502 is after --end 20220501"):
        load_dataset("kuairand", kuairand_dir, "20220502", "20220501")


def test_unknown_dataset_fails(kuairand_dir: Path) -> None:
    with pytest.raises(ConfigError, match="--dataset 'criteo'"):
        load_dataset("criteo", kuairand_dir, None, None)


@pytest.mark.parametrize("name", list(DatasetName))
def test_missing_data_path_fails(name: DatasetName) -> None:
    with pytest.raises(ConfigError, match="--data is required"):
        load_dataset(name, None, None, None)


def test_parse_date_option() -> None:
    assert parse_date_option(None, "--start") is None
    assert parse_date_option("20240229", "--start") == 20240229
    with pytest.raises(ConfigError):
        parse_date_option("20230229", "--start")  # not a leap year


def test_dispatch_kuairand_with_dates(kuairand_dir: Path, now_ms: int) -> None:
    data = load_dataset("kuairand", kuairand_dir, "20220426", "20220426", now_ms=now_ms)
    assert data.events.num_rows == 1 and data.rows_outside_dates == 4


def test_dispatch_movielens(ml_latest_dir: Path, now_ms: int) -> None:
    data = load_dataset(DatasetName.movielens, ml_latest_dir, None, None, now_ms=now_ms)
    assert data.labels == ("long_view", "is_like") and data.events.num_rows == 5


@pytest.mark.parametrize("name", [DatasetName.sim, DatasetName.events])
def test_sim_and_events_read_canonical_layout(
    tmp_path: Path, now_ms: int, name: DatasetName
) -> None:
    pq.write_table(canonical_events(30), tmp_path / "events.parquet")
    data = load_dataset(name, tmp_path, "20220425", "20220425", now_ms=now_ms)
    assert data.rows_in + data.rows_outside_dates == 30
    assert set(data.events["timestamp_ms"].to_numpy() // 86_400_000) <= {
        1_650_844_800_000 // 86_400_000
    }
