"""How audiences feel: each comment's class from the sentiment champion (VADER when none is
registered), per post and per author, and the dashboard's sentiment section (share of each
class over time, the most negative threads).

Comments are scored when the page is built; the newest MAX_SCORED are, so a page over a large
platform stays quick. Net sentiment is the share of positive comments minus the share of
negative ones, in [-1, 1].
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from configs.settings import Settings

log = logging.getLogger("smap.sentiment")

MAX_SCORED = 50_000  # newest comments scored for the page
MIN_THREAD_COMMENTS = 5  # comments a post needs to be ranked among the most negative threads
TOP_THREADS = 10
CLASSES = ("negative", "neutral", "positive")
COLOURS = {"negative": "#c62828", "neutral": "#9e9e9e", "positive": "#2e7d32"}


@dataclass(frozen=True)
class Scorer:
    """Classes of texts, and which model gave them (for the page's note)."""

    model: object  # training.sentiment.SentimentModel
    name: str

    def classes(self, texts: pd.Series) -> np.ndarray:
        frame = pd.DataFrame({"text": texts.fillna("").astype(str).to_numpy()})
        return np.asarray(self.model.predict_frame(frame), dtype=object)  # type: ignore[attr-defined]


def champion_scorer(settings: Settings, registry_exists: bool) -> Scorer:
    """The sentiment champion, or VADER when the registry has none or cannot be read."""
    from training import sentiment  # MLflow, scikit-learn and VADER: only when a page is built

    if registry_exists:
        import mlflow

        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.mlflow.request_timeout_seconds)
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.mlflow.request_max_retries)
        uri = settings.mlflow_tracking_uri
        try:
            client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
            found = client.get_model_version_by_alias(sentiment.TASK, "champion")
            source = client.get_model_version_download_uri(sentiment.TASK, found.version)
            model = mlflow.pyfunc.load_model(source).unwrap_python_model()
            family = getattr(model, "family", "")
            return Scorer(model, f"the sentiment champion (version {found.version}, {family})")
        except Exception as exc:  # no champion, or a registry that does not answer
            log.info("sentiment: scoring with VADER (%s)", str(exc).strip().splitlines()[:1])
    return Scorer(sentiment.lexicon_model(), "VADER (no sentiment champion registered)")


def comment_classes(comments: pd.DataFrame, scorer: Scorer) -> pd.DataFrame:
    """The newest MAX_SCORED comments with a `sentiment` class each."""
    newest = comments.sort_values("created_at", kind="stable").tail(MAX_SCORED)
    return newest.assign(sentiment=scorer.classes(newest.text)).reset_index(drop=True)


def _shares(scored: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    counts = pd.crosstab(
        [scored[c] for c in ([by] if isinstance(by, str) else by)], scored.sentiment
    )
    counts = counts.reindex(columns=list(CLASSES), fill_value=0)
    total = counts.sum(axis=1)
    out = counts.div(total, axis=0).add_suffix("_share")
    out["comments"] = total
    out["net_sentiment"] = out.positive_share - out.negative_share
    return out.reset_index()


def post_sentiment(scored: pd.DataFrame) -> pd.DataFrame:
    """Per post: comments scored, the share of each class, net sentiment."""
    return _shares(scored, "post_id")


def author_sentiment(scored: pd.DataFrame, posts: pd.DataFrame) -> pd.DataFrame:
    """Per author: the same over the comments on all of the author's posts."""
    authored = scored.merge(
        posts[["post_id", "user_id"]].rename(columns={"user_id": "author_id"}), on="post_id"
    )
    return _shares(authored, "author_id")


def daily_sentiment(scored: pd.DataFrame) -> pd.DataFrame:
    """Per UTC day: the share of each class among that day's comments."""
    day = pd.to_datetime(scored.created_at, utc=True).dt.tz_localize(None).dt.normalize()
    return _shares(scored.assign(date=day), "date").sort_values("date", ignore_index=True)


def negative_threads(post_shares: pd.DataFrame, posts: pd.DataFrame) -> pd.DataFrame:
    """Posts with at least MIN_THREAD_COMMENTS scored comments, most negative first."""
    ranked = post_shares[post_shares.comments >= MIN_THREAD_COMMENTS].merge(
        posts[["post_id", "user_id", "caption"]], on="post_id", how="left"
    )
    ranked = ranked.sort_values(
        ["negative_share", "comments", "post_id"], ascending=[False, False, True]
    )
    return ranked.head(TOP_THREADS).reset_index(drop=True)


def section_parts(
    comments: pd.DataFrame | None, posts: pd.DataFrame | None, scorer: Scorer | None
) -> tuple[str, list, pd.DataFrame | None, dict[str, pd.DataFrame]]:
    """The dashboard section's note, charts, table shown and exports (`analytics/report.py`
    wraps them): class shares per day, and the most negative threads."""
    if comments is None or posts is None or scorer is None:
        return "No comments yet: run `smap simulate` or `smap ingest csv`.", [], None, {}
    comments = comments[comments.text.fillna("").astype(str).str.strip() != ""]
    if comments.empty:
        return "No comment text yet: import comments (`smap ingest csv --comments`).", [], None, {}
    import plotly.graph_objects as go

    scored = comment_classes(comments, scorer)
    daily = daily_sentiment(scored)
    over_time = go.Figure()
    for c in CLASSES:
        over_time.add_trace(
            go.Scatter(
                x=daily.date,
                y=daily[f"{c}_share"].rolling(7, min_periods=1).mean(),
                name=c,
                mode="lines",
                line={"color": COLOURS[c]},
                stackgroup="shares",
            )
        )
    over_time.update_layout(
        height=320,
        template="plotly_white",
        margin={"t": 30, "b": 40, "l": 10, "r": 10},
        yaxis={"title": "share of comments (7-day mean)", "tickformat": ".0%"},
    )
    per_post = post_sentiment(scored)
    threads = negative_threads(per_post, posts)
    bars = go.Figure(
        go.Bar(
            x=threads.negative_share[::-1],
            y=[f"post {p}" for p in threads.post_id][::-1],
            orientation="h",
            marker={"color": COLOURS["negative"]},
            customdata=threads.comments[::-1],
            hovertemplate="%{y}: %{x:.0%} negative of %{customdata} comments<extra></extra>",
        )
    )
    bars.update_layout(
        height=60 + 30 * max(len(threads), 1),
        template="plotly_white",
        margin={"t": 30, "b": 40, "l": 10, "r": 10},
        xaxis={"title": "share of negative comments", "tickformat": ".0%"},
    )
    shown = threads[["post_id", "user_id", "comments", "negative_share", "net_sentiment"]]
    shown = shown.assign(caption=threads.caption.fillna("").astype(str).str.slice(0, 80))
    note = (
        f"{len(scored):,} newest comments classified by {scorer.name}; share of each class "
        f"per day (7-day mean), and the posts with at least {MIN_THREAD_COMMENTS} comments "
        "whose comments are most negative."
    )
    exports = {
        "post_sentiment": per_post,
        "author_sentiment": author_sentiment(scored, posts),
        "daily_sentiment": daily,
    }
    return note, [over_time, bars], shown, exports
