"""`OnlineTrainer`: learn a loaded model from a stream of events, predicting each batch first.

One `learn(batch)`:
1. features from the trainer's `ServingState` (each user's history and the causal counters
   continue from where the model's data ended; new users and items join);
2. one forward pass in train mode: its predictions come from the model *before* this batch's
   update, so they are the progressive-validation predictions (recorded per task);
3. backward: the embedding rows update inside it (fused row-wise optimizer; new ids are
   admitted), the dense layers through Adam;
4. the state moves past the batch; the trending retriever takes the events.

Everything that the next `learn` depends on is in `checkpoint_files()` (embedding tables with
their host metadata and RNG counters, Adam's moments, the serving state, the counters), so a
trainer restored from it continues bit-identically on the same device and thread count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from reelrec.config import parse_task_weights
from reelrec.device import adam, autocast
from reelrec.errors import ConfigError, IntegrityError
from reelrec.features.history import ServingState
from reelrec.models.bundle import FeedBundle
from reelrec.models.retrieval import TrendingRetriever, find_trending
from reelrec.online.metrics import ProgressiveMetrics
from reelrec.serve.eventlog import LogBatch
from reelrec.train.loop import dense_parameters

CHECKPOINT_FILES = (
    "trainer.embeddings.safetensors",
    "trainer.optim.safetensors",
    "trainer.state.safetensors",
)


# Online loss weights of the rare labels. One event moves a row by one small step, and the
# rare labels' steps are the smallest (few positives; the row-wise optimizer's accumulator is
# filled by the frequent labels' gradients), so their rows hardly follow the stream. In the
# KuaiRand replay (seeds 0/1) weight 3 took is_like's AUC gain from +.0005 / +.0001 to
# +.0008 / +.0006 (intervals from about 0 up), long_view's and is_click's moved by .0001 at
# most; weight 5 did as well there but cost the simulated world 17 s of watch per session.
RARE_TASK_WEIGHTS = {"is_like": 3.0, "is_follow": 3.0}


@dataclass(frozen=True)
class OnlineLearning:
    """What the online trainer updates from the stream.

    The default learns the item side only: each video's bias row (at 5x its training rate),
    which goes stale first (new uploads), and the tag rows, which carry a trend to every
    video of the topic (a video gets few events in minutes, a tag many; in the KuaiRand
    replay the tags raised the AUC gain on every label, is_follow's from .0000 to +.0028).
    With the videos' counters held at the cut-off (`live_item_counters`), the bias rows carry
    the live signal alone; in the KuaiRand replay (seeds 0/1, rates 3, 5, 8, 12 tried) 5x was
    the one rate that raised AUC and GAUC on every label of both seeds.
    The videos' embedding rows are held too: with a ranker trained with the within-user
    pairwise loss, learning them online lowered the replay's long_view GAUC by .002-.004.
    It leaves alone everything that one user's own reactions update and that comes back in
    that same user's later predictions: their id rows, their profile-field rows (some fields
    nearly identify a user), the authors they keep watching, and the shared dense layers.
    Learning those makes the model chase each user's last few reactions, and a user's
    reaction rate regresses to their mean. Measured in a KuaiRand replay, learning everything
    raised AUC by .003-.018 but lowered GAUC, the ranking within each user's feed, by
    .01-.03.
    `dense_lr > 0` turns dense learning on.

    Args:
        tables: embedding tables whose rows learn online (the others are held as trained).
        lr_scale: online learning rate of a learned table, as a multiple of its training one
            (a table that does not learn ignores it).
        dense_lr: Adam learning rate of the dense layers; 0 holds them (Monolith, likewise,
            syncs sparse rows within minutes and dense weights daily).
        task_weights: online loss weight per task (others: the model's, default 1); see
            `RARE_TASK_WEIGHTS`.
        live_item_counters: let the videos' event counters (impressions and label rates)
            follow the stream; held at the model's cut-off by default, like the users' (see
            `ServingState.advance` for why and what it measured).
    """

    tables: tuple[str, ...] = ("wide_item", "tag")
    dense_lr: float = 0.0
    task_weights: dict[str, float] = field(default_factory=lambda: dict(RARE_TASK_WEIGHTS))
    lr_scale: dict[str, float] = field(default_factory=lambda: {"wide_item": 5.0})
    live_item_counters: bool = False

    def __post_init__(self) -> None:
        if not self.dense_lr >= 0:
            raise ConfigError(f"dense_lr={self.dense_lr}: must be >= 0")
        bad = {k: w for k, w in self.lr_scale.items() if not w > 0}
        if bad:
            raise ConfigError(f"online learning-rate scales {bad}: must be > 0")
        bad = {k: w for k, w in self.task_weights.items() if not w >= 0}
        if bad:
            raise ConfigError(f"online task weights {bad}: must be >= 0")

    @classmethod
    def parse(
        cls, tables: str, dense_lr: float, task_weights: str = "", live_item_counters: bool = False
    ) -> OnlineLearning:
        """From the CLI: `--learn wide_item=5,tag` (a table, or TABLE=SCALE for a table that
        learns at SCALE times its training rate; '' or 'none' learns no table),
        `--task-weights is_like=3,is_follow=3` ('' keeps the defaults, 'none' weighs all 1)."""
        items = [] if tables.strip().lower() in ("", "none") else tables.split(",")
        names, scales = [], {}
        for item in items:
            name, eq, value = (part.strip() for part in item.partition("="))
            names.append(name)
            if eq:
                try:
                    scales[name] = float(value)
                except ValueError:
                    raise ConfigError(
                        f"--learn {item!r}: expected TABLE or TABLE=SCALE, e.g. wide_item=3"
                    ) from None
        weights = parse_task_weights(task_weights, "--task-weights", RARE_TASK_WEIGHTS)
        return cls(tuple(names), dense_lr, weights, scales, live_item_counters)

    def check(self, known: list[str], tasks: list[str]) -> None:
        """Refuse table and task names the model does not have (a typo would silently
        learn less)."""
        unknown = sorted(set(self.tables) - set(known))
        if unknown:
            raise ConfigError(
                f"online learning tables {unknown}: not in the model (it has {sorted(known)})"
            )
        # a default weight for a task this model lacks (MovieLens: no is_follow) is moot
        extra = sorted(set(self.task_weights) - set(tasks) - set(RARE_TASK_WEIGHTS))
        if extra:
            raise ConfigError(f"online task weights {extra}: not tasks of the model ({tasks})")


class OnlineTrainer:
    """Predict-then-learn over event batches, on top of a loaded `FeedBundle`.

    Args:
        bundle: the model to continue (its ranker, builder, state and retrievers are used and
            updated in place).
        learning: which tables and whether the dense layers learn (see `OnlineLearning`).
        device: where the ranker lives (the bundle's device).
        metrics: progressive-validation metrics to feed (default: a rolling window).

    Attributes:
        offset: the offset of the last event learned.
        learned: events learned so far (over the whole lineage of the model).
        offset_sum: sum of the offsets learned (with `learned`, detects lost or repeated
            events in tests).
    """

    def __init__(
        self,
        bundle: FeedBundle,
        *,
        learning: OnlineLearning | None = None,
        device: torch.device | None = None,
        metrics: ProgressiveMetrics | None = None,
    ) -> None:
        self.bundle = bundle
        self.ranker = bundle.ranker
        self.device = device or torch.device("cpu")
        self.learning = learning or OnlineLearning()
        tables = bundle.ranker.embeddings.tables
        self.learning.check(list(tables), bundle.builder.config_.tasks)
        self.task_weights = {**self.ranker.config.task_weights, **self.learning.task_weights}
        for name, table in tables.items():
            table.requires_update = name in self.learning.tables
            if name in self.learning.lr_scale:  # the model's own table configs stay as saved
                table.config = replace(
                    table.config, lr=table.config.lr * self.learning.lr_scale[name]
                )
        dense = dense_parameters(self.ranker)
        for p in dense:
            p.requires_grad_(self.learning.dense_lr > 0)  # held layers: no weight gradients
        self.optimizer = adam(dense, self.learning.dense_lr) if self.learning.dense_lr > 0 else None
        self.metrics = metrics or ProgressiveMetrics(bundle.builder.config_.tasks)
        self.offset = 0
        self.learned = 0
        self.offset_sum = 0
        self._touched_users: list[np.ndarray] = []
        self._touched_items: list[np.ndarray] = []

    @property
    def state(self) -> ServingState:
        return self.bundle.state

    @property
    def trending(self) -> TrendingRetriever | None:
        """The bundle's trending retriever, looked up each time: whoever swaps the bundle's
        retrievers (a catalog refresh) must not leave the trainer updating a stale one."""
        return find_trending(self.bundle.retrievers)

    def learn(self, batch: LogBatch) -> np.ndarray:
        """Predict, record, learn one batch (events in offset order). Returns the
        predictions (N, T) made before learning."""
        events = batch.events
        if events.num_rows == 0:
            return np.zeros((0, len(self.ranker.config.tasks)), np.float32)
        frame, state = self.bundle.transform(events)
        self.ranker.train()
        self.ranker.embeddings.set_time(int(frame.timestamp_ms.max()))
        inputs = frame.batch(slice(None)).to(self.device, non_blocking=True)
        labels, inputs.labels = inputs.labels, None  # the loss comes with the online weights
        assert frame.labels is not None and labels is not None
        with autocast(self.device):
            out = self.ranker(inputs)
        self.ranker.add_loss(out, labels, self.task_weights)
        assert out.loss is not None
        probs = out.probabilities().detach().cpu().numpy()
        self.metrics.update(frame.labels, probs, frame.user_id)
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        if out.loss.requires_grad:  # False when nothing learns (all tables and layers held)
            out.loss.backward()  # also applies the fused embedding-row updates
        if self.optimizer is not None:
            self.optimizer.step()
        self.bundle.state = self.bundle.state.advance(
            state, live_item_counters=self.learning.live_item_counters
        )
        if (trending := self.trending) is not None:
            trending.partial_fit(events)
        self._touched_users.append(frame.user_id)
        self._touched_items.append(frame.item_id)
        self.offset = int(batch.offsets[-1])
        self.learned += int(batch.offsets.size)
        self.offset_sum += int(batch.offsets.sum())
        return probs

    def take_touched(self) -> tuple[np.ndarray, np.ndarray]:
        """Users and items seen since the last call (what a state delta must carry)."""
        users = np.unique(np.concatenate(self._touched_users)) if self._touched_users else None
        items = np.unique(np.concatenate(self._touched_items)) if self._touched_items else None
        self._touched_users, self._touched_items = [], []
        empty = np.zeros(0, np.int64)
        return (users if users is not None else empty), (items if items is not None else empty)

    # ------------------------------------------------------------------ checkpoint
    def counters(self) -> dict[str, Any]:
        # offset_sum can pass int64 with stream offsets: JSON keeps it as an exact string.
        return {"offset": self.offset, "learned": self.learned, "offset_sum": str(self.offset_sum)}

    def checkpoint_files(self) -> dict[str, bytes]:
        """The exact trainer state (see module docstring), as safetensors files."""
        emb, meta = self.ranker.embeddings.state()
        opt_state = self.optimizer.state_dict()["state"] if self.optimizer is not None else {}
        optim = {
            f"{i}.{k}": v.detach().cpu().contiguous()
            for i, st in opt_state.items()
            for k, v in st.items()
            if isinstance(v, torch.Tensor)
        }
        return {
            "trainer.embeddings.safetensors": st_save(
                {k: v.contiguous() for k, v in emb.items()}, metadata={"meta": json.dumps(meta)}
            ),
            "trainer.optim.safetensors": st_save(optim),
            "trainer.state.safetensors": st_save(self.bundle.state.tensors()),
        }

    def restore(self, files: dict[str, bytes], counters: dict[str, Any]) -> None:
        """Load `checkpoint_files()` output and `counters()` (from a version's manifest)."""
        try:
            emb_blob = files["trainer.embeddings.safetensors"]
            meta = json.loads(_metadata(emb_blob)["meta"])
            self.ranker.embeddings.load_state(st_load(emb_blob), meta)
            self._restore_optimizer(st_load(files["trainer.optim.safetensors"]))
            self.bundle.state = ServingState.from_tensors(
                st_load(files["trainer.state.safetensors"])
            )
        except (KeyError, ValueError, RuntimeError) as e:
            raise IntegrityError(f"trainer checkpoint: {type(e).__name__}: {e}") from e
        self.set_counters(counters)

    def _restore_optimizer(self, optim: dict[str, torch.Tensor]) -> None:
        if self.optimizer is None:
            return  # dense layers held: a checkpoint's Adam moments (if any) are not needed
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in optim.items():
            i, name = key.split(".", 1)
            state.setdefault(int(i), {})[name] = value
        groups = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})

    def set_counters(self, counters: dict[str, Any]) -> None:
        self.offset = int(counters.get("offset", 0))
        self.learned = int(counters.get("learned", 0))
        self.offset_sum = int(counters.get("offset_sum", 0))


def _metadata(blob: bytes) -> dict[str, str]:
    """The JSON header's __metadata__ of safetensors bytes."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    meta: dict[str, str] = header.get("__metadata__", {})
    return meta
