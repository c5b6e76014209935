"""The social platforms smap knows: how each one reports an engagement rate, and how the
simulator makes each one behave (docs/platforms.md).

Platforms do not agree on what an engagement rate is: X divides engagements by impressions,
Instagram by reach, YouTube and TikTok by views (impressions here), LinkedIn counts clicks
too. A `RateDefinition` says which interaction counts a platform sums and what it divides
them by, so each platform's native rate is computed as the platform reports it; comparisons
across platforms use a normalised index instead (analytics/platforms.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Interaction = Literal["likes", "comments", "shares", "saves", "clicks"]
INTERACTIONS: tuple[str, ...] = ("likes", "comments", "shares", "saves")  # the raw columns


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateDefinition(_Frozen):
    """A platform's native engagement rate: the sum of `counts` divided by `per`."""

    counts: tuple[Interaction, ...]
    per: Literal["reach", "impressions"]
    reported_as: str  # how the platform's own analytics name it


class PlatformSpec(_Frozen):
    """One platform: its rate definition and its behaviour in the simulator. The simulator's
    factors are multiplicative and at most 1 (relative to the widest-reaching platform), so
    the simulator applies them by thinning counts it has already drawn."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    rate: RateDefinition
    account_share: float = Field(ge=0, le=1)  # of simulated accounts
    reach: float = Field(gt=0, le=1)  # reach and impressions are thinned by this
    engagement: float = Field(gt=0, le=1)  # interactions per reached account, times this
    shares: float = Field(gt=0, le=1)  # shares, on top of `engagement`


def _rate(per: Literal["reach", "impressions"], reported_as: str, *counts: Interaction):
    return RateDefinition(counts=counts, per=per, reported_as=reported_as)


_ALL: tuple[Interaction, ...] = ("likes", "comments", "shares", "saves")
DEFAULT_PLATFORMS = (
    PlatformSpec(
        name="instagram",
        rate=_rate("reach", "engagements / reach", *_ALL),
        account_share=0.30,
        reach=0.85,
        engagement=0.85,
        shares=0.70,
    ),
    PlatformSpec(
        name="tiktok",
        rate=_rate("impressions", "engagements / views", *_ALL),
        account_share=0.20,
        reach=1.00,
        engagement=1.00,
        shares=1.00,
    ),
    PlatformSpec(
        name="x",
        rate=_rate("impressions", "engagements / impressions", "likes", "comments", "shares"),
        account_share=0.15,
        reach=0.80,
        engagement=0.50,
        shares=1.00,
    ),
    PlatformSpec(
        name="facebook",
        rate=_rate("reach", "engagements / reach", "likes", "comments", "shares"),
        account_share=0.15,
        reach=0.70,
        engagement=0.60,
        shares=0.90,
    ),
    PlatformSpec(
        name="youtube",
        rate=_rate("impressions", "engagements / views", "likes", "comments", "shares"),
        account_share=0.10,
        reach=0.90,
        engagement=0.70,
        shares=0.60,
    ),
    PlatformSpec(
        name="linkedin",
        rate=_rate(
            "impressions",
            "(engagements + clicks) / impressions",
            "likes",
            "comments",
            "shares",
            "clicks",
        ),
        account_share=0.10,
        reach=0.60,
        engagement=0.75,
        shares=0.50,
    ),
)


class PlatformSettings(_Frozen):
    """The platform table and the platform a post or a draft without one belongs to."""

    default: str = "instagram"
    platforms: tuple[PlatformSpec, ...] = DEFAULT_PLATFORMS

    @model_validator(mode="after")
    def _consistent(self) -> PlatformSettings:
        names = [p.name for p in self.platforms]
        if len(set(names)) != len(names):
            raise ValueError(f"platforms: a name is listed twice ({', '.join(names)})")
        if self.default not in names:
            raise ValueError(f"platforms.default: {self.default!r} is not one of {names}")
        total = sum(p.account_share for p in self.platforms)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"platforms: account_share sums to {total:g}, not 1")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.platforms)

    def spec(self, name: str) -> PlatformSpec:
        """The platform called `name` (KeyError naming the known ones otherwise)."""
        for p in self.platforms:
            if p.name == name:
                return p
        raise KeyError(f"unknown platform {name!r} (known: {', '.join(self.names)})")


def neutral_platforms(name: str = "instagram") -> PlatformSettings:
    """One platform with every factor 1: the simulator's tables as they were before
    platforms (binomial thinning with probability 1 keeps every count)."""
    spec = next(p for p in DEFAULT_PLATFORMS if p.name == name)
    plain = spec.model_copy(update={"account_share": 1.0, "reach": 1.0, "engagement": 1.0})
    return PlatformSettings(default=name, platforms=(plain.model_copy(update={"shares": 1.0}),))
