"""Bring your own data: load a user's exported post table into the raw warehouse tables.

An export (CSV or Parquet) is read through a YAML column mapping (our field -> their column)
in chunks of rows, every row is validated on its own, and rows that cannot be loaded go to a
rejects CSV with the reason, so one bad row never blocks a file. Post ids are hashes of the
post's content (or of its external id), which makes re-importing the same or an overlapping
export a no-op for rows already loaded.

A file is all-or-nothing, its rows are not (bad rows are rejected with a reason, the rest
load): each chunk's new posts are staged to a Parquet part file on disk, and only when the
whole file has been read are they added to the tables they touch (users, content_posts,
hashtags, post_hashtags, follower_counts, engagement_definition) with one `append_many`, so a
failure anywhere leaves the warehouse exactly as it was. Memory holds one chunk, plus what
deduplication and ids need for the whole file: 8 bytes per post id already in the warehouse
or taken from the file, and the accounts and hashtags (known and new).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import yaml
from dateutil import parser as dateutil_parser
from pandas.tseries.api import guess_datetime_format

from ingestion.schema import RAW_TABLES, Table
from ingestion.simulator import POST_TYPES
from ingestion.warehouse import Warehouse, process_alive

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
    "experiment",
    "variant",
    "platform",
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
    "platform",
)
DENOMINATORS = ("reach", "followers", "none")
POST_TABLES = ("users", "content_posts", "hashtags", "post_hashtags")
AUDIENCE_TABLES = ("follower_counts", "engagement_definition")
# Exports leave a count blank when it is zero: a blank interaction count loads as 0 and is
# counted in ImportResult.blank_counts_as_zero. A blank reach or followers is a reject when it
# is the engagement denominator (dividing by an unknown is not zero).
BLANK_AS_ZERO = ("likes", "comments", "shares", "saves")
MAX_COUNT = 10**12  # far above any real post's reach; larger values are typos or overflow
MAX_LABEL_CHARS = 200  # an experiment's or a variant's name
MAX_TEXT_CHARS = 100_000  # longer captions are rejected per row, never the whole file
DEFAULT_EARLIEST_DATE = "2004-01-01"
FUTURE_SLACK = pd.Timedelta(days=1)  # a post may be stamped up to a day ahead (time zones)
# PostgreSQL text cannot hold U+0000; a cell with one is a reject on both profiles, so the
# same export loads the same rows whichever warehouse it goes to.
NUL_REASON = "contains a NUL character (U+0000), which a text column cannot store"
CHUNK_ROWS = 50_000  # rows read, validated and staged at a time (warehouse.import_chunk_rows)
Progress = Callable[[int, int], None]  # (bytes read, file bytes)

# Names other platforms use for our five post types (compared lower-case, '_' for ' ' and '-').
TYPE_SYNONYMS = {
    **{name: name for name in POST_TYPES},
    **dict.fromkeys(("photo", "picture", "pic", "img"), "image"),
    **dict.fromkeys(("reel", "reels", "clip", "short", "shorts", "igtv"), "video"),
    **dict.fromkeys(("status", "tweet", "note"), "text"),
    **dict.fromkeys(("url", "article", "shared_link"), "link"),
    **dict.fromkeys(("album", "carousel_album", "gallery", "sidecar", "multi_photo"), "carousel"),
}
# Names exports use for the platforms of configs/platforms.py (compared lower-case)
PLATFORM_SYNONYMS = {"twitter": "x", "ig": "instagram", "fb": "facebook", "yt": "youtube"}
_PLATFORM = re.compile(r"^[a-z][a-z0-9_]*$")
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
    # every post's platform unless its `platform` column says otherwise (none: the settings'
    # default platform, docs/platforms.md)
    platform: str | None = None
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
    experiment: str = ""  # a content experiment and its variant, both or neither
    variant: str = ""
    platform: str | None = None

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
    path: Path,
    mapping_path: Path | None,
    warehouse: Warehouse,
    rejects_dir: Path,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> ImportResult:
    """Load one export into the raw tables; rejected rows go to `<stem>.rejects.csv`.

    Raises CsvImportError (one line) when the file or mapping cannot be used at all, and
    then nothing is written. Running it again is safe: posts already loaded count as
    duplicates. Imports running at the same time take turns, so none overwrites the rows of
    another. `progress(bytes_read, file_bytes)` is called after every chunk; the chunk's new
    posts are staged in a folder beside `rejects_dir` until the file is written.
    """
    with warehouse.writing():
        return _import_locked(path, mapping_path, warehouse, rejects_dir, chunk_rows, progress)


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


def preview_posts(
    path: Path,
    mapping_path: Path | None,
    warehouse: Warehouse,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> ImportPreview:
    """Validate a file and its mapping against the warehouse as an import would, writing
    nothing (no table, no rejects file, no lock). Raises CsvImportError as import_posts does
    for a file or mapping that cannot be used at all."""
    mapping = load_mapping(mapping_path)
    with _open_source(path, chunk_rows) as source:
        columns = _resolve_columns(mapping, source.header, path.name)
        known = _read_known(warehouse)
        _engagement_definition(known, mapping.engagement_denominator, path.name)
        scan = _scan(source, columns, mapping, known, progress, keep=lambda *_: None)
    return ImportPreview(
        rows_read=scan.rows_read,
        rows_would_load=scan.loaded,
        rows_duplicate=scan.duplicates,
        rows_rejected=scan.rejected,
        rejects_by_reason=dict(sorted(scan.reasons.items(), key=lambda item: -item[1])),
        delimiter=source.delimiter,
        first_post=scan.first_post,
        last_post=scan.last_post,
        accounts=len(scan.accounts),
        accounts_new=len(scan.new_accounts),
        engagement_denominator=mapping.engagement_denominator,
    )


# the row's own values in a reason, and what they are replaced with in the summary
_ROW_VALUES = (
    # a quoted value may hold a `)` of its own
    (re.compile(r"""\s*\(got (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")?[^)]*\)"""), ""),
    (re.compile(r"\d[\d,]* is above reach \(\d[\d,]*\)"), "is above reach"),
    (re.compile(r"is [\d,]+ characters long"), "is too long"),
)
_FIELD_REASON = re.compile(r"; (?=\w+ \(column )")  # where one field's reason ends


def _reason_kinds(reason: str) -> list[str]:
    """Each field's reason without the row's own values, so that a summary of 10,000
    rejects is a handful of lines."""
    kinds = []
    for part in dict.fromkeys(_FIELD_REASON.split(reason)):
        kind = part
        for pattern, replacement in _ROW_VALUES:
            kind = pattern.sub(replacement, kind)
        kinds.append(kind)
    return kinds


def _import_locked(
    path: Path,
    mapping_path: Path | None,
    warehouse: Warehouse,
    rejects_dir: Path,
    chunk_rows: int,
    progress: Progress | None,
) -> ImportResult:
    mapping = load_mapping(mapping_path)
    with _open_source(path, chunk_rows) as source:
        columns = _resolve_columns(mapping, source.header, path.name)
        known = _read_known(warehouse)
        definition = _engagement_definition(known, mapping.engagement_denominator, path.name)
        rejects_file = _RejectsFile(rejects_dir / f"{path.stem}.rejects.csv")
        with rejects_file as rejects, _Staging(rejects_dir.parent) as staging:

            def keep(chunk: _Chunk, fresh: list[_Post], rejected: dict[int, str]) -> None:
                staging.add(fresh)
                rejects.add(chunk, rejected)

            scan = _scan(source, columns, mapping, known, progress, keep)
            if not scan.loaded + scan.duplicates:
                raise CsvImportError(_nothing_loaded(path.name, scan, rejects.finish()))
            if scan.loaded:
                _commit(warehouse, scan, staging, known, definition)
            rejects_path = rejects.finish()
    return ImportResult(
        rows_read=scan.rows_read,
        rows_loaded=scan.loaded,
        rows_rejected=scan.rejected,
        rows_duplicate=scan.duplicates,
        rejects_path=rejects_path,
        users_added=len(scan.new_accounts),
        hashtags_added=len(scan.new_tags),
        blank_counts_as_zero=scan.blank_counts,
        engagement_denominator=mapping.engagement_denominator,
    )


def _nothing_loaded(name: str, scan: _Scan, rejects_path: Path | None) -> str:
    """One line for a file of which no row can be loaded (the caller exits non-zero)."""
    if scan.first_reject is None:
        return f"{name}: no data rows to import"
    row, reason = scan.first_reject
    return (
        f"{name}: all {scan.rejected} rows were rejected, nothing loaded "
        f"(first: row {row}: {reason}; all reasons in {rejects_path})"
    )


def _engagement_definition(known: _Known, denominator: str, source: str) -> pd.DataFrame:
    """The warehouse keeps one engagement target; an import asking for another is refused.

    Returns the definition row this import adds (none when the warehouse has one). Posts
    already there without a definition (simulated data) were measured against reach.
    """
    stored = known.definition
    if len(stored):
        current = str(stored.denominator.iloc[0])
    elif len(known.post_ids):
        current = "reach"
    else:
        current = denominator
    if current != denominator:
        raise CsvImportError(
            f"{source}: engagement_denominator {denominator!r} differs from the warehouse's "
            f"{current!r} (one engagement target per warehouse; use a fresh data_dir)"
        )
    if len(stored):
        return stored.iloc[:0]
    return pd.DataFrame({"denominator": [current], "defined_at": [pd.Timestamp.now(tz="UTC")]})


# --- one pass over an export --------------------------------------------------------------


@dataclass(frozen=True)
class _Known:
    """What the warehouse already holds that an import must not add again."""

    user_ids: dict[str, int]  # account -> user_id
    tag_ids: dict[str, int]  # hashtag -> hashtag_id
    post_ids: np.ndarray  # sorted
    definition: pd.DataFrame  # the stored engagement_definition (no row: none stored)
    missing: tuple[str, ...]  # raw tables that do not exist yet


def _read_known(warehouse: Warehouse) -> _Known:
    """Accounts, hashtags and post ids only (never whole post tables)."""
    users = _read_or_empty(warehouse, "users", ["user_id", "username"])
    tags = _read_or_empty(warehouse, "hashtags", ["hashtag_id", "tag"])
    posts = _read_or_empty(warehouse, "content_posts", ["post_id"])
    return _Known(
        user_ids=dict(zip(users.username, users.user_id.astype(int), strict=True)),
        tag_ids=dict(zip(tags.tag, tags.hashtag_id.astype(int), strict=True)),
        post_ids=np.unique(posts.post_id.to_numpy(dtype=np.int64)),
        definition=_read_or_empty(warehouse, "engagement_definition"),
        missing=tuple(name for name in RAW_TABLES if not warehouse.exists(name)),
    )


def _read_or_empty(
    warehouse: Warehouse, name: str, columns: list[str] | None = None
) -> pd.DataFrame:
    table = RAW_TABLES[name]
    if warehouse.exists(name):
        return warehouse.read(name, columns=columns)
    return _empty(table)[columns or list(table.columns)]


def _empty(table: Table) -> pd.DataFrame:
    return table.conform(pd.DataFrame({column: [] for column in table.columns}))


@dataclass
class _Scan:
    """What a pass over an export found, kept as the chunks stream by: counts, the post ids
    already taken, and the first post of each account and hashtag the warehouse lacks."""

    taken: np.ndarray  # sorted ids of posts in the warehouse or already taken from the file
    known_accounts: set[str]
    known_tags: set[str]
    rows_read: int = 0
    loaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    blank_counts: int = 0
    first_reject: tuple[int, str] | None = None  # (row, reason)
    reasons: dict[str, int] = field(default_factory=dict)  # kind of reason -> rows
    first_post: pd.Timestamp | None = None
    last_post: pd.Timestamp | None = None
    accounts: set[str] = field(default_factory=set)  # of the posts to load
    # account -> (its first post's time, that post's row position)
    new_accounts: dict[str, tuple[pd.Timestamp, int]] = field(default_factory=dict)
    # tag -> (first use's time, row position, place among the post's tags, post category)
    new_tags: dict[str, tuple[pd.Timestamp, int, int, str]] = field(default_factory=dict)

    def add(
        self, chunk: _Chunk, posts: list[tuple[int, _Post]], rejected: dict[int, str]
    ) -> list[_Post]:
        """Count a validated chunk; returns its posts not loaded yet (first copy in the file
        wins), noting the accounts and hashtags they bring."""
        self.rows_read += len(chunk.rows)
        self.rejected += len(rejected)
        for position, reason in rejected.items():
            if self.first_reject is None:
                self.first_reject = (chunk.rows[position], reason)
            for kind in _reason_kinds(reason):
                self.reasons[kind] = self.reasons.get(kind, 0) + 1
        ids = np.fromiter((post.post_id for _, post in posts), dtype=np.int64, count=len(posts))
        first = np.zeros(len(ids), dtype=bool)
        first[np.unique(ids, return_index=True)[1]] = True
        keep = first & ~_contains(self.taken, ids)
        self.taken = np.union1d(self.taken, ids[keep])
        fresh = [entry for entry, kept in zip(posts, keep, strict=True) if kept]
        self.duplicates += len(posts) - len(fresh)
        self.loaded += len(fresh)
        for position, post in fresh:
            self._note(position, post)
        return [post for _, post in fresh]

    def _note(self, position: int, post: _Post) -> None:
        when = post.created_at
        self.blank_counts += post.blank_counts
        self.first_post = when if self.first_post is None else min(self.first_post, when)
        self.last_post = when if self.last_post is None else max(self.last_post, when)
        self.accounts.add(post.account)
        if post.account not in self.known_accounts:
            seen = self.new_accounts.get(post.account)
            if seen is None or when < seen[0]:  # ties: the earlier row, already noted
                self.new_accounts[post.account] = (when, position)
        for place, tag in enumerate(post.tags):
            if tag not in self.known_tags:
                seen_tag = self.new_tags.get(tag)
                if seen_tag is None or when < seen_tag[0]:
                    self.new_tags[tag] = (when, position, place, post.category)


def _contains(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=bool)
    found = np.searchsorted(sorted_ids, ids)
    return sorted_ids[np.minimum(found, len(sorted_ids) - 1)] == ids


def _scan(
    source: _Source,
    columns: dict[str, str],
    mapping: ColumnMapping,
    known: _Known,
    progress: Progress | None,
    keep: Callable[[_Chunk, list[_Post], dict[int, str]], None],
) -> _Scan:
    """Validate the export chunk by chunk; `keep` gets each chunk's new posts and rejects."""
    scan = _Scan(known.post_ids, set(known.user_ids), set(known.tag_ids))
    report = progress or (lambda _done, _total: None)
    times = _TimeFormat(mapping.timestamp_format)
    report(0, source.size)
    for chunk in source.chunks:
        posts, rejected = _parse_rows(chunk, columns, mapping, times)
        keep(chunk, scan.add(chunk, posts, rejected), rejected)
        report(source.position(), source.size)
    return scan


def _commit(
    warehouse: Warehouse, scan: _Scan, staging: _Staging, known: _Known, definition: pd.DataFrame
) -> None:
    """Add the staged posts, their new accounts and hashtags to the warehouse as one change.

    Accounts and hashtags new to the warehouse get the next dense ids (the ETL indexes arrays
    by them) in the order of their first post; a new account is created at its first post and
    a new tag takes that post's category.
    """
    users = _new_users(scan.new_accounts, _next_id(known.user_ids))
    tags = _new_tags(scan.new_tags, _next_id(known.tag_ids))
    user_ids = known.user_ids | dict(zip(users.username, users.user_id, strict=True))
    tag_ids = known.tag_ids | dict(zip(tags.tag, tags.hashtag_id, strict=True))
    tables: list[tuple[Table, Iterable[pd.DataFrame]]] = [
        (RAW_TABLES["users"], [users]),
        (RAW_TABLES["hashtags"], [tags]),
        (RAW_TABLES["content_posts"], (_post_rows(part, user_ids) for part in staging.parts())),
        (RAW_TABLES["post_hashtags"], (_tag_rows(part, tag_ids) for part in staging.parts())),
        (
            RAW_TABLES["follower_counts"],
            (_follower_rows(part, user_ids) for part in staging.parts()),
        ),
        (RAW_TABLES["engagement_definition"], [definition]),
        (RAW_TABLES["post_platforms"], (_platform_rows(part) for part in staging.parts())),
    ]
    # empty versions of the other raw tables, so that the ETL can run on imported data
    named = {table.name for table, _ in tables}
    tables += [(RAW_TABLES[name], []) for name in known.missing if name not in named]
    warehouse.append_many(tables)


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
        platform=_platform_default(raw, path.name),
    )
    try:
        ZoneInfo(mapping.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CsvImportError(f"{path.name}: timezone {mapping.timezone!r} is unknown") from None
    return mapping


def _category_default(raw: dict[str, Any], source: str) -> str | None:
    value = _optional_text(raw, "default_category", source)
    return value.strip().lower() if value else None


def _platform_default(raw: dict[str, Any], source: str) -> str | None:
    value = _optional_text(raw, "platform", source)
    if value is None:
        return None
    try:
        return _platform(value, ColumnMapping())
    except _Invalid as exc:
        raise CsvImportError(f"{source}: platform {exc}") from None


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


def _resolve_columns(mapping: ColumnMapping, header: list[str], source: str) -> dict[str, str]:
    """Field -> column actually used: mapped names first, else our own name if present.

    A missing required column, or an optional one the mapping names explicitly, is an
    error for the whole file: loading it without that column would be silently wrong.
    """
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


@dataclass(frozen=True)
class _Chunk:
    """Consecutive rows of an export: the cells as read (for the rejects file), each row's
    location, and the rows broken as a whole (wrong number of fields)."""

    frame: pd.DataFrame
    rows: list[int]  # 1-based line number in a CSV, 1-based row number in a Parquet file
    problems: list[str | None]
    start: int  # position of the chunk's first row among the file's data rows


@dataclass(frozen=True)
class _Source:
    """An open export: its header, and its rows read chunk by chunk on demand."""

    header: list[str]
    chunks: Iterator[_Chunk]
    size: int  # bytes
    position: Callable[[], int]  # bytes read so far (estimated from rows for Parquet)
    delimiter: str | None = None  # the CSV delimiter detected (None for Parquet)


@contextmanager
def _open_source(path: Path, chunk_rows: int) -> Iterator[_Source]:
    openers = {".csv": _open_csv, ".parquet": _open_parquet}
    opener = openers.get(path.suffix.lower())
    if opener is None:
        raise CsvImportError(f"{path.name}: unsupported file type (use .csv or .parquet)")
    if not path.is_file():
        raise CsvImportError(f"{path}: file not found")
    with opener(path, max(1, chunk_rows)) as source:
        yield source


class _Counted(io.RawIOBase):
    """A binary file that counts the bytes read from it: a text reader's progress."""

    def __init__(self, raw: io.RawIOBase):
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        read = self.raw.readinto(buffer)
        self.count += read or 0
        return read


@contextmanager
def _open_csv(path: Path, chunk_rows: int) -> Iterator[_Source]:
    """Read cells as text with exact line numbers (captions may span lines).

    The delimiter is the most frequent of , ; and tab in the first line, because spreadsheet
    exports in many locales use ';'.
    """
    with path.open(encoding="utf-8-sig", newline="\n") as head:
        first_line = _utf8(path, head.readline)
    delimiter = max(",;\t", key=first_line.count)
    size = path.stat().st_size
    # csv's default field limit (128 KiB) would refuse the whole file for one long caption;
    # long cells are judged per row instead (MAX_TEXT_CHARS). The limit is process-wide,
    # so it is restored afterwards.
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, size))
    try:
        with path.open("rb", buffering=0) as raw:
            counted = _Counted(raw)
            text = io.TextIOWrapper(io.BufferedReader(counted), encoding="utf-8-sig", newline="")
            reader = csv.reader(text, delimiter=delimiter)
            header = _utf8(path, lambda: next(reader, None))
            if not header:
                raise CsvImportError(f"{path.name}: file is empty")
            chunks = _csv_chunks(path, reader, header, chunk_rows)
            yield _Source(header, chunks, size, lambda: counted.count, delimiter)
    finally:
        csv.field_size_limit(limit)


def _utf8(path: Path, read: Callable[[], Any]) -> Any:
    try:
        return read()
    except UnicodeDecodeError:
        raise CsvImportError(f"{path.name}: not UTF-8 text (export it as CSV UTF-8)") from None


def _csv_chunks(path: Path, reader, header: list[str], chunk_rows: int) -> Iterator[_Chunk]:
    """Rows with the wrong number of fields are kept (padded or cut to the header) so that
    they can be reported, not silently shifted into other columns; blank lines are skipped."""
    cells: list[list[str]] = []
    rows: list[int] = []
    problems: list[str | None] = []
    start = 0
    while True:
        line = reader.line_num + 1
        try:
            fields = _utf8(path, lambda: next(reader))
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
        if len(cells) == chunk_rows:
            yield _Chunk(pd.DataFrame(cells, columns=header, dtype=object), rows, problems, start)
            start += len(cells)
            cells, rows, problems = [], [], []
    if cells:
        yield _Chunk(pd.DataFrame(cells, columns=header, dtype=object), rows, problems, start)


@contextmanager
def _open_parquet(path: Path, chunk_rows: int) -> Iterator[_Source]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise CsvImportError(_not_parquet(path, exc)) from None
    schema = handle.schema_arrow
    stored = (schema.pandas_metadata or {}).get("index_columns", [])
    index = {name for name in stored if isinstance(name, str)}  # a RangeIndex is a dict
    header = [name for name in schema.names if name not in index]
    total, size, done = handle.metadata.num_rows, path.stat().st_size, [0]

    def chunks() -> Iterator[_Chunk]:
        batches = handle.iter_batches(batch_size=chunk_rows)
        while True:
            try:
                batch = next(batches, None)
                if batch is None:
                    return
                frame = pa.Table.from_batches([batch]).to_pandas().reset_index(drop=True)
            except Exception as exc:  # noqa: BLE001 - a damaged row group, as above
                raise CsvImportError(_not_parquet(path, exc)) from None
            start, done[0] = done[0], done[0] + len(frame)
            yield _Chunk(frame, list(range(start + 1, done[0] + 1)), [None] * len(frame), start)

    try:
        yield _Source(header, chunks(), size, lambda: size * done[0] // max(total, 1))
    finally:
        handle.close()


def _not_parquet(path: Path, exc: Exception) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{path.name}: cannot be read as Parquet ({reason})"


# --- validation -------------------------------------------------------------------------


def _parse_rows(
    chunk: _Chunk, columns: dict[str, str], mapping: ColumnMapping, times: _TimeFormat
) -> tuple[list[tuple[int, _Post]], dict[int, str]]:
    """Valid posts in file order with their position in the file, and the reason for each
    rejected row (by position in the chunk)."""
    posts, rejects = [], {}
    records = chunk.frame.to_dict("records")
    stamps = _timestamps(chunk.frame[columns["timestamp"]], mapping, times)
    for position, (record, problem) in enumerate(zip(records, chunk.problems, strict=True)):
        if stamps[position] is not None:
            record[columns["timestamp"]] = stamps[position]  # still checked against the window
        outcome = problem or _parse_row(record, columns, mapping)
        if isinstance(outcome, str):
            rejects[position] = outcome
        else:
            posts.append((chunk.start + position, outcome))
    return posts, rejects


# what pandas skips when it picks the first time to guess a column's format from
_NOT_A_TIME = frozenset({"", "NaT", "nat", "NAT", "nan", "NaN", "NAN", "now", "today"})


class _TimeFormat:
    """The time column's format: the mapping's, or guessed once from the file's first time
    (as pandas guesses it for a whole column), so that every chunk reads times alike."""

    def __init__(self, fixed: str | None):
        self.value, self.settled = fixed, fixed is not None

    def of(self, values: pd.Series) -> str | None:
        if not self.settled:
            first = next((v for v in values if isinstance(v, str) and v not in _NOT_A_TIME), None)
            if first is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "Parsing dates in %d/%m/%Y format..."
                    self.value = guess_datetime_format(first) or "mixed"  # mixed: per cell
                self.settled = True
        return self.value


def _timestamps(
    values: pd.Series, mapping: ColumnMapping, times: _TimeFormat
) -> list[pd.Timestamp | None]:
    """The time column parsed at once, in UTC: one format guess for the column instead of one
    per row (that guess was most of an import's time). None marks a cell left to the per-row
    parser, which reads other formats and says what is wrong with the cell."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in ("string", "empty", "datetime64", "datetime"):
        return [None] * len(values)  # numbers would be read as epoch nanoseconds
    fmt = times.of(values) if kind in ("string", "empty") else mapping.timestamp_format
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns when it falls back to dateutil
            parsed = pd.to_datetime(values, format=fmt, errors="coerce")
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
    values: dict[str, Any] = {}
    problems, blanks = [], 0
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
        # without a category column the mapping must set default_category (ColumnMapping)
        category=values.get("category") or cast(str, mapping.default_category),
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
        experiment=values.get("experiment", ""),
        variant=values.get("variant", ""),
        platform=values.get("platform") or mapping.platform,
    )


def _contradictions(
    values: dict[str, Any], columns: dict[str, str], mapping: ColumnMapping
) -> list[str]:
    """Counts that cannot all be true: more likes than people reached (unless reach is an
    estimate the platform samples, which the mapping says with reach_sampled)."""
    if bool(values.get("experiment")) != bool(values.get("variant")):
        given, blank = (
            ("experiment", "variant") if values.get("experiment") else ("variant", "experiment")
        )
        column = columns.get(blank, blank)
        return [f"{blank} (column {column!r}): is empty while {given} is set"]
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


def _platform(value: Any, _mapping: ColumnMapping) -> str | None:
    """A platform's name in lower case (a blank cell: the mapping's platform, if any)."""
    text = _text(value).lower()
    if not text:
        return None
    name = PLATFORM_SYNONYMS.get(text, text)
    if not _PLATFORM.match(name) or len(name) > 40:
        raise _Invalid(f"must be a platform name such as instagram or x (got {text[:40]!r})")
    return name


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
    return text or cast(str, mapping.default_category)  # set when text is blank (above)


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


def _label(value: Any, _mapping: ColumnMapping) -> str:
    text = _text(value)
    if len(text) > MAX_LABEL_CHARS:
        raise _Invalid(f"is {len(text):,} characters long (at most {MAX_LABEL_CHARS})")
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
    "experiment": _label,
    "variant": _label,
    "platform": _platform,
}


# --- staging and new rows ---------------------------------------------------------------


class _Staging:
    """Each chunk's new posts as a Parquet part file in `<root>/.import-staging-<pid>/`, so
    that memory holds one chunk until the file is written. The folder is removed when the
    import ends; one left by a killed import is removed by the next."""

    def __init__(self, root: Path):
        self.root = root
        self.folder = root / f"{_STAGING}{os.getpid()}"
        self.files: list[Path] = []

    def __enter__(self) -> _Staging:
        for stale in self.root.glob(f"{_STAGING}*"):
            pid = stale.name.removeprefix(_STAGING)
            if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def add(self, posts: list[_Post]) -> None:
        if posts:
            self.files.append(self.folder / f"part-{len(self.files):06d}.parquet")
            _staged_rows(posts).to_parquet(self.files[-1], index=False)

    def parts(self) -> Iterator[pd.DataFrame]:
        """The staged posts, one part at a time."""
        for path in self.files:
            yield pd.read_parquet(path)


_STAGING = ".import-staging-"


def _staged_rows(posts: list[_Post]) -> pd.DataFrame:
    """A post as the raw tables need it, with its account's name (ids are given at commit)."""
    return pd.DataFrame(
        {
            "post_id": pd.array([post.post_id for post in posts], dtype="int64"),
            "account": pd.array([post.account for post in posts], dtype=object),
            "created_at": pd.to_datetime([post.created_at for post in posts], utc=True),
            "post_type": [post.post_type for post in posts],
            "category": [post.category for post in posts],
            "caption": [post.caption for post in posts],
            "hashtags": [" ".join(f"#{tag}" for tag in post.tags) for post in posts],
            "is_paid": pd.array([post.is_paid for post in posts], dtype=bool),
            **{
                metric: pd.array([getattr(post, metric) for post in posts], dtype="int64")
                for metric in ("reach", "impressions", "likes", "comments", "shares", "saves")
            },
            "followers": pd.array([post.followers for post in posts], dtype="Int64"),
            "experiment": [post.experiment or None for post in posts],
            "variant": [post.variant or None for post in posts],
            "platform": pd.array([post.platform for post in posts], dtype=object),
        }
    )


def _next_id(ids: dict[str, int]) -> int:
    """Ids are dense from 0 because the ETL indexes arrays by user and hashtag id."""
    return max(ids.values(), default=-1) + 1


def _new_users(first_posts: dict[str, tuple[pd.Timestamp, int]], start: int) -> pd.DataFrame:
    """New accounts in the order of their first post, each created at that post."""
    ordered = sorted(first_posts.items(), key=lambda item: item[1])
    return RAW_TABLES["users"].conform(
        pd.DataFrame(
            {
                "user_id": range(start, start + len(ordered)),
                "username": [account for account, _ in ordered],
                "created_at": pd.to_datetime([when for _, (when, _) in ordered], utc=True),
                "country": "unknown",
                "account_type": "creator",
                "is_verified": False,
            }
        )
    )


def _new_tags(
    first_uses: dict[str, tuple[pd.Timestamp, int, int, str]], start: int
) -> pd.DataFrame:
    """New hashtags in the order of their first use, each with that post's category."""
    ordered = sorted(first_uses.items(), key=lambda item: item[1][:3])
    return RAW_TABLES["hashtags"].conform(
        pd.DataFrame(
            {
                "hashtag_id": range(start, start + len(ordered)),
                "tag": [tag for tag, _ in ordered],
                "category": [first[3] for _, first in ordered],
            }
        )
    )


def _post_rows(part: pd.DataFrame, user_ids: dict[str, int]) -> pd.DataFrame:
    return part.assign(
        user_id=part.account.map(user_ids),
        campaign_id=pd.array([None] * len(part), dtype="Int64"),
    )


def _tag_rows(part: pd.DataFrame, tag_ids: dict[str, int]) -> pd.DataFrame:
    tags = part.hashtags.str.split(" ").explode()
    tags = tags[tags.str.len() > 0]
    return pd.DataFrame(
        {
            "post_id": part.post_id.loc[tags.index].to_numpy(dtype=np.int64),
            "hashtag_id": tags.str[1:].map(tag_ids).to_numpy(dtype=np.int64),
        }
    )


def _platform_rows(part: pd.DataFrame) -> pd.DataFrame:
    """The platform of each post that names one (the others: the settings' default)."""
    known = part[part.platform.notna()]
    return pd.DataFrame(
        {
            "post_id": known.post_id.to_numpy(dtype=np.int64),
            "platform": known.platform.astype(str).to_numpy(dtype=object),
        }
    )


def _follower_rows(part: pd.DataFrame, user_ids: dict[str, int]) -> pd.DataFrame:
    """The audience each post's export reported, as an observation of its account."""
    known = part[part.followers.notna()]
    return pd.DataFrame(
        {
            "post_id": known.post_id.to_numpy(dtype=np.int64),
            "user_id": known.account.map(user_ids).to_numpy(dtype=np.int64),
            "observed_at": known.created_at,
            "followers": known.followers.to_numpy(dtype=np.int64),
        }
    )


class _RejectsFile:
    """The rejected rows as they were, plus where (_row) and why (_reason), appended chunk by
    chunk to a temporary file that becomes `<stem>.rejects.csv` when the import ends. A stale
    file from an earlier run is removed, so that it is never mistaken for this one's."""

    def __init__(self, target: Path):
        self.target = target
        self.tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        self.handle: io.TextIOWrapper | None = None

    def __enter__(self) -> _RejectsFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.handle is not None:  # not finished: the import failed
            self.handle.close()
            self.tmp.unlink(missing_ok=True)

    def add(self, chunk: _Chunk, rejects: dict[int, str]) -> None:
        if not rejects:
            return
        header = self.handle is None
        if self.handle is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.handle = self.tmp.open("w", encoding="utf-8", newline="")
        positions = list(rejects)
        frame = chunk.frame.iloc[positions].copy()
        frame["_row"] = [chunk.rows[position] for position in positions]
        frame["_reason"] = list(rejects.values())
        frame.to_csv(self.handle, index=False, header=header)

    def finish(self) -> Path | None:
        if self.handle is None:
            self.target.unlink(missing_ok=True)
            return None
        self.handle.close()
        self.handle = None
        os.replace(self.tmp, self.target)
        return self.target
