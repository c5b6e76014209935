"""One versioned feature service per model: training and serving both read through it."""

from __future__ import annotations

from feast import FeatureService, FeatureView

from feature_repo.feature_views import draft_features, post_request_features
from feature_repo.platform_views import platform_features

DRAFT_SERVICES = (
    "engagement_v2",
    "virality_v2",
    "engagement_v3",
)  # services a draft post can be scored on
TREND_SERVICES = ("trend_v2",)  # services a hashtag forecast can be served from (by tag text)
# what churn_v2 takes from the user view: activity only (going quiet is what churn is; the
# audience and engagement columns give the trees noise to fit); `followers` is serving's probe
# for an account the online store does not know
CHURN_USER_FEATURES = ("followers", "days_since_last_activity", "active_days_7d", "active_days_28d")


def build_feature_services(views: dict[str, FeatureView]) -> dict[str, FeatureService]:
    user, post, tags = views["user_engagement"], views["post_context"], views["hashtag_momentum"]
    post_inputs = [user, post, post_request_features]
    # v2: only what a draft has: request data, on-demand transforms, lookups by author/hashtags
    draft_inputs = [user, draft_features, views["author_affinity"], views["draft_hashtags"]]
    return {
        "engagement_v1": FeatureService(
            name="engagement_v1",
            features=post_inputs,
            description="Engagement rate of a post over its first 7 days.",
        ),
        "virality_v1": FeatureService(
            name="virality_v1",
            features=post_inputs,
            description="Whether a post lands in the top share-rate tail.",
        ),
        "engagement_v2": FeatureService(
            name="engagement_v2",
            features=draft_inputs,
            description="Engagement rate of a draft post over its first 7 days.",
        ),
        "engagement_v3": FeatureService(
            name="engagement_v3",
            features=[*draft_inputs, platform_features],
            description="Engagement rate of a draft post over its first 7 days, on its platform.",
        ),
        "virality_v2": FeatureService(
            name="virality_v2",
            features=draft_inputs,
            description="Whether a draft post would land in the top share-rate tail.",
        ),
        "churn_v1": FeatureService(
            name="churn_v1",
            features=[user],
            description="Whether an account goes quiet for the next 28 days.",
        ),
        "churn_v2": FeatureService(
            name="churn_v2",
            features=[user[list(CHURN_USER_FEATURES)], views["user_activity_trend"]],
            description="Whether an account goes quiet for the next 28 days, from its last days "
            "of activity against its usual rate.",
        ),
        "trend_v1": FeatureService(
            name="trend_v1",
            features=[tags],
            description="Daily hashtag usage 1..30 days ahead.",
        ),
        "trend_v2": FeatureService(
            name="trend_v2",
            features=[views["trend_inputs"]],
            description="Daily hashtag usage 1..30 days ahead, from the history by tag text.",
        ),
        "segmentation_v1": FeatureService(
            name="segmentation_v1",
            features=[user],
            description="Behavioural user segments (k-means).",
        ),
    }
