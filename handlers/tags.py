"""`/tags [search]`: the location's Social Planner tags, searchable and paged in place; details per tag."""

from __future__ import annotations

from bot.clock import utcnow
from bot.context import Context
from bot.ghl.insights import recent_posts
from bot.ghl.models import Post
from bot.registry import ActionResult, Router
from cards.i18n import T
from cards.kit import Card
from cards.tags import PAGE_SIZE, PostRow, TagOpen, TagPage, TagRow, TagSearch, tag_detail_card, tag_list_card

router = Router("tags")
DETAIL_DAYS = 30


async def build_list(ctx: Context, page: TagPage) -> Card:
    tags, total = await ctx.ghl.tags.page(page.loc, page.q, page.off, PAGE_SIZE)
    if page.off and page.off >= total > 0:  # the list shrank since the card was drawn
        page = TagPage(loc=page.loc, q=page.q, off=max(0, (total - 1) // PAGE_SIZE * PAGE_SIZE))
        tags, total = await ctx.ghl.tags.page(page.loc, page.q, page.off, PAGE_SIZE)
    rows = [TagRow(t.id, t.name, t.created_at) for t in tags]
    return tag_list_card(page.loc, rows, total=total, page=page)


@router.command("tags", T("List Social Planner tags (optionally matching a search)", "列出社媒排期标签（可搜索）"),
                usage="/tags [search]", order=20)
async def tags(ctx: Context, args: str) -> Card:
    loc = await ctx.location()
    return await build_list(ctx, TagPage(loc=loc, q=args.strip()[:100] or None))


@router.action(TagPage)
async def page(ctx: Context, p: TagPage) -> ActionResult:
    await ctx.location(p.loc)  # the chat must still be allowed to use it
    return ActionResult(card=await build_list(ctx, p))


@router.action(TagSearch)
async def search(ctx: Context, p: TagSearch) -> ActionResult:
    await ctx.location(p.loc)
    form = (ctx.action.form_value if ctx.action else None) or {}
    q = str(form.get("q") or "").strip()[:100] or None
    return ActionResult(card=await build_list(ctx, TagPage(loc=p.loc, q=q)))


def _when(post: Post) -> str | None:
    when = post.published_at or post.display_date or post.created_at
    return when.isoformat() if when else None


@router.action(TagOpen)
async def open_tag(ctx: Context, p: TagOpen) -> ActionResult:
    await ctx.location(p.loc)
    hub = ctx.ghl
    found = await hub.client.tag_details(p.loc, [p.id])
    if not found:
        return ActionResult(card=await build_list(ctx, TagPage(loc=p.loc)))
    tag = found[0]
    posts = await recent_posts(hub.client, p.loc, now=utcnow(ctx.services.clock), days=DETAIL_DAYS, tag_id=p.id)
    rows = [PostRow(x.summary, x.status or "", _when(x), x.platform) for x in posts]
    detail = TagRow(tag.id, tag.name, tag.created_at.isoformat() if tag.created_at else None)
    return ActionResult(card=tag_detail_card(p.loc, detail, rows, days=DETAIL_DAYS, back=TagPage(loc=p.loc)))
