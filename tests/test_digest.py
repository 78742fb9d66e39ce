"""The digest: its card (from stored history + GHL), and sending it exactly once whatever happens.

Everything runs through the real server against FakeLark and FakeGhl with an injected FakeClock;
the scheduler is driven by hand (`run_job`). "Exactly once" is asserted on what reached FakeLark:
`sent_messages()` (deliveries; uuid replays excluded) and the raw POSTs (`calls_to`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.clock import FakeClock
from bot.digest import RunCounts, digest_service, digest_uuid, due_at
from bot.scheduler import JobRun, scheduler_of
from cards.digest import (
    DayChange,
    DigestData,
    Mover,
    ScheduleView,
    TagCount,
    WeekChange,
    digest_card,
    digest_empty_card,
    digest_input_error_card,
    digest_no_location_card,
    digest_refused_card,
    digest_schedule_card,
)
from cards.i18n import T
from cards.payloads import RunCommand, parse_value
from tests.cardcheck import assert_valid_card, iter_elements, texts
from tests.fakes.ghl_api import FakeGhl, build_statistics, spec_checked_ghl
from tests.fakes.lark_api import FakeLark
from tests.harness import APP_ID, APP_SECRET, BotHarness
from tests.test_digest_schedule import LOC, P2P, audit_rows, command, digest_bot

UTCZ = ZoneInfo("UTC")
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
MSG_POST = "/open-apis/im/v1/messages"


class Crash(BaseException):
    """Stands for the process dying at a step (not an Exception: nothing in the bot catches it)."""


def stats_for(i: int) -> dict[str, Any]:
    s = build_statistics(posts=14, likes=700, followers=1000 + 10 * i, impressions=7000 + 700 * i, comments=70,
                         reach=5000 + 100 * i, change=12.5, platforms=("facebook", "instagram"))
    s["postPerformance"]["impressions"] = [100 * (i + k) for k in range(1, 8)]
    s["breakdowns"]["impressions"]["platforms"]["facebook"]["change"] = 30.0
    s["breakdowns"]["impressions"]["platforms"]["instagram"]["change"] = -5.0
    return s


@pytest.fixture
def clock() -> FakeClock:
    c = FakeClock()
    c.set(DAY0)
    return c


@pytest.fixture
async def ghl(clock: FakeClock) -> AsyncIterator[FakeGhl]:
    async with spec_checked_ghl(clock) as fake:
        fake.add_location(LOC)
        fake.add_account(LOC, platform="facebook")
        fake.add_account(LOC, platform="instagram")
        fake.set_statistics(LOC, stats_for(0))
        yield fake


@pytest.fixture
async def lark() -> AsyncIterator[FakeLark]:
    async with FakeLark(APP_ID, APP_SECRET) as fake:
        yield fake


def counts(run: JobRun) -> RunCounts:
    assert isinstance(run.result, RunCounts), run
    return run.result


def send_posts(fake: FakeLark) -> list[Any]:
    """Every POST that asked Lark to send a new message (replies excluded), uuid replays included."""
    return [c for c in fake.calls if c.path == MSG_POST and c.method == "POST"]


def digests(fake: FakeLark, chat: str = P2P) -> list[dict[str, Any]]:
    return [m for m in fake.sent_messages() if m["kind"] == "send" and m["chat_id"] == chat]


async def send_row(h: BotHarness, chat: str, local_date: str) -> Any:
    return await digest_service(h.services).sends.get(chat, local_date)


# ----- the card -----------------------------------------------------------------------------------


async def test_digest_now_uses_history_tags_and_buttons(tmp_path: Path, clock: FakeClock, ghl: FakeGhl) -> None:
    promo, launch = ghl.add_tags(LOC, ["Promo", "Launch"])
    async with digest_bot(tmp_path, clock, ghl=ghl) as h:
        sched = scheduler_of(h.services)
        for i in range(9):  # nine daily snapshots, numbers growing every day
            clock.set(DAY0 + timedelta(days=i, hours=1))
            ghl.set_statistics(LOC, stats_for(i))
            run = await sched.run_job("stats.snapshot")
            assert run.outcome == "ok" and run.result["stored"] == 1, run  # type: ignore[index]
        now = clock.time()
        for days_ago, tags in ((1, [promo["_id"]]), (2, [promo["_id"], launch["_id"]]), (3, [promo["_id"]]),
                               (10, [promo["_id"], launch["_id"]])):
            ghl.add_post(LOC, summary="x", tags=tags, published_at=datetime.fromtimestamp(now - days_ago * 86400, UTC))
        ghl.add_post(LOC, summary="later", tags=[launch["_id"]], status="scheduled",
                     published_at=datetime.fromtimestamp(now - 3600, UTC))
        posts_before = len(h.lark.sent_messages())

        card = await command(h, clock, "/digest now")
        body = texts(card)
        # yesterday vs the day before, from the latest snapshot's series (i = 8: 1,500 vs 1,400)
        assert "2026-03-08" in body and "2026-03-07" in body
        assert "1,500" in body and "1,400" in body and "7.1%" in body
        # last 7 days: GHL's totals and change, and the change since our own snapshot of 7 days earlier
        assert "12.6K" in body and "12.5%" in body
        assert "snapshot of 2026-03-02" in body and "+4,900" in body  # 12,600 - 7,700 (GHL total shown as 12.6K)
        assert "Followers" in body and "+70" in body
        # biggest movers per platform
        assert body.index("Facebook") < body.index("Instagram")
        assert "30.0%" in body
        # top tags: published posts of the last 7 days only
        assert "1. Promo — 3 posts" in body and "2. Launch — 1 post" in body
        # trend chart from stored history, numbers repeated as text
        [chart] = [el for el in iter_elements(card["body"]["elements"]) if el["tag"] == "chart"]
        values = chart["chart_spec"]["data"][0]["values"]
        assert len(values) == 14 and values[-1] == {"day": "03-08", "value": 1500.0}
        assert "Impressions per day: " in body and "03-08 1,500" in body
        # buttons open /stats and /tags for that location
        clicks = [parse_value(b["value"]) for el in iter_elements(card["body"]["elements"])
                  for b in el.get("behaviors", []) if b["type"] == "callback"]
        assert RunCommand(command="stats", args=LOC) in clicks and RunCommand(command="tags") in clicks
        assert "每日摘要" in body and "热门标签" in body
        # `now` is a reply, not the day's scheduled digest
        assert len(h.lark.sent_messages()) == posts_before + 1
        assert await h.services.db.fetchall("SELECT * FROM digest_sends") == []
        assert ("now", "ok", {"local_date": "2026-03-09"}) in await audit_rows(h)


async def test_no_data_cards(tmp_path: Path, clock: FakeClock, ghl: FakeGhl) -> None:
    ghl.location(LOC).accounts.clear()  # nothing that reports statistics
    ghl.add_account(LOC, platform="twitter")
    async with digest_bot(tmp_path, clock, ghl=ghl, default_timezone="Asia/Shanghai") as h:
        body = texts(await command(h, clock, "/digest now"))
        assert "No connected account" in body and "Asia/Shanghai" in body

        ghl.location(LOC).accounts.clear()
        ghl.add_account(LOC, platform="facebook")
        ghl.fail_next("/statistics", 503, times=20)
        body = texts(await command(h, clock, "/digest now"))
        assert "no statistics" in body and "2026-03-01 09:00" in body  # the next hourly reading, local time


async def test_no_location_card(tmp_path: Path, clock: FakeClock) -> None:
    async with digest_bot(tmp_path, clock) as h:  # GHL not configured
        body = texts(await command(h, clock, "/digest now"))
        assert "no location" in body and "/connect" in body


def _data(**kw: Any) -> DigestData:
    base: dict[str, Any] = dict(
        location=LOC, local_date="2026-03-09", tz="Asia/Shanghai", yesterday="2026-03-08", day_before="2026-03-07",
        week_window="2026-03-02 – 2026-03-08",
        days=[DayChange("impressions", 1500, 1400), DayChange("posts", 2, 0), DayChange("likes", 0, 0),
              DayChange("comments", 3, 4)],
        week=[WeekChange("impressions", 12600, 12.5, 7700), WeekChange("reach", 5800, -3.0, None),
              WeekChange("posts", 14, 0, 14), WeekChange("likes", 700, None, 650),
              WeekChange("followers", 1080, None, 1010)],
        own_reference="2026-03-02",
        movers=[Mover("facebook", 30.0, 800, 50), Mover("tiktok", None, None, None), Mover("x-other", -2.5, 0, -1)],
        tags=[TagCount(f"Tag {i} " + "长" * 30, 10 - i) for i in range(5)],
        trend=[(f"03-{d:02d}", 1000.0 * d) for d in range(1, 15)],
        taken_at="2026-03-09 01:00 UTC")
    base.update(kw)
    return DigestData(**base)


@pytest.mark.parametrize("card", [
    pytest.param(lambda: digest_card(_data()), id="full"),
    pytest.param(lambda: digest_card(_data(days=[], movers=[], tags=None, trend=[], own_reference=None)), id="bare"),
    pytest.param(lambda: digest_card(_data(tags=[], trend=[("03-01", 5.0)], location="l" * 64)), id="edge"),
    pytest.param(lambda: digest_empty_card(LOC, "2026-03-09", "UTC", "2026-03-09 10:00", no_accounts=True),
                 id="empty-no-accounts"),
    pytest.param(lambda: digest_empty_card(LOC, "2026-03-09", "UTC", "2026-03-09 10:00", no_accounts=False),
                 id="empty-not-yet"),
    pytest.param(lambda: digest_no_location_card(0), id="no-location-0"),
    pytest.param(lambda: digest_no_location_card(3), id="no-location-3"),
    pytest.param(lambda: digest_schedule_card(ScheduleView(True, "09:00", "America/New_York", "2026-03-09 09:02",
                                                           "2026-03-08: sent", T("Saved.", "已保存。"))), id="on"),
    pytest.param(lambda: digest_schedule_card(ScheduleView(True, "09:00", "UTC", None)), id="on-no-next"),
    pytest.param(lambda: digest_schedule_card(ScheduleView(False, None, "UTC", None)), id="off"),
    pytest.param(lambda: digest_input_error_card(T("bad", "坏")), id="input-error"),
    pytest.param(lambda: digest_refused_card(), id="refused"),
    pytest.param(lambda: digest_refused_card(T("why", "为什么")), id="refused-why"),
])
def test_every_digest_card_is_valid(card: Any) -> None:
    built = card()
    assert_valid_card(built)
    for el in iter_elements(built["body"]["elements"]):
        for b in el.get("behaviors", []):
            if b["type"] == "callback":
                assert parse_value(b["value"]).to_value() == b["value"]


# ----- exactly once -------------------------------------------------------------------------------


async def _schedule(h: BotHarness, clock: FakeClock, hhmm: str = "09:00", zone: str = "UTC") -> datetime:
    await command(h, clock, f"/digest on {hhmm} {zone}")
    return due_at(P2P, datetime.fromtimestamp(clock.time(), UTC).astimezone(ZoneInfo(zone)).date(), hhmm,
                  ZoneInfo(zone))


async def crash_during_send(h: BotHarness, clock: FakeClock, step: str) -> None:
    """Schedule the digest, then run the send job so that the process 'dies' at `step`."""
    due = await _schedule(h, clock)

    async def crash(at: str, chat: str, local_date: str) -> None:
        if at == step:
            raise Crash(at)

    digest_service(h.services).step_hook = crash
    clock.set(due)
    with pytest.raises(Crash):
        await scheduler_of(h.services).run_job("digest.send")


@pytest.mark.parametrize("step", ["before_record", "recorded", "attempting", "sent"])
async def test_restart_at_each_step_delivers_exactly_one(tmp_path: Path, clock: FakeClock, ghl: FakeGhl,
                                                         lark: FakeLark, step: str) -> None:
    async with digest_bot(tmp_path, clock, ghl=ghl, lark=lark) as h:
        await crash_during_send(h, clock, step)
    assert len(digests(lark)) == (1 if step == "sent" else 0)

    clock.advance(130)  # the dead process's lease (120 s) has run out
    async with digest_bot(tmp_path, clock, ghl=ghl, lark=lark) as h:  # restart on the same database
        run = await scheduler_of(h.services).run_job("digest.send")
        assert run.outcome == "ok" and counts(run).sent == 1, run
        [msg] = digests(lark)
        assert msg["uuid"] == digest_uuid(P2P, "2026-03-01")
        row = await send_row(h, P2P, "2026-03-01")
        assert row.status == "sent" and row.message_id == msg["message_id"]
        assert row.attempts == (2 if step in ("attempting", "sent") else 1)
        assert lark.dedup_hits == (1 if step == "sent" else 0)  # a re-send of a delivered one is a uuid replay
        clock.advance(3600)
        await scheduler_of(h.services).run_job("digest.send")
        assert len(digests(lark)) == 1


@pytest.mark.parametrize(("step", "later", "status", "posts"), [
    ("sent", 2 * 3600, "unknown", 1),  # delivered, but Lark's uuid window is over: never re-sent
    ("attempting", 2 * 3600, "unknown", 0),  # may have been delivered: not risked
    ("recorded", 2 * 3600, "sent", 1),  # never attempted: safe to send, still within the grace window
    ("recorded", 4 * 3600, "missed", 0),  # never attempted and beyond the grace window
])
async def test_pending_rows_found_late(tmp_path: Path, clock: FakeClock, ghl: FakeGhl, lark: FakeLark, step: str,
                                       later: int, status: str, posts: int) -> None:
    async with digest_bot(tmp_path, clock, ghl=ghl, lark=lark) as h:
        await crash_during_send(h, clock, step)
    clock.advance(later)
    async with digest_bot(tmp_path, clock, ghl=ghl, lark=lark) as h:
        await scheduler_of(h.services).run_job("digest.send")
        assert (await send_row(h, P2P, "2026-03-01")).status == status
        assert len(send_posts(lark)) == posts
        assert len(digests(lark)) == posts
        sends = [(a, o) for a, o, _ in await audit_rows(h) if a == "send"]
        assert sends[-1] == ("send", "ok" if status == "sent" else status)


async def test_catch_up_within_grace_and_missed_beyond(tmp_path: Path, clock: FakeClock, ghl: FakeGhl) -> None:
    async with digest_bot(tmp_path, clock, ghl=ghl, digest_grace_seconds=3 * 3600) as h:
        due = await _schedule(h, clock)
        sched = scheduler_of(h.services)
        clock.set(due + timedelta(hours=2, minutes=50))  # down until now: caught up on "start"
        await sched.tick()
        assert len(digests(h.lark)) == 1

        due2 = due_at(P2P, date(2026, 3, 2), "09:00", UTCZ)
        clock.set(due2 + timedelta(hours=3, minutes=10))  # too late: recorded as missed, not sent
        run = await sched.run_job("digest.send")
        assert counts(run).missed == 1
        assert len(digests(h.lark)) == 1
        assert (await send_row(h, P2P, "2026-03-02")).status == "missed"
        assert ("send", "missed") in [(a, o) for a, o, _ in await audit_rows(h)]

        due3 = due_at(P2P, date(2026, 3, 3), "09:00", UTCZ)
        clock.set(due3)
        await sched.run_job("digest.send")
        assert [m["uuid"] for m in digests(h.lark)] == [digest_uuid(P2P, "2026-03-01"), digest_uuid(P2P, "2026-03-03")]
        status = texts(await command(h, clock, "/digest status"))
        assert "2026-03-03: sent" in status and "2026-03-04 09:0" in status


@pytest.mark.parametrize(("status", "code"), [(500, 1500), (429, 99991400), (400, 11232)])
async def test_failed_sends_are_retried_without_duplicates(tmp_path: Path, clock: FakeClock, ghl: FakeGhl,
                                                           status: int, code: int) -> None:
    async with digest_bot(tmp_path, clock, ghl=ghl) as h:
        due = await _schedule(h, clock)
        sched = scheduler_of(h.services)
        clock.set(due)
        h.lark.fail_next(MSG_POST, status=status, code=code, times=2, method="POST")
        await sched.run_job("digest.send")  # the Lark client's own retries get it through
        assert len(digests(h.lark)) == 1
        assert (await send_row(h, P2P, "2026-03-01")).attempts == 1

        clock.set(due_at(P2P, date(2026, 3, 2), "09:00", UTCZ))
        h.lark.fail_next(MSG_POST, status=status, code=code, times=4, method="POST")  # beyond the client's retries
        first = await sched.run_job("digest.send")
        assert counts(first).retry == 1 and len(digests(h.lark)) == 1
        row = await send_row(h, P2P, "2026-03-02")
        assert row.status == "pending" and row.attempts == 1 and row.error
        clock.advance(30)
        second = await sched.run_job("digest.send")
        assert counts(second).sent == 1
        [_, msg] = digests(h.lark)
        assert msg["uuid"] == digest_uuid(P2P, "2026-03-02")
        row = await send_row(h, P2P, "2026-03-02")
        assert row.status == "sent" and row.attempts == 2
        assert [o for a, o, _ in await audit_rows(h) if a == "send"] == ["ok", "retry", "ok"]


async def test_gone_chat_is_marked_failed_and_skipped(tmp_path: Path, clock: FakeClock, ghl: FakeGhl) -> None:
    async with digest_bot(tmp_path, clock, ghl=ghl) as h:
        due = await _schedule(h, clock)
        clock.set(due)
        h.lark.fail_next(MSG_POST, status=400, code=230002, method="POST")
        await scheduler_of(h.services).run_job("digest.send")
        assert (await send_row(h, P2P, "2026-03-01")).status == "failed"
        assert not await h.services.chats.is_active(P2P)
        clock.set(due_at(P2P, date(2026, 3, 2), "09:00", UTCZ))
        await scheduler_of(h.services).run_job("digest.send")
        assert digests(h.lark) == [] and len(send_posts(h.lark)) == 1


async def test_two_instances_on_one_database_send_once(tmp_path: Path, clock: FakeClock, ghl: FakeGhl,
                                                       lark: FakeLark) -> None:
    async with digest_bot(tmp_path, clock, ghl=ghl, lark=lark) as a, \
            digest_bot(tmp_path, clock, ghl=ghl, lark=lark) as b:
        due = await _schedule(a, clock)
        for chat in ("oc_x1", "oc_x2", "oc_x3"):
            await command(a, clock, "/digest on 09:00 UTC", chat_id=chat)
        clock.set(due + timedelta(minutes=5))
        sends_before = len(send_posts(lark))
        runs = await asyncio.gather(scheduler_of(a.services).run_job("digest.send"),
                                    scheduler_of(b.services).run_job("digest.send"))
        assert sorted(r.outcome for r in runs) in (["busy", "ok"], ["ok", "ok"])
        assert len(send_posts(lark)) == sends_before + 4  # one per chat, no replays
        assert lark.dedup_hits == 0

        # Without the lease (claims alone): both instances try the same chat and date at once.
        day = date(2026, 3, 2)
        now = clock.time()
        results = await asyncio.gather(
            digest_service(a.services).deliver(P2P, day, UTCZ, None, now, RunCounts()),
            digest_service(b.services).deliver(P2P, day, UTCZ, None, now, RunCounts()))
        assert sorted(results) == ["sent", "taken"]
        assert len(send_posts(lark)) == sends_before + 5 and lark.dedup_hits == 0


def test_stale_statistics_are_not_called_yesterday() -> None:
    fresh = texts(digest_card(_data()))
    assert "**Yesterday** (2026-03-08)" in fresh and "**昨天**（2026-03-08）" in fresh
    stale = texts(digest_card(_data(local_date="2026-03-11")))
    assert "Yesterday" not in stale and "**Latest reported day** (2026-03-08)" in stale
