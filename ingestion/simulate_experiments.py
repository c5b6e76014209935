"""Planted content experiments: posts randomised to variants A and B with a known true lift.

Each planted experiment enrols, with probability `share`, the posts published in its window
(posts already in another experiment stay there) and gives each enrolled post variant A or B
at random. Its true relative lift L is planted by binomial thinning of the interaction counts:
for L >= 0 every count of an A post is thinned to 1 / (1 + L) of itself, for L < 0 every count
of a B post to 1 + L of itself. Thinning keeps each count binomial and scales its expectation
exactly, so mean engagement rate (interactions / reach) of B over A is 1 + L in expectation,
whatever the post's other drivers. The name says what such a variant stands for (a caption
style, a posting hour); the simulator plants the effect, not its mechanism.

Randomness comes from `default_rng([seed, EXPERIMENT_STREAM])`, so the rest of the platform is
drawn exactly as without experiments; only the enrolled posts' counts (and their comment rows
and truth rates) change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

EXPERIMENT_STREAM = 4242
COUNTS = ("likes", "comments", "shares", "saves")


@dataclass(frozen=True)
class PlantedExperiment:
    name: str
    true_lift: float  # relative lift of B's mean engagement rate over A's
    start: float  # window start, as a fraction of the simulated days
    end: float
    share: float  # probability that a post published in the window is enrolled


PLANTED = (
    PlantedExperiment("caption_style", 0.10, 0.55, 1.0, 0.30),
    PlantedExperiment("posting_hour", -0.08, 0.55, 1.0, 0.45),
    PlantedExperiment("aa_check", 0.0, 0.55, 1.0, 0.55),
)


def _thin(counts: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    return rng.binomial(counts, keep).astype(np.int64)


def plant_experiments(
    tables: dict[str, pd.DataFrame],
    seed: int,
    planted: tuple[PlantedExperiment, ...] = PLANTED,
) -> dict[str, pd.DataFrame]:
    """Tables with `experiment`/`variant` on content_posts (null outside any experiment), the
    planted lifts applied, and `truth_experiments`; with `planted=()` the tables as they are
    (the warehouse writes the two columns null)."""
    if not planted:
        return tables
    posts = tables["content_posts"].copy()
    experiment = np.full(len(posts), None, dtype=object)
    variant = np.full(len(posts), None, dtype=object)
    rows = []
    if len(posts):
        rng = np.random.default_rng([seed, EXPERIMENT_STREAM])
        created = posts.created_at
        first, last = created.min().normalize(), created.max().normalize() + pd.Timedelta(days=1)
        span = last - first
        truth = tables["truth_posts"].set_index("post_id")
        for spec in planted:
            start, end = first + spec.start * span, first + spec.end * span
            window = ((created >= start) & (created < end)).to_numpy()
            enrolled = window & (experiment == None) & (rng.random(len(posts)) < spec.share)  # noqa: E711
            is_b = rng.random(len(posts)) < 0.5
            experiment[enrolled] = spec.name
            variant[enrolled] = np.where(is_b[enrolled], "B", "A")
            thinned = enrolled & (~is_b if spec.true_lift >= 0 else is_b)
            keep = 1 / (1 + spec.true_lift) if spec.true_lift >= 0 else 1 + spec.true_lift
            for column in COUNTS:
                values = posts[column].to_numpy()
                values[thinned] = _thin(values[thinned], keep, rng)
                posts[column] = values
            ids = posts.post_id.to_numpy()[thinned]
            truth.loc[ids, "expected_engagement_rate"] *= keep
            truth.loc[ids, "expected_share_rate"] *= keep
            rows.append((spec.name, spec.true_lift, start, end, int(enrolled.sum())))
        tables = {**tables, "truth_posts": truth.reset_index()}
        if "comments" in tables:  # a post keeps no more comment rows than its count says
            comments = tables["comments"]
            rank = comments.groupby("post_id").cumcount().to_numpy()
            allowed = posts.set_index("post_id").comments.reindex(comments.post_id).to_numpy()
            tables["comments"] = comments[rank < allowed].reset_index(drop=True)
    posts["experiment"], posts["variant"] = experiment, variant
    truth_experiments = pd.DataFrame(
        rows, columns=["experiment", "true_lift", "start_at", "end_at", "posts"]
    )
    return {**tables, "content_posts": posts, "truth_experiments": truth_experiments}
