"""The recommendation model: implicit-feedback ALS (the `implicit` library) over who
interacts with whose posts, blended with freshness, popularity so far, the follow graph
and the viewer's category profile; trained, logged, registered and gated against popularity.

Items are authors, not posts: a recommendation is for a fresh post (published in the last
WINDOW_DAYS), which no interaction has reached when it is asked for, so the factor model
scores the post's author for the viewer (likes, comments and follows before the cutoff, as
implicit confidence). A logistic blend, fitted on the validation days' likes against
sampled candidates of the same pools, turns the factor score and five observable features
of the candidate into one ranking score.

Evaluation: every like of the held-out days is a query (viewer, time, liked post); the pool
is every post of the WINDOW_DAYS before it not by the viewer; hit-rate@k is the share of
queries whose post is among the top k, NDCG@k the mean of 1/log2(1 + rank) over those. The
gate scores a version on the held-out pools and refuses it unless it beats popularity
(likes and comments received so far, newest first on ties) there.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from typing import cast

import mlflow
import numpy as np
import pandas as pd
import scipy.sparse as sp
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from configs.settings import Settings
from ingestion.activity import read_activity
from ingestion.simulate_interests import like_probability
from ingestion.warehouse import Warehouse
from training import tags as tag
from training.dataset import fingerprint
from training.descriptions import experiment_note, model_description, version_description
from training.errors import TaskError
from training.registry import Decision, champion_entry, promote
from training.tasks.recommendation import TASK as RECOMMENDATION
from training.tasks.recommendation import popularity
from training.tracking import (
    experiment_for,
    git_commit,
    log_pyfunc,
    register_version,
    use_tracking,
)

K = 10
WINDOW_DAYS = 3  # a candidate is a post of the last WINDOW_DAYS
HOLDOUT_DAYS = 7  # the gate's and the evaluation's held-out days
VALIDATION_DAYS = 7  # before them: the days the blend and the grid are fitted on
MAX_QUERIES = 2000  # held-out likes per evaluation (a seeded sample beyond)
NEGATIVES = 50  # sampled candidates per validation like the blend is fitted on
FOLLOW_WEIGHT = 3.0  # implicit confidence of a follow, in interactions
DAY_NS = 86_400 * 10**9
FEATURES = ["als", "category_share", "age_days", "popularity", "follows", "newest"]
# the factor model's settings tried on the validation days (factors, regularization, alpha)
GRID = ((32, 0.05, 1.0), (64, 0.05, 1.0), (64, 0.1, 5.0))
REQUIREMENTS = ("mlflow", "numpy", "pandas", "scikit-learn")


@dataclass(frozen=True)
class Interactions:
    """What the recommender reads: posts by time, follows, likes and comments, and (on
    simulated data) the latent interests behind the expected affinity."""

    posts: pd.DataFrame  # post_id, user_id, created_at, category; sorted by created_at
    follows: pd.DataFrame  # follower_id, followee_id, created_at
    acts: pd.DataFrame  # user_id, post_id, created_at, kind; sorted by created_at
    truth: pd.DataFrame | None  # truth_interests, or None

    @property
    def now(self) -> pd.Timestamp:
        return self.posts.created_at.max()


def read_interactions(warehouse: Warehouse) -> Interactions:
    """Posts, follows, likes, comments (and truth_interests when present) from the warehouse."""
    activity = read_activity(warehouse, ["post_id", "user_id", "created_at", "category"])
    posts, acts = activity.posts, activity.interactions
    if posts.empty:
        raise TaskError("recommendation: no posts in the warehouse (run `smap simulate`)")
    if acts.empty:
        raise TaskError("recommendation: no likes or comments in the warehouse")
    acts = acts[acts.post_id.isin(posts.post_id)]
    acts = acts.sort_values("created_at", kind="stable").reset_index(drop=True)
    truth = warehouse.read("truth_interests") if warehouse.exists("truth_interests") else None
    return Interactions(posts, activity.follows, acts, truth)


# ---- the held-out pools -------------------------------------------------------------------------


class Pools:
    """The candidates of a query (viewer, time) with their observable features, on arrays
    built once: every post of the WINDOW_DAYS before the time not by the viewer."""

    def __init__(self, data: Interactions):
        posts, acts = data.posts, data.acts
        self.post_ids = posts.post_id.to_numpy(np.int64)
        self.categories = posts.category.to_numpy()
        self.times = pd.DatetimeIndex(posts.created_at).asi8
        self.author = posts.user_id.to_numpy(np.int64)
        self.position = pd.Series(np.arange(len(posts)), index=self.post_ids)
        self.act_times = pd.DatetimeIndex(acts.created_at).asi8
        self.act_pos = self.position.loc[acts.post_id].to_numpy()
        self.by_follower = {
            int(u): (g.followee_id.to_numpy(np.int64), pd.DatetimeIndex(g.created_at).asi8)
            for u, g in data.follows.groupby("follower_id")
        }

    def followees(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """Accounts `user` follows and since when (ns), at any time."""
        return self.by_follower.get(int(user), (np.array([], np.int64), np.array([], np.int64)))

    def window(self, at: int) -> tuple[int, int]:
        """Positions [lo, hi) of the posts of the WINDOW_DAYS before `at` (ns)."""
        lo, hi = np.searchsorted(self.times, [at - WINDOW_DAYS * DAY_NS, at], side="left")
        return int(lo), int(hi)

    def frame(self, user: int, at: int) -> tuple[pd.DataFrame, np.ndarray]:
        """The viewer's pool at `at` (ns) with its features, and the pool's post positions."""
        lo, hi = self.window(at)
        rows = np.arange(lo, hi)
        pool = rows[self.author[rows] != user]
        a, b = np.searchsorted(self.act_times, [at - WINDOW_DAYS * DAY_NS - DAY_NS, at], "left")
        seen = self.act_pos[a:b]
        counts = np.bincount(seen[(seen >= lo) & (seen < hi)] - lo, minlength=hi - lo)
        followees, since = self.followees(user)
        # the newest post of each author in the pool (the pool is in time order)
        last = len(pool) - 1 - np.unique(self.author[pool][::-1], return_index=True)[1]
        newest = np.zeros(len(pool), bool)
        newest[last] = True
        frame = pd.DataFrame(
            {
                "user_id": np.full(len(pool), user, np.int64),
                "post_id": self.post_ids[pool],
                "author_id": self.author[pool],
                "category": self.categories[pool],
                "age_days": ((at - self.times[pool]) / DAY_NS).astype(np.float32),
                "popularity": counts[pool - lo].astype(np.float32),
                "follows": np.isin(self.author[pool], followees[since <= at]),
                "newest": newest,
            }
        )
        return frame, pool


def ranking_frame(
    data: Interactions,
    start: pd.Timestamp,
    end: pd.Timestamp,
    max_queries: int = MAX_QUERIES,
    seed: int = 42,
) -> pd.DataFrame:
    """One row per (query, candidate): every like in [start, end) whose post is in its pool
    (at most `max_queries`, a seeded sample), with the candidates' observable features, the
    expected affinity (`oracle`, NaN without truth) and whether it is the liked post."""
    pools = Pools(data)
    acts = data.acts
    likes = acts[(acts.kind == "like") & (acts.created_at >= start) & (acts.created_at < end)]
    if len(likes) > max_queries:
        pick = np.random.default_rng(seed).choice(len(likes), max_queries, replace=False)
        likes = likes.iloc[np.sort(pick)]
    interest = quality = None
    if data.truth is not None:
        interest = {
            int(u): dict(zip(g.category, g.interest, strict=True))
            for u, g in data.truth.groupby("user_id")
        }
        quality = data.truth.drop_duplicates("user_id").set_index("user_id").quality
    frames = []
    for query, (user, at, liked) in enumerate(
        zip(
            likes.user_id.to_numpy(np.int64),
            pd.DatetimeIndex(likes.created_at).asi8,
            pools.position.loc[likes.post_id].to_numpy(),
            strict=True,
        )
    ):
        frame, pool = pools.frame(int(user), int(at))
        if not np.isin(liked, pool):
            continue  # a like of the viewer's own post, or of an older one: no pool holds it
        frame.insert(0, "query", np.int32(query))
        frame["target"] = pool == liked
        frame["oracle"] = np.nan
        if interest is not None and quality is not None:
            lo, hi = pools.window(int(at))
            followees, since = pools.followees(int(user))
            p = like_probability(
                data.posts.iloc[lo:hi],
                pd.Timestamp(at, tz="UTC"),
                interest.get(int(user), {}),
                quality,
                pd.DataFrame({"followee_id": followees, "created_at": pd.to_datetime(since)}),
                len(followees),
            )
            frame["oracle"] = p[pool - lo]
        frames.append(frame)
    if not frames:
        raise TaskError(
            f"recommendation: no likes between {start} and {end} whose post was reachable "
            "(simulate more days, or fewer held-out days)"
        )
    return pd.concat(frames, ignore_index=True)


def ranks(frame: pd.DataFrame, scores: np.ndarray) -> np.ndarray:
    """Per query, the liked post's rank under `scores` (1 = first; newest first on ties)."""
    score = np.nan_to_num(np.asarray(scores, float), nan=-np.inf)
    query = frame["query"].to_numpy()
    target = frame.target.to_numpy()
    age = frame.age_days.to_numpy()
    t_query = query[target]
    t_score = pd.Series(score[target], index=t_query).reindex(query).to_numpy()
    t_age = pd.Series(age[target], index=t_query).reindex(query).to_numpy()
    ahead = (score > t_score) | ((score == t_score) & (age < t_age))
    return np.bincount(query, weights=ahead, minlength=query.max() + 1)[t_query] + 1


def ranking_metrics(frame: pd.DataFrame, scores, k: int = K) -> dict[str, float]:
    """hit_rate_at_k and ndcg_at_k over the frame's queries."""
    rank = ranks(frame, scores)
    return {
        f"hit_rate_at_{k}": float(np.mean(rank <= k)),
        f"ndcg_at_{k}": float(np.mean(np.where(rank <= k, 1.0 / np.log2(rank + 1.0), 0.0))),
    }


# ---- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Factors:
    users: pd.Index  # user ids of the rows of `user_factors`
    authors: pd.Index  # user ids of the rows of `author_factors`
    user_factors: np.ndarray
    author_factors: np.ndarray
    categories: pd.Index
    category_share: np.ndarray  # users x categories: share of the user's interactions


def fit_factors(
    data: Interactions, before: pd.Timestamp, params: tuple[int, float, float], seed: int
) -> Factors:
    """ALS on the viewer x author matrix of likes, comments and follows before `before`."""
    from implicit.als import AlternatingLeastSquares  # type: ignore[import-untyped]
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    acts = data.acts[data.acts.created_at < before]
    acts = acts.merge(
        data.posts[["post_id", "user_id", "category"]].rename(columns={"user_id": "author_id"}),
        on="post_id",
    )
    follows = data.follows[data.follows.created_at < before]
    pairs = pd.concat(
        [
            pd.DataFrame({"u": acts.user_id, "a": acts.author_id, "w": 1.0}),
            pd.DataFrame({"u": follows.follower_id, "a": follows.followee_id, "w": FOLLOW_WEIGHT}),
        ],
        ignore_index=True,
    )
    users = pd.Index(np.unique(pairs.u.to_numpy(np.int64)))
    authors = pd.Index(np.unique(pairs.a.to_numpy(np.int64)))
    matrix = sp.csr_matrix(
        (
            pairs.w.to_numpy(np.float32),
            (users.get_indexer(pairs.u.to_numpy()), authors.get_indexer(pairs.a.to_numpy())),
        ),
        shape=(len(users), len(authors)),
    )
    factors, regularization, alpha = params
    with threadpool_limits(1, "blas"):  # implicit asks for a single-threaded BLAS
        als = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=15,
            random_state=seed,
            num_threads=1,
        )
        als.fit(matrix, show_progress=False)
    categories = pd.Index(sorted(data.posts.category.unique()))
    counts = np.zeros((len(users), len(categories)))
    np.add.at(
        counts,
        (users.get_indexer(acts.user_id.to_numpy()), categories.get_indexer(acts.category)),
        1.0,
    )
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    return Factors(
        users,
        authors,
        np.asarray(als.user_factors),
        np.asarray(als.item_factors),
        categories,
        share,
    )


def feature_matrix(factors: Factors, frame: pd.DataFrame, chunk: int = 500_000) -> np.ndarray:
    """The blend's inputs for each (viewer, candidate) row of `frame`."""
    u = factors.users.get_indexer(frame.user_id.to_numpy())
    a = factors.authors.get_indexer(frame.author_id.to_numpy())
    als = np.zeros(len(frame))
    for s in range(0, len(frame), chunk):
        uu, aa = u[s : s + chunk], a[s : s + chunk]
        known = (uu >= 0) & (aa >= 0)
        part = np.zeros(len(uu))
        part[known] = np.einsum(
            "ij,ij->i", factors.user_factors[uu[known]], factors.author_factors[aa[known]]
        )
        als[s : s + chunk] = part
    c = factors.categories.get_indexer(frame.category.to_numpy())
    share = np.where((u >= 0) & (c >= 0), factors.category_share[np.maximum(u, 0), c], 0.0)
    share = np.where(u >= 0, share, 1.0 / max(len(factors.categories), 1))
    return np.column_stack(
        [
            als,
            np.log(share + 0.01),
            frame.age_days.to_numpy(float),
            np.log1p(frame.popularity.to_numpy(float)),
            frame.follows.to_numpy(float),
            frame.newest.to_numpy(float),
        ]
    )


class AffinityModel(PythonModel):
    """Viewer x author factors and a linear blend: a ranking score per (viewer, candidate)
    row (user_id, author_id, category, age_days, popularity, follows, newest)."""

    def __init__(self, factors: Factors, coef: np.ndarray, params: tuple[int, float, float]):
        self.factors, self.coef, self.params = factors, coef, params

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return feature_matrix(self.factors, frame) @ self.coef

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.predict_frame(model_input)


def fit_blend(factors: Factors, frame: pd.DataFrame, seed: int) -> np.ndarray:
    """Logistic weights of the features: the liked post against NEGATIVES sampled
    candidates of its pool (subsampling only shifts the intercept, which ranking ignores)."""
    rng = np.random.default_rng(seed)
    keep = frame.target.to_numpy() | (rng.random(len(frame)) < NEGATIVES / _pool_size(frame))
    x = feature_matrix(factors, frame[keep])
    scale = np.maximum(x.std(axis=0), 1e-9)
    fit = LogisticRegression(C=1.0, max_iter=500).fit(x / scale, frame.target.to_numpy()[keep])
    return cast(np.ndarray, fit.coef_[0] / scale)


def _pool_size(frame: pd.DataFrame) -> float:
    return max(len(frame) / max(frame["query"].nunique(), 1), 1.0)


@dataclass(frozen=True)
class RecommenderResult:
    run_id: str
    version: int
    params: tuple[int, float, float]
    validation: dict[str, float]
    holdout: dict[str, dict[str, float]]  # method -> hit_rate_at_10, ndcg_at_10
    queries: int
    decision: Decision


def split_days(data: Interactions, holdout_days: int = HOLDOUT_DAYS) -> dict[str, pd.Timestamp]:
    """Validation and held-out bounds, ending at the data's present."""
    end = data.now + pd.Timedelta(seconds=1)
    test = end - pd.Timedelta(days=holdout_days)
    return {"valid": test - pd.Timedelta(days=VALIDATION_DAYS), "test": test, "end": end}


def choose(data: Interactions, days: dict[str, pd.Timestamp], seed: int, max_queries: int):
    """The grid's best factor settings and their blend, on the validation days (blend fitted
    on one half of the queries, scored on the other)."""
    frame = ranking_frame(data, days["valid"], days["test"], max_queries, seed)
    half = frame["query"].to_numpy() % 2 == 0
    fit_part, score_part = frame[half], frame[~half]
    best: tuple[float, tuple[int, float, float], Factors, dict[str, float]] | None = None
    for params in GRID:
        factors = fit_factors(data, days["valid"], params, seed)
        coef = fit_blend(factors, fit_part, seed)
        figures = ranking_metrics(score_part, feature_matrix(factors, score_part) @ coef)
        if best is None or figures[f"hit_rate_at_{K}"] > best[0]:
            best = (figures[f"hit_rate_at_{K}"], params, factors, figures)
    assert best is not None
    _, params, factors, figures = best
    # the blend for the registered model: fitted on every validation query
    coef = fit_blend(factors, frame, seed)
    return params, coef, figures


def compare(
    model: AffinityModel | None, frame: pd.DataFrame, k: int = K
) -> dict[str, dict[str, float]]:
    """Popularity, the factor score alone, the blended model and the oracle on one frame
    (without a model: popularity and the oracle)."""
    table = {"popularity": ranking_metrics(frame, popularity(frame), k)}
    if model is not None:
        factors_only = feature_matrix(model.factors, frame)[:, 0]
        table["als_alone"] = ranking_metrics(frame, factors_only, k)
        table["recommender"] = ranking_metrics(frame, model.predict_frame(frame), k)
    if frame.oracle.notna().all():
        table["oracle"] = ranking_metrics(frame, frame.oracle.to_numpy(), k)
    return table


def requirements() -> list[str]:
    return [f"{n}=={pkg_version(n)}" for n in REQUIREMENTS]


def train_recommender(
    settings: Settings,
    warehouse: Warehouse,
    holdout_days: int = HOLDOUT_DAYS,
    max_queries: int = MAX_QUERIES,
) -> RecommenderResult:
    """Fit on the days before the held-out ones, log and register the model, and gate it
    against popularity (and the champion) on the held-out likes."""
    task, seed = RECOMMENDATION, settings.training.seed
    data = read_interactions(warehouse)
    days = split_days(data, holdout_days)
    params, coef, validation = choose(data, days, seed, max_queries)
    factors = fit_factors(data, days["test"], params, seed)
    model = AffinityModel(factors, coef, params)
    holdout = ranking_frame(data, days["test"], days["end"], max_queries, seed)
    table = compare(model, holdout)
    seen = data.acts[data.acts.created_at < days["test"]]
    data_fingerprint = fingerprint(seen[["user_id", "post_id", "created_at"]])
    client: MlflowClient = use_tracking(settings)
    experiment_for(settings, task.name, experiment_note(task))
    with mlflow.start_run(run_name="recommend-als") as run:
        mlflow.set_tags(
            {
                tag.TASK: task.name,
                tag.FEATURES: task.feature_service,
                tag.DATA: data_fingerprint,
                tag.COMMIT: git_commit(),
            }
        )
        mlflow.log_params(
            {
                "factors": params[0],
                "regularization": params[1],
                "alpha": params[2],
                "seed": seed,
                "window_days": WINDOW_DAYS,
                "trained_before": str(days["test"]),
                "validation_from": str(days["valid"]),
                "held_out_queries": int(holdout["query"].nunique()),
                "data_fingerprint": data_fingerprint,
            }
        )
        mlflow.log_metrics({f"validation_{k}": v for k, v in validation.items()})
        mlflow.log_metrics(
            {f"{method}_{k}": v for method, figures in table.items() for k, v in figures.items()}
        )
        mlflow.log_dict(dict(zip(FEATURES, map(float, coef), strict=True)), "blend.json")
        example = holdout.head(5)[
            ["user_id", "author_id", "category", "age_days", "popularity", "follows", "newest"]
        ]
        info = log_pyfunc(model, example, requirements())
        run_id = run.info.run_id
    window = {
        "train_start": str(data.posts.created_at.min()),
        "train_end": str(days["test"]),
        "test_start": str(days["test"]),
        "test_end": str(days["end"]),
    }
    version = register_version(
        info.model_uri,
        task.name,
        tags={tag.DATA: data_fingerprint, tag.FEATURES: task.feature_service},
        description=version_description(task, window, data_fingerprint),
        model_description=model_description(task),
    )
    decision = promote(
        client, warehouse, task, version, holdout, ranking_scorer, settings.training.promote_margin
    )
    return RecommenderResult(
        run_id, version, params, validation, table, int(holdout["query"].nunique()), decision
    )


def ranking_scorer(frame: pd.DataFrame, scores) -> dict[str, float]:
    """The gate's scorer: hit-rate and NDCG of `scores` on the held-out pools."""
    return ranking_metrics(frame, scores)


def load_champion(settings: Settings) -> tuple[AffinityModel, int, str] | None:
    """The recommendation champion (model, version, run id), None when there is none."""
    entry = champion_entry(settings, RECOMMENDATION.name)
    if entry is None:
        return None
    return cast(AffinityModel, entry.load()), entry.version, entry.run_id


def interactions_of(posts: pd.DataFrame, follows: pd.DataFrame, acts: pd.DataFrame) -> Interactions:
    """Interactions from tables read elsewhere (posts in time order; acts of any order)."""
    acts = acts[acts.post_id.isin(posts.post_id)]
    acts = acts.sort_values("created_at", kind="stable").reset_index(drop=True)
    return Interactions(posts, follows, acts, None)


def top(
    model: AffinityModel, pools: Pools, user_id: int, at: pd.Timestamp, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The positions (in the posts' time order) of the `n` best candidates for `user_id` at
    `at`, best first (newest first on ties), and their scores."""
    frame, pool = pools.frame(int(user_id), at.value)
    if not len(frame):
        return pool, np.array([])
    scores = np.asarray(model.predict_frame(frame), float)
    order = np.lexsort((frame.age_days.to_numpy(), -scores))[:n]
    return pool[order], scores[order]
