"""Entity rows of a draft post: the keys and request data its feature services read.

Training (label rows of published posts) and serving (drafts in a request) both build their
rows here, so a post is looked up the same way in both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from feature_repo.entities import MAX_DRAFT_TAGS

_TAG = re.compile(r"#?(\w+)")
NO_TAG = ""  # an empty slot: never a stored hashtag, so its lookup finds nothing


def parse_hashtags(text: str | None) -> list[str]:
    """Distinct lower-case tags without '#', in order of appearance ("#a #b", "a, b")."""
    return list(dict.fromkeys(t.lower() for t in _TAG.findall(text or "")))


def hashtag_text(tags: Iterable[str]) -> str:
    """The stored form of a post's hashtags: "#a #b"."""
    return " ".join(f"#{t}" for t in tags)


def draft_keys(categories: Sequence[str], hashtags: Sequence[str | None]) -> dict[str, list]:
    """Columns a draft adds to its entity row: the category as request data (the `category`
    column is the author-category lookup key) and one hashtag per slot."""
    tags = [parse_hashtags(h)[:MAX_DRAFT_TAGS] for h in hashtags]
    slots = {
        f"tag_{i}": [t[i - 1] if len(t) >= i else NO_TAG for t in tags]
        for i in range(1, MAX_DRAFT_TAGS + 1)
    }
    return {"post_category": [str(c) for c in categories], **slots}
