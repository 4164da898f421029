"""`reelrec demo`: the main job on the simulated world, end to end.

1. simulate a short-video world and its logs;
2. train the ranker and retrievers on all days but the last;
3. evaluate offline on the last day (AUC / GAUC / logloss per label, Recall@K / NDCG@K);
4. let the random, popular and model policies (the model through the same feed pipeline
   the HTTP server runs) serve live simulated users for 12 hours from where the training
   logs end, and compare watch time per session;
5. write DIR/report.html (with PNG plots), DIR/metrics.json and print a summary table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from reelrec.config import TrainConfig
from reelrec.data.dataset import DatasetName, Interactions
from reelrec.data.records import Event
from reelrec.device import describe, resolve_device, seed_everything
from reelrec.eval.evaluate import EvalResult, evaluate_bundle
from reelrec.features import FeatureBuilder
from reelrec.models.bundle import FeedBundle, load_feed_model
from reelrec.serve.pipeline import FeedPipeline, PipelineConfig
from reelrec.serve.state import UserStateStore
from reelrec.sim import (
    DAY_MS,
    LiveResult,
    OraclePolicy,
    PopularPolicy,
    RandomPolicy,
    SimConfig,
    World,
    run_live,
    simulate_logs,
)
from reelrec.store.atomic import atomic_write_json
from reelrec.train.command import train_bundle

console = Console()


@dataclass
class DemoConfig:
    out: Path = Path("runs/demo")
    seed: int = 0
    device: str = "auto"
    small: bool = False  # a tiny world for smoke tests
    sessions: int | None = None  # live sessions per policy; default 2,000 (120 when small)

    def sim_config(self) -> SimConfig:
        if self.small:
            return SimConfig(users=300, videos=800, days=3, seed=self.seed)
        return SimConfig(users=2000, videos=5000, days=7, seed=self.seed)

    def live_sessions(self) -> int:
        # 2,000 sessions: online minus frozen, paired, has a standard error of about 12 s
        # (about 28 s at 300 sessions, larger than the effect of learning online).
        if self.sessions is not None:
            return self.sessions
        return 120 if self.small else 2000


FROZEN, ONLINE = "reelrec (frozen)", "reelrec (online)"


@dataclass
class DemoResult:
    offline: EvalResult
    live: dict[str, LiveResult]
    timings_s: dict[str, float] = field(default_factory=dict)

    def online_gain_s(self) -> tuple[float, float]:
        """Online minus frozen watch seconds per session, paired session by session: (mean,
        standard error)."""
        mean, se = self.live[ONLINE].paired_difference(self.live[FROZEN])
        return mean / 1000, se / 1000


class FeedPolicy:
    """Serves simulated users through the server's feed pipeline, with its live user state
    (recent history, already-seen filter) fed from the users' reactions.

    The item table is the content pipeline's, not the model's: videos uploaded after training
    enter the catalog (and the two-tower index, from their content) as they appear, for the
    frozen and the online model alike. Only the online model learns from the reactions.
    """

    def __init__(self, model: FeedBundle, world: World, candidates: int = 200) -> None:
        self.model, self.world, self.candidates = model, world, candidates
        self.users = UserStateStore(history_len=model.builder.config_.history_len)
        self._build_pipeline()

    def _build_pipeline(self) -> None:
        self.pipeline = FeedPipeline(
            self.model, PipelineConfig(per_retriever_k=self.candidates, candidates=self.candidates)
        )
        cat = self.model.catalog
        self.author_of = dict(zip(cat.item_id.tolist(), cat.author_id.tolist(), strict=True))

    def refresh_catalog(self, now_ms: int) -> None:
        """Swap in the item table as of now_ms: features and retrievers see the new videos."""
        items = self.world.catalog(now_ms)
        if items.num_rows == len(self.model.catalog):
            return
        b = self.model
        b.builder = FeatureBuilder.from_config(b.builder.config_, items, b.builder.users_.table)
        b.catalog = b.builder.catalog_
        b.retrievers = [type(r).from_state(*r.state(), items) for r in b.retrievers]
        self._build_pipeline()

    def recommend(self, user_id: int, now_ms: int, n: int) -> np.ndarray:
        snapshot = self.users.snapshot(user_id, now_ms)
        page = self.pipeline.recommend(user_id, n, snapshot, now_ms)
        self.users.record_served(user_id, page.item_ids, now_ms)
        return page.item_ids

    def observe(self, events: pa.Table) -> None:
        fields = [f for f in Event.model_fields if f in events.column_names]
        rows = events.select(fields).to_pylist()
        if rows:
            now = int(rows[-1]["timestamp_ms"])
            self.refresh_catalog(now)
            self.users.record_events([Event(**r) for r in rows], self.author_of, now)


class OnlineFeedPolicy(FeedPolicy):
    """The same feed, plus the online trainer: every reaction is first predicted, then
    learned from (the default `OnlineLearning`: the videos' bias rows and the tags' rows;
    and the trending retriever), so new videos and trending topics reach the feed within the
    live window instead of at the next retrain."""

    def __init__(self, model: FeedBundle, world: World, candidates: int = 200) -> None:
        from reelrec.online.trainer import OnlineTrainer

        super().__init__(model, world, candidates)
        self.trainer = OnlineTrainer(model, device=model.device)
        self.offset = 0

    def observe(self, events: pa.Table) -> None:
        from reelrec.serve.eventlog import LogBatch

        super().observe(events)
        if events.num_rows:
            offsets = np.arange(self.offset + 1, self.offset + 1 + events.num_rows, dtype=np.int64)
            self.offset += events.num_rows
            self.trainer.learn(LogBatch(offsets, events))
            self.model.ranker.eval()  # serve with the updated model, admitting nothing


def split_last_day(data: Interactions, end_ms: int) -> tuple[Interactions, int]:
    """Training interactions (all but the last simulated day) and the row where the last
    day starts.

    `end_ms` is the logs' `SimConfig.end_ms`. Sessions that begin before the end run past
    it; they belong to the last day (cutting at the last midnight of the timestamps left
    only those few hundred spill-over rows as the "last day").
    """
    ts = data.events.column("timestamp_ms")
    n_train = int(pc.sum(pc.less(ts, end_ms - DAY_MS)).as_py())
    train = replace(data, events=data.events.slice(0, n_train), rows_in=n_train)
    return train, n_train


def run_demo(cfg: DemoConfig) -> DemoResult:
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    timings: dict[str, float] = {}
    sim_cfg = cfg.sim_config()

    t = time.perf_counter()
    with console.status("simulating the world's logs"):
        world = World(sim_cfg)
        data = simulate_logs(sim_cfg, world=world)
    timings["simulate"] = time.perf_counter() - t
    console.print(
        f"simulated {data.events.num_rows:,} events, {data.items.num_rows:,} videos, {data.users.num_rows:,} users"
    )

    t = time.perf_counter()
    train, n_train = split_last_day(data, sim_cfg.end_ms)
    train_cfg = TrainConfig(
        dataset=DatasetName.sim,
        out=cfg.out / "model",
        seed=cfg.seed,
        device=cfg.device,
        epochs=1,
        two_tower_epochs=2,
    )
    trained = train_bundle(train, train_cfg, device)
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    bundle = load_feed_model(trained.out, device)
    history = replace(data, events=data.events.slice(0, n_train), rows_in=n_train)
    window = replace(
        data, events=data.events.slice(n_train), rows_in=data.events.num_rows - n_train
    )
    offline = evaluate_bundle(bundle, history, window)
    timings["evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    live = _live(world, trained.out, train.events, cfg, start_ms=sim_cfg.end_ms - DAY_MS)
    timings["live"] = time.perf_counter() - t

    result = DemoResult(offline, live, timings)
    _write_outputs(result, trained.history.step_loss, cfg, describe(device))
    _print_summary(result)
    return result


def _live(
    world: World, model_dir: Path, train_events: pa.Table, cfg: DemoConfig, start_ms: int
) -> dict[str, LiveResult]:
    """Every policy serves the same live sessions, from `start_ms` (where the training logs
    end: the model serves the day after its data, as a daily retrain would) for 12 hours."""
    popular = PopularPolicy(world)
    popular.observe(train_events)  # the same logs the models learned from
    device = resolve_device(cfg.device)
    policies: dict[str, Any] = {
        "random": RandomPolicy(world, seed=cfg.seed),
        "popular": popular,
        FROZEN: FeedPolicy(load_feed_model(model_dir, device), world),
        ONLINE: OnlineFeedPolicy(load_feed_model(model_dir, device), world),
        "oracle (upper bound)": OraclePolicy(world),
    }
    out = {}
    for name, policy in policies.items():
        with console.status(f"live: {name} serves {cfg.live_sessions()} sessions"):
            out[name] = run_live(
                world, policy, start_ms=start_ms, hours=12, sessions=cfg.live_sessions(),
                page_size=10,
            )  # fmt: skip
    return out


def _metrics_json(result: DemoResult, device: str) -> dict[str, Any]:
    return {
        "offline": result.offline.to_json(),
        "live": {
            name: {
                "watch_s_per_session": r.watch_ms_per_session / 1000,
                "watch_s_se": r.watch_ms_se / 1000,
                "items_per_session": r.items_per_session,
                "sessions": r.sessions,
                "label_rates": r.label_rates,
            }
            for name, r in result.live.items()
        },
        "online_minus_frozen_s": dict(zip(("mean", "se"), result.online_gain_s(), strict=True)),
        "timings_s": result.timings_s,
        "device": device,
    }


def _write_outputs(
    result: DemoResult, step_loss: list[float], cfg: DemoConfig, device: str
) -> None:
    from reelrec.eval.report import (
        Cell,
        Report,
        plot_calibration,
        plot_roc,
        plot_training_curves,
        plot_watch_time,
    )

    cfg.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(_metrics_json(result, device), cfg.out / "metrics.json")
    report = Report("reelrec demo: the simulated short-video world")
    report.add_text(
        "A simulated world (users with drifting interests, creators uploading all day, trending "
        "topics) is logged, a multi-task ranker and retrievers are trained on all days but the "
        "last, evaluated offline on the last day, then several policies serve live simulated "
        f"users for 12 hours from where the training logs end. Device: {device}."
    )
    live_rows: list[list[Cell]] = [
        [
            name,
            r.watch_ms_per_session / 1000,
            r.watch_ms_se / 1000,
            r.items_per_session,
            r.label_rates.get("long_view", 0.0),
        ]
        for name, r in result.live.items()
    ]
    report.add_table(
        "Live: watch time per session",
        ["policy", "watch s / session", "± s.e.", "items / session", "long-view rate"],
        live_rows,
    )
    report.add_text(_gain_line(result))
    series = {
        name: ((r.series()[0] - r.series()[0][0]) / 3.6e6, r.series()[1] / 1000)
        for name, r in result.live.items()
    }
    report.add_plot(
        "Watch time per session over the live window",
        plot_watch_time(series, time_unit="hour"),
        "mean per hourly bucket",
    )
    off = result.offline
    report.add_table(
        "Offline ranking (last day)",
        ["label", "AUC", "GAUC", "logloss", "rows"],
        [[n, m.auc, m.gauc, m.logloss, m.n] for n, m in off.labels.items()],
    )
    if off.retrieval:
        report.add_table(
            "Offline retrieval (full ranking, last day)",
            ["retriever", "Recall@20", "Recall@50", "NDCG@50", "HitRate@50", "users"],
            [
                [n, r.recall[20], r.recall[50], r.ndcg[50], r.hit[50], r.users]
                for n, r in off.retrieval.items()
            ],
        )
    report.add_plot("ROC", plot_roc(off.y, off.p))
    report.add_plot("Calibration", plot_calibration(off.y, off.p))
    report.add_plot("Training loss", plot_training_curves({"step_loss": step_loss}))
    report.add_table("Timings", ["stage", "seconds"], [[k, v] for k, v in result.timings_s.items()])
    report.write(cfg.out)


def _print_summary(result: DemoResult) -> None:
    table = Table(title="reelrec demo: summary")
    table.add_column("policy")
    table.add_column("watch s / session", justify="right")
    table.add_column("items / session", justify="right")
    for name, r in result.live.items():
        table.add_row(
            name,
            f"{r.watch_ms_per_session / 1000:.1f} ± {r.watch_ms_se / 1000:.1f}",
            f"{r.items_per_session:.1f}",
        )
    console.print(table)
    console.print(_gain_line(result))
    off = Table(title="offline (last day)")
    for col in ("label", "AUC", "GAUC", "logloss"):
        off.add_column(col, justify="right" if col != "label" else "left")
    for n, m in result.offline.labels.items():
        off.add_row(n, f"{m.auc:.4f}", f"{m.gauc:.4f}", f"{m.logloss:.4f}")
    console.print(off)
    if result.offline.best_retriever:
        best = result.offline.retrieval[result.offline.best_retriever]
        console.print(
            f"retrieval ({result.offline.best_retriever}): "
            f"Recall@50 {best.recall[50]:.4f}, NDCG@50 {best.ndcg[50]:.4f}"
        )
    console.print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings_s.items()))


def _gain_line(result: DemoResult) -> str:
    gain, se = result.online_gain_s()
    n = result.live[ONLINE].sessions
    return (
        f"online minus frozen, paired over the same {n:,} sessions: {gain:+.1f} ± {se:.1f} s "
        "watch per session"
    )
