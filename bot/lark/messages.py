"""Turn a received message into command text: parse `content`, join rich text, strip mentions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from bot.lark.models import Mention, Message

_SPACES = re.compile(r"[ \t\u00a0\u3000]+")


@dataclass(frozen=True)
class ParsedText:
    text: str  # mentions of the bot removed, other mentions kept as their display names
    mentioned_bot: bool


def _plain_from_post(content: dict[str, Any]) -> str:
    """Join `text`/`a`/`at` nodes; one line per paragraph (receive form: no locale wrapper)."""
    body = content.get("content")
    if body is None:  # some clients still wrap per locale
        for value in content.values():
            if isinstance(value, dict) and "content" in value:
                body, content = value["content"], value
                break
    lines: list[str] = []
    title = content.get("title")
    if isinstance(title, str) and title.strip():
        lines.append(title.strip())
    for paragraph in body or []:
        parts: list[str] = []
        for node in paragraph if isinstance(paragraph, list) else []:
            if not isinstance(node, dict):
                continue
            tag = node.get("tag")
            if tag in ("text", "a", "code_block"):
                parts.append(str(node.get("text", "")))
            elif tag == "at":
                parts.append(str(node.get("user_id", "")))
        lines.append("".join(parts))
    return "\n".join(lines)


def raw_text(message: Message) -> str:
    """The message as plain text with `@_user_N` placeholders still in it; '' if not text-like."""
    try:
        content = orjson.loads(message.content or "{}")
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(content, dict):
        return ""
    if message.message_type == "text":
        return str(content.get("text", ""))
    if message.message_type == "post":
        return _plain_from_post(content)
    return ""


def strip_mentions(text: str, mentions: list[Mention], bot_open_id: str | None) -> ParsedText:
    """Remove the bot's `@_user_N`; replace other placeholders by `@Name`."""
    mentioned = False
    for m in sorted(mentions, key=lambda m: len(m.key), reverse=True):  # @_user_10 before @_user_1
        is_bot = bool(bot_open_id) and m.id.open_id == bot_open_id
        if not bot_open_id and m.key == "@_user_1" and text.lstrip().startswith(m.key):
            is_bot = True  # bot id unknown yet: a leading first mention addresses the bot
        if is_bot:
            mentioned = True
            text = text.replace(m.key, " ")
        else:
            text = text.replace(m.key, f"@{m.name}" if m.name else "")
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return ParsedText("\n".join(line for line in lines if line).strip(), mentioned)


@dataclass(frozen=True)
class Command:
    name: str
    args: str


def parse_command(text: str) -> Command | None:
    """`/tags  foo bar` → Command("tags", "foo bar"); full-width slash accepted; None if not a command."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "/／":
        return None
    head, _, rest = stripped[1:].partition(" ")
    first_line, _, more = head.partition("\n")
    name = first_line.strip().lower()
    if not name or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
        return None
    args = (more + (" " + rest if rest else "")).strip() if more else rest.strip()
    return Command(name, args)
