"""Tiny end-to-end runs of the CLI on generated KuaiRand-format files: train -> evaluate,
model-directory round trip, and the exit codes for bad input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from reelrec.cli import app
from tests.conftest import make_interactions
from tests.data.datafiles import LOG_COLUMNS

runner = CliRunner()
BEIJING = dt.timezone(dt.timedelta(hours=8))


def write_kuairand(folder: Path, seed: int = 0, drop: str | None = None) -> Path:
    """make_interactions() in the official KuaiRand file layout and column names."""
    data = make_interactions(n_users=60, n_items=80, n_events=3000, days=6, seed=seed)
    ev = {n: data.events.column(n).to_numpy() for n in data.events.column_names}
    when = [dt.datetime.fromtimestamp(t / 1000, BEIJING) for t in ev["timestamp_ms"]]
    log = {
        "user_id": ev["user_id"], "video_id": ev["item_id"],
        "date": [int(w.strftime("%Y%m%d")) for w in when],
        "hourmin": [w.hour * 100 + w.minute for w in when], "time_ms": ev["timestamp_ms"],
        "is_click": ev["is_click"], "is_like": ev["is_like"], "is_follow": ev["is_follow"],
        "is_comment": ev["is_comment"], "is_forward": ev["is_share"], "is_hate": ev["is_hate"],
        "long_view": ev["long_view"], "play_time_ms": ev["watch_ms"], "duration_ms": ev["duration_ms"],
        "profile_stay_time": np.zeros_like(ev["watch_ms"]), "comment_stay_time": np.zeros_like(ev["watch_ms"]),
        "is_profile_enter": np.zeros_like(ev["watch_ms"]), "is_rand": np.zeros_like(ev["watch_ms"]),
        "tab": ev["tab"],
    }  # fmt: skip
    assert tuple(log) == LOG_COLUMNS
    if drop:
        log.pop(drop)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(log), folder / "log_standard_20220425_20220430.parquet")
    it = data.items
    videos = pa.table({
        "video_id": it.column("item_id"), "author_id": it.column("author_id"),
        "video_type": ["NORMAL"] * it.num_rows,
        "upload_dt": [dt.datetime.fromtimestamp(u / 1000, dt.UTC).strftime("%Y-%m-%d") for u in it.column("upload_ms").to_numpy()],
        "upload_type": ["Web"] * it.num_rows, "visible_status": [0.0] * it.num_rows,
        "video_duration": it.column("duration_ms").cast(pa.float64()), "server_width": [720.0] * it.num_rows,
        "server_height": [1280.0] * it.num_rows, "music_id": it.column("music_id"), "music_type": [9.0] * it.num_rows,
        "tag": [",".join(map(str, t)) for t in it.column("tags").to_pylist()],
    })  # fmt: skip
    pacsv.write_csv(videos, folder / "video_features_basic_pure.csv")
    users = data.users
    pacsv.write_csv(
        pa.table(
            {
                "user_id": users.column("user_id"),
                "user_active_degree": ["full_active"] * users.num_rows,
                "register_days": users.column("age_bucket"),
            }
        ),  # fmt: skip
        folder / "user_features_pure.csv",
    )
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("e2e")
    data = write_kuairand(root / "kuairand")
    model = root / "model"
    res = runner.invoke(app, ["train", "--dataset", "kuairand", "--data", str(data), "--end", "20220428",
                              "--out", str(model), "--epochs", "2", "--batch-size", "256",
                              "--linear-start", "is_like=0.75"])  # fmt: skip
    assert res.exit_code == 0, res.output
    return data, model


def test_train_then_evaluate_writes_metrics(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = trained
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["evaluate", "--model", str(model), "--dataset", "kuairand", "--data", str(data),
                              "--start", "20220429", "--json", str(out), "--report", str(tmp_path / "rep")])  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads(out.read_text())
    for label in ("long_view", "is_click", "is_like"):
        m = metrics["labels"][label]
        assert set(m) >= {"auc", "gauc", "logloss", "n"}
        assert m["n"] > 100 and 0 <= m["auc"] <= 1 and m["logloss"] > 0
        for metric in ("auc", "gauc", "logloss"):  # 95% user-bootstrap interval (default 200)
            low, high = m["interval95"][metric]
            assert low <= m[metric] <= high and low < high, (label, metric)
    # long_view carries a learnable user x item signal: the model must beat chance
    assert metrics["labels"]["long_view"]["auc"] > 0.6
    r = metrics["retrieval"]
    assert set(r) >= {"recall@20", "recall@50", "ndcg@20", "ndcg@50", "hit@50", "users"}
    assert "GAUC 95%" in (tmp_path / "rep" / "report.html").read_text()


def test_evaluate_refuses_a_negative_bootstrap(trained: tuple[Path, Path]) -> None:
    data, model = trained
    res = runner.invoke(app, ["evaluate", "--model", str(model), "--dataset", "kuairand", "--data", str(data),
                              "--start", "20220429", "--bootstrap", "-1"])  # fmt: skip
    assert res.exit_code == 2 and "--bootstrap" in res.output


def test_model_directory_round_trip(trained: tuple[Path, Path]) -> None:
    from reelrec.models import UserContext, load_feed_model

    _, model = trained
    a, b = load_feed_model(model), load_feed_model(model)
    items = a.catalog.item_id[:30]
    user = UserContext(user_id=int(a.state.user_ids[0]), now_ms=int(a.catalog.upload_ms.max()) + 1,
                       history=a.user_history(int(a.state.user_ids[0])))  # fmt: skip
    ra, rb = a.rank(user, items), b.rank(user, items)
    np.testing.assert_array_equal(ra.score, rb.score)
    assert ra.score.shape == (30,) and np.all(np.isfinite(ra.score))
    assert set(ra.tasks) >= {"long_view", "is_click"}


def test_corrupted_model_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    from reelrec.errors import IntegrityError
    from reelrec.models import load_feed_model

    _, model = trained
    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    weights = copy / "ranker.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match="ranker.safetensors"):
        load_feed_model(copy)


def test_missing_column_exits_2(tmp_path: Path) -> None:
    data = write_kuairand(tmp_path / "kr", drop="play_time_ms")
    res = runner.invoke(
        app, ["train", "--dataset", "kuairand", "--data", str(data), "--out", str(tmp_path / "m")]
    )
    assert res.exit_code == 2
    assert "play_time_ms" in res.output


def test_bad_date_option_exits_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["train", "--dataset", "kuairand", "--data", str(tmp_path), "--end", "2022-05-01",
                              "--out", str(tmp_path / "m")])  # fmt: skip
    assert res.exit_code == 2 and "--end" in res.output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--pairwise-weights", "long_view=-0.1", "--pairwise-weights"),
        ("--pairwise-weights", "long_view", "TASK=WEIGHT"),
        ("--user-chunk", "0", "user_chunk"),
        ("--pairwise-weights", "long_view=0.2", "--user-chunk 2"),  # no pairs without chunks
        ("--batch-order", "time", "--batch-order"),
        ("--linear-start", "is_like=half", "TASK=SCALE"),
        ("--linear-start", "is_like=0", "scales must be > 0"),
    ],
)
def test_bad_training_option_exits_2(tmp_path: Path, option: str, value: str, message: str) -> None:
    res = runner.invoke(app, ["train", "--dataset", "kuairand", "--data", str(tmp_path),
                              "--out", str(tmp_path / "m"), option, value])  # fmt: skip
    assert res.exit_code == 2 and message in res.output


def test_movielens_train_and_evaluate(tmp_path: Path) -> None:
    data = make_interactions(n_users=50, n_items=70, n_events=2500, days=5, seed=3)
    ev = data.events
    rating = np.where(ev.column("long_view").to_numpy() == 1, 4.5, 2.0)
    folder = tmp_path / "ml"
    folder.mkdir()
    pacsv.write_csv(pa.table({"userId": ev.column("user_id"), "movieId": ev.column("item_id"),
                              "rating": rating, "timestamp": pa.array(ev.column("timestamp_ms").to_numpy() // 1000)}),
                    folder / "ratings.csv")  # fmt: skip
    ids = data.items.column("item_id").to_pylist()
    pacsv.write_csv(pa.table({"movieId": ids, "title": [f"Film {i} (1999)" for i in ids],
                              "genres": ["Drama|Comedy" if i % 2 else "Action" for i in ids]}), folder / "movies.csv")  # fmt: skip
    model, out = tmp_path / "m", tmp_path / "r.json"
    res = runner.invoke(
        app,
        [
            "train",
            "--dataset",
            "movielens",
            "--data",
            str(folder),
            "--end",
            "20220428",
            "--out",
            str(model),
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", "--model", str(model), "--dataset", "movielens", "--data", str(folder),
                              "--start", "20220429", "--json", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert set(json.loads(out.read_text())["labels"]) == {"long_view", "is_like"}


def test_replay_reports_online_frozen_and_their_gains(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    data, model = trained
    out = tmp_path / "replay.json"
    res = runner.invoke(app, ["replay", "--dataset", "kuairand", "--data", str(data), "--model", str(model),
                              "--start", "20220429", "--json", str(out), "--bootstrap", "30"])  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["events"] > 100
    for label, gains in result["gain"].items():
        for metric in ("auc", "gauc", "logloss"):
            g = gains[metric]
            # The point gain is online minus frozen; the interval is an interval.
            diff = result["online"][label][metric] - result["frozen"][label][metric]
            assert g["gain"] == pytest.approx(diff, abs=1e-9)
            assert g["low"] <= g["high"]
    assert "long_view" in result["gain"]


def test_replay_bad_bootstrap_exits_2(trained: tuple[Path, Path]) -> None:
    data, model = trained
    res = runner.invoke(app, ["replay", "--dataset", "kuairand", "--data", str(data), "--model", str(model),
                              "--bootstrap", "-1"])  # fmt: skip
    assert res.exit_code == 2 and "bootstrap" in res.output


def test_train_evaluate_replay_under_bf16_autocast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The accelerator path, on the CPU: accelerators run under bf16 autocast (see
    device.autocast_dtype), so forcing it here runs their dtypes through every command."""
    import reelrec.device

    monkeypatch.setattr(reelrec.device, "autocast_dtype", lambda device: torch.bfloat16)
    data = write_kuairand(tmp_path / "kr")
    model = tmp_path / "m"
    steps = [
        ["train", "--dataset", "kuairand", "--data", str(data), "--end", "20220428", "--out", str(model),
         "--epochs", "1", "--batch-size", "256"],
        ["evaluate", "--model", str(model), "--dataset", "kuairand", "--data", str(data), "--start", "20220429",
         "--json", str(tmp_path / "r.json")],
        ["replay", "--dataset", "kuairand", "--data", str(data), "--start", "20220429", "--model", str(model),
         "--bootstrap", "0"],
    ]  # fmt: skip
    for args in steps:
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args[0], res.output, res.exception)
    metrics = json.loads((tmp_path / "r.json").read_text())["labels"]
    assert metrics["long_view"]["auc"] > 0.6  # bf16 still learns the planted signal
