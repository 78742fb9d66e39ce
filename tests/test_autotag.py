"""Issue 5 parts 2 and 3: `/autotag` settings and rules, and Lark → GHL posting, through the real server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.clock import FakeClock
from bot.store.autotag import AutotagStore, PostingStore
from cards.autotag import (
    AnnouncedPost,
    Choice,
    CreatedView,
    ReasonView,
    RuleView,
    StatusView,
    SuggestionView,
    TagView,
    announce_card,
    created_card,
    rules_card,
    rules_missing_card,
    status_card,
    suggestion_card,
    tag_picker_card,
)
from cards.i18n import T
from tests.cardcheck import assert_fake_cards_valid, assert_valid_card, elements, texts
from tests.fakes.ghl_api import FakeGhl
from tests.harness import BotHarness

LOC = "loc_main"
PIT = "pit-token-value-123"
USER = "ghl_user_123"
CHAT = "oc_p2p"
LONG = ("Spring launch next week! Our promo covers every store, with new colours and a loyalty gift "
        "for early birds. #Promo #SpringDrop")


@pytest.fixture
async def ghl() -> AsyncIterator[FakeGhl]:
    async with FakeGhl() as fake:
        fake.add_private_token(LOC, PIT)
        yield fake
    assert fake.invalid_requests == []


def settings() -> dict[str, Any]:
    return {"ghl_private_token": PIT, "ghl_location_id": LOC}


@pytest.fixture
async def bot(tmp_path: Path, ghl: FakeGhl) -> AsyncIterator[BotHarness]:
    async with BotHarness.start(tmp_path, ghl=ghl, **settings()) as h:
        yield h
        assert_fake_cards_valid(h.lark)


def seed(ghl: FakeGhl) -> dict[str, str]:
    tags = {t["tag"]: t["_id"] for t in ghl.add_tags(LOC, ["Promo", "Spring", "Black Friday", "Launch"])}
    fb = ghl.add_account(LOC, platform="facebook", name="Shop page")
    ghl.add_account(LOC, platform="instagram", name="Old IG", is_expired=True)
    tags["fb"] = fb["id"]
    return tags


def now(h: BotHarness) -> int:
    return int(h.services.clock.time())


async def send(h: BotHarness, env: dict[str, Any]) -> list[dict[str, Any]]:
    before = len(h.lark.sent_messages())
    status, _ = await h.deliver(env, timestamp=now(h))
    assert status == 200
    await h.settle()
    return h.lark.sent_messages()[before:]


async def command(h: BotHarness, text: str, chat_id: str = CHAT) -> dict[str, Any]:
    [msg] = await send(h, h.events.message(text, chat_id=chat_id))
    card: dict[str, Any] = msg["content"]
    assert_valid_card(card)
    return card


async def click(h: BotHarness, value: dict[str, Any], *, chat_id: str = CHAT, **kw: Any) -> dict[str, Any]:
    status, body = await h.deliver(h.events.card_action(value, chat_id=chat_id, message_id="om_card", **kw),
                                   timestamp=now(h))
    assert status == 200 and isinstance(body, dict)
    if "card" in body:
        assert body["card"]["type"] == "raw"
        assert_valid_card(body["card"]["data"])
    await h.settle()
    return body


def value_of(card: dict[str, Any], button_name_or_label: str) -> dict[str, Any]:
    for b in elements(card, "button"):
        if button_name_or_label in (b.get("name"), b["text"]["content"]):
            return dict(b["behaviors"][0]["value"])
    raise AssertionError(f"no button {button_name_or_label!r}")


def select_named(card: dict[str, Any], name: str) -> dict[str, Any]:
    for tag in ("select_static", "multi_select_static"):
        for s in elements(card, tag):
            if s["name"] == name:
                return s
    raise AssertionError(f"no select {name!r}")


def post_calls(ghl: FakeGhl, method: str = "POST") -> list[Any]:
    return [c for c in ghl.calls if c.method == method and c.path == f"/social-media-posting/{LOC}/posts"]


async def audit_rows(h: BotHarness, action: str | None = None) -> list[dict[str, Any]]:
    rows = await h.services.db.fetchall("SELECT * FROM audit WHERE kind='tagging' ORDER BY id")
    out = [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]
    return [r for r in out if action is None or r["action"] == action]


# ----- /autotag settings -----------------------------------------------------------------------


async def test_autotag_on_off_writeback_and_user(bot: BotHarness, ghl: FakeGhl) -> None:
    card = await command(bot, "/autotag")
    assert "**Auto-tagging:** off" in texts(card)
    card = await command(bot, "/autotag on")
    assert "**Auto-tagging:** on" in texts(card) and "not set" in texts(card)
    assert await bot.services.chats.bound_location(CHAT) == LOC  # so announcements reach this chat
    card = await command(bot, "/autotag writeback on")
    assert "**Write-back to GHL:** on" in texts(card)
    card = await command(bot, f"/autotag user {USER}")
    assert USER in texts(card)
    state = await AutotagStore(bot.services.db, bot.services.clock.time).get(CHAT)
    assert (state.enabled, state.writeback, state.ghl_user_id) == (True, True, USER)

    off = await click(bot, value_of(card, "Turn off"))
    assert "**Auto-tagging:** off" in texts(off["card"]["data"])
    assert not (await AutotagStore(bot.services.db, bot.services.clock.time).get(CHAT)).enabled
    settings_rows = await audit_rows(bot, "settings")
    assert [r["detail"].get("enabled") for r in settings_rows] == [True, True, None, False]
    assert all(r["actor"] == "ou_user" and r["location_id"] == LOC for r in settings_rows)

    card = await command(bot, "/autotag user bad id!")
    assert "Give the GHL user id" in texts(card)


# ----- rules -----------------------------------------------------------------------------------


async def test_rules_resolve_tag_names_to_ids(bot: BotHarness, ghl: FakeGhl) -> None:
    tags = seed(ghl)
    card = await command(bot, "/autotag add sale -> promo")
    assert "Saved: `sale` → **Promo**" in texts(card)
    card = await command(bot, "/autotag add “新品” → black_friday")
    assert "`新品` → **Black Friday**" in texts(card)
    store = AutotagStore(bot.services.db, bot.services.clock.time)
    assert [(r.keyword, r.tag_id, r.tag_name) for r in await store.rules(LOC)] == [
        ("sale", tags["Promo"], "Promo"), ("新品", tags["Black Friday"], "Black Friday")]

    card = await command(bot, "/autotag add SALE -> Spring")  # the same keyword, another tag: replaced
    assert [(r.keyword, r.tag_name) for r in await store.rules(LOC)] == [("SALE", "Spring"), ("新品", "Black Friday")]

    card = await command(bot, "/autotag remove sale")
    assert "Removed the rule for `SALE`" in texts(card)
    assert [r.keyword for r in await store.rules(LOC)] == ["新品"]

    removal = value_of(card, "remove")
    res = await click(bot, removal, form_value={"keyword": "新品"}, name="remove")
    assert "No rules yet" in texts(res["card"]["data"])
    assert [r["action"] for r in await audit_rows(bot)] == ["rule.add", "rule.add", "rule.add", "rule.remove",
                                                            "rule.remove"]


async def test_unknown_tag_offers_a_picker_and_never_creates_tags(bot: BotHarness, ghl: FakeGhl) -> None:
    tags = seed(ghl)
    card = await command(bot, "/autotag add sale -> Promotions")
    text = texts(card)
    assert "There is no tag named **Promotions**" in text
    assert "GHL's API cannot create tags" in text
    picker = select_named(card, "tag")
    assert [o["text"]["content"] for o in picker["options"]] == ["Promo"]
    assert not [c for c in ghl.calls if c.method == "POST" and c.path.endswith("/tags")]  # no tag creation
    assert await AutotagStore(bot.services.db, bot.services.clock.time).rules(LOC) == []

    res = await click(bot, value_of(card, "save"), form_value={"tag": tags["Promo"]}, name="save")
    assert "Saved: `sale` → **Promo**" in texts(res["card"]["data"])
    [rule] = await AutotagStore(bot.services.db, bot.services.clock.time).rules(LOC)
    assert (rule.keyword, rule.tag_id) == ("sale", tags["Promo"])

    res = await click(bot, value_of(card, "save"), form_value={"tag": "000000000000000000000000"}, name="save")
    assert res["toast"]["type"] == "warning" and "card" not in res

    nothing_close = await command(bot, "/autotag add gift -> zzzz")
    assert sorted(o["text"]["content"] for o in select_named(nothing_close, "tag")["options"]) == [
        "Black Friday", "Launch", "Promo", "Spring"]
    unknown = [r for r in await audit_rows(bot, "rule.add") if r["outcome"] == "unknown_tag"]
    assert [r["detail"]["tag"] for r in unknown] == ["Promotions", "zzzz"]


async def test_rules_card_add_form(bot: BotHarness, ghl: FakeGhl) -> None:
    tags = seed(ghl)
    card = await command(bot, "/autotag rules")
    assert "No rules yet" in texts(card)
    res = await click(bot, value_of(card, "add"), form_value={"keyword": " gift ", "tag": tags["Launch"]}, name="add")
    assert "`gift` → **Launch**" in texts(res["card"]["data"])
    res = await click(bot, value_of(card, "add"), form_value={"keyword": "", "tag": tags["Launch"]}, name="add")
    assert res["toast"]["type"] == "warning"


async def test_a_location_without_tags_says_tags_come_from_the_social_planner(bot: BotHarness) -> None:
    card = await command(bot, "/autotag rules")
    assert "This location has no tags yet" in texts(card) and "GHL's API cannot create tags" in texts(card)
    card = await command(bot, "/autotag add sale -> Promo")
    assert "This location has no tags at all yet" in texts(card)


# ----- Lark → GHL: suggestions -------------------------------------------------------------------


async def test_long_messages_get_suggestions_only_while_autotag_is_on(bot: BotHarness, ghl: FakeGhl) -> None:
    tags = seed(ghl)
    [reply] = await send(bot, bot.events.message(LONG, chat_id=CHAT))
    assert "How can I help?" in texts(reply["content"])  # off: the ordinary "not a command" card

    await command(bot, "/autotag on")
    await command(bot, "/autotag add loyalty -> Launch")
    [reply] = await send(bot, bot.events.message(LONG, chat_id=CHAT, message_id="om_long"))
    card = reply["content"]
    assert reply["reply_to"] == "om_long"
    text = texts(card)
    assert "**Promo** — mentions “promo”; hashtag #Promo" in text
    assert "**Spring** — mentions “Spring”" in text
    assert "**Launch** — mentions “launch”; rule “loyalty” (matched “loyalty”)" in text
    assert "#SpringDrop" in text and "GHL's API cannot create tags" in text
    tag_select = select_named(card, "tags")
    assert tag_select["selected_values"] == [tags["Spring"], tags["Launch"], tags["Promo"]]
    accounts = select_named(card, "accounts")
    assert [o["text"]["content"] for o in accounts["options"]] == ["Shop page (facebook)"]  # not the expired one
    assert accounts["selected_values"] == [tags["fb"]]
    assert "/autotag user" in text  # no GHL user yet
    draft = await PostingStore(bot.services.db, bot.services.clock.time).draft("om_long")
    assert draft is not None and draft.summary == LONG and draft.location_id == LOC
    [row] = await audit_rows(bot, "suggest")
    assert row["detail"]["tags"] == [tags["Spring"], tags["Launch"], tags["Promo"]]
    assert row["detail"]["missing"] == ["SpringDrop"] and row["chat_id"] == CHAT and row["location_id"] == LOC

    short = await send(bot, bot.events.message("promo today", chat_id=CHAT))
    assert "How can I help?" in texts(short[0]["content"])


async def test_rich_text_post_gets_suggestions(bot: BotHarness, ghl: FakeGhl) -> None:
    seed(ghl)
    await command(bot, "/autotag on")
    env = bot.events.post_message([[{"tag": "text", "text": "Black Friday is here"}],
                                   [{"tag": "text", "text": "#Launch week"}]], title="News", chat_id=CHAT)
    [reply] = await send(bot, env)
    text = texts(reply["content"])
    assert "**Black Friday** — mentions “Black Friday”" in text and "**Launch** — hashtag #Launch" in text


async def test_a_short_one_line_post_still_gets_suggestions_but_the_same_text_does_not(
        bot: BotHarness, ghl: FakeGhl) -> None:
    seed(ghl)
    await command(bot, "/autotag on")
    [reply] = await send(bot, bot.events.post_message([[{"tag": "text", "text": "Black Friday"}]], chat_id=CHAT))
    assert "Suggested tags" in texts(reply["content"])
    [plain] = await send(bot, bot.events.message("Black Friday", chat_id=CHAT))
    assert "Suggested tags" not in texts(plain["content"])


async def test_group_chatter_not_addressed_to_the_bot_is_ignored(bot: BotHarness, ghl: FakeGhl) -> None:
    seed(ghl)
    await command(bot, "/autotag on", chat_id="oc_group")
    assert await send(bot, bot.events.message(LONG, chat_id="oc_group", chat_type="group")) == []
    [reply] = await send(bot, bot.events.message(LONG, chat_id="oc_group", chat_type="group", mention_bot=True))
    assert "Suggested tags" in texts(reply["content"])


# ----- Lark → GHL: creating posts ----------------------------------------------------------------


async def suggestion(h: BotHarness, message_id: str = "om_long") -> dict[str, Any]:
    await command(h, "/autotag on")
    [reply] = await send(h, h.events.message(LONG, chat_id=CHAT, message_id=message_id))
    card: dict[str, Any] = reply["content"]
    return card


async def test_create_draft_posts_once_with_the_chosen_tags(bot: BotHarness, ghl: FakeGhl) -> None:
    tags = seed(ghl)
    card = await suggestion(bot)
    draft_btn = value_of(card, "draft")
    form = {"tags": [tags["Promo"], tags["Spring"]], "accounts": [tags["fb"]], "when": ""}

    res = await click(bot, draft_btn, form_value=form, name="draft")  # no GHL user yet
    assert res["toast"]["type"] == "warning" and "/autotag user" in res["toast"]["content"]
    assert post_calls(ghl) == []

    await command(bot, f"/autotag user {USER}")
    res = await click(bot, draft_btn, form_value={**form, "accounts": []}, name="draft")
    assert "at least one account" in res["toast"]["content"] and post_calls(ghl) == []

    res = await click(bot, draft_btn, form_value=form, name="draft")
    done = res["card"]["data"]
    assert done["header"]["title"]["content"] == "Draft created"
    [call] = post_calls(ghl)
    assert call.body == {"accountIds": [tags["fb"]], "type": "post", "userId": USER, "summary": LONG, "media": [],
                         "tags": [tags["Promo"], tags["Spring"]], "status": "draft"}
    [post] = ghl.location(LOC).posts.values()
    assert post["status"] == "draft" and post["tags"] == [tags["Promo"], tags["Spring"]]
    assert f"Post id `{post['_id']}`" in texts(done) and "**Promo**, **Spring**" in texts(done)

    again = await click(bot, draft_btn, form_value=form, name="draft")  # a double click
    assert "already posted" in texts(again["card"]["data"])
    sched = await click(bot, value_of(card, "schedule"), form_value={**form, "when": "2099-01-01 10:00"},
                        name="schedule")
    assert "already posted" in texts(sched["card"]["data"])
    assert len(post_calls(ghl)) == 1 and len(ghl.location(LOC).posts) == 1
    outcomes = [(r["outcome"], r["detail"].get("post_id")) for r in await audit_rows(bot, "post.create")]
    assert outcomes == [("ok", post["_id"]), ("duplicate", post["_id"]), ("duplicate", post["_id"])]
    [ok] = [r for r in await audit_rows(bot, "post.create") if r["outcome"] == "ok"]
    assert ok["actor"] == "ou_user" and ok["chat_id"] == CHAT and ok["location_id"] == LOC
    assert ok["detail"]["tags"] == [tags["Promo"], tags["Spring"]] and ok["detail"]["message_id"] == "om_long"


async def test_schedule_sends_a_schedule_date(tmp_path: Path, ghl: FakeGhl) -> None:
    tags = seed(ghl)
    async with BotHarness.start(tmp_path, ghl=ghl, default_timezone="Asia/Shanghai", **settings()) as h:
        card = await suggestion(h)
        await command(h, f"/autotag user {USER}")
        assert select_named(card, "tags")  # the form is there
        [when_input] = elements(card, "input")
        assert when_input["label"]["content"] == "Schedule for (Asia/Shanghai)"
        wanted = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
        when = wanted.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
        btn = value_of(card, "schedule")
        form = {"tags": [tags["Spring"]], "accounts": [tags["fb"]]}

        res = await click(h, btn, form_value={**form, "when": "next tuesday"}, name="schedule")
        assert "YYYY-MM-DD HH:MM" in res["toast"]["content"]
        res = await click(h, btn, form_value={**form, "when": "2020-01-01 10:00"}, name="schedule")
        assert "has passed" in res["toast"]["content"]
        assert post_calls(ghl) == []

        res = await click(h, btn, form_value={**form, "when": when}, name="schedule")
        done = res["card"]["data"]
        assert done["header"]["title"]["content"] == "Post scheduled"
        assert f"{when} Asia/Shanghai" in texts(done)
        [call] = post_calls(ghl)
        assert "status" not in call.body
        assert call.body["scheduleDate"] == wanted.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert_fake_cards_valid(h.lark)


async def test_stale_or_foreign_cards_do_not_post(bot: BotHarness, ghl: FakeGhl) -> None:
    tags = seed(ghl)
    card = await suggestion(bot)
    await command(bot, f"/autotag user {USER}")
    form = {"tags": [], "accounts": [tags["fb"]]}
    res = await click(bot, value_of(card, "draft"), form_value=form, name="draft", chat_id="oc_other")
    assert res["toast"]["type"] == "warning" and "out of date" in res["toast"]["content"]
    res = await click(bot, {**value_of(card, "draft"), "m": "om_unknown"}, form_value=form, name="draft")
    assert "out of date" in res["toast"]["content"]
    assert post_calls(ghl) == []


async def test_a_tag_deleted_since_the_card_was_drawn(bot: BotHarness, ghl: FakeGhl) -> None:
    tags = seed(ghl)
    card = await suggestion(bot)
    await command(bot, f"/autotag user {USER}")
    del ghl.location(LOC).tags[tags["Spring"]]
    await bot.services.ghl.tags.refresh(LOC)  # type: ignore[union-attr]
    res = await click(bot, value_of(card, "draft"),
                      form_value={"tags": [tags["Promo"], tags["Spring"]], "accounts": [tags["fb"]]}, name="draft")
    redrawn = res["card"]["data"]
    assert "no longer exist" in texts(redrawn)
    assert select_named(redrawn, "tags")["selected_values"] == [tags["Promo"]]
    assert post_calls(ghl) == []


async def test_ghl_refusal_is_shown_and_can_be_retried(bot: BotHarness, ghl: FakeGhl) -> None:
    tags = seed(ghl)
    card = await suggestion(bot)
    await command(bot, f"/autotag user {USER}")
    form = {"tags": [tags["Promo"]], "accounts": [tags["fb"]]}
    ghl.fail_next("/posts", 400, body={"statusCode": 400, "message": "summary is too long for twitter"},
                  method="POST")
    res = await click(bot, value_of(card, "draft"), form_value=form, name="draft")
    assert "summary is too long for twitter" in texts(res["card"]["data"])
    row = await PostingStore(bot.services.db, bot.services.clock.time).created("om_long")
    assert row is not None and row.status == "failed"
    res = await click(bot, value_of(card, "draft"), form_value=form, name="draft")
    assert res["card"]["data"]["header"]["title"]["content"] == "Draft created"
    assert len(ghl.location(LOC).posts) == 1
    assert [r["outcome"] for r in await audit_rows(bot, "post.create")] == ["error", "ok"]


async def test_lost_answer_then_retry_looks_up_before_creating(bot: BotHarness, ghl: FakeGhl) -> None:
    tags = seed(ghl)
    card = await suggestion(bot)
    await command(bot, f"/autotag user {USER}")
    form = {"tags": [tags["Promo"]], "accounts": [tags["fb"]]}
    ghl.fail_next("/posts", 502, method="POST")  # not resent by the client: POST is not idempotent
    res = await click(bot, value_of(card, "draft"), form_value=form, name="draft")
    assert "may or may not exist" in texts(res["card"]["data"])
    assert (await PostingStore(bot.services.db, bot.services.clock.time).created("om_long")).status == "unknown"  # type: ignore[union-attr]
    res = await click(bot, value_of(card, "draft"), form_value=form, name="draft")
    assert res["card"]["data"]["header"]["title"]["content"] == "Draft created"
    lists = [c for c in ghl.calls if c.path.endswith("/posts/list")]
    assert lists and lists[0].body["type"] == "all"  # looked for it first
    assert len(ghl.location(LOC).posts) == 1


async def test_crash_between_ghl_creating_and_recording_makes_no_duplicate(
        tmp_path: Path, ghl: FakeGhl, monkeypatch: pytest.MonkeyPatch) -> None:
    tags = seed(ghl)
    form = {"tags": [tags["Promo"], tags["Spring"]], "accounts": [tags["fb"]]}
    real_complete = PostingStore.complete

    async def crash(self: PostingStore, key: str, post_id: str) -> None:
        raise RuntimeError("process killed")

    async with BotHarness.start(tmp_path, ghl=ghl, **settings()) as h:
        card = await suggestion(h)
        await command(h, f"/autotag user {USER}")
        monkeypatch.setattr(PostingStore, "complete", crash)
        res = await click(h, value_of(card, "draft"), form_value=form, name="draft")
        assert res["card"]["data"]["header"]["template"] == "red"  # the user saw a failure
        row = await PostingStore(h.services.db, h.services.clock.time).created("om_long")
        assert row is not None and row.status == "pending" and row.post_id is None
    assert len(ghl.location(LOC).posts) == 1  # GHL did create it

    monkeypatch.setattr(PostingStore, "complete", real_complete)
    async with BotHarness.start(tmp_path, ghl=ghl, **settings()) as h:  # after the restart, a retry
        res = await click(h, value_of(card, "draft"), form_value=form, name="draft")
        done = res["card"]["data"]
        assert "interrupted attempt was found" in texts(done)
        [post] = ghl.location(LOC).posts.values()
        assert f"Post id `{post['_id']}`" in texts(done)
        row = await PostingStore(h.services.db, h.services.clock.time).created("om_long")
        assert row is not None and (row.status, row.post_id) == ("created", post["_id"])
        [recovered] = [r for r in await audit_rows(h, "post.create") if r["outcome"] == "recovered"]
        assert recovered["detail"]["post_id"] == post["_id"]
        again = await click(h, value_of(card, "draft"), form_value=form, name="draft")
        assert "already posted" in texts(again["card"]["data"])
    assert len(post_calls(ghl)) == 1 and len(ghl.location(LOC).posts) == 1


async def test_a_fresh_pending_attempt_is_not_doubled(tmp_path: Path, ghl: FakeGhl) -> None:
    """A pending row GHL does not show (the request may still be in flight elsewhere) → wait; later → create."""
    tags = seed(ghl)
    clock = FakeClock(datetime.now(UTC).timestamp())
    form = {"tags": [tags["Promo"]], "accounts": [tags["fb"]]}
    async with BotHarness.start(tmp_path, ghl=ghl, clock=clock, **settings()) as h:
        card = await suggestion(h)
        await command(h, f"/autotag user {USER}")
        store = PostingStore(h.services.db, h.services.clock.time)
        await store.begin("om_long", LOC, CHAT, {"summary": LONG, "tags": [tags["Promo"]], "accountIds": [tags["fb"]]})
        res = await click(h, value_of(card, "draft"), form_value=form, name="draft")
        assert "still being created" in res["toast"]["content"] and "card" not in res
        assert post_calls(ghl) == []
        clock.advance(300)
        res = await click(h, value_of(card, "draft"), form_value=form, name="draft")
        assert res["card"]["data"]["header"]["title"]["content"] == "Draft created"
        assert len(post_calls(ghl)) == 1


# ----- every autotag card builder, with edge cases (valid Card JSON 2.0, ≤ 30 KB, ≤ 200 components) ----

def _long(prefix: str, n: int) -> str:
    return (prefix + " " + "长" * n)[:n]


def _tag_views(n: int, reasons: int = 3) -> list[TagView]:
    return [TagView(f"{i:024x}", _long(f"Tag {i} *with* `markdown` <b>", 100),
                    tuple(ReasonView(("name", "hashtag", "rule")[j % 3], _long(f"m{j}", 100), _long("kw", 50))
                          for j in range(reasons)))
            for i in range(n)]


def _choices(n: int, prefix: str = "Choice") -> list[Choice]:
    return [Choice(f"{i:024x}_{'x' * 40}", _long(f"{prefix} {i}", 120)) for i in range(n)]


def _suggestion(**kw: Any) -> SuggestionView:
    base: dict[str, Any] = dict(
        location_id="loc_" + "l" * 40, message_id="om_" + "m" * 32, excerpt=_long("Text", 5000),
        suggested=_tag_views(40), missing=[_long(f"missing{i}", 100) for i in range(40)],
        tag_options=_choices(200, "Tag"), selected_tags=[c.value for c in _choices(200)][:100],
        accounts=_choices(100, "Account"), selected_accounts=[c.value for c in _choices(100)][:50],
        timezone="America/Argentina/ComodRivadavia", default_when="2026-01-01 10:00", user_ready=False,
        note=T(_long("Note", 400), _long("提示", 400)))
    base.update(kw)
    return SuggestionView(**base)


def _announced(n: int) -> list[AnnouncedPost]:
    outcomes = ("written", "suggested", "had_tags", "nothing", "failed")
    return [AnnouncedPost(post_id=f"{i:024x}", excerpt=_long("Post", 2000), platform="facebook",
                          when="2026-01-01 10:00 UTC", tags=[_long(f"T{j}", 100) for j in range(30)],
                          added=_tag_views(30), missing=[_long(f"h{j}", 100) for j in range(30)],
                          outcome=outcomes[i % 5], error=_long("error", 1000)) for i in range(n)]


CARD_CASES: dict[str, list[Callable[[], dict[str, Any]]]] = {
    "cards.autotag.status_card": [
        lambda: status_card(StatusView("loc", False, False, 0, None, "none")),
        lambda: status_card(StatusView("loc_" + "x" * 60, True, True, 999, "u" * 64, "chat"), T("n", "n")),
        lambda: status_card(StatusView("loc", True, False, 1, "user_1", "installation")),
    ],
    "cards.autotag.rules_card": [
        lambda: rules_card("loc", [], []),
        lambda: rules_card("loc", [], _choices(3)),
        lambda: rules_card("loc", [RuleView(_long(f"kw{i}*_`", 50), _long(f"Tag{i}", 100), i % 2 == 0)
                                   for i in range(300)], _choices(500), T(_long("n", 300), "n")),
    ],
    "cards.autotag.tag_picker_card": [
        lambda: tag_picker_card("loc", "kw", "Wanted", [], close=False),
        lambda: tag_picker_card("loc", "kw", "Wanted", _choices(1), close=True),
        lambda: tag_picker_card("loc", _long("kw", 50), _long("wanted", 300), _choices(500), close=False),
    ],
    "cards.autotag.rules_missing_card": [
        lambda: rules_missing_card("loc", [RuleView("sale", "Spring", True)]),
        lambda: rules_missing_card("loc", [RuleView(_long(f"k{i}", 50), _long("T", 100), True) for i in range(300)]),
    ],
    "cards.autotag.suggestion_card": [
        lambda: suggestion_card(_suggestion()),
        lambda: suggestion_card(_suggestion(accounts=[], selected_accounts=[])),
        lambda: suggestion_card(_suggestion(suggested=[], missing=[], tag_options=[], selected_tags=[], note=None,
                                            excerpt="", user_ready=True)),
    ],
    "cards.autotag.created_card": [
        lambda: created_card(CreatedView("loc", "p1", "created", "draft", "hi", [], [])),
        lambda: created_card(CreatedView("loc", "p" * 24, "recovered", "schedule", _long("x", 5000),
                                         [_long(f"t{i}", 100) for i in range(200)],
                                         [_long(f"a{i}", 100) for i in range(100)], "2026-01-01 10:00 UTC")),
        lambda: created_card(CreatedView("loc", "p1", "already", "draft", "hi", ["A"], ["B"])),
    ],
    "cards.autotag.announce_card": [
        lambda: announce_card("loc", _announced(1)),
        lambda: announce_card("loc", _announced(500)),
        lambda: announce_card("loc", [AnnouncedPost("p", "", None, None, [])]),
    ],
}


@pytest.mark.parametrize("name,i", [(n, i) for n, makers in CARD_CASES.items() for i in range(len(makers))])
def test_autotag_cards_are_valid_at_their_limits(name: str, i: int) -> None:
    built = CARD_CASES[name][i]()
    assert_valid_card(built)


def test_every_autotag_card_builder_has_cases() -> None:
    import cards.autotag as mod

    public = {f"cards.autotag.{n}" for n in dir(mod) if n.endswith("_card") and not n.startswith("_")
              and getattr(getattr(mod, n), "__module__", "") == "cards.autotag"}
    assert public == set(CARD_CASES)


def test_an_out_of_range_schedule_is_a_format_error() -> None:
    from datetime import UTC, datetime

    from bot.autotag.posting import ScheduleError, parse_schedule

    with pytest.raises(ScheduleError):
        parse_schedule("0001-01-01 00:30 +01:00", tz_name="UTC", now=datetime(2026, 12, 1, tzinfo=UTC))


async def test_settings_changed_together_do_not_undo_each_other(tmp_path: Path) -> None:
    import asyncio

    from bot.store.autotag import AutotagStore
    from bot.store.db import Database

    db = await Database.open(f"sqlite:///{tmp_path / 's.db'}")
    store = AutotagStore(db, lambda: 1.0)
    await asyncio.gather(store.update("oc", enabled=True), store.update("oc", writeback=True),
                         store.update("oc", ghl_user_id="u1"))
    got = await store.get("oc")
    assert (got.enabled, got.writeback, got.ghl_user_id) == (True, True, "u1")
    got = await store.update("oc", ghl_user_id="")  # "" clears; other fields stay
    assert (got.enabled, got.writeback, got.ghl_user_id) == (True, True, None)
    assert (await store.update("oc", enabled=False)).writeback is True
    await db.close()
