"""Digest schedules (one per chat) and digest sends (one row per chat per local date).

A send row is written *before* the message goes out, and every state change is a single
conditional statement, so two processes (or a process and its restarted self) agree on who
does what:

* `claim` inserts `pending` with `attempts = 0`; only one inserter wins (primary key).
* `begin_attempt` bumps `attempts` only if it still has the value the caller read
  (compare-and-swap): exactly one caller owns each attempt. The first attempt also re-stamps
  `created_at`, which from then on is the moment the first send was *attempted*, i.e. the
  earliest time Lark's 1 h `uuid` window can have started.
* `finish` moves `pending` to a final status (`sent`, `failed`, `missed`, `unknown`) once.

Statuses: `pending` (claimed; maybe in flight), `sent`, `failed` (gave up; Lark said no),
`missed` (due too long ago, never sent), `unknown` (an attempt was made but its outcome is
unknown and Lark's uuid window has passed: not re-sent, to never double).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.store.db import Database, Row

FINAL = ("sent", "failed", "missed", "unknown")


@dataclass(frozen=True)
class DigestSchedule:
    chat_id: str
    hhmm: str
    tz: str
    enabled: bool
    updated_by: str | None
    updated_at: float


@dataclass(frozen=True)
class DigestSend:
    chat_id: str
    local_date: str
    status: str
    uuid: str
    message_id: str | None
    attempts: int
    created_at: float
    sent_at: float | None
    error: str | None


class DigestSchedules:
    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db, self._now = db, now

    async def set(self, chat_id: str, hhmm: str, tz: str, by: str | None) -> DigestSchedule:
        now = self._now()
        await self._db.execute(
            "INSERT INTO digest_schedules (chat_id, hhmm, tz, enabled, updated_by, updated_at)"
            " VALUES (?, ?, ?, 1, ?, ?)"
            " ON CONFLICT(chat_id) DO UPDATE SET hhmm=excluded.hhmm, tz=excluded.tz, enabled=1,"
            " updated_by=excluded.updated_by, updated_at=excluded.updated_at",
            (chat_id, hhmm, tz, by, now))
        return DigestSchedule(chat_id, hhmm, tz, True, by, now)

    async def disable(self, chat_id: str, by: str | None) -> bool:
        """Turn the digest off; False if it was not on."""
        changed = await self._db.execute(
            "UPDATE digest_schedules SET enabled=0, updated_by=?, updated_at=? WHERE chat_id=? AND enabled=1",
            (by, self._now(), chat_id))
        return changed == 1

    async def get(self, chat_id: str) -> DigestSchedule | None:
        row = await self._db.fetchone("SELECT * FROM digest_schedules WHERE chat_id=?", (chat_id,))
        return None if row is None else _schedule(row)

    async def enabled(self) -> list[DigestSchedule]:
        """Enabled schedules of chats the bot is still in."""
        rows = await self._db.fetchall(
            "SELECT s.* FROM digest_schedules s LEFT JOIN chats c ON c.chat_id = s.chat_id"
            " WHERE s.enabled=1 AND COALESCE(c.active, 1)=1 ORDER BY s.chat_id")
        return [_schedule(r) for r in rows]


class DigestSends:
    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db, self._now = db, now

    async def get(self, chat_id: str, local_date: str) -> DigestSend | None:
        row = await self._db.fetchone("SELECT * FROM digest_sends WHERE chat_id=? AND local_date=?",
                                      (chat_id, local_date))
        return None if row is None else _send(row)

    async def last(self, chat_id: str) -> DigestSend | None:
        row = await self._db.fetchone(
            "SELECT * FROM digest_sends WHERE chat_id=? ORDER BY local_date DESC LIMIT 1", (chat_id,))
        return None if row is None else _send(row)

    async def dates(self, chat_id: str, local_dates: list[str]) -> set[str]:
        """Which of these local dates already have a row (any status)."""
        if not local_dates:
            return set()
        marks = ",".join("?" * len(local_dates))
        rows = await self._db.fetchall(
            f"SELECT local_date FROM digest_sends WHERE chat_id=? AND local_date IN ({marks})",
            (chat_id, *local_dates))
        return {r["local_date"] for r in rows}

    async def claim(self, chat_id: str, local_date: str, uuid: str) -> bool:
        """Record the send before it happens; True for the one caller whose row went in."""
        changed = await self._db.execute(
            "INSERT OR IGNORE INTO digest_sends (chat_id, local_date, status, uuid, attempts, created_at)"
            " VALUES (?, ?, 'pending', ?, 0, ?)", (chat_id, local_date, uuid, self._now()))
        return changed == 1

    async def record_missed(self, chat_id: str, local_date: str, uuid: str, why: str) -> bool:
        changed = await self._db.execute(
            "INSERT OR IGNORE INTO digest_sends (chat_id, local_date, status, uuid, attempts, created_at, error)"
            " VALUES (?, ?, 'missed', ?, 0, ?, ?)", (chat_id, local_date, uuid, self._now(), why[:500]))
        return changed == 1

    async def begin_attempt(self, chat_id: str, local_date: str, seen_attempts: int) -> bool:
        """Own the next attempt of a pending row (compare-and-swap on `attempts`)."""
        now = self._now()
        changed = await self._db.execute(
            "UPDATE digest_sends SET attempts=attempts+1,"
            " created_at=CASE WHEN attempts=0 THEN ? ELSE created_at END"
            " WHERE chat_id=? AND local_date=? AND status='pending' AND attempts=?",
            (now, chat_id, local_date, seen_attempts))
        return changed == 1

    async def note_error(self, chat_id: str, local_date: str, error: str) -> None:
        await self._db.execute("UPDATE digest_sends SET error=? WHERE chat_id=? AND local_date=? AND status='pending'",
                               (error[:500], chat_id, local_date))

    async def finish(self, chat_id: str, local_date: str, status: str, *, message_id: str | None = None,
                     error: str | None = None) -> bool:
        """pending → a final status, once (False if the row was not pending any more)."""
        if status not in FINAL:
            raise ValueError(f"not a final status: {status}")
        changed = await self._db.execute(
            "UPDATE digest_sends SET status=?, message_id=COALESCE(?, message_id), error=?,"
            " sent_at=CASE WHEN ?='sent' THEN ? ELSE sent_at END"
            " WHERE chat_id=? AND local_date=? AND status='pending'",
            (status, message_id, error[:500] if error else None, status, self._now(), chat_id, local_date))
        return changed == 1

    async def pending(self) -> list[DigestSend]:
        rows = await self._db.fetchall("SELECT * FROM digest_sends WHERE status='pending' ORDER BY created_at")
        return [_send(r) for r in rows]


def _schedule(r: Row) -> DigestSchedule:
    return DigestSchedule(r["chat_id"], r["hhmm"], r["tz"], bool(r["enabled"]), r["updated_by"],
                          float(r["updated_at"]))


def _send(r: Row) -> DigestSend:
    return DigestSend(r["chat_id"], r["local_date"], r["status"], r["uuid"], r["message_id"], int(r["attempts"]),
                      float(r["created_at"]), None if r["sent_at"] is None else float(r["sent_at"]), r["error"])
