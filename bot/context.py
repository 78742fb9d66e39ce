"""What a handler receives: who asked, in which chat, and the bot's services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.ghl.hub import GhlHub
from bot.lark.models import CardActionBody
from bot.services import Services
from cards.kit import Card
from cards.payloads import RunCommand


@dataclass
class Context:
    services: Services
    chat_id: str
    user_id: str
    chat_type: str | None = None
    message_id: str | None = None  # the command's message: replies thread under it
    message_type: str | None = None  # "text", "post", … for messages
    action: CardActionBody | None = None  # set for card clicks (form values, selected options)
    open_message_id: str | None = None  # the card that was clicked
    command: RunCommand | None = None  # the command being run, so an error card can offer "try again"

    @property
    def ghl(self) -> GhlHub:
        if self.services.ghl is None:
            raise RuntimeError("GHL is not wired into this app")
        return self.services.ghl

    async def location(self, requested: str | None = None) -> str:
        """The GHL location this chat works on (raises `NoLocation` with the choices)."""
        return await self.ghl.location_for(self.chat_id, requested or None)

    async def audit(self, kind: str, action: str, outcome: str = "ok", *, location_id: str | None = None,
                    **detail: Any) -> None:
        await self.services.audit.record(kind=kind, action=action, outcome=outcome, actor=self.user_id or None,
                                         chat_id=self.chat_id or None, location_id=location_id, detail=detail)

    async def send(self, card: Card, *, uuid: str | None = None, what: str = "card") -> str:
        """A new message in this chat (not a reply), audited."""
        try:
            message_id = await self.services.lark.send_card(self.chat_id, card, uuid=uuid)
        except Exception as exc:
            await self.audit("message", f"send {what}", "error", error=type(exc).__name__)
            raise
        await self.audit("message", f"send {what}", "ok", message_id=message_id)
        return message_id
