"""Who may change a chat's shared settings (location, digest, auto-tagging)."""

from __future__ import annotations

import httpx

from bot.context import Context
from bot.lark.client import LarkApiError
from cards.i18n import T

LARK_UNREACHABLE = T("(I could not check this chat's owner and admins with Lark just now; try again later.)",
                     "（我刚才无法向 Lark 查询这个群的群主和管理员，请稍后再试。）")


async def may_configure(ctx: Context) -> tuple[bool, T | None]:
    """p2p: yes. Group: the owner, a group admin (asked from Lark), or an allow-listed admin (DIGEST_ADMINS).

    The second value explains a refusal that was not the user's fault (Lark could not be asked).
    """
    svc = ctx.services
    chat_type = ctx.chat_type or await svc.chats.chat_type(ctx.chat_id)
    if chat_type == "p2p":
        return True, None
    if ctx.user_id and ctx.user_id in svc.settings.digest_admin_ids:
        return True, None
    if not ctx.chat_id:
        return False, None
    try:
        info = await svc.lark.chat_info(ctx.chat_id)
    except (LarkApiError, httpx.HTTPError):
        return False, LARK_UNREACHABLE
    managers = info.get("user_manager_id_list") or []
    if ctx.user_id and (ctx.user_id == info.get("owner_id") or ctx.user_id in managers):
        return True, None
    return False, None
