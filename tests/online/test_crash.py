"""Crash safety: SIGKILL the trainer at random moments while events keep arriving; at the end
every event was learned exactly once and the model equals an uninterrupted run's, bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from reelrec.data.records import Event
from reelrec.online.publish import resume
from reelrec.online.trainer import OnlineLearning
from reelrec.serve.eventlog import EventLog
from reelrec.store.versions import ModelStore

BATCH = 64
# More than the default learns, dense layers included, so Adam's state is checked too.
LEARN = OnlineLearning(("item", "wide_item", "author", "fields"), dense_lr=1e-4)


def _trainer(model: Path, events: Path, store: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "reelrec.cli", "online", "--model", str(model),
           "--events", str(events), "--store", str(store), "--publish-every", "150ms",
           "--batch-size", str(BATCH), "--compact-every", "4", "--keep", "3",
           "--full-batches-only", "--threads", "1", "--device", "cpu",
           "--learn", ",".join(LEARN.tables), "--dense-lr", str(LEARN.dense_lr), *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _final_state(store: Path) -> tuple[dict[str, bytes], dict[str, int]]:
    torch.set_num_threads(1)
    trainer, _ = resume(ModelStore(store), torch.device("cpu"), {"learning": LEARN})
    return trainer.checkpoint_files(), {"learned": trainer.learned, "offset": trainer.offset,
                                        "offset_sum": trainer.offset_sum}  # fmt: skip


def test_sigkill_at_random_points_learns_each_event_once(
    model_dir: Path, live_events: list[Event], tmp_path: Path
) -> None:
    events = live_events[:2400]
    n = len(events)
    log_path = tmp_path / "events.sqlite"
    log = EventLog(log_path)
    log.append(events[:200])
    rng = np.random.default_rng(0)

    def write() -> None:  # the feedback keeps arriving while the trainer dies and restarts
        for lo in range(200, n, 50):
            log.append(events[lo : lo + 50])
            time.sleep(0.12)

    writer = threading.Thread(target=write)
    writer.start()
    store = tmp_path / "store"
    kills = 0
    while kills < 10 or writer.is_alive():
        proc = _trainer(model_dir, log_path, store)
        time.sleep(float(rng.uniform(1.5, 4.0)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    writer.join()
    assert log.last_offset() == n
    done = _trainer(model_dir, log_path, store, "--until-offset", str(n))
    assert done.wait(timeout=120) == 0, done.stderr.read() if done.stderr else ""

    reference_store = tmp_path / "reference"
    ref = _trainer(model_dir, log_path, reference_store, "--until-offset", str(n))
    assert ref.wait(timeout=120) == 0

    files, counters = _final_state(store)
    ref_files, ref_counters = _final_state(reference_store)
    assert kills >= 10
    assert counters == {"learned": n, "offset": n, "offset_sum": n * (n + 1) // 2}
    assert counters == ref_counters
    for name, blob in ref_files.items():
        assert files[name] == blob, f"{name} differs from the uninterrupted run"
