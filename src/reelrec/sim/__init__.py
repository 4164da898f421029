"""The simulated short-video world: logs in the canonical format, and a live environment.

cfg = SimConfig(users=2000, videos=5000, days=7, seed=0)
data = simulate_logs(cfg)                      # Interactions, like any adapter
world = World(cfg)
result = run_live(world, OraclePolicy(world), hours=24, sessions=1000)
result.watch_ms_per_session
"""

from reelrec.sim.config import DAY_MS, DEFAULT_START_MS, HOUR_MS, SimConfig
from reelrec.sim.live import LiveResult, OnlinePolicy, Policy, live_schedule, run_live
from reelrec.sim.logs import label_rates, simulate_logs, write_logs
from reelrec.sim.policies import OraclePolicy, PopularPolicy, RandomPolicy
from reelrec.sim.world import ITEM_ID_BASE, USER_ID_BASE, World

__all__ = [
    "DAY_MS",
    "DEFAULT_START_MS",
    "HOUR_MS",
    "ITEM_ID_BASE",
    "USER_ID_BASE",
    "LiveResult",
    "OnlinePolicy",
    "OraclePolicy",
    "Policy",
    "PopularPolicy",
    "RandomPolicy",
    "SimConfig",
    "World",
    "label_rates",
    "live_schedule",
    "run_live",
    "simulate_logs",
    "write_logs",
]
