"""Online learning benchmark: trainer throughput, event intake throughput, and freshness.

Freshness: the time from an event's acceptance by POST /v1/events to the first GET /v1/feed
response whose model version includes it (the version's manifest names the offset it learned
up to), with the server, the online trainer and a feedback load running as separate
processes, as in production.

    .venv/bin/python benchmarks/online_bench.py --json runs/online_bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from reelrec.config import TrainConfig
from reelrec.data.dataset import DatasetName
from reelrec.data.records import Event
from reelrec.models.bundle import load_feed_model
from reelrec.online.publish import ensure_base
from reelrec.online.trainer import OnlineTrainer
from reelrec.serve.eventlog import LogBatch
from reelrec.sim import SimConfig, simulate_logs
from reelrec.store.manifest import read_manifest
from reelrec.store.versions import ModelStore
from reelrec.train.command import train_bundle

console = Console()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train_throughput(model: Path, events: Any, batch: int, repeats: int = 2) -> float:
    best = 0.0
    for _ in range(repeats):
        trainer = OnlineTrainer(load_feed_model(model))
        t0 = time.perf_counter()
        for lo in range(0, events.num_rows, batch):
            part = events.slice(lo, batch)
            trainer.learn(LogBatch(np.arange(lo + 1, lo + 1 + part.num_rows), part))
        best = max(best, events.num_rows / (time.perf_counter() - t0))
    return best


def _wait_ready(client: httpx.Client, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


class VersionOffsets:
    """model version -> the event offset it learned up to (from the store's manifests)."""

    def __init__(self, store: Path) -> None:
        self.store = ModelStore(store)
        self.cache: dict[int, int] = {}

    def offset(self, version: int) -> int:
        if version not in self.cache:
            m = read_manifest(self.store.path(version), verify=False)
            self.cache[version] = int(m.extra.get("online", {}).get("offset", 0))
        return self.cache[version]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--publish-every", default="2s")
    ap.add_argument("--probes", type=int, default=30)
    ap.add_argument("--load-eps", type=float, default=1000.0, help="feedback events/s")
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="online_bench."))
    data = simulate_logs(SimConfig(users=1000, videos=3000, days=3, seed=0))
    n_train = int(data.events.num_rows * 0.6)  # learn online from the last 40%
    train = replace(data, events=data.events.slice(0, n_train), rows_in=n_train)
    model = work / "model"
    cfg = TrainConfig(dataset=DatasetName.sim, out=model, device="cpu", two_tower=False)
    train_bundle(train, cfg, torch.device("cpu"), show_progress=False)
    stream = data.events.slice(n_train)
    fields = list(Event.model_fields)
    payload = [
        {k: r[k] for k in fields if k in r}
        for r in stream.select([f for f in fields if f in stream.column_names]).to_pylist()
    ]
    console.print(f"stream: {len(payload):,} events; work dir {work}")

    train_eps = train_throughput(model, stream, args.batch)

    store, db = work / "store", work / "events.sqlite"
    ensure_base(ModelStore(store), model)
    port = _free_port()
    env = {**os.environ, "REELREC_POLL_INTERVAL_S": "0.2"}
    server = subprocess.Popen(
        [sys.executable, "-m", "reelrec.cli", "serve", "--model", str(store),
         "--events-db", str(db), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    trainer = None
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        _wait_ready(client)
        # Intake: batched POSTs of 1000 events, several rounds.
        rates = []
        for _ in range(2):
            t0 = time.perf_counter()
            sent = 0
            for lo in range(0, min(len(payload), 20_000), 1000):
                r = client.post("/v1/events", json={"events": payload[lo : lo + 1000]})
                sent += r.json()["accepted"]
            rates.append(sent / (time.perf_counter() - t0))
        intake_eps = max(rates)

        trainer = subprocess.Popen(
            [sys.executable, "-m", "reelrec.cli", "online", "--model", str(model),
             "--events", str(db), "--store", str(store), "--publish-every",
             args.publish_every, "--device", "cpu"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        stop = threading.Event()

        def feedback() -> None:  # a steady load of feedback next to the probes
            c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
            i = 0
            while not stop.is_set():
                chunk = payload[i % len(payload) : i % len(payload) + 100]
                c.post("/v1/events", json={"events": chunk})
                i += 100
                stop.wait(100 / args.load_eps)

        load = threading.Thread(target=feedback, daemon=True)
        load.start()
        offsets = VersionOffsets(store)
        # Wait until the trainer has caught up with the intake backlog.
        while True:
            v = client.get("/v1/feed", params={"user_id": 1, "n": 10}).json()["model_version"]
            last = client.post("/v1/events", json={"events": payload[:1]}).json()["last_offset"]
            if offsets.offset(v) >= last - 5 * args.load_eps:
                break
            time.sleep(0.5)
        fresh = []
        for k in range(args.probes):
            r = client.post("/v1/events", json={"events": [payload[k]]})
            accepted, offset = time.monotonic(), r.json()["last_offset"]
            while True:
                v = client.get("/v1/feed", params={"user_id": payload[k]["user_id"], "n": 10})
                if offsets.offset(v.json()["model_version"]) >= offset:
                    fresh.append(time.monotonic() - accepted)
                    break
                time.sleep(0.05)
            time.sleep(float(np.random.default_rng(k).uniform(0, 1.0)))
        stop.set()
    finally:
        if trainer is not None:
            trainer.terminate()
        server.terminate()
        server.wait(timeout=30)
    out = {
        "freshness_p50_s": float(np.percentile(fresh, 50)),
        "freshness_p95_s": float(np.percentile(fresh, 95)),
        "train_events_per_s": train_eps,
        "intake_events_per_s": intake_eps,
        "publish_every": args.publish_every,
        "probes": len(fresh),
    }
    table = Table(title="online benchmark (2-core machine, shared)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in out.items():
        table.add_row(k, f"{v:,.2f}" if isinstance(v, float) else str(v))
    console.print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
