"""Model inputs from online lookups: entity rows for a request, documented defaults for what the
online store does not know, and the list of what was defaulted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from configs.platforms import PlatformSettings
from feature_repo.drafts import draft_keys, hashtag_text, parse_hashtags
from feature_repo.entities import MAX_DRAFT_TAGS

NEVER = 999  # the ETL's "days since" value for something that never happened

# What a brand-new account looks like in the training data: used for an author the online
# store does not know. Unknown rates stay NaN: the models learned what a missing rate means.
AUTHOR_DEFAULTS: dict[str, float] = {
    "followers": 0,
    "follower_growth_7d": 0,
    "posts_7d": 0,
    "posts_28d": 0,
    "engagement_rate_7d": np.nan,
    "engagement_rate_28d": np.nan,
    "avg_reach_28d": np.nan,
    "active_days_7d": 0,
    "active_days_28d": 0,
    "days_since_last_activity": NEVER,
    "days_since_last_post": NEVER,
    "likes_given_28d": 0,
    "comments_given_28d": 0,
    "account_age_days": 0,
    "engagement_rate_all": np.nan,
    "matured_posts_all": 0,
    "active_days_3d": 0,
    "active_days_14d": 0,
    "usual_active_rate": np.nan,
}
AUTHOR_PROBE = "followers"  # null only when the author has no row in the online store
# an unknown hashtag is left out of the draft's hashtag aggregates (0 when none is known)
SLOT_PROBES = [f"hashtag_slot_{i}:tag{i}_momentum" for i in range(1, MAX_DRAFT_TAGS + 1)]


def unix_seconds(when: datetime) -> int:
    return int(when.timestamp())


def draft_rows(
    user_ids: Sequence[int],
    post_types: Sequence[str],
    categories: Sequence[str],
    hashtags: Sequence[Sequence[str]],
    captions: Sequence[str],
    planned: Sequence[datetime],
    paid: Sequence[bool],
    platforms: Sequence[str] | None = None,
) -> dict[str, list]:
    """Columnar entity rows for a draft feature service (the same keys training joined on);
    `platforms` None: every draft on the platform table's default."""
    texts = [hashtag_text(parse_hashtags(" ".join(tags))) for tags in hashtags]
    return {
        "user_id": [int(u) for u in user_ids],
        "category": list(categories),
        "post_type": list(post_types),
        "is_paid": [int(p) for p in paid],
        "posted_at": [unix_seconds(t) for t in planned],
        "caption": list(captions),
        "hashtags": texts,
        **draft_keys(categories, texts),
        "platform": list(platforms or [PlatformSettings().default] * len(user_ids)),
    }


def missing_per_row(online: dict[str, list], rows: dict[str, list]) -> list[list[str]]:
    """Per row: `author:<id>` when the author is unknown, `hashtag:<tag>` per unknown tag."""
    n = len(rows["user_id"])
    out: list[list[str]] = [[] for _ in range(n)]
    if AUTHOR_PROBE in online:
        for i, value in enumerate(online[AUTHOR_PROBE]):
            if value is None:
                out[i].append(f"author:{rows['user_id'][i]}")
    for slot in range(1, MAX_DRAFT_TAGS + 1):
        values, tags = online.get(f"tag{slot}_momentum"), rows.get(f"tag_{slot}")
        if values is None or tags is None:
            continue
        for i, (value, tag) in enumerate(zip(values, tags, strict=True)):
            if tag and value is None:
                out[i].append(f"hashtag:{tag}")
    return out


def unknown_authors(online: dict[str, list]) -> list[int]:
    """Rows whose author has no row in the online store."""
    return [i for i, v in enumerate(online.get(AUTHOR_PROBE, ())) if v is None]


def feature_columns(online: dict[str, list], features: Sequence[str]) -> list[list]:
    """The model's input as plain columns (one list per feature, in `features` order): online
    values, author defaults where the author is unknown. `model_frame` without pandas."""
    columns = [online[name] for name in features]
    unknown = unknown_authors(online)
    if unknown:
        for j, name in enumerate(features):
            if name in AUTHOR_DEFAULTS:
                column = columns[j] = list(columns[j])
                for i in unknown:
                    column[i] = AUTHOR_DEFAULTS[name]
    return columns


def encode(columns: Sequence[Sequence], features: Sequence[str], encoder) -> np.ndarray:
    """The estimator's float matrix straight from plain columns: what
    `encoder.transform(training.packaging.input_frame(model_frame(...)))` computes (numbers
    as float, None as NaN; categories as `str(value)`, one-hot in the encoder's order; then
    the encoder's impute and scale), without building a DataFrame per request."""
    position = {name: j for j, name in enumerate(features)}
    n = len(columns[0]) if columns else 0
    width = len(encoder.numeric) + sum(len(v) for v in encoder.categories.values())
    x = np.empty((n, width))
    for k, name in enumerate(encoder.numeric):
        x[:, k] = np.asarray(columns[position[name]], dtype=float)
    k = len(encoder.numeric)
    for name, values in encoder.categories.items():
        text = np.asarray([str(v) for v in columns[position[name]]], dtype=object)
        x[:, k : k + len(values)] = text[:, None] == np.asarray(values, dtype=object)[None, :]
        k += len(values)
    if not encoder.scale:
        return x
    x = np.where(np.isnan(x), encoder.medians, x)
    return (x - encoder.means) / encoder.stds


def model_frame(online: dict[str, list], features: Sequence[str]) -> pd.DataFrame:
    """The model's input frame: online values, author defaults where the author is unknown."""
    frame = pd.DataFrame({name: online[name] for name in features})
    if AUTHOR_PROBE in online:
        unknown = pd.Series([v is None for v in online[AUTHOR_PROBE]])
        if unknown.any():
            for name, default in AUTHOR_DEFAULTS.items():
                if name in frame:
                    frame[name] = frame[name].astype(object).where(~unknown, default)
    return frame


EPOCH = date(1970, 1, 1)  # `origin_day` and `usage_day` count days from it


class BadStart(ValueError):
    """A forecast's days the model cannot answer for the history the store holds (HTTP 422);
    the message names the field."""


class StartPassed(BadStart):
    """A forecast asked to start on or before the last day of usage the store holds."""


class BeyondHorizon(BadStart):
    """A forecast asked for a day further after the stored history than the model's longest
    trained horizon."""


class ForecastPlan:
    """The request rows of a hashtag forecast, as `OnlineFeatures.fetch_expanded` wants
    them: per hashtag, one row per day from `start` (default: the day after the last day of
    usage the online store holds; today for a hashtag it does not know), its horizon counted
    from that last day (which the history's lags end on) and that day as the origin. A
    hashtag without history forecasts from zero usage with the origin the day before `start`.

    `longest`: the longest horizon the model was trained for; a row further from its origin
    is refused (`BeyondHorizon`), not extrapolated (None: any)."""

    def __init__(
        self,
        tags: Sequence[str],
        horizon: int,
        start: date | None,
        today: date,
        longest: int | None = None,
    ):
        self.tags, self.horizon, self.start, self.today = list(tags), horizon, start, today
        self.longest = longest
        self.days: list[date] = []  # the forecast day of every row, filled by the call

    def __call__(self, found: dict[str, list]) -> tuple[list[int], dict[str, list]]:
        index, horizons, origins, self.days = [], [], [], []
        for i, (tag, known) in enumerate(zip(self.tags, found["usage_day"], strict=True)):
            if known is None:
                first = self.start or self.today
                origin = (first - EPOCH).days - 1
            else:
                origin = int(known)
                first = self.start or EPOCH + timedelta(days=origin + 1)
                last = EPOCH + timedelta(days=origin)
                if (first - EPOCH).days <= origin:
                    raise StartPassed(
                        f"start: the online store holds usage of #{tag} up to {last}; a "
                        "forecast starts after that day"
                    )
                furthest = (first - EPOCH).days + self.horizon - 1 - origin
                if self.longest is not None and furthest > self.longest:
                    field = "start" if self.start else "horizon"
                    raise BeyondHorizon(
                        f"{field}: the online store holds usage of #{tag} up to {last}; the "
                        f"trend champion forecasts at most {self.longest} days past it (up to "
                        f"{last + timedelta(days=self.longest)}), and start + horizon - 1 is "
                        f"{furthest} days past it"
                    )
            for j in range(self.horizon):
                day = first + timedelta(days=j)
                index.append(i)
                self.days.append(day)
                horizons.append((day - EPOCH).days - origin)
                origins.append(origin)
        return index, {"horizon": horizons, "origin_day": origins}


def missing_history(tags: Sequence[str], usage_days: Sequence) -> list[list[str]]:
    """Per hashtag: `hashtag:<tag>` when the online store holds no usage history for it."""
    return [[f"hashtag:{t}"] if d is None else [] for t, d in zip(tags, usage_days, strict=True)]
