"""The ranker as an ONNX graph, for ONNX Runtime (CPU, CUDA or CANN execution providers).

A model's embedding tables are dynamic (a hash map from raw id to row, growing while it
learns), which no inference engine holds. So the export splits where TorchRec and Monolith
split serving: the id -> row lookup stays on the host (`OnnxRanker.inputs`, one hash lookup
per table), and the graph starts at row numbers. Everything after is in the graph: the
table weights as constants (`Gather`), mean pooling, target attention over the padded
history, the cross network, the experts and the heads.

    export_onnx(bundle, Path("ranker.onnx"))                    # `reelrec export`
    logits = OnnxRanker(Path("ranker.onnx"), bundle).logits(frame)  # == the torch ranker's

The graph is a snapshot of the tables at export time: rows learned online later need a new
export. Ops are plain ones (`PLAIN_OPS`: Gather, Gemm, MatMul, masked Exp / ReduceSum, Relu,
Concat...), no control flow and no `EmbeddingBag` (it exports as a Loop, see DESIGN.md).
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

if TYPE_CHECKING:
    from reelrec.models.bundle import FeedBundle

from reelrec.errors import ReelrecError
from reelrec.features import FeatureFrame
from reelrec.features.builder import MAX_TAGS
from reelrec.models.api import UserContext
from reelrec.models.ranker import Ranker
from reelrec.store.atomic import atomic_write_bytes

# Graph inputs: row numbers into the named table (int32: int64 indices take a slow path on
# Ascend, see DESIGN.md), masks (float32), dense features.
ROW_INPUTS = {  # input -> (frame column, table)
    "user": ("user_id", "user"),
    "item": ("item_id", "item"),
    "author": ("author_id", "author"),
    "music": ("music_id", "music"),
    "tags": ("tags", "tag"),
    "fields": ("fields", "fields"),
    "hist_item": ("hist_item", "item"),
    "hist_author": ("hist_author", "author"),
    "wide_user": ("user_id", "wide_user"),
    "wide_item": ("item_id", "wide_item"),
    "wide_author": ("author_id", "wide_author"),
    "wide_fields": ("fields", "wide_fields"),
}
INPUTS = [*ROW_INPUTS, "tag_mask", "hist_mask", "dense"]
OUTPUTS = ["logits", "watch"]
OPSET = 17
# Every op the graph may hold: elementwise math, reductions, shapes, Gather and matmuls. No
# Loop / If / Scan, which graph-mode engines (CANN's among them) run poorly or not at all.
PLAIN_OPS = frozenset({
    "Add", "Clip", "Concat", "Constant", "Div", "Exp", "Flatten", "Gather", "Gemm", "MatMul",
    "Max", "Mul", "ReduceMax", "ReduceSum", "Relu", "Reshape", "Shape", "Softplus", "Split",
    "Squeeze", "Sub", "Unsqueeze",
})  # fmt: skip


class ExportError(ReelrecError):
    """The exported graph does not compute what the torch ranker computes."""


class RankerGraph(nn.Module):
    """`Ranker.forward` from row numbers: padded (B, L) sequences with masks, no jagged ops."""

    def __init__(self, ranker: Ranker) -> None:
        super().__init__()
        self.ranker = ranker
        for name, table in ranker.embeddings.tables.items():
            weight = table.state()[0]["weight"]  # (rows in use, dim): a snapshot
            self.register_buffer(f"w_{name}", weight.float().clone(), persistent=False)

    def _rows(self, table: str, rows: Tensor) -> Tensor:
        return F.embedding(rows, getattr(self, f"w_{table}"))

    def forward(self, user: Tensor, item: Tensor, author: Tensor, music: Tensor, tags: Tensor,
                fields: Tensor, hist_item: Tensor, hist_author: Tensor, wide_user: Tensor,
                wide_item: Tensor, wide_author: Tensor, wide_fields: Tensor, tag_mask: Tensor,
                hist_mask: Tensor, dense: Tensor) -> tuple[Tensor, Tensor]:  # fmt: skip
        r = self.ranker
        single = [self._rows(t, x) for t, x in zip(("user", "item", "author", "music"),
                                                  (user, item, author, music), strict=True)]  # fmt: skip
        tag_sum = (self._rows("tag", tags) * tag_mask.unsqueeze(-1)).sum(1)
        tag_mean = tag_sum / tag_mask.sum(1, keepdim=True).clamp_min(1.0)  # empty bag -> 0
        query = torch.cat([single[1], single[2]], dim=-1)  # (B, 2D)
        keys = torch.cat([self._rows("item", hist_item), self._rows("author", hist_author)], -1)
        interest = r.attn_proj(_padded_attention(r, query, keys, hist_mask))
        field_rows = self._rows("fields", fields).flatten(1)  # (B, F D)
        x0 = torch.cat([*single, tag_mean, interest, field_rows, dense], dim=1)
        wide = (
            self._rows("wide_user", wide_user) + self._rows("wide_item", wide_item)
            + self._rows("wide_author", wide_author)
            + self._rows("wide_fields", wide_fields).sum(1)
        )  # fmt: skip
        logits, watch = r.heads(x0, wide)
        return logits, watch if watch is not None else torch.zeros_like(logits[:, 0])


def _padded_attention(ranker: Ranker, query: Tensor, keys: Tensor, mask: Tensor) -> Tensor:
    """`TargetAttention.forward` on (B, L, 2D) keys with a (B, L) mask: the same weights, a
    row without history gets zeros."""
    att = ranker.attention
    q = query.unsqueeze(1)  # (B, 1, 2D)
    h = torch.relu(att.q_proj(q) + att.k_proj(keys) + att.qk_proj(q * keys))
    logits = att.out(h).squeeze(-1)  # (B, L)
    e = torch.exp(logits - logits.amax(dim=1, keepdim=True)) * mask
    weights = e / e.sum(1, keepdim=True).clamp_min(1e-30)
    return (weights.unsqueeze(-1) * keys).sum(1)


def graph_inputs(ranker: Ranker, frame: FeatureFrame) -> dict[str, np.ndarray]:
    """The host half: raw ids -> row numbers per table (0 = the default row), masks."""
    tables = ranker.embeddings.tables
    out: dict[str, np.ndarray] = {}
    for name, (column, table) in ROW_INPUTS.items():
        ids = np.asarray(getattr(frame, column))
        rows = tables[table].rows_of(np.ascontiguousarray(ids).reshape(-1)).reshape(ids.shape)
        out[name] = np.maximum(rows, 0).astype(np.int32)
    out["tag_mask"] = (frame.tags >= 0).astype(np.float32)
    out["hist_mask"] = (frame.hist_item >= 0).astype(np.float32)
    out["dense"] = np.ascontiguousarray(frame.dense, dtype=np.float32)
    return out


def example_inputs(ranker: Ranker, batch: int = 2) -> dict[str, np.ndarray]:
    """Inputs of the right shapes and types (row 0 everywhere) for tracing the graph."""
    c = ranker.config
    shapes = {"tags": (batch, MAX_TAGS), "fields": (batch, c.n_fields),
              "hist_item": (batch, c.history_len), "hist_author": (batch, c.history_len),
              "wide_fields": (batch, c.n_fields)}  # fmt: skip
    out = {n: np.zeros(shapes.get(n, (batch,)), np.int32) for n in ROW_INPUTS}
    out["tag_mask"] = np.ones((batch, MAX_TAGS), np.float32)
    out["hist_mask"] = np.ones((batch, c.history_len), np.float32)
    out["dense"] = np.zeros((batch, c.n_dense), np.float32)
    return out


def export_onnx(ranker: Ranker, path: Path) -> Path:
    """Write `ranker` (its tables as they are now) as ONNX to `path`; batch size dynamic."""
    graph = RankerGraph(ranker).eval()
    example = example_inputs(ranker)
    args = tuple(torch.from_numpy(example[n]) for n in INPUTS)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # the TorchScript exporter (dynamo=False) writes to file objects too
        torch.onnx.export(
            graph, args, buf, input_names=INPUTS, output_names=OUTPUTS,  # type: ignore[arg-type]
            dynamic_axes={n: {0: "batch"} for n in INPUTS + OUTPUTS},
            opset_version=OPSET, dynamo=False,
        )  # fmt: skip
    atomic_write_bytes(buf.getvalue(), path)  # never a half-written graph
    return path


class OnnxRanker:
    """Score `FeatureFrame`s with an exported graph on ONNX Runtime (CPU by default)."""

    def __init__(self, path: Path, ranker: Ranker, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        self.ranker = ranker  # its tables map ids to rows; its graph is not used
        self.session = ort.InferenceSession(
            str(path), providers=providers or ["CPUExecutionProvider"]
        )

    def logits(self, frame: FeatureFrame) -> np.ndarray:
        logits, _ = self.session.run(OUTPUTS, graph_inputs(self.ranker, frame))
        return np.asarray(logits)


@dataclass
class ExportCheck:
    """An exported graph against the torch ranker on the model's own users and videos."""

    path: Path
    megabytes: float
    requests: int  # one user's candidates each
    candidates: int
    max_abs_diff: float  # logits
    onnx_ms: float  # median per request
    torch_ms: float

    def ok(self, tolerance: float = 1e-3) -> bool:
        return self.max_abs_diff <= tolerance


def check_export(
    path: Path, bundle: FeedBundle, users: int = 8, candidates: int = 256
) -> ExportCheck:
    """Score `candidates` catalog videos for the first `users` users of the model's state
    both ways; report the largest logit difference and the per-request times."""
    onnx = OnnxRanker(path, bundle.ranker)
    items = bundle.catalog.item_id[:candidates]
    diffs, onnx_s, torch_s = [], [], []
    for user_id in bundle.state.user_ids[:users].tolist():
        user = UserContext(user_id, now_ms=0, history=bundle.user_history(user_id))
        frame = bundle.candidate_frame(user, items)
        t0 = time.perf_counter()
        got = onnx.logits(frame)
        t1 = time.perf_counter()
        with torch.inference_mode():
            want = bundle.ranker(frame.batch(slice(None))).logits.float().numpy()
        t2 = time.perf_counter()
        diffs.append(float(np.abs(got - want).max()) if want.size else 0.0)
        onnx_s.append(t1 - t0)
        torch_s.append(t2 - t1)
    return ExportCheck(path, path.stat().st_size / 1e6, len(diffs), int(items.size),
                       max(diffs, default=0.0), 1e3 * float(np.median(onnx_s or [0.0])),
                       1e3 * float(np.median(torch_s or [0.0])))  # fmt: skip


def export_command(model: Path, out: Path) -> ExportCheck:
    """`reelrec export`: write the graph, check it against the torch ranker, print a table."""
    from rich.console import Console
    from rich.table import Table

    from reelrec.models.bundle import load_feed_model

    bundle = load_feed_model(model, torch.device("cpu"))
    check = check_export(export_onnx(bundle.ranker, out), bundle)
    table = Table(title=f"reelrec export: {out}")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("size", f"{check.megabytes:.1f} MB")
    table.add_row("inputs", ", ".join(INPUTS))
    table.add_row("checked", f"{check.requests} users x {check.candidates} videos")
    table.add_row("max |logit diff| vs torch", f"{check.max_abs_diff:.2e}")
    table.add_row("ms / request, onnxruntime", f"{check.onnx_ms:.2f}")
    table.add_row("ms / request, torch", f"{check.torch_ms:.2f}")
    Console().print(table)
    if not check.ok():
        raise ExportError(f"{out}: logits differ from the torch ranker by {check.max_abs_diff:.2e}")
    return check


__all__ = [
    "INPUTS", "OUTPUTS", "ExportCheck", "OnnxRanker", "RankerGraph", "check_export",
    "example_inputs", "export_command", "export_onnx", "graph_inputs",
]  # fmt: skip
