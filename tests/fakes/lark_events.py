"""Build Lark deliveries (events and card callbacks) exactly as Lark sends them.

Envelopes are plain dicts (schema 2.0 unless noted); ``sign_and_encode`` turns one
into the raw body bytes and headers of the HTTP POST (encrypted and signed when the
factory has an encrypt key). Wire format: reference sections 2, 4 and 6.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any, Literal

from bot.lark.crypto import lark_encrypt, lark_signature

__all__ = ["BOT_MENTION_KEY", "LarkEventFactory", "new_message_id"]

BOT_MENTION_KEY = "@_user_1"

Envelope = dict[str, Any]
ChatType = Literal["p2p", "group"]

_DEFAULT_CONTENT: dict[str, dict[str, str]] = {
    "image": {"image_key": "img_v2_test"},
    "file": {"file_key": "file_v2_test", "file_name": "test.txt"},
    "audio": {"file_key": "file_v2_audio", "duration": "1000"},
    "media": {"file_key": "file_v2_media", "image_key": "img_v2_media"},
    "sticker": {"file_key": "file_v2_sticker"},
}


def _now_ms() -> str:
    return str(int(time.time() * 1000))


def _now_us() -> str:
    return str(int(time.time() * 1_000_000))


def new_message_id() -> str:
    """A random ``om_…`` message id."""
    return f"om_{uuid.uuid4().hex}"


def _user_id(open_id: str) -> dict[str, str]:
    """Derive stable union/user ids from an open_id."""
    tail = open_id.removeprefix("ou_")
    return {"open_id": open_id, "union_id": f"on_{tail}", "user_id": f"u_{tail}"}


class LarkEventFactory:
    """Builds envelopes for one app, and signs/encrypts them like Lark."""

    def __init__(
        self,
        app_id: str,
        verification_token: str,
        encrypt_key: str | None,
        bot_open_id: str = "ou_bot",
        *,
        tenant_key: str = "tenant_test",
        bot_name: str = "Bot",
    ) -> None:
        self.app_id = app_id
        self.verification_token = verification_token
        self.encrypt_key = encrypt_key
        self.bot_open_id = bot_open_id
        self.tenant_key = tenant_key
        self.bot_name = bot_name

    # ----- envelopes -------------------------------------------------------------

    def _header(self, event_type: str, event_id: str | None, create_time: str) -> dict[str, str]:
        return {
            "event_id": event_id or uuid.uuid4().hex,
            "event_type": event_type,
            "create_time": create_time,
            "token": self.verification_token,
            "app_id": self.app_id,
            "tenant_key": self.tenant_key,
        }

    def raw(
        self, event_type: str, event: dict[str, Any], *, event_id: str | None = None
    ) -> Envelope:
        """A schema 2.0 event envelope of any type (``create_time`` in ms)."""
        return {
            "schema": "2.0",
            "header": self._header(event_type, event_id, _now_ms()),
            "event": event,
        }

    def _mention(self) -> dict[str, Any]:
        bot_ids = {"open_id": self.bot_open_id, "union_id": "on_bot", "user_id": ""}
        return {
            "key": BOT_MENTION_KEY,
            "id": bot_ids,
            "name": self.bot_name,
            "tenant_key": self.tenant_key,
        }

    def _sender(self, open_id: str, sender_type: str) -> dict[str, Any]:
        return {
            "sender_id": _user_id(open_id),
            "sender_type": sender_type,
            "tenant_key": self.tenant_key,
        }

    def _message_event(
        self,
        *,
        message_type: str,
        content: dict[str, Any],
        chat_id: str,
        chat_type: ChatType,
        sender_open_id: str,
        sender_type: str,
        message_id: str | None,
        event_id: str | None,
        mention_bot: bool,
    ) -> Envelope:
        now = _now_ms()
        message: dict[str, Any] = {
            "message_id": message_id or new_message_id(),
            "root_id": "",
            "parent_id": "",
            "create_time": now,
            "update_time": now,
            "chat_id": chat_id,
            "thread_id": "",
            "chat_type": chat_type,
            "message_type": message_type,
            "content": json.dumps(content, ensure_ascii=False),
        }
        if mention_bot:
            message["mentions"] = [self._mention()]
        event = {"sender": self._sender(sender_open_id, sender_type), "message": message}
        return self.raw("im.message.receive_v1", event, event_id=event_id)

    def message(
        self,
        text: str,
        *,
        chat_id: str,
        chat_type: ChatType = "p2p",
        sender_open_id: str = "ou_user",
        message_id: str | None = None,
        event_id: str | None = None,
        mention_bot: bool = False,
        sender_type: str = "user",
        message_type: str = "text",
        content: dict[str, Any] | None = None,
    ) -> Envelope:
        """``im.message.receive_v1``; with ``mention_bot`` the text starts with ``@_user_1 ``.

        For non-text types pass ``content`` (a stand-in is used for image/file/... otherwise).
        """
        if content is None:
            if message_type == "text":
                content = {"text": f"{BOT_MENTION_KEY} {text}" if mention_bot else text}
            else:
                content = dict(_DEFAULT_CONTENT.get(message_type, {}))
        return self._message_event(
            message_type=message_type,
            content=content,
            chat_id=chat_id,
            chat_type=chat_type,
            sender_open_id=sender_open_id,
            sender_type=sender_type,
            message_id=message_id,
            event_id=event_id,
            mention_bot=mention_bot,
        )

    def post_message(
        self,
        paragraphs: list[list[dict[str, Any]]],
        title: str = "",
        *,
        chat_id: str,
        chat_type: ChatType = "p2p",
        sender_open_id: str = "ou_user",
        message_id: str | None = None,
        event_id: str | None = None,
        mention_bot: bool = False,
        sender_type: str = "user",
    ) -> Envelope:
        """A rich-text ``post`` message (no locale wrapper, one list per paragraph).

        With ``mention_bot`` and no ``at`` node for ``@_user_1`` in ``paragraphs``, one is
        put at the start of the first paragraph.
        """
        paragraphs = [list(p) for p in paragraphs] or [[]]
        has_at = any(
            n.get("tag") == "at" and n.get("user_id") == BOT_MENTION_KEY
            for p in paragraphs
            for n in p
        )
        if mention_bot and not has_at:
            paragraphs[0].insert(
                0, {"tag": "at", "user_id": BOT_MENTION_KEY, "user_name": self.bot_name}
            )
        return self._message_event(
            message_type="post",
            content={"title": title, "content": paragraphs},
            chat_id=chat_id,
            chat_type=chat_type,
            sender_open_id=sender_open_id,
            sender_type=sender_type,
            message_id=message_id,
            event_id=event_id,
            mention_bot=mention_bot,
        )

    def card_action(
        self,
        value: dict[str, Any],
        *,
        chat_id: str,
        message_id: str,
        operator_open_id: str = "ou_user",
        token: str | None = None,
        form_value: dict[str, Any] | None = None,
        option: str | None = None,
        options: list[str] | None = None,
        input_value: str | None = None,
        name: str | None = None,
        tag: str = "button",
        checked: bool | None = None,
        event_id: str | None = None,
    ) -> Envelope:
        """``card.action.trigger`` callback (``create_time`` in microseconds)."""
        action: dict[str, Any] = {"tag": tag, "value": value}
        extras = {
            "form_value": form_value,
            "option": option,
            "options": options,
            "input_value": input_value,
            "name": name,
            "checked": checked,
        }
        action.update({k: v for k, v in extras.items() if v is not None})
        operator = {"tenant_key": self.tenant_key, **_user_id(operator_open_id)}
        event = {
            "operator": operator,
            "token": token or f"c-{uuid.uuid4()}",
            "action": action,
            "host": "im_message",
            "context": {"open_message_id": message_id, "open_chat_id": chat_id},
        }
        header = self._header("card.action.trigger", event_id, _now_us())
        return {"schema": "2.0", "header": header, "event": event}

    def _chat_member_event(self, chat_id: str, operator_open_id: str, name: str) -> dict[str, Any]:
        return {
            "chat_id": chat_id,
            "operator_id": _user_id(operator_open_id),
            "external": False,
            "operator_tenant_key": self.tenant_key,
            "name": name,
            "i18n_names": {"en_us": name, "zh_cn": name},
        }

    def bot_added(
        self, chat_id: str, operator_open_id: str = "ou_user", *, name: str = "Test group"
    ) -> Envelope:
        """``im.chat.member.bot.added_v1``."""
        return self.raw(
            "im.chat.member.bot.added_v1", self._chat_member_event(chat_id, operator_open_id, name)
        )

    def bot_deleted(
        self, chat_id: str, operator_open_id: str = "ou_user", *, name: str = "Test group"
    ) -> Envelope:
        """``im.chat.member.bot.deleted_v1``."""
        return self.raw(
            "im.chat.member.bot.deleted_v1",
            self._chat_member_event(chat_id, operator_open_id, name),
        )

    def p2p_entered(self, chat_id: str, user_open_id: str = "ou_user") -> Envelope:
        """``im.chat.access_event.bot_p2p_chat_entered_v1`` (a user opened the DM)."""
        event = {
            "chat_id": chat_id,
            "operator_id": _user_id(user_open_id),
            "last_message_id": "",
            "last_message_create_time": "",
        }
        return self.raw("im.chat.access_event.bot_p2p_chat_entered_v1", event)

    def menu(
        self, event_key: str, operator_open_id: str = "ou_user", *, operator_name: str = "User"
    ) -> Envelope:
        """``application.bot.menu_v6`` (bot menu item of type "event")."""
        event = {
            "operator": {"operator_name": operator_name, "operator_id": _user_id(operator_open_id)},
            "event_key": event_key,
            "timestamp": int(time.time()),
        }
        return self.raw("application.bot.menu_v6", event)

    def url_verification(
        self, challenge: str | None = None, *, token: str | None = None
    ) -> Envelope:
        """Schema 1.0 flat ``url_verification`` body."""
        return {
            "challenge": challenge or secrets.token_urlsafe(16),
            "token": self.verification_token if token is None else token,
            "type": "url_verification",
        }

    # ----- wire encoding -----------------------------------------------------------

    def sign_and_encode(
        self,
        envelope: Envelope,
        *,
        encrypt: bool = True,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """Return (raw body, headers) of the POST Lark would make.

        With an encrypt key the body is ``{"encrypt": …}`` (unless ``encrypt=False``) and
        is always signed; without one it is plaintext JSON with no signature headers.
        """
        plaintext = json.dumps(envelope, ensure_ascii=False)
        headers = {"Content-Type": "application/json"}
        if self.encrypt_key is None:
            return plaintext.encode("utf-8"), headers
        if encrypt:
            plaintext = json.dumps({"encrypt": lark_encrypt(plaintext, self.encrypt_key)})
        body = plaintext.encode("utf-8")
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(8) if nonce is None else nonce
        headers["X-Lark-Request-Timestamp"] = ts
        headers["X-Lark-Request-Nonce"] = nonce
        headers["X-Lark-Signature"] = lark_signature(ts, nonce, self.encrypt_key, body)
        return body, headers
