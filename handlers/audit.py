"""`/audit`: read the audit log of this chat, filtered by kind and location, paged with buttons."""

from __future__ import annotations

from bot.context import Context
from bot.registry import ActionResult, Router
from cards.audit import AuditLine, AuditPage, audit_card
from cards.help import needs_a_chat_card
from cards.i18n import T
from cards.kit import Card

router = Router("audit")
PAGE = 15


def parse_filters(args: str) -> AuditPage:
    kind = loc = None
    for word in args.split():
        k, sep, v = word.partition(":")
        if sep and k.lower() == "kind" and v:
            kind = v.lower()[:40]
        elif sep and k.lower() in ("location", "loc") and v:
            loc = v[:64]
        elif not sep and kind is None:
            kind = word.lower()[:40]
    return AuditPage(f=kind, loc=loc)


async def build(ctx: Context, page: AuditPage) -> Card:
    rows = await ctx.services.audit.recent(chat_id=ctx.chat_id or None, location_id=page.loc, kind=page.f,
                                           limit=PAGE + 1, before_id=page.before)
    lines = [AuditLine(r.id, r.at, r.actor, r.location_id, r.kind, r.action, r.outcome) for r in rows[:PAGE]]
    return audit_card(lines, page=page, has_more=len(rows) > PAGE)


@router.command("audit", T("Show what the bot did here (filter: kind:…, location:…)",
                           "查看机器人在本群的操作记录（可按 kind:、location: 筛选）"),
                usage="/audit [kind:…] [location:…]", order=90)
async def audit(ctx: Context, args: str) -> Card:
    if not ctx.chat_id:  # e.g. from the bot menu: no chat to scope the log to
        return needs_a_chat_card("/audit")
    return await build(ctx, parse_filters(args))


@router.action(AuditPage)
async def audit_page(ctx: Context, page: AuditPage) -> ActionResult:
    if not ctx.chat_id:
        return ActionResult(card=needs_a_chat_card("/audit"))
    return ActionResult(card=await build(ctx, page))
