"""Fixtures: tiny datasets in the real on-disk formats, built per test in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.datafiles import (
    NOW_MS,
    default_log_rows,
    u_item_line,
    write_csv_rows,
    write_users,
    write_videos,
)


@pytest.fixture
def kuairand_dir(tmp_path: Path) -> Path:
    """A KuaiRand folder: one CSV log (5 rows, 3 days), video and user feature files."""
    folder = tmp_path / "kuairand"
    folder.mkdir()
    write_csv_rows(folder / "log_standard_4_22_to_4_27_pure.csv", default_log_rows())
    write_videos(folder / "video_features_basic_pure.csv")
    write_users(folder / "user_features_pure.csv")
    return folder


@pytest.fixture
def ml_latest_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,964982703\n"
        "1,3,5.0,964981247\n"
        "2,1,2.5,1445714835\n"
        "2,2,4.5,1445714900\n"
        "3,3,3.0,1514764800\n"  # 2018-01-01 00:00 UTC
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '2,"American President, The (1995)",Comedy|Drama|Romance\n'
        "3,Unknown Film,(no genres listed)\n"
    )
    return folder


@pytest.fixture
def ml_100k_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text(
        "196\t242\t3\t881250949\n186\t302\t5\t891717742\n22\t242\t4\t878887116\n"
    )
    lines = [
        u_item_line(242, "Kolya (1996)", "24-Jan-1997", {"Comedy"}),
        u_item_line(302, "L.A. Confidential (1997)", "01-Jan-1997", {"Crime", "Children's"}),
        u_item_line(303, "Café Olé (1994)", "", {"unknown"}),
    ]
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (folder / "u.user").write_text(
        "22|25|M|writer|40206\n186|39|F|executive|00000\n196|49|M|writer|55105\n"
    )
    return folder


@pytest.fixture
def now_ms() -> int:
    return NOW_MS
