"""HTML report writer and plot helpers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from reelrec.eval.metrics import auc_by_bucket
from reelrec.eval.report import (
    Report,
    format_cell,
    plot_auc_by_bucket,
    plot_calibration,
    plot_recall_at_k,
    plot_roc,
    plot_training_curves,
    plot_watch_time,
)


def _n_lines(fig: Figure) -> int:
    return sum(len(ax.lines) for ax in fig.axes)


def _n_bars(fig: Figure) -> int:
    return sum(len(c) for ax in fig.axes for c in ax.containers if isinstance(c, BarContainer))


def _labels_preds(
    n: int = 400, names: tuple[str, ...] = ("long_view", "is_click", "is_like")
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    labels = {k: (rng.random(n) < 0.2 + 0.1 * i).astype(np.int8) for i, k in enumerate(names)}
    preds = {k: np.clip(0.3 * labels[k] + 0.7 * rng.random(n), 0, 1) for k in names}
    return labels, preds


# --- Report ----------------------------------------------------------------------------------


def _img_sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_report_writes_html_referencing_existing_pngs(tmp_path: Path) -> None:
    labels, preds = _labels_preds()
    png = tmp_path / "given.png"
    plot_recall_at_k({"pop": ([1, 10], [0.1, 0.3])}).savefig(png, format="png")

    report = Report("Offline evaluation")
    report.add_text("First paragraph.\n\nSecond paragraph.", title="About")
    report.add_table("Metrics", ["label", "AUC", "n"], [["long_view", 0.73125, 56097]])
    report.add_plot("ROC", plot_roc(labels, preds), caption="test window")
    report.add_plot("Given PNG", png)
    out = report.write(tmp_path / "report")

    assert out == tmp_path / "report" / "report.html"
    page = out.read_text(encoding="utf-8")
    sources = _img_sources(page)
    assert len(sources) == 2
    for src in sources:
        assert "/" not in src  # relative, next to the HTML
        assert (out.parent / src).read_bytes().startswith(b"\x89PNG")
    assert (out.parent / sources[1]).read_bytes() == png.read_bytes()
    assert page.count("<p>") == 2
    assert "0.7312" in page and "56,097" in page
    assert "http" not in page.replace('lang="en"', "")  # nothing fetched from elsewhere
    assert not list(out.parent.glob("*.tmp"))  # atomic writes left no temp files


def test_report_escapes_all_text(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script>"
    report = Report(evil)
    report.add_text(evil, title=evil)
    report.add_table(evil, [evil], [[evil]], caption=evil)
    report.add_plot(evil, plot_watch_time({evil: ([0, 1], [1.0, 2.0])}), caption=evil)
    page = report.write(tmp_path).read_text(encoding="utf-8")
    assert "<script" not in page
    assert page.count("&lt;script&gt;") >= 8
    # The PNG file name is derived from the title but safe as a path.
    (src,) = _img_sources(page)
    assert re.fullmatch(r"[a-z0-9_]+\.png", src) and (tmp_path / src).is_file()


def test_report_numbers_are_right_aligned() -> None:
    page = Report("t").add_table("m", ["name", "auc"], [["a", 0.5], ["b", None]]).to_html()
    assert "<th class=num>auc</th>" in page
    assert "<td class=num>0.5000</td>" in page
    assert "<td>a</td>" in page


def test_report_rewrite_replaces_files(tmp_path: Path) -> None:
    Report("one").write(tmp_path)
    Report("two").write(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "two" in page and "one" not in page


@pytest.mark.parametrize(
    "value,text",
    [
        (None, "\u2013"),
        (float("nan"), "\u2013"),
        (12345, "12,345"),
        (np.int64(7), "7"),
        (0.123456, "0.1235"),
        (123.456, "123.46"),
        (123456.7, "123,457"),
        ("x", "x"),
        (True, "True"),
    ],
)
def test_format_cell(value: object, text: str) -> None:
    assert format_cell(value) == text  # type: ignore[arg-type]


def test_add_table_ragged_row_fails() -> None:
    with pytest.raises(ValueError, match="row 1 has 1 cells"):
        Report("t").add_table("m", ["a", "b"], [[1, 2], [3]])


def test_add_plot_missing_file_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no PNG"):
        Report("t").add_plot("p", tmp_path / "missing.png")


def test_add_plot_not_png_fails(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_text("not an image")
    with pytest.raises(ValueError, match="not a PNG"):
        Report("t").add_plot("p", path)


# --- plot helpers ----------------------------------------------------------------------------


def test_plot_roc_one_curve_per_two_class_label() -> None:
    labels, preds = _labels_preds()
    labels["is_follow"] = np.zeros(400, dtype=np.int8)  # one class: no ROC curve
    preds["is_follow"] = np.full(400, 0.01)
    fig = plot_roc(labels, preds)
    two_class = sum(0 < y.sum() < len(y) for y in labels.values())
    assert _n_lines(fig) == two_class + 1  # + chance diagonal


def test_plot_calibration_one_line_per_label() -> None:
    labels, preds = _labels_preds(names=("a", "b"))
    fig = plot_calibration(labels, preds, n_bins=5)
    assert _n_lines(fig) == len(labels) + 1  # + perfect-calibration diagonal
    # Each label's line has one point per non-empty bin.
    assert all(len(line.get_xdata()) <= 5 for line in fig.axes[0].lines)


def test_plot_auc_by_bucket_one_bar_per_label_and_bucket() -> None:
    labels, preds = _labels_preds()
    buckets = np.array(["00: low", "01: mid", "02: high"])[np.arange(400) % 3]
    by_label = {k: auc_by_bucket(labels[k], preds[k], buckets) for k in labels}
    fig = plot_auc_by_bucket(by_label)
    assert _n_bars(fig) == sum(len(v) for v in by_label.values())


def test_plot_recall_at_k_one_line_per_curve() -> None:
    ks = np.array([10, 20, 50, 100])
    curves = {
        name: (ks, np.sort(np.random.default_rng(i).random(4)))
        for i, name in enumerate(["popular", "two_tower", "trending", "i2i"])
    }
    assert _n_lines(plot_recall_at_k(curves)) == len(curves)


@pytest.mark.parametrize(
    "history,panels",
    [
        ({"train_loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9], "val_auc": [0.6, 0.7]}, 2),
        ({"train_loss": [1.0, 0.5]}, 1),
        ({"auc": [0.5, 0.6], "gauc": [0.5, 0.55]}, 1),
    ],
)
def test_plot_training_curves_one_line_per_series(
    history: dict[str, list[float]], panels: int
) -> None:
    fig = plot_training_curves(history)
    assert _n_lines(fig) == len(history)
    assert len(fig.axes) == panels


def test_plot_watch_time_one_line_per_policy() -> None:
    t = np.arange(20)
    series = {
        p: (t, 30 + np.random.default_rng(i).random(20))
        for i, p in enumerate(["random", "popular", "model"])
    }
    fig = plot_watch_time(series)
    assert _n_lines(fig) == len(series)
