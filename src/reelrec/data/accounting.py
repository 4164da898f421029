"""Human-readable accounting of a load: rows read, used, and dead-lettered per reason."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from reelrec.data.dataset import Interactions

DEAD_LETTER_FILE = "dead_letters.parquet"


def summary(data: Interactions, title: str | None = None) -> Table:
    """A rich table: rows in, used, dead-lettered (total and per reason), and notes.

    Rows outside --start/--end are shown separately: they were not asked for, so they are
    neither used nor dead.
    """
    table = Table(title=title or f"data: {data.source}", show_header=True)
    table.add_column("rows", style="bold")
    table.add_column("count", justify="right")
    table.add_column("share of rows in", justify="right")

    def share(n: int) -> str:
        if not data.rows_in:
            return "-"
        if 0 < n < data.rows_in and not 0.01 <= 100.0 * n / data.rows_in <= 99.99:
            return "<0.01%" if n < data.rows_in / 2 else ">99.99%"  # never round to 0 or 100
        return f"{100.0 * n / data.rows_in:.2f}%"

    if data.rows_outside_dates:
        table.add_row("outside --start/--end", f"{data.rows_outside_dates:,}", "")
    table.add_row("in", f"{data.rows_in:,}", share(data.rows_in))
    table.add_row("used", f"{data.events.num_rows:,}", share(data.events.num_rows))
    table.add_row("dead-lettered", f"{data.dead.total:,}", share(data.dead.total))
    for reason, n in sorted(data.dead.counts.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  dead: {reason}", f"{n:,}", share(n))
    for note, n in sorted(data.dead.notes.items()):
        table.add_row(f"  note: {note}", f"{n:,}", "", style="dim")
    return table


def write_dead_letters(data: Interactions, folder: Path) -> Path | None:
    """Write the refused rows to FOLDER/dead_letters.parquet; None when there are none."""
    return data.dead.write(Path(folder) / DEAD_LETTER_FILE)
