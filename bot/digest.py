"""The daily digest: when each chat's digest is due, what it says, and sending it exactly once.

When (schedule arithmetic, all in the chat's IANA zone, every day afresh):

* The local wall time HH:MM on a local date is turned into an instant with `fold=0`:
  - **spring-forward gap** (e.g. 02:30 on 2026-03-08 in America/New_York does not exist): the
    time is read with the offset in force *before* the jump, i.e. it moves forward by the gap
    (02:30 → 03:30 EDT). The digest still goes out that day, as late after midnight as intended.
  - **fall-back fold** (01:30 on 2026-11-01 happens twice): the *first* occurrence (EDT).
* Each chat then gets a stable offset of 1–4 minutes (from a SHA-256 of its id), chosen so the
  send never falls on minute :00 or :30, local or UTC (Lark's peaks, reference lark.md §10–11).

Exactly once (one digest per chat per local date):

* A `digest_sends` row is claimed (`pending`, attempts 0) *before* sending; each attempt is
  owned by a compare-and-swap on `attempts`, and the message carries a Lark `uuid` derived from
  chat + local date (stable across retries and restarts; Lark dedupes it for 1 h).
* A `pending` row found later (crash mid-send, failed attempt) is re-sent with the same uuid
  while `UUID_SAFE_WINDOW` (55 min, inside Lark's 1 h) since its first attempt has not passed;
  after that it is marked `unknown` and audited instead of risking a double. A row that was
  never attempted is always safe to send (within the grace window).
* A digest due less than `digest_grace_seconds` ago (default 3 h) and never sent is caught up;
  older ones are recorded as `missed`, not sent. Dates due before the schedule was last set are
  not owed at all.
* The periodic job runs under a store lease (see `bot.scheduler`), and row claims are atomic,
  so two instances on one database never both send.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import httpx

from bot.ghl.hub import NoLocation
from bot.ghl.insights import recent_posts
from bot.lark.client import CHAT_RATE_LIMITED, OVERLOADED, RATE_LIMITED, LarkApiError
from bot.services import Services
from bot.stats_history import Snapshot, StatsHistory, stitch
from bot.store.digests import DigestSchedule, DigestSchedules, DigestSend, DigestSends
from bot.store.leases import Lease, LeaseLost
from cards.digest import (
    DayChange,
    DigestData,
    Mover,
    TagCount,
    WeekChange,
    digest_card,
    digest_empty_card,
    digest_no_location_card,
)
from cards.kit import Card

log = logging.getLogger("bot.digest")

HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
UUID_SAFE_WINDOW = 55 * 60.0  # re-send a pending digest with its uuid only this long after the first attempt
MAX_ATTEMPTS = 5
SEND_CONCURRENCY = 64
TREND_DAYS = 14
TOP_TAGS = 5
TOP_MOVERS = 3
EXTRA = "digest"  # Services.extras key of the shared DigestService

StepHook = Callable[[str, str, str], Awaitable[None]]  # (step, chat_id, local_date): tests simulate crashes


# ----- schedule arithmetic -------------------------------------------------------------------


def parse_hhmm(text: str) -> str | None:
    """`9:05` / `09:05` → `09:05`; None if it is not a time of day."""
    m = HHMM.match(text.strip())
    return f"{int(m.group(1)):02d}:{m.group(2)}" if m else None


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    return {z.lower(): z for z in available_timezones()}


_ZONES: dict[str, ZoneInfo] = {}


def _load_zone(name: str) -> ZoneInfo | None:
    canonical = _zone_names().get(name.lower())
    try:
        return ZoneInfo(canonical or name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


async def load_zone(name: str) -> ZoneInfo | None:
    """The zone for an IANA name (case-insensitive), loaded off the event loop once; None if unknown."""
    name = name.strip()
    if not name or len(name) > 64:
        return None
    zone = _ZONES.get(name)
    if zone is None:
        zone = await asyncio.to_thread(_load_zone, name)
        if zone is not None:
            _ZONES[name] = _ZONES[zone.key] = zone
    return zone


def wall_time(local_date: date, hhmm: str, tz: ZoneInfo) -> datetime:
    """HH:MM on `local_date` in `tz`, as a UTC instant (gap: moved forward by the gap; fold: first)."""
    hh, mm = (int(x) for x in hhmm.split(":"))
    return datetime(local_date.year, local_date.month, local_date.day, hh, mm, tzinfo=tz, fold=0).astimezone(UTC)


def _chat_hash(chat_id: str) -> int:
    return int.from_bytes(hashlib.sha256(chat_id.encode()).digest()[:8], "big")


def send_offset(chat_id: str, base: datetime, tz: ZoneInfo) -> int:
    """Seconds after `base` (60–239) for this chat: stable, never on minute :00 or :30 (local or UTC)."""
    h = _chat_hash(chat_id)
    seconds = h % 60
    options = []
    for minutes in (1, 2, 3):
        at = base + timedelta(minutes=minutes, seconds=seconds)
        if at.minute % 30 and at.astimezone(tz).minute % 30:
            options.append(minutes * 60 + seconds)
    return options[(h >> 16) % len(options)]  # ≥ 1 option: each constraint rules out at most one minute


def due_at(chat_id: str, local_date: date, hhmm: str, tz: ZoneInfo) -> datetime:
    base = wall_time(local_date, hhmm, tz)
    return base + timedelta(seconds=send_offset(chat_id, base, tz))


def local_date_of(ts: float, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).date()


def digest_uuid(chat_id: str, local_date: str) -> str:
    """Lark's idempotency key for this chat's digest of this date (≤ 50 chars, stable)."""
    return f"dg-{local_date}-{hashlib.sha256(chat_id.encode()).hexdigest()[:30]}"


def lookback_days(grace: float) -> int:
    return int(grace // 86400) + 1


def owed_dates(sched: DigestSchedule, tz: ZoneInfo, now: float, grace: float) -> list[tuple[date, float]]:
    """Local dates whose digest is due by `now` and was due after the schedule was last set
    (oldest first), with their due instants."""
    today = local_date_of(now, tz)
    out = []
    for back in range(lookback_days(grace), -1, -1):
        d = today - timedelta(days=back)
        due = due_at(sched.chat_id, d, sched.hhmm, tz).timestamp()
        if sched.updated_at <= due <= now:
            out.append((d, due))
    return out


def next_send(sched: DigestSchedule, tz: ZoneInfo, now: float, grace: float, done: set[str]) -> datetime | None:
    """When this chat's next digest goes out (UTC); `now` if one is owed and not yet sent."""
    today = local_date_of(now, tz)
    for delta in range(-lookback_days(grace), 3):
        d = today + timedelta(days=delta)
        if d.isoformat() in done:
            continue
        due = due_at(sched.chat_id, d, sched.hhmm, tz)
        ts = due.timestamp()
        if ts < sched.updated_at or (ts <= now and now - ts > grace):
            continue
        return due if ts > now else datetime.fromtimestamp(now, UTC)
    return None


# ----- what the digest says --------------------------------------------------------------


def _last_two(series: list[float]) -> tuple[float, float] | None:
    return (series[-1], series[-2]) if len(series) >= 2 else None


def _sum_series(per_platform: dict[str, list[int | float]]) -> list[float]:
    """Element-wise sum of per-platform daily series, aligned on their last (most recent) day."""
    if not per_platform:
        return []
    n = max(len(s) for s in per_platform.values())
    out = [0.0] * n
    for s in per_platform.values():
        for i, v in enumerate(s):
            out[n - len(s) + i] += float(v)
    return out


def day_changes(s: Snapshot) -> list[DayChange]:
    pp = s.stats.post_performance
    series = {"impressions": [float(v) for v in pp.impressions], "posts": _sum_series(pp.posts),
              "likes": [float(v) for v in pp.likes], "comments": [float(v) for v in pp.comments]}
    out = []
    for key, values in series.items():
        pair = _last_two(values)
        if pair is not None:
            out.append(DayChange(key, pair[0], pair[1]))
    return out


def week_changes(s: Snapshot, before: Snapshot | None) -> list[WeekChange]:
    b, t = s.stats.breakdowns, s.stats.totals
    ob = before.stats.breakdowns if before else None
    ot = before.stats.totals if before else None
    return [
        WeekChange("impressions", float(b.impressions.total or t.impressions), float(b.impressions.total_change),
                   None if ob is None or ot is None else float(ob.impressions.total or ot.impressions)),
        WeekChange("reach", float(b.reach.total), float(b.reach.total_change),
                   None if ob is None else float(ob.reach.total)),
        WeekChange("posts", float(b.posts.total or t.posts), float(b.posts.total_change),
                   None if ob is None or ot is None else float(ob.posts.total or ot.posts)),
        WeekChange("likes", float(t.likes), None, None if ot is None else float(ot.likes)),
        WeekChange("followers", float(t.followers), None, None if ot is None else float(ot.followers)),
    ]


def movers(s: Snapshot) -> list[Mover]:
    b, pt = s.stats.breakdowns, s.stats.platform_totals
    out = []
    for p in sorted(set(b.impressions.platforms) | set(b.engagement) | set(pt.impressions)):
        week: float | None = None
        if p in b.impressions.platforms:
            week = float(b.impressions.platforms[p].change)
        elif p in b.engagement:
            week = float(b.engagement[p].change)
        series = pt.impressions[p].series if p in pt.impressions else []
        pair = _last_two([float(v) for v in series])
        out.append(Mover(p, week, pair[0] if pair else None, pair[0] - pair[1] if pair else None))
    out.sort(key=lambda m: (abs(m.week_change or 0.0), abs(m.day_delta or 0.0)), reverse=True)
    return out[:TOP_MOVERS]


def _fmt_local(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M")


# ----- the service -----------------------------------------------------------------------


@dataclass
class RunCounts:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    missed: int = 0
    unknown: int = 0
    taken: int = 0  # another process owned the row or the attempt
    errors: int = 0  # unexpected failures (logged); the next run tries again


class DigestService:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.history = StatsHistory(svc)
        self.schedules = DigestSchedules(svc.db, svc.clock.time)
        self.sends = DigestSends(svc.db, svc.clock.time)
        self.step_hook: StepHook | None = None

    @property
    def grace(self) -> float:
        return float(self.svc.settings.digest_grace_seconds)

    async def zone_for(self, sched: DigestSchedule | None) -> ZoneInfo:
        zone = await load_zone(sched.tz) if sched else None
        return zone or await load_zone(self.svc.settings.default_timezone) or ZoneInfo("UTC")

    async def next_send_at(self, sched: DigestSchedule, tz: ZoneInfo, now: float) -> datetime | None:
        today = local_date_of(now, tz)
        dates = [(today + timedelta(days=k)).isoformat() for k in range(-lookback_days(self.grace), 3)]
        return next_send(sched, tz, now, self.grace, await self.sends.dates(sched.chat_id, dates))

    # -- content ----------------------------------------------------------------------------

    async def build(self, chat_id: str, local_date: date, tz: ZoneInfo, now: float) -> tuple[Card, str | None]:
        """The digest card for a chat (its bound location, or its only one) and that location."""
        hub = self.svc.ghl
        if hub is None or not hub.configured:
            return digest_no_location_card(0), None
        try:
            location_id = await hub.location_for(chat_id)
        except NoLocation as exc:
            return digest_no_location_card(len(exc.choices)), None
        return await self.build_for(location_id, local_date, tz, now), location_id

    async def build_for(self, location_id: str, local_date: date, tz: ZoneInfo, now: float) -> Card:
        snap = await self.history.latest(location_id)
        if snap is None:
            try:
                snap = await self.history.take(location_id, now)
                no_accounts = snap is None
            except Exception as exc:  # GHL down: say when data will come instead of failing the digest
                log.warning("snapshot for digest failed", extra={"location_id": location_id,
                                                                  "error": type(exc).__name__})
                no_accounts = False
            if snap is None:
                next_at = _fmt_local(now + self.svc.settings.snapshot_interval_seconds, tz)
                return digest_empty_card(location_id, local_date.isoformat(), tz.key, next_at,
                                         no_accounts=no_accounts)
        before = await self.history.on_day(location_id, snap.day - timedelta(days=7))
        history = await self.history.since(location_id, snap.day - timedelta(days=TREND_DAYS + 7))
        trend = stitch([*history, snap])[-TREND_DAYS:]
        window = snap.window_dates()
        data = DigestData(
            location=location_id, local_date=local_date.isoformat(), tz=tz.key,
            yesterday=(snap.day - timedelta(days=1)).isoformat(),
            day_before=(snap.day - timedelta(days=2)).isoformat(),
            week_window=f"{window[0].isoformat()} – {window[-1].isoformat()}",
            days=day_changes(snap), week=week_changes(snap, before),
            own_reference=before.day.isoformat() if before else None,
            movers=movers(snap), tags=await self._top_tags(location_id, now),
            trend=[(d.strftime("%m-%d"), v) for d, v in trend],
            taken_at=datetime.fromtimestamp(snap.taken_at, UTC).strftime("%Y-%m-%d %H:%M UTC"))
        return digest_card(data)

    async def _top_tags(self, location_id: str, now: float) -> list[TagCount] | None:
        hub = self.svc.ghl
        assert hub is not None
        try:
            posts = await recent_posts(hub.client, location_id, now=datetime.fromtimestamp(now, UTC), days=7,
                                       status="published")
            counts = Counter(t for p in posts for t in dict.fromkeys(p.tags))
            top = counts.most_common(TOP_TAGS)
            names = await hub.tags.names(location_id, [t for t, _ in top]) if top else {}
        except Exception as exc:
            log.warning("top tags for digest failed", extra={"location_id": location_id,
                                                              "error": type(exc).__name__})
            return None
        return [TagCount(names.get(t) or t, n) for t, n in top]

    # -- the periodic job ----------------------------------------------------------------------

    async def run(self, now: float, lease: Lease) -> RunCounts:
        """Send every digest that is owed, resume interrupted ones, record missed ones."""
        counts = RunCounts()
        work: list[tuple[str, date, ZoneInfo, DigestSend | None]] = []
        zones: dict[str, ZoneInfo] = {}
        schedules = {s.chat_id: s for s in await self.schedules.enabled()}
        for s in schedules.values():
            zones[s.chat_id] = await self.zone_for(s)
        for row in await self.sends.pending():
            await lease.keep()
            verdict = self._pending_verdict(row, now)
            if verdict == "resume":
                tz = zones.get(row.chat_id) or await self.zone_for(await self.schedules.get(row.chat_id))
                work.append((row.chat_id, date.fromisoformat(row.local_date), tz, row))
            else:
                await self._finish(row.chat_id, row.local_date, verdict, row.uuid, row.attempts, None, counts,
                                   error=_VERDICT_WHY[verdict])
        for s in schedules.values():
            tz = zones[s.chat_id]
            owed = owed_dates(s, tz, now, self.grace)
            done = await self.sends.dates(s.chat_id, [d.isoformat() for d, _ in owed])
            for d, due in owed:
                if d.isoformat() in done:
                    continue
                if now - due > self.grace:
                    uuid = digest_uuid(s.chat_id, d.isoformat())
                    if await self.sends.record_missed(s.chat_id, d.isoformat(), uuid, "due more than the grace ago"):
                        counts.missed += 1
                        self.svc.metrics.digests.labels("missed").inc()
                        await self._audit("missed", s.chat_id, None, local_date=d.isoformat(), uuid=uuid,
                                          due=_fmt_local(due, tz), zone=tz.key)
                    continue
                work.append((s.chat_id, d, tz, None))
        if work:
            await self._fan_out(work, now, lease, counts)
        return counts

    def _pending_verdict(self, row: DigestSend, now: float) -> str:
        if row.attempts == 0:  # recorded, never attempted: certainly not delivered
            return "resume" if now - row.created_at <= self.grace else "missed"
        if now - row.created_at >= UUID_SAFE_WINDOW:
            return "unknown"
        if row.attempts >= MAX_ATTEMPTS:
            return "failed"
        return "resume"

    async def _fan_out(self, work: list[tuple[str, date, ZoneInfo, DigestSend | None]], now: float, lease: Lease,
                       counts: RunCounts) -> None:
        sem = asyncio.Semaphore(SEND_CONCURRENCY)
        cards: dict[tuple[str, str, str], asyncio.Task[Card]] = {}
        hub = self.svc.ghl

        async def card_for(chat_id: str, d: date, tz: ZoneInfo) -> tuple[Card, str | None]:
            # One build per (location, date, zone) per run: a thousand chats on one location cost one build.
            try:
                loc = await hub.location_for(chat_id) if hub is not None and hub.configured else None
            except NoLocation:
                loc = None
            if loc is None:
                return await self.build(chat_id, d, tz, now)
            key = (loc, d.isoformat(), tz.key)
            task = cards.get(key)
            if task is None:
                task = cards[key] = asyncio.ensure_future(self.build_for(loc, d, tz, now))
            return await asyncio.shield(task), loc

        async def one(chat_id: str, d: date, tz: ZoneInfo, row: DigestSend | None) -> None:
            async with sem:
                try:
                    await lease.keep()
                    await self.deliver(chat_id, d, tz, row, now, counts, card_for)
                except LeaseLost:
                    return  # not started; the new lease holder will send it
                except Exception as exc:  # one chat's failure never stops the others
                    counts.errors += 1
                    log.error("digest delivery failed", extra={"chat_id": chat_id, "local_date": d.isoformat()},
                              exc_info=exc)

        try:
            await asyncio.gather(*(one(*w) for w in work))
        finally:
            for t in cards.values():
                t.cancel()
        if lease.lost:
            raise LeaseLost(lease.name)

    async def deliver(self, chat_id: str, d: date, tz: ZoneInfo, row: DigestSend | None, now: float,
                      counts: RunCounts,
                      card_for: Callable[[str, date, ZoneInfo], Awaitable[tuple[Card, str | None]]] | None = None,
                      ) -> str:
        """Claim (or resume) one chat's digest for local date `d` and send it; returns the outcome."""
        local_date = d.isoformat()
        uuid = row.uuid if row else digest_uuid(chat_id, local_date)
        card, location_id = await (card_for(chat_id, d, tz) if card_for else self.build(chat_id, d, tz, now))
        if row is None:
            await self._step("before_record", chat_id, local_date)
            if not await self.sends.claim(chat_id, local_date, uuid):
                counts.taken += 1
                return "taken"
            seen = 0
            await self._step("recorded", chat_id, local_date)
        else:
            seen = row.attempts
        if not await self.sends.begin_attempt(chat_id, local_date, seen):
            counts.taken += 1
            return "taken"
        await self._step("attempting", chat_id, local_date)
        try:
            message_id = await self.svc.lark.send_card(chat_id, card, uuid=uuid)
        except LarkApiError as exc:
            if exc.chat_unavailable:
                await self.svc.chats.deactivate(chat_id)
            if _retryable(exc):
                return await self._retry_later(chat_id, local_date, uuid, seen + 1, location_id, counts,
                                               f"lark {exc.code} (HTTP {exc.http_status})")
            return await self._finish(chat_id, local_date, "failed", uuid, seen + 1, location_id, counts,
                                      error=f"lark {exc.code}: {exc.msg}"[:300])
        except httpx.HTTPError as exc:
            return await self._retry_later(chat_id, local_date, uuid, seen + 1, location_id, counts,
                                           type(exc).__name__)
        await self._step("sent", chat_id, local_date)
        return await self._finish(chat_id, local_date, "sent", uuid, seen + 1, location_id, counts,
                                  message_id=message_id)

    async def _retry_later(self, chat_id: str, local_date: str, uuid: str, attempts: int, location_id: str | None,
                           counts: RunCounts, error: str) -> str:
        if attempts >= MAX_ATTEMPTS:
            return await self._finish(chat_id, local_date, "failed", uuid, attempts, location_id, counts,
                                      error=error)
        await self.sends.note_error(chat_id, local_date, error)
        counts.retry += 1
        self.svc.metrics.digests.labels("retry").inc()
        await self._audit("retry", chat_id, location_id, local_date=local_date, uuid=uuid, attempts=attempts,
                          error=error)
        return "retry"

    async def _finish(self, chat_id: str, local_date: str, status: str, uuid: str, attempts: int,
                      location_id: str | None, counts: RunCounts, *, message_id: str | None = None,
                      error: str | None = None) -> str:
        if not await self.sends.finish(chat_id, local_date, status, message_id=message_id, error=error):
            counts.taken += 1
            return "taken"
        setattr(counts, status, getattr(counts, status) + 1)
        self.svc.metrics.digests.labels(status).inc()
        outcome = "ok" if status == "sent" else status
        detail: dict[str, object] = {"local_date": local_date, "uuid": uuid, "attempts": attempts}
        if message_id:
            detail["message_id"] = message_id
        if error:
            detail["error"] = error
        await self._audit(outcome, chat_id, location_id, **detail)
        return status

    async def _audit(self, outcome: str, chat_id: str, location_id: str | None, **detail: object) -> None:
        await self.svc.audit.record(kind="digest", action="send", outcome=outcome, chat_id=chat_id,
                                    location_id=location_id, detail=dict(detail))

    async def _step(self, step: str, chat_id: str, local_date: str) -> None:
        if self.step_hook is not None:
            await self.step_hook(step, chat_id, local_date)


_VERDICT_WHY = {
    "missed": "recorded but never attempted, and now older than the grace window",
    "unknown": "an attempt's outcome is unknown and Lark's 1 h uuid window has passed: not re-sent",
    "failed": "too many failed attempts",
}


def _retryable(exc: LarkApiError) -> bool:
    return (exc.http_status == 429 or exc.http_status >= 500 or exc.code == -1
            or exc.code in RATE_LIMITED | CHAT_RATE_LIMITED | OVERLOADED)


def digest_service(svc: Services) -> DigestService:
    """The app's one DigestService (shared by the scheduler job and the `/digest` command)."""
    found = svc.extras.get(EXTRA)
    if not isinstance(found, DigestService):
        found = svc.extras[EXTRA] = DigestService(svc)
    return found
