"""`/location [id]`: list the locations this chat can use and choose the one it works on."""

from __future__ import annotations

from bot.context import Context
from bot.ghl.hub import LocationChoice
from bot.permissions import may_configure
from bot.registry import ActionResult, Router
from cards.help import not_allowed_card
from cards.i18n import T
from cards.kit import Card, code, toast
from cards.location import LocationItem, LocationPick, location_card

router = Router("location")


def items(choices: list[LocationChoice], bound: str | None) -> list[LocationItem]:
    return [LocationItem(c.location_id, c.name, c.via, c.status, c.location_id == bound) for c in choices]


async def _card(ctx: Context, note: T | None = None) -> Card:
    hub = ctx.ghl
    choices = await hub.choices(ctx.chat_id)
    bound = await ctx.services.chats.bound_location(ctx.chat_id)
    if bound not in {c.location_id for c in choices} and len(choices) == 1:
        bound = choices[0].location_id
    return location_card(items(choices, bound), can_connect=hub.oauth is not None, note=note)


async def _bind(ctx: Context, location_id: str) -> bool:
    choices = await ctx.ghl.choices(ctx.chat_id)
    if location_id not in {c.location_id for c in choices}:
        await ctx.audit("location", "bind", "refused", location_id=location_id)
        return False
    await ctx.services.chats.bind_location(ctx.chat_id, location_id)
    await ctx.audit("location", "bind", location_id=location_id)
    return True


CHOOSE = T("choose the location this chat works on", "选择本群使用的位置")


@router.command("location", T("List this chat's GHL locations and choose one", "列出并选择本群的 GHL 位置"),
                usage="/location [id]", order=15)
async def location(ctx: Context, args: str) -> Card:
    wanted = args.strip()[:64]
    if not wanted:
        return await _card(ctx)
    allowed, why = await may_configure(ctx)
    if not allowed:
        await ctx.audit("location", "bind", "refused")
        return not_allowed_card(CHOOSE, why)
    if await _bind(ctx, wanted):
        return await _card(ctx, T(f"This chat now works on {code(wanted)}.", f"本群现在使用位置 {code(wanted)}。"))
    return await _card(ctx, T(f"{code(wanted)} is not connected to this chat. Pick one below or `/connect` it.",
                              f"{code(wanted)} 未连接到本群。请在下面选择，或用 `/connect` 连接。"))


@router.action(LocationPick)
async def pick(ctx: Context, p: LocationPick) -> ActionResult:
    allowed, _ = await may_configure(ctx)
    if not allowed:
        await ctx.audit("location", "bind", "refused", location_id=p.loc)
        return ActionResult(toast=toast("warning", T("Only the group owner and admins can change the location.",
                                                     "只有群主和群管理员可以更换位置。")))
    if not await _bind(ctx, p.loc):
        return ActionResult(toast=toast("error", T("That location is not connected to this chat.",
                                                   "该位置未连接到本群。")))
    return ActionResult(card=await _card(ctx), toast=toast("success", T(f"Now using {p.loc}", f"已切换到 {p.loc}")))
