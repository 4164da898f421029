"""One entry point from (dataset name, path, dates) to validated `Interactions`.

The CLI's `--dataset/--data/--start/--end` map onto `load_dataset` one to one.
"""

from __future__ import annotations

from pathlib import Path

from reelrec.data.dataset import DatasetName, Interactions
from reelrec.data.generic import load_events
from reelrec.data.kuairand import load_kuairand
from reelrec.data.movielens import load_movielens
from reelrec.data.validate import parse_yyyymmdd
from reelrec.errors import ConfigError


def parse_date_option(value: str | None, option: str) -> int | None:
    """'20220501' -> 20220501; None -> None; anything else -> ConfigError naming `option`."""
    if value is None:
        return None
    parsed = parse_yyyymmdd(str(value).strip())
    if parsed is None:
        raise ConfigError(
            f"{option} {value!r}: expected a calendar date as YYYYMMDD, e.g. 20220501"
        )
    return parsed


def load_dataset(
    name: DatasetName | str,
    path: Path | None,
    start: str | None = None,
    end: str | None = None,
    *,
    now_ms: int | None = None,
) -> Interactions:
    """Read, join and validate a dataset.

    Args:
        name: sim | kuairand | movielens | events.
        path: the dataset folder (or, for `events`, the log file). `sim` with None is the
            embedded simulated world, which the caller (demo/train) generates itself.
        start, end: YYYYMMDD strings, inclusive; None: unbounded.
        now_ms: "now" for the future-timestamp check (tests); None: the wall clock.

    Returns:
        Interactions whose rows_in == events.num_rows + dead.total.

    Raises:
        ConfigError: unknown dataset, bad --start/--end, missing --data.
        DataError: file-level problems (missing file or column, wrong type, empty file).
    """
    try:
        dataset = DatasetName(name)
    except ValueError:
        choices = ", ".join(d.value for d in DatasetName)
        raise ConfigError(f"--dataset {name!r}: expected one of {choices}") from None
    lo, hi = parse_date_option(start, "--start"), parse_date_option(end, "--end")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"--start {start} is after --end {end}: nothing to load")
    if path is None:
        hint = (
            "write a world with `reelrec simulate --out DIR` and pass --data DIR"
            if dataset is DatasetName.sim
            else f"pass --data with the {dataset.value} folder"
        )
        raise ConfigError(f"--data is required for --dataset {dataset.value}: {hint}")
    path = Path(path)
    if dataset is DatasetName.kuairand:
        return load_kuairand(path, lo, hi, now_ms=now_ms)
    if dataset is DatasetName.movielens:
        return load_movielens(path, lo, hi, now_ms=now_ms)
    return load_events(path, lo, hi, now_ms=now_ms)  # events, and sim logs on disk
