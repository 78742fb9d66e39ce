"""`/stats [location]`: the rolling 7-day statistics, per platform, with drill-down buttons."""

from __future__ import annotations

import asyncio

from bot.context import Context
from bot.ghl.insights import StatsResult, fetch_stats
from bot.ghl.models import Statistics
from bot.registry import ActionResult, Router
from bot.stats_history import utc_day, window_dates
from cards.i18n import T
from cards.kit import Card
from cards.stats import Metric, PlatformLine, StatsData, StatsView, no_stats_card, stats_card

router = Router("stats")


def window_label(ctx: Context) -> tuple[str, list[str]]:
    """GHL's window: the 7 days before today. Real dates, computed by us (GHL only gives weekdays)."""
    days = window_dates(utc_day(ctx.services.clock.time()))
    return f"{days[0].isoformat()} – {days[-1].isoformat()}", [d.strftime("%m-%d") for d in days]


def to_card_data(ctx: Context, r: StatsResult, s: Statistics, others: list[str]) -> StatsData:
    window, labels = window_label(ctx)
    b, t = s.breakdowns, s.totals
    metrics = [Metric("posts", t.posts, b.posts.total_change), Metric("impressions", t.impressions,
                                                                      b.impressions.total_change),
               Metric("reach", b.reach.total, b.reach.total_change), Metric("likes", t.likes, None),
               Metric("comments", t.comments, None), Metric("followers", t.followers, None)]
    names = set(b.impressions.platforms) | set(b.posts.platforms) | set(b.reach.platforms) | set(b.engagement)
    lines = []
    for p in sorted(names):
        eng = b.engagement.get(p)
        imp = b.impressions.platforms.get(p)
        lines.append(PlatformLine(
            p, b.posts.platforms[p].value if p in b.posts.platforms else 0, imp.value if imp else 0,
            b.reach.platforms[p].value if p in b.reach.platforms else 0, eng.likes if eng else 0,
            eng.comments if eng else 0, imp.change if imp else (eng.change if eng else None)))
    series = s.post_performance.impressions
    if len(series) == len(labels):
        daily = list(zip(labels, [float(v) for v in series], strict=True))
    else:  # GHL's own weekday labels when the series length is unexpected
        daily = list(zip(s.day_range, [float(v) for v in series], strict=False))
    return StatsData(location=r.location_id, window=window, metrics=metrics, platforms=lines, daily=daily,
                     platform_filter=r.platform, other_locations=others,
                     expired=[a.name or a.id for a in r.accounts.expired])


async def build(ctx: Context, location_id: str, platform: str | None) -> Card:
    hub = ctx.ghl
    # Statistics and a tag-cache refresh travel together: both are wanted right after /stats.
    result, _ = await asyncio.gather(fetch_stats(hub.client, location_id, platform),
                                     hub.tags.ensure_quietly(location_id))
    if result.statistics is None:
        return no_stats_card(location_id, platform_filter=platform,
                             unsupported=[f"{a.name or a.id} ({a.platform})" for a in result.accounts.unsupported],
                             expired=[a.name or a.id for a in result.accounts.expired])
    others = [c.location_id for c in await hub.choices(ctx.chat_id) if c.location_id != location_id]
    return stats_card(to_card_data(ctx, result, result.statistics, others))


@router.command("stats", T("Post statistics of the last 7 days, per platform", "最近 7 天的帖子统计（按平台）"),
                usage="/stats [location]", order=30)
async def stats(ctx: Context, args: str) -> Card:
    loc = await ctx.location(args.strip() or None)
    await ctx.audit("ghl", "read statistics", location_id=loc)
    return await build(ctx, loc, None)


@router.action(StatsView)
async def view(ctx: Context, p: StatsView) -> ActionResult:
    loc = await ctx.location(p.loc)
    return ActionResult(card=await build(ctx, loc, p.p))
