"""The platform's activity read back from the warehouse as recommendations use it (the
recommender's training and `smap recommend`): posts in time order, follows, likes and
comments. A table not built yet reads as empty; whether that is too little is the caller's
to say, in its own words."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ingestion.warehouse import Warehouse


@dataclass(frozen=True)
class Activity:
    posts: pd.DataFrame  # the columns asked for, by created_at then post_id; category lowercase
    follows: pd.DataFrame  # follower_id, followee_id, created_at
    interactions: pd.DataFrame  # user_id, post_id, created_at, kind (like | comment)


def read_activity(warehouse: Warehouse, post_columns: list[str]) -> Activity:
    """Posts (`post_columns`, which hold created_at, post_id and category), follows, and
    likes and comments as one table of interactions."""
    posts = (
        warehouse.read("content_posts", columns=post_columns)
        if warehouse.exists("content_posts")
        else pd.DataFrame({c: [] for c in post_columns})
    )
    posts = posts.sort_values(["created_at", "post_id"], kind="stable").reset_index(drop=True)
    posts["category"] = posts.category.fillna("").astype(str).str.lower()
    follows = (
        warehouse.read("follows", columns=["follower_id", "followee_id", "created_at"])
        if warehouse.exists("follows")
        else pd.DataFrame({"follower_id": [], "followee_id": [], "created_at": []})
    )
    parts = [
        warehouse.read(name, columns=["user_id", "post_id", "created_at"]).assign(kind=kind)
        for name, kind in (("likes", "like"), ("comments", "comment"))
        if warehouse.exists(name)
    ]
    interactions = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame({"user_id": [], "post_id": [], "created_at": [], "kind": []})
    )
    return Activity(posts, follows, interactions)
