"""The analytics tables as one SQL text each (DuckDB's dialect), transpiled by SQLGlot to the
engine that runs them: DuckDB over Parquet, PostgreSQL in the database, Spark over the lake.

Each query reads the raw tables, and the analytics tables computed before it, by their own
names, so an engine runs `ANALYTICS_SQL` in order and registers each result under its name.
Days are integers (days since 1970-01-01, UTC), so date arithmetic is plain integer arithmetic
in every dialect; the calendar runs from the first to the last day with a post, and every
rolling figure is a window over a dense (entity x day) grid, as the pandas ETL's matrices were.
Every rolling engagement figure uses only posts whose 7-day label window has closed, so a
feature row stamped at day d never contains an outcome that was unknown at d.
"""

from __future__ import annotations

import functools

from ingestion.schema import ANALYTICS_TABLES, HISTORY_DAYS

LABEL_DAYS = 7  # engagement is counted over a post's first 7 days
NEVER = 999  # days-since value for "never happened"
PACK = 2**32  # a day number times PACK plus a follower count keeps both in a BIGINT


def _day(ts: str) -> str:
    """The UTC day number of a timestamp or date (sessions run in UTC)."""
    return f"DATE_DIFF('day', DATE '1970-01-01', CAST({ts} AS DATE))"


def _date(day: str) -> str:
    return f"(DATE '1970-01-01' + CAST({day} AS INTEGER))"


def _stamp(day: str) -> str:
    """The end of day `day`: when its figures are known."""
    return f"CAST({_date(f'{day} + 1')} AS TIMESTAMPTZ)"


def _ratio(num: str, den: str) -> str:
    """num / den, NULL where nothing was counted (the pandas ETL's 0/0 = NaN)."""
    return f"CASE WHEN {den} > 0 THEN CAST({num} AS DOUBLE) / {den} END"


def _window(by: str, frame: str) -> str:
    return f"OVER (PARTITION BY {by} ORDER BY day ROWS BETWEEN {frame})"


def _last(n: int, lag: int = 0) -> str:
    """The frame of the `n` days ending `lag` days before the current one."""
    if lag == 0:
        return f"{n - 1} PRECEDING AND CURRENT ROW"
    return f"{n + lag - 1} PRECEDING AND {lag} PRECEDING"


CUMULATIVE = "UNBOUNDED PRECEDING AND CURRENT ROW"


def _sum_over(total: str, days: int | None, lag: int = 0) -> str:
    """The sum over days (d - lag - days, d - lag] of a user's measure, from its running total
    `total` (days None: every day up to d - lag), as the pandas ETL's cumulative sums did."""
    order = "OVER (PARTITION BY user_id ORDER BY day)"
    high = total if lag == 0 else f"LAG({total}, {lag}, 0) {order}"
    if days is None:
        return high
    return f"({high} - LAG({total}, {days + lag}, 0) {order})"


CALENDAR = f"""
calendar AS (
    SELECT MIN(day) AS first_day, MAX(day) AS last_day
    FROM (SELECT {_day("created_at")} AS day FROM content_posts) AS posted
),
days AS (
    SELECT first_day + i AS day
    FROM (SELECT first_day, UNNEST(GENERATE_SERIES(0, last_day - first_day)) AS i FROM calendar)
        AS steps
)"""

# per post: what engagement and share rates divide, and by what (`engagement_definition`);
# with `none` (denominator 1, numerator log1p) rolling rates are mean log interactions per post
TERMS = f"""
definition AS (
    SELECT COALESCE(MIN(denominator), 'reach') AS denominator FROM engagement_definition
),
terms AS (
    SELECT
        p.post_id, p.user_id, p.created_at, {_day("p.created_at")} AS day, p.reach,
        p.likes + p.comments + p.shares + p.saves AS interactions,
        CASE WHEN d.denominator = 'none'
            THEN LN(1 + CAST(p.likes + p.comments + p.shares + p.saves AS DOUBLE))
            ELSE CAST(p.likes + p.comments + p.shares + p.saves AS DOUBLE) END AS inter,
        CASE WHEN d.denominator = 'none' THEN LN(1 + CAST(p.shares AS DOUBLE))
            ELSE CAST(p.shares AS DOUBLE) END AS shares,
        CASE WHEN d.denominator = 'none' THEN 1.0
            WHEN d.denominator = 'followers' AND f.followers IS NULL THEN NULL
            WHEN d.denominator = 'followers' THEN GREATEST(CAST(f.followers AS DOUBLE), 1.0)
            ELSE GREATEST(CAST(p.reach AS DOUBLE), 1.0) END AS base
    FROM content_posts AS p
    CROSS JOIN definition AS d
    LEFT JOIN follower_counts AS f ON f.post_id = p.post_id
)"""

USER_ACTIVITY = """
SELECT user_id, date, SUM(posts) AS posts, SUM(likes_given) AS likes_given,
    SUM(comments_given) AS comments_given
FROM (
    SELECT user_id, CAST(created_at AS DATE) AS date, 1 AS posts, 0 AS likes_given,
        0 AS comments_given
    FROM content_posts
    UNION ALL
    SELECT user_id, CAST(created_at AS DATE), 0, 1, 0 FROM likes
    UNION ALL
    SELECT user_id, CAST(created_at AS DATE), 0, 0, 1 FROM comments
) AS events
WHERE user_id IS NOT NULL
GROUP BY user_id, date
"""

_U = "user_id"

# running totals per user; a window's sum is the difference of two of them
USER_ROLLING = f"""
cumulative AS (
    SELECT *,
        SUM(follows) {_window(_U, CUMULATIVE)} AS from_follows,
        -- the last count an export reported (its day packed above it, so MAX picks it)
        MAX(CASE WHEN observed IS NOT NULL THEN day * {PACK} + observed END)
            {_window(_U, CUMULATIVE)} AS last_seen,
        SUM(posts) {_window(_U, CUMULATIVE)} AS posts_all,
        SUM(inter) {_window(_U, CUMULATIVE)} AS inter_all,
        SUM(base) {_window(_U, CUMULATIVE)} AS base_all,
        SUM(reach) {_window(_U, CUMULATIVE)} AS reach_all,
        SUM(active) {_window(_U, CUMULATIVE)} AS active_all,
        SUM(likes_given) {_window(_U, CUMULATIVE)} AS likes_all,
        SUM(comments_given) {_window(_U, CUMULATIVE)} AS comments_all,
        SUM(present) {_window(_U, CUMULATIVE)} AS present_all,
        MAX(CASE WHEN active > 0 THEN day END) {_window(_U, CUMULATIVE)} AS last_active,
        MAX(CASE WHEN posts > 0 THEN day END) {_window(_U, CUMULATIVE)} AS last_post
    FROM grid
),
rolled AS (
    SELECT
        user_id, day, signup, posts_all,
        -- an export's count, carried forward from the day it was seen, beats follows
        COALESCE(last_seen % {PACK}, from_follows) AS followers,
        COALESCE(last_seen % {PACK}, from_follows) - COALESCE(
            LAG(last_seen, 7) OVER (PARTITION BY user_id ORDER BY day) % {PACK},
            LAG(from_follows, 7, 0) OVER (PARTITION BY user_id ORDER BY day)
        ) AS follower_growth_7d,
        {_sum_over("posts_all", 7)} AS posts_7d,
        {_sum_over("posts_all", 28)} AS posts_28d,
        {_ratio(_sum_over("inter_all", 28, LABEL_DAYS), _sum_over("base_all", 28, LABEL_DAYS))}
            AS engagement_rate_28d,
        {_ratio(_sum_over("inter_all", 7, LABEL_DAYS), _sum_over("base_all", 7, LABEL_DAYS))}
            AS engagement_rate_7d,
        {_ratio(_sum_over("reach_all", 28, LABEL_DAYS), _sum_over("posts_all", 28, LABEL_DAYS))}
            AS avg_reach_28d,
        {_sum_over("active_all", 7)} AS active_days_7d,
        {_sum_over("active_all", 28)} AS active_days_28d,
        day - last_active AS since_active,
        day - last_post AS since_post,
        {_sum_over("likes_all", 28)} AS likes_given_28d,
        {_sum_over("comments_all", 28)} AS comments_given_28d,
        {_ratio(_sum_over("inter_all", None, LABEL_DAYS), _sum_over("base_all", None, LABEL_DAYS))}
            AS engagement_rate_all,
        {_sum_over("posts_all", None, LABEL_DAYS)} AS matured_posts_all,
        {_sum_over("active_all", 3)} AS active_days_3d,
        {_sum_over("active_all", 14)} AS active_days_14d,
        -- the share of days active before the last 14: what going quiet is measured against
        {_ratio(_sum_over("active_all", None, 14), _sum_over("present_all", None, 14))}
            AS usual_active_rate
    FROM cumulative
)"""
USER_ENGAGEMENT_METRICS = f"""
WITH {CALENDAR}, {TERMS},
posted AS (
    SELECT user_id, day, COUNT(*) AS posts, SUM(inter) AS inter, SUM(base) AS base,
        SUM(reach) AS reach
    FROM terms GROUP BY user_id, day
),
followed AS (  -- follows before the first day count from it
    SELECT followee_id AS user_id, GREATEST({_day("f.created_at")}, c.first_day) AS day,
        COUNT(*) AS follows
    FROM follows AS f CROSS JOIN calendar AS c
    WHERE {_day("f.created_at")} <= c.last_day
    GROUP BY followee_id, GREATEST({_day("f.created_at")}, c.first_day)
),
observed AS (  -- the last follower count an export reported on each day
    SELECT user_id, day, followers
    FROM (
        SELECT user_id, {_day("observed_at")} AS day, followers,
            ROW_NUMBER() OVER (
                PARTITION BY user_id, {_day("observed_at")} ORDER BY observed_at DESC, post_id DESC
            ) AS latest
        FROM follower_counts
    ) AS counts
    WHERE latest = 1
),
active AS (
    SELECT user_id, {_day("date")} AS day, likes_given, comments_given FROM user_activity
),
grid AS (
    SELECT
        u.user_id, d.day, {_day("u.created_at")} AS signup,
        COALESCE(p.posts, 0) AS posts, COALESCE(p.inter, 0.0) AS inter,
        COALESCE(p.base, 0.0) AS base, COALESCE(p.reach, 0) AS reach,
        COALESCE(f.follows, 0) AS follows, o.followers AS observed,
        CASE WHEN a.user_id IS NULL THEN 0 ELSE 1 END AS active,
        COALESCE(a.likes_given, 0) AS likes_given, COALESCE(a.comments_given, 0) AS comments_given,
        CASE WHEN d.day >= {_day("u.created_at")} THEN 1 ELSE 0 END AS present
    FROM users AS u
    CROSS JOIN days AS d
    LEFT JOIN posted AS p ON p.user_id = u.user_id AND p.day = d.day
    LEFT JOIN followed AS f ON f.user_id = u.user_id AND f.day = d.day
    LEFT JOIN observed AS o ON o.user_id = u.user_id AND o.day = d.day
    LEFT JOIN active AS a ON a.user_id = u.user_id AND a.day = d.day
),
{USER_ROLLING}
SELECT
    g.user_id, {_date("g.day")} AS date, {_stamp("g.day")} AS event_timestamp,
    g.followers, g.follower_growth_7d, g.posts_7d, g.posts_28d, g.engagement_rate_28d,
    g.engagement_rate_7d, g.avg_reach_28d, g.active_days_7d, g.active_days_28d,
    COALESCE(g.since_active, {NEVER}) AS days_since_last_activity,
    COALESCE(g.since_post, {NEVER}) AS days_since_last_post,
    g.likes_given_28d, g.comments_given_28d, g.day - g.signup AS account_age_days,
    g.engagement_rate_all, g.matured_posts_all, g.posts_all, g.active_days_3d,
    g.active_days_14d, g.usual_active_rate
FROM rolled AS g CROSS JOIN calendar AS c
WHERE g.day >= GREATEST(g.signup, c.first_day)
"""

CONTENT_PERFORMANCE_METRICS = f"""
WITH {TERMS},
sentiment AS (SELECT post_id, AVG(sentiment) AS sentiment FROM comments GROUP BY post_id)
SELECT
    t.post_id, t.user_id, t.created_at, CAST(t.created_at AS DATE) AS date, p.post_type,
    p.category, t.reach, t.interactions,
    t.inter / t.base AS engagement_rate, t.shares / t.base AS share_rate,
    COALESCE(s.sentiment, 0.0) AS avg_sentiment,
    t.created_at + INTERVAL {LABEL_DAYS} DAY AS label_available_at,
    COALESCE(p.experiment, '') AS experiment, COALESCE(p.variant, '') AS variant
FROM terms AS t
JOIN content_posts AS p ON p.post_id = t.post_id
LEFT JOIN sentiment AS s ON s.post_id = t.post_id
"""

_H = "hashtag_id"
HASHTAG_DAILY = f"""
WITH {CALENDAR},
ids AS (
    SELECT UNNEST(GENERATE_SERIES(0, top)) AS hashtag_id
    FROM (SELECT MAX(hashtag_id) AS top FROM hashtags) AS known
),
used AS (
    SELECT ph.hashtag_id, {_day("p.created_at")} AS day, COUNT(*) AS usage,
        SUM(p.likes + p.comments + p.shares + p.saves) AS engagement
    FROM post_hashtags AS ph JOIN content_posts AS p ON p.post_id = ph.post_id
    GROUP BY ph.hashtag_id, {_day("p.created_at")}
),
grid AS (
    SELECT i.hashtag_id, COALESCE(h.tag, '') AS tag, d.day, COALESCE(u.usage, 0) AS usage,
        COALESCE(u.engagement, 0) AS engagement
    FROM ids AS i
    CROSS JOIN days AS d
    LEFT JOIN hashtags AS h ON h.hashtag_id = i.hashtag_id
    LEFT JOIN used AS u ON u.hashtag_id = i.hashtag_id AND u.day = d.day
),
rolled AS (
    SELECT *,
        LAG(usage, 1) OVER (PARTITION BY hashtag_id ORDER BY day) AS usage_lag_1,
        LAG(usage, 7) OVER (PARTITION BY hashtag_id ORDER BY day) AS usage_lag_7,
        SUM(usage) {_window(_H, _last(7))} / CAST(7 AS DOUBLE) AS usage_mean_7d,
        SUM(usage) {_window(_H, _last(28))} / CAST(28 AS DOUBLE) AS usage_mean_28d
    FROM grid
)
SELECT
    hashtag_id, tag, {_date("day")} AS date, {_stamp("day")} AS event_timestamp, usage,
    engagement, usage_lag_1, usage_lag_7, usage_mean_7d, usage_mean_28d,
    (usage_mean_7d - usage_mean_28d) / SQRT(usage_mean_28d + 1.0) AS trend_score,
    (day + 3) % 7 AS dow  -- 1970-01-01 was a Thursday; Monday is 0
FROM rolled
"""

# per hashtag with a text and day: its usage on each of the last HISTORY_DAYS days (`usage_d1`
# is the day itself; 0 before the data starts), stamped like `hashtag_daily`
_HISTORY_LAGS = ",\n    ".join(
    f"LAG(usage, {k - 1}, 0) OVER (PARTITION BY hashtag_id ORDER BY date) AS usage_d{k}"
    for k in range(1, HISTORY_DAYS + 1)
)
HASHTAG_HISTORY = f"""
SELECT
    hashtag_id, tag, date, event_timestamp, {_day("date")} AS usage_day,
    engagement AS engagement_d1,
    {_HISTORY_LAGS}
FROM hashtag_daily
WHERE COALESCE(tag, '') <> ''
"""

# each post's context as known when it was published: hashtag stats and the author's
# followers of the day before, and the author's earlier posts
POST_FEATURES = f"""
WITH posted AS (SELECT *, {_day("created_at")} AS day FROM content_posts),
tagged AS (
    SELECT ph.post_id, AVG(h.trend_score) AS momentum_mean, MAX(h.trend_score) AS momentum_max,
        AVG(h.usage_mean_28d) AS popularity_mean
    FROM post_hashtags AS ph
    JOIN posted AS p ON p.post_id = ph.post_id
    LEFT JOIN hashtag_daily AS h
        ON h.hashtag_id = ph.hashtag_id AND {_day("h.date")} = p.day - 1
    GROUP BY ph.post_id
),
history AS (
    SELECT post_id,
        ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY created_at, post_id) - 1 AS prior,
        ROW_NUMBER() OVER (PARTITION BY user_id, category ORDER BY created_at, post_id) - 1
            AS prior_in_category
    FROM content_posts
)
SELECT
    p.post_id, p.user_id, p.created_at AS event_timestamp, CAST(p.created_at AS DATE) AS date,
    p.post_type, p.category,
    CASE WHEN p.is_paid THEN 1 ELSE 0 END AS is_paid,
    CASE WHEN p.campaign_id IS NULL THEN 0 ELSE 1 END AS has_campaign,
    COALESCE(t.momentum_mean, 0.0) AS hashtag_momentum_mean,
    COALESCE(t.momentum_max, 0.0) AS hashtag_momentum_max,
    COALESCE(t.popularity_mean, 0.0) AS hashtag_popularity_mean,
    COALESCE(m.followers, 0) AS author_followers,
    h.prior AS author_prior_posts,
    {_ratio("h.prior_in_category", "h.prior")} AS author_category_share,
    CAST(FLOOR(EPOCH(p.created_at)) AS BIGINT) AS posted_at,
    COALESCE(p.caption, '') AS caption, COALESCE(p.hashtags, '') AS hashtags
FROM posted AS p
LEFT JOIN tagged AS t ON t.post_id = p.post_id
LEFT JOIN history AS h ON h.post_id = p.post_id
LEFT JOIN user_engagement_metrics AS m
    ON m.user_id = p.user_id AND {_day("m.date")} = p.day - 1
"""

# per author and category, posts published up to each day they posted in it (stamped at the
# day's end): the author's category affinity for a draft, keyed by what the draft names
AUTHOR_CATEGORY_POSTS = f"""
WITH daily AS (
    SELECT user_id, category, {_day("created_at")} AS day, COUNT(*) AS posts
    FROM content_posts
    WHERE user_id IS NOT NULL AND category IS NOT NULL
    GROUP BY user_id, category, {_day("created_at")}
)
SELECT user_id, category, {_date("day")} AS date, {_stamp("day")} AS event_timestamp,
    SUM(posts) OVER (PARTITION BY user_id, category ORDER BY day ROWS BETWEEN {CUMULATIVE})
        AS category_posts
FROM daily
"""

# each post's platform (its own row, else its account's; NULL: the settings' default) and the
# counts every platform's rate definition draws on (configs/platforms.py)
PLATFORM_POSTS = """
SELECT
    p.post_id, p.user_id, COALESCE(pp.platform, ap.platform) AS platform, p.created_at,
    CAST(p.created_at AS DATE) AS date, p.reach, p.impressions, p.likes, p.comments, p.shares,
    p.saves
FROM content_posts AS p
LEFT JOIN post_platforms AS pp ON pp.post_id = p.post_id
LEFT JOIN account_platforms AS ap ON ap.user_id = p.user_id
"""

# in dependency order: a query reads only raw tables and the tables before it
QUERIES: dict[str, str] = {
    "user_activity": USER_ACTIVITY,
    "user_engagement_metrics": USER_ENGAGEMENT_METRICS,
    "content_performance_metrics": CONTENT_PERFORMANCE_METRICS,
    "hashtag_daily": HASHTAG_DAILY,
    "hashtag_history": HASHTAG_HISTORY,
    "post_features": POST_FEATURES,
    "author_category_posts": AUTHOR_CATEGORY_POSTS,
    "platform_posts": PLATFORM_POSTS,
}

SQL_TYPES = {  # a column's logical type -> the DuckDB type every engine's result is cast to
    "int": "BIGINT",
    "float": "DOUBLE",
    "str": "VARCHAR",
    "ts": "TIMESTAMPTZ",
    "date": "DATE",
}


def _typed(name: str) -> str:
    """The table's query with exactly its columns, in order, each cast to its type."""
    columns = ", ".join(
        f"CAST({column} AS {SQL_TYPES[kind]}) AS {column}"
        for column, kind in ANALYTICS_TABLES[name].columns.items()
    )
    return f"SELECT {columns} FROM ({QUERIES[name]}) AS result"


def _series_as_rows(node):
    """DuckDB's GENERATE_SERIES is a list, unnested into rows; PostgreSQL's already returns
    rows (SQLGlot 30 keeps the UNNEST, which PostgreSQL rejects)."""
    from sqlglot import exp

    if isinstance(node, exp.Explode) and isinstance(node.this, exp.GenerateSeries):
        return node.this
    return node


# SQLGlot dialect -> rewrites of the parsed SQL that its transpiler does not make itself
REWRITES = {"duckdb": (), "postgres": (_series_as_rows,), "spark": ()}


@functools.cache
def analytics_sql(name: str, dialect: str) -> str:
    """The SQL that computes analytics table `name`, in `dialect` (a key of REWRITES)."""
    import sqlglot

    tree = sqlglot.parse_one(_typed(name), read="duckdb")
    for rewrite in REWRITES[dialect]:
        tree = tree.transform(rewrite)
    return tree.sql(dialect=dialect, pretty=True)
