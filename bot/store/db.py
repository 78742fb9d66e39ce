"""The database: one aiosqlite connection in WAL mode, versioned migrations run on open.

Every table the bot owns is declared in `MIGRATIONS`; a change to the schema is a new entry
at the end, never an edit of a shipped one. Store modules (one per table family) take a
`Database` and speak SQL through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

Row = aiosqlite.Row

MIGRATIONS: list[str] = [
    # 1: everything the first release needs.
    """
    CREATE TABLE processed_events (
        app_id TEXT NOT NULL, key TEXT NOT NULL, created_at REAL NOT NULL,
        PRIMARY KEY (app_id, key));
    CREATE INDEX processed_events_age ON processed_events (created_at);

    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL, actor TEXT, chat_id TEXT, location_id TEXT,
        kind TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}',
        outcome TEXT NOT NULL);
    CREATE INDEX audit_chat ON audit (chat_id, id);
    CREATE INDEX audit_location ON audit (location_id, id);

    CREATE TABLE chats (
        chat_id TEXT PRIMARY KEY, chat_type TEXT, name TEXT,
        active INTEGER NOT NULL DEFAULT 1, location_id TEXT,
        created_at REAL NOT NULL, updated_at REAL NOT NULL);

    CREATE TABLE chat_locations (
        chat_id TEXT NOT NULL, location_id TEXT NOT NULL, added_by TEXT, added_at REAL NOT NULL,
        PRIMARY KEY (chat_id, location_id));

    CREATE TABLE installations (
        location_id TEXT PRIMARY KEY, company_id TEXT, user_id TEXT, name TEXT,
        access_token TEXT NOT NULL, refresh_token TEXT NOT NULL, expires_at REAL NOT NULL,
        scope TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT 'active',
        generation INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL);

    CREATE TABLE oauth_states (
        nonce TEXT PRIMARY KEY, chat_id TEXT NOT NULL, user_open_id TEXT NOT NULL,
        created_at REAL NOT NULL, expires_at REAL NOT NULL, used_at REAL);

    CREATE TABLE tag_cache (
        location_id TEXT NOT NULL, tag_id TEXT NOT NULL, name TEXT NOT NULL,
        created_at TEXT, PRIMARY KEY (location_id, tag_id));
    CREATE INDEX tag_cache_name ON tag_cache (location_id, name COLLATE NOCASE);
    CREATE TABLE tag_cache_meta (location_id TEXT PRIMARY KEY, fetched_at REAL NOT NULL, count INTEGER NOT NULL);

    CREATE TABLE stats_snapshots (
        location_id TEXT NOT NULL, taken_at REAL NOT NULL, day TEXT NOT NULL, payload TEXT NOT NULL,
        PRIMARY KEY (location_id, taken_at));
    CREATE INDEX stats_snapshots_day ON stats_snapshots (location_id, day);

    CREATE TABLE digest_schedules (
        chat_id TEXT PRIMARY KEY, hhmm TEXT NOT NULL, tz TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1, updated_by TEXT, updated_at REAL NOT NULL);
    CREATE TABLE digest_sends (
        chat_id TEXT NOT NULL, local_date TEXT NOT NULL, status TEXT NOT NULL,
        uuid TEXT NOT NULL, message_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL, sent_at REAL, error TEXT,
        PRIMARY KEY (chat_id, local_date));

    CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL);

    CREATE TABLE autotag_settings (
        chat_id TEXT PRIMARY KEY, enabled INTEGER NOT NULL DEFAULT 0,
        writeback INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL);
    CREATE TABLE autotag_rules (
        location_id TEXT NOT NULL, keyword TEXT NOT NULL, tag_id TEXT NOT NULL, tag_name TEXT NOT NULL,
        created_by TEXT, created_at REAL NOT NULL, PRIMARY KEY (location_id, keyword));
    CREATE TABLE post_cursors (location_id TEXT PRIMARY KEY, cursor REAL NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE seen_posts (
        location_id TEXT NOT NULL, post_id TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]',
        handled_at REAL NOT NULL, PRIMARY KEY (location_id, post_id));
    CREATE TABLE created_posts (
        idem_key TEXT PRIMARY KEY, location_id TEXT NOT NULL, post_id TEXT,
        status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL);
    """,
    # 2: auto-tagging — the GHL user posts are created as (per chat), a rule whose tag vanished,
    #    the chat message a post is drafted from, and the exact request sent for each created post
    #    (to find the post again after a crash between GHL creating it and us recording it).
    """
    ALTER TABLE autotag_settings ADD COLUMN ghl_user_id TEXT;
    ALTER TABLE autotag_rules ADD COLUMN missing_since REAL;
    ALTER TABLE created_posts ADD COLUMN chat_id TEXT;
    ALTER TABLE created_posts ADD COLUMN request TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE created_posts ADD COLUMN error TEXT;
    CREATE TABLE post_drafts (
        idem_key TEXT PRIMARY KEY, chat_id TEXT NOT NULL, location_id TEXT NOT NULL, summary TEXT NOT NULL,
        created_by TEXT, created_at REAL NOT NULL);
    CREATE INDEX post_drafts_age ON post_drafts (created_at);
    CREATE INDEX seen_posts_age ON seen_posts (handled_at);
    """,
    # 3: /tags pages and searches straight from one covering index (no temp sort at deep offsets).
    """
    DROP INDEX IF EXISTS tag_cache_name;
    CREATE INDEX tag_cache_page ON tag_cache (location_id, name COLLATE NOCASE, tag_id, created_at);
    """,
    # 4: delivery dedupe as an append-only log (bot/store/dedupe_log.py): a new key is one append
    #    instead of a random insert into two indexes; the keys already recorded carry over.
    """
    CREATE TABLE dedupe_log (
        seq INTEGER PRIMARY KEY, app_id TEXT NOT NULL, key TEXT NOT NULL, created_at REAL NOT NULL);
    INSERT INTO dedupe_log (app_id, key, created_at)
        SELECT app_id, key, created_at FROM processed_events ORDER BY created_at;
    DROP TABLE processed_events;
    """,
]


def sqlite_path(database_url: str) -> str:
    """`sqlite:///./data/bot.db` → `./data/bot.db`; `sqlite:///:memory:` → `:memory:`."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        raise ValueError("DATABASE_URL must look like sqlite:///path/to/bot.db")
    return database_url[len(prefix):] or ":memory:"


class Database:
    """One connection for writes (`transaction()` serialises multi-statement writes) and one for reads.

    Reads have their own connection so that they see only committed data: on the shared connection a
    read landing between the statements of another coroutine's transaction saw its half-done work
    (a /tags page counted 0 tags while the cache was being replaced). In-memory databases cannot be
    shared between connections, so they read on the writer.
    """

    def __init__(self, conn: aiosqlite.Connection, reader: aiosqlite.Connection | None = None,
                 path: str = ":memory:") -> None:
        self.path = path  # for stores that keep a connection of their own (bot/store/dedupe.py)
        self._conn = conn
        self._reader = reader or conn
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, database_url: str) -> Database:
        path = sqlite_path(database_url)
        if path != ":memory:":
            await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        db = cls(conn, path=path)
        await db._setup()  # WAL and migrations first, so the reader opens the finished schema
        if path != ":memory:":
            reader = await aiosqlite.connect(path, isolation_level=None)
            reader.row_factory = aiosqlite.Row
            await reader.execute("PRAGMA busy_timeout=5000")
            await reader.execute("PRAGMA query_only=ON")
            db._reader = reader
        return db

    async def _setup(self) -> None:
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.execute("PRAGMA busy_timeout=5000")
        await self._conn.execute("PRAGMA foreign_keys=ON")
        await self.migrate()

    async def migrate(self) -> None:
        async with self._write_lock:
            row = await (await self._conn.execute("PRAGMA user_version")).fetchone()
            current = int(row[0]) if row else 0
            for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
                await self._conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={version};\nCOMMIT;")

    @property
    def schema_version(self) -> int:
        return len(MIGRATIONS)

    async def close(self) -> None:
        if self._reader is not self._conn:
            await self._reader.close()
        await self._conn.close()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement on its own (autocommit); returns the rows changed."""
        async with self._write_lock:
            cur = await self._conn.execute(sql, params)
            return cur.rowcount

    async def write_returning(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """One write statement with a RETURNING clause, committed on its own, in one thread hop."""
        async with self._write_lock:
            return list(await self._conn.execute_fetchall(sql, params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self._reader.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self._reader.execute_fetchall(sql, params))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error); other writers wait meanwhile."""
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")
