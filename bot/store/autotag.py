"""Auto-tagging state: per-chat switches, per-location keyword rules, drafts and created posts,
and the post poller's cursor and memory of posts already handled."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.store.db import Database, Row

__all__ = ["AutotagStore", "ChatAutotag", "CreatedPost", "Draft", "PollStore", "PostingStore", "Rule"]

# created_posts.status
PENDING = "pending"  # recorded before calling GHL; still there after a crash
UNKNOWN = "unknown"  # GHL's answer was lost (timeout, 5xx): the post may exist
FAILED = "failed"  # GHL refused: nothing was created
CREATED = "created"


@dataclass(frozen=True)
class ChatAutotag:
    chat_id: str
    enabled: bool = False
    writeback: bool = False
    ghl_user_id: str | None = None


@dataclass(frozen=True)
class Rule:
    location_id: str
    keyword: str
    tag_id: str
    tag_name: str
    created_by: str | None = None
    created_at: float = 0.0
    missing_since: float | None = None


@dataclass(frozen=True)
class Draft:
    key: str
    chat_id: str
    location_id: str
    summary: str
    created_by: str | None
    created_at: float


@dataclass(frozen=True)
class CreatedPost:
    key: str
    location_id: str
    chat_id: str | None
    post_id: str | None
    status: str
    request: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


class AutotagStore:
    """`autotag_settings` (per chat) and `autotag_rules` (per location)."""

    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db, self._now = db, now

    async def get(self, chat_id: str) -> ChatAutotag:
        r = await self._db.fetchone(
            "SELECT enabled, writeback, ghl_user_id FROM autotag_settings WHERE chat_id=?", (chat_id,))
        if r is None:
            return ChatAutotag(chat_id)
        return ChatAutotag(chat_id, bool(r["enabled"]), bool(r["writeback"]), r["ghl_user_id"])

    async def update(self, chat_id: str, *, enabled: bool | None = None, writeback: bool | None = None,
                     ghl_user_id: str | None = None) -> ChatAutotag:
        """Change only the fields given (`ghl_user_id=""` clears it), in one statement: two changes
        arriving together (a command and a click) must not undo each other."""
        def flag(v: bool | None) -> int | None:
            return None if v is None else int(v)

        [r] = await self._db.write_returning(
            "INSERT INTO autotag_settings (chat_id, enabled, writeback, ghl_user_id, updated_at)"
            " VALUES (?, COALESCE(?, 0), COALESCE(?, 0), ?, ?)"
            " ON CONFLICT(chat_id) DO UPDATE SET"
            " enabled=COALESCE(?, autotag_settings.enabled), writeback=COALESCE(?, autotag_settings.writeback),"
            " ghl_user_id=CASE WHEN ? THEN excluded.ghl_user_id ELSE autotag_settings.ghl_user_id END,"
            " updated_at=excluded.updated_at RETURNING enabled, writeback, ghl_user_id",
            (chat_id, flag(enabled), flag(writeback), ghl_user_id or None, self._now(),
             flag(enabled), flag(writeback), int(ghl_user_id is not None)))
        return ChatAutotag(chat_id, bool(r["enabled"]), bool(r["writeback"]), r["ghl_user_id"])

    async def many(self, chat_ids: Sequence[str]) -> list[ChatAutotag]:
        return [await self.get(c) for c in chat_ids]

    # ----- rules ---------------------------------------------------------------------------

    async def rules(self, location_id: str) -> list[Rule]:
        rows = await self._db.fetchall(
            "SELECT * FROM autotag_rules WHERE location_id=? ORDER BY keyword COLLATE NOCASE, keyword", (location_id,))
        return [_rule(r) for r in rows]

    async def rule(self, location_id: str, keyword: str) -> Rule | None:
        r = await self._db.fetchone("SELECT * FROM autotag_rules WHERE location_id=? AND keyword=?",
                                    (location_id, keyword))
        return None if r is None else _rule(r)

    async def add_rule(self, location_id: str, keyword: str, tag_id: str, tag_name: str,
                       created_by: str | None) -> Rule:
        now = self._now()
        await self._db.execute(
            "INSERT INTO autotag_rules (location_id, keyword, tag_id, tag_name, created_by, created_at, missing_since)"
            " VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT(location_id, keyword) DO UPDATE SET tag_id=excluded.tag_id,"
            " tag_name=excluded.tag_name, created_by=excluded.created_by, created_at=excluded.created_at,"
            " missing_since=NULL",
            (location_id, keyword, tag_id, tag_name, created_by, now))
        return Rule(location_id, keyword, tag_id, tag_name, created_by, now)

    async def remove_rule(self, location_id: str, keyword: str) -> bool:
        return await self._db.execute("DELETE FROM autotag_rules WHERE location_id=? AND keyword=?",
                                      (location_id, keyword)) > 0

    async def set_rule_missing(self, location_id: str, keyword: str, since: float | None) -> None:
        await self._db.execute("UPDATE autotag_rules SET missing_since=? WHERE location_id=? AND keyword=?",
                               (since, location_id, keyword))


def _rule(r: Row) -> Rule:
    return Rule(r["location_id"], r["keyword"], r["tag_id"], r["tag_name"], r["created_by"], float(r["created_at"]),
                None if r["missing_since"] is None else float(r["missing_since"]))


class PostingStore:
    """`post_drafts` (what a suggestion card would post) and `created_posts` (idempotency)."""

    DRAFT_TTL_S = 31 * 86400  # Lark card callbacks work for 30 days

    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db, self._now = db, now

    async def save_draft(self, key: str, chat_id: str, location_id: str, summary: str,
                         created_by: str | None) -> Draft:
        now = self._now()
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM post_drafts WHERE created_at < ?", (now - self.DRAFT_TTL_S,))
            await tx.execute(
                "INSERT OR REPLACE INTO post_drafts (idem_key, chat_id, location_id, summary, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", (key, chat_id, location_id, summary, created_by, now))
        return Draft(key, chat_id, location_id, summary, created_by, now)

    async def draft(self, key: str) -> Draft | None:
        r = await self._db.fetchone("SELECT * FROM post_drafts WHERE idem_key=?", (key,))
        if r is None:
            return None
        return Draft(r["idem_key"], r["chat_id"], r["location_id"], r["summary"], r["created_by"],
                     float(r["created_at"]))

    async def created(self, key: str) -> CreatedPost | None:
        r = await self._db.fetchone("SELECT * FROM created_posts WHERE idem_key=?", (key,))
        if r is None:
            return None
        return CreatedPost(r["idem_key"], r["location_id"], r["chat_id"], r["post_id"], r["status"],
                           json.loads(r["request"] or "{}"), r["error"], float(r["created_at"]),
                           float(r["updated_at"]))

    async def begin(self, key: str, location_id: str, chat_id: str | None, request: dict[str, Any]) -> None:
        """Record the attempt (status pending) before GHL is called; durable on return."""
        now = self._now()
        await self._db.execute(
            "INSERT INTO created_posts (idem_key, location_id, chat_id, post_id, status, request, error, created_at,"
            " updated_at) VALUES (?, ?, ?, NULL, ?, ?, NULL, ?, ?) ON CONFLICT(idem_key) DO UPDATE SET"
            " location_id=excluded.location_id, status=excluded.status, request=excluded.request, error=NULL,"
            " updated_at=excluded.updated_at",
            (key, location_id, chat_id, PENDING, json.dumps(request, ensure_ascii=False), now, now))

    async def complete(self, key: str, post_id: str) -> None:
        await self._db.execute(
            "UPDATE created_posts SET status=?, post_id=?, error=NULL, updated_at=? WHERE idem_key=?",
            (CREATED, post_id, self._now(), key))

    async def mark(self, key: str, status: str, error: str | None) -> None:
        await self._db.execute("UPDATE created_posts SET status=?, error=?, updated_at=? WHERE idem_key=?",
                               (status, (error or "")[:500] or None, self._now(), key))


class PollStore:
    """`post_cursors` and `seen_posts`: where the poller got to, and what it already handled."""

    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db, self._now = db, now

    async def cursor(self, location_id: str) -> float | None:
        r = await self._db.fetchone("SELECT cursor FROM post_cursors WHERE location_id=?", (location_id,))
        return None if r is None else float(r["cursor"])

    async def set_cursor(self, location_id: str, cursor: float) -> None:
        await self._db.execute(
            "INSERT INTO post_cursors (location_id, cursor, updated_at) VALUES (?, ?, ?) ON CONFLICT(location_id)"
            " DO UPDATE SET cursor=MAX(post_cursors.cursor, excluded.cursor), updated_at=excluded.updated_at",
            (location_id, cursor, self._now()))

    async def unseen(self, location_id: str, post_ids: Sequence[str]) -> list[str]:
        """The ids (in the given order, without repeats) not handled yet."""
        ids = list(dict.fromkeys(post_ids))
        seen: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self._db.fetchall(
                f"SELECT post_id FROM seen_posts WHERE location_id=? AND post_id IN ({marks})", (location_id, *chunk))
            seen.update(r["post_id"] for r in rows)
        return [i for i in ids if i not in seen]

    async def mark_seen(self, location_id: str, post_id: str, tags: Sequence[str]) -> bool:
        """Remember a handled post; False if it was already remembered (handled elsewhere)."""
        return await self._db.execute(
            "INSERT OR IGNORE INTO seen_posts (location_id, post_id, tags, handled_at) VALUES (?, ?, ?, ?)",
            (location_id, post_id, json.dumps(list(tags)), self._now())) > 0

    async def seen_tags(self, location_id: str, post_id: str) -> list[str] | None:
        r = await self._db.fetchone("SELECT tags FROM seen_posts WHERE location_id=? AND post_id=?",
                                    (location_id, post_id))
        return None if r is None else list(json.loads(r["tags"] or "[]"))

    async def prune(self, older_than: float) -> int:
        return await self._db.execute("DELETE FROM seen_posts WHERE handled_at < ?", (older_than,))
