"""Statistics and posts as the bot reads them: which accounts report, and posts per tag.

GHL's statistics are a rolling 7-day window (excluding today) compared with the 7 days
before; only some platforms report at all (reference §4.4). `AccountReport` says which
connected accounts were asked and why the others were not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.ghl.client import GhlClient
from bot.ghl.models import Account, Post, Statistics

MAX_PROFILES = 100


@dataclass(frozen=True)
class AccountReport:
    reporting: list[Account] = field(default_factory=list)
    expired: list[Account] = field(default_factory=list)
    unsupported: list[Account] = field(default_factory=list)  # platform or account type that never reports


@dataclass(frozen=True)
class StatsResult:
    location_id: str
    accounts: AccountReport
    statistics: Statistics | None  # None: no account reports statistics
    platform: str | None = None


def classify(accounts: list[Account]) -> AccountReport:
    rep, exp, uns = [], [], []
    for a in accounts:
        if a.is_expired:
            exp.append(a)
        elif a.reports_statistics:
            rep.append(a)
        else:
            uns.append(a)
    return AccountReport(rep, exp, uns)


async def fetch_stats(client: GhlClient, location_id: str, platform: str | None = None) -> StatsResult:
    accounts = classify((await client.accounts(location_id)).accounts)
    chosen = [a for a in accounts.reporting if platform is None or (a.platform or "").lower() == platform]
    profile_ids = list(dict.fromkeys(a.profile_id for a in chosen if a.profile_id))[:MAX_PROFILES]
    if not profile_ids:
        return StatsResult(location_id, accounts, None, platform)
    stats = await client.statistics(location_id, profile_ids, [platform] if platform else None)
    return StatsResult(location_id, accounts, stats, platform)


async def recent_posts(
    client: GhlClient,
    location_id: str,
    *,
    now: datetime,
    days: int = 30,
    tag_id: str | None = None,
    status: str = "all",
    max_pages: int = 4,
    page_size: int = 50,
) -> list[Post]:
    """Posts of the last `days` days, newest first, optionally only those carrying `tag_id`.

    GHL cannot filter by tag, so we page (bounded) and filter here.
    """
    since = now - timedelta(days=days)
    out: list[Post] = []
    for page in range(max_pages):
        batch = await client.list_posts(
            location_id, from_date=since, to_date=now, type=status, skip=page * page_size, limit=page_size
        )
        out.extend(p for p in batch.posts if tag_id is None or tag_id in p.tags)
        if len(batch.posts) < page_size:
            break
    epoch = datetime.fromtimestamp(0, UTC)
    out.sort(key=lambda p: p.published_at or p.display_date or p.created_at or epoch, reverse=True)
    return out
