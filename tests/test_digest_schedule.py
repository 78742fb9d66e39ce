"""`/digest` settings and the schedule arithmetic: zones, DST gaps and folds, offsets, permissions.

DST rule under test (bot/digest.py): a wall time in the spring-forward gap moves forward by the
gap (02:30 → 03:30 EDT); in the fall-back fold the first occurrence counts. Each chat then sends
1–4 minutes later (stable per chat), never on minute :00 or :30.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.clock import FakeClock
from bot.digest import (
    digest_service,
    digest_uuid,
    due_at,
    load_zone,
    parse_hhmm,
    send_offset,
    wall_time,
)
from bot.scheduler import scheduler_of
from tests.cardcheck import assert_valid_card, texts
from tests.fakes.ghl_api import FakeGhl
from tests.fakes.lark_api import FakeLark
from tests.harness import BotHarness

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
LOC = "loc_digest_1"
P2P = "oc_p2p_digest"
GROUP = "oc_group_digest"


# ----- helpers shared by the digest test modules ------------------------------------------------


@asynccontextmanager
async def digest_bot(tmp_path: Path, clock: FakeClock, *, lark: FakeLark | None = None, ghl: FakeGhl | None = None,
                     **overrides: Any) -> AsyncIterator[BotHarness]:
    """The real server with FakeLark (and FakeGhl in single-location mode when given)."""
    if ghl is not None:
        overrides.setdefault("ghl_private_token", ghl.add_private_token(LOC))
        overrides.setdefault("ghl_location_id", LOC)
    async with BotHarness.start(tmp_path, clock=clock, lark=lark, ghl=ghl, **overrides) as h:
        yield h


async def command(h: BotHarness, clock: FakeClock, text: str, *, chat_id: str = P2P, chat_type: str = "p2p",
                  user: str = "ou_user") -> dict[str, Any]:
    """Type a command; return the one reply card (validated)."""
    before = len(h.lark.sent_messages())
    env = h.events.message(text, chat_id=chat_id, chat_type=chat_type, sender_open_id=user)  # type: ignore[arg-type]
    status, _ = await h.deliver(env, timestamp=int(clock.time()))
    assert status == 200
    await h.settle()
    new = h.lark.sent_messages()[before:]
    assert len(new) == 1, new
    card: dict[str, Any] = new[0]["content"]
    assert_valid_card(card)
    return card


async def audit_rows(h: BotHarness, kind: str = "digest") -> list[tuple[str, str, dict[str, Any]]]:
    rows = await h.services.db.fetchall("SELECT action, outcome, detail FROM audit WHERE kind=? ORDER BY id", (kind,))
    return [(r["action"], r["outcome"], json.loads(r["detail"])) for r in rows]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ----- pure arithmetic --------------------------------------------------------------------------


def test_parse_hhmm() -> None:
    assert parse_hhmm("09:00") == "09:00"
    assert parse_hhmm("9:05") == "09:05"
    assert parse_hhmm("23:59") == "23:59"
    for bad in ("24:00", "9", "09:60", "0900", "9:5", "-1:00", "09:00:00", ""):
        assert parse_hhmm(bad) is None, bad


async def test_load_zone_validates_and_canonicalises() -> None:
    zone = await load_zone("Europe/Berlin")
    assert zone is not None and zone.key == "Europe/Berlin"
    lower = await load_zone("america/new_york")
    assert lower is not None and lower.key == "America/New_York"
    for bad in ("Mars/Olympus", "", "../../etc/passwd", "/etc/localtime", "x" * 200, "Europe/"):
        assert await load_zone(bad) is None, bad


def test_new_york_spring_forward() -> None:
    # 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT.
    assert wall_time(date(2026, 3, 7), "09:00", NY) == utc(2026, 3, 7, 14, 0)
    assert wall_time(date(2026, 3, 8), "09:00", NY) == utc(2026, 3, 8, 13, 0)  # 23 hours later
    gap = wall_time(date(2026, 3, 8), "02:30", NY)  # does not exist: moved forward by the gap
    assert gap == utc(2026, 3, 8, 7, 30)
    assert gap.astimezone(NY).strftime("%H:%M %Z") == "03:30 EDT"
    assert wall_time(date(2026, 3, 9), "02:30", NY) == utc(2026, 3, 9, 6, 30)  # back to normal


def test_new_york_fall_back() -> None:
    # 2026-11-01: clocks go back from 02:00 EDT to 01:00 EST; 01:30 happens twice.
    first = wall_time(date(2026, 11, 1), "01:30", NY)
    assert first == utc(2026, 11, 1, 5, 30)
    assert first.astimezone(NY).strftime("%H:%M %Z") == "01:30 EDT"  # the first occurrence
    assert wall_time(date(2026, 10, 31), "09:00", NY) == utc(2026, 10, 31, 13, 0)
    assert wall_time(date(2026, 11, 1), "09:00", NY) == utc(2026, 11, 1, 14, 0)  # 25 hours later


def test_berlin_transitions() -> None:
    assert wall_time(date(2026, 3, 28), "09:00", BERLIN) == utc(2026, 3, 28, 8, 0)
    assert wall_time(date(2026, 3, 29), "09:00", BERLIN) == utc(2026, 3, 29, 7, 0)
    gap = wall_time(date(2026, 3, 29), "02:30", BERLIN)
    assert gap == utc(2026, 3, 29, 1, 30) and gap.astimezone(BERLIN).strftime("%H:%M") == "03:30"
    fold = wall_time(date(2026, 10, 25), "02:30", BERLIN)
    assert fold == utc(2026, 10, 25, 0, 30) and fold.astimezone(BERLIN).strftime("%Z") == "CEST"


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"])
def test_offsets_are_stable_spread_and_never_on_peaks(zone: str) -> None:
    tz = ZoneInfo(zone)
    offsets = set()
    for i in range(300):
        chat = f"oc_{i:032x}"
        for hhmm in ("08:57", "08:58", "08:59", "09:00", "09:26", "09:27", "09:28", "09:29", "13:30"):
            for day in (date(2026, 3, 8), date(2026, 4, 5), date(2026, 11, 1)):
                base = wall_time(day, hhmm, tz)
                off = send_offset(chat, base, tz)
                assert 60 <= off < 240
                assert off == send_offset(chat, base, tz)  # stable
                at = due_at(chat, day, hhmm, tz)
                assert at == base + timedelta(seconds=off)
                assert at.minute % 30 != 0 and at.astimezone(tz).minute % 30 != 0, (chat, hhmm, at)
                offsets.add(off)
    assert len(offsets) > 100  # chats are spread over the window


def test_digest_uuid_is_stable_short_and_distinct() -> None:
    chat = "oc_" + "a" * 32
    u = digest_uuid(chat, "2026-03-08")
    assert u == digest_uuid(chat, "2026-03-08") and len(u) <= 50
    assert u != digest_uuid(chat, "2026-03-09") and u != digest_uuid("oc_" + "b" * 32, "2026-03-08")


# ----- the command ------------------------------------------------------------------------------


async def test_digest_on_shows_time_zone_and_next_send(tmp_path: Path) -> None:
    clock = FakeClock()
    clock.set(utc(2026, 3, 6, 12, 0))  # 07:00 in New York
    async with digest_bot(tmp_path, clock) as h:
        card = await command(h, clock, "/digest on 09:00 America/New_York")
        body = texts(card)
        expected = due_at(P2P, date(2026, 3, 6), "09:00", NY).astimezone(NY).strftime("%Y-%m-%d %H:%M")
        assert "09:00" in body and "America/New_York" in body and expected in body
        assert expected.startswith("2026-03-06 09:0")
        sched = await digest_service(h.services).schedules.get(P2P)
        assert sched is not None and (sched.hhmm, sched.tz, sched.enabled) == ("09:00", "America/New_York", True)
        assert ("on", "ok", {"hhmm": "09:00", "tz": "America/New_York"}) in await audit_rows(h)

        # shorthand, zone case-insensitive, canonical name stored
        card = await command(h, clock, "/digest 7:05 europe/berlin")
        assert "07:05" in texts(card) and "Europe/Berlin" in texts(card)

        status = texts(await command(h, clock, "/digest status"))
        assert "07:05" in status and "Europe/Berlin" in status

        off = texts(await command(h, clock, "/digest off"))
        assert "off" in off
        sched = await digest_service(h.services).schedules.get(P2P)
        assert sched is not None and not sched.enabled
        assert "already off" in texts(await command(h, clock, "/digest off"))
        assert "**off**" in texts(await command(h, clock, "/digest"))


async def test_zone_defaults_to_the_setting(tmp_path: Path) -> None:
    clock = FakeClock()
    async with digest_bot(tmp_path, clock, default_timezone="Asia/Shanghai") as h:
        body = texts(await command(h, clock, "/digest on 8:30"))
        assert "08:30" in body and "Asia/Shanghai" in body
        assert "Asia/Shanghai" in texts(await command(h, clock, "/digest off"))


@pytest.mark.parametrize(("args", "needle"), [
    ("on 25:00", "25:00"),
    ("on 9", "`9`"),
    ("on 09:00 Mars/Olympus", "Mars/Olympus"),
    ("on", "missing"),
    ("on 09:00 Europe/Berlin extra", "Too many"),
    ("sometimes", "sometimes"),
])
async def test_bad_input_says_what_is_wrong_with_an_example(tmp_path: Path, args: str, needle: str) -> None:
    clock = FakeClock()
    async with digest_bot(tmp_path, clock) as h:
        body = texts(await command(h, clock, f"/digest {args}"))
        assert needle in body
        assert "/digest on 09:00 Asia/Shanghai" in body  # the example
        assert await digest_service(h.services).schedules.get(P2P) is None


# ----- permissions ------------------------------------------------------------------------------


async def test_group_changes_need_owner_admin_or_allow_list(tmp_path: Path) -> None:
    clock = FakeClock()
    async with digest_bot(tmp_path, clock, digest_admins="ou_boss, ou_other") as h:
        h.lark.add_chat(GROUP, owner_id="ou_owner", user_manager_id_list=["ou_manager"])
        schedules = digest_service(h.services).schedules

        refused = texts(await command(h, clock, "/digest on 09:00", chat_id=GROUP, chat_type="group",
                                      user="ou_member"))
        assert "Sorry" in refused and "抱歉" in refused
        assert await schedules.get(GROUP) is None
        assert ("on", "refused", {"args": "on 09:00"}) in await audit_rows(h)

        # anyone may look and ask for one now
        assert "**off**" in texts(await command(h, clock, "/digest status", chat_id=GROUP, chat_type="group",
                                                user="ou_member"))
        assert "Daily digest" in texts(await command(h, clock, "/digest now", chat_id=GROUP, chat_type="group",
                                                     user="ou_member"))

        for user, hhmm in (("ou_owner", "09:00"), ("ou_manager", "10:00"), ("ou_boss", "11:00")):
            body = texts(await command(h, clock, f"/digest on {hhmm}", chat_id=GROUP, chat_type="group", user=user))
            assert "Saved" in body, user
            sched = await schedules.get(GROUP)
            assert sched is not None and sched.hhmm == hhmm and sched.updated_by == user

        assert "Sorry" in texts(await command(h, clock, "/digest off", chat_id=GROUP, chat_type="group",
                                              user="ou_member"))
        assert "Turned off" in texts(await command(h, clock, "/digest off", chat_id=GROUP, chat_type="group",
                                                   user="ou_manager"))
        outcomes = [(a, o) for a, o, _ in await audit_rows(h)]
        assert outcomes.count(("on", "refused")) == 1 and outcomes.count(("off", "refused")) == 1
        assert outcomes.count(("on", "ok")) == 3 and ("off", "ok") in outcomes


async def test_group_refusal_when_lark_cannot_tell(tmp_path: Path) -> None:
    clock = FakeClock()
    async with digest_bot(tmp_path, clock) as h:  # the fake does not know the chat: 230002
        body = texts(await command(h, clock, "/digest on 09:00", chat_id="oc_unknown", chat_type="group",
                                   user="ou_owner"))
        assert "Sorry" in body and "could not check" in body


async def test_p2p_is_always_allowed(tmp_path: Path) -> None:
    clock = FakeClock()
    async with digest_bot(tmp_path, clock) as h:
        assert "Saved" in texts(await command(h, clock, "/digest on 06:15 UTC", user="ou_anyone"))
        assert not h.lark.calls_to("/open-apis/im/v1/chats")  # no need to ask Lark


# ----- sends follow the local wall clock across DST ------------------------------------------------


async def _digests(h: BotHarness, chat: str = P2P) -> list[dict[str, Any]]:
    return [m for m in h.lark.sent_messages() if m["kind"] == "send" and m["chat_id"] == chat]


@pytest.mark.parametrize(("hhmm", "zone", "days"), [
    ("02:30", "America/New_York", [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)]),
    ("01:30", "America/New_York", [date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)]),
    ("09:00", "America/New_York", [date(2026, 3, 7), date(2026, 3, 8), date(2026, 11, 1)]),
    ("02:30", "Europe/Berlin", [date(2026, 3, 28), date(2026, 3, 29), date(2026, 10, 25)]),
])
async def test_scheduled_sends_follow_local_time_across_dst(tmp_path: Path, hhmm: str, zone: str,
                                                            days: list[date]) -> None:
    tz = ZoneInfo(zone)
    clock = FakeClock()
    clock.set(wall_time(days[0] - timedelta(days=1), "12:00", tz))
    async with digest_bot(tmp_path, clock) as h:
        await command(h, clock, f"/digest on {hhmm} {zone}")
        sched = scheduler_of(h.services)
        for n, day in enumerate(days, start=1):
            due = due_at(P2P, day, hhmm, tz)
            clock.set(due - timedelta(seconds=1))
            await sched.run_job("digest.send")
            assert len(await _digests(h)) == n - 1, f"too early on {day}"
            clock.set(due)
            await sched.run_job("digest.send")
            sent = await _digests(h)
            assert len(sent) == n, f"not sent on {day}"
            assert sent[-1]["uuid"] == digest_uuid(P2P, day.isoformat())
            # the second 01:30 of a fall-back night (and any later tick that day) sends nothing more
            clock.set(due + timedelta(hours=1, minutes=5))
            await sched.run_job("digest.send")
            assert len(await _digests(h)) == n
        local = [datetime.fromisoformat(str(r["local_date"])) for r in
                 await h.services.db.fetchall("SELECT local_date FROM digest_sends WHERE status='sent'")]
        assert [d.date() for d in local] == days


async def test_schedule_set_after_todays_time_starts_tomorrow(tmp_path: Path) -> None:
    clock = FakeClock()
    clock.set(utc(2026, 3, 6, 15, 0))  # 10:00 in New York
    async with digest_bot(tmp_path, clock) as h:
        body = texts(await command(h, clock, "/digest on 09:00 America/New_York"))
        tomorrow = due_at(P2P, date(2026, 3, 7), "09:00", NY).astimezone(NY).strftime("%Y-%m-%d %H:%M")
        assert tomorrow in body
        await scheduler_of(h.services).run_job("digest.send")
        assert await _digests(h) == []  # 09:00 today was before the schedule existed: not owed
