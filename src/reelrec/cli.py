"""`reelrec` command line. Each command maps its options 1:1 onto a typed config and calls
one function; errors the user can fix exit with code 2 and a one-line message."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from reelrec.config import BatchOrder
from reelrec.data.dataset import DatasetName
from reelrec.errors import ReelrecError

app = typer.Typer(
    help="reelrec: real-time recommendation for short-video feeds (CPU, CUDA, Ascend NPU).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., object])

DeviceOpt = Annotated[str, typer.Option(help="auto|cpu|cuda[:N]|npu[:N]|xpu|mps")]
DateOpt = Annotated[str | None, typer.Option(help="YYYYMMDD, inclusive")]
# What the online trainer learns (reelrec.online.trainer.OnlineLearning).
LearnOpt = Annotated[
    str,
    typer.Option(
        help="embedding tables learned online, TABLE or TABLE=LR_SCALE, comma-separated "
        "('none': no table)"
    ),
]
DenseLrOpt = Annotated[float, typer.Option(help="Adam rate of the dense layers (0: held)")]
TaskWeightsOpt = Annotated[
    str,
    typer.Option(help="online loss weights, TASK=W,... ('': is_like=3,is_follow=3; 'none': all 1)"),
]
LiveCountersOpt = Annotated[
    bool,
    typer.Option(help="videos' event counters follow the stream (default: held at the cut-off)"),
]


def user_errors(fn: F) -> F:
    """Turn ReelrecError into a red one-line message and its exit code (2 = bad input)."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except ReelrecError as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            sys.exit(e.exit_code)

    return wrapper  # type: ignore[return-value]


@app.command()
@user_errors
def simulate(
    out: Annotated[Path, typer.Option(help="folder for the Parquet logs")],
    users: int = 2000,
    videos: int = 5000,
    days: int = 7,
    seed: int = 0,
) -> None:
    """Simulate a short-video world and write its logs in the canonical Parquet layout."""
    from reelrec.sim import SimConfig, write_logs

    with err.status("simulating"):
        data = write_logs(SimConfig(users=users, videos=videos, days=days, seed=seed), out)
    Console().print(
        f"wrote {data.events.num_rows:,} events, {data.items.num_rows:,} videos and "
        f"{data.users.num_rows:,} users to {out}/ (events.parquet, items.parquet, users.parquet)"
    )


@app.command()
@user_errors
def train(
    dataset: Annotated[DatasetName, typer.Option(help="input format")],
    out: Annotated[Path, typer.Option(help="model directory to write")],
    data: Annotated[Path | None, typer.Option(help="input folder or file")] = None,
    start: DateOpt = None,
    end: DateOpt = None,
    device: DeviceOpt = "auto",
    epochs: Annotated[int, typer.Option(help="most epochs (early stopping on the tail)")] = 3,
    batch_size: int = 1024,
    wide_warmup_epochs: Annotated[
        int, typer.Option(help="epochs of the per-id bias part alone, first")
    ] = 1,
    pairwise_weights: Annotated[
        str,
        typer.Option(
            help="within-user pairwise loss weights, TASK=W,... ('' or 'none': BCE only); "
            "on KuaiRand long_view=0.2,is_click=0.3 with --user-chunk 2"
        ),
    ] = "",
    linear_start: Annotated[
        str,
        typer.Option(
            help="tasks whose per-id biases start from a converged logistic regression, "
            "times a scale: TASK[=SCALE],... (bare: 0.5); on KuaiRand is_like=0.75,is_follow"
        ),
    ] = "",
    user_chunk: Annotated[
        int, typer.Option(help="consecutive events of one user per shuffled run of rows")
    ] = 1,
    batch_order: Annotated[
        BatchOrder,
        typer.Option(help="shuffle: the whole window; day: days in time order, each shuffled"),
    ] = BatchOrder.SHUFFLE,
    seed: int = 0,
) -> None:
    """Train the ranker and retrievers on a dataset; write a model directory."""
    from reelrec.config import PAIRWISE_WEIGHTS, TrainConfig, parse_linear_start, parse_task_weights
    from reelrec.train import train_command

    cfg = TrainConfig(
        dataset=dataset, data=data, start=start, end=end, out=out, device=device,
        epochs=epochs, batch_size=batch_size, seed=seed, wide_warmup_epochs=wide_warmup_epochs,
        user_chunk=user_chunk, batch_order=batch_order,
        pairwise_weights=parse_task_weights(pairwise_weights, "--pairwise-weights", PAIRWISE_WEIGHTS),
        linear_start=parse_linear_start(linear_start),
    )  # fmt: skip
    train_command(cfg)


@app.command()
@user_errors
def export(
    model: Annotated[Path, typer.Option(help="model directory written by `reelrec train`")],
    out: Annotated[Path, typer.Option(help="ONNX file to write")],
) -> None:
    """Export the ranker to ONNX (for ONNX Runtime) and check it against the torch ranker."""
    from reelrec.models.export import export_command

    export_command(model, out)


@app.command()
@user_errors
def evaluate(
    model: Annotated[Path, typer.Option(help="model directory written by `reelrec train`")],
    dataset: Annotated[DatasetName, typer.Option(help="input format")],
    data: Annotated[Path | None, typer.Option(help="input folder or file")] = None,
    start: DateOpt = None,
    end: DateOpt = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write metrics JSON")] = None,
    report: Annotated[Path | None, typer.Option(help="write an HTML report folder")] = None,
    bootstrap: Annotated[
        int, typer.Option(help="user-bootstrap replicates for 95% intervals (0: none)")
    ] = 200,
    device: DeviceOpt = "auto",
) -> None:
    """Evaluate a model offline: AUC, GAUC, logloss per label; retrieval Recall/NDCG@K."""
    from reelrec.config import EvalConfig
    from reelrec.eval.evaluate import evaluate_command

    cfg = EvalConfig(
        model=model, dataset=dataset, data=data, start=start, end=end,
        json_out=json_out, report=report, device=device, bootstrap=bootstrap,
    )  # fmt: skip
    evaluate_command(cfg)


@app.command()
@user_errors
def serve(
    model: Annotated[Path, typer.Option(help="model directory or model store folder")],
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    events_db: Annotated[Path | None, typer.Option(help="SQLite event log")] = None,
    events_stream: Annotated[
        str | None,
        typer.Option(help="also append accepted events to redis://HOST:PORT/DB?stream=KEY"),
    ] = None,
) -> None:
    """Serve feeds over HTTP (FastAPI on uvicorn)."""
    from reelrec.serve import run_server

    run_server(
        model=model, host=host, port=port, workers=workers, events_db=events_db,
        events_stream=events_stream,
    )  # fmt: skip


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="report folder")] = Path("runs/demo"),
    seed: int = 0,
    device: DeviceOpt = "auto",
    small: Annotated[bool, typer.Option(help="tiny world, for smoke tests")] = False,
    sessions: Annotated[
        int | None, typer.Option(min=1, help="live sessions per policy (default 2000)")
    ] = None,
) -> None:
    """The main job on the simulated world: simulate, train, evaluate, serve live users."""
    from reelrec.demo import DemoConfig, run_demo

    run_demo(DemoConfig(out=out, seed=seed, device=device, small=small, sessions=sessions))


@app.command()
@user_errors
def online(
    model: Annotated[Path, typer.Option(help="trained model directory (the store's base)")],
    events: Annotated[str, typer.Option(help="SQLite event log path or redis://HOST:PORT/DB")],
    store: Annotated[Path, typer.Option(help="model store folder to publish versions into")],
    publish_every: Annotated[str, typer.Option(help="publish interval, e.g. 2s, 500ms")] = "2s",
    batch_size: int = 512,
    compact_every: Annotated[int, typer.Option(help="a full version every K deltas")] = 20,
    keep: Annotated[int, typer.Option(help="versions kept (plus pinned ones, chains)")] = 30,
    full_batches_only: Annotated[
        bool, typer.Option(help="never learn partial batches (exactly reproducible runs)")
    ] = False,
    until_offset: Annotated[int | None, typer.Option(help="stop after this offset")] = None,
    idle_exit: Annotated[float | None, typer.Option(help="stop after N idle seconds")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port")] = None,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads")] = None,
    learn: LearnOpt = "wide_item=5,tag",
    dense_lr: DenseLrOpt = 0.0,
    task_weights: TaskWeightsOpt = "",
    live_item_counters: LiveCountersOpt = False,
    device: DeviceOpt = "auto",
) -> None:
    """Learn from the event log online; publish delta versions to a model store."""
    from reelrec.online import OnlineConfig, parse_seconds, run_online
    from reelrec.online.trainer import OnlineLearning

    cfg = OnlineConfig(
        model=model, events=events, store=store, publish_every_s=parse_seconds(publish_every),
        batch_size=batch_size, compact_every=compact_every, keep=keep,
        partial_after_s=None if full_batches_only else 0.05, until_offset=until_offset,
        idle_exit_s=idle_exit, metrics_port=metrics_port, threads=threads, device=device,
        learning=OnlineLearning.parse(learn, dense_lr, task_weights, live_item_counters),
    )  # fmt: skip
    summary = run_online(cfg)
    err.print(
        f"learned {summary.learned:,} events up to offset {summary.offset}; "
        f"published {len(summary.versions)} versions; {summary.events_per_s:,.0f} events/s"
    )


@app.command()
@user_errors
def replay(
    dataset: Annotated[DatasetName, typer.Option(help="input format")],
    data: Annotated[Path, typer.Option(help="input folder or file")],
    model: Annotated[Path, typer.Option(help="model directory written by `reelrec train`")],
    start: DateOpt = None,
    end: DateOpt = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write metrics JSON")] = None,
    batch_size: int = 512,
    bootstrap: Annotated[
        int, typer.Option(help="paired user-bootstrap replicates for the gains (0: none)")
    ] = 200,
    learn: LearnOpt = "wide_item=5,tag",
    dense_lr: DenseLrOpt = 0.0,
    task_weights: TaskWeightsOpt = "",
    live_item_counters: LiveCountersOpt = False,
    device: DeviceOpt = "auto",
) -> None:
    """Stream a historical window through the online trainer: online vs frozen metrics."""
    from reelrec.online.replay import ReplayConfig, replay_command
    from reelrec.online.trainer import OnlineLearning

    replay_command(
        ReplayConfig(
            dataset=dataset,
            data=data,
            model=model,
            start=start,
            end=end,
            json_out=json_out,
            batch_size=batch_size,
            bootstrap=bootstrap,
            learning=OnlineLearning.parse(learn, dense_lr, task_weights, live_item_counters),
            device=device,
        )  # fmt: skip
    )


if __name__ == "__main__":
    app()
