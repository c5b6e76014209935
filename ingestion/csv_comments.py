"""`smap ingest csv PATH --comments`: a comment export (CSV or Parquet) into `comments`.

A mapping (YAML, optional: without one the export uses our names) names the export's columns
for our fields: `post_id` (the platform's post id, as the posts import mapped it), `author`,
`timestamp`, `text`, and optionally `label` (negative / neutral / positive, for training the
sentiment model) and `comment_id`. Comments join posts already imported: the post id is read
as the posts import reads it (`stable_id("external", account, post id)`, the account from a
`post_account` column or `default_account`). Rows that cannot load (a blank field, a bad time,
a post not imported, an unknown label) are counted by reason and skipped; a comment already
imported (same id) is not loaded twice.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ingestion.csv_import import CsvImportError, stable_id
from ingestion.schema import RAW_TABLES
from ingestion.warehouse import Warehouse

REQUIRED = ("post_id", "author", "timestamp", "text")
OPTIONAL = ("label", "comment_id", "post_account")
LABELS = ("negative", "neutral", "positive")
MAX_TEXT = 100_000


@dataclass(frozen=True)
class CommentsResult:
    rows_read: int
    comments_loaded: int
    rows_duplicate: int
    rows_rejected: int
    labelled: int
    rejects_by_reason: dict[str, int] = field(default_factory=dict)


def load_comment_mapping(path: Path | None) -> tuple[dict[str, str], str]:
    """(our field -> export column, default account) from a mapping file."""
    if path is None:
        return {}, "me"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CsvImportError(f"{path.name}: cannot read mapping file ({exc})") from None
    if not isinstance(raw, dict):
        raise CsvImportError(f"{path.name}: top level must be a mapping of keys")
    unknown = sorted(set(raw) - {"columns", "default_account"})
    if unknown:
        raise CsvImportError(f"{path.name}: unknown key {unknown[0]!r} (columns, default_account)")
    columns = raw.get("columns") or {}
    if not isinstance(columns, dict):
        raise CsvImportError(f"{path.name}: columns must map our field to your column")
    bad = sorted(set(columns) - set(REQUIRED) - set(OPTIONAL))
    if bad:
        known = ", ".join(REQUIRED + OPTIONAL)
        raise CsvImportError(f"{path.name}: columns: unknown field {bad[0]!r} (choose {known})")
    return {str(k): str(v) for k, v in columns.items()}, str(raw.get("default_account", "me"))


def _read(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)  # a null cell is blank, not the text "None"
            return frame.astype(object).where(frame.notna(), "").astype(str)
        return pd.read_csv(path, dtype=str, keep_default_na=False, sep=None, engine="python")
    except (OSError, ValueError, pd.errors.ParserError, csv.Error) as exc:  # csv: no delimiter
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CsvImportError(f"{path.name}: cannot read the export ({line})") from None


def import_comments(path: Path, mapping_path: Path | None, warehouse: Warehouse) -> CommentsResult:
    """Append the export's new comments to `comments`; nothing is written when none loads."""
    columns, default_account = load_comment_mapping(mapping_path)
    frame = _read(path)
    named = {f: columns.get(f, f) for f in REQUIRED + OPTIONAL}
    missing = [f"{f} (column {named[f]!r})" for f in REQUIRED if named[f] not in frame.columns]
    if missing:
        raise CsvImportError(f"{path.name}: missing column(s): {', '.join(missing)}")
    explicit = [f for f in OPTIONAL if f in columns and columns[f] not in frame.columns]
    if explicit:
        raise CsvImportError(
            f"{path.name}: column {columns[explicit[0]]!r} for {explicit[0]} is not in the file"
        )
    get = lambda f: (  # noqa: E731
        frame[named[f]].fillna("").astype(str).str.strip()
        if named[f] in frame.columns
        else pd.Series("", index=frame.index)
    )
    post, author, text, label = get("post_id"), get("author"), get("text"), get("label")
    account = get("post_account").where(lambda s: s != "", default_account)
    label = label.str.lower()
    stamp = pd.to_datetime(get("timestamp"), utc=True, errors="coerce", format="mixed")
    posts = (
        warehouse.read("content_posts", columns=["post_id"])
        if warehouse.exists("content_posts")
        else pd.DataFrame({"post_id": []})
    )
    known_posts = set(posts.post_id.astype("int64"))
    post_ids = pd.Series(
        [stable_id("external", a, p) for a, p in zip(account, post, strict=True)],
        index=frame.index,
        dtype="int64",
    )
    reasons = pd.Series("", index=frame.index)
    checks = [
        (post == "", "post_id: blank"),
        (author == "", "author: blank"),
        (text == "", "text: blank"),
        (text.str.len() > MAX_TEXT, f"text: longer than {MAX_TEXT} characters"),
        (stamp.isna(), "timestamp: not a time"),
        ((label != "") & ~label.isin(LABELS), "label: not one of negative, neutral, positive"),
        (~post_ids.isin(known_posts), "post_id: no imported post has this id"),
    ]
    for bad, reason in checks:
        reasons = reasons.where((reasons != "") | ~bad, reason)
    ok = reasons == ""
    given = get("comment_id")
    comment_ids = pd.Series(
        [
            stable_id("comment", a, p, g) if g else stable_id("comment", a, p, w, str(t), x)
            for a, p, g, w, t, x in zip(account, post, given, author, stamp, text, strict=True)
        ],
        index=frame.index,
        dtype="int64",
    )
    existing = (
        set(warehouse.read("comments", columns=["comment_id"]).comment_id.astype("int64"))
        if warehouse.exists("comments")
        else set()
    )
    duplicate = ok & (comment_ids.isin(existing) | comment_ids.duplicated())
    fresh = ok & ~duplicate
    loaded = pd.DataFrame(
        {
            "comment_id": comment_ids[fresh],
            "post_id": post_ids[fresh],
            "user_id": [stable_id("commenter", a) for a in author[fresh]],
            "created_at": stamp[fresh],
            "sentiment": float("nan"),  # a real export carries no score
            "text": text[fresh],
            "label": label[fresh],
        }
    )
    if len(loaded):
        warehouse.append(RAW_TABLES["comments"], loaded)
    return CommentsResult(
        rows_read=len(frame),
        comments_loaded=len(loaded),
        rows_duplicate=int(duplicate.sum()),
        rows_rejected=int((~ok).sum()),
        labelled=int((loaded.label != "").sum()),
        rejects_by_reason=dict(Counter(reasons[~ok])),
    )
