"""Issue 3 end to end: /tags, /stats, /location, /connect and GHL errors, through the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from bot.clock import FakeClock
from tests.cardcheck import assert_fake_cards_valid, assert_valid_card, elements, texts
from tests.fakes.ghl_api import FakeGhl, build_statistics
from tests.harness import BotHarness

LOC = "loc_main"
PIT = "pit-token-value-123"


@pytest.fixture
async def ghl() -> AsyncIterator[FakeGhl]:
    async with FakeGhl() as fake:
        yield fake


def pit_settings(ghl: FakeGhl) -> dict[str, Any]:
    ghl.add_private_token(LOC, PIT)
    return {"ghl_private_token": PIT, "ghl_location_id": LOC}


@pytest.fixture
async def pit_bot(tmp_path: Path, ghl: FakeGhl) -> AsyncIterator[BotHarness]:
    async with BotHarness.start(tmp_path, ghl=ghl, **pit_settings(ghl)) as h:
        yield h
    assert ghl.invalid_requests == []


def now(h: BotHarness) -> int:
    return int(h.services.clock.time())


async def command(h: BotHarness, text: str, chat_id: str = "oc_p2p", **kw: Any) -> dict[str, Any]:
    """Deliver a command and return the card of the one reply it produced."""
    before = len(h.lark.sent_messages())
    status, _ = await h.deliver(h.events.message(text, chat_id=chat_id, **kw), timestamp=now(h))
    assert status == 200
    await h.settle()
    sent = h.lark.sent_messages()[before:]
    assert len(sent) == 1, sent
    card: dict[str, Any] = sent[0]["content"]
    assert_valid_card(card)
    return card


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return elements(card, "button")


def button_value(card: dict[str, Any], label: str) -> dict[str, Any]:
    for b in buttons(card):
        if b["text"]["content"] == label:
            for beh in b["behaviors"]:
                if beh["type"] == "callback":
                    return dict(beh["value"])
    raise AssertionError(f"no button {label!r} in {[b['text']['content'] for b in buttons(card)]}")


async def click(h: BotHarness, value: dict[str, Any], chat_id: str = "oc_p2p", **kw: Any) -> dict[str, Any]:
    status, body = await h.deliver(h.events.card_action(value, chat_id=chat_id, message_id="om_card", **kw),
                                   timestamp=now(h))
    assert status == 200
    assert isinstance(body, dict)
    if "card" in body:
        assert body["card"]["type"] == "raw"
        assert_valid_card(body["card"]["data"])
    return body


def tag_calls(ghl: FakeGhl) -> int:
    return sum(1 for c in ghl.calls if c.method == "GET" and c.path.endswith("/tags"))


# ----- /tags -------------------------------------------------------------------------------


async def test_tags_lists_pages_in_place_and_searches(pit_bot: BotHarness, ghl: FakeGhl) -> None:
    ghl.add_tags(LOC, [f"Tag {i:02d}" for i in range(25)] + ["Summer Sale", "summer vibes"])
    card = await command(pit_bot, "/tags")
    text = texts(card)
    assert "Showing **1–10** of **27**" in text and "Tag 00" in text and "Tag 10" not in text
    nxt = await click(pit_bot, button_value(card, "Next ›"))
    page2 = nxt["card"]["data"]
    assert "Showing **11–20** of **27**" in texts(page2) and "Tag 10" in texts(page2)
    prev = await click(pit_bot, button_value(page2, "‹ Prev"))
    assert "Showing **1–10**" in texts(prev["card"]["data"])

    found = await command(pit_bot, "/tags SUMMER")
    assert "of **2**" in texts(found) and "Summer Sale" in texts(found) and "summer vibes" in texts(found)

    submit = button_value(card, "Search")
    res = await click(pit_bot, submit, form_value={"q": "vibes"}, name="search")
    assert "summer vibes" in texts(res["card"]["data"]) and "Summer Sale" not in texts(res["card"]["data"])
    assert_fake_cards_valid(pit_bot.lark)


async def test_tag_list_is_cached_and_refreshed_in_the_background(tmp_path: Path, ghl: FakeGhl) -> None:
    clock = FakeClock(start=datetime.now(UTC).timestamp())
    ghl.add_tags(LOC, ["Alpha", "Beta"])
    async with BotHarness.start(tmp_path, ghl=ghl, clock=clock, tag_cache_ttl_seconds=600, **pit_settings(ghl)) as h:
        await command(h, "/tags")
        assert tag_calls(ghl) == 1
        await command(h, "/tags")
        assert tag_calls(ghl) == 1, "a fresh cache must not call GHL"
        ghl.add_tag(LOC, "Gamma")
        clock.advance(601)
        stale = await command(h, "/tags")  # answered from the cache at once, refreshed behind it
        assert "Gamma" not in texts(stale)
        assert tag_calls(ghl) == 2
        assert "Gamma" in texts(await command(h, "/tags"))


async def test_tag_details_show_recent_posts_with_that_tag(pit_bot: BotHarness, ghl: FakeGhl) -> None:
    [promo, other] = ghl.add_tags(LOC, ["Promo", "Other"])
    now = datetime.now(UTC)
    ghl.add_account(LOC, platform="facebook")
    ghl.add_post(LOC, summary="Black friday deals", tags=[promo["_id"]], published_at=now - timedelta(days=2))
    ghl.add_post(LOC, summary="Unrelated news", tags=[other["_id"]], published_at=now - timedelta(days=1))
    ghl.add_post(LOC, summary="Old promo", tags=[promo["_id"]], published_at=now - timedelta(days=90))
    card = await command(pit_bot, "/tags promo")
    res = await click(pit_bot, button_value(card, "Details"))
    detail = texts(res["card"]["data"])
    assert "Promo" in detail and "Black friday deals" in detail
    assert "Unrelated news" not in detail and "Old promo" not in detail
    assert any(c.path.endswith("/tags/details") for c in ghl.calls)


async def test_empty_location_says_tags_are_created_in_ghl(pit_bot: BotHarness) -> None:
    card = await command(pit_bot, "/tags")
    assert "cannot create" in texts(card)


# ----- /stats ------------------------------------------------------------------------------


async def test_stats_card_has_totals_changes_platforms_and_a_chart(pit_bot: BotHarness, ghl: FakeGhl) -> None:
    fb = ghl.add_account(LOC, platform="facebook")
    ghl.add_account(LOC, platform="instagram")
    ghl.add_account(LOC, platform="twitter", name="Our X account")
    ghl.set_statistics(LOC, build_statistics(posts=14, likes=300, followers=1200, impressions=7000, comments=40,
                                             reach=5000, change=12.5, platforms=("facebook", "instagram")))
    card = await command(pit_bot, "/stats")
    text = texts(card)
    for needle in ("7,000", "5,000", "1,200", "▲ 12.5%", "Facebook", "Instagram"):
        assert needle in text, needle
    assert any(el.get("tag") == "chart" for el in card["body"]["elements"])
    [stats_call] = [c for c in ghl.calls if c.path.endswith("/statistics")]
    assert stats_call.query["locationId"] == LOC
    assert fb["profileId"] in stats_call.body["profileIds"] and len(stats_call.body["profileIds"]) == 2
    assert any(c.path.endswith("/tags") for c in ghl.calls), "tags refresh rides along with /stats"

    res = await click(pit_bot, button_value(card, "Instagram"))
    assert "instagram" in str(res["card"]["data"]["header"]["subtitle"]).lower()
    last = [c for c in ghl.calls if c.path.endswith("/statistics")][-1]
    assert last.body.get("platforms") == ["instagram"]


async def test_stats_without_reporting_accounts_says_why(pit_bot: BotHarness, ghl: FakeGhl) -> None:
    ghl.add_account(LOC, platform="twitter", name="Our X")
    ghl.add_account(LOC, platform="facebook", name="Old page", is_expired=True)
    card = await command(pit_bot, "/stats")
    text = texts(card)
    assert "No connected account" in text and "LinkedIn **pages**" in text
    assert "Our X" in text and "Old page" in text
    assert not any(c.path.endswith("/statistics") for c in ghl.calls)


# ----- errors ------------------------------------------------------------------------------


async def test_rate_limit_after_retries_becomes_a_card_naming_the_location(tmp_path: Path, ghl: FakeGhl) -> None:
    async with BotHarness.start(tmp_path, ghl=ghl, **pit_settings(ghl)) as h:
        h.services.ghl.client._max_retry_wait = 0.0  # type: ignore[union-attr]
        ghl.fail_next("/tags", 429, times=10, headers={"Retry-After": "120"})
        card = await command(h, "/tags")
    text = texts(card)
    assert "rate-limiting" in text and LOC in text and "Wait a minute" in text
    assert "Traceback" not in text and PIT not in str(card)
    assert button_value(card, "Try again") == {"k": "cmd", "v": 1, "command": "tags", "args": ""}


async def test_revoked_private_token_gives_an_auth_card_without_retry_loops(pit_bot: BotHarness,
                                                                           ghl: FakeGhl) -> None:
    ghl.revoke(PIT)
    card = await command(pit_bot, "/tags")
    assert "rejected the bot's credentials" in texts(card)
    assert tag_calls(ghl) == 1
    rows = await pit_bot.services.audit.recent(kind="command")
    assert rows[0].outcome == "error"


async def test_ghl_down_gives_a_card_with_retry(tmp_path: Path, ghl: FakeGhl) -> None:
    async with BotHarness.start(tmp_path, ghl=ghl, **pit_settings(ghl)) as h:
        h.services.ghl.client._backoff_base = 0.001  # type: ignore[union-attr]
        ghl.fail_next("/accounts", 503, times=10)
        card = await command(h, "/stats")
    assert "not answering" in texts(card) and "Try again" in texts(card)


# ----- OAuth connect and locations ---------------------------------------------------------


def oauth_settings() -> dict[str, Any]:
    return {"ghl_client_id": "fake-client-id", "ghl_client_secret": "fake-client-secret",
            "public_base_url": "https://bot.example.com", "bot_secret_key": "bot-secret-key-value"}


async def connect_link_state(h: BotHarness, chat_id: str, user: str = "ou_user") -> str:
    card = await command(h, "/connect", chat_id=chat_id, sender_open_id=user)
    [link] = [b for b in buttons(card) if any(x["type"] == "open_url" for x in b["behaviors"])]
    url = next(x["default_url"] for x in link["behaviors"] if x["type"] == "open_url")
    assert url.startswith("https://bot.example.com/oauth/ghl/start?state=")
    return parse_qs(urlparse(url).query)["state"][0]


async def get(h: BotHarness, path: str, **params: str) -> tuple[int, str, Any]:
    async with h.session.get(h.url(path), params=params, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp


async def test_oauth_connect_flow_stores_an_encrypted_installation_and_announces_it(
        tmp_path: Path, ghl: FakeGhl) -> None:
    async with BotHarness.start(tmp_path, ghl=ghl, **oauth_settings()) as h:
        state = await connect_link_state(h, "oc_group", "ou_alice")
        status, _, resp = await get(h, "/oauth/ghl/start", state=state)
        assert status == 302
        target = urlparse(resp.headers["Location"])
        q = parse_qs(target.query)
        assert q["state"] == [state] and q["client_id"] == ["fake-client-id"]
        assert q["redirect_uri"] == ["https://bot.example.com/oauth/ghl/callback"]
        assert "socialplanner/statistics.readonly" in q["scope"][0].split(" ")
        code = ghl.issue_code("loc_oauth")
        status, page, _ = await get(h, "/oauth/ghl/callback", code=code, state=state)
        assert status == 200 and "connected" in page.lower()
        await h.settle()
        announce = h.lark.sent_messages()[-1]
        assert announce["kind"] == "send" and announce["receive_id"] == "oc_group"
        assert "loc_oauth" in texts(announce["content"])
        row = await h.services.db.fetchone("SELECT * FROM installations WHERE location_id='loc_oauth'")
        assert row is not None
        stored = ghl.calls[-1]  # the token exchange
        assert stored.path == "/oauth/token"
        assert "at-" not in row["access_token"] and "rt-" not in row["refresh_token"]
        assert await h.services.chats.bound_location("oc_group") == "loc_oauth"
        # the chat can now use it
        ghl.add_tags("loc_oauth", ["Launch"])
        assert "Launch" in texts(await command(h, "/tags", chat_id="oc_group"))
        # replaying the same state is refused and stores nothing new
        status, _, _ = await get(h, "/oauth/ghl/callback", code=ghl.issue_code("loc_other"), state=state)
        assert status == 400
        assert await h.services.db.fetchone("SELECT 1 FROM installations WHERE location_id='loc_other'") is None


async def test_forged_and_expired_states_are_refused(tmp_path: Path, ghl: FakeGhl) -> None:
    clock = FakeClock(start=datetime.now(UTC).timestamp())
    async with BotHarness.start(tmp_path, ghl=ghl, clock=clock, **oauth_settings()) as h:
        state = await connect_link_state(h, "oc_1")
        nonce = state.split(".")[0]
        for forged in (f"{nonce}.AAAA", "nonsense", f"{nonce}x.{state.split('.')[1]}", ""):
            status, _, _ = await get(h, "/oauth/ghl/callback", code=ghl.issue_code("loc_x"), state=forged)
            assert status == 400, forged
        clock.advance(601)
        status, _, _ = await get(h, "/oauth/ghl/callback", code=ghl.issue_code("loc_x"), state=state)
        assert status == 400
        assert await h.services.db.fetchone("SELECT 1 FROM installations") is None
        assert not any(c.path == "/oauth/token" for c in ghl.calls)
        refused = await h.services.audit.recent(kind="connect")
        assert {r.outcome for r in refused} == {"refused", "ok"}  # "ok" is the link issued


async def test_locations_side_by_side_and_choice_by_button(tmp_path: Path, ghl: FakeGhl) -> None:
    async with BotHarness.start(tmp_path, ghl=ghl, **oauth_settings()) as h:
        for chat, loc in (("oc_a", "loc_a"), ("oc_b", "loc_b"), ("oc_a", "loc_c")):
            state = await connect_link_state(h, chat)
            status, _, _ = await get(h, "/oauth/ghl/callback", code=ghl.issue_code(loc), state=state)
            assert status == 200
            await h.settle()
        ghl.add_tags("loc_a", ["From A"])
        ghl.add_tags("loc_b", ["From B"])
        ghl.add_tags("loc_c", ["From C"])
        assert "From A" in texts(await command(h, "/tags", chat_id="oc_a"))
        assert "From B" in texts(await command(h, "/tags", chat_id="oc_b"))
        card = await command(h, "/location", chat_id="oc_a")
        assert "loc_a" in texts(card) and "loc_c" in texts(card) and "loc_b" not in texts(card)
        res = await click(h, button_value(card, "Use this"), chat_id="oc_a")
        assert res["toast"]["type"] == "success"
        assert "From C" in texts(await command(h, "/tags", chat_id="oc_a"))
        # a chat cannot reach another chat's location, by command or by a crafted click
        assert "not connected to this chat" in texts(await command(h, "/location loc_b", chat_id="oc_a"))
        crafted = await click(h, {"k": "tags.page", "v": 1, "loc": "loc_b"}, chat_id="oc_a")
        assert "From B" not in str(crafted)


async def test_invalid_grant_marks_reconnect_and_shows_a_reconnect_button(tmp_path: Path, ghl: FakeGhl) -> None:
    clock = FakeClock(start=datetime.now(UTC).timestamp())
    ghl.clock = clock
    async with BotHarness.start(tmp_path, ghl=ghl, clock=clock, **oauth_settings()) as h:
        state = await connect_link_state(h, "oc_r")
        await get(h, "/oauth/ghl/callback", code=ghl.issue_code("loc_r"), state=state)
        await h.settle()
        refresh = ghl.current_refresh_token("loc_r")
        assert refresh is not None
        ghl.revoke(refresh)
        clock.advance(86400)
        card = await command(h, "/tags", chat_id="oc_r")
        assert "Reconnect" in texts(card)
        assert button_value(card, "Reconnect")["command"] == "connect"
        row = await h.services.db.fetchone("SELECT status FROM installations WHERE location_id='loc_r'")
        assert row is not None and row["status"] == "needs_reconnect"
        before = ghl.token_requests
        await command(h, "/tags", chat_id="oc_r")
        assert ghl.token_requests == before, "a disconnected installation is not retried"


async def test_a_background_refusal_tells_every_other_chat_with_access_once(tmp_path: Path, ghl: FakeGhl) -> None:
    clock = FakeClock(start=datetime.now(UTC).timestamp())
    ghl.clock = clock
    async with BotHarness.start(tmp_path, ghl=ghl, clock=clock, **oauth_settings()) as h:
        for chat in ("oc_one", "oc_two", "oc_three"):
            state = await connect_link_state(h, chat)
            code = ghl.issue_code("loc_shared")
            assert (await get(h, "/oauth/ghl/callback", code=code, state=state))[0] == 200
            await h.settle()
        refresh = ghl.current_refresh_token("loc_shared")
        assert refresh is not None
        ghl.revoke(refresh)
        clock.advance(86400)
        before = len(h.lark.sent_messages())
        # this chat's command trips the refusal: it gets the reconnect card as its reply
        assert (await h.deliver(h.events.message("/tags", chat_id="oc_one"), timestamp=now(h)))[0] == 200
        await h.settle()
        [reply] = [m for m in h.lark.sent_messages()[before:] if m["kind"] == "reply"]
        assert "Reconnect" in texts(reply["content"])
        notices = [m for m in h.lark.sent_messages()[before:] if m["kind"] == "send"]
        assert [m["receive_id"] for m in notices] == ["oc_three", "oc_two"], "oc_one got its answer as the reply"
        assert "Reconnect" in texts(notices[0]["content"])
        assert "Reconnect" in texts(await command(h, "/tags", chat_id="oc_two"))  # flagged: no second notice
        assert [m for m in h.lark.sent_messages()[before:] if m["kind"] == "send"] == notices
        audit = await h.services.audit.recent(kind="connect", chat_id="oc_two")
        assert audit[0].action == "needs reconnect notice" and audit[0].outcome == "ok"


async def test_only_group_owner_and_admins_change_location_and_autotag(tmp_path: Path, ghl: FakeGhl) -> None:
    async with BotHarness.start(tmp_path, ghl=ghl, **oauth_settings()) as h:
        h.lark.add_chat("oc_team", owner_id="ou_owner", user_manager_id_list=["ou_admin"])
        for loc in ("loc_a", "loc_b"):
            state = await connect_link_state(h, "oc_team", "ou_owner")
            assert (await get(h, "/oauth/ghl/callback", code=ghl.issue_code(loc), state=state))[0] == 200
            await h.settle()
        group = {"chat_id": "oc_team", "chat_type": "group", "mention_bot": True}
        for text in ("/location loc_b", "/autotag on", "/autotag writeback on", "/autotag user someone",
                     "/autotag add sale -> Promo", "/autotag remove sale"):
            card = await command(h, text, sender_open_id="ou_member", **group)
            assert "Not allowed" in texts(card), text
        assert await h.services.chats.bound_location("oc_team") == "loc_a"
        listing = await command(h, "/location", sender_open_id="ou_member", **group)  # reading is fine
        res = await click(h, button_value(listing, "Use this"), chat_id="oc_team", operator_open_id="ou_member")
        assert res["toast"]["type"] == "warning" and "card" not in res
        assert await h.services.chats.bound_location("oc_team") == "loc_a"
        for user in ("ou_admin", "ou_owner"):
            card = await command(h, "/autotag on", sender_open_id=user, **group)
            assert "Not allowed" not in texts(card), user
        assert "now works on" in texts(await command(h, "/location loc_b", sender_open_id="ou_admin", **group))
        refused = [r for r in await h.services.audit.recent(chat_id="oc_team", limit=200) if r.outcome == "refused"]
        assert len(refused) == 7


async def test_stats_dates_ghls_window_like_the_digest_whatever_the_default_zone(tmp_path: Path,
                                                                                 ghl: FakeGhl) -> None:
    clock = FakeClock(start=datetime(2026, 3, 10, 1, 0, tzinfo=UTC).timestamp())  # 18:00 on the 9th in LA
    ghl.add_account(LOC, platform="facebook")
    ghl.set_statistics(LOC, build_statistics(posts=3, impressions=700, reach=500))
    async with BotHarness.start(tmp_path, ghl=ghl, clock=clock, default_timezone="America/Los_Angeles",
                                **pit_settings(ghl)) as h:
        card = await command(h, "/stats")
    assert "2026-03-03 – 2026-03-09" in texts(card)  # the snapshot of UTC day 03-10 covers 03-03 … 03-09


async def test_connect_in_a_group_sends_the_link_privately_and_binds_the_group(tmp_path: Path, ghl: FakeGhl) -> None:
    async with BotHarness.start(tmp_path, ghl=ghl, **oauth_settings()) as h:
        env = h.events.message("/connect", chat_id="oc_grp", chat_type="group", mention_bot=True,
                               sender_open_id="ou_alice")
        assert (await h.deliver(env, timestamp=now(h)))[0] == 200
        await h.settle()
        [dm, reply] = h.lark.sent_messages()
        notice = reply["content"]
        assert reply["reply_to"] == env["event"]["message"]["message_id"]
        assert "direct chat" in texts(notice) and not buttons(notice)  # no link in the group
        assert (dm["receive_id_type"], dm["receive_id"]) == ("open_id", "ou_alice")
        assert_valid_card(dm["content"])
        [link] = [x["default_url"] for b in buttons(dm["content"]) for x in b["behaviors"] if x["type"] == "open_url"]
        state = parse_qs(urlparse(link).query)["state"][0]
        assert (await get(h, "/oauth/ghl/callback", code=ghl.issue_code("loc_g"), state=state))[0] == 200
        await h.settle()
        assert await h.services.chats.bound_location("oc_grp") == "loc_g"  # the group, not the DM
        # when Lark cannot reach the user directly, the group gets the link and is told who may use it
        h.lark.fail_next("/open-apis/im/v1/messages", status=400, code=230013, times=1)
        fallback = await command(h, "/connect", chat_id="oc_grp", chat_type="group", mention_bot=True,
                                 sender_open_id="ou_bob")
        assert "first connects" in texts(fallback) and buttons(fallback)
