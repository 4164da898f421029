"""Simulator throughput: simulated events/s (logs) and live sessions/s per reference policy.

    .venv/bin/python benchmarks/sim_bench.py [--sizes demo,large] [--repeat 3] [--json FILE]

Logs: World build, `simulate_logs` (events/s) and `write_logs` (events/s including Parquet).
Live: `run_live` sessions/s and watch time per session for random, popular and oracle on the
world of the first size. Best of --repeat runs (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from reelrec.sim import (
    OraclePolicy,
    PopularPolicy,
    RandomPolicy,
    SimConfig,
    World,
    run_live,
    simulate_logs,
    write_logs,
)

SIZES: dict[str, SimConfig] = {
    "tiny": SimConfig(users=300, videos=1000, days=2, uploads_per_day=200),
    "demo": SimConfig(),  # the demo default: 2k users, 5k videos, 7 days
    "large": SimConfig(users=20_000, videos=50_000, days=7, uploads_per_day=10_000),
}


def best(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def bench_logs(name: str, cfg: SimConfig, repeat: int) -> dict[str, float | int | str]:
    t_world, world = best(lambda: World(cfg), repeat)
    t_sim, data = best(lambda: simulate_logs(cfg, world=world), repeat)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as d:
        t_write, _ = best(lambda: write_logs(cfg, Path(d), world=world), repeat)  # type: ignore[arg-type]
    n = data.events.num_rows  # type: ignore[attr-defined]
    return {
        "size": name,
        "users": cfg.users,
        "videos": cfg.videos,
        "days": cfg.days,
        "events": n,
        "world_s": t_world,
        "simulate_s": t_sim,
        "write_s": t_write,
        "events_per_s": n / t_sim,
        "events_per_s_with_write": n / (t_world + t_write),
    }


def bench_live(cfg: SimConfig, sessions: int) -> list[dict[str, float | str]]:
    world = World(cfg)
    logs = simulate_logs(cfg, world=world).events
    rows = []
    for name in ("random", "popular", "oracle"):
        if name == "random":
            policy: object = RandomPolicy(world)
        elif name == "popular":
            policy = PopularPolicy(world)
            policy.observe(logs)  # type: ignore[attr-defined]
        else:
            policy = OraclePolicy(world)
        t = time.perf_counter()
        res = run_live(world, policy, hours=24, sessions=sessions)  # type: ignore[arg-type]
        dt = time.perf_counter() - t
        rows.append(
            {
                "policy": name,
                "sessions": sessions,
                "sessions_per_s": sessions / dt,
                "events_per_s": res.events.num_rows / dt,
                "watch_s_per_session": res.watch_ms_per_session / 1000,
                "watch_s_se": res.watch_ms_se / 1000,
                "items_per_session": res.items_per_session,
                "long_view": res.label_rates["long_view"],
                "is_like": res.label_rates["is_like"],
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="demo,large", help=f"comma list of {sorted(SIZES)}")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=1000, help="live sessions per policy")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    names = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in names if s not in SIZES]
    if unknown:
        ap.error(f"--sizes: unknown {unknown}; choose from {sorted(SIZES)}")
    console = Console(width=160)

    logs = [bench_logs(n, SIZES[n], args.repeat) for n in names]
    t = Table(title=f"simulate_logs (best of {args.repeat}, one process)")
    for c in ("size", "users", "videos", "days", "events", "world s", "simulate s",
              "events/s", "write s", "events/s incl. world+write"):  # fmt: skip
        t.add_column(c, justify="right")
    for r in logs:
        t.add_row(
            str(r["size"]), f"{r['users']:,}", f"{r['videos']:,}", str(r["days"]),
            f"{r['events']:,}", f"{r['world_s']:.2f}", f"{r['simulate_s']:.2f}",
            f"{r['events_per_s']:,.0f}", f"{r['write_s']:.2f}",
            f"{r['events_per_s_with_write']:,.0f}",
        )  # fmt: skip
    console.print(t)

    live = bench_live(SIZES[names[0]], args.sessions)
    t = Table(title=f"run_live on '{names[0]}' (24 h window, {args.sessions} sessions)")
    for c in ("policy", "sessions/s", "events/s", "watch s/session", "items/session",
              "long_view", "like"):  # fmt: skip
        t.add_column(c, justify="right")
    for r in live:
        t.add_row(
            str(r["policy"]), f"{r['sessions_per_s']:,.0f}", f"{r['events_per_s']:,.0f}",
            f"{r['watch_s_per_session']:.1f} ± {r['watch_s_se']:.1f}",
            f"{r['items_per_session']:.1f}", f"{r['long_view']:.3f}", f"{r['is_like']:.3f}",
        )  # fmt: skip
    console.print(t)
    if args.json:
        args.json.write_text(json.dumps({"logs": logs, "live": live}, indent=2) + "\n")


if __name__ == "__main__":
    main()
