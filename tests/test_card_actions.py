"""Card clicks (`card.action.trigger`) through `POST /lark/events` (reference §6, §7, §15 items 13-14)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web

from bot.context import Context
from bot.lark.webhook import ACTION_BUDGET, ACTION_BUDGET_KEY
from bot.registry import ActionResult, Router
from bot.server import default_routers
from cards.help import FAILED, STALE_CARD, WORKING
from cards.i18n import T
from cards.kit import card, markdown, toast
from cards.payloads import Payload, register
from tests.cardcheck import assert_fake_cards_valid, assert_valid_card, iter_elements, texts
from tests.harness import BotHarness

SLACK = 0.35  # seconds of scheduling slack on a loaded 2-core machine


@register
class SlowThing(Payload):
    kind: ClassVar[str] = "test.slow"
    delay: float = 0.0
    fail: bool = False
    card: bool = True


def slow_router(calls: list[SlowThing]) -> Router:
    router = Router("test_slow")

    @router.action(SlowThing)
    async def slow(ctx: Context, p: SlowThing) -> ActionResult:
        calls.append(p)
        await asyncio.sleep(p.delay)
        if p.fail:
            raise RuntimeError("slow action exploded: secret-detail-77")
        done = card(T("Done", "完成"), [markdown(T(f"Finished after {p.delay}s", f"{p.delay} 秒后完成"))])
        return ActionResult(card=done if p.card else None, toast=toast("success", T("Done", "完成")))

    return router


async def click(h: BotHarness, value: Any, *, chat_id: str = "oc_chat", message_id: str = "om_card",
                operator: str = "ou_user", token: str | None = None) -> tuple[int, Any, float, str]:
    """Deliver one click; return (status, answer, seconds taken, the callback's update token)."""
    env = h.events.card_action(value, chat_id=chat_id, message_id=message_id, operator_open_id=operator, token=token)
    started = time.monotonic()
    status, answer = await h.deliver(env)
    return status, answer, time.monotonic() - started, env["event"]["token"]


def buttons(c: dict[str, Any]) -> list[dict[str, Any]]:
    return [el for el in iter_elements(c["body"]["elements"]) if el.get("tag") == "button"]


def callback_value(button: dict[str, Any]) -> dict[str, Any]:
    [value] = [b["value"] for b in button["behaviors"] if b["type"] == "callback"]
    assert isinstance(value, dict)
    return value


async def audit_rows(h: BotHarness, kind: str) -> list[tuple[str, str]]:
    rows = await h.services.db.fetchall("SELECT action, outcome FROM audit WHERE kind = ? ORDER BY id", (kind,))
    return [(r["action"], r["outcome"]) for r in rows]


# -- inline answer: the audit page "Older" button ----------------------------------------------------------


async def test_audit_older_button_is_answered_inline_with_a_replacement_card(bot: BotHarness) -> None:
    for i in range(20):  # ids 1..20
        await bot.services.audit.record(kind="command", action=f"a{i}", outcome="ok", chat_id="oc_chat")
    env = bot.events.message("/audit", chat_id="oc_chat", chat_type="group")
    assert (await bot.deliver(env))[0] == 200
    await bot.settle()
    [reply] = bot.lark.sent_messages()
    first = reply["content"]
    assert first["header"]["title"]["content"] == "Audit log"
    assert "**command** `a19` —" in texts(first) and "**command** `a5` —" in texts(first)
    assert "**command** `a4` —" not in texts(first)
    [older] = [b for b in buttons(first) if b["text"]["content"] == "Older"]
    value = callback_value(older)
    assert value == {"k": "audit.page", "v": 1, "before": 6}

    status, answer, took, _ = await click(bot, value, message_id=reply["message_id"])
    assert status == 200
    assert took < ACTION_BUDGET
    assert set(answer) == {"card"}
    assert answer["card"]["type"] == "raw"
    page2 = answer["card"]["data"]
    assert_valid_card(page2)
    shown = texts(page2)
    assert "**command** `a4` —" in shown and "**command** `a0` —" in shown
    assert "**command** `a5` —" not in shown
    assert [b["text"]["content"] for b in buttons(page2)] == ["Newest"]  # no more "Older" on the last page
    assert callback_value(buttons(page2)[0]) == {"k": "audit.page", "v": 1}
    await bot.settle()
    assert len(bot.lark.sent_messages()) == 1  # answered inline: no new message, no update call
    assert bot.lark.delayed_updates() == [] and bot.lark.patches() == []
    assert ("audit.page", "ok") in await audit_rows(bot, "action")
    assert_fake_cards_valid(bot.lark)


# -- stale and malformed payloads ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    {"k": "no.such.kind", "v": 1}, {"k": "audit.page", "v": 0}, {"k": "audit.page", "v": 2},
    {"k": "audit.page"}, {"v": 1}, {}, {"k": "audit.page", "v": "1"}, {"k": 5, "v": 1},
], ids=["unknown-kind", "old-version", "newer-version", "no-version", "no-kind", "empty", "string-version",
        "int-kind"])
async def test_stale_payload_gets_a_friendly_warning_toast(bot: BotHarness, value: dict[str, Any],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    status, answer, took, _ = await click(bot, value)
    assert status == 200
    assert answer == {"toast": toast("warning", STALE_CARD)}
    assert answer["toast"]["i18n"]["zh_cn"] == STALE_CARD.zh
    assert took < ACTION_BUDGET
    await bot.settle()
    assert bot.lark.calls == []
    assert [outcome for _, outcome in await audit_rows(bot, "action")] == ["stale"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("value", [
    {"k": "audit.page", "v": 1, "before": "not-a-number"},
    {"k": "audit.page", "v": 1, "unexpected": True},
    {"k": "cmd", "v": 1},  # RunCommand without its command
    {"k": "cmd", "v": 1, "command": ["help"]},
], ids=["bad-field-type", "extra-field", "missing-field", "list-field"])
async def test_malformed_value_gets_a_toast(bot: BotHarness, value: dict[str, Any],
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    status, answer, _, _ = await click(bot, value)
    assert status == 200
    assert answer == {"toast": toast("warning", STALE_CARD)}
    await bot.settle()
    assert bot.lark.calls == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("value", ["a string", ["k", "v"], None, 42], ids=["str", "list", "null", "int"])
async def test_non_object_value_gets_an_error_toast(bot: BotHarness, value: Any,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    status, answer, _, _ = await click(bot, value)
    assert status == 200
    assert answer == {"toast": toast("error", FAILED)}
    await bot.settle()
    assert bot.lark.calls == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# -- the time budget: slow actions answer a toast now and update the card afterwards -------------------------


def small_budget(app: web.Application) -> None:
    app[ACTION_BUDGET_KEY] = 0.2


async def test_slow_action_answers_a_toast_in_budget_then_one_delayed_update(tmp_path: Path) -> None:
    calls: list[SlowThing] = []
    async with BotHarness.start(tmp_path, app_hook=small_budget,
                                routers=[*default_routers(), slow_router(calls)]) as h:
        value = SlowThing(delay=0.6).to_value()
        status, answer, took, token = await click(h, value, token="c-slow-token-1")
        answered_at = time.monotonic()
        assert status == 200
        assert answer == {"toast": toast("info", WORKING)}
        assert took < 0.2 + SLACK, f"answer took {took:.3f} s"
        assert h.lark.delayed_updates() == []  # never before (or alongside) the answer: the card would revert
        [update] = await h.lark.wait_for(lambda f: f.delayed_updates(), timeout=5)
        await h.settle()
        assert len(h.lark.delayed_updates()) == 1
        assert update["token"] == token == "c-slow-token-1"
        assert update["at"] > answered_at
        assert update["card"]["header"]["title"]["content"] == "Done"
        assert_valid_card(update["card"])
        [call] = h.lark.calls_to("/interactive/v1/card/update")
        assert call.json == {"token": token, "card": update["card"]}
        assert h.lark.sent_messages() == [] and h.lark.patches() == []
        assert calls == [SlowThing(delay=0.6)]
        assert ("test.slow", "ok") in await audit_rows(h, "action")
        assert ("card delayed update", "ok") in await audit_rows(h, "message")
        assert_fake_cards_valid(h.lark)


async def test_fast_action_under_a_small_budget_is_still_answered_inline(tmp_path: Path) -> None:
    calls: list[SlowThing] = []
    async with BotHarness.start(tmp_path, app_hook=small_budget,
                                routers=[*default_routers(), slow_router(calls)]) as h:
        status, answer, _, _ = await click(h, SlowThing(delay=0.0).to_value())
        assert status == 200
        assert answer["toast"] == toast("success", T("Done", "完成"))
        assert_valid_card(answer["card"]["data"])
        await h.settle()
        assert h.lark.calls == []


async def test_slow_failing_action_updates_the_card_with_a_generic_error(tmp_path: Path) -> None:
    calls: list[SlowThing] = []
    async with BotHarness.start(tmp_path, app_hook=small_budget,
                                routers=[*default_routers(), slow_router(calls)]) as h:
        status, answer, took, token = await click(h, SlowThing(delay=0.4, fail=True).to_value())
        assert status == 200 and answer == {"toast": toast("info", WORKING)}
        assert took < 0.2 + SLACK
        [update] = await h.lark.wait_for(lambda f: f.delayed_updates(), timeout=5)
        await h.settle()
        assert len(h.lark.delayed_updates()) == 1 and update["token"] == token
        shown = json.dumps(update["card"], ensure_ascii=False)
        assert update["card"]["header"]["title"]["content"] == "Something went wrong"
        assert "secret-detail-77" not in shown and "RuntimeError" not in shown
        assert ("test.slow", "error") in await audit_rows(h, "action")
        assert_fake_cards_valid(h.lark)


async def test_slow_action_without_a_card_makes_no_update_call(tmp_path: Path) -> None:
    calls: list[SlowThing] = []
    async with BotHarness.start(tmp_path, app_hook=small_budget,
                                routers=[*default_routers(), slow_router(calls)]) as h:
        status, answer, _, _ = await click(h, SlowThing(delay=0.4, card=False).to_value())
        assert status == 200 and answer == {"toast": toast("info", WORKING)}
        await h.settle()
        assert len(calls) == 1
        assert h.lark.calls == []


# -- RunCommand buttons -------------------------------------------------------------------------------------


async def _unknown_command_card(h: BotHarness) -> tuple[str, dict[str, Any]]:
    assert (await h.deliver(h.events.message("/nope", chat_id="oc_chat", chat_type="group")))[0] == 200
    await h.settle()
    [reply] = h.lark.sent_messages()
    [button] = buttons(reply["content"])
    value = callback_value(button)
    assert value == {"k": "cmd", "v": 1, "command": "help", "args": ""}
    return reply["message_id"], value


async def test_run_command_button_sends_the_command_card_as_a_new_message(bot: BotHarness) -> None:
    message_id, value = await _unknown_command_card(bot)
    status, answer, took, _ = await click(bot, value, message_id=message_id)
    assert status == 200 and answer == {}
    assert took < ACTION_BUDGET
    await bot.settle()
    [_, sent] = bot.lark.sent_messages()
    assert sent["kind"] == "send" and sent["reply_to"] is None
    assert (sent["receive_id"], sent["receive_id_type"]) == ("oc_chat", "chat_id")
    assert sent["content"]["header"]["title"]["content"] == "Help"
    assert sent["uuid"] and len(sent["uuid"]) <= 50
    assert ("help", "ok") in await audit_rows(bot, "command")
    assert_fake_cards_valid(bot.lark)


async def test_double_click_on_a_run_command_button_delivers_one_message(bot: BotHarness) -> None:
    message_id, value = await _unknown_command_card(bot)
    results = await asyncio.gather(click(bot, value, message_id=message_id),
                                   click(bot, value, message_id=message_id))
    assert [(status, answer) for status, answer, _, _ in results] == [(200, {}), (200, {})]
    await bot.settle()
    sends = [m for m in bot.lark.sent_messages() if m["kind"] == "send"]
    assert len(sends) == 1
    assert bot.lark.dedup_hits == 1  # the second send carried the same uuid
    uuids = {c.json["uuid"] for c in bot.lark.calls_to("/open-apis/im/v1/messages", "POST")
             if c.query.get("receive_id_type") == "chat_id"}
    assert len(uuids) == 1
    # A different user clicking the same button gets their own message.
    await click(bot, value, message_id=message_id, operator="ou_other")
    await bot.settle()
    assert len([m for m in bot.lark.sent_messages() if m["kind"] == "send"]) == 2


async def test_the_same_callback_delivered_twice_runs_once(bot: BotHarness) -> None:
    message_id, value = await _unknown_command_card(bot)
    env = bot.events.card_action(value, chat_id="oc_chat", message_id=message_id)
    assert (await bot.deliver(env)) == (200, {})
    assert (await bot.deliver(env)) == (200, {})
    await bot.settle()
    assert len([m for m in bot.lark.sent_messages() if m["kind"] == "send"]) == 1
    assert bot.lark.dedup_hits == 0
