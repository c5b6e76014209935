"""Bring your own data: load a user's exported post table into the raw warehouse tables.

An export (CSV or Parquet) is read through a YAML column mapping (our field -> their column),
every row is validated on its own, and rows that cannot be loaded go to a rejects CSV with
the reason, so one bad row never blocks a file. Post ids are hashes of the post's content
(or of its external id), which makes re-importing the same or an overlapping export a no-op
for rows already loaded. The tables a post touches (users, content_posts, hashtags,
post_hashtags, follower_counts, engagement_definition) are rebuilt in memory and written
with `write_many`, so a failed import leaves the warehouse exactly as it was: a file is
all-or-nothing, its rows are not (bad rows are rejected with a reason, the rest load).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import yaml
from dateutil import parser as dateutil_parser

from ingestion.schema import RAW_TABLES, Table
from ingestion.simulator import POST_TYPES
from ingestion.warehouse import Warehouse

# Always required; category is required unless the mapping sets default_category, and the
# engagement denominator's column (reach or followers) is required when it is the denominator.
REQUIRED_FIELDS = ("timestamp", "type", "likes", "comments", "shares")
OPTIONAL_FIELDS = (
    "category",
    "reach",
    "followers",
    "account",
    "hashtags",
    "paid",
    "text",
    "saves",
    "impressions",
    "post_id",
)
MAPPING_KEYS = (
    "columns",
    "timestamp_format",
    "timezone",
    "default_account",
    "default_category",
    "engagement_denominator",
    "reach_sampled",
    "earliest_date",
)
DENOMINATORS = ("reach", "followers", "none")
POST_TABLES = ("users", "content_posts", "hashtags", "post_hashtags")
AUDIENCE_TABLES = ("follower_counts", "engagement_definition")
# Exports leave a count blank when it is zero: a blank interaction count loads as 0 and is
# counted in ImportResult.blank_counts_as_zero. A blank reach or followers is a reject when it
# is the engagement denominator (dividing by an unknown is not zero).
BLANK_AS_ZERO = ("likes", "comments", "shares", "saves")
MAX_COUNT = 10**12  # far above any real post's reach; larger values are typos or overflow
MAX_TEXT_CHARS = 100_000  # longer captions are rejected per row, never the whole file
DEFAULT_EARLIEST_DATE = "2004-01-01"
FUTURE_SLACK = pd.Timedelta(days=1)  # a post may be stamped up to a day ahead (time zones)
# PostgreSQL text cannot hold U+0000; a cell with one is a reject on both profiles, so the
# same export loads the same rows whichever warehouse it goes to.
NUL_REASON = "contains a NUL character (U+0000), which a text column cannot store"

# Names other platforms use for our five post types (compared lower-case, '_' for ' ' and '-').
TYPE_SYNONYMS = {
    **{name: name for name in POST_TYPES},
    **dict.fromkeys(("photo", "picture", "pic", "img"), "image"),
    **dict.fromkeys(("reel", "reels", "clip", "short", "shorts", "igtv"), "video"),
    **dict.fromkeys(("status", "tweet", "note"), "text"),
    **dict.fromkeys(("url", "article", "shared_link"), "link"),
    **dict.fromkeys(("album", "carousel_album", "gallery", "sidecar", "multi_photo"), "carousel"),
}
TRUTHY = frozenset({"yes", "true", "1", "y"})
_COUNT = re.compile(r"^[+-]?(\d+|\d{1,3}(,\d{3})+)(\.0*)?$")  # 1234, 1,234 and 12.0
_LISTED_TAG = re.compile(r"#?(\w+)")  # a hashtags cell: "#a #b", "a, b" or "a;b"
_TEXT_TAG = re.compile(r"#(\w+)")  # hashtags written into the caption
_ID_MASK = (1 << 62) - 1


class CsvImportError(ValueError):
    """A file or mapping that cannot be imported at all; the message is one line."""


class _Invalid(ValueError):
    """One cell that cannot be loaded; the message says what is wrong with it."""


@dataclass(frozen=True)
class ImportResult:
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rows_duplicate: int
    rejects_path: Path | None
    users_added: int
    hashtags_added: int
    blank_counts_as_zero: int = 0  # blank interaction cells loaded as 0 (see BLANK_AS_ZERO)
    engagement_denominator: str = "reach"


@dataclass(frozen=True)
class ColumnMapping:
    """How a user's export names our fields, and how to read its timestamps."""

    columns: dict[str, str] = field(default_factory=dict)
    timestamp_format: str | None = None
    timezone: str = "UTC"
    default_account: str = "me"
    default_category: str | None = None  # for exports without a category column
    engagement_denominator: str = "reach"  # reach | followers | none (see docs/own-data.md)
    reach_sampled: bool = False  # True: likes above reach are allowed (reach is an estimate)
    earliest_date: pd.Timestamp = pd.Timestamp(DEFAULT_EARLIEST_DATE, tz="UTC")
    latest_date: pd.Timestamp = field(
        default_factory=lambda: pd.Timestamp.now(tz="UTC") + FUTURE_SLACK
    )

    def required_fields(self) -> tuple[str, ...]:
        """Fields whose column must be in the export under this mapping."""
        category = ("category",) if self.default_category is None else ()
        denominator = (
            () if self.engagement_denominator == "none" else (self.engagement_denominator,)
        )
        return REQUIRED_FIELDS[:2] + category + denominator + REQUIRED_FIELDS[2:]


@dataclass(frozen=True)
class _Source:
    """The export's cells as read (for the rejects file), with each row's location."""

    frame: pd.DataFrame
    rows: list[int]  # 1-based line number in a CSV, 1-based row number in a Parquet file
    problems: list[str | None]  # rows that are broken as a whole (wrong number of fields)
    delimiter: str | None = None  # the CSV delimiter detected (None for Parquet)


@dataclass(frozen=True)
class _Post:
    account: str
    created_at: pd.Timestamp
    post_type: str
    category: str
    caption: str
    tags: tuple[str, ...]
    is_paid: bool
    reach: int
    impressions: int
    likes: int
    comments: int
    shares: int
    saves: int
    external_id: str
    followers: int | None = None
    blank_counts: int = 0  # interaction cells that were blank and loaded as 0

    @functools.cached_property  # hashed once per post, not at every lookup
    def post_id(self) -> int:
        """Same post, same id: from the platform's id when mapped, else from the content."""
        if self.external_id:
            return stable_id("external", self.account, self.external_id)
        return stable_id(
            "content", self.account, self.created_at.isoformat(), self.post_type, self.caption
        )


def stable_id(*parts: str) -> int:
    """62-bit id that is the same in every process (Python's hash() is salted per process)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _ID_MASK


def import_posts(
    path: Path, mapping_path: Path | None, warehouse: Warehouse, rejects_dir: Path
) -> ImportResult:
    """Load one export into the raw tables; rejected rows go to `<stem>.rejects.csv`.

    Raises CsvImportError (one line) when the file or mapping cannot be used at all, before
    anything is written. Running it again is safe: posts already loaded count as duplicates.
    Imports running at the same time take turns, so none overwrites the rows of another.
    """
    with warehouse.writing():
        return _import_locked(path, mapping_path, warehouse, rejects_dir)


@dataclass(frozen=True)
class ImportPreview:
    """What an import of a file would do, computed without writing anything (--dry-run)."""

    rows_read: int
    rows_would_load: int
    rows_duplicate: int  # already in the warehouse, or repeated within the file
    rows_rejected: int
    rejects_by_reason: dict[str, int]  # reason with its values left out -> rows
    delimiter: str | None
    first_post: pd.Timestamp | None
    last_post: pd.Timestamp | None
    accounts: int
    accounts_new: int
    engagement_denominator: str


def preview_posts(path: Path, mapping_path: Path | None, warehouse: Warehouse) -> ImportPreview:
    """Validate a file and its mapping against the warehouse as an import would, writing
    nothing (no table, no rejects file, no lock). Raises CsvImportError as import_posts does
    for a file or mapping that cannot be used at all."""
    mapping = load_mapping(mapping_path)
    source = _read_source(path)
    columns = _resolve_columns(mapping, source.frame, path.name)
    posts, rejects = _parse_rows(source, columns, mapping)
    existing = {name: _read_or_empty(warehouse, name) for name in ("users", "content_posts")}
    existing["engagement_definition"] = _read_or_empty(warehouse, "engagement_definition")
    _engagement_definition(existing, mapping.engagement_denominator, path.name)
    fresh, duplicates = _new_posts(posts, set(existing["content_posts"].post_id))
    accounts = {post.account for post in fresh}
    return ImportPreview(
        rows_read=len(source.rows),
        rows_would_load=len(fresh),
        rows_duplicate=duplicates,
        rows_rejected=len(rejects),
        rejects_by_reason=_reasons(rejects.values()),
        delimiter=source.delimiter,
        first_post=fresh[0].created_at if fresh else None,
        last_post=fresh[-1].created_at if fresh else None,
        accounts=len(accounts),
        accounts_new=len(accounts - set(existing["users"].username)),
        engagement_denominator=mapping.engagement_denominator,
    )


# the row's own values in a reason, and what they are replaced with in the summary
_ROW_VALUES = (
    (re.compile(r"\s*\(got [^)]*\)"), ""),
    (re.compile(r"\d[\d,]* is above reach \(\d[\d,]*\)"), "is above reach"),
    (re.compile(r"is [\d,]+ characters long"), "is too long"),
)
_FIELD_REASON = re.compile(r"; (?=\w+ \(column )")  # where one field's reason ends


def _reasons(reasons: Iterable[str]) -> dict[str, int]:
    """Rows per kind of problem: each field's reason without the row's own values, most
    frequent first, so a summary of 10,000 rejects is a handful of lines."""
    counts: dict[str, int] = {}
    for reason in reasons:
        for part in dict.fromkeys(_FIELD_REASON.split(reason)):
            kind = part
            for pattern, replacement in _ROW_VALUES:
                kind = pattern.sub(replacement, kind)
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _import_locked(
    path: Path, mapping_path: Path | None, warehouse: Warehouse, rejects_dir: Path
) -> ImportResult:
    mapping = load_mapping(mapping_path)
    source = _read_source(path)
    columns = _resolve_columns(mapping, source.frame, path.name)
    posts, rejects = _parse_rows(source, columns, mapping)
    existing = {name: _read_or_empty(warehouse, name) for name in POST_TABLES + AUDIENCE_TABLES}
    definition = _engagement_definition(existing, mapping.engagement_denominator, path.name)
    if not posts:
        rejects_path = _write_rejects(source, rejects, rejects_dir / f"{path.stem}.rejects.csv")
        raise CsvImportError(_nothing_loaded(path.name, source, rejects, rejects_path))
    fresh, duplicates = _new_posts(posts, set(existing["content_posts"].post_id))
    users, users_added = _users(existing["users"], fresh)
    hashtags, hashtags_added = _hashtags(existing["hashtags"], fresh)
    if fresh:
        tables = {
            "users": users,
            "hashtags": hashtags,
            "content_posts": _append(existing["content_posts"], _post_rows(fresh, users)),
            "post_hashtags": _append(existing["post_hashtags"], _tag_rows(fresh, hashtags)),
            "follower_counts": _append(existing["follower_counts"], _follower_rows(fresh, users)),
            "engagement_definition": definition,
        }
        warehouse.write_many(
            [(RAW_TABLES[name], frame) for name, frame in tables.items()]
            + _missing_tables(warehouse)
        )
    rejects_path = _write_rejects(source, rejects, rejects_dir / f"{path.stem}.rejects.csv")
    return ImportResult(
        rows_read=len(source.rows),
        rows_loaded=len(fresh),
        rows_rejected=len(rejects),
        rows_duplicate=duplicates,
        rejects_path=rejects_path,
        users_added=users_added,
        hashtags_added=hashtags_added,
        blank_counts_as_zero=sum(post.blank_counts for post in fresh),
        engagement_denominator=mapping.engagement_denominator,
    )


def _nothing_loaded(
    name: str, source: _Source, rejects: dict[int, str], rejects_path: Path | None
) -> str:
    """One line for a file of which no row can be loaded (the caller exits non-zero)."""
    if not rejects:
        return f"{name}: no data rows to import"
    position, reason = next(iter(rejects.items()))
    return (
        f"{name}: all {len(rejects)} rows were rejected, nothing loaded "
        f"(first: row {source.rows[position]}: {reason}; all reasons in {rejects_path})"
    )


def _engagement_definition(
    existing: dict[str, pd.DataFrame], denominator: str, source: str
) -> pd.DataFrame:
    """The warehouse keeps one engagement target; an import asking for another is refused.

    Posts already there without a definition (simulated data) were measured against reach.
    """
    stored = existing["engagement_definition"]
    if len(stored):
        current = str(stored.denominator.iloc[0])
    elif len(existing["content_posts"]):
        current = "reach"
    else:
        return pd.DataFrame(
            {"denominator": [denominator], "defined_at": [pd.Timestamp.now(tz="UTC")]}
        )
    if current != denominator:
        raise CsvImportError(
            f"{source}: engagement_denominator {denominator!r} differs from the warehouse's "
            f"{current!r} (one engagement target per warehouse; use a fresh data_dir)"
        )
    if len(stored):
        return stored
    return pd.DataFrame({"denominator": [current], "defined_at": [pd.Timestamp.now(tz="UTC")]})


# --- mapping ----------------------------------------------------------------------------


def load_mapping(path: Path | None) -> ColumnMapping:
    """Read and check a mapping file; no file means the export already uses our names."""
    if path is None:
        return ColumnMapping()
    raw = _read_yaml(path)
    unknown = [key for key in raw if key not in MAPPING_KEYS]
    if unknown:
        raise CsvImportError(
            f"{path.name}: unknown key {unknown[0]!r} (expected {', '.join(MAPPING_KEYS)})"
        )
    mapping = ColumnMapping(
        columns=_mapped_columns(raw.get("columns") or {}, path.name),
        timestamp_format=_optional_text(raw, "timestamp_format", path.name),
        timezone=_optional_text(raw, "timezone", path.name) or "UTC",
        default_account=_optional_text(raw, "default_account", path.name) or "me",
        default_category=_category_default(raw, path.name),
        engagement_denominator=_denominator(raw, path.name),
        reach_sampled=_optional_flag(raw, "reach_sampled", path.name),
        earliest_date=_earliest_date(raw, path.name),
    )
    try:
        ZoneInfo(mapping.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CsvImportError(f"{path.name}: timezone {mapping.timezone!r} is unknown") from None
    return mapping


def _category_default(raw: dict[str, Any], source: str) -> str | None:
    value = _optional_text(raw, "default_category", source)
    return value.strip().lower() if value else None


def _denominator(raw: dict[str, Any], source: str) -> str:
    value = raw.get("engagement_denominator", "reach")
    if value not in DENOMINATORS:
        raise CsvImportError(
            f"{source}: engagement_denominator must be one of {', '.join(DENOMINATORS)} "
            f"(got {value!r})"
        )
    return value


def _optional_flag(raw: dict[str, Any], key: str, source: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise CsvImportError(f"{source}: {key} must be true or false")
    return value


def _earliest_date(raw: dict[str, Any], source: str) -> pd.Timestamp:
    value = raw.get("earliest_date", DEFAULT_EARLIEST_DATE)
    try:
        stamp = pd.Timestamp(str(value))
    except (ValueError, TypeError):
        raise CsvImportError(f"{source}: earliest_date must be a date (YYYY-MM-DD)") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CsvImportError(f"{path.name}: cannot read mapping file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise CsvImportError(f"{path.name}{where}: not valid YAML") from None
    if not isinstance(raw, dict):
        raise CsvImportError(f"{path.name}: top level must be a mapping of keys")
    return raw


def _mapped_columns(columns: Any, source: str) -> dict[str, str]:
    if not isinstance(columns, dict):
        raise CsvImportError(f"{source}: columns must map our field names to column names")
    for name, column in columns.items():
        if name not in REQUIRED_FIELDS + OPTIONAL_FIELDS:
            known = ", ".join(REQUIRED_FIELDS + OPTIONAL_FIELDS)
            raise CsvImportError(f"{source}: columns: unknown field {name!r} (fields: {known})")
        if not isinstance(column, str) or not column:
            raise CsvImportError(f"{source}: columns.{name} must be a column name")
    return dict(columns)


def _optional_text(raw: dict[str, Any], key: str, source: str) -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise CsvImportError(f"{source}: {key} must be a non-empty string")
    return value


def _resolve_columns(mapping: ColumnMapping, frame: pd.DataFrame, source: str) -> dict[str, str]:
    """Field -> column actually used: mapped names first, else our own name if present.

    A missing required column, or an optional one the mapping names explicitly, is an
    error for the whole file: loading it without that column would be silently wrong.
    """
    header = list(frame.columns)
    required = mapping.required_fields()
    resolved, missing = {}, []
    for name in REQUIRED_FIELDS + OPTIONAL_FIELDS:
        column = mapping.columns.get(name, name)
        if header.count(column) > 1:
            raise CsvImportError(f"{source}: column {column!r} (field {name}) appears twice")
        if column in header:
            resolved[name] = column
        elif name in required:
            missing.append(f"{column!r} (field {name})")
    if len(missing) == 1:
        raise CsvImportError(f"{source}: required column {missing[0]} is missing{_hint(missing)}")
    if missing:
        raise CsvImportError(
            f"{source}: required columns {', '.join(missing)} are missing{_hint(missing)}"
        )
    for name, column in mapping.columns.items():
        if name not in resolved:
            raise CsvImportError(f"{source}: mapped column {column!r} (field {name}) is missing")
    return resolved


def _hint(missing: list[str]) -> str:
    """What a mapping can say instead, for the fields an export often lacks."""
    hints = []
    if any("(field category)" in item for item in missing):
        hints.append("set default_category in the mapping if the export has no category")
    if any("(field reach)" in item for item in missing):
        hints.append("set engagement_denominator: followers or none if it has no reach")
    return f" ({'; '.join(hints)})" if hints else ""


# --- reading ----------------------------------------------------------------------------


def _read_source(path: Path) -> _Source:
    readers = {".csv": _read_csv, ".parquet": _read_parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise CsvImportError(f"{path.name}: unsupported file type (use .csv or .parquet)")
    if not path.is_file():
        raise CsvImportError(f"{path}: file not found")
    return reader(path)


def _read_csv(path: Path) -> _Source:
    """Read cells as text with exact line numbers (captions may span lines).

    The delimiter is the most frequent of , ; and tab in the header, because spreadsheet
    exports in many locales use ';'. Rows with the wrong number of fields are kept (padded or
    cut to the header) so that they can be reported, not silently shifted into other columns.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvImportError(f"{path.name}: not UTF-8 text (export it as CSV UTF-8)") from None
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    # csv's default field limit (128 KiB) would refuse the whole file for one long caption;
    # long cells are judged per row instead (MAX_TEXT_CHARS). The limit is process-wide,
    # so it is restored afterwards.
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text)))
    try:
        return _csv_cells(path, text, delimiter)
    finally:
        csv.field_size_limit(limit)


def _csv_cells(path: Path, text: str, delimiter: str) -> _Source:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise CsvImportError(f"{path.name}: file is empty")
    cells, rows, problems = [], [], []
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise CsvImportError(f"{path.name} line {line}: cannot be read ({exc})") from None
        if not any(value.strip() for value in fields):
            continue
        cells.append((fields + [""] * len(header))[: len(header)])
        rows.append(line)
        problems.append(
            None
            if len(fields) == len(header)
            else f"row has {len(fields)} fields, the header has {len(header)}"
        )
    return _Source(pd.DataFrame(cells, columns=header, dtype=object), rows, problems, delimiter)


def _read_parquet(path: Path) -> _Source:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CsvImportError(f"{path.name}: cannot be read as Parquet ({reason})") from None
    frame = frame.reset_index(drop=True)
    return _Source(frame, list(range(1, len(frame) + 1)), [None] * len(frame))


def _read_or_empty(warehouse: Warehouse, name: str) -> pd.DataFrame:
    table = RAW_TABLES[name]
    return warehouse.read(name) if warehouse.exists(name) else _empty(table)


def _empty(table: Table) -> pd.DataFrame:
    return table.conform(pd.DataFrame({column: [] for column in table.columns}))


def _missing_tables(warehouse: Warehouse) -> list[tuple[Table, pd.DataFrame]]:
    """Empty versions of the other raw tables, so that the ETL can run on imported data."""
    return [
        (table, _empty(table))
        for name, table in RAW_TABLES.items()
        if name not in POST_TABLES + AUDIENCE_TABLES and not warehouse.exists(name)
    ]


# --- validation -------------------------------------------------------------------------


def _parse_rows(
    source: _Source, columns: dict[str, str], mapping: ColumnMapping
) -> tuple[list[_Post], dict[int, str]]:
    """Valid posts in file order, and the reason for each rejected row (by position)."""
    posts, rejects = [], {}
    records = source.frame.to_dict("records")
    stamps = _timestamps(source.frame[columns["timestamp"]], mapping)
    for position, (record, problem) in enumerate(zip(records, source.problems, strict=True)):
        if stamps[position] is not None:
            record[columns["timestamp"]] = stamps[position]  # still checked against the window
        outcome = problem or _parse_row(record, columns, mapping)
        if isinstance(outcome, str):
            rejects[position] = outcome
        else:
            posts.append(outcome)
    return posts, rejects


def _timestamps(values: pd.Series, mapping: ColumnMapping) -> list[pd.Timestamp | None]:
    """The time column parsed at once, in UTC: one format guess for the column instead of one
    per row (that guess was most of an import's time). None marks a cell left to the per-row
    parser, which reads other formats and says what is wrong with the cell."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in ("string", "empty", "datetime64", "datetime"):
        return [None] * len(values)  # numbers would be read as epoch nanoseconds
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns when it falls back to dateutil
            parsed = pd.to_datetime(values, format=mapping.timestamp_format, errors="coerce")
        if not isinstance(parsed.dtype, pd.DatetimeTZDtype | np.dtype) or parsed.dtype.kind != "M":
            return [None] * len(values)  # mixed offsets: left to the per-row parser
        if parsed.dt.tz is None:
            parsed = parsed.dt.tz_localize(
                mapping.timezone,
                ambiguous=np.ones(len(parsed), dtype=bool),
                nonexistent="shift_forward",
            )
        parsed = parsed.dt.tz_convert("UTC")
    except (ValueError, TypeError, OverflowError):
        return [None] * len(values)
    return [None if pd.isna(stamp) else stamp for stamp in parsed]


def _parse_row(
    record: dict[str, Any], columns: dict[str, str], mapping: ColumnMapping
) -> _Post | str:
    """A post, or one reason naming every bad field (so a user fixes a row in one pass)."""
    values, problems, blanks = {}, [], 0
    for name, column in columns.items():
        if _has_nul(record[column]):
            problems.append(f"{name} (column {column!r}): {NUL_REASON}")
            continue
        if name in BLANK_AS_ZERO and not _text(record[column]):
            values[name], blanks = 0, blanks + 1
            continue
        try:
            values[name] = PARSERS[name](record[column], mapping)
        except _Invalid as exc:
            problems.append(f"{name} (column {column!r}): {exc}")
    if not problems:
        problems = _contradictions(values, columns, mapping)
    if problems:
        return "; ".join(problems)
    caption = values.get("text", "")
    tags = values["hashtags"] if "hashtags" in values else _tags(caption, _TEXT_TAG)
    reach = values.get("reach") or 0  # 0: the export does not report reach
    return _Post(
        account=values.get("account") or mapping.default_account,
        created_at=values["timestamp"],
        post_type=values["type"],
        category=values.get("category") or mapping.default_category,
        caption=caption,
        tags=tags,
        is_paid=values.get("paid", False),
        reach=reach,
        impressions=_first_known(values.get("impressions"), reach),
        likes=values["likes"],
        comments=values["comments"],
        shares=values["shares"],
        saves=_first_known(values.get("saves"), 0),
        external_id=values.get("post_id", ""),
        followers=values.get("followers"),
        blank_counts=blanks,
    )


def _contradictions(
    values: dict[str, Any], columns: dict[str, str], mapping: ColumnMapping
) -> list[str]:
    """Counts that cannot all be true: more likes than people reached (unless reach is an
    estimate the platform samples, which the mapping says with reach_sampled)."""
    reach = values.get("reach")
    if mapping.reach_sampled or not reach or values["likes"] <= reach:
        return []
    return [
        f"likes (column {columns['likes']!r}): {values['likes']} is above reach "
        f"({reach}); set reach_sampled: true in the mapping if reach is an estimate"
    ]


def _has_nul(value: Any) -> bool:
    return isinstance(value, str) and "\x00" in value


def _first_known(value: int | None, default: int) -> int:
    return default if value is None else value


def _is_missing(value: Any) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _text(value: Any) -> str:
    return "" if _is_missing(value) else str(value).strip()


def _timestamp(value: Any, mapping: ColumnMapping) -> pd.Timestamp:
    """UTC time; a time without an offset is read in the mapping's timezone."""
    if isinstance(value, datetime):
        stamp = pd.Timestamp(value)
    else:
        text = _text(value)
        if not text:
            raise _Invalid("is empty")
        try:
            stamp = pd.to_datetime(text, format=mapping.timestamp_format)
        except pd.errors.OutOfBoundsDatetime:
            raise _Invalid(_out_of_range(text, mapping)) from None
        except (ValueError, TypeError, OverflowError):
            fmt = mapping.timestamp_format
            expected = f" with format {fmt!r}" if fmt else ""
            raise _Invalid(f"cannot be read as a date{expected} (got {text!r})") from None
    if pd.isna(stamp):
        raise _Invalid("is empty")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(mapping.timezone, ambiguous=True, nonexistent="shift_forward")
    stamp = stamp.tz_convert("UTC")
    if stamp < mapping.earliest_date:
        raise _Invalid(
            f"is before {mapping.earliest_date:%Y-%m-%d} (got {stamp:%Y-%m-%d}; "
            "earliest_date in the mapping moves this limit)"
        )
    if stamp > mapping.latest_date:
        raise _Invalid(f"is in the future (got {stamp:%Y-%m-%d %H:%M} UTC)")
    return stamp


def _out_of_range(text: str, mapping: ColumnMapping) -> str:
    """Why a date pandas cannot hold (before 1677 or after 2262) is rejected."""
    try:
        if mapping.timestamp_format:
            parsed = datetime.strptime(text, mapping.timestamp_format)
        else:
            parsed = dateutil_parser.parse(text)
    except (ValueError, OverflowError):
        return f"cannot be read as a date (got {text!r})"
    if parsed.year > mapping.latest_date.year:
        return f"is in the future (got {text!r})"
    return f"is before {mapping.earliest_date:%Y-%m-%d} (got {text!r})"


def _post_type(value: Any, _mapping: ColumnMapping) -> str:
    text = _text(value)
    key = re.sub(r"[\s-]+", "_", text.lower())
    if key not in TYPE_SYNONYMS:
        raise _Invalid(f"unknown post type {text!r} (use {', '.join(POST_TYPES)})")
    return TYPE_SYNONYMS[key]


def _category(value: Any, mapping: ColumnMapping) -> str:
    text = _text(value).lower()
    if not text and mapping.default_category is None:
        raise _Invalid("is empty (set default_category in the mapping to fill blanks)")
    return text or mapping.default_category


def _count(value: Any, minimum: int) -> int:
    text = _text(value)
    if not text:
        raise _Invalid("is empty")
    if not _COUNT.match(text):
        raise _Invalid(f"must be a whole number (got {text!r})")
    number = int(text.replace(",", "").split(".")[0])
    if number < minimum:
        raise _Invalid(f"must be >= {minimum} (got {number})")
    if number > MAX_COUNT:
        raise _Invalid(f"is implausibly large (got {text}; at most {MAX_COUNT:,})")
    return number


def _optional_count(value: Any) -> int | None:
    """Exports leave a metric blank when the platform did not report it."""
    return None if not _text(value) else _count(value, 0)


def _audience(field_name: str) -> Callable[[Any, ColumnMapping], int | None]:
    """Reach or followers: required (>= 1) when it is the engagement denominator, else
    optional (blank: not reported)."""

    def parse(value: Any, mapping: ColumnMapping) -> int | None:
        if mapping.engagement_denominator == field_name:
            return _count(value, 1)
        return _optional_count(value)

    return parse


def _caption(value: Any, _mapping: ColumnMapping) -> str:
    text = _text(value)
    if len(text) > MAX_TEXT_CHARS:
        raise _Invalid(f"is {len(text):,} characters long (at most {MAX_TEXT_CHARS:,})")
    return text


def _flag(value: Any, _mapping: ColumnMapping) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in TRUTHY
    return not _is_missing(value) and bool(value)


def _tags(text: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    """Distinct lower-case tags in order of appearance, without '#'."""
    return tuple(dict.fromkeys(tag.lower() for tag in pattern.findall(text)))


PARSERS: dict[str, Callable[[Any, ColumnMapping], Any]] = {
    "timestamp": _timestamp,
    "type": _post_type,
    "category": _category,
    "reach": _audience("reach"),
    "followers": _audience("followers"),
    "likes": lambda value, _mapping: _count(value, 0),
    "comments": lambda value, _mapping: _count(value, 0),
    "shares": lambda value, _mapping: _count(value, 0),
    "saves": lambda value, _mapping: _optional_count(value),
    "impressions": lambda value, _mapping: _optional_count(value),
    "account": lambda value, _mapping: _text(value),
    "text": _caption,
    "post_id": lambda value, _mapping: _text(value),
    "hashtags": lambda value, _mapping: _tags(_text(value), _LISTED_TAG),
    "paid": _flag,
}


# --- new table versions -----------------------------------------------------------------


def _new_posts(posts: list[_Post], known: set[int]) -> tuple[list[_Post], int]:
    """Posts not in the warehouse yet (first copy within the file wins), oldest first."""
    fresh: dict[int, _Post] = {}
    for post in posts:
        if post.post_id not in known and post.post_id not in fresh:
            fresh[post.post_id] = post
    ordered = sorted(fresh.values(), key=lambda post: post.created_at)
    return ordered, len(posts) - len(ordered)


def _next_id(ids: pd.Series) -> int:
    """Ids are dense from 0 because the ETL indexes arrays by user and hashtag id."""
    return int(ids.max()) + 1 if len(ids) else 0


def _users(users: pd.DataFrame, posts: list[_Post]) -> tuple[pd.DataFrame, int]:
    """Known accounts keep their id; a new one starts at its first imported post."""
    known = set(users.username)
    first_post: dict[str, pd.Timestamp] = {}
    for post in posts:  # oldest first
        if post.account not in known:
            first_post.setdefault(post.account, post.created_at)
    start = _next_id(users.user_id)
    added = pd.DataFrame(
        {
            "user_id": range(start, start + len(first_post)),
            "username": list(first_post),
            "created_at": list(first_post.values()),
            "country": "unknown",
            "account_type": "creator",
            "is_verified": False,
        }
    )
    return _append(users, added), len(added)


def _hashtags(hashtags: pd.DataFrame, posts: list[_Post]) -> tuple[pd.DataFrame, int]:
    """Known tags keep their id; a new tag takes the category of the first post using it."""
    known = set(hashtags.tag)
    first_category: dict[str, str] = {}
    for post in posts:  # oldest first
        for tag in post.tags:
            if tag not in known:
                first_category.setdefault(tag, post.category)
    start = _next_id(hashtags.hashtag_id)
    added = pd.DataFrame(
        {
            "hashtag_id": range(start, start + len(first_category)),
            "tag": list(first_category),
            "category": list(first_category.values()),
        }
    )
    return _append(hashtags, added), len(added)


def _post_rows(posts: list[_Post], users: pd.DataFrame) -> pd.DataFrame:
    user_ids = dict(zip(users.username, users.user_id, strict=True))
    return pd.DataFrame(
        {
            "post_id": [post.post_id for post in posts],
            "user_id": [user_ids[post.account] for post in posts],
            "created_at": [post.created_at for post in posts],
            "post_type": [post.post_type for post in posts],
            "category": [post.category for post in posts],
            "caption": [post.caption for post in posts],
            "hashtags": [" ".join(f"#{tag}" for tag in post.tags) for post in posts],
            "campaign_id": pd.array([None] * len(posts), dtype="Int64"),
            "is_paid": [post.is_paid for post in posts],
            **{
                metric: [getattr(post, metric) for post in posts]
                for metric in ("reach", "impressions", "likes", "comments", "shares", "saves")
            },
        }
    )


def _tag_rows(posts: list[_Post], hashtags: pd.DataFrame) -> pd.DataFrame:
    tag_ids = dict(zip(hashtags.tag, hashtags.hashtag_id, strict=True))
    pairs = [(post.post_id, tag_ids[tag]) for post in posts for tag in post.tags]
    return pd.DataFrame(pairs, columns=["post_id", "hashtag_id"], dtype="int64")


def _follower_rows(posts: list[_Post], users: pd.DataFrame) -> pd.DataFrame:
    """The audience each post's export reported, as an observation of its account."""
    user_ids = dict(zip(users.username, users.user_id, strict=True))
    known = [post for post in posts if post.followers is not None]
    return pd.DataFrame(
        {
            "post_id": pd.array([post.post_id for post in known], dtype="int64"),
            "user_id": pd.array([user_ids[post.account] for post in known], dtype="int64"),
            "observed_at": pd.to_datetime([post.created_at for post in known], utc=True),
            "followers": pd.array([post.followers for post in known], dtype="int64"),
        }
    )


def _append(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Concatenate, skipping empty parts (pandas warns about their dtypes otherwise)."""
    parts = [part for part in (old, new) if len(part)]
    return pd.concat(parts, ignore_index=True) if parts else old


def _write_rejects(source: _Source, rejects: dict[int, str], target: Path) -> Path | None:
    """The rejected rows as they were, plus where (_row) and why (_reason).

    A stale file from an earlier run is removed so that it is never mistaken for this one's.
    """
    if not rejects:
        target.unlink(missing_ok=True)
        return None
    positions = list(rejects)
    frame = source.frame.iloc[positions].copy()
    frame["_row"] = [source.rows[position] for position in positions]
    frame["_reason"] = list(rejects.values())
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(target, index=False)
    return target
