"""Self-contained HTML reports with PNG plots.

`Report` collects sections (text, tables, plots) and `Report.write` puts ``report.html`` and
its PNG files into one folder: no scripts, no external CSS or fonts, images referenced by
relative file name, so the folder can be zipped, mailed or opened from disk.

Plots are drawn on `matplotlib.figure.Figure` objects rendered by the Agg canvas, never
through ``pyplot``: no global figure state, no GUI backend, safe from any thread.

Example::

    report = Report("KuaiRand ranker")
    report.add_table("Metrics", ["label", "AUC"], [["long_view", 0.7312]])
    report.add_plot("ROC", plot_roc(labels, preds), caption="test window")
    report.write(Path("runs/eval"))  # -> runs/eval/report.html, runs/eval/02_roc.png
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from reelrec.eval.metrics import BucketAUC, auc, calibration_curve
from reelrec.store.atomic import atomic_write_bytes

REPORT_FILE = "report.html"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       max-width: 980px; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid #d0d7de; text-align: left; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:hover td { background: #f6f8fa; }
figure { margin: .5rem 0 1.5rem; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption, .caption { color: #59636e; font-size: .88rem; }
"""

Cell = str | int | float | None


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    title: str | None
    text: str


@dataclass(frozen=True)
class _Table:
    title: str
    header: list[str]
    rows: list[list[Cell]]
    caption: str


@dataclass(frozen=True)
class _Plot:
    title: str
    png: bytes
    caption: str
    file_name: str


_Section = _Text | _Table | _Plot


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def format_cell(value: Cell) -> str:
    """Numbers for reading: ints with thousands separators, floats to 4 decimals below 10.

    ``None`` and ``nan`` read as an en dash (an undefined metric, not zero).
    """
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "\u2013"
        if abs(v) < 10:
            return f"{v:.4f}"
        if abs(v) < 1000:
            return f"{v:.2f}"
        return f"{v:,.0f}"
    return str(value)


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:40] or "plot"


def _figure_png(figure: Figure, dpi: int) -> bytes:
    """Render with the Agg canvas (no pyplot); the figure can be dropped afterwards."""
    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


class Report:
    """An HTML page of text, tables and plots, written by `write` into one folder.

    Args:
        title: page title and heading (escaped; any text is safe).
        dpi: resolution of rendered figures.
    """

    def __init__(self, title: str, dpi: int = 110) -> None:
        self.title = title
        self.dpi = dpi
        self._sections: list[_Section] = []

    def add_text(self, text: str, title: str | None = None) -> Report:
        """A paragraph (blank lines split it into several), optionally under a heading."""
        self._sections.append(_Text(title=title, text=text))
        return self

    def add_table(
        self,
        title: str,
        header: Sequence[str],
        rows: Sequence[Sequence[Cell]],
        caption: str = "",
    ) -> Report:
        """A table; number cells are formatted by `format_cell` and right-aligned.

        Raises:
            ValueError: a row has a different number of cells than the header.
        """
        for i, row in enumerate(rows):
            if len(row) != len(header):
                raise ValueError(
                    f"add_table({title!r}): row {i} has {len(row)} cells, header has {len(header)}"
                )
        self._sections.append(
            _Table(title, [str(h) for h in header], [list(r) for r in rows], caption)
        )
        return self

    def add_plot(self, title: str, figure: Figure | Path | str, caption: str = "") -> Report:
        """A plot: a matplotlib `Figure` (rendered now) or an existing PNG file (read now).

        Raises:
            FileNotFoundError: ``figure`` is a path that does not exist.
            ValueError: the file is not a PNG.
        """
        if isinstance(figure, Figure):
            png = _figure_png(figure, self.dpi)
        else:
            path = Path(figure)
            if not path.is_file():
                raise FileNotFoundError(f"add_plot({title!r}): no PNG file at {path}")
            png = path.read_bytes()
            if not png.startswith(b"\x89PNG\r\n\x1a\n"):
                raise ValueError(f"add_plot({title!r}): {path} is not a PNG file")
        number = sum(isinstance(s, _Plot) for s in self._sections) + 1
        file_name = f"{number:02d}_{_slug(title)}.png"
        self._sections.append(_Plot(title, png, caption, file_name))
        return self

    def to_html(self) -> str:
        """The page as a string (PNG files are referenced by relative name)."""
        esc = html.escape
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(self.title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>{esc(self.title)}</h1>",
        ]
        for section in self._sections:
            parts.append(_section_html(section))
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def write(self, directory: Path | str) -> Path:
        """Write the PNGs, then ``directory/report.html``, each atomically.

        PNGs go first so that the page never references a file that is not there yet.

        Returns:
            The path of ``report.html``.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for section in self._sections:
            if isinstance(section, _Plot):
                atomic_write_bytes(section.png, out / section.file_name)
        path = out / REPORT_FILE
        atomic_write_bytes(self.to_html().encode("utf-8"), path)
        return path


def _section_html(section: _Section) -> str:
    esc = html.escape
    if isinstance(section, _Text):
        head = f"<h2>{esc(section.title)}</h2>" if section.title else ""
        paras = [p.strip() for p in section.text.split("\n\n") if p.strip()]
        return head + "".join(f"<p>{esc(p)}</p>" for p in paras)
    if isinstance(section, _Table):
        numeric = [
            bool(section.rows) and all(_is_number(r[j]) or r[j] is None for r in section.rows)
            for j in range(len(section.header))
        ]
        ths = "".join(
            f"<th{' class=num' if numeric[j] else ''}>{esc(h)}</th>"
            for j, h in enumerate(section.header)
        )
        trs = []
        for row in section.rows:
            tds = "".join(
                f"<td{' class=num' if _is_number(c) or numeric[j] else ''}>"
                f"{esc(format_cell(c))}</td>"
                for j, c in enumerate(row)
            )
            trs.append(f"<tr>{tds}</tr>")
        caption = f'<p class="caption">{esc(section.caption)}</p>' if section.caption else ""
        return (
            f"<h2>{esc(section.title)}</h2><table><thead><tr>{ths}</tr></thead>"
            f"<tbody>{''.join(trs)}</tbody></table>{caption}"
        )
    caption = f"<figcaption>{esc(section.caption)}</figcaption>" if section.caption else ""
    return (
        f"<h2>{esc(section.title)}</h2><figure>"
        f'<img src="{esc(section.file_name)}" alt="{esc(section.title)}">{caption}</figure>'
    )


# ---------------------------------------------------------------------------------------------
# Plot helpers: each returns a new Figure; one line (or bar) per input series.
# ---------------------------------------------------------------------------------------------


def _new_figure(ncols: int = 1, width: float = 6.4, height: float = 4.2) -> Figure:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finish(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")


def plot_roc(labels: Mapping[str, ArrayLike], preds: Mapping[str, ArrayLike]) -> Figure:
    """ROC curves, one per label with both classes (one-class labels have no ROC), plus the
    chance diagonal. Legends carry each label's AUC."""
    from sklearn.metrics import roc_curve  # type: ignore[import-untyped]  # slow import

    fig = _new_figure()
    ax = fig.add_subplot()
    for name, y_raw in labels.items():
        y = np.asarray(y_raw)
        p = np.asarray(preds[name], dtype=np.float64)
        value = auc(y, p)
        if math.isnan(value):
            continue
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {value:.4f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    _finish(ax, "ROC", "false positive rate", "true positive rate")
    return fig


def plot_calibration(
    labels: Mapping[str, ArrayLike],
    preds: Mapping[str, ArrayLike],
    n_bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "quantile",
) -> Figure:
    """Reliability diagram: observed positive rate against mean prediction per bin, one line
    per label, plus the diagonal of perfect calibration. Quantile bins by default because
    rare labels put nearly all predictions in the first uniform bin. Log axes would hide
    nothing here but make 0 unplottable, so both axes stay linear from 0 to the largest
    value seen."""
    fig = _new_figure()
    ax = fig.add_subplot()
    top = 0.0
    for name, y_raw in labels.items():
        bins = calibration_curve(y_raw, preds[name], n_bins=n_bins, strategy=strategy)
        ax.plot(bins.mean_pred, bins.frac_pos, marker="o", label=f"{name} (ECE {bins.ece:.4f})")
        top = max(top, float(bins.mean_pred.max()), float(bins.frac_pos.max()))
    top = min(1.0, top * 1.05) if top > 0 else 1.0
    ax.plot([0, top], [0, top], linestyle="--", color="grey", linewidth=1, label="perfect")
    _finish(ax, "Calibration", "mean predicted probability", "observed positive rate")
    return fig


def plot_auc_by_bucket(by_label: Mapping[str, Sequence[BucketAUC]]) -> Figure:
    """Grouped bars: AUC per bucket (x) for each label (colour); one bar per (label, bucket),
    one-class buckets drawn at height 0 with no value. The rows per bucket are in the
    x tick labels (from the first label; all labels share rows)."""
    fig = _new_figure(width=7.2)
    ax = fig.add_subplot()
    buckets: list[str] = []
    rows: dict[str, int] = {}
    for results in by_label.values():
        for r in results:
            if r.bucket not in rows:
                buckets.append(r.bucket)
                rows[r.bucket] = r.n
    x = np.arange(len(buckets))
    lowest = 0.5
    width = 0.8 / max(1, len(by_label))
    for i, (name, results) in enumerate(by_label.items()):
        pos = {r.bucket: r for r in results}
        xs = [x[buckets.index(b)] + (i - (len(by_label) - 1) / 2) * width for b in pos]
        heights = [0.0 if math.isnan(r.auc) else r.auc for r in pos.values()]
        lowest = min([lowest, *(h for h in heights if h > 0)])
        bars = ax.bar(xs, heights, width=width, label=name)
        ax.bar_label(bars, labels=[format_cell(r.auc) for r in pos.values()], fontsize=7)
    ax.set_xticks(x, [f"{b}\n{rows[b]:,} rows" for b in buckets], fontsize="small")
    ax.set_ylim(max(0.0, lowest - 0.05), 1.04)  # AUC lives in [0.5, 1]; zoom there
    _finish(ax, "AUC by user activity", "bucket", "AUC")
    return fig


def plot_recall_at_k(curves: Mapping[str, tuple[ArrayLike, ArrayLike]]) -> Figure:
    """Recall@K against K, one line per retriever/model: ``name -> (ks, recalls)``."""
    fig = _new_figure()
    ax = fig.add_subplot()
    for name, (ks, recalls) in curves.items():
        ax.plot(np.asarray(ks), np.asarray(recalls), marker=".", label=name)
    _finish(ax, "Recall@K", "K", "recall")
    return fig


def plot_training_curves(history: Mapping[str, Sequence[float]], xlabel: str = "step") -> Figure:
    """Training curves, one line per series. Series named ``*loss*`` go in a left panel,
    the rest (AUC, ...) in a right panel, since their scales differ; a single kind uses one
    panel."""
    losses = {k: v for k, v in history.items() if "loss" in k.lower()}
    others = {k: v for k, v in history.items() if "loss" not in k.lower()}
    panels = [(title, s) for title, s in (("loss", losses), ("metrics", others)) if s]
    fig = _new_figure(ncols=max(1, len(panels)), width=5.2)
    for i, (title, series) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for name, values in series.items():
            ax.plot(np.arange(1, len(values) + 1), np.asarray(values, dtype=float), label=name)
        _finish(ax, title, xlabel, title)
    return fig


def plot_watch_time(
    series: Mapping[str, tuple[ArrayLike, ArrayLike]], time_unit: str = "step", unit: str = "s"
) -> Figure:
    """Live comparison in the simulated world: watch time per session over time, one line
    per policy: ``policy -> (t, watch_time_per_session)``; the units label the axes."""
    fig = _new_figure(width=7.2)
    ax = fig.add_subplot()
    for name, (t, watch) in series.items():
        ax.plot(np.asarray(t), np.asarray(watch, dtype=float), label=name)
    _finish(ax, "Watch time per session", time_unit, f"watch time per session ({unit})")
    return fig
