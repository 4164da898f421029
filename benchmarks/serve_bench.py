"""Feed server under open-loop load, with a new model version published every 10 s.

Setup: simulate a world with a 10,000-video catalog, train a model on it with the real
trainer (or pass --model DIR), publish it as v1 of a model store, start `reelrec serve` on the
store in its own process. Then, for each target rate, a load generator in a *separate process*
sends GET /v1/feed at fixed arrival times (open loop: request i is due at t0 + i / rate,
whether or not earlier ones have answered; latency counts from the due time, so a stalled
server cannot hide queueing), while this process publishes a new version every
--publish-every seconds. Per rate: p50/p95/p99, achieved rate, errors, swaps.

Also: the ranker's FLOPs per request (torch FlopCounterMode on one 500-candidate `rank`) and
this CPU's measured matmul FLOP/s, to see how far the server is from the compute limit.

Usage:
  .venv/bin/python benchmarks/serve_bench.py [--rates 50,100,200,300] [--seconds 30]
      [--model MODEL_DIR] [--work runs/serve_bench] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console()
N_PER_PAGE = 20


# ----------------------------------------------------------------------------- load generator
class _Conn:
    """One keep-alive HTTP/1.1 connection, spoken by hand: a load generator should cost far
    less CPU than the server it measures (httpx costs ~1 ms of CPU per request)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, target: str, host: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


async def _open_loop(url: str, rate: float, seconds: float, users: np.ndarray) -> dict[str, Any]:
    host_port = url.split("://", 1)[1]
    host, port = host_port.split(":")
    n = int(rate * seconds)
    rng = np.random.default_rng(int(rate))
    picks = users[rng.integers(0, users.size, n)]
    latencies = np.full(n, np.nan)
    errors: dict[str, int] = {}
    ranked: list[int] = []
    versions: set[int] = set()
    idle: list[_Conn] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.5

    async def one(i: int) -> None:
        due = t0 + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        conn = idle.pop() if idle else None
        try:
            if conn is None:
                conn = _Conn(*await asyncio.open_connection(host, int(port)))
            target = f"/v1/feed?user_id={int(picks[i])}&n={N_PER_PAGE}"
            status, body = await asyncio.wait_for(conn.get(target, host_port), timeout=10.0)
            latencies[i] = loop.time() - due
            idle.append(conn)
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            else:
                doc = json.loads(body)
                ranked.append(doc["candidates"]["ranked"])
                versions.add(doc["model_version"])
        except Exception as e:  # timeouts, resets: all count as errors (connection dropped)
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            if conn is not None:
                conn.writer.close()

    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = loop.time() - t0
    for conn in idle:
        conn.writer.close()
    ok = latencies[~np.isnan(latencies)] * 1e3
    return {
        "target_rps": rate,
        "achieved_rps": round(len(ranked) / elapsed, 1),
        "sent": n,
        "p50_ms": round(float(np.percentile(ok, 50)), 2) if ok.size else None,
        "p95_ms": round(float(np.percentile(ok, 95)), 2) if ok.size else None,
        "p99_ms": round(float(np.percentile(ok, 99)), 2) if ok.size else None,
        "errors": int(sum(errors.values())),
        "error_kinds": errors,
        "mean_ranked": round(float(np.mean(ranked)), 1) if ranked else 0.0,
        "versions_seen": sorted(versions),
    }


def loadgen_main(url: str, rate: float, seconds: float, users_file: str, out: str) -> None:
    users = np.load(users_file)
    result = asyncio.run(_open_loop(url, rate, seconds, users))
    Path(out).write_text(json.dumps(result))


# ----------------------------------------------------------------------------- setup
def build_model(work: Path, videos: int, users: int, days: int) -> Path:
    """Simulate a world (cached) and train a model on it with the real trainer (cached)."""
    from reelrec.config import TrainConfig
    from reelrec.sim import SimConfig, write_logs
    from reelrec.train import train_command

    sim = work / f"sim_{users}u_{videos}v_{days}d"
    if not (sim / "events.parquet").exists():
        console.print(f"simulating {users} users, {videos} videos, {days} days -> {sim}")
        write_logs(SimConfig(users=users, videos=videos, days=days, seed=0), sim)
    model = work / f"model_{sim.name}"
    if not (model / "manifest.json").exists():
        console.print(f"training -> {model}")
        train_command(TrainConfig(dataset="sim", data=sim, out=model, device="cpu"))  # type: ignore[arg-type]
    return model


def user_pool(model: Path, n_unknown_share: float = 0.1) -> np.ndarray:
    """Known users of the model's user table plus ~10% never-seen ids (cold starts)."""
    import pyarrow.parquet as pq

    known = pq.read_table(model / "users.parquet").column("user_id").to_numpy()
    unknown = np.arange(10**12, 10**12 + max(1, int(known.size * n_unknown_share)))
    return np.concatenate([known, unknown]).astype(np.int64)


def ranker_flops(model_dir: Path, k: int) -> dict[str, float]:
    """FLOPs of one `rank` call on k candidates, its time, and this CPU's matmul FLOP/s."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from reelrec.models import load_feed_model
    from reelrec.models.api import UserContext

    torch.set_num_threads(1)
    model = load_feed_model(model_dir)
    ids = model.catalog.item_id[model.catalog.visible][:k]
    user = UserContext(
        user_id=int(np.asarray(model.catalog.item_id)[0]), now_ms=int(time.time() * 1e3)
    )
    with FlopCounterMode(display=False) as counter:
        model.rank(user, ids)
    flops = float(counter.get_total_flops())
    times = []
    for _ in range(30):
        t = time.perf_counter()
        model.rank(user, ids)
        times.append(time.perf_counter() - t)
    a = torch.randn(512, 512)
    b = torch.randn(512, 512)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    reps = 40
    for _ in range(reps):
        a @ b
    peak_1t = 2 * 512**3 * reps / (time.perf_counter() - t)
    return {
        "candidates": float(ids.size),
        "ranker_flops_per_request": flops,
        "rank_ms_p50_1thread": float(np.median(times) * 1e3),
        "ranker_gflops_achieved": flops / float(np.median(times)) / 1e9,
        "cpu_matmul_gflops_1thread": peak_1t / 1e9,
        "cpu_matmul_gflops_all_cores": peak_1t * (os.cpu_count() or 1) / 1e9,
    }


class Publisher(threading.Thread):
    """Publishes the model as a new store version every `every_s` seconds (keeps 3)."""

    def __init__(self, store: Any, model: Path, every_s: float) -> None:
        super().__init__(daemon=True)
        self.store, self.model, self.every_s = store, model, every_s
        self.stop = threading.Event()
        self.published = 0

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            self.store.publish_dir(self.model, keep=3)
            self.published += 1


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (localhost)
        return str(r.read().decode())


def _swaps(base: str) -> float:
    m = re.search(r"^reelrec_model_swaps_total (\S+)$", _get(base + "/metrics"), re.M)
    return float(m.group(1)) if m else 0.0


def start_server(store_root: Path, port: int, work: Path, workers: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, REELREC_POLL_INTERVAL_S="0.5", REELREC_DEVICE="cpu")
    env.pop("REELREC_ADMIN_TOKEN", None)
    db = work / "events.sqlite"
    cmd = [sys.executable, "-m", "reelrec.cli", "serve", "--model", str(store_root),
           "--port", str(port), "--events-db", str(db), "--workers", str(workers)]  # fmt: skip
    log = open(work / "server.log", "wb")  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if json.loads(_get(f"http://127.0.0.1:{port}/readyz"))["ready"]:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited; see {work / 'server.log'}")
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready in 120 s")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rates", default="50,100,200,300", help="target requests/s, comma-separated")
    p.add_argument(
        "--seconds", type=float, default=30.0, help="load per rate (>= 30 for the issue)"
    )
    p.add_argument("--publish-every", type=float, default=10.0)
    p.add_argument("--model", type=Path, default=None, help="model dir (else simulate + train)")
    p.add_argument("--videos", type=int, default=10_000)
    p.add_argument("--users", type=int, default=3_000)
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--work", type=Path, default=Path("runs/serve_bench"))
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--workers", type=int, default=2,
        help="server processes, one per core of this 2-core machine by default (each follows "
        "the shared event log for user state; the served-item filter is per worker)",
    )  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="write results as JSON")
    p.add_argument("--loadgen", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.loadgen:
        url, rate, seconds, users_file, out = args.loadgen
        loadgen_main(url, float(rate), float(seconds), users_file, out)
        return

    from reelrec.store.versions import ModelStore

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    model = args.model or build_model(work, args.videos, args.users, args.days)
    flops = ranker_flops(model, 500)
    store_root = work / f"store_{os.getpid()}"
    store = ModelStore(store_root)
    store.publish_dir(model)
    users_file = work / "users.npy"
    np.save(users_file, user_pool(model))
    base = f"http://127.0.0.1:{args.port}"
    server = start_server(store_root, args.port, work, args.workers)
    rows: list[dict[str, Any]] = []
    try:
        for rate in [float(r) for r in args.rates.split(",")]:
            swaps_before = _swaps(base)
            pub = Publisher(store, model, args.publish_every)
            pub.start()
            out = work / f"loadgen_{int(rate)}.json"
            subprocess.run(
                [sys.executable, __file__, "--loadgen", base, str(rate), str(args.seconds),
                 str(users_file), str(out)],
                check=True,
            )  # fmt: skip
            pub.stop.set()
            pub.join()
            row = json.loads(out.read_text())
            row["swaps"] = int(_swaps(base) - swaps_before)
            row["published"] = pub.published
            rows.append(row)
            console.print(f"rate {rate:g}: {row}")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    ok = [r for r in rows if r["errors"] == 0 and r["p99_ms"] is not None and r["p99_ms"] <= 50]
    result = {
        "rates": rows,
        "max_rps_p99_under_50ms": max((r["target_rps"] for r in ok), default=None),
        "catalog_videos": args.videos if args.model is None else None,
        "candidates_ranked": flops["candidates"],
        "flops": flops,
        "cpu_count": os.cpu_count(),
        "server_workers": args.workers,
    }
    table = Table(
        title=f"serve_bench: GET /v1/feed n={N_PER_PAGE}, {args.workers} worker(s), "
        f"new version every {args.publish_every:g}s"
    )
    for col in (
        "target rps",
        "achieved rps",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "swaps",
        "ranked",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['target_rps']:g}", f"{r['achieved_rps']:.1f}", str(r["p50_ms"]), str(r["p95_ms"]),
            str(r["p99_ms"]), str(r["errors"]), str(r["swaps"]), f"{r['mean_ranked']:.0f}",
        )  # fmt: skip
    console.print(table)
    f = flops
    console.print(
        f"ranker: {f['ranker_flops_per_request'] / 1e6:.1f} MFLOP per request "
        f"({f['candidates']:.0f} candidates), {f['rank_ms_p50_1thread']:.2f} ms on 1 thread = "
        f"{f['ranker_gflops_achieved']:.2f} GFLOP/s vs "
        f"{f['cpu_matmul_gflops_1thread']:.1f} GFLOP/s matmul peak on 1 core "
        f"({f['cpu_matmul_gflops_all_cores']:.1f} on {os.cpu_count()} cores)"
    )
    console.print(
        f"highest rate with p99 <= 50 ms and no errors: {result['max_rps_p99_under_50ms']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
