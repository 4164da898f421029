from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console

from reelrec.data import DEAD_LETTER_FILE, load_kuairand, summary, write_dead_letters
from tests.data.datafiles import default_log_rows, write_csv_rows


def render(table: object) -> str:
    console = Console(record=True, width=120)
    console.print(table)
    return console.export_text()


def test_summary_lists_rows_and_reasons(kuairand_dir: Path, now_ms: int, tmp_path: Path) -> None:
    rows = default_log_rows()
    rows[0]["play_time_ms"] = -1
    rows[1]["is_like"] = 3
    rows[2]["play_time_ms"] = -7
    write_csv_rows(next(kuairand_dir.glob("log_standard_*.csv")), rows)
    data = load_kuairand(kuairand_dir, start=20220425, now_ms=now_ms)
    text = render(summary(data))
    assert "dead: negative_watch_time" in text and "dead: label_not_binary" in text
    assert "note: duration_unknown" in text
    used_line = next(line for line in text.splitlines() if "used" in line)
    assert "2" in used_line and "40.00%" in used_line
    out = write_dead_letters(data, tmp_path / "run")
    assert out == tmp_path / "run" / DEAD_LETTER_FILE
    reasons = pq.read_table(out)["reason"].to_pylist()
    assert sorted(reasons) == ["label_not_binary", "negative_watch_time", "negative_watch_time"]


def test_no_dead_letters_no_file(kuairand_dir: Path, now_ms: int, tmp_path: Path) -> None:
    data = load_kuairand(kuairand_dir, now_ms=now_ms)
    assert write_dead_letters(data, tmp_path) is None
    assert not (tmp_path / DEAD_LETTER_FILE).exists()
    assert "dead-lettered" in render(summary(data))


def test_share_never_rounds_a_few_dead_rows_away(kuairand_dir: Path, now_ms: int) -> None:
    from tests.data.datafiles import log_row

    rows = [log_row(1, 10, 20220425, 9) for _ in range(20_001)]
    rows[7]["play_time_ms"] = -1
    write_csv_rows(next(kuairand_dir.glob("log_standard_*.csv")), rows)
    text = render(summary(load_kuairand(kuairand_dir, now_ms=now_ms)))
    assert ">99.99%" in text and "<0.01%" in text
