"""The dashboard's tables as files a BI tool opens directly (Power BI, Excel, Tableau, DuckDB).

Each table is written twice, with the same plain snake_case column names:

- CSV: UTF-8 with a byte order mark, comma-separated, CRLF line ends (RFC 4180), a header
  row, empty cells for missing values. Power Query's Text/CSV connector (Power BI, Excel)
  does not infer a file's character set and takes UTF-8 only when the file starts with a
  BOM, so without it an accented username or caption arrives garbled; pandas, DuckDB and
  Python's csv module skip the BOM when told `utf-8-sig` (pandas also by default). Times are
  ISO 8601 in UTC (`2026-06-01T19:00:00Z`), days are `2026-06-01`.
- A CSV text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
  leading single quote (OWASP's rule against CSV injection): a spreadsheet would otherwise run
  an account named `=cmd|' /C calc'!A0` as a formula. Numbers are left as they are (a
  negative number stays a number), and so is text that is a plain number (`-12.5`).
- Parquet: typed columns, so nothing is re-parsed: timestamps in microseconds marked UTC
  (the unit every Parquet reader takes; nanoseconds are newer and not read everywhere), days
  as Parquet DATE, text as UTF-8 strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analytics.errors import AnalyticsError

CSV_ENCODING = "utf-8-sig"  # UTF-8 with a BOM, which Power Query needs to detect UTF-8
TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"
DAY = "%Y-%m-%d"
PLAIN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Export:
    """One exported table: its name, rows, and the two files."""

    name: str
    rows: int
    csv: Path
    parquet: Path


def _is_day(values: pd.Series) -> bool:
    """A naive datetime column whose values are all midnights holds days."""
    present = values.dropna()
    return bool((present == present.dt.normalize()).all())


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may read as a formula
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def neutralised(value):
    """A text cell a spreadsheet would run as a formula, with a leading `'` (OWASP); any other
    value (a number, text that is a plain number, missing) as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not NUMBER.match(value):
        return "'" + value
    return value


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its times as ISO 8601 text (UTC, `Z`), its days as `YYYY-MM-DD`, and its
    text cells neutralised against formula injection."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out[col] = values.dt.tz_convert("UTC").dt.strftime(TIMESTAMP)
        elif pd.api.types.is_datetime64_dtype(values.dtype):
            out[col] = values.dt.strftime(DAY if _is_day(values) else "%Y-%m-%dT%H:%M:%S")
        elif not (
            pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)
        ):  # text, categories, objects
            out[col] = values.astype(object).map(neutralised, na_action="ignore")
    return out


def arrow_table(frame: pd.DataFrame):
    """A pyarrow table with UTC microsecond timestamps and days as Parquet DATE."""
    import pyarrow as pa

    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out[col] = values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        elif pd.api.types.is_datetime64_dtype(values.dtype) and _is_day(values):
            out[col] = values.dt.date  # object of datetime.date: arrow writes date32
    table = pa.Table.from_pandas(out, preserve_index=False)
    return table.replace_schema_metadata(None)  # no pandas metadata: BI tools ignore it anyway


def write_export(folder: Path, name: str, frame: pd.DataFrame) -> Export:
    """Write `<folder>/<name>.csv` and `<name>.parquet`; column names must be plain."""
    import pyarrow.parquet as pq

    odd = [str(c) for c in frame.columns if not PLAIN.match(str(c))]
    if odd or not PLAIN.match(name):
        raise AnalyticsError(f"export {name}: not a plain snake_case name: {', '.join(odd)}")
    folder.mkdir(parents=True, exist_ok=True)
    csv, parquet = folder / f"{name}.csv", folder / f"{name}.parquet"
    csv_frame(frame).to_csv(csv, index=False, encoding=CSV_ENCODING, lineterminator="\r\n")
    pq.write_table(arrow_table(frame), parquet)
    return Export(name, len(frame), csv, parquet)
