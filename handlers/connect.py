"""`/connect`: link this chat to a GHL sub-account through the Marketplace OAuth app."""

from __future__ import annotations

from bot.context import Context
from bot.ghl.oauth_routes import STATE_TTL, new_state
from bot.registry import Router
from cards.connect import connect_card, connect_link_sent_card, connect_unavailable_card
from cards.help import needs_a_chat_card
from cards.i18n import T
from cards.kit import Card

router = Router("connect")


@router.command("connect", T("Connect a GoHighLevel sub-account to this chat", "把 GoHighLevel 子账户连接到本群"),
                order=10)
async def connect(ctx: Context, args: str) -> Card:
    if not ctx.chat_id:  # e.g. from the bot menu: there is no chat to connect
        return needs_a_chat_card("/connect")
    hub = ctx.ghl
    base = ctx.services.settings.public_base_url
    if hub.oauth is None or base is None:
        return connect_unavailable_card(private_location=hub.private_location)
    state = await new_state(hub, ctx.chat_id, ctx.user_id)
    url, minutes = f"{base}/oauth/ghl/start?state={state}", int(STATE_TTL // 60)
    chat_type = ctx.chat_type or await ctx.services.chats.chat_type(ctx.chat_id)
    if chat_type != "p2p" and ctx.user_id:
        # In a group the link would connect whatever sub-account the first person to open it chooses:
        # it goes to the requester's direct chat instead, and the group only hears that it was sent.
        try:
            await ctx.services.lark.send_card(ctx.user_id, connect_card(url, minutes=minutes, private=True),
                                              receive_id_type="open_id", uuid=f"connect-{state[:40]}")
        except Exception as exc:  # cannot reach the user directly: the group gets the link, and says so
            await ctx.audit("connect", "link issued", "error", error=type(exc).__name__)
        else:
            await ctx.audit("connect", "link issued", sent_to="direct chat")
            return connect_link_sent_card(ctx.user_id, minutes=minutes)
    await ctx.audit("connect", "link issued")
    return connect_card(url, minutes=minutes, private=chat_type == "p2p")
