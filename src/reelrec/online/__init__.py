"""Real-time learning: consume the event log, predict-then-learn, publish deltas to the store.

See `run.run_online` (the `reelrec online` loop), `trainer.OnlineTrainer`, `publish` (deltas,
compaction, retention, resume), `log` (SQLite and Redis Streams consumers) and `replay`.
"""

from reelrec.online.log import EventSource, RedisStreamLog, SqliteSource, open_source
from reelrec.online.metrics import ProgressiveMetrics, TrainerMetrics
from reelrec.online.publish import prune_chains, publish, resume
from reelrec.online.run import OnlineConfig, OnlineSummary, parse_seconds, run_online
from reelrec.online.trainer import OnlineTrainer

__all__ = [
    "EventSource",
    "OnlineConfig",
    "OnlineSummary",
    "OnlineTrainer",
    "ProgressiveMetrics",
    "RedisStreamLog",
    "SqliteSource",
    "TrainerMetrics",
    "open_source",
    "parse_seconds",
    "prune_chains",
    "publish",
    "resume",
    "run_online",
]
