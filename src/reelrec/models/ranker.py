"""The multi-task ranker: embeddings -> target attention -> DCN-v2 cross + deep -> MMoE -> heads.

Read from the leaves up: MLP, CrossNetV2, TargetAttention, MMoE, then RankerConfig and Ranker.
Letters: B batch, F categorical fields, L history length, D embedding dim, T binary tasks,
E experts, X width of the concatenated input x0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from reelrec.batch import Batch, Jagged, KeyedJagged
from reelrec.embedding import EmbeddingCollection


class MLP(nn.Sequential):
    """Linear -> ReLU (-> Dropout) stacks; the last layer keeps its activation."""

    def __init__(self, dims: list[int], dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class CrossNetV2(nn.Module):
    """DCN-v2 low-rank cross layers: x_{l+1} = x0 * (U_l (V_l x_l) + b_l) + x_l.

    Low rank (r << X) keeps the cost at 2·X·r per layer instead of X² (Wang et al., 2021).
    """

    def __init__(self, width: int, layers: int, rank: int) -> None:
        super().__init__()
        self.down = nn.ModuleList(nn.Linear(width, rank, bias=False) for _ in range(layers))
        self.up = nn.ModuleList(nn.Linear(rank, width) for _ in range(layers))

    def forward(self, x0: Tensor) -> Tensor:  # (B, X) -> (B, X)
        x = x0
        for down, up in zip(self.down, self.up, strict=True):
            x = x0 * up(down(x)) + x
        return x


class TargetAttention(nn.Module):
    """DIN-style attention of the candidate over its history, computed on the jagged values.

    An MLP scores each (query, key) pair from [q, k, q*k]; a softmax within each row's
    history; the weighted sum of the keys. The first layer is split by input so the query
    part is computed once per row, not once per history entry, and padding is never touched:
    the cost follows the real history lengths, which are short for most users.
    """

    def __init__(self, dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.q_proj = nn.Linear(dim, hidden)
        self.k_proj = nn.Linear(dim, hidden, bias=False)
        self.qk_proj = nn.Linear(dim, hidden, bias=False)
        self.out = nn.Linear(hidden, 1)

    def forward(self, query: Tensor, keys: Tensor, row: Tensor) -> Tensor:
        # query (B, D); keys (N, D) all rows' history entries; row (N,) their row in the batch
        q = query.index_select(0, row)  # (N, D)
        h = torch.relu(
            self.q_proj(query).index_select(0, row) + self.k_proj(keys) + self.qk_proj(q * keys)
        )
        # float: under autocast the logits come out bf16, and index_add does not mix dtypes
        # (the softmax's sums are better in float anyway)
        logits = self.out(h).squeeze(-1).float()  # (N,)
        # softmax within each row: a shift by the global max is exact and keeps exp() finite
        weights = torch.exp(logits - logits.max().detach()) if logits.numel() else logits
        denom = query.new_zeros(query.shape[0]).index_add(0, row, weights)  # (B,)
        weights = weights / denom.index_select(0, row)
        return query.new_zeros(query.shape).index_add(
            0, row, weights.unsqueeze(-1) * keys
        )  # (B, D)

    def shared(self, query: Tensor, keys: Tensor) -> Tensor:
        """The same attention when every row attends over one history (serving: one user,
        B candidates): query (B, D), keys (n, D) -> (B, D).

        The first layer folds into one matrix per request: q_proj(q) + k_proj(k_l) +
        qk_proj(q * k_l) = (W_q + W_qk diag(k_l)) q + (b_q + W_k k_l), so the hidden units
        of all n keys come from a single (B, D) @ (D, n H) matmul, and the keys are never
        copied B times.
        """
        n, d = keys.shape
        if n == 0:
            return query.new_zeros(query.shape)
        hidden = self.q_proj.out_features
        w_qk = self.qk_proj.weight  # (H, D)
        # a[:, l*H:(l+1)*H] = (W_q + W_qk diag(k_l))^T, c[l*H:(l+1)*H] = b_q + W_k k_l
        a = self.q_proj.weight.t().unsqueeze(0) + keys.unsqueeze(2) * w_qk.t().unsqueeze(0)
        a = a.permute(1, 0, 2).reshape(d, n * hidden)  # (D, n H)
        c = (self.k_proj(keys) + self.q_proj.bias).reshape(1, n * hidden)  # (1, n H)
        # The bias rides in the matmul as a row of A against a column of ones in the query:
        # addmm would first copy c into every row of the (B, n H) output, a pass as costly
        # as the matmul itself at these sizes.
        ones = query.new_ones(query.shape[0], 1)
        h = torch.mm(torch.cat([query, ones], 1), torch.cat([a, c], 0)).relu_()
        h = h.view(-1, n, hidden)  # (B, n, H)
        logits = self.out(h).squeeze(-1)  # (B, n)
        weights = _softmax(logits)
        return weights @ keys  # (B, D)


def _softmax(x: Tensor) -> Tensor:
    """Softmax over the last dim; for the short last dims here (4 experts, <= L keys) this is
    ~4x faster than torch.softmax on the cpu, whose kernel vectorises along that dim."""
    e = torch.exp(x - x.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


class MMoE(nn.Module):
    """Multi-gate mixture of experts: E shared experts, one softmax gate per task."""

    def __init__(self, width: int, n_experts: int, expert_dims: list[int], n_tasks: int) -> None:
        super().__init__()
        self.experts: list[MLP] = nn.ModuleList(  # type: ignore[assignment]
            MLP([width, *expert_dims]) for _ in range(n_experts)
        )
        self.gates = nn.Linear(width, n_experts * n_tasks)
        self.n_tasks, self.n_experts = n_tasks, n_experts

    def forward(self, x: Tensor) -> list[Tensor]:  # (B, X) -> T x (B, H)
        if all(len(e) == 2 for e in self.experts):
            # One-layer experts: all E experts as one (X, E H) matmul, whose output is
            # already the (B, E, H) stack (no E small matmuls, no stack copy). Training too:
            # the ranker's forward + backward step is 0.5 ms (3%) shorter on the CPU.
            first = [cast(nn.Linear, e[0]) for e in self.experts]
            w = torch.cat([lin.weight for lin in first])  # (E H, X)
            b = torch.cat([lin.bias for lin in first])
            experts = torch.addmm(b, x, w.t()).relu_().view(x.shape[0], self.n_experts, -1)
        else:
            experts = torch.stack([e(x) for e in self.experts], dim=1)  # (B, E, H)
        gates = _softmax(self.gates(x).view(-1, self.n_tasks, self.n_experts))  # (B, T, E)
        mixed = torch.bmm(gates, experts)  # (B, T, H)
        return list(mixed.unbind(dim=1))


@dataclass
class RankerConfig:
    """Shapes and sizes of the ranker; stored in every model directory."""

    tasks: list[str]  # binary tasks, in label-column order
    watch_task: bool  # add a watch-ratio regression head (last label column)
    n_fields: int
    n_dense: int
    history_len: int = 20
    embedding_dim: int = 16
    cross_layers: int = 2
    cross_rank: int = 32
    bottom_dim: int = 256  # shared bottom after the cross network, input of the experts
    n_experts: int = 4
    expert_dims: list[int] = field(default_factory=lambda: [64])
    tower_dim: int = 128  # per-task tower; 32 -> 128: is_like GAUC +.0045 on KuaiRand (10 seeds)
    dropout: float = 0.0
    # Loss weight per binary task; rare labels need no up-weighting with BCE.
    task_weights: dict[str, float] = field(default_factory=dict)
    watch_weight: float = 0.5
    # Weight of the within-user pairwise term per task (see `within_user_pair_loss`); it
    # needs batches that hold several rows per user (`LoopConfig.user_chunk`).
    pairwise_weights: dict[str, float] = field(default_factory=dict)

    @property
    def n_heads(self) -> int:
        return len(self.tasks) + int(self.watch_task)

    @property
    def input_width(self) -> int:
        # user, item, author, music, tags, attention + F fields, then dense features
        return (6 + self.n_fields) * self.embedding_dim + self.n_dense


@dataclass
class RankerOutput:
    """logits (B, T) for the binary tasks, watch (B,) or None, loss when labels were given."""

    logits: Tensor
    watch: Tensor | None
    loss: Tensor | None = None
    task_losses: dict[str, float] = field(default_factory=dict)

    def probabilities(self) -> Tensor:
        return torch.sigmoid(self.logits.float())


SINGLE_ID_FEATURES = ("user_id", "item_id", "author_id", "music_id")
# The wide part: table -> the batch feature whose ids index it (one bias per head per id).
WIDE_INPUTS = {"wide_user": "user_id", "wide_item": "item_id", "wide_author": "author_id",
               "wide_fields": "fields"}  # fmt: skip


def within_user_pair_loss(logit: Tensor, label: Tensor, users: Tensor) -> Tensor:
    """-log sigmoid(s_pos - s_neg), averaged over pairs of one user's rows whose labels
    differ: the rows are stably sorted by user and each row is paired with the next one.

    BCE fits each row's probability, and most of what it learns is who engages at all
    (between users). This term only sees differences within a user, which is what GAUC
    and a feed's order measure. logit, label, users: (B,).
    """
    order = torch.argsort(users, stable=True)
    u, s, y = users[order], logit[order].float(), label[order]
    dy = y[1:] - y[:-1]  # +1: the second row is the positive one, -1: the first
    pair = (u[1:] == u[:-1]) & (dy != 0)
    terms = F.softplus(-dy * (s[1:] - s[:-1])) * pair
    return terms.sum() / pair.sum().clamp_min(1)


def _one_per_bag(jagged: Jagged) -> Jagged:
    """Every id its own bag of one, so sum pooling returns one row per id: (N, D)."""
    return Jagged(jagged.values, torch.ones_like(jagged.values))


def x_device(batch: Batch) -> torch.device:
    return batch.dense.device


def shares_history(batch: Batch) -> bool:
    """True when `hist_item` / `hist_author` hold ONE row that every row of the batch shares
    (a serving batch: one user, B candidates) instead of one row per batch row."""
    sp = batch.sparse
    return (
        len(batch) != 1
        and sp["hist_item"].lengths.numel() == 1 == sp["hist_author"].lengths.numel()
    )


class Ranker(nn.Module):
    """Multi-task ranker over one `Batch`. `embeddings` (an EmbeddingCollection) is built
    outside and handed in; it owns the id tables and updates its rows in the backward."""

    def __init__(self, config: RankerConfig, embeddings: EmbeddingCollection) -> None:
        super().__init__()
        c, d = config, config.embedding_dim
        self.config = c
        self.embeddings = embeddings
        self.attention = TargetAttention(2 * d)
        self.attn_proj = nn.Linear(2 * d, d)
        self.cross = CrossNetV2(c.input_width, c.cross_layers, c.cross_rank)
        self.bottom = MLP([c.input_width, c.bottom_dim], c.dropout)
        n_heads = c.n_heads
        self.mmoe = MMoE(c.bottom_dim, c.n_experts, c.expert_dims, n_heads)
        self.towers = nn.ModuleList(
            nn.Sequential(
                nn.Linear(c.expert_dims[-1], c.tower_dim), nn.ReLU(), nn.Linear(c.tower_dim, 1)
            )
            for _ in range(n_heads)
        )

    def features(self, batch: Batch) -> Tensor:
        """Embed and concatenate everything into x0 (B, X)."""
        c, sp = self.config, batch.sparse
        single = self.embeddings(KeyedJagged({k: sp[k] for k in SINGLE_ID_FEATURES}), pooling="sum")
        tags = self.embeddings(KeyedJagged({"tags": sp["tags"]}), pooling="mean")["tags"]
        # Fields and history entries as one-id bags: one row per id, no pooling work.
        rows = self.embeddings(
            KeyedJagged({k: _one_per_bag(sp[k]) for k in ("fields", "hist_item", "hist_author")})
        )
        fields = rows["fields"].view(len(batch), c.n_fields, -1)  # (B, F, D)
        query = torch.cat([single["item_id"], single["author_id"]], dim=-1)  # (B, 2D)
        keys = torch.cat([rows["hist_item"], rows["hist_author"]], dim=-1)  # (N, 2D)
        if shares_history(batch):
            # One history for all rows (one user's candidates): embed it once, attend densely.
            interest = self.attn_proj(self.attention.shared(query, keys))  # (B, D)
        else:
            row = torch.repeat_interleave(torch.arange(len(batch)), sp["hist_item"].lengths)
            interest = self.attn_proj(self.attention(query, keys, row.to(x_device(batch))))
        parts = [single[k] for k in SINGLE_ID_FEATURES] + [tags, interest]
        x0 = torch.cat([*parts, fields.flatten(1), batch.dense], dim=1)  # (B, X)
        return x0

    def wide(self, batch: Batch) -> Tensor:
        """Per-id biases summed into each head's logit (B, heads): the logistic-regression
        part, which learns each video's and author's own rate in a few updates."""
        ids = {table: batch.sparse[feature] for table, feature in WIDE_INPUTS.items()}
        return torch.stack(list(self.embeddings(KeyedJagged(ids), pooling="sum").values())).sum(0)

    def heads(self, x0: Tensor, wide: Tensor) -> tuple[Tensor, Tensor | None]:
        """x0 (B, X) and the wide biases (B, heads) -> logits (B, T), watch (B,) or None:
        cross network, shared bottom, experts, one tower per head plus its bias."""
        h = self.bottom(self.cross(x0))  # (B, bottom_dim)
        heads = [
            tower(z).squeeze(-1) + wide[:, i]
            for i, (tower, z) in enumerate(zip(self.towers, self.mmoe(h), strict=True))
        ]
        n_bin = len(self.config.tasks)
        logits = torch.stack(heads[:n_bin], dim=1) if n_bin else x0.new_zeros(len(x0), 0)
        watch = F.softplus(heads[n_bin]) if self.config.watch_task else None
        return logits, watch

    def forward_wide(self, batch: Batch) -> RankerOutput:
        """The logistic-regression part alone, with its loss: the warm-up (see
        `LoopConfig.wide_warmup_epochs`) that fits the per-id biases before the deep part
        joins, which then learns what they leave unexplained."""
        out = RankerOutput(logits=self.wide(batch)[:, : len(self.config.tasks)], watch=None)
        if batch.labels is not None:
            self.add_loss(out, batch.labels)
        return out

    def forward(self, batch: Batch) -> RankerOutput:
        logits, watch = self.heads(self.features(batch), self.wide(batch))
        out = RankerOutput(logits=logits, watch=watch)
        if batch.labels is not None:
            self.add_loss(out, batch.labels, users=batch.sparse["user_id"].values)
        return out

    def add_loss(
        self, out: RankerOutput, labels: Tensor, task_weights: dict[str, float] | None = None,
        users: Tensor | None = None,
    ) -> None:  # fmt: skip
        """Set `out.loss` (and `out.task_losses`): the weighted sum of the tasks' losses,
        weighted by `task_weights` where given, else by the config's; with `users` (B,),
        plus the config's within-user pairwise terms."""
        c = self.config
        weights = c.task_weights if task_weights is None else task_weights
        n_bin = len(c.tasks)
        losses: dict[str, Tensor] = {}
        for t, name in enumerate(c.tasks):
            losses[name] = F.binary_cross_entropy_with_logits(
                out.logits[:, t].float(), labels[:, t]
            )
        total = sum(weights.get(k, 1.0) * v for k, v in losses.items())
        for name, weight in c.pairwise_weights.items():
            if users is not None and weight > 0 and name in c.tasks:
                t = c.tasks.index(name)
                pair = within_user_pair_loss(out.logits[:, t], labels[:, t], users)
                losses[f"{name}_pairwise"] = pair
                total = total + weight * pair
        if out.watch is not None:
            target = labels[:, n_bin]
            known = ~torch.isnan(target)
            if bool(known.any()):
                losses["watch_ratio"] = F.smooth_l1_loss(out.watch[known].float(), target[known])
                total = total + c.watch_weight * losses["watch_ratio"]
        out.loss = total if isinstance(total, Tensor) else out.logits.sum() * 0.0
        out.task_losses = {k: float(v.detach()) for k, v in losses.items()}


@dataclass
class ScoreFusion:
    """One ranking score from the task predictions (documented, tunable).

    score = prod_t p_t ** w_t  *  (1 + watch_ratio) ** w_watch

    A product of powers (equivalently a weighted sum of log-probabilities) keeps each task's
    influence independent of the others' scale: doubling p_like multiplies the score by
    2**w_like whatever p_long_view is. Long view dominates (watch time is the feed's goal);
    likes, follows and clicks refine it.
    """

    weights: dict[str, float] = field(
        default_factory=lambda: {
            "long_view": 1.0,
            "is_click": 0.3,
            "is_like": 0.3,
            "is_follow": 0.2,
        }
    )
    watch_weight: float = 0.5

    def __call__(self, probs: dict[str, Tensor], watch: Tensor | None) -> Tensor:
        log_score = sum(
            (
                w * torch.log(probs[t].clamp_min(1e-6))
                for t, w in self.weights.items()
                if t in probs
            ),
            start=torch.zeros_like(next(iter(probs.values()))) if probs else torch.zeros(0),
        )
        if watch is not None:
            log_score = log_score + self.watch_weight * torch.log1p(watch.float())
        return torch.exp(log_score)
