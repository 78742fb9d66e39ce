"""Chat lifecycle: greet when added or when a DM opens, forget when removed, run bot-menu items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.context import Context
from bot.dispatch import run_command
from bot.lark.models import BotMenu, ChatMemberBot, P2pChatEntered
from bot.registry import Router
from handlers.help import build_help

router = Router("chat_events")


@router.event("im.chat.member.bot.added_v1")
async def bot_added(ctx: Context, event: dict[str, Any]) -> None:
    ev = ChatMemberBot.model_validate(event)
    ctx.chat_id, ctx.user_id = ev.chat_id, ev.operator_id.open_id
    await ctx.services.chats.seen(ev.chat_id, "group", ev.name or None)
    await ctx.audit("chat", "bot added")
    await ctx.send(build_help(ctx, welcome=True), uuid=f"welcome-{ev.chat_id}", what="welcome")


@router.event("im.chat.member.bot.deleted_v1")
async def bot_removed(ctx: Context, event: dict[str, Any]) -> None:
    ev = ChatMemberBot.model_validate(event)
    ctx.chat_id, ctx.user_id = ev.chat_id, ev.operator_id.open_id
    await ctx.services.chats.deactivate(ev.chat_id)
    await ctx.audit("chat", "bot removed")


@router.event("im.chat.access_event.bot_p2p_chat_entered_v1")
async def p2p_entered(ctx: Context, event: dict[str, Any]) -> None:
    """Fires on every visit: greet once per user per day."""
    ev = P2pChatEntered.model_validate(event)
    ctx.chat_id, ctx.user_id = ev.chat_id, ev.operator_id.open_id
    svc = ctx.services
    day = datetime.fromtimestamp(svc.clock.time(), UTC).date().isoformat()
    if not await svc.dedupe.first_time([f"greet:{ev.operator_id.open_id}:{day}"], svc.clock.time()):
        return
    await svc.chats.seen(ev.chat_id, "p2p")
    await ctx.send(build_help(ctx, welcome=True), uuid=f"greet-{ev.chat_id}-{day}", what="welcome")


@router.event("application.bot.menu_v6")
async def menu(ctx: Context, event: dict[str, Any]) -> None:
    """A bot-menu item's `event_key` names a command (`tags`, `/stats`, `digest status`)."""
    ev = BotMenu.model_validate(event)
    user = ev.operator.operator_id.open_id
    name, _, args = ev.event_key.strip().lstrip("/").partition(" ")
    ctx.user_id = user
    card = await run_command(ctx, name.lower(), args.strip())
    message_id = await ctx.services.lark.send_card(user, card, receive_id_type="open_id")
    await ctx.audit("message", f"menu /{name}", "ok", message_id=message_id)
