"""Issue 5 part 4: GHL → Lark. `poll_location` through the real server, against FakeGhl and FakeLark."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.autotag.poll import FIRST_LOOKBACK_S, OVERLAP_S, poll_location
from bot.clock import FakeClock
from bot.ghl.client import GhlClient
from bot.ghl.errors import GhlUnavailable
from bot.ghl.models import Post
from bot.scheduler import scheduler_of
from bot.store.autotag import AutotagStore, PollStore
from tests.cardcheck import assert_fake_cards_valid, assert_valid_card, texts
from tests.fakes.ghl_api import FakeGhl, spec_checked_ghl
from tests.harness import BotHarness

LOC = "loc_main"
PIT = "pit-token-value-123"
CHAT = "oc_team"


@pytest.fixture
async def ghl(clock: FakeClock) -> AsyncIterator[FakeGhl]:
    async with spec_checked_ghl(clock) as fake:
        fake.add_private_token(LOC, PIT)
        yield fake


def start(tmp_path: Path, ghl: FakeGhl, clock: FakeClock) -> Any:
    return BotHarness.start(tmp_path, ghl=ghl, clock=clock, ghl_private_token=PIT, ghl_location_id=LOC)


@pytest.fixture
async def bot(tmp_path: Path, ghl: FakeGhl, clock: FakeClock) -> AsyncIterator[BotHarness]:
    async with start(tmp_path, ghl, clock) as h:
        yield h
        assert_fake_cards_valid(h.lark)


def seed(ghl: FakeGhl) -> dict[str, str]:
    tags = {t["tag"]: t["_id"] for t in ghl.add_tags(LOC, ["Promo", "Spring", "新品", "Evergreen"])}
    ghl.add_account(LOC, platform="facebook", name="Shop page")
    return tags


def ago(clock: FakeClock, minutes: float) -> datetime:
    return datetime.fromtimestamp(clock.time(), UTC) - timedelta(minutes=minutes)


async def command(h: BotHarness, text: str, chat_id: str = CHAT) -> None:
    """The group's owner configures it (members may not change auto-tagging)."""
    if chat_id not in h.lark.chats:
        h.lark.add_chat(chat_id, owner_id="ou_owner")
    env = h.events.message(text, chat_id=chat_id, chat_type="group", mention_bot=True, sender_open_id="ou_owner")
    status, _ = await h.deliver(env, timestamp=int(h.services.clock.time()))
    assert status == 200
    await h.settle()


async def poll(h: BotHarness) -> int:
    n = await poll_location(h.services, LOC, h.services.clock.time())
    await h.settle()
    return n


def announcements(h: BotHarness, chat_id: str = CHAT) -> list[dict[str, Any]]:
    return [m["content"] for m in h.lark.sent_messages() if m["kind"] == "send" and m["receive_id"] == chat_id]


def calls(ghl: FakeGhl, method: str, suffix: str = "") -> list[Any]:
    return [c for c in ghl.calls if c.method == method and c.path.startswith(f"/social-media-posting/{LOC}/posts")
            and c.path.endswith(suffix)]


async def audit(h: BotHarness, action: str) -> list[dict[str, Any]]:
    rows = await h.services.db.fetchall("SELECT * FROM audit WHERE kind='tagging' AND action=? ORDER BY id", (action,))
    return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]


# ----- who gets polled -----------------------------------------------------------------------------


async def test_no_subscribed_chat_means_no_ghl_calls(bot: BotHarness, ghl: FakeGhl, clock: FakeClock) -> None:
    seed(ghl)
    ghl.add_post(LOC, summary="#Promo today", published_at=ago(clock, 5))
    assert await poll(bot) == 0
    assert calls(ghl, "POST", "/posts/list") == []
    assert await PollStore(bot.services.db, clock.time).cursor(LOC) == clock.time()  # moves on regardless
    assert bot.lark.sent_messages() == []


# ----- announcing, with write-back off ------------------------------------------------------------


async def test_new_published_posts_are_announced_with_suggestions(bot: BotHarness, ghl: FakeGhl,
                                                                  clock: FakeClock) -> None:
    tags = seed(ghl)
    await command(bot, "/autotag on")
    await command(bot, "/autotag add sale -> Spring")
    ghl.location(LOC).posts.clear()
    untagged = ghl.add_post(LOC, summary="Weekend sale! #Promo #NoSuchTag 新品上架", published_at=ago(clock, 10))
    tagged = ghl.add_post(LOC, summary="Evergreen content", tags=[tags["Evergreen"]], published_at=ago(clock, 20))
    ghl.add_post(LOC, summary="#Promo draft", status="draft")
    ghl.add_post(LOC, summary="#Promo old", published_at=ago(clock, 3 * 60))  # before the first window
    before = len(bot.lark.sent_messages())

    assert await poll(bot) == 2
    [card] = [m["content"] for m in bot.lark.sent_messages()[before:]]
    assert_valid_card(card)
    text = texts(card)
    assert card["header"]["title"]["content"] == "2 new published posts"
    assert "**Promo** — hashtag #Promo" in text and "**新品** — mentions “新品”" in text
    assert "**Spring** — rule “sale” (matched “sale”)" in text
    assert "write-back is off" in text and "#NoSuchTag" in text and "GHL's API cannot create tags" in text
    assert "Tags: **Evergreen**" in text and "already tagged in GHL" in text
    assert text.index(tagged["_id"]) < text.index(untagged["_id"])  # oldest first
    assert calls(ghl, "PUT") == [] and calls(ghl, "GET") == []  # suggestions only

    [lst] = calls(ghl, "POST", "/posts/list")
    assert lst.body["type"] == "published"
    start_at = datetime.fromisoformat(lst.body["fromDate"].replace("Z", "+00:00")).timestamp()
    assert start_at == clock.time() - FIRST_LOOKBACK_S - OVERLAP_S
    [suggested] = [r for r in await audit(bot, "suggest") if r["detail"].get("source") == "poll"]
    assert suggested["detail"]["post_id"] == untagged["_id"] and suggested["location_id"] == LOC
    assert set(suggested["detail"]["tags"]) == {tags["Promo"], tags["新品"], tags["Spring"]}
    [announced] = await audit(bot, "announce")
    assert announced["chat_id"] == CHAT and sorted(announced["detail"]["posts"]) == sorted(
        [untagged["_id"], tagged["_id"]])

    clock.advance(600)
    assert await poll(bot) == 0  # seen: never handled twice
    assert len(announcements(bot)) == 1


async def test_only_chats_with_autotag_on_are_told(bot: BotHarness, ghl: FakeGhl, clock: FakeClock) -> None:
    seed(ghl)
    await command(bot, "/autotag on")
    await command(bot, "/autotag on", chat_id="oc_other")
    await command(bot, "/location " + LOC, chat_id="oc_quiet")  # bound, but auto-tagging off
    ghl.add_post(LOC, summary="#Promo", published_at=ago(clock, 1))
    assert await poll(bot) == 1
    assert len(announcements(bot)) == 1 and len(announcements(bot, "oc_other")) == 1
    assert announcements(bot, "oc_quiet") == []


# ----- write-back ---------------------------------------------------------------------------------


async def test_writeback_puts_the_full_tag_array_once(bot: BotHarness, ghl: FakeGhl, clock: FakeClock,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tags = seed(ghl)
    await command(bot, "/autotag on")
    await command(bot, "/autotag writeback on")
    post = ghl.add_post(LOC, summary="Spring is here #Promo", published_at=ago(clock, 5))
    real_get = GhlClient.get_post

    async def someone_tags_it_meanwhile(self: GhlClient, location_id: str, post_id: str) -> Post:
        ghl.location(LOC).posts[post_id]["tags"] = [tags["Evergreen"]]  # a person tagged it after our list
        return await real_get(self, location_id, post_id)

    monkeypatch.setattr(GhlClient, "get_post", someone_tags_it_meanwhile)
    assert await poll(bot) == 1
    [get] = calls(ghl, "GET", post["_id"])
    [put] = calls(ghl, "PUT", post["_id"])
    assert calls(ghl, "GET").index(get) == 0
    assert put.body == {"type": "post", "tags": [tags["Evergreen"], tags["Spring"], tags["Promo"]]}
    assert ghl.location(LOC).posts[post["_id"]]["tags"] == [tags["Evergreen"], tags["Spring"], tags["Promo"]]
    [card] = announcements(bot)
    assert "written to the post in GHL" in texts(card)
    assert "Tags: **Evergreen**, **Spring**, **Promo**" in texts(card)
    [row] = await audit(bot, "post.tag")
    assert row["outcome"] == "ok" and row["chat_id"] == CHAT and row["location_id"] == LOC
    assert row["detail"]["post_id"] == post["_id"] and row["detail"]["added"] == [tags["Spring"], tags["Promo"]]
    assert await PollStore(bot.services.db, clock.time).seen_tags(LOC, post["_id"]) == [
        tags["Evergreen"], tags["Spring"], tags["Promo"]]

    monkeypatch.setattr(GhlClient, "get_post", real_get)
    ghl.location(LOC).posts[post["_id"]]["tags"] = []  # even if the tags were removed in GHL later
    clock.advance(600)
    assert await poll(bot) == 0
    assert len(calls(ghl, "PUT")) == 1  # never edited twice


async def test_crash_after_the_put_does_not_edit_again(tmp_path: Path, ghl: FakeGhl, clock: FakeClock,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seed(ghl)
    post = ghl.add_post(LOC, summary="#Promo launch", published_at=ago(clock, 5))
    real_mark = PollStore.mark_seen

    async def crash(self: PollStore, location_id: str, post_id: str, tags: Any) -> bool:
        raise RuntimeError("process killed")

    async with start(tmp_path, ghl, clock) as h:
        await command(h, "/autotag on")
        await command(h, "/autotag writeback on")
        monkeypatch.setattr(PollStore, "mark_seen", crash)
        with pytest.raises(RuntimeError):
            await poll(h)
    assert len(calls(ghl, "PUT")) == 1
    monkeypatch.setattr(PollStore, "mark_seen", real_mark)
    async with start(tmp_path, ghl, clock) as h:
        clock.advance(60)
        assert await poll(h) == 1  # handled again, but GHL already has its tags
        assert len(calls(ghl, "PUT")) == 1
        assert "already tagged in GHL" in texts(announcements(h)[-1])
    assert ghl.location(LOC).posts[post["_id"]]["tags"]


async def test_a_refused_edit_is_reported_and_not_retried(bot: BotHarness, ghl: FakeGhl, clock: FakeClock) -> None:
    seed(ghl)
    await command(bot, "/autotag on")
    await command(bot, "/autotag writeback on")
    post = ghl.add_post(LOC, summary="#Promo", published_at=ago(clock, 5))
    ghl.fail_next(f"/posts/{post['_id']}", 422, method="PUT",
                  body={"statusCode": 422, "message": ["published posts cannot be edited"],
                        "error": "Unprocessable Entity"})
    assert await poll(bot) == 1
    [card] = announcements(bot)
    assert "could not write the tags" in texts(card) and "published posts cannot be edited" in texts(card)
    [row] = await audit(bot, "post.tag")
    assert row["outcome"] == "error" and "cannot be edited" in row["detail"]["error"]
    clock.advance(600)
    assert await poll(bot) == 0 and len(calls(ghl, "PUT")) == 1


# ----- cursor, restarts, outages ----------------------------------------------------------------------


async def test_cursor_survives_restarts_and_nothing_is_missed(tmp_path: Path, ghl: FakeGhl, clock: FakeClock) -> None:
    seed(ghl)
    async with start(tmp_path, ghl, clock) as h:
        await command(h, "/autotag on")
        ghl.add_post(LOC, summary="first #Promo", published_at=ago(clock, 1))
        assert await poll(h) == 1
        first_run = clock.time()
    clock.advance(2 * 3600)  # the bot is down for two hours; posts keep being published
    during = ghl.add_post(LOC, summary="while down #Promo", published_at=ago(clock, 90))
    async with start(tmp_path, ghl, clock) as h:
        assert await poll(h) == 1
        [card] = announcements(h)
        assert during["_id"] in texts(card) and "first" not in texts(card)
        lst = calls(ghl, "POST", "/posts/list")[-1]
        assert datetime.fromisoformat(lst.body["fromDate"].replace("Z", "+00:00")).timestamp() == (
            first_run - OVERLAP_S)
        assert await PollStore(h.services.db, clock.time).cursor(LOC) == clock.time()


async def test_an_outage_keeps_the_cursor_and_the_next_run_catches_up(bot: BotHarness, ghl: FakeGhl,
                                                                      clock: FakeClock) -> None:
    seed(ghl)
    await command(bot, "/autotag on")
    assert await poll(bot) == 0
    cursor = await PollStore(bot.services.db, clock.time).cursor(LOC)
    clock.advance(600)
    post = ghl.add_post(LOC, summary="#Promo", published_at=ago(clock, 2))
    ghl.fail_next("/posts/list", 503, times=10)
    with pytest.raises(GhlUnavailable):
        await poll(bot)
    ghl.faults.clear()
    assert await PollStore(bot.services.db, clock.time).cursor(LOC) == cursor
    clock.advance(600)
    assert await poll(bot) == 1
    assert post["_id"] in texts(announcements(bot)[-1])


async def test_posts_are_paged(bot: BotHarness, ghl: FakeGhl, clock: FakeClock) -> None:
    seed(ghl)
    await command(bot, "/autotag on")
    for i in range(60):
        ghl.add_post(LOC, summary=f"post {i}", published_at=ago(clock, 30 - i * 0.1))
    assert await poll(bot) == 60
    assert [c.body["skip"] for c in calls(ghl, "POST", "/posts/list")] == ["0", "50"]
    [card] = announcements(bot)
    assert "…and 50 more" in texts(card)


# ----- rules whose tag disappeared ----------------------------------------------------------------------


async def test_a_rule_whose_tag_vanished_is_paused_and_announced_once(bot: BotHarness, ghl: FakeGhl,
                                                                     clock: FakeClock) -> None:
    tags = seed(ghl)
    await command(bot, "/autotag on")
    await command(bot, "/autotag add sale -> Spring")
    spring = ghl.location(LOC).tags.pop(tags["Spring"])
    ghl.add_post(LOC, summary="big sale", published_at=ago(clock, 5))
    assert await poll(bot) == 1
    paused, announced = announcements(bot)
    assert "Auto-tag rules paused" in paused["header"]["title"]["content"]
    assert "`sale` → **Spring**" in texts(paused) and "GHL's API cannot create tags" in texts(paused)
    assert "no existing tag matches" in texts(announced)
    [rule] = await AutotagStore(bot.services.db, clock.time).rules(LOC)
    assert rule.missing_since == clock.time()

    clock.advance(600)
    ghl.add_post(LOC, summary="another sale", published_at=ago(clock, 5))
    assert await poll(bot) == 1
    assert len(announcements(bot)) == 3  # the notice is not repeated

    ghl.location(LOC).tags[spring["_id"]] = spring  # the tag is back: the rule resumes
    clock.advance(600)
    ghl.add_post(LOC, summary="sale again", published_at=ago(clock, 5))
    assert await poll(bot) == 1
    assert "**Spring** — rule “sale”" in texts(announcements(bot)[-1])
    [rule] = await AutotagStore(bot.services.db, clock.time).rules(LOC)
    assert rule.missing_since is None


# ----- the scheduler runs it ----------------------------------------------------------------------------


async def test_the_scheduler_job_polls_every_location(bot: BotHarness, ghl: FakeGhl, clock: FakeClock) -> None:
    seed(ghl)
    await command(bot, "/autotag on")
    ghl.add_post(LOC, summary="#Promo", published_at=ago(clock, 5))
    run = await scheduler_of(bot.services).run_job("autotag.poll")
    assert run.outcome == "ok" and run.result == {LOC: 1}
    await bot.settle()
    assert len(announcements(bot)) == 1
    ghl.fail_next("/posts/list", 401, times=2)  # a broken location is logged and skipped, not fatal
    clock.advance(600)
    run = await scheduler_of(bot.services).run_job("autotag.poll")
    assert run.outcome == "ok" and run.result == {LOC: -1}
