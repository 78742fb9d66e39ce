"""Telling chats about their GHL connection when nobody asked: an installation that needs reconnecting.

A command that trips over it already answers with the reconnect card in its own chat; the
notice goes to every other chat with access to that location, once per location and day.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
from datetime import UTC, datetime

from bot.services import Services
from cards.connect import reconnect_card
from cards.i18n import T

log = logging.getLogger("bot.ghl.notices")

# The chat whose command is running, if any: it gets the reconnect card as its reply instead.
answering_chat: contextvars.ContextVar[str | None] = contextvars.ContextVar("answering_chat", default=None)

REASON = T("GHL refused to renew its authorisation (it was revoked, expired, or used elsewhere).",
           "GHL 拒绝续期授权（授权已被撤销、已过期或在别处被使用）。")


async def announce_needs_reconnect(svc: Services, location_id: str) -> None:
    day = datetime.fromtimestamp(svc.clock.time(), UTC).date().isoformat()
    skip = answering_chat.get()
    for chat_id in await svc.chats.chats_with_access(location_id):
        if chat_id == skip:
            continue
        try:
            key = hashlib.sha256(f"{chat_id}|{location_id}|{day}".encode()).hexdigest()[:40]
            await svc.lark.send_card(chat_id, reconnect_card(location_id, REASON), uuid=f"rc-{key}")
        except Exception as exc:
            log.warning("reconnect notice failed", extra={"chat_id": chat_id, "error": type(exc).__name__})
            outcome = "error"
        else:
            outcome = "ok"
        await svc.audit.record(kind="connect", action="needs reconnect notice", outcome=outcome, chat_id=chat_id,
                               location_id=location_id)
