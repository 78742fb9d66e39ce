"""What GHL's Social Planner API returns, as lenient pydantic models.

Wire names are camelCase (tags use `_id` and `tag`); Python names are snake_case. Unknown
fields are ignored and almost everything is optional: the spec and real bodies disagree often
enough (reference sections 4 and 13) that a missing field must not fail a whole page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "REPORTING_PLATFORMS",
    "Account",
    "AccountGroup",
    "Accounts",
    "AgeTotals",
    "Breakdown",
    "Breakdowns",
    "Demographics",
    "Engagement",
    "GenderTotals",
    "Num",
    "PlatformTotals",
    "PlatformValue",
    "Post",
    "PostPerformance",
    "PostsPage",
    "SeriesTotal",
    "Share",
    "Statistics",
    "Tag",
    "TagsPage",
    "TokenResponse",
    "Totals",
]

REPORTING_PLATFORMS: tuple[str, ...] = (
    "facebook",
    "instagram",
    "linkedin",
    "google",
    "pinterest",
    "youtube",
    "tiktok",
)

Num = int | float


class GhlModel(BaseModel):
    """camelCase on the wire, snake_case in Python; either accepted on input.

    `null` counts as "absent" everywhere, so a field's default applies instead of failing.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel, frozen=False)

    @model_validator(mode="before")
    @classmethod
    def drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


def _with_ids(items: Any, key: str) -> Any:
    """Keep the list items that are objects carrying `key`; a malformed one must not sink a page."""
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict) and isinstance(i.get(key), str) and i[key]]


def _lenient_datetime(value: Any) -> datetime | None:
    """ISO strings (with `Z`), epoch milliseconds, or junk → datetime (UTC) or None."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 10_000_000_000 else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


# ----- tags ------------------------------------------------------------------------------


class Tag(GhlModel):
    id: str = Field(alias="_id")
    name: str = Field(default="", alias="tag")
    location_id: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False

    @field_validator("created_at", "updated_at", mode="before")
    @classmethod
    def parse_dates(cls, value: Any) -> datetime | None:
        return _lenient_datetime(value)


class TagsPage(GhlModel):
    tags: list[Tag] = Field(default_factory=list)
    count: int | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def usable_tags(cls, value: Any) -> Any:
        return _with_ids(value, "_id")


# ----- accounts --------------------------------------------------------------------------


class Account(GhlModel):
    id: str = ""
    oauth_id: str | None = None
    profile_id: str | None = None
    name: str | None = None
    platform: str | None = None
    type: str | None = None
    expire: str | None = None
    is_expired: bool = False
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("meta", mode="before")
    @classmethod
    def meta_dict(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {}

    @property
    def reports_statistics(self) -> bool:
        """Worth sending to /statistics: a live account on a platform that reports."""
        platform = (self.platform or "").lower()
        return bool(self.profile_id) and not self.is_expired and platform in REPORTING_PLATFORMS


class AccountGroup(GhlModel):
    id: str = ""
    name: str = ""
    account_ids: list[str] = Field(default_factory=list)


class Accounts(GhlModel):
    accounts: list[Account] = Field(default_factory=list)
    groups: list[AccountGroup] = Field(default_factory=list)


# ----- statistics ------------------------------------------------------------------------


class Totals(GhlModel):
    posts: Num = 0
    likes: Num = 0
    followers: Num = 0
    impressions: Num = 0
    comments: Num = 0


class PostPerformance(GhlModel):
    posts: dict[str, list[Num]] = Field(default_factory=dict)
    impressions: list[Num] = Field(default_factory=list)
    likes: list[Num] = Field(default_factory=list)
    comments: list[Num] = Field(default_factory=list)


class PlatformValue(GhlModel):
    value: Num = 0
    change: Num = 0


class Breakdown(GhlModel):
    total: Num = 0
    total_change: Num = 0
    platforms: dict[str, PlatformValue] = Field(default_factory=dict)


class Engagement(GhlModel):
    likes: Num = 0
    comments: Num = 0
    shares: Num = 0
    change: Num = 0


class Breakdowns(GhlModel):
    posts: Breakdown = Field(default_factory=Breakdown)
    impressions: Breakdown = Field(default_factory=Breakdown)
    reach: Breakdown = Field(default_factory=Breakdown)
    engagement: dict[str, Engagement] = Field(default_factory=dict)


class SeriesTotal(GhlModel):
    total: Num = 0
    series: list[Num] = Field(default_factory=list)


class PlatformTotals(GhlModel):
    impressions: dict[str, SeriesTotal] = Field(default_factory=dict)
    followers: dict[str, SeriesTotal] = Field(default_factory=dict)
    likes: dict[str, SeriesTotal] = Field(default_factory=dict)


class Share(GhlModel):
    total: Num = 0
    percentage: Num = 0


class GenderTotals(GhlModel):
    totals: dict[str, Share] = Field(default_factory=dict)  # male / female / unknown


class AgeTotals(GhlModel):
    totals: dict[str, Num] = Field(default_factory=dict)  # "13-17" … "65+" → count

    @field_validator("totals", mode="before")
    @classmethod
    def flatten_shares(cls, value: Any) -> Any:
        """The spec says numbers; accept `{total, percentage}` objects too."""
        if not isinstance(value, dict):
            return {}
        return {k: v.get("total", 0) if isinstance(v, dict) else v for k, v in value.items()}


class Demographics(GhlModel):
    gender: GenderTotals = Field(default_factory=GenderTotals)
    age: AgeTotals = Field(default_factory=AgeTotals)


class Statistics(GhlModel):
    """The `results` object of POST /social-media-posting/statistics (a rolling 7-day window)."""

    day_range: list[str] = Field(default_factory=list)
    totals: Totals = Field(default_factory=Totals)
    post_performance: PostPerformance = Field(default_factory=PostPerformance)
    breakdowns: Breakdowns = Field(default_factory=Breakdowns)
    platform_totals: PlatformTotals = Field(default_factory=PlatformTotals)
    demographics: Demographics = Field(default_factory=Demographics)


# ----- posts -----------------------------------------------------------------------------


class Post(GhlModel):
    id: str = Field(alias="_id")
    location_id: str | None = None
    source: str | None = None
    platform: str | None = None
    account_id: str | None = None
    account_ids: list[str] = Field(default_factory=list)
    summary: str = ""
    media: list[Any] = Field(default_factory=list)
    status: str | None = None
    type: str | None = None
    tags: list[str] = Field(default_factory=list)
    post_id: str | None = None
    error: str | None = None
    created_by: str | None = None
    published_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    display_date: datetime | None = None
    user: dict[str, Any] | None = None
    insights: dict[str, Any] | None = None

    @field_validator("published_at", "created_at", "updated_at", "display_date", mode="before")
    @classmethod
    def parse_dates(cls, value: Any) -> datetime | None:
        return _lenient_datetime(value)

    @field_validator("tags", "account_ids", mode="before")
    @classmethod
    def string_list(cls, value: Any) -> Any:
        return [str(v) for v in value if v] if isinstance(value, list) else []

    @field_validator("status", "type", "error", mode="before")
    @classmethod
    def stringish(cls, value: Any) -> Any:
        return str(value)

    @property
    def effective_date(self) -> datetime | None:
        """When the post went (or goes) out: published, else display, else created."""
        return self.published_at or self.display_date or self.created_at


class PostsPage(GhlModel):
    posts: list[Post] = Field(default_factory=list)
    count: int | None = None

    @field_validator("posts", mode="before")
    @classmethod
    def usable_posts(cls, value: Any) -> Any:
        return _with_ids(value, "_id")


# ----- OAuth -----------------------------------------------------------------------------


class TokenResponse(BaseModel):
    """POST /oauth/token: snake_case token fields, camelCase install metadata."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    access_token: str = Field(repr=False)
    token_type: str = "Bearer"
    expires_in: float = 86399
    refresh_token: str | None = Field(default=None, repr=False)
    scope: str = ""
    user_type: str | None = Field(default=None, alias="userType")
    location_id: str | None = Field(default=None, alias="locationId")
    company_id: str | None = Field(default=None, alias="companyId")
    user_id: str | None = Field(default=None, alias="userId")
    plan_id: str | None = Field(default=None, alias="planId")
    approved_locations: list[str] = Field(default_factory=list, alias="approvedLocations")
    is_bulk_installation: bool | None = Field(default=None, alias="isBulkInstallation")
