"""Feast entities: the keys every feature view joins on."""

from feast import Entity, ValueType

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

ENTITIES = [user, post, hashtag]
