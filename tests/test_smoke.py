from __future__ import annotations

from tests.harness import BotHarness


async def test_help_in_p2p_gets_exactly_one_reply_card(bot: BotHarness) -> None:
    env = bot.events.message("/help", chat_id="oc_p2p")
    status, body = await bot.deliver(env)
    assert status == 200 and body == {}
    await bot.settle()
    [msg] = bot.lark.sent_messages()
    assert msg["kind"] == "reply"
    assert msg["reply_to"] == env["event"]["message"]["message_id"]
    assert msg["msg_type"] == "interactive"
    card = msg["content"]
    assert card["schema"] == "2.0"
    text = str(card)
    assert "/help" in text and "/audit" in text
