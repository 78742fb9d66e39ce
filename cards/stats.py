"""The statistics card: totals with change, per-platform breakdown, a daily chart, drill-down buttons."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from cards.i18n import T
from cards.kit import Card, button, card, chart, clip, columns, esc, hr, markdown, row
from cards.payloads import Payload, RunCommand, register


@register
class StatsView(Payload):
    kind: ClassVar[str] = "stats.view"
    loc: str
    p: str | None = None  # platform filter


PLATFORM_NAMES = {"facebook": "Facebook", "instagram": "Instagram", "linkedin": "LinkedIn", "google": "Google",
                  "pinterest": "Pinterest", "youtube": "YouTube", "tiktok": "TikTok"}

METRIC_LABELS = {"posts": T("Posts", "帖子"), "impressions": T("Impressions", "曝光"), "reach": T("Reach", "触达"),
                 "likes": T("Likes", "点赞"), "comments": T("Comments", "评论"), "followers": T("Followers", "粉丝")}


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    change: float | None  # percent against the previous period


@dataclass(frozen=True)
class PlatformLine:
    platform: str
    posts: float
    impressions: float
    reach: float
    likes: float
    comments: float
    change: float | None


@dataclass(frozen=True)
class StatsData:
    location: str
    window: str  # "2026-11-27 – 2026-12-03"
    metrics: list[Metric]
    platforms: list[PlatformLine]
    daily: list[tuple[str, float]]  # (day label, impressions)
    platform_filter: str | None = None
    other_locations: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)  # account names needing reconnect in GHL


def fmt_num(v: float) -> str:
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:.1f}M"
    if abs(v) >= 10_000:
        return f"{v / 1000:.1f}K"
    return f"{v:,.0f}"


def fmt_change(c: float | None) -> str:
    if c is None:
        return "—"
    arrow = "▲" if c > 0 else "▼" if c < 0 else "■"
    colour = "green" if c > 0 else "red" if c < 0 else "grey"
    return f"<font color='{colour}'>{arrow} {abs(c):.1f}%</font>"


def platform_name(p: str) -> str:
    return PLATFORM_NAMES.get(p, p.title())


def _metric_cell(m: Metric) -> list[dict[str, object]]:
    label = METRIC_LABELS.get(m.key, T.same(m.key))
    return [markdown(T(f"{label.en}\n**{fmt_num(m.value)}**  {fmt_change(m.change)}",
                       f"{label.zh}\n**{fmt_num(m.value)}**  {fmt_change(m.change)}"))]


def _names(names: list[str], most: int = 20) -> str:
    shown = ", ".join(esc(clip(n, 60)) for n in names[:most])
    return shown + (f" (+{len(names) - most})" if len(names) > most else "")


def stats_card(d: StatsData) -> Card:
    body = [markdown(T(f"Last 7 days (**{d.window}**, today excluded) against the 7 days before.",
                       f"最近 7 天（**{d.window}**，不含今天），与前 7 天对比。"))]
    for i in range(0, len(d.metrics), 3):
        body.append(columns(*[_metric_cell(m) for m in d.metrics[i:i + 3]]))
    if d.platforms:
        lines = [f"**{platform_name(p.platform)}** · {fmt_num(p.impressions)} / {fmt_num(p.reach)} / "
                 f"{fmt_num(p.posts)} · ❤ {fmt_num(p.likes)} 💬 {fmt_num(p.comments)} · {fmt_change(p.change)}"
                 for p in d.platforms]
        body.append(hr())
        body.append(markdown(T("**By platform** (impressions / reach / posts · engagement · change)\n",
                               "**按平台**（曝光 / 触达 / 帖子 · 互动 · 变化）\n") + "\n".join(lines)))
    if d.daily:  # the chart's title would be English only (no i18n in a VChart spec): the line names it
        body.append(markdown(T("Impressions per day: ", "每日曝光：") + T.same(
            ", ".join(f"{day} {fmt_num(v)}" for day, v in d.daily))))
        values = [{"day": day, "value": v} for day, v in d.daily]
        body.append(chart({"type": "line", "xField": "day", "yField": "value",
                           "data": [{"id": "impressions", "values": values}]}))
    if d.expired:
        names = _names(d.expired)
        body.append(markdown(T(f"⚠️ Expired accounts (reconnect them in GHL): {names}",
                               f"⚠️ 已过期的账户（请在 GHL 中重新连接）：{names}")))
    buttons = [button(T("All platforms", "全部平台"), StatsView(loc=d.location),
                      type="primary" if d.platform_filter is None else "default")]
    buttons += [button(T.same(platform_name(p.platform)), StatsView(loc=d.location, p=p.platform),
                       type="primary" if d.platform_filter == p.platform else "default") for p in d.platforms[:7]]
    body.append(row(*buttons))
    extra = [button(T(f"Location {loc}", f"位置 {loc}"), StatsView(loc=loc)) for loc in d.other_locations[:5]]
    extra.append(button(T("Tags", "标签"), RunCommand(command="tags", args="")))
    body.append(row(*extra))
    sub = T.same(platform_name(d.platform_filter)) if d.platform_filter else T("all platforms", "全部平台")
    return card(T("Social statistics", "社媒统计"), body, template="blue",
                subtitle=T(f"Location {d.location} · ", f"位置 {d.location} · ") + sub)


def no_stats_card(location: str, *, unsupported: list[str], expired: list[str],
                  platform_filter: str | None = None) -> Card:
    why = T("GHL reports statistics only for Facebook, Instagram, LinkedIn **pages**, Google Business, Pinterest, "
            "YouTube and TikTok **business** accounts.",
            "GHL 只为 Facebook、Instagram、LinkedIn **主页**、Google 商家、Pinterest、YouTube 和 TikTok **企业**账户"
            "提供统计。")
    body = [markdown(T(f"No connected account of location `{location}` reports statistics"
                       + (f" on {platform_name(platform_filter)}" if platform_filter else "") + ". ",
                       f"位置 `{location}` 没有可提供统计的已连接账户"
                       + (f"（{platform_name(platform_filter)}）" if platform_filter else "") + "。") + why)]
    if unsupported:
        body.append(markdown(T("Accounts without statistics: ", "无统计的账户：") + T.same(_names(unsupported))))
    if expired:
        body.append(markdown(T("Expired (reconnect in GHL): ", "已过期（请在 GHL 中重新连接）：")
                             + T.same(_names(expired))))
    if not (unsupported or expired):
        body.append(markdown(T("Connect a social account in GHL's Social Planner first.",
                               "请先在 GHL 社媒排期中连接社交账户。")))
    if platform_filter:
        body.append(row(button(T("All platforms", "全部平台"), StatsView(loc=location), type="primary")))
    return card(T("Social statistics", "社媒统计"), body, template="grey",
                subtitle=T(f"Location {location}", f"位置 {location}"))
