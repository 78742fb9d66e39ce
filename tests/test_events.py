"""Chat lifecycle events through `POST /lark/events`: bot added/removed, DM opened, bot menu."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.clock import FakeClock
from tests.cardcheck import assert_fake_cards_valid, texts
from tests.harness import BotHarness


async def settled(h: BotHarness) -> list[dict[str, Any]]:
    await h.settle()
    assert_fake_cards_valid(h.lark)
    return h.lark.sent_messages()


async def chat_row(h: BotHarness, chat_id: str) -> Any:
    return await h.services.db.fetchone("SELECT * FROM chats WHERE chat_id = ?", (chat_id,))


async def test_bot_added_sends_the_welcome_help_card_and_stores_the_chat(bot: BotHarness) -> None:
    assert await bot.deliver(bot.events.bot_added("oc_team", "ou_admin", name="Marketing")) == (200, {})
    [msg] = await settled(bot)
    assert msg["kind"] == "send" and msg["reply_to"] is None
    assert (msg["receive_id"], msg["receive_id_type"]) == ("oc_team", "chat_id")
    card = msg["content"]
    assert card["header"]["title"]["content"] == "Welcome to the Social Planner bot"
    assert "/help" in texts(card) and "/audit" in texts(card)
    row = await chat_row(bot, "oc_team")
    assert row is not None
    assert (row["chat_type"], row["name"], row["active"]) == ("group", "Marketing", 1)
    audit = await bot.services.db.fetchall("SELECT kind, action, outcome, actor, chat_id FROM audit ORDER BY id")
    assert [tuple(r) for r in audit] == [("chat", "bot added", "ok", "ou_admin", "oc_team"),
                                         ("message", "send welcome", "ok", "ou_admin", "oc_team")]


async def test_bot_added_twice_sends_one_welcome(bot: BotHarness) -> None:
    """A second `added` event (new event_id, e.g. re-added within the hour) reuses the uuid: one message."""
    assert (await bot.deliver(bot.events.bot_added("oc_team")))[0] == 200
    await bot.settle()
    assert (await bot.deliver(bot.events.bot_added("oc_team")))[0] == 200
    assert len(await settled(bot)) == 1
    assert bot.lark.dedup_hits == 1


async def test_bot_removed_marks_the_chat_inactive(bot: BotHarness) -> None:
    assert (await bot.deliver(bot.events.bot_added("oc_team")))[0] == 200
    await bot.settle()
    assert await bot.services.chats.is_active("oc_team")
    assert await bot.deliver(bot.events.bot_deleted("oc_team")) == (200, {})
    msgs = await settled(bot)
    assert len(msgs) == 1  # only the welcome; nothing is sent to a chat the bot has left
    assert not await bot.services.chats.is_active("oc_team")
    row = await chat_row(bot, "oc_team")
    assert row["active"] == 0
    [r] = await bot.services.db.fetchall("SELECT outcome FROM audit WHERE action = 'bot removed'")
    assert r["outcome"] == "ok"


async def test_bot_removed_from_an_unknown_chat_sends_nothing(bot: BotHarness) -> None:
    assert await bot.deliver(bot.events.bot_deleted("oc_unknown")) == (200, {})
    assert await settled(bot) == []


async def test_p2p_entered_twice_the_same_day_greets_once(tmp_path: Path) -> None:
    clock = FakeClock()
    async with BotHarness.start(tmp_path, clock=clock) as h:
        ts = int(clock.time())
        assert await h.deliver(h.events.p2p_entered("oc_dm", "ou_alice"), timestamp=ts) == (200, {})
        await h.settle()
        clock.advance(3 * 3600)
        assert await h.deliver(h.events.p2p_entered("oc_dm", "ou_alice"), timestamp=int(clock.time())) == (200, {})
        [greet] = await settled(h)
        assert (greet["kind"], greet["receive_id"], greet["receive_id_type"]) == ("send", "oc_dm", "chat_id")
        assert greet["content"]["header"]["title"]["content"] == "Welcome to the Social Planner bot"
        assert h.lark.dedup_hits == 0  # our own throttle, not Lark's uuid
        assert await h.services.chats.chat_type("oc_dm") == "p2p"
        # Another user on the same day is greeted; the first user again on the next day too.
        assert (await h.deliver(h.events.p2p_entered("oc_dm2", "ou_bob"), timestamp=int(clock.time())))[0] == 200
        await h.settle()
        clock.advance(24 * 3600)
        assert (await h.deliver(h.events.p2p_entered("oc_dm", "ou_alice"), timestamp=int(clock.time())))[0] == 200
        msgs = await settled(h)
        assert [m["receive_id"] for m in msgs] == ["oc_dm", "oc_dm2", "oc_dm"]


async def test_bot_menu_help_sends_the_help_card_to_the_operator(bot: BotHarness) -> None:
    assert await bot.deliver(bot.events.menu("help", "ou_operator")) == (200, {})
    [msg] = await settled(bot)
    assert msg["kind"] == "send"
    assert (msg["receive_id"], msg["receive_id_type"]) == ("ou_operator", "open_id")
    assert msg["content"]["header"]["title"]["content"] == "Help"
    assert "/audit" in texts(msg["content"])
    rows = await bot.services.db.fetchall("SELECT kind, action, outcome, actor FROM audit ORDER BY id")
    assert ("command", "help", "ok", "ou_operator") in [tuple(r) for r in rows]


async def test_bot_menu_with_a_slash_key_and_an_unknown_key(bot: BotHarness) -> None:
    assert (await bot.deliver(bot.events.menu("/help", "ou_operator")))[0] == 200
    assert (await bot.deliver(bot.events.menu("no_such_item", "ou_operator")))[0] == 200
    msgs = await settled(bot)
    titles = sorted(m["content"]["header"]["title"]["content"] for m in msgs)
    assert titles == ["Help", "Unknown command"]
    assert {(m["receive_id"], m["receive_id_type"]) for m in msgs} == {("ou_operator", "open_id")}


async def test_bot_menu_audit_and_connect_need_a_chat_and_leak_nothing(bot: BotHarness) -> None:
    await bot.deliver(bot.events.message("/help", chat_id="oc_private_team"))  # some other chat's history
    await bot.settle()
    for key in ("audit", "connect"):
        assert (await bot.deliver(bot.events.menu(key, "ou_operator")))[0] == 200
    sent = [m for m in await settled(bot) if m["receive_id"] == "ou_operator"]
    assert len(sent) == 2
    for m in sent:
        assert "Run it in a chat" in texts(m["content"])
        assert "oc_private_team" not in str(m["content"])
