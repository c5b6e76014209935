"""Feast entities: the keys every feature view joins on."""

from feast import Entity, ValueType

from feature_repo.drafts import MAX_DRAFT_TAGS

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.INT64,
    description="An account on the platform (author, follower, customer).",
)
post = Entity(
    name="post",
    join_keys=["post_id"],
    value_type=ValueType.INT64,
    description="One published piece of content.",
)
hashtag = Entity(
    name="hashtag",
    join_keys=["hashtag_id"],
    value_type=ValueType.INT64,
    description="A hashtag, tracked daily.",
)

category = Entity(
    name="category",
    join_keys=["category"],
    value_type=ValueType.STRING,
    description="A content category; with the author it keys the author's category history.",
)

hashtag_tag = Entity(
    name="tag",
    join_keys=["tag"],
    value_type=ValueType.STRING,
    description="A hashtag by its text (lower case, without '#'), as requests name it.",
)


def tag_slot(i: int) -> Entity:
    """The i-th hashtag a draft names (1-based), looked up by its text."""
    return Entity(
        name=f"tag_{i}",
        join_keys=[f"tag_{i}"],
        value_type=ValueType.STRING,
        description=f"Hashtag number {i} of a draft post, by its text (without '#').",
    )


TAG_SLOTS = [tag_slot(i) for i in range(1, MAX_DRAFT_TAGS + 1)]

ENTITIES = [user, post, hashtag, category, hashtag_tag, *TAG_SLOTS]
