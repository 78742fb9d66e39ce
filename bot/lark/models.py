"""Typed shapes of what Lark delivers to `POST /lark/events` (schema 2.0 envelopes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Header(_Lenient):
    event_id: str
    event_type: str
    create_time: str = ""
    token: str = ""
    app_id: str = ""
    tenant_key: str = ""


class Envelope(_Lenient):
    """Schema 2.0: `header` + `event` (kept raw until the event type is known)."""

    schema_: str = Field("2.0", alias="schema")
    header: Header
    event: dict[str, Any] = Field(default_factory=dict)


class UserId(_Lenient):
    open_id: str = ""
    union_id: str = ""
    user_id: str | None = None


class Mention(_Lenient):
    key: str
    id: UserId = Field(default_factory=UserId)
    name: str = ""


class Sender(_Lenient):
    sender_id: UserId = Field(default_factory=UserId)
    sender_type: str = "user"
    tenant_key: str = ""


class Message(_Lenient):
    message_id: str
    root_id: str | None = None
    parent_id: str | None = None
    create_time: str = ""
    chat_id: str
    chat_type: str = "p2p"
    message_type: str
    content: str = "{}"
    mentions: list[Mention] = Field(default_factory=list)


class MessageReceived(_Lenient):
    """`im.message.receive_v1`."""

    sender: Sender
    message: Message


class ChatMemberBot(_Lenient):
    """`im.chat.member.bot.added_v1` / `…deleted_v1`."""

    chat_id: str
    operator_id: UserId = Field(default_factory=UserId)
    name: str = ""


class P2pChatEntered(_Lenient):
    """`im.chat.access_event.bot_p2p_chat_entered_v1`."""

    chat_id: str
    operator_id: UserId = Field(default_factory=UserId)


class MenuOperator(_Lenient):
    operator_name: str = ""
    operator_id: UserId = Field(default_factory=UserId)


class BotMenu(_Lenient):
    """`application.bot.menu_v6`."""

    operator: MenuOperator = Field(default_factory=MenuOperator)
    event_key: str


class CardActionBody(_Lenient):
    tag: str = ""
    value: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None
    option: str | None = None
    options: list[str] | None = None
    form_value: dict[str, Any] | None = None
    input_value: str | None = None
    checked: bool | None = None
    timezone: str | None = None


class CardContext(_Lenient):
    open_message_id: str = ""
    open_chat_id: str = ""


class CardAction(_Lenient):
    """`card.action.trigger`: `token` is the delayed-update token, not an access token."""

    operator: UserId = Field(default_factory=UserId)
    token: str = ""
    action: CardActionBody = Field(default_factory=CardActionBody)
    host: str = ""
    context: CardContext = Field(default_factory=CardContext)
