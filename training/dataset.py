"""Training sets from Feast: label rows joined point in time, split by time, fingerprinted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from configs.settings import Settings
from feature_repo.store import open_store
from ingestion.warehouse import open_warehouse
from training.errors import TaskError
from training.task import Task

# of the rows in time order that the two label-window gaps leave: train 60%, validation 20%,
# test 20%
SPLIT_FRACTIONS = (0.6, 0.8)


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


ROW_ID = "smap_row"  # carried through the join so every entity row comes back exactly once


@dataclass(frozen=True)
class TrainingSet:
    task: Task
    frame: pd.DataFrame
    features: list[str]
    categorical: list[str]
    split: Split
    fingerprint: str
    window: dict[str, str]
    # rows whose feature group (a feature view of the service) came back all null, per view;
    # "restored" counts entity rows the offline store dropped and that were added back
    missing: dict[str, int] = field(default_factory=dict)

    def part(self, name: str) -> pd.DataFrame:
        return self.frame.iloc[getattr(self.split, name)]

    @classmethod
    def of(
        cls,
        task: Task,
        frame: pd.DataFrame,
        features: list[str],
        categorical: list[str],
        split: Split,
        missing: dict[str, int] | None = None,
    ) -> TrainingSet:
        """The set of `frame`, fingerprinted on its features, times and targets, its window
        read off the task's time column."""
        return cls(
            task,
            frame,
            features,
            categorical,
            split,
            fingerprint(frame[[*features, "event_timestamp", "target"]]),
            split_window(frame[task.split_on], split),
            missing or {},
        )


@dataclass(frozen=True)
class DataWindow:
    """Which labelled rows a training set takes, by event time: `since` inclusive, `until`
    exclusive; None on a side means no bound (all the data, the default)."""

    since: pd.Timestamp | None = None
    until: pd.Timestamp | None = None

    def key(self) -> str:
        return f"{self.since}|{self.until}"

    def select(self, rows: pd.DataFrame) -> pd.DataFrame:
        stamps = pd.to_datetime(rows.event_timestamp, utc=True)
        keep = np.ones(len(rows), dtype=bool)
        if self.since is not None:
            keep &= (stamps >= _utc(self.since)).to_numpy()
        if self.until is not None:
            keep &= (stamps < _utc(self.until)).to_numpy()
        return rows[keep]


def _utc(when) -> pd.Timestamp:
    stamp = pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


ALL_DATA = DataWindow()


def feature_service(store, service_name: str):
    """The registered feature service, or one line saying how to register it."""
    from feast.errors import FeatureServiceNotFoundException

    try:
        return store.get_feature_service(service_name)
    except FeatureServiceNotFoundException:
        raise TaskError(
            f"feature service {service_name!r} is not registered (run `smap features apply`)"
        ) from None


def feature_groups(service) -> dict[str, list[str]]:
    """Feature names per feature view of a service, in a stable order."""
    return {p.name_to_use(): [f.name for f in p.features] for p in service.feature_view_projections}


def service_features(store, service_name: str) -> list[str]:
    """Feature names a feature service exposes, in a stable order."""
    groups = feature_groups(feature_service(store, service_name))
    return [name for names in groups.values() for name in names]


def time_split(ts: pd.Series, gap_days: int, fractions=SPLIT_FRACTIONS) -> Split:
    """Split rows in time order, newest last, by row counts: train, validation and test get
    `fractions` (60/20/20) of the rows the gaps leave. Rows within `gap_days` (the label
    window) after the last train row and after the last validation row are left out, so no
    label window reaches into the next part. Shares of rows, not of time: on a sparse export
    a time-span split can leave most rows in test and most of test's accounts unseen."""
    order = np.argsort(pd.DatetimeIndex(ts).asi8, kind="stable")
    stamps = pd.DatetimeIndex(ts).asi8[order]
    gap = pd.Timedelta(days=gap_days).value
    n = len(stamps)
    empty = np.array([], dtype=np.int64)
    if n < 3:
        return Split(np.arange(n), empty, empty)
    # Every possible train size k: train is `fractions[0]` of the rows kept, so validation
    # gets k * (f1 - f0) / f0 rows after the first gap; keep the k whose test part (after the
    # second gap) comes closest to its share.
    k = np.arange(1, n)
    kept = k / fractions[0]
    val_start = np.searchsorted(stamps, stamps[k - 1] + gap, side="right")
    val_end = np.minimum(
        n, val_start + np.maximum(1, np.rint(kept * (fractions[1] - fractions[0])))
    )
    val_end = val_end.astype(np.int64)
    valid = val_end > val_start
    test_start = np.full(len(k), n)
    test_start[valid] = np.searchsorted(stamps, stamps[val_end[valid] - 1] + gap, side="right")
    miss = np.abs((n - test_start) - kept * (1 - fractions[1]))
    miss[~valid | (test_start >= n)] = np.inf
    if not np.isfinite(miss).any():
        return Split(np.arange(n), empty, empty)
    best = int(np.argmin(miss))
    return Split(
        np.sort(order[: k[best]]),
        np.sort(order[val_start[best] : val_end[best]]),
        np.sort(order[test_start[best] :]),
    )


def split_by_time(rows: pd.DataFrame, key: str, label_days: int) -> tuple[pd.DataFrame, Split]:
    """`rows` in time order (ties by `key`, so every read gives the same order) and their
    time split."""
    frame = rows.sort_values(["event_timestamp", key], kind="stable").reset_index(drop=True)
    return frame, time_split(frame.event_timestamp, label_days)


def split_window(times: pd.Series, split: Split) -> dict[str, str]:
    """Where each part starts and ends in time, as a run records its window."""
    part = lambda rows: times.iloc[rows]  # noqa: E731
    return {
        "train_start": str(part(split.train).min()),
        "train_end": str(part(split.train).max()),
        "validation_end": str(part(split.validation).max()),
        "test_start": str(part(split.test).min()),
        "test_end": str(part(split.test).max()),
    }


def fingerprint(frame: pd.DataFrame) -> str:
    """Hash of content and schema: the same training frame always gives the same value."""
    digest = hashlib.sha256()
    digest.update(",".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def historical_features(
    store, entity_rows: pd.DataFrame, service_name: str, chunk_rows: int, progress=None
) -> tuple[pd.DataFrame, int]:
    """Point-in-time join in time-ordered chunks (bounded memory), one row per entity row.

    Each entity row carries an id through the join; rows the offline store drops (Feast's
    file store collapses rows sharing a key and timestamp, feast-dev/feast#6787) come back
    with null features, duplicates are removed. Returns the frame in entity-row order and the
    number of rows that had to be restored.
    """
    service = store.get_feature_service(service_name)
    ordered = entity_rows.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    ordered[ROW_ID] = np.arange(len(ordered), dtype=np.int64)
    starts = range(0, len(ordered), chunk_rows)
    parts = []
    for done, i in enumerate(starts, start=1):
        chunk = ordered.iloc[i : i + chunk_rows]
        parts.append(store.get_historical_features(entity_df=chunk, features=service).to_df())
        if progress:
            progress(done, len(starts))
    return complete_rows(ordered, pd.concat(parts, ignore_index=True))


def complete_rows(entity_rows: pd.DataFrame, joined: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Entity rows as given (one each, their own values) with the joined features beside them."""
    features = joined.drop(columns=[c for c in entity_rows.columns if c != ROW_ID])
    expected = entity_rows[ROW_ID].to_numpy()
    got = features[ROW_ID].to_numpy()
    order = np.argsort(got, kind="stable")
    if (
        len(got) == len(expected)
        and (np.diff(expected) > 0).all()
        and (got[order] == expected).all()
    ):
        # every row came back once (the usual answer): put them side by side, no hash merge
        # (on 754k rows of sixty columns the merge's copies took seconds)
        beside = features.iloc[order].drop(columns=ROW_ID).reset_index(drop=True)
        rows = entity_rows.drop(columns=ROW_ID).reset_index(drop=True)
        return pd.concat([rows, beside], axis=1), 0
    features = features.drop_duplicates(ROW_ID)
    restored = len(entity_rows) - int(features[ROW_ID].isin(entity_rows[ROW_ID]).sum())
    frame = entity_rows.merge(features, on=ROW_ID, how="left", validate="one_to_one")
    return frame.drop(columns=ROW_ID), restored


def missing_groups(frame: pd.DataFrame, groups: dict[str, list[str]]) -> dict[str, int]:
    """Rows whose features of one view are all null: nothing was known within the TTL."""
    return {
        view: int(frame[names].isna().all(axis=1).sum())
        for view, names in groups.items()
        if names and set(names) <= set(frame.columns)
    }


def build_training_set(
    settings: Settings,
    task: Task,
    store=None,
    progress=None,
    window: DataWindow = ALL_DATA,
) -> TrainingSet:
    """Label query (rows of `window`) -> Feast historical join on the task's feature service
    -> time split."""
    store = store or open_store(settings)
    groups = feature_groups(feature_service(store, task.feature_service))
    names = [name for group in groups.values() for name in group]
    entity_rows = window.select(task.label_query(open_warehouse(settings)))
    if "platform" in entity_rows:  # a post without one: the platform serving assumes
        entity_rows = entity_rows.assign(
            platform=entity_rows.platform.fillna(settings.platforms.default)
        )
    if entity_rows.empty:
        raise TaskError(f"{task.name}: the training window is empty (no labelled rows)")
    joined, restored = historical_features(
        store, entity_rows, task.feature_service, settings.training.retrieval_chunk_rows, progress
    )
    keys = [c for c in entity_rows.columns if c.endswith("_id") or c == "horizon"]
    order = list(dict.fromkeys([task.split_on, "event_timestamp", *keys]))
    frame = joined.sort_values(order, kind="stable").reset_index(drop=True)  # deterministic
    features = names + list(task.passthrough)
    categorical = [c for c in features if frame[c].dtype == object]
    split = time_split(frame[task.split_on], task.label_days)
    if min(len(split.train), len(split.validation), len(split.test)) == 0:
        raise TaskError(
            f"{task.name}: the training window is too short to split by time with a "
            f"{task.label_days}-day gap ({len(frame)} rows from "
            f"{frame.event_timestamp.min():%Y-%m-%d} to {frame.event_timestamp.max():%Y-%m-%d})"
        )
    missing = {**missing_groups(frame, groups), "restored": restored}
    return TrainingSet.of(task, frame, features, categorical, split, missing)
