"""The platform a draft is written for, as request data (docs/platforms.md).

A request source of its own, so the draft services before it (`engagement_v2`,
`virality_v2`) take the same requests as ever; `engagement_v3` adds this view. The platform
is filled before it gets here (a draft or a post without one: `platforms.default`), so the
view only normalises its spelling.
"""

from __future__ import annotations

from typing import Any

from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import String

platform_request = RequestSource(
    name="platform_request",
    schema=[Field(name="platform", dtype=String)],
)


@on_demand_feature_view(
    name="platform_features",
    sources=[platform_request],
    schema=[Field(name="content_platform", dtype=String)],
    mode="python",
)
def platform_features(inputs: dict[str, Any]) -> dict[str, Any]:
    """The draft's platform in lower case."""
    return {"content_platform": [str(p or "").strip().lower() for p in inputs["platform"]]}
