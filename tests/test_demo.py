"""`reelrec demo --small`: the main job end to end on a tiny world."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from reelrec.cli import app


def test_small_demo_writes_report_and_metrics(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["demo", "--small", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    live = metrics["live"]
    assert {"random", "popular", "reelrec (frozen)", "reelrec (online)"} <= set(live)
    assert all(v["sessions"] > 0 and v["watch_s_per_session"] >= 0 for v in live.values())
    # the oracle knows the true affinities: nothing may beat it by more than noise
    oracle = live["oracle (upper bound)"]["watch_s_per_session"]
    assert oracle > live["random"]["watch_s_per_session"]
    assert set(metrics["offline"]["labels"]) >= {"long_view", "is_click"}
    gain = metrics["online_minus_frozen_s"]  # paired over the same sessions
    assert gain["se"] > 0 and "paired over the same 120 sessions" in res.output
    html = (tmp_path / "report.html").read_text()
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs and all(name in html for name in pngs)
    assert "summary" in res.output


def test_demo_refuses_a_bad_session_count(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["demo", "--small", "--sessions", "0", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--sessions" in res.output
