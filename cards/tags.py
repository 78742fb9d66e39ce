"""Tag cards: the searchable, paged tag list and one tag's details with its recent posts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cards.i18n import T
from cards.kit import Card, button, card, clip, columns, esc, form, hr, markdown, row, text_input
from cards.payloads import Payload, RunCommand, register

PAGE_SIZE = 10


@register
class TagPage(Payload):
    kind: ClassVar[str] = "tags.page"
    loc: str
    q: str | None = None
    off: int = 0


@register
class TagOpen(Payload):
    kind: ClassVar[str] = "tags.open"
    loc: str
    id: str


@register
class TagSearch(Payload):
    """The search form's submit button; the text arrives in `form_value["q"]`."""

    kind: ClassVar[str] = "tags.search"
    loc: str


@dataclass(frozen=True)
class TagRow:
    id: str
    name: str
    created: str | None  # ISO date or None


@dataclass(frozen=True)
class PostRow:
    summary: str
    status: str
    when: str | None
    platform: str | None


def _date(iso: str | None) -> str:
    return iso[:10] if iso else "—"


def tag_list_card(location: str, tags: list[TagRow], *, total: int, page: TagPage) -> Card:
    q = page.q
    if total == 0:
        body = [markdown(T(f"No tag matches **{esc(q)}**.", f"没有匹配 **{esc(q)}** 的标签。") if q
                         else T("This location has no Social Planner tags yet. Tags are created in GHL's "
                                "Social Planner (GHL's API cannot create them).",
                                "该位置还没有社媒排期标签。标签需在 GHL 社媒排期中创建（GHL 的 API 无法创建标签）。"))]
    else:
        first, last = page.off + 1, page.off + len(tags)
        body = [markdown(T(f"Showing **{first}–{last}** of **{total}**",
                           f"第 **{first}–{last}** 个，共 **{total}** 个"))]
        for t in tags:
            body.append(columns(
                [markdown(T.same(f"**{esc(clip(t.name, 120))}**  ·  {_date(t.created)}"))],
                [button(T("Details", "详情"), TagOpen(loc=location, id=t.id), type="text")],
                weights=[4, 1]))
    nav = []
    if page.off > 0:
        nav.append(button(T("‹ Prev", "‹ 上一页"), TagPage(loc=location, q=q, off=max(0, page.off - PAGE_SIZE))))
    if page.off + PAGE_SIZE < total:
        nav.append(button(T("Next ›", "下一页 ›"), TagPage(loc=location, q=q, off=page.off + PAGE_SIZE),
                          type="primary"))
    if q:
        nav.append(button(T("Clear search", "清除搜索"), TagPage(loc=location)))
    if nav:
        body.append(row(*nav))
    body.append(hr())
    body.append(form("tag_search", [
        text_input("q", placeholder=T("Search tags…", "搜索标签…"), max_length=100, default=q),
        button(T("Search", "搜索"), TagSearch(loc=location), type="primary", name="search", submit=True),
    ]))
    subtitle = T(f"Location {location}" + (f" · search “{q}”" if q else ""),
                 f"位置 {location}" + (f" · 搜索“{q}”" if q else ""))
    return card(T("Social Planner tags", "社媒排期标签"), body, subtitle=subtitle, template="turquoise")


def tag_detail_card(location: str, tag: TagRow, posts: list[PostRow], *, days: int, back: TagPage) -> Card:
    body = [markdown(T(f"**{esc(clip(tag.name, 200))}**\nCreated {_date(tag.created)} · id `{tag.id}`",
                       f"**{esc(clip(tag.name, 200))}**\n创建于 {_date(tag.created)} · id `{tag.id}`"))]
    if posts:
        lines = [f"- `{_date(p.when)}` {p.platform or ''} · {p.status} — {esc(p.summary[:90]) or '(no text)'}"
                 for p in posts[:10]]
        body.append(markdown(T(f"**{len(posts)}** posts with this tag in the last {days} days:\n" + "\n".join(lines),
                               f"最近 {days} 天内有 **{len(posts)}** 篇帖子使用此标签：\n" + "\n".join(lines))))
    else:
        body.append(markdown(T(f"No posts used this tag in the last {days} days.",
                               f"最近 {days} 天内没有帖子使用此标签。")))
    body.append(row(button(T("‹ Back to tags", "‹ 返回标签列表"), back),
                    button(T("Statistics", "统计"), RunCommand(command="stats", args=location))))
    return card(T("Tag details", "标签详情"), body, subtitle=T(f"Location {location}", f"位置 {location}"),
                template="turquoise")
