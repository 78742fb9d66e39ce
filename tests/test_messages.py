"""Message text → command: mentions stripped (longest key first), names bounded."""

from __future__ import annotations

from bot.lark.messages import parse_command, strip_mentions
from bot.lark.models import Mention, UserId


def mention(n: int, open_id: str, name: str) -> Mention:
    return Mention(key=f"@_user_{n}", id=UserId(open_id=open_id), name=name)


def test_commands_parse_with_arguments_and_full_width_slash() -> None:
    assert parse_command("/tags  summer sale") is not None
    cmd = parse_command("／Stats loc_1")
    assert cmd is not None and (cmd.name, cmd.args) == ("stats", "loc_1")
    assert parse_command("hello /tags") is None and parse_command("/") is None


def test_a_command_name_is_at_most_32_characters() -> None:
    assert parse_command("/" + "a" * 32) is not None
    assert parse_command("/" + "a" * 33) is None


def test_ten_or_more_mentions_are_replaced_whole() -> None:
    mentions = [mention(1, "ou_bot", "Bot")] + [mention(n, f"ou_{n}", f"User{n}") for n in range(2, 12)]
    parsed = strip_mentions("@_user_1 /autotag add @_user_10 -> @_user_11", mentions, "ou_bot")
    assert parsed.mentioned_bot
    assert parsed.text == "/autotag add @User10 -> @User11"
