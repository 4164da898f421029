"""ONNX export: the graph on ONNX Runtime computes the torch ranker's logits.

On a REAL model (simulated world, real trainer): users with long, short and no history,
videos outside the catalog, batch sizes the graph was not traced with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from reelrec.cli import app as cli
from reelrec.models.api import UserContext
from reelrec.models.export import (
    INPUTS,
    PLAIN_OPS,
    ROW_INPUTS,
    OnnxRanker,
    RankerGraph,
    export_onnx,
    graph_inputs,
)

pytest.importorskip("onnxruntime")
TOL = 1e-4


def _torch_logits(model: Any, frame: Any) -> np.ndarray:
    with torch.inference_mode():
        return model.ranker(frame.batch(slice(None))).logits.float().numpy()


def _frames(model: Any) -> list[Any]:
    """Candidate frames of users with the longest, a short and no history, one a live
    history with an unknown video; candidates include an id outside the catalog."""
    state = model.state
    lengths = (state.hist >= 0).sum(axis=1)
    longest = int(state.user_ids[np.argmax(lengths)])
    short = int(state.user_ids[np.flatnonzero(lengths == lengths[lengths > 0].min())[0]])
    items = np.concatenate([model.catalog.item_id[:200], [123_456_789_123]]).astype(np.int64)
    live = np.concatenate([model.catalog.item_id[:30], [987_654_321_987]])
    users = [
        UserContext(longest, now_ms=1_700_000_000_000, history=model.user_history(longest)),
        UserContext(short, now_ms=1_700_000_000_000, history=model.user_history(short)),
        UserContext(10**12, now_ms=1_700_000_000_000),
        UserContext(longest, now_ms=1_700_000_000_000, tab=1, history=live),
    ]
    return [model.candidate_frame(u, items) for u in users]


def test_graph_in_torch_equals_ranker(model: Any) -> None:
    """The padded, masked graph equals the jagged ranker before any ONNX is involved."""
    graph = RankerGraph(model.ranker).eval()
    for frame in _frames(model):
        x = graph_inputs(model.ranker, frame)
        with torch.no_grad():
            logits, _ = graph(*(torch.from_numpy(x[n]) for n in INPUTS))
        np.testing.assert_allclose(logits.numpy(), _torch_logits(model, frame), atol=TOL)


def test_onnx_runtime_equals_ranker(model: Any, tmp_path: Path) -> None:
    path = export_onnx(model.ranker, tmp_path / "ranker.onnx")
    onnx = OnnxRanker(path, model.ranker)
    frames = _frames(model)
    assert (frames[2].hist_item < 0).all()  # the cold user: attention over nothing
    for frame in frames:
        np.testing.assert_allclose(onnx.logits(frame), _torch_logits(model, frame), atol=TOL)
    one = frames[0].take(slice(3, 4))  # batch sizes other than the traced one (2)
    np.testing.assert_allclose(onnx.logits(one), _torch_logits(model, one), atol=TOL)


def test_graph_holds_plain_ops_and_int32_rows(model: Any, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(export_onnx(model.ranker, tmp_path / "ranker.onnx"))).graph
    ops = {node.op_type for node in graph.node}
    assert ops <= PLAIN_OPS, f"ops outside the plain set: {sorted(ops - PLAIN_OPS)}"
    types = {i.name: i.type.tensor_type.elem_type for i in graph.input}
    assert all(types[n] == onnx.TensorProto.INT32 for n in ROW_INPUTS)


def test_export_command(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "ranker.onnx"
    result = CliRunner().invoke(cli, ["export", "--model", str(model_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "max |logit diff|" in result.output
    assert not list(out.parent.glob("*.tmp"))  # written atomically


def test_export_of_missing_model_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["export", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "r.onnx")]
    )
    assert result.exit_code == 2
