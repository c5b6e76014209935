"""Seeded generative model of a social platform (see docs/simulator.md for the process).

Latent traits (activity, audience quality, interests, churn hazard, virality noise) drive
the observable tables but are never written to them; they appear only in the `truth_*`
tables, which give the oracle each model is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from configs.platforms import PlatformSettings
from ingestion.simulate_cascades import simulate_shares
from ingestion.simulate_experiments import PLANTED, plant_experiments
from ingestion.simulate_interests import follow_interests
from ingestion.simulate_platforms import with_platforms
from ingestion.simulate_sentiment import comment_sentiment

CATEGORIES = ("fashion", "food", "travel", "fitness", "tech", "music", "gaming", "beauty")
POST_TYPES = ("image", "video", "text", "link", "carousel")
POST_TYPE_SHARE = (0.38, 0.22, 0.14, 0.08, 0.18)
COUNTRIES = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "ES")
ACCOUNT_TYPES = ("personal", "creator", "brand")
OBJECTIVES = ("awareness", "engagement", "conversion")
_WORDS = (
    "love new today best look amazing check this out week vibes day time great fresh "
    "happy tips guide how why top favourite little big moment story win share"
).split()  # the shared (generic) list; on its own a caption from it says nothing of the topic
# Topic words per category, listed by length: 3 words of 3, 4 and 5 letters, 2 of 6 and 7, one
# of 9, the lengths of the shared list's words, so a topic word can stand in for a shared word
# of the same length and leave the caption's length unchanged. Sibling categories share two
# words (fashion/beauty, food/fitness, tech/gaming, travel/music), so short captions can be
# ambiguous between them.
TOPIC_WORDS = {
    "fashion": "hat zip tee ootd silk glam denim dress style runway blazer outfits couture "
    "wardrobes",
    "food": "tea pie jam chef soup meal pasta sushi vegan recipe dinner dessert cooking delicious",
    "travel": "map sea inn trip hike tour beach hotel arena flight island journey airport "
    "adventure",
    "fitness": "gym run abs reps yoga meal squat lifts vegan cardio sprint workout protein "
    "endurance",
    "tech": "app api gpu code chip byte cloud robot setup laptop gadget startup android developer",
    "music": "pop rap mic song beat tour piano drums arena guitar singer concert karaoke orchestra",
    "gaming": "pvp mmo gpu boss loot raid quest combo setup arcade twitch console respawn "
    "speedruns",
    "beauty": "spa gel lip glow nail glam serum blush style makeup lashes mascara haircut "
    "cosmetics",
}

# Fixed noise levels and effects; later quality bars are measured against these. Do not tune.
BASE_LOGIT = -3.4
QUALITY_SD = 0.5
POST_NOISE_SD = 0.35
VIRALITY_NOISE_SD = 0.6
TYPE_EFFECT = {"image": 0.0, "video": 0.35, "text": -0.4, "link": -0.6, "carousel": 0.25}
SHARE_TYPE = {"image": 0.05, "video": 0.12, "text": 0.06, "link": 0.09, "carousel": 0.06}
INTEREST_EFFECT = 0.8
MOMENTUM_EFFECT = 0.25
PAID_EFFECT = -0.2
DISENGAGE_TO_CHURN = 0.10  # daily probability a disengaging user stops for good
QUIET_DECAY = 0.85  # daily activity factor while disengaging
AUDIENCE_PER_FOLLOW = 25  # each simulated follow stands for this many real audience accounts
EXPLORE_REACH = 80.0  # non-follower reach of an average post (explore / hashtag pages)
TOPIC_WORD_SHARE = 0.6  # an on-topic caption's word is a topic word with this probability
OFF_TOPIC_SHARE = 0.10  # share of captions with no topic words at all (generic chatter)
CAPTION_STREAM = 1234  # caption words come from default_rng([seed, CAPTION_STREAM])


@dataclass(frozen=True)
class Preset:
    users: int
    days: int
    hashtags: int
    post_rate: float  # mean posts per active day
    following: int  # mean accounts followed per user


PRESETS = {
    "quick": Preset(users=300, days=180, hashtags=60, post_rate=0.5, following=12),
    "small": Preset(users=3000, days=150, hashtags=300, post_rate=0.6, following=15),
    "default": Preset(users=22000, days=180, hashtags=2000, post_rate=0.6, following=20),
}


@dataclass(frozen=True)
class ShiftSpec:
    """Behaviour change from `day` on: video favoured, text penalised, reach shrinks."""

    day: int
    video_boost: float = 0.6
    text_penalty: float = -0.3
    reach_factor: float = 0.7


def hour_effect(hour: np.ndarray) -> np.ndarray:
    return (
        0.25 * np.exp(-(((hour - 19) / 2.5) ** 2))
        + 0.15 * np.exp(-(((hour - 12) / 2.0) ** 2))
        - 0.1
    )


def caption_effect(length: np.ndarray) -> np.ndarray:
    return -0.15 * ((np.minimum(length, 400) - 100) / 100) ** 2


_LENGTHS = (3, 4, 5, 6, 7, 9)  # the word lengths of both lists
_PICKS = 6  # a multiple of every per-length count (3, 3, 3, 2, 2, 1): uniform by modulo


@dataclass(frozen=True)
class Vocabulary:
    """Caption words: the shared list first, then each topic word once."""

    words: np.ndarray  # vocabulary id -> word
    slot: np.ndarray  # shared word id -> index of its length in _LENGTHS
    topic: np.ndarray  # [category, length slot, pick] -> vocabulary id of a topic word
    categories: np.ndarray  # vocabulary id -> bitmask of the categories whose list holds it


def vocabulary() -> Vocabulary:
    words = list(_WORDS)
    topic = np.zeros((len(CATEGORIES), len(_LENGTHS), _PICKS), dtype=np.int64)
    masks = [(1 << len(CATEGORIES)) - 1] * len(words)  # a shared word fits every category
    for c, name in enumerate(CATEGORIES):
        listed = TOPIC_WORDS[name].split()
        for s, length in enumerate(_LENGTHS):
            of_length = [w for w in listed if len(w) == length]
            for j in range(_PICKS):
                word = of_length[j % len(of_length)]
                if word not in words:
                    words.append(word)
                    masks.append(0)
                topic[c, s, j] = words.index(word)
                masks[words.index(word)] |= 1 << c
    slot = np.array([_LENGTHS.index(len(w)) for w in _WORDS])
    return Vocabulary(np.array(words), slot, topic, np.array(masks, dtype=np.uint8))


def draw_captions(
    seed: int, generic: np.ndarray, n_words: np.ndarray, category: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Captions and each one's bitmask of categories whose topic list holds all its topic words.

    `generic` holds the shared-list word ids the main stream drew (one row of 60 per post). An
    off-topic caption keeps them; in an on-topic one each word is, with TOPIC_WORD_SHARE, swapped
    for a uniform topic word of the post's category of the same length. The swaps come from
    their own stream, so no other column changes, and lengths stay as the main stream drew them.
    """
    vocab = vocabulary()
    crng = np.random.default_rng([seed, CAPTION_STREAM])
    used = np.arange(generic.shape[1])[None, :] < n_words[:, None]
    ids = generic[used].astype(np.int16)  # the words actually used, post by post
    post = np.repeat(np.arange(len(n_words), dtype=np.int32), n_words)
    off_topic = crng.random(len(n_words)) < OFF_TOPIC_SHARE
    swap = (crng.random(len(ids)) < TOPIC_WORD_SHARE) & ~off_topic[post]
    pick = crng.integers(0, _PICKS, len(ids), dtype=np.int8)
    ids[swap] = vocab.topic[category[post[swap]], vocab.slot[ids[swap]], pick[swap]]
    starts = np.concatenate([[0], np.cumsum(n_words)[:-1]])
    fits = np.bitwise_and.reduceat(vocab.categories[ids], starts)
    words = vocab.words
    return [" ".join(words[ids[a : a + n]]) for a, n in zip(starts, n_words, strict=True)], fits


def category_oracle(
    fits: np.ndarray,
    category: np.ndarray,
    day_of_post: np.ndarray,
    post_tags: pd.DataFrame,
    tag_category: np.ndarray,
    intensity: np.ndarray,
) -> np.ndarray:
    """The Bayes (MAP) category of each post from its caption and distinct hashtags.

    Caption: every category whose topic list holds all of the caption's topic words is equally
    likely (the lists have equal counts per length), the others impossible; a caption with no
    topic word says nothing. Hashtags: each distinct tag counts as one draw of P(h | day, c)
    (the de-duplication of repeated draws is ignored). Prior: the category mix of all posts.
    Post type is drawn independently of the category and carries nothing.
    """
    n_c = len(CATEGORIES)
    prior = np.log(np.bincount(category, minlength=n_c) / len(category))
    in_cat = np.zeros((n_c, intensity.shape[1]))
    np.add.at(in_cat, tag_category, intensity)
    log_z = np.log(intensity.sum(axis=0)[None, :] + 4.0 * in_cat)  # [category, day]
    pid, hid = post_tags.post_id.to_numpy(), post_tags.hashtag_id.to_numpy()
    own = np.zeros((len(category), n_c))
    np.add.at(own, (pid, tag_category[hid]), 1.0)
    n_tags = np.bincount(pid, minlength=len(category))[:, None]
    score = prior + np.log(5.0) * own - n_tags * log_z[:, day_of_post].T
    possible = (fits[:, None] >> np.arange(n_c)[None, :]) & 1
    return np.where(possible == 1, score, -np.inf).argmax(axis=1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def expected_sigmoid(mu: np.ndarray, sd: float) -> np.ndarray:
    """E[sigmoid(mu + N(0, sd^2))] by the probit approximation."""
    return sigmoid(mu / np.sqrt(1.0 + np.pi * sd**2 / 8.0))


def scaled(preset: str, factor: int) -> Preset:
    """A preset with `factor` times its accounts (and so about `factor` times its posts,
    likes and follows): how `benchmarks/scale.py` grows the data."""
    spec = PRESETS[preset]
    return replace(spec, users=spec.users * factor, hashtags=spec.hashtags * factor)


def simulate(
    preset: str | Preset = "quick",
    seed: int = 42,
    start_date: str = "2026-01-01",
    shift_at: int | None = None,
    progress=None,
    experiments: bool = False,
    platforms: PlatformSettings | None = None,
) -> dict[str, pd.DataFrame]:
    """Generate raw and truth tables; `progress(step_name)` is called between steps;
    `experiments` plants the content experiments of ingestion/simulate_experiments.py."""
    spec = PRESETS[preset] if isinstance(preset, str) else preset
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(start_date, tz="UTC")
    shift = ShiftSpec(shift_at) if shift_at is not None else None
    tick = progress or (lambda _name: None)
    n_u, n_d, n_h = spec.users, spec.days, spec.hashtags

    # users and latent traits
    account_type = rng.choice(3, size=n_u, p=[0.75, 0.2, 0.05])
    signup_day = np.where(
        rng.random(n_u) < 0.7, -rng.integers(1, 720, n_u), rng.integers(0, n_d, n_u)
    )
    active_prob = np.clip(rng.beta(2.0, 3.0, n_u) + 0.15 * (account_type > 0), 0.03, 0.95)
    post_rate = spec.post_rate * rng.lognormal(-0.3, 0.6, n_u) * (1 + 0.8 * (account_type > 0))
    quality = rng.normal(0.0, QUALITY_SD, n_u)
    interests = rng.dirichlet(np.full(len(CATEGORIES), 0.5), n_u)
    main_category = interests.argmax(axis=1)
    preferred_hour = np.where(
        rng.random(n_u) < 0.55, rng.normal(19, 2, n_u), rng.normal(12, 2.5, n_u)
    )
    reach_frac = rng.uniform(0.08, 0.35, n_u)
    hazard = np.clip(0.0025 * rng.lognormal(0, 0.5, n_u) * np.sqrt(0.4 / active_prob), 0.0003, 0.05)
    first_day = np.maximum(signup_day, 0)
    disengage_day = first_day + rng.geometric(hazard)
    churn_day = disengage_day + rng.geometric(DISENGAGE_TO_CHURN, n_u) - 1
    tick("users")

    # follow graph: preferential attachment in batches (target chosen by degree x appeal)
    appeal = rng.lognormal(0.0, 0.5, n_u) * (1 + 1.5 * (account_type > 0)) * np.exp(0.5 * quality)
    n_edges = min(n_u * spec.following, n_u * (n_u - 1) // 2)
    degree = np.zeros(n_u)
    followers, followees = [], []
    batches = 25
    for _ in range(batches):
        k = n_edges // batches
        weight = (degree + 3.0) * appeal
        followees.append(rng.choice(n_u, size=k, p=weight / weight.sum()))
        followers.append(rng.integers(0, n_u, size=k))
        np.add.at(degree, followees[-1], 1)
    edges = pd.DataFrame(
        {"follower_id": np.concatenate(followers), "followee_id": np.concatenate(followees)}
    )
    edges = edges[edges.follower_id != edges.followee_id].drop_duplicates()
    earliest = np.maximum(signup_day[edges.follower_id], signup_day[edges.followee_id])
    follow_day = earliest + (rng.random(len(edges)) * (n_d - earliest)).astype(int)
    edges["day"] = follow_day
    tick("follows")

    # followers per user per day (edges before day 0 count from the start)
    gained = np.zeros((n_u, n_d + 1), dtype=np.int64)
    np.add.at(gained, (edges.followee_id.to_numpy(), np.clip(follow_day, 0, n_d)), 1)
    followers_by_day = gained.cumsum(axis=1)[:, :n_d]

    # daily activity: engaged -> disengaging (activity decays) -> churned
    day_idx = np.arange(n_d)[None, :]
    alive = (day_idx >= signup_day[:, None]) & (day_idx < churn_day[:, None])
    decay = np.where(
        day_idx >= disengage_day[:, None],
        QUIET_DECAY ** np.maximum(day_idx - disengage_day[:, None], 0),
        1.0,
    )
    active = alive & (rng.random((n_u, n_d)) < active_prob[:, None] * decay)
    posts_per_day = np.where(active, rng.poisson(post_rate[:, None] * np.ones((1, n_d))), 0)
    tick("activity")

    # hashtags: base popularity, weekly seasonality, bursts, slow drift
    tag_category = rng.integers(0, len(CATEGORIES), n_h)
    base_pop = rng.pareto(1.3, n_h) + 0.2
    amp = rng.uniform(0.0, 0.5, n_h)
    phase = rng.integers(0, 7, n_h)
    days = np.arange(n_d)
    weekday0 = start.dayofweek
    dow = (weekday0 + days) % 7
    season = 1.0 + amp[:, None] * np.cos(2 * np.pi * (dow[None, :] - phase[:, None]) / 7.0)
    drift = np.exp(np.cumsum(rng.normal(0, 0.03, (n_h, n_d)), axis=1))
    bursts = np.zeros((n_h, n_d))
    n_bursts = rng.poisson(n_d / 90.0, n_h)
    for h in np.nonzero(n_bursts)[0]:
        for b0 in rng.integers(0, n_d, n_bursts[h]):
            height = rng.uniform(2.0, 8.0)
            width = rng.uniform(2.0, 6.0)
            t = days - b0
            bursts[h] += np.where(t >= 0, height * np.exp(-t / width), height * np.exp(t / 1.0))
    intensity = base_pop[:, None] * season * drift * (1.0 + bursts)
    momentum = np.log(intensity / (base_pop[:, None] * drift))  # how hot the tag is vs. its norm
    tick("hashtags")

    # posts
    user_of_post = np.repeat(np.repeat(np.arange(n_u), n_d), posts_per_day.ravel())
    day_of_post = np.repeat(np.tile(days, n_u), posts_per_day.ravel())
    n_p = len(user_of_post)
    order = np.lexsort((user_of_post, day_of_post))
    user_of_post, day_of_post = user_of_post[order], day_of_post[order]
    post_type = rng.choice(len(POST_TYPES), size=n_p, p=POST_TYPE_SHARE)
    own_cat = rng.random(n_p) < 0.7
    category = np.where(own_cat, main_category[user_of_post], rng.integers(0, len(CATEGORIES), n_p))
    hour = np.clip(np.round(rng.normal(preferred_hour[user_of_post], 2.0)), 0, 23).astype(int) % 24
    second = rng.integers(0, 3600, n_p)
    created = start + pd.to_timedelta(day_of_post * 86400 + hour * 3600 + second, unit="s")
    caption_len_words = np.clip(rng.lognormal(2.4, 0.7, n_p).astype(int), 1, 60)
    n_tags = np.clip(1 + rng.poisson(1.8, n_p), 1, 8)

    # campaigns: brands and some creators run a few, their posts are often paid
    runners = np.nonzero(account_type > 0)[0]
    n_camp = max(1, len(runners) // 2)
    camp_user = rng.choice(runners, size=n_camp)
    camp_start = rng.integers(0, max(1, n_d - 14), n_camp)
    camp_end = camp_start + rng.integers(7, 45, n_camp)
    campaign_id = np.full(n_p, -1)
    camp_by_user: dict[int, list[int]] = {}
    for c, u in enumerate(camp_user):
        camp_by_user.setdefault(int(u), []).append(c)
    for u, cs in camp_by_user.items():
        mask = user_of_post == u
        for c in cs:
            in_window = mask & (day_of_post >= camp_start[c]) & (day_of_post <= camp_end[c])
            campaign_id[in_window & (rng.random(n_p) < 0.6)] = c
    is_paid = (campaign_id >= 0) & (rng.random(n_p) < 0.6) | (rng.random(n_p) < 0.02)
    tick("posts")

    # hashtag choice per post: probability ∝ today's intensity, x5 inside the post's category
    total_slots = int(n_tags.sum())
    slot_post = np.repeat(np.arange(n_p), n_tags)
    slot_tag = np.empty(total_slots, dtype=np.int64)
    slot_day = day_of_post[slot_post]
    slot_cat = category[slot_post]
    expected_usage = np.zeros((n_h, n_d))
    for d in range(n_d):
        for c in range(len(CATEGORIES)):
            sel = np.nonzero((slot_day == d) & (slot_cat == c))[0]
            w = intensity[:, d] * np.where(tag_category == c, 5.0, 1.0)
            p = w / w.sum()
            if len(sel):
                slot_tag[sel] = rng.choice(n_h, size=len(sel), p=p)
            expected_usage[:, d] += p * len(sel)
    post_tags = pd.DataFrame({"post_id": slot_post, "hashtag_id": slot_tag}).drop_duplicates()
    tag_momentum = momentum[
        post_tags.hashtag_id.to_numpy(), day_of_post[post_tags.post_id.to_numpy()]
    ]
    mean_momentum = (
        pd.Series(tag_momentum)
        .groupby(post_tags.post_id.to_numpy())
        .mean()
        .reindex(range(n_p))
        .fillna(0)
        .to_numpy()
    )
    tick("post_hashtags")

    # engagement: expected rate from observable-ish drivers, realised with latent noise
    type_names = np.array(POST_TYPES)[post_type]
    type_eff = np.vectorize(TYPE_EFFECT.get)(type_names)
    share_mult = np.vectorize(SHARE_TYPE.get)(type_names)
    weekday = (weekday0 + day_of_post) % 7
    caption_chars = caption_len_words * 6
    interest = interests[user_of_post, category]
    mu = (
        BASE_LOGIT
        + quality[user_of_post]
        + type_eff
        + INTEREST_EFFECT * (interest - 0.125)
        + hour_effect(hour)
        + 0.1 * (weekday >= 5)
        + MOMENTUM_EFFECT * mean_momentum
        + caption_effect(caption_chars)
        + PAID_EFFECT * is_paid
    )
    reach_scale = np.ones(n_p)
    if shift is not None:
        after = day_of_post >= shift.day
        mu = mu + after * (
            shift.video_boost * (type_names == "video")
            + shift.text_penalty * (type_names == "text")
        )
        reach_scale = np.where(after, shift.reach_factor, 1.0)
    p_post = sigmoid(mu + rng.normal(0, POST_NOISE_SD, n_p))
    expected_er = expected_sigmoid(mu, POST_NOISE_SD)
    fol = followers_by_day[user_of_post, day_of_post]
    reach_mean = reach_scale * (
        EXPLORE_REACH * np.exp(0.3 * mean_momentum)
        + AUDIENCE_PER_FOLLOW
        * fol
        * reach_frac[user_of_post]
        * rng.lognormal(0, 0.25, n_p)
        * (1 + 1.5 * is_paid)
    )
    reach = np.maximum(rng.poisson(reach_mean), 5)
    impressions = reach + rng.poisson(reach * rng.gamma(2.0, 0.2, n_p))
    virality_noise = rng.normal(0, VIRALITY_NOISE_SD, n_p)
    share_p = np.clip(p_post * share_mult * np.exp(virality_noise), 0, 0.5)
    expected_share_rate = expected_er * share_mult * np.exp(VIRALITY_NOISE_SD**2 / 2)
    likes = rng.binomial(reach, np.clip(p_post * 0.8, 0, 1))
    comments = rng.binomial(reach, np.clip(p_post * 0.08, 0, 1))
    saves = rng.binomial(reach, np.clip(p_post * 0.05, 0, 1))
    shares = rng.binomial(reach, share_p)
    tick("engagement")

    words = np.array(_WORDS)
    cat_names = np.array(CATEGORIES)
    tag_names = np.array([f"{CATEGORIES[c]}_{i}" for i, c in enumerate(tag_category)])
    tags_of_post = post_tags.groupby("post_id").hashtag_id.apply(
        lambda s: " ".join("#" + tag_names[s.to_numpy()])
    )
    word_idx = rng.integers(0, len(words), (n_p, 60))  # still drawn: the stream goes on as before
    caption, caption_fits = draw_captions(seed, word_idx, caption_len_words, category)
    oracle_category = category_oracle(
        caption_fits, category, day_of_post, post_tags, tag_category, intensity
    )
    posts = pd.DataFrame(
        {
            "post_id": np.arange(n_p, dtype=np.int64),
            "user_id": user_of_post,
            "created_at": created,
            "post_type": type_names,
            "category": cat_names[category],
            "caption": caption,
            "hashtags": tags_of_post.reindex(range(n_p)).fillna("").to_numpy(),
            # numpy's stubs reject None (an object scalar) as np.where's third argument
            "campaign_id": pd.array(np.where(campaign_id >= 0, campaign_id, None), dtype="Int64"),  # type: ignore[call-overload]
            "is_paid": is_paid,
            "reach": reach,
            "impressions": impressions,
            "likes": likes,
            "comments": comments,
            "shares": shares,
            "saves": saves,
        }
    )
    tick("captions")

    # comment rows (one per comment) and one sampled like per active day without a post
    n_c = int(comments.sum())
    c_post = np.repeat(np.arange(n_p), comments)
    c_delay = rng.exponential(0.6, n_c)
    commenters = rng.choice(n_u, size=n_c, p=active_prob / active_prob.sum())
    c_day = np.minimum(day_of_post[c_post] + c_delay.astype(int), n_d - 1)
    keep = active[commenters, c_day]
    sentiment = np.clip(rng.normal(0.2 + 0.3 * quality[user_of_post[c_post]], 0.4), -1, 1)
    comment_rows = pd.DataFrame(
        {
            "comment_id": np.arange(keep.sum(), dtype=np.int64),
            "post_id": c_post[keep],
            "user_id": commenters[keep],
            "created_at": created[c_post[keep]] + pd.to_timedelta(c_delay[keep] * 86400, unit="s"),
            "sentiment": sentiment[keep],
        }
    )
    said = comment_sentiment(seed, sentiment[keep])  # own stream: the rows above are unchanged
    comment_rows["text"], comment_rows["label"] = said.text.to_numpy(), said.label.to_numpy()
    liker, like_day = np.nonzero(active & (posts_per_day == 0))
    day_first_post = np.searchsorted(day_of_post, np.arange(n_d + 1))
    lo, hi = day_first_post[like_day], day_first_post[np.minimum(like_day + 1, n_d)]
    has_post = hi > lo
    liked = lo[has_post] + (rng.random(has_post.sum()) * (hi - lo)[has_post]).astype(int)
    like_rows = pd.DataFrame(
        {
            "post_id": liked.astype(np.int64),
            "user_id": liker[has_post].astype(np.int64),
            "created_at": start
            + pd.to_timedelta(
                like_day[has_post] * 86400 + rng.integers(0, 86400, has_post.sum()), unit="s"
            ),
        }
    )
    tick("interactions")

    users = pd.DataFrame(
        {
            "user_id": np.arange(n_u, dtype=np.int64),
            "username": [f"user_{i}" for i in range(n_u)],
            "created_at": start
            + pd.to_timedelta(signup_day * 86400 + rng.integers(0, 86400, n_u), unit="s"),
            "country": np.array(COUNTRIES)[rng.integers(0, len(COUNTRIES), n_u)],
            "account_type": np.array(ACCOUNT_TYPES)[account_type],
            "is_verified": (account_type > 0) & (degree > np.quantile(degree, 0.97)),
        }
    )
    follows = pd.DataFrame(
        {
            "follower_id": edges.follower_id.to_numpy(np.int64),
            "followee_id": edges.followee_id.to_numpy(np.int64),
            "created_at": start
            + pd.to_timedelta(
                edges.day.to_numpy() * 86400 + rng.integers(0, 86400, len(edges)), unit="s"
            ),
        }
    )
    hashtags = pd.DataFrame(
        {
            "hashtag_id": np.arange(n_h, dtype=np.int64),
            "tag": tag_names,
            "category": cat_names[tag_category],
        }
    )
    campaigns = pd.DataFrame(
        {
            "campaign_id": np.arange(n_camp, dtype=np.int64),
            "user_id": camp_user.astype(np.int64),
            "name": [f"campaign_{c}" for c in range(n_camp)],
            "objective": np.array(OBJECTIVES)[rng.integers(0, 3, n_camp)],
            "start_date": (start + pd.to_timedelta(camp_start, unit="D")).tz_localize(None),
            "end_date": (start + pd.to_timedelta(camp_end, unit="D")).tz_localize(None),
            "budget": np.round(rng.lognormal(7.5, 1.0, n_camp), 2),
        }
    )
    truth_posts = pd.DataFrame(
        {
            "post_id": posts.post_id,
            "expected_engagement_rate": expected_er,
            "expected_share_rate": expected_share_rate,
        }
    )
    truth_categories = pd.DataFrame(
        {"post_id": posts.post_id, "oracle_category": cat_names[oracle_category]}
    )
    truth_users = pd.DataFrame(
        {
            "user_id": users.user_id,
            "churn_hazard": hazard,
            "disengage_day": disengage_day,
            "churn_day": churn_day,
            "daily_active_prob": active_prob,
        }
    )
    hd, dd = np.meshgrid(np.arange(n_h), days, indexing="ij")
    truth_hashtags = pd.DataFrame(
        {
            "hashtag_id": hd.ravel(),
            "date": (start.tz_localize(None) + pd.to_timedelta(dd.ravel(), unit="D")),
            "expected_usage": expected_usage.ravel(),
        }
    )
    # who follows, likes and comments: by interest, on a stream of its own (counts unchanged)
    chosen = follow_interests(
        seed,
        {"content_posts": posts, "follows": follows, "likes": like_rows, "comments": comment_rows},
        CATEGORIES,
        interests,
        quality,
        signup_day,
        active,
        active_prob,
        start,
    )
    tick("tables")
    tables = {
        "users": users,
        "content_posts": posts,
        "comments": chosen["comments"],
        "likes": chosen["likes"],
        "follows": chosen["follows"],
        "hashtags": hashtags,
        "post_hashtags": post_tags.astype(np.int64),
        "campaigns": campaigns,
        "truth_posts": truth_posts,
        "truth_users": truth_users,
        "truth_hashtag_daily": truth_hashtags,
        "truth_post_categories": truth_categories,
        "truth_interests": chosen["truth_interests"],
        "truth_comment_sentiment": pd.DataFrame(
            {"comment_id": comment_rows.comment_id, "oracle_sentiment": said.oracle.to_numpy()}
        ),
    }
    # each account on a platform, each platform's reach and engagement (own stream)
    tables = with_platforms(seed, platforms or PlatformSettings(), tables)
    tables = plant_experiments(tables, seed, PLANTED if experiments else ())
    # the share graph last: one share event per share the posts' final counters hold
    tables["share_events"], tables["truth_bot_bursts"] = simulate_shares(
        seed, tables["content_posts"], tables["follows"], n_u, AUDIENCE_PER_FOLLOW
    )
    return tables
