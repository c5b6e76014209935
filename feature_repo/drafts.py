"""Entity rows of a draft post: the keys and request data its feature services read.

Training (label rows of published posts) and serving (drafts in a request) both build their
rows here, so a post is looked up the same way in both. No Feast import: the label queries
(and so `smap evaluate` on a stored set) read this module without paying for Feast.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_TAG = re.compile(r"#?(\w+)")
MAX_DRAFT_TAGS = 5  # hashtags of a draft that are looked up (a post's first five tags)
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
