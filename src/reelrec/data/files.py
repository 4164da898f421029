"""Reading one input file with file-level checks (the first gate of validation).

`read_checked` reads a Parquet or delimited-text file into Arrow and stops with a `DataError`
that names the file, the column and the problem when the file is missing, unreadable, empty
(no data rows), lacks a required column, or holds text where numbers belong. Everything past
this gate is a row-level question (see `validate.py`).

Columns are normalised by kind so that adapters see few types:
    INT   int64, or float64 when the file stores floats (NaN -> null); bool/all-null -> int64
    STR   string
    DATE  date32 / timestamp / string, as stored (the adapter parses it)
    TIME  int64, float64 or a timestamp type, as stored (the adapter scales it)
    ANY   as stored
"""

from __future__ import annotations

import csv as pycsv
import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from reelrec.errors import DataError

_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


class Kind(enum.Enum):
    INT = "numbers"
    STR = "text"
    DATE = "dates"
    TIME = "timestamps"
    ANY = "anything"


@dataclass(frozen=True)
class Col:
    """One column an adapter reads: its name in the file, its kind, and whether it must exist."""

    name: str
    kind: Kind = Kind.INT
    required: bool = True


@dataclass(frozen=True)
class TextFormat:
    """How a delimited text file is laid out (CSV by default)."""

    delimiter: str = ","
    column_names: tuple[str, ...] = ()  # non-empty: the file has no header row
    encoding: str = "utf8"
    quoting: bool = True
    null_values: tuple[str, ...] = field(default=("", "NA", "NaN", "nan", "null", "NULL", "N/A"))


CSV = TextFormat()


def read_checked(
    path: Path,
    cols: Sequence[Col],
    fmt: TextFormat = CSV,
    *,
    keep_all: bool = False,
    malformed: list[str] | None = None,
) -> pa.Table:
    """Read `path` (Parquet, or text laid out as `fmt`) and check it at file level.

    Args:
        path: the file.
        cols: the columns the caller needs; required ones must exist.
        fmt: layout of a text file (ignored for Parquet).
        keep_all: also return the file's other columns (as stored), e.g. to keep whole
            original rows for the dead-letter file.
        malformed: where to collect the raw text of rows with the wrong number of fields
            (the caller dead-letters them); None: such a row is a DataError.

    Returns:
        A table of N >= 1 rows with the present `cols` normalised by kind (see module doc),
        followed by the other columns when `keep_all`.

    Raises:
        DataError: missing/unreadable/empty file, missing column, text in a numeric column.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "expected a file, found a folder")
    names = _column_names(path, fmt)
    for col in cols:
        if col.required and col.name not in names:
            raise DataError(path, f"missing column (the file has: {', '.join(names)})", col.name)
    wanted = [c for c in cols if c.name in names]
    selected = names if keep_all else [c.name for c in wanted]
    text_cols = [c.name for c in wanted if c.kind is Kind.STR]
    table = _read(path, fmt, names, selected, text_cols, malformed)
    if table.num_rows == 0:
        raise DataError(path, "empty file: no data rows")
    for col in wanted:
        i = table.column_names.index(col.name)
        table = table.set_column(i, col.name, _normalise(path, col, table.column(i)))
    return table


def _column_names(path: Path, fmt: TextFormat) -> list[str]:
    if path.suffix == ".parquet":
        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as e:
            raise DataError(path, f"not a readable Parquet file ({e})") from None
    if fmt.column_names:
        return list(fmt.column_names)
    with open(path, "rb") as f:
        first = f.readline()
    if not first.strip():
        raise DataError(path, "empty file: no header row")
    line = first.decode(fmt.encoding, errors="replace").lstrip("\ufeff")
    quote = '"' if fmt.quoting else None
    row = next(pycsv.reader([line], delimiter=fmt.delimiter, quotechar=quote or '"'))
    return [name.strip() for name in row]


def _read(
    path: Path,
    fmt: TextFormat,
    names: list[str],
    selected: list[str],
    text_cols: list[str],
    malformed: list[str] | None,
) -> pa.Table:
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path, columns=selected)
        read = pacsv.ReadOptions(
            column_names=names,
            skip_rows=0 if fmt.column_names else 1,
            encoding=fmt.encoding,
        )
        parse = pacsv.ParseOptions(
            delimiter=fmt.delimiter,
            quote_char='"' if fmt.quoting else False,
            invalid_row_handler=None if malformed is None else _collect(malformed),
        )
        convert = pacsv.ConvertOptions(
            include_columns=selected,
            column_types={name: pa.string() for name in text_cols},
            null_values=list(fmt.null_values),
            strings_can_be_null=True,
        )
        return pacsv.read_csv(path, read, parse, convert)
    except pa.ArrowInvalid as e:
        msg = str(e)
        if "Empty CSV file" in msg:
            raise DataError(path, "empty file: no header row") from None
        m = re.search(r"column #(\d+)", msg)
        column = names[int(m.group(1))] if m and int(m.group(1)) < len(names) else None
        raise DataError(path, f"cannot parse the file ({msg.splitlines()[0]})", column) from None
    except (pa.ArrowException, OSError) as e:
        raise DataError(path, f"cannot read the file ({e})") from None


def _collect(malformed: list[str]) -> Callable[[pacsv.InvalidRow], str]:
    """An invalid-row handler that keeps the raw text and skips the row (only bad rows
    reach Python, so the hot path stays columnar)."""

    def handle(row: pacsv.InvalidRow) -> str:
        malformed.append(row.text)
        return "skip"

    return handle


def _normalise(path: Path, col: Col, values: pa.ChunkedArray) -> pa.ChunkedArray:
    t = values.type
    if col.kind is Kind.STR:
        return values if pa.types.is_string(t) else pc.cast(values, pa.string())
    if col.kind in (Kind.ANY, Kind.DATE):
        return values
    if col.kind is Kind.TIME and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
        return values
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        bad = pc.drop_null(pc.filter(values, pc.invert(pc.match_substring_regex(values, _NUMBER))))
        example = bad[0].as_py() if len(bad) else ""
        raise DataError(
            path, f"wrong type: expected {col.kind.value}, found text such as {example!r}", col.name
        )
    if pa.types.is_floating(t):
        values = pc.cast(values, pa.float64())
        return pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values)
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
        return values if pa.types.is_int64(t) else pc.cast(values, pa.int64())
    if pa.types.is_decimal(t):
        return pc.cast(values, pa.float64())
    raise DataError(path, f"wrong type: expected {col.kind.value}, found {t}", col.name)
